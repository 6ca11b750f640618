//! Mobility Management Agent for mipcast.
use clap::Parser;

/// mipcast Mobility Management Agent: registers visiting terminals, hands each a care-of
/// address at the MMA and re-encapsulates their traffic towards the terminal's EUI-64-derived
/// multicast group.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("mma: not yet implemented (see issue 4)");
    std::process::exit(2);
}
