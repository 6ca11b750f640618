//! pim-lite: a minimal PIM-SSM router for a mipcast site.
//!
//! - [`core`]: the protocol state machine (MLDv2 querier, PIM-SSM, router advertisements,
//!   MFC decisions), pure and clock-free.
//! - [`shell`]: the tokio I/O around it (raw sockets, MRT6, netlink RPF lookups, metrics).
//! - [`config`], [`status`], [`metrics`]: configuration, `/status` and Prometheus.

pub mod config;
pub mod core;
pub mod metrics;
pub mod shell;
pub mod status;
