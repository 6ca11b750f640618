//! The command line every mipcast daemon shares, and the `main` that runs it.
//!
//! Each daemon's binary is a `#[derive(Parser)]` struct whose doc comment says what the daemon
//! is, flattening [`CommonArgs`], and a `main` that calls [`main`] with its [`Daemon`]
//! implementation. One shape for all four means one set of flags for operators to learn.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::caps::Capability;
use crate::config::sa::SaAlgorithm;

/// Flags and the subcommand shared by home-agent, mma, mobile-node and pim-lite.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Configuration file (YAML; a documented example of each daemon's is in configs/).
    /// Default: /etc/mipcast/<daemon>.yaml.
    #[arg(short, long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the configuration (key files included), print the result and exit: status 0
    /// when it is usable, 1 with every problem as file:line:column: field: message.
    #[arg(long)]
    pub check_config: bool,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive such as
    /// `info,mma=debug`. A non-empty RUST_LOG replaces it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log one JSON object per line instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// On SIGTERM/SIGINT leave the routes, rules, proxy-ND entries, addresses and nftables
    /// rules the daemon installed (the next start reconciles them). Multicast forwarding
    /// entries always go: the kernel flushes them when the daemon's MRT6 socket closes.
    #[arg(long)]
    pub keep_kernel_state: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show the running daemon's state as a table, fetched from /status on the metrics
    /// listener named in the configuration.
    Status {
        /// Print the JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a security-association key file: random bytes from the kernel (as long as the
    /// algorithm's hash output), written as hex to a new file with mode 600. An existing
    /// file is never overwritten. Missing directories are created (mode 700). Copy the file
    /// to the peer that shares the association (mobile node and home agent or MMA).
    /// pim-lite has no security associations and refuses it.
    Keygen {
        /// The key file to create, as named by a `key_file` in the configuration.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The association's algorithm (sets the key length).
        #[arg(long, value_enum, default_value = "hmac-sha256-128")]
        algorithm: SaAlgorithm,
    },
}

/// What `run` needs besides the configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_path: PathBuf,
    pub keep_kernel_state: bool,
}

/// One daemon, as the shared `main` sees it.
pub trait Daemon {
    /// The binary's name, used in messages and the default configuration path.
    const NAME: &'static str;
    /// Whether the daemon's configuration holds security associations (key files), i.e.
    /// whether `keygen` makes sense for it.
    const SECURITY_ASSOCIATIONS: bool = true;
    /// The capabilities `run` needs and what for; checked before `run`, so a daemon started
    /// without one names it.
    const CAPABILITIES: &'static [(Capability, &'static str)];
    type Config;
    /// Loads and fully validates the configuration (key files included); the error is the
    /// complete message to print.
    fn load(path: &Path) -> Result<Self::Config, String>;
    /// Where the daemon serves /metrics, /healthz and /status.
    fn metrics_listen(config: &Self::Config) -> SocketAddr;
    /// The /status JSON document as a readable table.
    fn status_table(json: &str) -> Result<String, String>;
    /// Runs until SIGTERM/SIGINT; the error is the complete message to print.
    fn run(config: Self::Config, options: RunOptions) -> Result<(), String>;
}

/// Parses nothing (the caller did), then: `keygen`, `status`, `--check-config`, or run the
/// daemon.
pub fn main<D: Daemon>(args: CommonArgs) -> ExitCode {
    if let Some(Command::Keygen { path, algorithm }) = &args.command {
        return keygen::<D>(path, *algorithm);
    }
    if D::SECURITY_ASSOCIATIONS {
        crate::config::set_keygen_program(D::NAME);
    }
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from(format!("/etc/mipcast/{}.yaml", D::NAME)));
    let config = match D::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        Some(Command::Status { json }) => return status::<D>(D::metrics_listen(&config), json),
        Some(Command::Keygen { .. }) | None => {}
    }
    if args.check_config {
        println!("{}: configuration OK", path.display());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = crate::logging::init_tracing(&args.log_level, args.log_json) {
        eprintln!("{}: {e}", D::NAME);
        return ExitCode::FAILURE;
    }
    if let Err(e) =
        crate::caps::effective().and_then(|eff| crate::caps::check(D::NAME, eff, D::CAPABILITIES))
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let options = RunOptions {
        config_path: path,
        keep_kernel_state: args.keep_kernel_state,
    };
    match D::run(config, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{}: {e}", D::NAME);
            ExitCode::FAILURE
        }
    }
}

/// `keygen` runs before (and without) the configuration: it makes the files a configuration
/// that does not load yet is missing.
fn keygen<D: Daemon>(path: &Path, algorithm: SaAlgorithm) -> ExitCode {
    if !D::SECURITY_ASSOCIATIONS {
        eprintln!(
            "{} keygen: {} has no security associations; key files are made with `home-agent keygen`, `mma keygen` or `mobile-node keygen`",
            D::NAME,
            D::NAME
        );
        return ExitCode::from(2);
    }
    match crate::config::keygen(path, algorithm) {
        Ok(len) => {
            println!(
                "{}: new {}-byte {} key (mode 600)",
                path.display(),
                len,
                algorithm.name()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} keygen: {e}", D::NAME);
            ExitCode::FAILURE
        }
    }
}

fn status<D: Daemon>(listen: SocketAddr, json: bool) -> ExitCode {
    let body = match crate::metrics::fetch(listen, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{} status: {e} (is {} running?)", D::NAME, D::NAME);
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", body.trim_end());
        return ExitCode::SUCCESS;
    }
    match D::status_table(&body) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} status: unexpected /status document: {e}", D::NAME);
            ExitCode::FAILURE
        }
    }
}
