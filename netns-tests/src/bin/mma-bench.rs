//! MMA benchmark: terminal registrations per second at several table sizes, kernel state,
//! daemon RSS, the state file's size and the restart time, in throwaway namespaces.
//!
//! ```text
//! cargo build --release -p mma -p mipcast-netns-tests
//! sudo target/release/mma-bench --steps 10000,50000,100000 [--json]
//! ```
//! Options: `--steps N,N,...` (10000,50000,100000; `--terminals N` is one step), `--window W`
//! BUs in flight (128), `--daemon PATH` (the `mma` binary next to this one), `--json`. Each
//! step starts from an empty table: register N, refresh N, RSS, deregister N. Then the largest
//! step is registered again, the MMA killed (-9) and started again: `restart_restore_s` is the
//! time until it serves (terminals restored, kernel reconciled, MFC entries re-added, the
//! journal compacted), `state_file_bytes` the compacted journal. Topology: `ha` (WAN) ── `mma` ── `site` (every BU comes from
//! the site's on-link address 2001:db8:4::2, one home address and group per terminal). Each
//! registration makes the MMA install two routes (batched) and one MFC entry.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use mipcast_netns_tests::bench::{
    cpu_seconds, nth_address, pipeline, rss_kib, scratch_with_key, sibling_binary, wait_listening,
    Cli, Tally,
};
use mipcast_netns_tests::mh_client::{Bu, MhClient};
use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::mh::bu_flags;

const MMA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 2);
const KEY: &[u8] = b"mma benchmark key, 32 bytes long";
const SPI: u32 = 1000;
const CLI: Cli = Cli {
    bin: "mma-bench",
    options: "[--steps N,N,...] [--terminals N] [--window W] [--daemon PATH] [--json]",
};

struct Args {
    steps: Vec<u32>,
    json: bool,
    window: u32,
    daemon: String,
}

fn args() -> Args {
    let mut a = Args {
        steps: vec![10_000, 50_000, 100_000],
        json: false,
        window: 128,
        daemon: sibling_binary("mma").to_string_lossy().into_owned(),
    };
    let (pairs, switches) = CLI.pairs_and_switches(&["--json"]);
    a.json = !switches.is_empty();
    for (flag, value) in pairs {
        match flag.as_str() {
            "--steps" => a.steps = CLI.steps(&flag, &value),
            "--terminals" => a.steps = vec![CLI.number::<u32>(&flag, &value).max(1)],
            "--window" => a.window = CLI.number(&flag, &value),
            "--daemon" => a.daemon = value,
            other => CLI.usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn bu(i: u32, seq: u16, lifetime: u16) -> Vec<u8> {
    let hoa = nth_address(Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0), i);
    let group = nth_address(Ipv6Addr::new(0xff35, 0, 0, 0, 0x200, 0, 0, 0), i);
    Bu {
        flags: bu_flags::ACK | bu_flags::MAP,
        lifetime,
        group: Some(group),
        ..Bu::new(seq, hoa, SRC, SPI, KEY)
    }
    .bytes()
}

/// One BU per terminal with `window` in flight; a Binding Error counts as a refusal.
fn phase(client: &MhClient, n: u32, a: &Args, seq: u16, lifetime: u16) -> Tally {
    pipeline(client, n, a.window, |i| bu(i, seq, lifetime)).expect("send BU")
}

fn count_lines(ns: &Netns, cmd: &str) -> usize {
    ns.sh(cmd).lines().count()
}

fn main() {
    mipcast_netns_tests::cleanup::on_signals();
    let a = args();
    if !mipcast_netns_tests::have_root() {
        eprintln!("mma-bench builds network namespaces: run it as root");
        std::process::exit(1);
    }
    let ha = Netns::new("bh");
    let mma = Netns::new("bm");
    let site = Netns::new("bs");
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
        &site,
        "e0",
        "2001:db8:4::2/64",
    );
    site.sh("ip -6 route add default via 2001:db8:4::1");

    let (dir, key) = scratch_with_key("mma-bench", KEY).expect("scratch directory");
    let config = dir.join("mma.yaml");
    std::fs::write(
        &config,
        format!(
            "address: {MMA}\nwan_interface: e0\nsite_interfaces: [e1]\nsite_prefixes: [2001:db8:4::/64]\n\
             home_agents:\n  - address: 2001:db8:2::1\n    home_prefixes: [2001:db8:99::/64]\n\
             security_associations:\n  - spi: {SPI}\n    algorithm: hmac-sha256-128\n    key_file: {}\n    home_prefixes: [2001:db8:99::/64]\n\
             state:\n  file: {}\n  write_delay_ms: 1000\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("mma.log");
    let state = dir.join("state.json");
    let start = || {
        let d = Daemon(mma.spawn(
            &a.daemon,
            &[
                "-c",
                config.to_str().unwrap_or_default(),
                "--log-level",
                "warn",
            ],
            Some(&log),
        ));
        let t = Instant::now();
        wait_listening(&mma, 9642, &log);
        (d, t.elapsed().as_secs_f64())
    };
    let (mut daemon, _) = start();
    let pid = daemon.0.id();
    let rss_idle = rss_kib(pid);
    let max = a.steps.iter().copied().max().unwrap_or(1);

    let mut steps = Vec::new();
    for &n in &a.steps {
        let step = site.enter(|| {
            let client = MhClient::bind(SRC, MMA, Duration::from_secs(2)).expect("raw MH socket");
            let mut rates = Vec::new();
            let mut cpu_us = [0.0; 3];
            let mut not_accepted = 0;
            let mut rss = 0;
            for (i, (name, seq, lifetime)) in [("register", 1u16, 1000u16), ("refresh", 2, 1000), ("deregister", 3, 0)].into_iter().enumerate() {
                let cpu = cpu_seconds(pid);
                let t = phase(&client, n, &a, seq, lifetime);
                cpu_us[i] = (cpu_seconds(pid) - cpu) * 1e6 / f64::from(n);
                not_accepted += n - t.accepted;
                rates.push(f64::from(n) / t.secs);
                if name == "refresh" {
                    rss = rss_kib(pid);
                }
                eprintln!("{n:>7} {name:<10} {:>8.0} BU/s, daemon CPU {:.1} µs/BU ({} not accepted)", f64::from(n) / t.secs, cpu_us[i], n - t.accepted);
            }
            serde_json::json!({
                "bindings": n,
                "register_per_s": rates[0],
                "refresh_per_s": rates[1],
                "deregister_per_s": rates[2],
                "register_cpu_us": cpu_us[0],
                "refresh_cpu_us": cpu_us[1],
                "deregister_cpu_us": cpu_us[2],
                "rss_kib": rss,
                "rss_per_binding_bytes": rss.saturating_sub(rss_idle) as f64 * 1024.0 / f64::from(n),
                "not_accepted": not_accepted,
            })
        });
        steps.push(step);
    }

    // The largest table once more, for the kernel state, the journal and a restart.
    site.enter(|| {
        let client = MhClient::bind(SRC, MMA, Duration::from_secs(2)).expect("raw MH socket");
        phase(&client, max, &a, 4, 1000)
    });
    let mfc = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let down = count_lines(&mma, "ip -6 route show proto 158");
    let journal_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    let _ = daemon.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    // The MMA listens before it restores: it serves again once every terminal's MFC entry
    // (gone with the killed process's MRT6 socket) is back.
    let restarted = Instant::now();
    let (mut daemon, _) = start();
    while count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1) < mfc
        && restarted.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The restore ends with a compaction of the journal: wait for it too.
    while std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0) >= journal_bytes
        && restarted.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let restart_restore_s = restarted.elapsed().as_secs_f64();
    let state_file_bytes = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
    let mfc_restored = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let started = Instant::now();
    let status = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    let shutdown = started.elapsed().as_secs_f64();
    let left = count_lines(&mma, "ip -6 route show table all proto 158");
    let cpus = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let report = serde_json::json!({
        "daemon": "mma",
        "window": a.window,
        "steps": steps,
        "rss_idle_kib": rss_idle,
        "state_file_bytes": state_file_bytes,
        "journal_bytes_before_compaction": journal_bytes,
        "restart_bindings": max,
        "restart_restore_s": restart_restore_s,
        "mfc_entries": mfc,
        "mfc_entries_after_restart": mfc_restored,
        "load_average": load_average,
    });
    let _ = std::fs::remove_dir_all(&dir);
    if a.json {
        println!("{report}");
        return;
    }
    println!(
        "mma benchmark: window {}, {cpus} CPUs, load average {load_average}",
        a.window
    );
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>18} {:>10} {:>10}",
        "terminals",
        "register/s",
        "refresh/s",
        "dereg/s",
        "CPU µs/BU (r/f/d)",
        "RSS KiB",
        "B/terminal"
    );
    let f = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap_or(0.0);
    for s in &steps {
        println!(
            "{:>9} {:>12.0} {:>12.0} {:>12.0} {:>18} {:>10} {:>10.0}  ({} not accepted)",
            s["bindings"],
            f(s, "register_per_s"),
            f(s, "refresh_per_s"),
            f(s, "deregister_per_s"),
            format!(
                "{:.0}/{:.0}/{:.0}",
                f(s, "register_cpu_us"),
                f(s, "refresh_cpu_us"),
                f(s, "deregister_cpu_us")
            ),
            s["rss_kib"],
            s["rss_per_binding_bytes"].as_f64().unwrap_or(0.0),
            s["not_accepted"]
        );
    }
    println!("kernel with {max} terminals: {mfc} MFC entries, {down} downlink routes; after kill -9 and restart: {mfc_restored} MFC entries in {restart_restore_s:.2} s");
    println!("state file {state_file_bytes} bytes compacted ({:.1} bytes per terminal; {journal_bytes} bytes of journal before); SIGTERM: exit {status:?} after {shutdown:.2} s, left {left} routes", state_file_bytes as f64 / f64::from(max));
}
