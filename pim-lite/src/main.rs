//! Minimal PIM-SSM router for a mipcast site.
use clap::Parser;

/// mipcast pim-lite: MLDv2 querier on access links, PIM source-specific Join/Prune between
/// routers, forwarding through the kernel's IPv6 multicast routing table, and router
/// advertisements carrying the MMA's address.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("pim-lite: not yet implemented (see issue 6)");
    std::process::exit(2);
}
