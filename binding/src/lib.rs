//! Binding registration core shared by the mipcast home agent and the MMA.
//!
//! Both routers accept RFC 4285-authenticated Binding Updates and keep a binding cache; they
//! differ only in policy. This crate is the sans-IO part: it never touches a socket, a clock or
//! the kernel. Packets and time come in as values ([`Now`]); packets to send and kernel changes
//! come out as [`Action`]s, which the daemon shell applies and tests assert on (the shape of
//! quinn-proto and smoltcp).
//!
//! - [`Registrar`] runs the RFC 6275 §9.5 / §10.3.1 + RFC 4285 validation pipeline, keeps the
//!   [`BindingCache`] and its timers, and asks a [`Policy`] to decide each registration.
//! - [`HomeAgentPolicy`] is the home agent's policy; the MMA implements [`Policy`] itself.
//! - [`BindingRecord`] is the serialisable form of a binding for the daemon's state file.
#![forbid(unsafe_code)]

pub mod cache;
pub mod messages;
pub mod policy;
pub mod registrar;
pub mod replay;
pub mod sa;
pub mod seq;
pub mod time;
mod validate;

pub use cache::{Binding, BindingCache, BindingRecord, BindingState};
pub use policy::{DeregVerdict, HomeAgentPolicy, Policy, PolicyError, Request, Verdict};
pub use registrar::{
    Action, ConfigError, DropReason, Registrar, RegistrarConfig, RemoveReason, RestoreRefusal,
};
pub use sa::{SaError, SaTable, SecurityAssociation};
pub use time::{Millis, Now};
