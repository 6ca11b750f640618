//! The `home-agent` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use home_agent::config::Config;
use home_agent::shell::{self, StatusPage};
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};

/// mipcast home agent: accepts RFC 4285-authenticated Binding Updates for home addresses on
/// its home prefixes, keeps the binding cache (home address -> care-of address), answers proxy
/// ND for registered home addresses on the home link and tunnels their traffic (IPv6-in-IPv6
/// over kernel seg6 lightweight tunnels) to the care-of address, accepting reverse-tunnelled
/// traffic only from registered care-of addresses.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct HomeAgent;

impl cli::Daemon for HomeAgent {
    const NAME: &'static str = "home-agent";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, proxy-ND entries, the seg6 tunnel source and the proxy_ndp sysctl",
        ),
        (
            Capability::NetRaw,
            "the raw Mobility Header socket",
        ),
    ];
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        let config = Config::load(path).map_err(|e| e.to_string())?;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        let page: StatusPage = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(home_agent::status::table(&page))
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    cli::main::<HomeAgent>(Cli::parse().common)
}
