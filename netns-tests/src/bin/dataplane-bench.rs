//! Data-plane benchmark of what the daemons install: iperf3 TCP and 64-byte UDP from the
//! correspondent to the terminal, once over plain routing to its on-link address and once to
//! its home address through HA -> mma1 -> (S,G) multicast tree -> terminal, over the same
//! hops (cn - ha - mma1 - c1 - a1 - mn, topology: `mipcast_netns_tests::site`). The design's
//! bar (design/reference-path.sh, hand-built tunnels): TCP ~1.0x, 64-byte UDP ~0.65x.
//!
//! Then route optimisation (issue 12), in the same run, on the topology variant with the home
//! agent off the correspondent–site path (`SiteOptions::wan_router`: a `wan` router joins the
//! correspondent, the home agent and the sites). The delay element is on the cn–wan and
//! wan–site links (`--delay-ms`) and on the wan–HA link (`--ha-delay-ms`, default the same).
//! TCP, 64-byte UDP and UDP echo RTT from the correspondent to the home address, through the
//! home agent (no correspondent agent: CN -> wan -> HA -> wan -> mma1, and back the same way)
//! and route-optimised (the correspondent agent runs and mma1 has bound it: CN -> wan -> mma1).
//! Through the home agent a round trip crosses the wan–HA link four times, so the optimised
//! RTT should be about 4 x `--ha-delay-ms` smaller. The packets the router's HA link carried
//! during each side's measurement are counted (interface counters), as proof of the path
//! taken. `--json` prints one JSON document.
//!
//! ```text
//! cargo build --release -p home-agent -p mma -p mobile-node -p pim-lite -p correspondent -p mipcast-netns-tests
//! sudo target/release/dataplane-bench [--seconds 5] [--delay-ms 10] [--ha-delay-ms D] [--json]
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

use mipcast_netns_tests::site::{addr, Node, Site, SiteOptions, WanDelays, WanRouter};
use mipcast_netns_tests::wait::wait_for;
use mipcast_netns_tests::{Daemon, Netns};
use serde_json::Value;

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: dataplane-bench [--seconds N] [--delay-ms D] [--ha-delay-ms H] [--json]   (as root; N = 1..=60, default 5; D, H = 0..=200 ms one way, default 10, H default D)");
    std::process::exit(2)
}

struct Args {
    secs: u64,
    /// One-way delay of the cn–wan and wan–site links in the route-optimisation comparison.
    delay_ms: u64,
    /// One-way delay of the wan–HA link (default: `delay_ms`).
    ha_delay_ms: Option<u64>,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        secs: 5,
        delay_ms: 10,
        ha_delay_ms: None,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => {
                a.secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|s| (1..=60).contains(s))
                    .unwrap_or_else(|| usage("--seconds needs a number from 1 to 60"));
            }
            "--delay-ms" => {
                a.delay_ms = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|s| (0..=200).contains(s))
                    .unwrap_or_else(|| usage("--delay-ms needs a number from 0 to 200"));
            }
            "--ha-delay-ms" => {
                a.ha_delay_ms = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|s| (0..=200).contains(s))
                        .unwrap_or_else(|| usage("--ha-delay-ms needs a number from 0 to 200")),
                );
            }
            "--json" => a.json = true,
            "-h" | "--help" => {
                usage("dataplane-bench: iperf3 through the daemons' tunnels vs plain routing, and route-optimised vs through the home agent")
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    a
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

fn run(secs: u64, json: bool) -> Result<Value, String> {
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
    if !json {
        println!("terminal on a1's link: on-link {on_link}, home address {}, group {group}; {secs} s per run", addr::HOA);
    }

    let mut rows = Vec::new();
    for (udp, port) in [(false, 5201u16), (true, 5203)] {
        let plain = measure(&site, on_link, port, secs, udp)?;
        let before = tree_packets(&site, group);
        let tunnel = measure(&site, addr::HOA, port + 1, secs, udp)?;
        let through_tree = tree_packets(&site, group).saturating_sub(before);
        rows.push((udp, plain, tunnel, through_tree));
    }
    let mut report = serde_json::Map::new();
    for (udp, plain, tunnel, through_tree) in &rows {
        let key = if *udp { "udp_64b_kpps" } else { "tcp_gbps" };
        report.insert(
            key.into(),
            serde_json::json!({"plain": value(plain), "home_address": value(tunnel), "tree_packets": through_tree}),
        );
    }
    stop(&mut site)?;
    if json {
        return Ok(Value::Object(report));
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
    Ok(Value::Object(report))
}

/// Stops the daemons and checks they left nothing behind.
fn stop(site: &mut Site) -> Result<(), String> {
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        if !st.is_some_and(|s| s.success()) {
            eprintln!(
                "{} in {} did not stop cleanly: {st:?}",
                site.daemon_of(node).unwrap_or("?"),
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

/// Average round-trip time (ms) of `count` UDP probes from the correspondent to an echo on
/// the terminal's home address, 20 ms apart (lost probes are left out; none answered: error).
fn rtt_ms(site: &Site, count: u32) -> Result<f64, String> {
    use std::net::UdpSocket;
    let port = 5290;
    let server = site
        .mn
        .enter(|| UdpSocket::bind((addr::HOA, port)))
        .map_err(|e| format!("echo on the home address: {e}"))?;
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let client = site
        .cn
        .enter(|| UdpSocket::bind((addr::CN, 0)))
        .map_err(|e| e.to_string())?;
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let echoed = std::sync::atomic::AtomicUsize::new(0);
    let rtts = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buf = [0u8; 64];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    if server.send_to(&buf[..n], from).is_ok() {
                        echoed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        });
        let mut rtts = Vec::new();
        for i in 0..count {
            let sent = std::time::Instant::now();
            if client.send_to(&i.to_be_bytes(), (addr::HOA, port)).is_err() {
                continue;
            }
            let mut buf = [0u8; 64];
            // Answers to earlier, late probes are skipped.
            while let Ok(n) = client.recv(&mut buf) {
                if buf[..n] == i.to_be_bytes() {
                    rtts.push(sent.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        rtts
    });
    if rtts.is_empty() {
        return Err(format!(
            "no UDP echo from the home address ({} of {count} probes echoed by the terminal)",
            echoed.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    Ok(rtts.iter().sum::<f64>() / rtts.len() as f64)
}

/// Packets (both directions) the WAN router's link to the home agent has carried so far.
fn ha_link_packets(site: &Site) -> Result<u64, String> {
    let router = site
        .wan_router
        .as_ref()
        .ok_or("the site has no WAN router")?;
    let out = router.try_sh(
        "cat /sys/class/net/ha0/statistics/rx_packets /sys/class/net/ha0/statistics/tx_packets",
    )?;
    Ok(out
        .split_whitespace()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

/// One side of the route-optimisation comparison: TCP, 64-byte UDP and RTT CN -> home address
/// with the home agent off the path, with or without the correspondent agent.
fn optimisation_side(
    secs: u64,
    delay_ms: u64,
    ha_delay_ms: u64,
    optimised: bool,
) -> Result<Value, String> {
    let mut opts = SiteOptions::new(if optimised { "dpro" } else { "dpha" });
    opts.log_level = "warn".into();
    opts.correspondent_agent = optimised;
    opts.wan_delay_ms = WanDelays {
        cn_ha: delay_ms,
        ha_sites: delay_ms,
        site_site: 0,
    };
    opts.wan_router = Some(WanRouter { ha_ms: ha_delay_ms });
    let mut site = Site::build(&opts).map_err(|e| e.to_string())?;
    site.start_daemons().map_err(|e| e.to_string())?;
    wait_for("the terminal registered", Duration::from_secs(20), || {
        let ha = site.status(Node::Ha).ok()?;
        (ha["bindings"][0]["coa"] == addr::MMA1.to_string()).then_some(())
    })
    .map_err(|e| e.to_string())?;
    if optimised {
        // The first packets through the home agent make the MMA bind the correspondent.
        wait_for("the correspondent bound", Duration::from_secs(20), || {
            let _ = rtt_ms(&site, 2);
            let st = site.status(Node::Cn).ok()?;
            (st["bindings"][0]["coa"] == addr::MMA1.to_string()).then_some(())
        })
        .map_err(|e| e.to_string())?;
    } else {
        // Warm the path (neighbour entries, MFC) as the optimised side's binding wait does.
        let _ = rtt_ms(&site, 5);
    }
    let ha_before = ha_link_packets(&site)?;
    let rtt = rtt_ms(&site, 20)?;
    let tcp = value(&measure(&site, addr::HOA, 5211, secs, false)?);
    let udp = value(&measure(&site, addr::HOA, 5213, secs, true)?);
    let ha_link = ha_link_packets(&site)?.saturating_sub(ha_before);
    if optimised {
        let st = site.status(Node::Cn).map_err(|e| e.to_string())?;
        if st["bindings"][0]["coa"] != addr::MMA1.to_string() {
            return Err(format!("the binding did not last the measurement: {st}"));
        }
    }
    stop(&mut site)?;
    Ok(serde_json::json!({
        "tcp_mbps": tcp * 1e3,
        "udp_64b_kpps": udp,
        "rtt_ms": rtt,
        "ha_link_packets": ha_link,
    }))
}

fn main() -> ExitCode {
    mipcast_netns_tests::cleanup::on_signals();
    let a = args();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("dataplane-bench builds network namespaces: run it as root");
        return ExitCode::FAILURE;
    }
    let ha_delay = a.ha_delay_ms.unwrap_or(a.delay_ms);
    let result = run(a.secs, a.json).and_then(|tunnels| {
        if !a.json {
            println!(
                "\nroute optimisation, home agent off the path: {} ms one-way on the cn-wan and wan-site links, {ha_delay} ms on wan-HA:",
                a.delay_ms
            );
        }
        let through_ha = optimisation_side(a.secs, a.delay_ms, ha_delay, false)?;
        let optimised = optimisation_side(a.secs, a.delay_ms, ha_delay, true)?;
        Ok((tunnels, through_ha, optimised))
    });
    match result {
        Ok((tunnels, through_ha, optimised)) => {
            let rtt = |v: &Value| v["rtt_ms"].as_f64().unwrap_or(0.0);
            let saved = rtt(&through_ha) - rtt(&optimised);
            if a.json {
                let doc = serde_json::json!({
                    "seconds": a.secs,
                    "tunnels_vs_plain": tunnels,
                    "route_optimisation": {
                        "topology": "wan_router",
                        "wan_delay_ms": a.delay_ms,
                        "ha_link_delay_ms": ha_delay,
                        "through_home_agent": through_ha,
                        "optimised": optimised,
                        "rtt_saved_ms": saved,
                        "expected_rtt_saved_ms": 4 * ha_delay,
                    },
                });
                println!("{doc}");
            } else {
                println!(
                    "{:<40} {:>16} {:>16}",
                    "", "through the HA", "route-optimised"
                );
                for (name, key) in [
                    ("TCP CN -> home address (Mbit/s)", "tcp_mbps"),
                    ("UDP 64 B delivered (kpps)", "udp_64b_kpps"),
                    ("UDP echo RTT CN -> home address (ms)", "rtt_ms"),
                    ("packets on the wan-HA link", "ha_link_packets"),
                ] {
                    println!(
                        "{:<40} {:>16.3} {:>16.3}",
                        name,
                        through_ha[key].as_f64().unwrap_or(0.0),
                        optimised[key].as_f64().unwrap_or(0.0)
                    );
                }
                println!(
                    "RTT saved by route optimisation: {saved:.3} ms (expected about 4 x {ha_delay} = {} ms)",
                    4 * ha_delay
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dataplane-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
