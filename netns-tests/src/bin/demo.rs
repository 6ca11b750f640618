//! The mipcast demo: the whole system in network namespaces with the real daemons, a TCP
//! connection to the terminal's home address, an intra-site and an inter-site move, told step
//! by step. Everything is removed at the end, also on Ctrl-C.
//!
//! ```text
//! sudo ./netns-tests/demo.sh        # builds in release mode, then runs this
//! ```
//! Topology and addresses: `mipcast_netns_tests::site`. Set MIPCAST_KEEP_SITE_DIR=1 to keep
//! the generated configs and daemon logs.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mipcast_netns_tests::capture::{tshark_fields, Capture};
use mipcast_netns_tests::flow::TcpFlow;
use mipcast_netns_tests::site::{addr, Node, Site, SiteError, SiteOptions};
use mipcast_netns_tests::wait::{self, pause, wait_for, WaitError};
use serde_json::Value;

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "The demo builds network namespaces: run it as root (sudo ./netns-tests/demo.sh)."
        );
        return ExitCode::FAILURE;
    }
    // Ctrl-C / SIGTERM: waits return Interrupted and the site is torn down in order; if that
    // takes too long, the namespaces and daemons are removed under it.
    mipcast_netns_tests::cleanup::on_signals();
    let result = run();
    // The site (daemons, namespaces) is gone once run() returns, whatever happened.
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if wait::interrupted() => {
            println!("\nInterrupted: the daemons were stopped and the namespaces deleted.");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    };
    let pid = format!("{}_", std::process::id());
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("mcdemo") && l.contains(&pid))
            .map(str::to_owned)
            .collect();
        if !ours.is_empty() {
            eprintln!("namespaces left behind: {ours:?}");
            return ExitCode::FAILURE;
        }
    }
    code
}

#[derive(Debug)]
enum DemoError {
    Site(SiteError),
    Check(String),
    Interrupted,
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Site(e) => write!(f, "{e}"),
            DemoError::Check(e) => write!(f, "{e}"),
            DemoError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl From<SiteError> for DemoError {
    fn from(e: SiteError) -> Self {
        DemoError::Site(e)
    }
}

impl From<WaitError> for DemoError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Interrupted => DemoError::Interrupted,
            other => DemoError::Site(SiteError::Wait(other)),
        }
    }
}

impl From<String> for DemoError {
    fn from(e: String) -> Self {
        DemoError::Check(e)
    }
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn say(text: &str) {
    println!("   {text}");
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("?")
}

/// The terminal's attachment (ifindex) and the registrations it holds, from its status.
fn mn_state(site: &Site) -> Option<(u64, Vec<(String, String)>)> {
    let st = site.status(Node::Mn).ok()?;
    let regs = st["registrations"]
        .as_array()?
        .iter()
        .map(|r| (str_of(r, "peer").to_owned(), str_of(r, "state").to_owned()))
        .collect();
    Some((st["attachment"]["ifindex"].as_u64()?, regs))
}

fn bound(regs: &[(String, String)], peer: Ipv6Addr) -> bool {
    regs.iter()
        .any(|(p, s)| *p == peer.to_string() && s == "bound")
}

fn describe_tree(site: &Site, source: Ipv6Addr, group: Ipv6Addr) {
    for node in [
        Node::Mma1,
        Node::C1,
        Node::A1,
        Node::A2,
        Node::Mma2,
        Node::A3,
    ] {
        for e in site
            .mfc(node)
            .into_iter()
            .filter(|e| e.source == source && e.group == group)
        {
            say(&format!(
                "{:>5}: in on {}, out on {} ({} packets so far)",
                node.name(),
                e.iif,
                e.oifs.join(", "),
                e.packets
            ));
        }
    }
}

/// Prints the TCP bytes delivered in each of the next `secs` seconds.
fn watch_tcp(flow: &TcpFlow, secs: u64) -> Result<(), DemoError> {
    for _ in 0..secs {
        let t = Instant::now();
        pause(Duration::from_secs(1))?;
        let (down, back) = (
            flow.received_between(t, t + Duration::from_secs(1)),
            flow.echoed_between(t, t + Duration::from_secs(1)),
        );
        say(&format!(
            "TCP: {:>4} kB reached the terminal, {:>4} kB came back (echo)",
            down / 1000,
            back / 1000
        ));
    }
    if let Some(e) = flow.errors().first() {
        return Err(DemoError::Check(format!("the TCP connection broke: {e}")));
    }
    Ok(())
}

/// Mobility Header captures on the terminal's three links.
fn mh_captures(site: &Site, name: &str) -> Result<Vec<Capture>, DemoError> {
    let mut caps = Vec::new();
    for i in ["e1", "e2", "e3"] {
        caps.push(Capture::start(
            &site.mn,
            i,
            "ip6 proto 135",
            &site.dir.join(format!("{name}-{i}.pcap")),
        )?);
    }
    Ok(caps)
}

/// The Binding Updates the captures saw: (time, destination, lifetime).
fn binding_updates(caps: Vec<Capture>) -> Result<Vec<(f64, String, String)>, DemoError> {
    let mut out = Vec::new();
    for f in caps.into_iter().map(Capture::finish) {
        for r in tshark_fields(
            &f,
            "mip6.mhtype == 5",
            &["frame.time_epoch", "ipv6.dst", "mip6.bu.lifetime"],
        )? {
            let t: f64 = r.first().and_then(|t| t.parse().ok()).unwrap_or(0.0);
            out.push((
                t,
                r.get(1).cloned().unwrap_or_default(),
                r.get(2).cloned().unwrap_or_default(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

fn name_of(a: &str) -> &'static str {
    match a.parse::<Ipv6Addr>() {
        Ok(x) if x == addr::MMA1 => "mma1",
        Ok(x) if x == addr::MMA2 => "mma2",
        Ok(x) if x == addr::HA => "the home agent",
        _ => "?",
    }
}

fn run() -> Result<(), DemoError> {
    let mut opts = SiteOptions::new("demo");
    opts.log_level = "info".into();
    step(1, "Building the network (10 namespaces, 11 links)");
    let mut site = Site::build(&opts)?;
    say("cn (correspondent) -- ha (home agent, home link 2001:db8:99::/64)");
    say("ha -- mma1 -- c1 (pim-lite core) -- a1, a2 (pim-lite access routers)     = site 1");
    say("ha -- mma2 -- a3 (pim-lite core + access router)                          = site 2");
    say("mn (mobile node): e1 on a1's link, e2 on a2's link, e3 on a3's link; radio quality e1 100, e2 0, e3 0");
    say(&format!("configs and logs: {}", site.dir.display()));

    step(2, "Starting the daemons");
    site.start_daemons()?;
    say(&format!("home-agent in ha ({}), mma in mma1 ({}) and mma2 ({}), pim-lite in c1, a1, a2, a3, mobile-node in mn", addr::HA, addr::MMA1, addr::MMA2));
    let (e1, e2, e3) = (
        u64::from(site.ifindex(Node::Mn, "e1").unwrap_or(0)),
        u64::from(site.ifindex(Node::Mn, "e2").unwrap_or(0)),
        u64::from(site.ifindex(Node::Mn, "e3").unwrap_or(0)),
    );

    step(3, "The mobile node attaches at a1 and registers");
    wait_for(
        "the terminal's registrations",
        Duration::from_secs(15),
        || {
            let (at, regs) = mn_state(&site)?;
            (at == e1 && bound(&regs, addr::MMA1) && bound(&regs, addr::HA)).then_some(())
        },
    )?;
    let mn = site.status(Node::Mn)?;
    let group: Ipv6Addr = str_of(&mn, "group")
        .parse()
        .map_err(|_| "no group in the terminal's status".to_owned())?;
    let m1 = site.status(Node::Mma1)?;
    let t = &m1["terminals"][0];
    say(&format!(
        "a1's router advertisement names mma1 ({}) in its MAP option.",
        addr::MMA1
    ));
    say(&format!(
        "The terminal registered its home address {} with mma1 from {} (its address on a1's link);",
        addr::HOA,
        str_of(t, "on_link")
    ));
    say(&format!(
        "mma1 tunnels its traffic to the terminal's own multicast group {group}."
    ));
    let ha = site.status(Node::Ha)?;
    let b = &ha["bindings"][0];
    say(&format!(
        "The home agent's binding: {} -> care-of address {} (mma1), sequence {}.",
        str_of(b, "hoa"),
        str_of(b, "coa"),
        b["sequence"]
    ));
    wait_for("the (mma1, G) tree", Duration::from_secs(5), || {
        site.mfc(Node::A1)
            .iter()
            .any(|e| e.group == group)
            .then_some(())
    })?;
    say("The multicast tree (S = mma1, G) the terminal's MLDv2 report built:");
    describe_tree(&site, addr::MMA1, group);

    step(
        4,
        "A TCP connection from the correspondent to the home address",
    );
    let flow = TcpFlow::start(
        &site.mn,
        &site.cn,
        addr::HOA,
        5001,
        1000,
        Duration::from_millis(5),
    )?;
    say(&format!(
        "{} -> [{}]:5001, 1000 bytes every 5 ms; the terminal echoes every byte back.",
        addr::CN,
        addr::HOA
    ));
    say("Down: cn -> ha -(IPv6-in-IPv6)-> mma1 -(to the group)-> c1 -> a1 -> mn. Up: mn -> mma1 -> ha -> cn, tunnelled too.");
    watch_tcp(&flow, 2)?;

    step(5, "Intra-site move: e2 (a2's link) gets better, e1 fades");
    let caps = mh_captures(&site, "intra")?;
    let t_move = Instant::now();
    site.set_quality("e2", 100)?;
    site.set_quality("e1", 30)?;
    wait_for("the terminal on e2", Duration::from_secs(5), || {
        (mn_state(&site)?.0 == e2).then_some(())
    })?;
    say(&format!(
        "The terminal switched to e2 after {} ms and joined (mma1, G) there with MLDv2.",
        t_move.elapsed().as_millis()
    ));
    wait_for("the tree to follow", Duration::from_secs(6), || {
        let a1_gone = !site.mfc(Node::A1).iter().any(|e| e.group == group);
        let a2_in = site.mfc(Node::A2).iter().any(|e| e.group == group);
        (a1_gone && a2_in).then_some(())
    })?;
    say(&format!("After {} ms a2 has grafted the branch and a1's is pruned (the old link was kept for 1 s, make before break):", t_move.elapsed().as_millis()));
    describe_tree(&site, addr::MMA1, group);
    watch_tcp(&flow, 2)?;
    let gap = flow.largest_gap(t_move, Instant::now());
    let bus = binding_updates(caps)?;
    say(&format!("Binding Updates sent during the move: {} (nothing left the site). Largest pause of the TCP stream: {:.0} ms.", bus.len(), gap.ms()));

    step(
        6,
        "Inter-site move: e3 (a3's link, site 2) gets better, e2 fades",
    );
    let caps = mh_captures(&site, "inter")?;
    let t_move = Instant::now();
    site.set_quality("e3", 100)?;
    site.set_quality("e2", 30)?;
    wait_for(
        "the home agent's binding to move to mma2",
        Duration::from_secs(10),
        || {
            let ha = site.status(Node::Ha).ok()?;
            (ha["bindings"][0]["coa"] == addr::MMA2.to_string()).then_some(())
        },
    )?;
    say(&format!(
        "After {} ms the home agent's binding points at mma2 ({}).",
        t_move.elapsed().as_millis(),
        addr::MMA2
    ));
    wait_for("the terminal on e3", Duration::from_secs(5), || {
        (mn_state(&site)?.0 == e3).then_some(())
    })?;
    wait_for("(mma2, G) at a3", Duration::from_secs(5), || {
        site.mfc(Node::A3)
            .iter()
            .any(|e| e.group == group)
            .then_some(())
    })?;
    watch_tcp(&flow, 3)?;
    let gap = flow.largest_gap(t_move, Instant::now());
    let bus = binding_updates(caps)?;
    say(&format!("The terminal sent {} Binding Updates:", bus.len()));
    let t0 = bus.first().map_or(0.0, |b| b.0);
    for (t, dst, lifetime) in &bus {
        let what = if lifetime == "0" {
            "deregistration, with a request to forward to the new address for 10 s"
        } else {
            "registration"
        };
        say(&format!(
            "  +{:>4.0} ms  to {} ({dst}): {what}",
            (t - t0) * 1000.0,
            name_of(dst)
        ));
    }
    let m1 = site.status(Node::Mma1)?;
    say(&format!(
        "mma1 now forwards late packets to {} until the grace period ends.",
        str_of(&m1["terminals"][0], "forward_to")
    ));
    say("The tree in site 2:");
    describe_tree(&site, addr::MMA2, group);
    say(&format!(
        "Largest pause of the TCP stream: {:.0} ms; the connection survived.",
        gap.ms()
    ));

    step(7, "Stopping everything (SIGTERM)");
    let errors = flow.stop();
    if let Some(e) = errors.first() {
        return Err(DemoError::Check(format!("the TCP connection broke: {e}")));
    }
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        let how = match st {
            Some(s) if s.success() => "stopped cleanly".to_owned(),
            Some(s) => format!("exited with {s}"),
            None => "did not stop within 10 s (killed)".to_owned(),
        };
        say(&format!(
            "{} in {}: {how}",
            node.daemon().unwrap_or("?"),
            node.name()
        ));
    }
    let left = site.leftovers()?;
    if left.is_empty() {
        say("Every namespace is back to its initial state: no routes, rules, proxy ND, MFC, nftables state left.");
    } else {
        return Err(DemoError::Check(format!(
            "kernel state left behind:\n{}",
            left.join("\n")
        )));
    }
    drop(site);
    say("Namespaces deleted.");
    Ok(())
}
