//! Data-plane benchmark of what the daemons install: iperf3 TCP and 64-byte UDP from the
//! correspondent to the terminal, once over plain routing to its on-link address and once to
//! its home address through HA -> mma1 -> (S,G) multicast tree -> terminal, over the same
//! hops (cn - ha - mma1 - c1 - a1 - mn, topology: `mipcast_netns_tests::site`). The design's
//! bar (design/reference-path.sh, hand-built tunnels): TCP ~1.0x, 64-byte UDP ~0.65x.
//!
//! ```text
//! cargo build --release --workspace
//! sudo target/release/dataplane-bench [--seconds 5]
//! ```
//! The daemon binaries are taken from the directory of this executable.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mipcast_netns_tests::site::{addr, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;
use mipcast_netns_tests::{Daemon, Netns};
use serde_json::Value;

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: dataplane-bench [--seconds N]   (as root; N = 1..=60, default 5)");
    std::process::exit(2)
}

fn seconds() -> u64 {
    let mut secs = 5;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => {
                secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|s| (1..=60).contains(s))
                    .unwrap_or_else(|| usage("--seconds needs a number from 1 to 60"));
            }
            "-h" | "--help" => {
                usage("dataplane-bench: iperf3 through the daemons' tunnels vs plain routing")
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    secs
}

/// What one iperf3 run delivered.
enum Measure {
    Tcp { gbps: f64 },
    Udp { kpps: f64 },
}

/// Runs an iperf3 server in `server` bound to `addr` and a client in `client`; returns the
/// client's JSON report.
fn iperf(
    server: &Netns,
    client: &Netns,
    log: &Path,
    addr: Ipv6Addr,
    port: u16,
    secs: u64,
    udp: bool,
) -> Result<Value, String> {
    let (a, p) = (addr.to_string(), port.to_string());
    let _srv = Daemon(server.spawn("iperf3", &["-s", "-1", "-B", &a, "-p", &p], Some(log)));
    wait_for(
        &format!("iperf3 listening on [{a}]:{p}"),
        Duration::from_secs(5),
        || {
            server
                .try_sh(&format!("ss -Hltn 'sport = :{p}'"))
                .ok()
                .filter(|o| !o.trim().is_empty())
                .map(|_| ())
        },
    )
    .map_err(|e| e.to_string())?;
    let t = secs.to_string();
    let limit = (secs + 20).to_string();
    let mut args = vec![limit.as_str(), "iperf3", "-c", &a, "-p", &p, "-t", &t, "-J"];
    if udp {
        args.extend(["-u", "-b", "0", "-l", "64"]);
    }
    let out = client.cmd("timeout", &args);
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "iperf3 to [{a}]:{p}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn measure(site: &Site, dst: Ipv6Addr, port: u16, secs: u64, udp: bool) -> Result<Measure, String> {
    let log = site.dir.join(format!("iperf3-{port}.log"));
    let v = iperf(&site.mn, &site.cn, &log, dst, port, secs, udp)?;
    if let Some(e) = v["error"].as_str() {
        return Err(format!("iperf3 to {dst}: {e}"));
    }
    if udp {
        let s = &v["end"]["sum"];
        let packets = s["packets"].as_f64().ok_or("no end.sum.packets")?;
        let lost = s["lost_percent"].as_f64().unwrap_or(0.0);
        let secs = s["seconds"]
            .as_f64()
            .filter(|s| *s > 0.0)
            .unwrap_or(secs as f64);
        Ok(Measure::Udp {
            kpps: packets * (1.0 - lost / 100.0) / secs / 1e3,
        })
    } else {
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .ok_or("no end.sum_received")?;
        Ok(Measure::Tcp { gbps: bps / 1e9 })
    }
}

fn value(m: &Measure) -> f64 {
    match *m {
        Measure::Tcp { gbps } => gbps,
        Measure::Udp { kpps } => kpps,
    }
}

/// Packets the (mma1, G) entry of a1 forwarded so far: proof the tunnel runs over the tree.
fn tree_packets(site: &Site, group: Ipv6Addr) -> u64 {
    site.mfc(Node::A1)
        .iter()
        .filter(|e| e.source == addr::MMA1 && e.group == group)
        .map(|e| e.packets)
        .sum()
}

fn run(secs: u64) -> Result<(), String> {
    let mut opts = SiteOptions::new("dpb");
    opts.log_level = "warn".into();
    let mut site = Site::build(&opts).map_err(|e| e.to_string())?;
    site.start_daemons().map_err(|e| e.to_string())?;
    let (on_link, group) = wait_for(
        "the terminal registered at mma1 and the home agent",
        Duration::from_secs(15),
        || {
            let ha = site.status(Node::Ha).ok()?;
            (ha["bindings"][0]["coa"] == addr::MMA1.to_string()).then_some(())?;
            let m = site.status(Node::Mma1).ok()?;
            let t = &m["terminals"][0];
            Some((
                t["on_link"].as_str()?.parse::<Ipv6Addr>().ok()?,
                t["group"].as_str()?.parse::<Ipv6Addr>().ok()?,
            ))
        },
    )
    .map_err(|e| e.to_string())?;
    wait_for(
        "the (mma1, G) tree down to a1",
        Duration::from_secs(5),
        || {
            site.mfc(Node::A1)
                .iter()
                .any(|e| e.group == group)
                .then_some(())
        },
    )
    .map_err(|e| e.to_string())?;
    println!("terminal on a1's link: on-link {on_link}, home address {}, group {group}; {secs} s per run", addr::HOA);

    let mut rows = Vec::new();
    for (udp, port) in [(false, 5201u16), (true, 5203)] {
        let plain = measure(&site, on_link, port, secs, udp)?;
        let before = tree_packets(&site, group);
        let tunnel = measure(&site, addr::HOA, port + 1, secs, udp)?;
        let through_tree = tree_packets(&site, group).saturating_sub(before);
        rows.push((udp, plain, tunnel, through_tree));
    }
    println!();
    println!(
        "{:<34} {:>16} {:>16} {:>8} {:>10}",
        "", "plain routed", "HoA via tunnels", "ratio", "bar"
    );
    for (udp, plain, tunnel, through_tree) in &rows {
        let (name, unit, bar) = if *udp {
            ("UDP 64 B delivered", "kpps", "~0.65")
        } else {
            ("TCP CN -> terminal", "Gbit/s", "~1.0")
        };
        let ratio = if value(plain) > 0.0 {
            value(tunnel) / value(plain)
        } else {
            0.0
        };
        println!(
            "{:<34} {:>9.3} {unit:<6} {:>9.3} {unit:<6} {:>8.3} {:>10}",
            name,
            value(plain),
            value(tunnel),
            ratio,
            bar
        );
        println!("{:<34} (a1's (mma1, G) MFC entry forwarded {through_tree} packets during the tunnel run)", "");
    }
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        if !st.is_some_and(|s| s.success()) {
            eprintln!(
                "{} in {} did not stop cleanly: {st:?}",
                node.daemon().unwrap_or("?"),
                node.name()
            );
        }
    }
    let left = site.leftovers()?;
    if !left.is_empty() {
        return Err(format!("kernel state left behind:\n{}", left.join("\n")));
    }
    Ok(())
}

fn main() -> ExitCode {
    mipcast_netns_tests::cleanup::on_signals();
    let secs = seconds();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("dataplane-bench builds network namespaces: run it as root");
        return ExitCode::FAILURE;
    }
    match run(secs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
