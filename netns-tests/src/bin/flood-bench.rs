//! Forged-BU flood benchmark: how a daemon under attack still serves a real terminal.
//!
//! ```text
//! cargo build --release -p home-agent -p mma -p mipcast-netns-tests
//! sudo target/release/flood-bench --seconds 30            # both daemons, a table
//! sudo target/release/flood-bench --seconds 2 --json      # what CI runs
//! ```
//! Options: `--seconds S` flood length per daemon (30), `--target ha|mma|both` (both),
//! `--interval-ms I` between legitimate registrations (100), `--senders N` flooding threads
//! (2), `--home-agent PATH`, `--mma PATH` (default: beside this binary), `--json`.
//!
//! Per daemon, in throwaway namespaces: an attacker on a link of its own sends Binding
//! Updates with random home addresses and a wrong key as fast as its threads can, while a
//! legitimate terminal on another link registers a new home address every interval and waits
//! for its BAck (1 s at most). The daemon runs at its default log level (info) with the
//! default `reply_rate_limit`. Reported: flood rate, the legitimate registrations' success
//! ratio (BAck 0 at all, and within 100 ms) and latency percentiles, replies the attacker got
//! (and the budget that bounds them), and the bytes the daemon logged during the flood.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mipcast_netns_tests::bench::{
    nth_address, scratch_with_key, sibling_binary, wait_listening, Cli,
};
use mipcast_netns_tests::mh_client::{Bu, MhClient, Reply};
use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::mh::bu_flags;
use serde_json::json;

const KEY: &[u8] = b"flood-bench key: 32 bytes long!!";
const WRONG_KEY: &[u8] = b"not the key, but just as long!!!";
const SPI: u32 = 1000;
/// The daemons' default `reply_rate_limit.per_source` (one /64 attacks): at most
/// `burst + per_second * seconds` replies can reach it.
const PER_SOURCE_PER_SECOND: f64 = 5.0;
const PER_SOURCE_BURST: f64 = 10.0;
const CLI: Cli = Cli {
    bin: "flood-bench",
    options: "[--seconds S] [--target ha|mma|both] [--interval-ms I] [--senders N] \
              [--home-agent PATH] [--mma PATH] [--json]",
};

struct Args {
    seconds: u64,
    targets: Vec<Kind>,
    interval: Duration,
    senders: usize,
    home_agent: PathBuf,
    mma: PathBuf,
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    HomeAgent,
    Mma,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 30,
        targets: vec![Kind::HomeAgent, Kind::Mma],
        interval: Duration::from_millis(100),
        senders: 2,
        home_agent: sibling_binary("home-agent"),
        mma: sibling_binary("mma"),
        json: false,
    };
    let mut it = std::env::args().skip(1).peekable();
    let mut pairs = Vec::new();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("usage: {} {}", CLI.bin, CLI.options);
                std::process::exit(0);
            }
            _ => {
                let value = it
                    .next()
                    .unwrap_or_else(|| CLI.usage(&format!("{flag} needs a value")));
                pairs.push((flag, value));
            }
        }
    }
    for (flag, value) in pairs {
        match flag.as_str() {
            "--seconds" => a.seconds = CLI.number::<u64>(&flag, &value).max(1),
            "--interval-ms" => {
                a.interval = Duration::from_millis(CLI.number::<u64>(&flag, &value).max(1))
            }
            "--senders" => a.senders = CLI.number::<usize>(&flag, &value).clamp(1, 64),
            "--home-agent" => a.home_agent = PathBuf::from(value),
            "--mma" => a.mma = PathBuf::from(value),
            "--target" => {
                a.targets = match value.as_str() {
                    "ha" => vec![Kind::HomeAgent],
                    "mma" => vec![Kind::Mma],
                    "both" => vec![Kind::HomeAgent, Kind::Mma],
                    _ => CLI.usage("--target is ha, mma or both"),
                }
            }
            _ => CLI.usage(&format!("unknown option {flag}")),
        }
    }
    a
}

/// One daemon set up in its namespaces, with its attacker's and terminal's.
struct Setup {
    name: &'static str,
    // Dropped last: the daemon goes first (fields drop in order).
    daemon: Daemon,
    log: PathBuf,
    dir: PathBuf,
    daemon_addr: Ipv6Addr,
    attacker_ns: Netns,
    attacker: Ipv6Addr,
    terminal_ns: Netns,
    terminal: Ipv6Addr,
    _others: Vec<Netns>,
    _daemon_ns: Netns,
}

fn setup_home_agent(path: &Path) -> Setup {
    let (ha, atk, mn) = (Netns::new("fha"), Netns::new("fatk"), Netns::new("fmn"));
    // This kernel has no dummy links: a veth pair with both ends here is the home link.
    ha.sh(
        "ip link add home0 type veth peer name home0p && ip link set home0 up && \
         ip link set home0p up && ip addr add 2001:db8:1::1/64 dev home0 nodad",
    );
    veth(
        &atk,
        "atk0",
        "2001:db8:2::9/64",
        &ha,
        "atk1",
        "2001:db8:2::1/64",
    );
    veth(
        &mn,
        "mn0",
        "2001:db8:3::9/64",
        &ha,
        "mn1",
        "2001:db8:3::1/64",
    );
    atk.sh("ip -6 route add default via 2001:db8:2::1");
    mn.sh("ip -6 route add default via 2001:db8:3::1");
    let (dir, key) = scratch_with_key("flood-bench-ha", KEY).expect("scratch directory");
    let config = dir.join("home-agent.yaml");
    std::fs::write(
        &config,
        format!(
            "home_link: {{ interface: home0, address: 2001:db8:1::1 }}\n\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - {{ spi: {SPI}, algorithm: hmac-sha256-128, key_file: {}, home_prefixes: [2001:db8:1::/64] }}\n\
             state: {{ file: {} }}\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("daemon.log");
    let daemon = Daemon(ha.spawn(
        path.to_str().expect("path"),
        &["-c", config.to_str().expect("path")],
        Some(&log),
    ));
    wait_listening(&ha, 9641, &log);
    Setup {
        name: "home-agent",
        daemon,
        log,
        dir,
        daemon_addr: "2001:db8:1::1".parse().unwrap(),
        attacker_ns: atk,
        attacker: "2001:db8:2::9".parse().unwrap(),
        terminal_ns: mn,
        terminal: "2001:db8:3::9".parse().unwrap(),
        _others: Vec::new(),
        _daemon_ns: ha,
    }
}

fn setup_mma(path: &Path) -> Setup {
    let (mma, ha, atk, mn) = (
        Netns::new("fmma"),
        Netns::new("fmha"),
        Netns::new("fmatk"),
        Netns::new("fmmn"),
    );
    veth(
        &ha,
        "e1",
        "2001:db8:2::1/64",
        &mma,
        "e0",
        "2001:db8:2::2/64",
    );
    veth(
        &mma,
        "e1",
        "2001:db8:4::1/64",
        &mn,
        "e0",
        "2001:db8:4::2/64",
    );
    veth(
        &mma,
        "e2",
        "2001:db8:5::1/64",
        &atk,
        "e0",
        "2001:db8:5::2/64",
    );
    mn.sh("ip -6 route add default via 2001:db8:4::1");
    atk.sh("ip -6 route add default via 2001:db8:5::1");
    let (dir, key) = scratch_with_key("flood-bench-mma", KEY).expect("scratch directory");
    let config = dir.join("mma.yaml");
    std::fs::write(
        &config,
        format!(
            "address: 2001:db8:2::2\nwan_interface: e0\nsite_interfaces: [e1, e2]\n\
             site_prefixes: [2001:db8:4::/64, 2001:db8:5::/64]\n\
             home_agents:\n  - address: 2001:db8:2::1\n    home_prefixes: [2001:db8:99::/64]\n\
             security_associations:\n  - spi: {SPI}\n    algorithm: hmac-sha256-128\n    key_file: {}\n    home_prefixes: [2001:db8:99::/64]\n\
             state:\n  file: {}\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("daemon.log");
    let daemon = Daemon(mma.spawn(
        path.to_str().expect("path"),
        &["-c", config.to_str().expect("path")],
        Some(&log),
    ));
    wait_listening(&mma, 9642, &log);
    Setup {
        name: "mma",
        daemon,
        log,
        dir,
        daemon_addr: "2001:db8:2::2".parse().unwrap(),
        attacker_ns: atk,
        attacker: "2001:db8:5::2".parse().unwrap(),
        terminal_ns: mn,
        terminal: "2001:db8:4::2".parse().unwrap(),
        _others: vec![ha],
        _daemon_ns: mma,
    }
}

/// The i-th BU of a legitimate terminal (a new home address each) or of the attacker.
fn bu(kind: Kind, i: u32, src: Ipv6Addr, key: &[u8]) -> Vec<u8> {
    let mut bu = match kind {
        Kind::HomeAgent => Bu {
            flags: bu_flags::ACK | bu_flags::HOME,
            lifetime: 100,
            ..Bu::new(
                1,
                nth_address("2001:db8:1::1:0".parse().unwrap(), i),
                src,
                SPI,
                key,
            )
        },
        Kind::Mma => Bu {
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime: 100,
            group: Some(nth_address("ff35::200:0:0:0".parse().unwrap(), i)),
            ..Bu::new(
                1,
                nth_address("2001:db8:99::1:0".parse().unwrap(), i),
                src,
                SPI,
                key,
            )
        },
    };
    bu.sequence = (i % 60_000) as u16 + 1;
    bu.bytes()
}

struct Result {
    target: &'static str,
    seconds: f64,
    flood_sent: u64,
    replies_to_attacker: u64,
    attacker_budget: f64,
    legit_sent: usize,
    legit_ok: usize,
    legit_within_100ms: usize,
    latencies_ms: Vec<f64>,
    log_bytes: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(kind: Kind, a: &Args) -> Result {
    let (path, setup): (&Path, fn(&Path) -> Setup) = match kind {
        Kind::HomeAgent => (&a.home_agent, setup_home_agent),
        Kind::Mma => (&a.mma, setup_mma),
    };
    if !path.exists() {
        CLI.usage(&format!(
            "{} not found: build it (cargo build --release -p home-agent -p mma) or pass its path",
            path.display()
        ));
    }
    let mut s = setup(path);
    let log_before = std::fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0);
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let replies = AtomicU64::new(0);
    let duration = Duration::from_secs(a.seconds);
    let started = Instant::now();
    // The attacker's socket and messages, and the terminal's socket, in their namespaces.
    let client = s.attacker_ns.enter(|| {
        MhClient::bind(s.attacker, s.daemon_addr, Duration::from_millis(200))
            .expect("attacker socket")
    });
    let forged: Vec<Vec<u8>> = (0..1024)
        .map(|i| bu(kind, 1_000_000 + i * 7919, s.attacker, WRONG_KEY))
        .collect();
    let terminal = s.terminal_ns.enter(|| {
        MhClient::bind(s.terminal, s.daemon_addr, Duration::from_millis(50))
            .expect("terminal socket")
    });
    let (latencies, legit_sent) = std::thread::scope(|scope| {
        // The attacker: its senders, and a thread counting what comes back to it.
        let (client, forged) = (&client, &forged);
        let (stop, sent, replies) = (&stop, &sent, &replies);
        for t in 0..a.senders {
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        if client.send(&forged[i % forged.len()]).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        i += a.senders;
                    }
                }
            });
        }
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(_)) = client.recv() {
                    replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // The terminal, in the foreground: one new home address every interval.
        let mut latencies = Vec::new();
        let mut n = 0u32;
        while started.elapsed() < duration {
            let tick = Instant::now();
            let msg = bu(kind, n, s.terminal, KEY);
            let seq = (n % 60_000) as u16 + 1;
            n += 1;
            if terminal.send(&msg).is_err() {
                latencies.push(None);
                continue;
            }
            let mut got = None;
            while tick.elapsed() < Duration::from_secs(1) {
                if let Ok(Some(Reply::Ack {
                    status: 0,
                    sequence,
                    ..
                })) = terminal.recv()
                {
                    if sequence == seq {
                        got = Some(tick.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                }
            }
            latencies.push(got);
            if let Some(rest) = a.interval.checked_sub(tick.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        stop.store(true, Ordering::Relaxed);
        (latencies, n as usize)
    });
    let seconds = started.elapsed().as_secs_f64();
    let log_bytes = std::fs::metadata(&s.log)
        .map(|m| m.len())
        .unwrap_or(0)
        .saturating_sub(log_before);
    let stopping = Instant::now();
    let exit = s
        .daemon
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(30));
    eprintln!(
        "{}: SIGTERM after the flood: exit {exit:?} in {:.2} s",
        s.name,
        stopping.elapsed().as_secs_f64()
    );
    if exit.is_none() {
        eprintln!(
            "{}",
            std::fs::read_to_string(&s.log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let _ = std::fs::remove_dir_all(&s.dir);
    let mut ok: Vec<f64> = latencies.iter().flatten().copied().collect();
    ok.sort_by(f64::total_cmp);
    Result {
        target: s.name,
        seconds,
        flood_sent: sent.load(Ordering::Relaxed),
        replies_to_attacker: replies.load(Ordering::Relaxed),
        attacker_budget: PER_SOURCE_BURST + PER_SOURCE_PER_SECOND * seconds,
        legit_sent,
        legit_ok: ok.len(),
        legit_within_100ms: ok.iter().filter(|&&l| l <= 100.0).count(),
        latencies_ms: ok,
        log_bytes,
    }
}

fn main() {
    mipcast_netns_tests::cleanup::on_signals();
    let a = args();
    if !mipcast_netns_tests::have_root() {
        CLI.usage("needs root (network namespaces)");
    }
    let results: Vec<Result> = a.targets.iter().map(|&k| run(k, &a)).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    if a.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "target": r.target,
                    "seconds": r.seconds,
                    "flood_bus_sent": r.flood_sent,
                    "flood_rate_per_s": r.flood_sent as f64 / r.seconds,
                    "legit_sent": r.legit_sent,
                    "legit_acked": r.legit_ok,
                    "legit_acked_within_100ms": r.legit_within_100ms,
                    "legit_success_ratio": r.legit_ok as f64 / r.legit_sent.max(1) as f64,
                    "legit_within_100ms_ratio": r.legit_within_100ms as f64 / r.legit_sent.max(1) as f64,
                    "latency_ms": {
                        "p50": percentile(&r.latencies_ms, 0.5),
                        "p90": percentile(&r.latencies_ms, 0.9),
                        "p99": percentile(&r.latencies_ms, 0.99),
                        "max": r.latencies_ms.last().copied().unwrap_or(f64::NAN),
                    },
                    "replies_to_attacker": r.replies_to_attacker,
                    "attacker_reply_budget": r.attacker_budget,
                    "log_bytes": r.log_bytes,
                    "log_bytes_per_minute": r.log_bytes as f64 * 60.0 / r.seconds,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "cpus": cpus, "senders": a.senders, "results": rows })
        );
        return;
    }
    println!(
        "flood-bench: {} s per daemon, {} flooding threads, a registration every {:?}, {cpus} CPUs",
        a.seconds, a.senders, a.interval
    );
    println!(
        "{:<11} {:>12} {:>14} {:>12} {:>8} {:>8} {:>8} {:>8} {:>16} {:>12}",
        "daemon",
        "flood BU/s",
        "legit ok",
        "<=100 ms",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "attacker replies",
        "log KiB/min"
    );
    for r in &results {
        let pct = |n: usize| 100.0 * n as f64 / r.legit_sent.max(1) as f64;
        println!(
            "{:<11} {:>12.0} {:>6}/{:<4}{:>3.0}% {:>11.1}% {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} (≤{:>5.0}) {:>12.1}",
            r.target,
            r.flood_sent as f64 / r.seconds,
            r.legit_ok,
            r.legit_sent,
            pct(r.legit_ok),
            pct(r.legit_within_100ms),
            percentile(&r.latencies_ms, 0.5),
            percentile(&r.latencies_ms, 0.9),
            percentile(&r.latencies_ms, 0.99),
            r.latencies_ms.last().copied().unwrap_or(f64::NAN),
            r.replies_to_attacker,
            r.attacker_budget,
            r.log_bytes as f64 / 1024.0 * 60.0 / r.seconds,
        );
    }
}
