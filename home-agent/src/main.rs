//! The `home-agent` binary: command line only; everything else is in the library.
use std::process::ExitCode;

use clap::Parser;
use home_agent::agent::Cli as Agent;
use home_agent::config::Config;
use mipcast_daemon::cli::{self, CommonArgs};

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

fn main() -> ExitCode {
    cli::main::<Agent<Config>>(Cli::parse().common)
}
