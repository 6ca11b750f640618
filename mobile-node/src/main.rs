//! The `mobile-node` binary: command line only; everything else is in the library.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mipcast_daemon::caps::Capability;
use mipcast_daemon::cli::{self, CommonArgs, RunOptions};
use mobile_node::config::Config;
use mobile_node::shell;

/// mipcast mobile node: learns the site's MMA from Router Advertisements (MAP option), registers
/// the home address with the MMA and the home agent (or, in plain MIPv6 mode, its on-link
/// care-of address with the home agent), joins its own (MMA, group) channel on whichever access
/// link it selects, and installs the kernel tunnels that carry its home-address traffic. A move
/// inside a site is a multicast re-join only: no Binding Update leaves the terminal.
#[derive(Parser)]
#[command(
    version,
    after_help = "Link quality from outside: `mobile-node quality set LINK N` (see `mobile-node quality --help`)."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

struct MobileNode;

impl cli::Daemon for MobileNode {
    const NAME: &'static str = "mobile-node";
    const CAPABILITIES: &'static [(Capability, &'static str)] = &[
        (
            Capability::NetAdmin,
            "routes, policy rules, the nftables rule and source-specific MLD joins",
        ),
        (
            Capability::NetRaw,
            "the raw Mobility Header and ICMPv6 (router advertisement) sockets",
        ),
    ];
    type Config = Config;

    fn load(path: &Path) -> Result<Config, String> {
        mipcast_daemon::config::load(path).map_err(|e| e.to_string())
    }

    fn metrics_listen(config: &Config) -> SocketAddr {
        config.metrics.listen
    }

    fn status_table(json: &str) -> Result<String, String> {
        mobile_node::status::render(json).map_err(|e| e.to_string())
    }

    fn run(config: Config, options: RunOptions) -> Result<(), String> {
        shell::run(config, options).map_err(|e| e.to_string())
    }
}

/// Feed link quality to the running mobile node over its `control_socket`: for tests and
/// external agents (a radio daemon). The reading is smoothed like a quality file's; the last
/// reading of either source wins.
#[derive(Parser)]
#[command(name = "mobile-node quality")]
struct QualityCli {
    /// Configuration file (for the control socket).
    #[arg(
        short,
        long,
        value_name = "PATH",
        default_value = "/etc/mipcast/mobile-node.yaml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: QualityCommand,
}

#[derive(clap::Subcommand)]
enum QualityCommand {
    /// Set the quality of LINK (an interface of the configuration) to N (0-100; 0 makes the
    /// link unusable at once), or `none` to forget the reading.
    Set {
        link: String,
        #[arg(value_name = "N")]
        value: String,
    },
}

fn quality(args: QualityCli) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("mobile-node quality: {msg}");
        ExitCode::FAILURE
    };
    let QualityCommand::Set { link, value } = args.command;
    let value = match value.as_str() {
        "none" => None,
        v => match v.parse::<u8>() {
            Ok(n) if n <= 100 => Some(n),
            _ => return fail(format!("{v:?} is not a quality 0-100 or `none`")),
        },
    };
    let config: Config = match mipcast_daemon::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let Some(socket) = config.control_socket else {
        return fail(format!("{} sets no control_socket", args.config.display()));
    };
    let request = shell::QualityRequest {
        quality: shell::QualitySet { link, value },
    };
    let line = match serde_json::to_string(&request) {
        Ok(l) => l,
        Err(e) => return fail(e.to_string()),
    };
    match mipcast_daemon::control::request(&socket, &line, Duration::from_secs(5)) {
        Ok(reply) if reply.contains("\"error\"") => fail(reply),
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "quality") {
        let args = std::iter::once("mobile-node quality".into()).chain(std::env::args_os().skip(2));
        return quality(QualityCli::parse_from(args));
    }
    cli::main::<MobileNode>(Cli::parse().common)
}
