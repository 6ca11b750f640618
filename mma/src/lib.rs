//! mipcast Mobility Management Agent (MMA).
//!
//! - [`config`]: the `mma.yaml` settings and their validation.
//! - [`core`]: the sans-IO protocol core (registration policy, terminal to kernel mapping).
//! - [`shell`]: the tokio I/O shell that runs it (sockets, netlink, MRT6, signals, state).
//! - [`mrule`]: the multicast routing rule for a non-default MRT6 table.
//! - [`metrics`] and [`status`]: Prometheus metrics and the `/status` page.
pub mod config;
pub mod core;
pub mod metrics;
pub mod mrule;
pub mod shell;
pub mod status;
