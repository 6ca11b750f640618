//! Simulation harness for mipcast, in the spirit of quinn-proto's test `Pair`: the real
//! protocol cores of the home agent, one MMA per site and the mobile nodes, wired together over
//! an in-memory network with virtual time and a fake kernel per node.
//!
//! Runs as any user, never sleeps (the clock jumps to the next delivery, router advertisement
//! or core timer), and is deterministic given [`SimConfig::seed`]. Every core is driven with the
//! contract's one burst rule ([`mipcast_proto::next_step`]); kernel changes go to a
//! [`FakeKernel`] with Linux's add/replace/delete semantics and injectable refusals; sends are
//! routed by destination address with per-link latency and, when a scenario asks, seeded loss,
//! duplication and reordering. [`invariants`] states what must hold of the whole system;
//! [`record`] writes a run as JSON lines and replays it against fresh cores.
//!
//! The multicast last hop runs real pim-lite cores ([`pim`]): one per access link of a site
//! (MLDv2 querier) and one next to each MMA, joined by point-to-point PIM links; the terminals'
//! kernels send MLDv2 reports for their (G, MMA) memberships. [`invariants`] checks the MMA and
//! terminal side at every event; [`pim::mcast_check`] checks the routers' branches once their
//! timers have run their course.
// A test harness: a broken invariant or an impossible setup is a failed test, so panicking is how
// this crate reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod invariants;
pub mod kernel;
pub mod pim;
pub mod record;
pub mod rng;
pub mod topology;
pub mod world;

pub use kernel::{FakeKernel, Op, Target, Verb};
pub use record::{NodeId, Record};
pub use topology::SimConfig;
pub use world::{LinkId, MhKind, Packet, World};
