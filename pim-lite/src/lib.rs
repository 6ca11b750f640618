//! pim-lite: a minimal PIM-SSM router for a mipcast site.
//!
//! - [`core`]: the protocol state machine (MLDv2 querier, PIM-SSM, router advertisements,
//!   MFC decisions), pure and clock-free.
//! - [`shell`]: the tokio I/O around it (raw sockets, MRT6, netlink RPF lookups, metrics).
//! - [`config`], [`status`], [`metrics`]: configuration, `/status` and Prometheus.
//!
//! Without the default `shell` feature the crate is the core alone (and `status`, the
//! values it reports): no tokio, netlink, sockets or HTTP, as the simulation harness builds it.

#[cfg(feature = "shell")]
pub mod config;
pub mod core;
#[cfg(feature = "shell")]
mod counters;
#[cfg(feature = "shell")]
pub mod metrics;
#[cfg(feature = "shell")]
mod settings;
#[cfg(feature = "shell")]
pub mod shell;
pub mod status;
