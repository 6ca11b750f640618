//! Mobility Management Agent for mipcast.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mma::config::{Config, DEFAULT_CONFIG_PATH};
use mma::shell::{self, Options};

/// mipcast Mobility Management Agent: registers visiting terminals (authenticated Binding
/// Updates with the M flag), hands each the MMA address as care-of address, re-encapsulates
/// traffic from their home agents to each terminal's multicast group (S = MMA, G), forwards
/// to a new care-of address for a grace period after a terminal leaves, and relays the
/// terminals' reverse tunnels to their home agents.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Check the configuration (including key files) and exit.
    #[arg(long)]
    check_config: bool,
    /// Log filter: error, warn, info, debug, trace, or an EnvFilter directive (RUST_LOG wins).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
    /// On shutdown, leave the routes and rules in the kernel (MFC entries always go with the
    /// multicast routing socket; a restart re-adds them).
    #[arg(long)]
    keep_kernel_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the running daemon's terminals (fetched from its metrics listener).
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Status { json }) = cli.command {
        return status(&cli.config, json);
    }
    let config = match shell::load_config(&cli.config) {
        Ok((config, _)) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = mipcast_daemon::logging::init_tracing(&cli.log_level, cli.log_json) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let options = Options {
        config_path: cli.config,
        keep_kernel_state: cli.keep_kernel_state,
    };
    match shell::run(config, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mma: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(path: &std::path::Path, json: bool) -> ExitCode {
    let config: Config = match mipcast_daemon::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let body = match mipcast_daemon::metrics::fetch(config.metrics.listen, "/status") {
        Ok(body) => body,
        Err(e) => {
            eprintln!("mma status: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    match mma::status::render(&body) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mma status: unreadable answer: {e}");
            ExitCode::FAILURE
        }
    }
}
