//! The `mma` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};
use mma::config::Config;
use mma::shell;

/// mipcast Mobility Management Agent: registers visiting terminals (authenticated Binding
/// Updates with the M flag), hands each the MMA address as care-of address, re-encapsulates
/// traffic from their home agents to each terminal's multicast group (S = MMA, G), forwards
/// to a new care-of address for a grace period after a terminal leaves, and relays the
/// terminals' reverse tunnels to their home agents.
#[derive(Parser)]
#[command(
    version,
    after_help = "Operator handoff advice: `mma advise --link NAME --reason REASON` (see `mma advise --help`)."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct Mma;

impl cli::Daemon for Mma {
    const NAME: &'static str = "mma";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, the seg6 tunnel source and the multicast routing socket (MRT6)",
        ),
        (
            Capability::NetRaw,
            "the raw Mobility Header and ICMPv6 (MRT6) sockets",
        ),
    ];
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        shell::load_config(path)
            .map(|(config, _)| config)
            .map_err(|e| e.to_string())
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        mma::status::render(json).map_err(|e| e.to_string())
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

/// Advise every terminal served on a site link to leave it: the running MMA sends each a
/// signed handoff advice (reason, avoid time). A terminal with another usable link moves at
/// once and keeps off this one for the avoid time; one without stays and reports it. Talks
/// to the daemon over `advice.control_socket` of the configuration.
#[derive(Parser)]
#[command(name = "mma advise")]
struct AdviseCli {
    /// Configuration file (for the control socket and link names).
    #[arg(
        short,
        long,
        value_name = "PATH",
        default_value = "/etc/mipcast/mma.yaml"
    )]
    config: PathBuf,
    /// A link name of `advice.links`, or a prefix (e.g. 2001:db8:10:1::/64).
    #[arg(long)]
    link: String,
    #[arg(long, value_parser = ["congestion", "maintenance", "admission-refused"])]
    reason: String,
    /// Seconds the terminals keep off the link (default: advice.avoid_secs).
    #[arg(long)]
    avoid_secs: Option<u16>,
}

fn advise(args: AdviseCli) -> ExitCode {
    let config: Config = match mipcast_daemon::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mma advise: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(socket) = config.advice.control_socket else {
        eprintln!(
            "mma advise: {} sets no advice.control_socket",
            args.config.display()
        );
        return ExitCode::FAILURE;
    };
    let request = serde_json::json!({ "advise": shell::AdviseRequest {
        link: args.link,
        reason: args.reason.replace('-', "_"),
        avoid_secs: args.avoid_secs,
    }});
    match mipcast_daemon::control::request(&socket, &request.to_string(), Duration::from_secs(5)) {
        Ok(reply) if reply.contains("\"error\"") => {
            eprintln!("mma advise: {reply}");
            ExitCode::FAILURE
        }
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mma advise: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "advise") {
        let args = std::iter::once("mma advise".into()).chain(std::env::args_os().skip(2));
        return advise(AdviseCli::parse_from(args));
    }
    cli::main::<Mma>(Cli::parse().common)
}
