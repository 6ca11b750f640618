//! mipcast home agent (RFC 6275 home registrations, RFC 4285 authentication) over kernel seg6
//! tunnels: the binding registrar and its mapping to kernel objects ([`core`], pure), the
//! tokio shell that runs it ([`shell`]), configuration, metrics and the `status` subcommand.
#![forbid(unsafe_code)]

#[cfg(feature = "shell")]
pub mod agent;
#[cfg(feature = "shell")]
pub mod config;
pub mod core;
#[cfg(feature = "shell")]
pub mod metrics;
#[cfg(feature = "shell")]
pub mod sections;
#[cfg(feature = "shell")]
pub mod shell;
pub mod table;
