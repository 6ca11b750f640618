//! RFC 6275 home agent for mipcast.
use clap::Parser;

/// mipcast home agent: keeps the binding cache (home address -> care-of address), answers
/// proxy ND for home addresses on the home link and tunnels their traffic (IPv6-in-IPv6 over
/// kernel seg6 lightweight tunnels) to the registered care-of address.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("home-agent: not yet implemented (see issue 3)");
    std::process::exit(2);
}
