//! Time as a value: the one clock type of the cores ([`Now`], [`Millis`], from the I/O-free
//! `mipcast-proto` crate) and the conversions the state file needs.
pub use mipcast_proto::{ntp_to_unix_ms, unix_to_ntp, Millis, Now};

pub use mipcast_wire::ntp::ms_to_ntp_units;
