//! pim-lite benchmark: how fast (S,G) Joins from a downstream router become kernel MFC
//! entries, and join → first packet over one hop, in throwaway namespaces.
//!
//! ```text
//! cargo build --release -p pim-lite -p mipcast-netns-tests
//! sudo target/release/pim-bench [--joins N] [--probes P] [--daemon PATH] [--json]
//! ```
//! Topology: `S --(s0|r_s)-- R --(r_d|d0)-- D`. R runs the real pim-lite with both links as
//! core links; D is this program acting as a downstream PIM router: a Hello, then N (S,G)
//! Joins (default 10,000, 30 groups per Join/Prune message) sent to R one message every
//! `--pace-us` µs (default 1000; 0 = back to back, which overflows pim-lite's PIM socket
//! receive buffer: the messages past it are dropped by the kernel and their entries missing,
//! the count says so). Timed: first Join sent → N (S,G) entries in R's MFC
//! (`/proc/net/ip6_mr_cache`); R's raw-socket drops are reported.
//!
//! Join → first packet: S sends to P fresh groups (default 20) a datagram every 100 µs per
//! group (so the source's interval adds at most 0.1 ms); D joins one group at a time and times
//! the first datagram of it that arrives on d0. One hop: R's handling of the Join, its MFC
//! entry and the forwarding.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mipcast_netns_tests::bench::{
    nth_address, scratch_with_key, sibling_binary, wait_listening, Cli,
};
use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::pim::{
    self, EncodedGroup, EncodedSource, HelloOption, JoinPrune, JoinPruneGroup, PimRepr,
};
use socket2::{Domain, Protocol, Socket, Type};

const S: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10);
const ALL_PIM_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xd);
const IPPROTO_PIM: i32 = 103;
const GROUPS_PER_MESSAGE: usize = 30;
const PORT: u16 = 7400;
const CLI: Cli = Cli {
    bin: "pim-bench",
    options: "[--joins N] [--pace-us U] [--probes P] [--daemon PATH] [--json]",
};

struct Args {
    joins: u32,
    pace_us: u64,
    probes: u32,
    json: bool,
    daemon: String,
}

fn args() -> Args {
    let mut a = Args {
        joins: 10_000,
        pace_us: 1000,
        probes: 20,
        json: false,
        daemon: sibling_binary("pim-lite").to_string_lossy().into_owned(),
    };
    let (pairs, switches) = CLI.pairs_and_switches(&["--json"]);
    a.json = !switches.is_empty();
    for (flag, value) in pairs {
        match flag.as_str() {
            "--joins" => a.joins = CLI.number::<u32>(&flag, &value).max(1),
            "--pace-us" => a.pace_us = CLI.number(&flag, &value),
            "--probes" => a.probes = CLI.number::<u32>(&flag, &value).max(1),
            "--daemon" => a.daemon = value,
            _ => CLI.usage(&format!("unknown option {flag}")),
        }
    }
    a
}

fn link_local(ns: &Netns, ifname: &str) -> Ipv6Addr {
    let out = ns.sh(&format!("ip -6 -o addr show dev {ifname} scope link"));
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("link-local address")
}

fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    ns.sh(&format!("cat /sys/class/net/{ifname}/ifindex"))
        .trim()
        .parse()
        .expect("ifindex")
}

/// A PIM message from `src` to all PIM routers, checksum filled in.
fn message(repr: &PimRepr, src: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut buf).expect("emit");
    buf.truncate(n);
    pim::fill_checksum(&mut buf, &src, &ALL_PIM_ROUTERS).expect("checksum");
    buf
}

fn join_prune(upstream: Ipv6Addr, groups: &[Ipv6Addr]) -> PimRepr {
    PimRepr::JoinPrune(JoinPrune {
        upstream_neighbor: upstream,
        holdtime: 210,
        groups: groups
            .iter()
            .map(|g| JoinPruneGroup {
                group: EncodedGroup {
                    bidir: false,
                    admin_scope: false,
                    mask_len: 128,
                    addr: *g,
                },
                joins: vec![EncodedSource {
                    sparse: true,
                    wildcard: false,
                    rpt: false,
                    mask_len: 128,
                    addr: S,
                }],
                prunes: vec![],
            })
            .collect(),
    })
}

/// (S,G) entries of S in the namespace's MFC (polled every 50 ms: a `cat` of a 10,000-line
/// file competes with pim-lite for the two CPUs).
fn mfc_entries(ns: &Netns) -> usize {
    ns.sh("cat /proc/net/ip6_mr_cache")
        .lines()
        .filter(|l| {
            l.contains("2001:0db8:0005:0000:0000:0000:0000:0010") || l.contains(" 2001:db8:5::10 ")
        })
        .count()
}

fn main() {
    let a = args();
    if !nix::unistd::geteuid().is_root() {
        CLI.usage("needs root (network namespaces)");
    }
    if !std::path::Path::new(&a.daemon).exists() {
        CLI.usage(&format!(
            "{} not found: build it first (cargo build --release -p pim-lite) or pass --daemon",
            a.daemon
        ));
    }
    let (s, r, d) = (Netns::new("pbs"), Netns::new("pbr"), Netns::new("pbd"));
    veth(&s, "s0", "2001:db8:5::10/64", &r, "r_s", "2001:db8:5::1/64");
    veth(&r, "r_d", "2001:db8:6::1/64", &d, "d0", "2001:db8:6::2/64");
    s.sh("ip -6 route add default via 2001:db8:5::1");
    d.sh("ip -6 route add default via 2001:db8:6::1");
    r.sh("sysctl -qw net.ipv6.conf.all.forwarding=1");

    let (dir, _) = scratch_with_key("pim-bench", b"unused").expect("scratch directory");
    let config = dir.join("pim-lite.yaml");
    std::fs::write(
        &config,
        "interfaces:\n  - { name: r_s, role: core }\n  - { name: r_d, role: core }\n\
         pim:\n  hello_period_secs: 30\n  triggered_hello_delay_ms: 100\n  rpf_check_interval_secs: 5\n",
    )
    .expect("config");
    let log = dir.join("pim-lite.log");
    let mut daemon = Daemon(r.spawn(
        &a.daemon,
        &["-c", config.to_str().expect("path"), "--log-level", "warn"],
        Some(&log),
    ));
    wait_listening(&r, 9644, &log);
    let upstream = link_local(&r, "r_d");
    let me = link_local(&d, "d0");
    let d0 = ifindex(&d, "d0");

    let sock = d.enter(|| {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_PIM)))
            .expect("raw PIM socket");
        sock.set_multicast_if_v6(d0).expect("multicast interface");
        sock.set_multicast_hops_v6(1).expect("hop limit");
        sock.set_multicast_loop_v6(false).expect("no loop");
        sock
    });
    let to = SocketAddrV6::new(ALL_PIM_ROUTERS, 0, 0, d0).into();
    let hello = PimRepr::Hello {
        options: vec![
            HelloOption::Holdtime(105),
            HelloOption::DrPriority(1),
            HelloOption::GenerationId(0x5eed_0001),
        ],
    };
    sock.send_to(&message(&hello, me), &to).expect("send Hello");
    // pim-lite takes Joins only from neighbours it has a Hello from.
    std::thread::sleep(Duration::from_millis(300));

    // N joins, back to back.
    let groups: Vec<Ipv6Addr> = (0..a.joins)
        .map(|i| nth_address(Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 1, 0), i))
        .collect();
    let messages: Vec<Vec<u8>> = groups
        .chunks(GROUPS_PER_MESSAGE)
        .map(|chunk| message(&join_prune(upstream, chunk), me))
        .collect();
    let started = Instant::now();
    for m in &messages {
        sock.send_to(m, &to).expect("send Join/Prune");
        if a.pace_us > 0 {
            std::thread::sleep(Duration::from_micros(a.pace_us));
        }
    }
    let sent_s = started.elapsed().as_secs_f64();
    let want = a.joins as usize;
    let mut got = 0;
    while started.elapsed() < Duration::from_secs(60) {
        got = mfc_entries(&r);
        if got >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let joins_to_mfc_s = started.elapsed().as_secs_f64();
    // Raw IPv6 sockets' drop counters (last column of /proc/net/raw6) in R.
    let raw_drops: u64 = r
        .sh("cat /proc/net/raw6")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    eprintln!("{} Join/Prune messages sent in {sent_s:.3} s; {got} MFC entries after {joins_to_mfc_s:.3} s", messages.len());

    // Join -> first packet, one group at a time.
    let probe_groups: Vec<Ipv6Addr> = (0..a.probes)
        .map(|i| nth_address(Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 2, 0), i))
        .collect();
    let stop = AtomicBool::new(false);
    let mut latencies_ms = Vec::new();
    s.enter(|| {
        // The source, inside S's namespace (threads inherit it), until the probes are done.
        let stop_sender = &stop;
        let groups = probe_groups.clone();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
                    .expect("source socket");
                sock.bind(&SocketAddrV6::new(S, 0, 0, 0).into())
                    .expect("bind S");
                // Past R: the default multicast hop limit (1) would end at the first router.
                sock.set_multicast_hops_v6(16).expect("hop limit");
                let targets: Vec<socket2::SockAddr> = groups
                    .iter()
                    .map(|g| SocketAddrV6::new(*g, PORT, 0, 0).into())
                    .collect();
                let mut n: u64 = 0;
                while !stop_sender.load(Ordering::Relaxed) {
                    for g in &targets {
                        let _ = sock.send_to(&n.to_be_bytes(), g);
                    }
                    n += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
            });
            d.enter(|| {
                std::thread::sleep(Duration::from_millis(200));
                for g in &probe_groups {
                    let rx = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, PORT)).expect("receiver");
                    rx.join_multicast_v6(g, d0).expect("join on d0");
                    rx.set_read_timeout(Some(Duration::from_secs(2)))
                        .expect("timeout");
                    let join = message(&join_prune(upstream, &[*g]), me);
                    let t = Instant::now();
                    sock.send_to(&join, &to).expect("send Join");
                    let mut buf = [0u8; 64];
                    if rx.recv_from(&mut buf).is_ok() {
                        latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            });
            stop.store(true, Ordering::Relaxed);
        });
    });
    latencies_ms.sort_by(f64::total_cmp);
    let median = latencies_ms
        .get(latencies_ms.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let max = latencies_ms.last().copied().unwrap_or(f64::NAN);
    let _ = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "daemon": "pim-lite",
                "joins": a.joins,
                "join_messages": messages.len(),
                "mfc_entries": got,
                "joins_to_mfc_s": joins_to_mfc_s,
                "pace_us": a.pace_us,
                "raw_socket_drops": raw_drops,
                "probes": a.probes,
                "probes_answered": latencies_ms.len(),
                "join_to_first_packet_ms_median": median,
                "join_to_first_packet_ms_max": max,
                "hops": 1,
                "load_average": load_average,
            })
        );
        return;
    }
    println!("pim-lite benchmark, load average {load_average}");
    println!(
        "{} (S,G) joins in {} Join/Prune messages, one per {} µs: {got} MFC entries after {joins_to_mfc_s:.3} s ({raw_drops} messages dropped by R's raw sockets)",
        a.joins,
        messages.len(),
        a.pace_us
    );
    println!(
        "join -> first packet over one hop ({} of {} probes answered): median {median:.2} ms, max {max:.2} ms",
        latencies_ms.len(),
        a.probes
    );
}
