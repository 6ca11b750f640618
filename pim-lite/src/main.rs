//! The `pim-lite` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};
use pim_lite::config::Config;
use pim_lite::shell;
use pim_lite::status::Status;

/// mipcast pim-lite: a minimal PIM-SSM router for a mipcast site.
///
/// On access interfaces it is the MLDv2 querier and sends router advertisements carrying the
/// site's MMA in the RFC 5380 MAP option; on core interfaces it speaks PIM-SSM (Hellos,
/// source-specific Join/Prune) with the other routers. It forwards (S,G) traffic through the
/// kernel's IPv6 multicast routing table (MRT6), installing each entry as soon as a listener
/// or a downstream Join asks for it.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct PimLite;

impl cli::Daemon for PimLite {
    const NAME: &'static str = "pim-lite";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "the multicast routing socket (MRT6) and its forwarding entries",
        ),
        (
            Capability::NetRaw,
            "the raw ICMPv6 (MLD, router advertisement) and PIM sockets",
        ),
    ];
    const SECURITY_ASSOCIATIONS: bool = false;
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        shell::load_config(path).map_err(|e| e.to_string())
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        let status: Status = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(status.table())
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    cli::main::<PimLite>(Cli::parse().common)
}
