//! Minimal PIM-SSM router for a mipcast site.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pim_lite::shell::{self, Options};
use pim_lite::status::Status;

/// mipcast pim-lite: a minimal PIM-SSM router for a mipcast site.
///
/// On access interfaces it is the MLDv2 querier and sends router advertisements carrying the
/// site's MMA in the RFC 5380 MAP option; on core interfaces it speaks PIM-SSM (Hellos,
/// source-specific Join/Prune) with the other routers. It forwards (S,G) traffic through the
/// kernel's IPv6 multicast routing table (MRT6), installing each entry as soon as a listener
/// or a downstream Join asks for it.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (YAML).
    #[arg(short, long, default_value = "/etc/mipcast/pim-lite.yaml", global = true)]
    config: PathBuf,
    /// Validate the configuration file and exit (status 0 when it is usable).
    #[arg(long)]
    check_config: bool,
    /// Log filter: error, warn, info, debug, trace or a tracing directive such as
    /// `info,pim_lite=debug`. A non-empty RUST_LOG replaces it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
    /// Accepted for symmetry with the other mipcast daemons; has no effect: the kernel
    /// flushes a multicast routing table's MIFs and MFC entries when its daemon's socket
    /// closes, so MRT6 state cannot be kept.
    #[arg(long)]
    keep_kernel_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the running daemon's interfaces, neighbours, listeners and (S,G) table (fetched
    /// from /status on the metrics listener of the configuration).
    Status {
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match shell::load_config(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Status { json }) = cli.command {
        return status(config.metrics.listen, json);
    }
    if cli.check_config {
        println!("{}: configuration OK", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = mipcast_daemon::logging::init_tracing(&cli.log_level, cli.log_json) {
        eprintln!("pim-lite: {e}");
        return ExitCode::FAILURE;
    }
    let opts = Options {
        config_path: cli.config,
        keep_kernel_state: cli.keep_kernel_state,
    };
    match shell::run(config, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pim-lite: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(addr: std::net::SocketAddr, json: bool) -> ExitCode {
    let body = match mipcast_daemon::metrics::fetch(addr, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("pim-lite status: {e} (is pim-lite running?)");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<Status>(&body) {
        Ok(s) => {
            print!("{}", s.table());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pim-lite status: unexpected /status document: {e}");
            ExitCode::FAILURE
        }
    }
}
