//! `mobile-node`: the mipcast terminal daemon (CLI only; the logic is in the library).
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mobile_node::config::Config;
use mobile_node::shell::{self, Options};

/// mipcast mobile node: learns the site's MMA from Router Advertisements (MAP option), registers
/// the home address with the MMA and the home agent (or, in plain MIPv6 mode, its on-link
/// care-of address with the home agent), joins its own (MMA, group) channel on whichever access
/// link it selects, and installs the kernel tunnels that carry its home-address traffic.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (YAML).
    #[arg(short, long, default_value = "/etc/mipcast/mobile-node.yaml")]
    config: PathBuf,
    /// Load and validate the configuration, print the problems, and exit.
    #[arg(long)]
    check_config: bool,
    /// Log level or tracing filter (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
    /// On shutdown, leave routes, rules, addresses and nftables rules in place.
    #[arg(long)]
    keep_kernel_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the running daemon's state (attachment, links, registrations).
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_config {
        return match mipcast_daemon::config::load::<Config>(&cli.config) {
            Ok(_) => {
                println!("{}: ok", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Status { json }) = cli.command {
        return status(&cli.config, json);
    }
    if let Err(e) = mipcast_daemon::logging::init_tracing(&cli.log_level, cli.log_json) {
        eprintln!("mobile-node: {e}");
        return ExitCode::FAILURE;
    }
    match shell::run(Options { config: cli.config, keep_kernel_state: cli.keep_kernel_state }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mobile-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(config: &std::path::Path, json: bool) -> ExitCode {
    let listen = match shell::metrics_listener(config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let body = match mipcast_daemon::metrics::fetch(listen, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mobile-node status: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    let v: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mobile-node status: not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("mode           {}", s(&v["mode"]));
    println!("home address   {}", s(&v["home_address"]));
    println!("group          {}", s(&v["group"]));
    println!("attachment     {}", s(&v["attachment"]));
    println!("care-of        {}", s(&v["care_of_address"]));
    println!("\n{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}", "LINK", "UP", "SCORE", "QUALITY", "ADDRESS", "MMA");
    for l in v["links"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}",
            s(&l["name"]),
            s(&l["up"]),
            s(&l["score"]),
            s(&l["quality"]),
            s(&l["address"]),
            s(&l["router"]["mma"])
        );
    }
    println!("\n{:<28} {:<10} {:<8} {:>6} {:>9}", "PEER", "KIND", "STATE", "SEQ", "LIFETIME");
    for r in v["registrations"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<10} {:<8} {:>6} {:>9}",
            s(&r["peer"]),
            s(&r["request"]["kind"]),
            s(&r["state"]),
            s(&r["seq"]),
            s(&r["granted_s"])
        );
    }
    ExitCode::SUCCESS
}
