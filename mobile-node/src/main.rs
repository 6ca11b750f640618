//! The `mobile-node` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};
use mobile_node::config::Config;
use mobile_node::shell;

/// mipcast mobile node: learns the site's MMA from Router Advertisements (MAP option), registers
/// the home address with the MMA and the home agent (or, in plain MIPv6 mode, its on-link
/// care-of address with the home agent), joins its own (MMA, group) channel on whichever access
/// link it selects, and installs the kernel tunnels that carry its home-address traffic. A move
/// inside a site is a multicast re-join only: no Binding Update leaves the terminal.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct MobileNode;

impl cli::Daemon for MobileNode {
    const NAME: &'static str = "mobile-node";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, the nftables rule and source-specific MLD joins",
        ),
        (
            Capability::NetRaw,
            "the raw Mobility Header and ICMPv6 (router advertisement) sockets",
        ),
    ];
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        mipcast_daemon::config::load(path).map_err(|e| e.to_string())
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        mobile_node::status::render(json).map_err(|e| e.to_string())
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    cli::main::<MobileNode>(Cli::parse().common)
}
