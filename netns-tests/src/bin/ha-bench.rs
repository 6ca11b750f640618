//! Home agent benchmark: Binding Update → Binding Acknowledgement throughput and daemon memory
//! with many bindings, in throwaway namespaces.
//!
//! ```text
//! cargo build --release -p home-agent
//! sudo cargo run --release -p mipcast-netns-tests --bin ha-bench -- --bindings 100000
//! ```
//! Options: `--bindings N` (100000), `--window W` BUs in flight (128), `--coas C` distinct
//! care-of addresses (16), `--daemon PATH` (default: `home-agent` beside this binary).
//!
//! The client keeps W BUs in flight over a raw Mobility Header socket (checksum computed here)
//! and counts BAcks; phases: register all, refresh all (no kernel change), deregister all.
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
    nth_address, pipeline, rss_kib, scratch_with_key, sibling_binary, wait_listening, Cli,
};
use mipcast_netns_tests::mh_client::{Bu, MhClient};
use mipcast_netns_tests::{veth, Daemon, Netns};

const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);
const KEY: &[u8] = b"benchmark-key-not-hex";
const SPI: u32 = 1000;
const CLI: Cli = Cli {
    bin: "ha-bench",
    options: "[--bindings N] [--window W] [--coas C] [--daemon PATH]",
};

struct Args {
    bindings: u32,
    window: u32,
    coas: u32,
    daemon: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        bindings: 100_000,
        window: 128,
        coas: 16,
        daemon: sibling_binary("home-agent"),
    };
    for (flag, value) in CLI.pairs() {
        match flag.as_str() {
            "--bindings" => a.bindings = CLI.number(&flag, &value),
            "--window" => a.window = CLI.number::<u32>(&flag, &value).max(1),
            "--coas" => a.coas = CLI.number::<u32>(&flag, &value).clamp(1, 65535),
            "--daemon" => a.daemon = PathBuf::from(&value),
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
    std::fs::write(
        &config,
        format!(
            "home_link: {{ interface: home0, address: {HA} }}\n\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - {{ spi: {SPI}, algorithm: hmac-sha256-128, key_file: {}, home_prefixes: [2001:db8:1::/64] }}\n\
             state: {{ file: {}, write_delay_ms: 1000 }}\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("home-agent.log");
    let mut daemon = Daemon(ha.spawn(
        a.daemon.to_str().expect("path"),
        &["-c", config.to_str().expect("path"), "--log-level", "warn"],
        Some(&log),
    ));
    let pid = daemon.0.id();
    wait_listening(&ha, 9641, &log);
    let rss_idle = rss_kib(pid);

    let report = mn.enter(|| {
        let client = MhClient::bind(SRC, HA, Duration::from_secs(2)).expect("raw MH socket");
        let mut lines = Vec::new();
        for (name, seq, lifetime) in [("register", 1u16, 900u16), ("refresh", 2, 900), ("deregister", 3, 0)] {
            eprintln!("{name}...");
            let t = pipeline(&client, a.bindings, a.window, |i| bu(i, a.coas, seq, lifetime)).expect("send BU");
            let (secs, ok, other, lost) = (t.secs, t.accepted, t.refused + t.errors, t.lost);
            let rss = rss_kib(pid);
            let objects = ha.sh("ip -6 route show table all proto 158 | wc -l; ip -6 neigh show proxy | wc -l");
            let line = format!(
                "{name:<10} {:>7} BUs in {secs:>7.2} s = {:>8.0} BU/s  (BAck 0: {ok}, other: {other}, lost: {lost})  \
                 RSS {rss} KiB  routes+proxies: {}",
                a.bindings,
                f64::from(a.bindings) / secs,
                objects.split_whitespace().collect::<Vec<_>>().join("+"),
            );
            eprintln!("{line}");
            lines.push(line);
            if name == "register" {
                lines.push(format!("RSS idle {rss_idle} KiB, with {} bindings {rss} KiB", a.bindings));
            }
        }
        lines
    });
    let stop = Instant::now();
    let status = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    println!(
        "home-agent benchmark: {} bindings, window {}, {} care-of addresses",
        a.bindings, a.window, a.coas
    );
    for l in report {
        println!("{l}");
    }
    println!(
        "shutdown: {:.2} s, exit {:?}",
        stop.elapsed().as_secs_f64(),
        status
    );
    let _ = std::fs::remove_dir_all(&dir);
}
