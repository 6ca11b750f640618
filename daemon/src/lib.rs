//! Shared plumbing for the mipcast daemons (home-agent, mma, mobile-node, pim-lite): YAML
//! configuration with located errors, the Prometheus/JSON HTTP endpoint, tracing setup, Unix
//! signals, atomically written state files and an injectable clock.
//!
//! Nothing here knows about Mobile IPv6: protocol logic lives in the daemons and the wire crate.

pub mod caps;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod corrupt;
pub mod driver;
pub mod logging;
pub mod logsummary;
pub mod metrics;
pub mod notify;
pub mod signals;
pub mod state;
pub mod status;
