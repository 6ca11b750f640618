//! The `correspondent` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use correspondent::config::Config;
use correspondent::shell::{self, StatusPage};
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};

/// mipcast correspondent agent (route optimisation without Mobile IPv6 extension headers):
/// runs on a correspondent host or its first router. Accepts RFC 4285-authenticated Binding
/// Updates (no H flag) from the configured MMAs for the home prefixes each may bind, keeps the
/// binding cache (home address -> MMA), and per binding tunnels traffic for the home address
/// straight to the MMA (kernel seg6 encapsulation, one segment) and decapsulates the MMA's
/// tunnels, so applications keep using the home address unmodified. Bindings expire unless
/// refreshed; SIGTERM removes what was installed, SIGHUP reloads the MMAs and rate limits.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct Correspondent;

impl cli::Daemon for Correspondent {
    const NAME: &'static str = "correspondent";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules and the seg6 tunnel source",
        ),
        (Capability::NetRaw, "the raw Mobility Header socket"),
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
        Ok(correspondent::status::table(&page))
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    cli::main::<Correspondent>(Cli::parse().common)
}
