//! The daemons' HTTP endpoint: `/metrics` (OpenMetrics to scrapers that accept it, such as
//! Prometheus; the classic text format 0.0.4 to the others, such as promtool and curl), `/healthz` and
//! daemon-specific JSON pages, plus the small client their `status` subcommands use.
//!
//! The daemon builds its own `prometheus_client::registry::Registry`, registers its metrics
//! (and [`register_build_info`]), then freezes it in an `Arc`: metrics are updated through
//! their own handles, so the registry never needs a lock after startup.

mod fetch;
mod server;
pub mod signalling;
mod text004;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use fetch::{fetch, FetchError};
pub use server::{MetricsServer, OPENMETRICS_CONTENT_TYPE};
pub use text004::TEXT_CONTENT_TYPE;

/// Registers `build_info{daemon, version, commit} 1` (an OpenMetrics info metric).
///
/// `version` is the daemon's `env!("CARGO_PKG_VERSION")`. The commit is taken from the
/// `MIPCAST_GIT_COMMIT` environment variable at build time, `unknown` when it was not set.
pub fn register_build_info(registry: &mut Registry, daemon: &str, version: &str) {
    let commit = option_env!("MIPCAST_GIT_COMMIT").unwrap_or("unknown");
    let labels = vec![
        ("daemon", daemon.to_owned()),
        ("version", version.to_owned()),
        ("commit", commit.to_owned()),
    ];
    registry.register(
        "build",
        "Daemon name, version and source commit",
        Info::new(labels),
    );
}
