//! mipcast correspondent agent: accepts RFC 4285-authenticated Binding Updates from MMAs
//! (route optimisation without Mobile IPv6 extension headers), keeps the binding cache (home
//! address -> MMA) and tunnels the correspondent's traffic for a bound home address straight
//! to the MMA over a kernel seg6 tunnel, decapsulating the MMA's tunnels back. The protocol
//! core ([`core`], pure) is the home agent's core run with the correspondent's policy.
#![forbid(unsafe_code)]

#[cfg(feature = "shell")]
pub mod config;
pub mod core;
#[cfg(feature = "shell")]
pub mod shell;
