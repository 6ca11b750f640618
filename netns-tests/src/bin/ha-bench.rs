//! Home agent benchmark: Binding Update → Binding Acknowledgement throughput and daemon memory
//! at several table sizes, the state file's size and the restart time, in throwaway
//! namespaces.
//!
//! ```text
//! cargo build --release -p home-agent -p mipcast-netns-tests
//! sudo target/release/ha-bench --steps 10000,50000,100000 [--json]
//! ```
//! Options: `--steps N,N,...` table sizes (10000,50000,100000; `--bindings N` is one step),
//! `--window W` BUs in flight (128), `--coas C` distinct care-of addresses (16),
//! `--daemon PATH` (default: `home-agent` beside this binary), `--proxy user|kernel` (the
//! home link's neighbour proxy, default user: kernel is the per-address proxy entries, for a
//! comparison), `--json`.
//!
//! The client keeps W BUs in flight over a raw Mobility Header socket and counts BAcks. Each
//! step starts from an empty table: register N, refresh N (no kernel change), RSS, deregister
//! N (the daemon's CPU time per BU of each phase, user + system from `/proc/PID/stat`, is
//! printed beside the rates: unlike them it does not depend on what else the machine runs;
//! and the share of the phase the daemon was ready but waiting for a CPU, from
//! `/proc/PID/schedstat`).
//! Then the largest step is registered once more, the daemon killed (-9) and started
//! again: the time until it serves again (bindings restored from the state file, kernel
//! reconciled, file compacted) is `restart_restore_s`, and the compacted file's size is
//! `state_file_bytes` (`journal_bytes_before_compaction`: what the journal had grown to). RSS per binding = (RSS with N − RSS idle) / N.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mipcast_netns_tests::bench::{
    cpu_seconds, nth_address, pipeline, rss_kib, sched_ns, scratch_with_key, sibling_binary,
    wait_listening, Cli,
};
use mipcast_netns_tests::mh_client::{Bu, MhClient};
use mipcast_netns_tests::{veth, Daemon, Netns};

const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);
const KEY: &[u8] = b"benchmark key, not hex, 32 bytes";
const SPI: u32 = 1000;
const CLI: Cli = Cli {
    bin: "ha-bench",
    options: "[--steps N,N,...] [--bindings N] [--window W] [--coas C] [--daemon PATH] [--proxy user|kernel] [--json]",
};

struct Args {
    steps: Vec<u32>,
    json: bool,
    proxy: String,
    window: u32,
    coas: u32,
    daemon: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        steps: vec![10_000, 50_000, 100_000],
        json: false,
        proxy: "user".into(),
        window: 128,
        coas: 16,
        daemon: sibling_binary("home-agent"),
    };
    let (pairs, switches) = CLI.pairs_and_switches(&["--json"]);
    a.json = !switches.is_empty();
    for (flag, value) in pairs {
        match flag.as_str() {
            "--steps" => a.steps = CLI.steps(&flag, &value),
            "--bindings" => a.steps = vec![CLI.number::<u32>(&flag, &value).max(1)],
            "--window" => a.window = CLI.number::<u32>(&flag, &value).max(1),
            "--coas" => a.coas = CLI.number::<u32>(&flag, &value).clamp(1, 65535),
            "--daemon" => a.daemon = PathBuf::from(&value),
            "--proxy" if value == "user" || value == "kernel" => a.proxy = value,
            _ => CLI.usage(&format!("unknown option {flag}")),
        }
    }
    a
}

fn hoa(i: u32) -> Ipv6Addr {
    nth_address(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, 0), i)
}

fn coa(i: u32, coas: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, (1 + i % coas) as u16)
}

fn bu(i: u32, coas: u32, seq: u16, lifetime: u16) -> Vec<u8> {
    Bu {
        flags: 0xc000,
        lifetime,
        alternate_coa: Some(coa(i, coas)),
        ..Bu::new(seq, hoa(i), SRC, SPI, KEY)
    }
    .bytes()
}

struct Step {
    bindings: u32,
    register_per_s: f64,
    refresh_per_s: f64,
    deregister_per_s: f64,
    /// The daemon's CPU time (user + system) per BU, register / refresh / deregister, µs.
    cpu_us: [f64; 3],
    /// Share of each phase's time the daemon was ready to run but waited for a CPU.
    cpu_wait: [f64; 3],
    rss_kib: u64,
    rss_per_binding_bytes: f64,
    /// BUs not answered with BAck 0 in the step (all phases).
    not_accepted: u32,
}

struct Report {
    daemon: &'static str,
    proxy: String,
    window: u32,
    coas: u32,
    steps: Vec<Step>,
    rss_idle_kib: u64,
    state_file_bytes: u64,
    journal_bytes: u64,
    restart_bindings: u32,
    restart_restore_s: f64,
    load_average: String,
}

fn main() {
    mipcast_netns_tests::cleanup::on_signals();
    let a = args();
    if !nix::unistd::geteuid().is_root() {
        CLI.usage("needs root (network namespaces)");
    }
    if !a.daemon.exists() {
        CLI.usage(&format!(
            "{} not found: build it first (cargo build --release -p home-agent) or pass --daemon",
            a.daemon.display()
        ));
    }
    let (ha, cn, mn) = (Netns::new("bha"), Netns::new("bcn"), Netns::new("bmn"));
    veth(
        &cn,
        "cn0",
        "2001:db8:1::2/64",
        &ha,
        "home0",
        "2001:db8:1::1/64",
    );
    veth(
        &mn,
        "wan0",
        "2001:db8:2::9/64",
        &ha,
        "wan1",
        "2001:db8:2::1/64",
    );
    ha.sh("ip -6 route add 2001:db8:3::/64 via 2001:db8:2::9");
    mn.sh("ip -6 route add default via 2001:db8:2::1");

    let (dir, key) = scratch_with_key("ha-bench", KEY).expect("scratch directory");
    let config = dir.join("home-agent.yaml");
    let state = dir.join("state.journal");
    std::fs::write(
        &config,
        format!(
            "home_link: {{ interface: home0, address: {HA}, proxy: {} }}\n\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - {{ spi: {SPI}, algorithm: hmac-sha256-128, key_file: {}, home_prefixes: [2001:db8:1::/64] }}\n\
             state: {{ file: {} }}\n",
            a.proxy,
            key.display(),
            state.display()
        ),
    )
    .expect("config");
    let log = dir.join("home-agent.log");
    let start = || {
        let d = Daemon(ha.spawn(
            a.daemon.to_str().expect("path"),
            &["-c", config.to_str().expect("path"), "--log-level", "warn"],
            Some(&log),
        ));
        let t = Instant::now();
        wait_listening(&ha, 9641, &log);
        (d, t.elapsed().as_secs_f64())
    };
    let (mut daemon, _) = start();
    let pid = daemon.0.id();
    let rss_idle = rss_kib(pid);
    let max = a.steps.iter().copied().max().unwrap_or(1);

    let mut steps = Vec::new();
    for &n in &a.steps {
        let step = mn.enter(|| {
            let client = MhClient::bind(SRC, HA, Duration::from_secs(2)).expect("raw MH socket");
            let mut rates = Vec::new();
            let mut cpu_us = [0.0; 3];
            let mut cpu_wait = [0.0; 3];
            let mut not_accepted = 0;
            let mut rss = 0;
            for (phase, (name, seq, lifetime)) in [
                ("register", 1u16, 900u16),
                ("refresh", 2, 900),
                ("deregister", 3, 0),
            ]
            .into_iter()
            .enumerate()
            {
                let cpu = cpu_seconds(pid);
                let (_, waited) = sched_ns(pid);
                let t = pipeline(&client, n, a.window, |i| bu(i, a.coas, seq, lifetime))
                    .expect("send BU");
                cpu_us[phase] = (cpu_seconds(pid) - cpu) * 1e6 / f64::from(n);
                cpu_wait[phase] = sched_ns(pid).1.saturating_sub(waited) as f64 / 1e9 / t.secs;
                not_accepted += n - t.accepted;
                rates.push(f64::from(n) / t.secs);
                if name == "refresh" {
                    rss = rss_kib(pid);
                }
                eprintln!(
                    "{n:>7} {name:<10} {:>8.0} BU/s, daemon CPU {:.1} µs/BU, waited for a CPU {:.0} % of the time ({} not accepted)",
                    f64::from(n) / t.secs,
                    cpu_us[phase],
                    cpu_wait[phase] * 100.0,
                    n - t.accepted
                );
            }
            Step {
                bindings: n,
                register_per_s: rates[0],
                refresh_per_s: rates[1],
                deregister_per_s: rates[2],
                cpu_us,
                cpu_wait,
                rss_kib: rss,
                rss_per_binding_bytes: rss.saturating_sub(rss_idle) as f64 * 1024.0 / f64::from(n),
                not_accepted,
            }
        });
        steps.push(step);
    }

    // Restart: the largest table, kill -9, start again.
    mn.enter(|| {
        let client = MhClient::bind(SRC, HA, Duration::from_secs(2)).expect("raw MH socket");
        pipeline(&client, max, a.window, |i| bu(i, a.coas, 4, 900)).expect("send BU")
    });
    let journal_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    let _ = daemon.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    let (mut daemon, restart_restore_s) = start();
    // The restart compacted the journal: now one record per binding.
    let state_file_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    let restored = ha.sh("ip -6 route show proto 158 | grep -c encap || true");
    eprintln!(
        "restart: {restart_restore_s:.2} s, {} tunnel routes",
        restored.trim()
    );
    let _ = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    let report = Report {
        daemon: "home-agent",
        proxy: a.proxy.clone(),
        window: a.window,
        coas: a.coas,
        steps,
        rss_idle_kib: rss_idle,
        state_file_bytes,
        journal_bytes,
        restart_bindings: max,
        restart_restore_s,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    if a.json {
        let steps: Vec<serde_json::Value> = report
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "bindings": s.bindings,
                    "register_per_s": s.register_per_s,
                    "refresh_per_s": s.refresh_per_s,
                    "deregister_per_s": s.deregister_per_s,
                    "register_cpu_us": s.cpu_us[0],
                    "refresh_cpu_us": s.cpu_us[1],
                    "deregister_cpu_us": s.cpu_us[2],
                    "register_cpu_wait_share": s.cpu_wait[0],
                    "refresh_cpu_wait_share": s.cpu_wait[1],
                    "deregister_cpu_wait_share": s.cpu_wait[2],
                    "rss_kib": s.rss_kib,
                    "rss_per_binding_bytes": s.rss_per_binding_bytes,
                    "not_accepted": s.not_accepted,
                })
            })
            .collect();
        let json = serde_json::json!({
            "daemon": report.daemon,
            "proxy": report.proxy,
            "window": report.window,
            "coas": report.coas,
            "steps": steps,
            "rss_idle_kib": report.rss_idle_kib,
            "state_file_bytes": report.state_file_bytes,
            "journal_bytes_before_compaction": report.journal_bytes,
            "restart_bindings": report.restart_bindings,
            "restart_restore_s": report.restart_restore_s,
            "load_average": report.load_average,
        });
        println!("{json}");
        return;
    }
    println!(
        "home-agent benchmark: proxy {}, window {}, {} care-of addresses, load average {}",
        a.proxy, a.window, a.coas, report.load_average
    );
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>18} {:>10} {:>10}",
        "bindings",
        "register/s",
        "refresh/s",
        "dereg/s",
        "CPU µs/BU (r/f/d)",
        "RSS KiB",
        "B/binding"
    );
    for s in &report.steps {
        println!(
            "{:>9} {:>12.0} {:>12.0} {:>12.0} {:>18} {:>10} {:>10.0}{}",
            s.bindings,
            s.register_per_s,
            s.refresh_per_s,
            s.deregister_per_s,
            format!("{:.0}/{:.0}/{:.0}", s.cpu_us[0], s.cpu_us[1], s.cpu_us[2]),
            s.rss_kib,
            s.rss_per_binding_bytes,
            if s.not_accepted > 0 {
                format!("  ({} not accepted)", s.not_accepted)
            } else {
                String::new()
            }
        );
    }
    println!(
        "RSS idle {} KiB; state file with {} bindings {} bytes compacted ({} bytes of journal before); restart (restore + reconcile + compaction) {:.2} s",
        report.rss_idle_kib, max, report.state_file_bytes, report.journal_bytes, report.restart_restore_s
    );
}
