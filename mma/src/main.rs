//! The `mma` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};
use mma::config::Config;
use mma::shell;

/// mipcast Mobility Management Agent: registers visiting terminals (authenticated Binding
/// Updates with the M flag), hands each the MMA address as care-of address, re-encapsulates
/// traffic from their home agents to each terminal's multicast group (S = MMA, G), forwards
/// to a new care-of address for a grace period after a terminal leaves, and relays the
/// terminals' reverse tunnels to their home agents.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct Mma;

impl cli::Daemon for Mma {
    const NAME: &'static str = "mma";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, the seg6 tunnel source and the multicast routing socket (MRT6)",
        ),
        (
            Capability::NetRaw,
            "the raw Mobility Header and ICMPv6 (MRT6) sockets",
        ),
    ];
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        shell::load_config(path)
            .map(|(config, _)| config)
            .map_err(|e| e.to_string())
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        mma::status::render(json).map_err(|e| e.to_string())
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    cli::main::<Mma>(Cli::parse().common)
}
