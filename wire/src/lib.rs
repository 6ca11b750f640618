//! Wire formats for mipcast.
//!
//! Every message has a zero-copy, bounds-checked view over a byte slice (`*Packet<T>`), an
//! owned representation (`*Repr`) with `parse` and `emit`, and typed errors. Nothing here does
//! I/O, allocates on the parse path of a view, or panics on any input: all parsers are fuzzed
//! (`fuzz/`) and property-tested.
//!
//! The layout follows smoltcp's `wire` module; we hand-write it because no maintained crate
//! covers the Mobility Header (RFC 6275/4285/5213 options), the RFC 5380 MAP option, MLDv2
//! and PIMv2 together (pnet is dormant and has none of them).
#![forbid(unsafe_code)]

pub mod checksum;
mod cursor;
mod error;

pub use error::{Error, Result};
pub mod auth;
pub mod context;
pub mod group;
pub mod mh;
pub mod mld;
pub mod nd;
pub mod ntp;
pub mod pim;
pub mod prefix;
