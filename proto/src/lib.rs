//! The contract every mipcast protocol core speaks, with nothing of I/O in it.
//!
//! A core is a state machine in the style of quinn-proto's `Connection` ([`Machine`]): inputs
//! and timer expiries go in with the time as a value ([`Now`]); packets to send, kernel
//! changes and events come out of [`Machine::poll_output`]; what the kernel made of each
//! change comes back through [`Machine::kernel_result`] as an [`Outcome`], classified once for
//! every daemon by `mipcast_kernel::route::outcome` (by errno, never by message text).
//!
//! This crate depends on no runtime, socket or netlink crate, so a core and the simulation
//! harness build without them.
mod kobject;
pub mod logsummary;
mod machine;
mod ratelimit;
mod time;

pub use kobject::{host_net, masked, KObject, RT_TABLE_LOCAL, RT_TABLE_MAIN};
pub use machine::{next_step, settle, Machine, Outcome, Output, OutputOf, Step};
pub use ratelimit::{Rate, ReplyBudgets, ReplyKind, SourceLimiter, SourceLimits, TokenBucket};
pub use time::{ntp_to_unix_ms, unix_to_ntp, Millis, Now};
