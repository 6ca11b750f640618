//! The `home-agent` binary: command line only; everything else is in the library.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use home_agent::config::{Config, DEFAULT_PATH};
use home_agent::shell::{self, Options};
use home_agent::status;

/// mipcast home agent: accepts RFC 4285-authenticated Binding Updates for home addresses on
/// its home prefixes, keeps the binding cache (home address -> care-of address), answers proxy
/// ND for registered home addresses on the home link and tunnels their traffic (IPv6-in-IPv6
/// over kernel seg6 lightweight tunnels) to the care-of address, accepting reverse-tunnelled
/// traffic only from registered care-of addresses.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (YAML; see configs/home-agent.yaml).
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_PATH, global = true)]
    config: PathBuf,
    /// Validate the configuration (and read the key files), print the result and exit.
    #[arg(long)]
    check_config: bool,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive (RUST_LOG wins).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log one JSON object per line instead of text.
    #[arg(long)]
    log_json: bool,
    /// On SIGTERM/SIGINT, leave routes, rules and proxy-ND entries in the kernel (for a
    /// restart without traffic loss); the next start reconciles them.
    #[arg(long)]
    keep_kernel_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the running daemon's bindings (HoA, CoA, lifetime left, sequence number).
    Status {
        /// Print the JSON the daemon serves instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = config.check() {
        eprintln!("{}: {e}", cli.config.display());
        return ExitCode::FAILURE;
    }
    if let Some(Command::Status { json }) = cli.command {
        return match status::status(config.metrics.listen, json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("home-agent status: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check_config {
        println!("{}: configuration OK", cli.config.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = mipcast_daemon::logging::init_tracing(&cli.log_level, cli.log_json) {
        eprintln!("home-agent: {e}");
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
            eprintln!("home-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
