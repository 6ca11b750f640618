//! mipcast Mobility Management Agent (MMA).
//!
//! - [`config`]: the `mma.yaml` settings and their validation.
//! - [`core`]: the sans-IO protocol core (registration policy, terminal to kernel mapping).
//! - [`shell`]: the tokio I/O shell that runs it (sockets, netlink, MRT6, signals, state).
//! - [`journal`]: a terminal's record in the state journal.
//! - [`metrics`] and [`status`]: Prometheus metrics and the `/status` page.
#[cfg(feature = "shell")]
pub mod config;
pub mod core;
#[cfg(feature = "shell")]
pub mod journal;
#[cfg(feature = "shell")]
pub mod metrics;
#[cfg(feature = "shell")]
pub mod ro_shell;
#[cfg(feature = "shell")]
pub mod shell;
#[cfg(feature = "shell")]
pub mod status;
