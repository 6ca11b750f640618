//! Mobile node (terminal) binding client for mipcast.
use clap::Parser;

/// mipcast mobile node: learns the site's MMA from router advertisements, registers with the
/// MMA and the home agent, and joins its own multicast group on whatever link it is on.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("mobile-node: not yet implemented (see issue 5)");
    std::process::exit(2);
}
