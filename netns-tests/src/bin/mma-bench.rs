//! MMA benchmark: terminal registrations per second, kernel state and daemon RSS with many
//! terminals, in throwaway namespaces.
//!
//! ```text
//! sudo cargo run --release -p mipcast-netns-tests --bin mma-bench -- --terminals 100000
//! ```
//! Options: `--terminals N` (100000), `--window W` BUs in flight (128), `--daemon PATH` (the
//! `mma` binary next to this one). Topology: `ha` (WAN) ── `mma` ── `site` (every BU comes from
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
    nth_address, pipeline, rss_kib, scratch_with_key, sibling_binary, wait_listening, Cli, Tally,
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
    options: "[--terminals N] [--window W] [--daemon PATH]",
};

struct Args {
    terminals: u32,
    window: u32,
    daemon: String,
}

fn args() -> Args {
    let mut a = Args {
        terminals: 100_000,
        window: 128,
        daemon: sibling_binary("mma").to_string_lossy().into_owned(),
    };
    for (flag, value) in CLI.pairs() {
        match flag.as_str() {
            "--terminals" => a.terminals = CLI.number(&flag, &value),
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
fn phase(client: &MhClient, a: &Args, seq: u16, lifetime: u16) -> Tally {
    pipeline(client, a.terminals, a.window, |i| bu(i, seq, lifetime)).expect("send BU")
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
    let mut daemon = Daemon(mma.spawn(
        &a.daemon,
        &[
            "-c",
            config.to_str().unwrap_or_default(),
            "--log-level",
            "warn",
        ],
        Some(&log),
    ));
    wait_listening(&mma, 9642, &log);
    let pid = daemon.0.id();
    let rss_idle = rss_kib(pid);

    let lines = site.enter(|| {
        let client = MhClient::bind(SRC, MMA, Duration::from_secs(2)).expect("raw MH socket");
        let mut lines = Vec::new();
        let Tally { secs, accepted: ok, refused, errors, lost } = phase(&client, &a, 1, 1000);
        let refused = refused + errors;
        lines.push(format!(
            "register: {ok} accepted, {refused} refused, {lost} lost in {secs:.2} s = {:.0} registrations/s",
            f64::from(a.terminals) / secs
        ));
        let Tally { secs, accepted: ok, refused, errors, lost } = phase(&client, &a, 2, 1000);
        let refused = refused + errors;
        lines.push(format!(
            "refresh:  {ok} accepted, {refused} refused, {lost} lost in {secs:.2} s = {:.0} refreshes/s (no kernel change)",
            f64::from(a.terminals) / secs
        ));
        lines
    });
    let rss = rss_kib(pid);
    let mfc = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let down = count_lines(&mma, "ip -6 route show proto 158");
    let up = count_lines(&mma, "ip -6 route show table 102 proto 158");
    let started = Instant::now();
    let status = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    let shutdown = started.elapsed().as_secs_f64();
    let left = count_lines(&mma, "ip -6 route show table all proto 158");
    let mfc_left = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let state_mib = std::fs::metadata(dir.join("state.json"))
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);
    let cpus = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    println!(
        "mma benchmark: {} terminals, window {}, {cpus} CPUs",
        a.terminals, a.window
    );
    for l in lines {
        println!("  {l}");
    }
    println!("  kernel: {mfc} MFC entries, {down} downlink routes (main), {up} uplink routes (table 102)");
    println!(
        "  RSS idle {rss_idle} KiB, with {} terminals {rss} KiB",
        a.terminals
    );
    println!(
        "  SIGTERM: exit {status:?} after {shutdown:.2} s, left {left} routes and {mfc_left} MFC entries; state file {state_mib:.1} MiB"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
