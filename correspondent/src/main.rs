//! The `correspondent` binary: command line only; everything else is in the library.
use std::process::ExitCode;

use clap::Parser;
use correspondent::config::Config;
use home_agent::agent::Cli as Agent;
use mipcast_daemon::cli::{self, CommonArgs};

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

fn main() -> ExitCode {
    cli::main::<Agent<Config>>(Cli::parse().common)
}
