//! The whole system end to end with the real daemons (topology: `mipcast_netns_tests::site`):
//! the terminal registers through site 1, a TCP stream with an echo runs CN -> HoA through
//! HA -> mma1 -> (S,G) tree -> terminal, an intra-site move a1 -> a2 happens without a single
//! Mobility Header packet while the tree follows and the stream keeps flowing, an inter-site
//! move a2 -> a3 sends exactly three Binding Updates and the stream survives, and after
//! SIGTERM no namespace holds any state of ours.
//!
//! Runs the daemon binaries of the same build (`target/<profile>/`): `cargo test --workspace`
//! builds them; with `-p mipcast-netns-tests` alone, run `cargo build --workspace` first.
//! MIPCAST_KEEP_SITE_DIR=1 keeps configs, daemon logs and captures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mipcast_netns_tests::capture::{tshark_fields, Capture};
use mipcast_netns_tests::flow::TcpFlow;
use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, MfcEntry, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;
use serde_json::Value;

const TCP_PORT: u16 = 5001;
/// Quality of a link being left: usable, but worse than the new one by more than the
/// hysteresis (scores are preference 50 + quality).
const FADED: u8 = 30;

fn entry(site: &Site, node: Node, source: Ipv6Addr, group: Ipv6Addr) -> Option<MfcEntry> {
    site.mfc(node)
        .into_iter()
        .find(|e| e.source == source && e.group == group)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The mobile node's current attachment ifindex and MMA, from `mobile-node status --json`.
fn attachment(site: &Site) -> Option<(u64, String)> {
    let st = site.status(Node::Mn).ok()?;
    let a = &st["attachment"];
    Some((a["ifindex"].as_u64()?, a["mma"].as_str()?.to_owned()))
}

/// Every registration of the terminal is acknowledged (none outstanding) and one is with `peer`.
fn bound_with(st: &Value, peer: Ipv6Addr) -> bool {
    let regs = st["registrations"].as_array().cloned().unwrap_or_default();
    regs.iter()
        .any(|r| r["peer"] == peer.to_string() && r["state"] == "bound")
}

fn ha_binding(site: &Site) -> Option<(String, String)> {
    let st = site.status(Node::Ha).ok()?;
    let b = st["bindings"].as_array()?.first()?.clone();
    Some((b["hoa"].as_str()?.to_owned(), b["coa"].as_str()?.to_owned()))
}

fn pcap(site: &Site, name: &str) -> PathBuf {
    site.dir.join(format!("{name}.pcap"))
}

#[test]
#[ignore = "needs root"]
fn whole_system_registration_intra_and_inter_site_moves() {
    require_root();
    let t_start = Instant::now();
    let mut site = Site::build(&SiteOptions::new("e2e")).unwrap_or_else(|e| panic!("{e}"));
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    let (e1, e2, e3) = (
        u64::from(site.ifindex(Node::Mn, "e1").expect("e1")),
        u64::from(site.ifindex(Node::Mn, "e2").expect("e2")),
        u64::from(site.ifindex(Node::Mn, "e3").expect("e3")),
    );

    // --- Registration at a1: MMA1 then the home agent (CoA = MMA1).
    let mn = wait_for(
        "the terminal bound with mma1 and the home agent",
        Duration::from_secs(15),
        || {
            let st = site.status(Node::Mn).ok()?;
            (st["attachment"]["ifindex"].as_u64() == Some(e1)
                && bound_with(&st, addr::MMA1)
                && bound_with(&st, addr::HA))
            .then_some(st)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    let group: Ipv6Addr = mn["group"]
        .as_str()
        .and_then(|g| g.parse().ok())
        .expect("group in the MN status");
    assert!(group.segments()[0] == 0xff35, "terminal group {group}");
    let ha = site.status(Node::Ha).expect("home-agent status --json");
    let bindings = ha["bindings"].as_array().cloned().unwrap_or_default();
    assert_eq!(bindings.len(), 1, "{ha}");
    assert_eq!(
        (bindings[0]["hoa"].as_str(), bindings[0]["coa"].as_str()),
        (
            Some(&*addr::HOA.to_string()),
            Some(&*addr::MMA1.to_string())
        ),
        "{ha}"
    );
    let m1 = site.status(Node::Mma1).expect("mma status --json");
    let t = &m1["terminals"][0];
    assert_eq!(
        (
            t["hoa"].as_str(),
            t["group"].as_str(),
            t["home_agent"].as_str()
        ),
        (
            Some(&*addr::HOA.to_string()),
            Some(&*group.to_string()),
            Some(&*addr::HA.to_string())
        ),
        "{m1}"
    );
    assert_eq!(
        t["on_link"]
            .as_str()
            .map(|a| a.starts_with("2001:db8:1:1:")),
        Some(true),
        "BU from the a1 link: {m1}"
    );
    assert_eq!(
        site.status(Node::Mma2).expect("mma2 status")["terminals_registered"],
        0
    );
    println!(
        "registered: HoA {} -> CoA {} (mma1), group {group}, after {:.1} s",
        addr::HOA,
        addr::MMA1,
        t_start.elapsed().as_secs_f64()
    );

    // The (MMA1, G) tree: mma1's own entry into the site, c1 -> d1, a1 -> access link.
    let tree = wait_for(
        "(MMA1, G) tree mma1 -> c1 -> a1",
        Duration::from_secs(5),
        || {
            let m = entry(&site, Node::Mma1, addr::MMA1, group)?;
            let c = entry(&site, Node::C1, addr::MMA1, group)?;
            let a = entry(&site, Node::A1, addr::MMA1, group)?;
            (c.oifs == ["d1"] && a.oifs == ["acc0"]).then_some((m, c, a))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: c1 {:?} a1 {:?}",
            site.mfc(Node::C1),
            site.mfc(Node::A1)
        )
    });
    assert_eq!(
        (tree.0.iif.as_str(), tree.0.oifs.clone()),
        ("wan0", vec!["site0".to_owned()])
    );
    assert_eq!((tree.1.iif.as_str(), tree.2.iif.as_str()), ("up0", "up0"));

    // --- TCP CN -> HoA with an echo back.
    let flow = TcpFlow::start(
        &site.mn,
        &site.cn,
        addr::HOA,
        TCP_PORT,
        1000,
        Duration::from_millis(5),
    )
    .expect("TCP to the HoA");
    wait_for("TCP bytes both ways", Duration::from_secs(10), || {
        (flow.received() > 50_000 && flow.echoed() > 50_000).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {} down, {} echoed, {:?}",
            flow.received(),
            flow.echoed(),
            flow.errors()
        )
    });
    assert!(
        entry(&site, Node::A1, addr::MMA1, group).is_some_and(|e| e.packets > 0),
        "the stream goes through a1's MFC entry"
    );
    // A reference for the handover figures: the same measure over 2 s without any move
    // (scheduling noise on a loaded machine shows up here too).
    let t_calm = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let calm_gap = flow.largest_gap(t_calm, t_calm + Duration::from_secs(2));
    println!(
        "TCP CN -> HoA flowing: {} bytes down, {} echoed; largest gap without a move: {:.1} ms",
        flow.received(),
        flow.echoed(),
        calm_gap.ms()
    );

    // --- Intra-site move a1 -> a2: no Mobility Header anywhere; the tree follows.
    let caps: Vec<Capture> = [
        (Node::Mn, "e1"),
        (Node::Mn, "e2"),
        (Node::Mn, "e3"),
        (Node::Ha, "m1"),
    ]
    .iter()
    .map(|(n, i)| {
        Capture::start(
            site.ns(*n),
            i,
            "",
            &pcap(&site, &format!("intra-{}-{i}", n.name())),
        )
        .expect("tcpdump")
    })
    .collect();
    let mh_before = site.status(Node::Ha).expect("ha")["bindings"][0]["sequence"].clone();
    let t_move = Instant::now();
    // The old link fades but stays usable: the terminal moves because e2 is better, and
    // keeps its membership on e1 for the overlap (make before break).
    site.set_quality("e2", 100).unwrap();
    site.set_quality("e1", FADED).unwrap();
    wait_for("attachment on e2", Duration::from_secs(5), || {
        (attachment(&site)?.0 == e2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    let switched = t_move.elapsed();
    let c1_after = wait_for(
        "the tree to follow: a2 joined, a1 and c1's d1 branch pruned",
        Duration::from_secs(6),
        || {
            let c = entry(&site, Node::C1, addr::MMA1, group)?;
            let a2 = entry(&site, Node::A2, addr::MMA1, group)?;
            (c.oifs == ["d2"]
                && a2.oifs == ["acc0"]
                && entry(&site, Node::A1, addr::MMA1, group).is_none())
            .then_some(c)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: c1 {:?} a1 {:?} a2 {:?}",
            site.mfc(Node::C1),
            site.mfc(Node::A1),
            site.mfc(Node::A2)
        )
    });
    let tree_moved = t_move.elapsed();
    assert_eq!(c1_after.iif, "up0");
    std::thread::sleep((t_move + Duration::from_secs(4)).saturating_duration_since(Instant::now()));
    let per_second: Vec<u64> = (0..4)
        .map(|s| {
            flow.received_between(
                t_move + Duration::from_secs(s),
                t_move + Duration::from_secs(s + 1),
            )
        })
        .collect();
    let echo_per_second: Vec<u64> = (0..4)
        .map(|s| {
            flow.echoed_between(
                t_move + Duration::from_secs(s),
                t_move + Duration::from_secs(s + 1),
            )
        })
        .collect();
    // The move's window: the switch, the overlap on both links, and the prune of a1's branch.
    let intra_gap = flow.largest_gap(t_move, t_move + Duration::from_secs(3));
    let intra_echo_gap = flow.largest_echo_gap(t_move, t_move + Duration::from_secs(3));
    let files: Vec<PathBuf> = caps.into_iter().map(Capture::finish).collect();
    let mut tunnelled = 0;
    for f in &files {
        let mh =
            tshark_fields(f, "mipv6", &["ipv6.src", "ipv6.dst", "mip6.mhtype"]).expect("tshark");
        assert!(
            mh.is_empty(),
            "Mobility Header during the intra-site move in {}: {mh:?}",
            f.display()
        );
        tunnelled += tshark_fields(f, "ipv6.nxt == 41", &["frame.number"])
            .expect("tshark")
            .len();
    }
    assert!(
        tunnelled > 100,
        "the captures saw the tunnelled stream ({tunnelled} packets)"
    );
    assert_eq!(
        site.status(Node::Ha).expect("ha")["bindings"][0]["sequence"],
        mh_before,
        "no new binding at the HA"
    );
    assert!(
        flow.errors().is_empty(),
        "TCP broke during the intra-site move: {:?}",
        flow.errors()
    );
    assert!(
        per_second.iter().all(|b| *b > 0),
        "bytes in every second after the move: {per_second:?}"
    );
    assert!(
        echo_per_second.iter().all(|b| *b > 0),
        "echo in every second after the move: {echo_per_second:?}"
    );
    println!(
        "intra-site a1 -> a2: link switched in {:.0} ms, tree moved in {:.0} ms; largest gap {:.1} ms downlink (at {:+.0} ms), {:.1} ms echo (at {:+.0} ms); bytes/s after: {per_second:?}",
        ms(switched), ms(tree_moved), intra_gap.ms(), intra_gap.offset_ms(t_move), intra_echo_gap.ms(), intra_echo_gap.offset_ms(t_move)
    );

    // --- Inter-site move a2 -> a3.
    let caps: Vec<Capture> = ["e1", "e2", "e3"]
        .iter()
        .map(|i| {
            Capture::start(&site.mn, i, "", &pcap(&site, &format!("inter-mn-{i}")))
                .expect("tcpdump")
        })
        .collect();
    let received_before = flow.received();
    let t_move2 = Instant::now();
    site.set_quality("e3", 100).unwrap();
    site.set_quality("e2", FADED).unwrap();
    wait_for(
        "the home agent's binding to point at mma2",
        Duration::from_secs(10),
        || (ha_binding(&site)?.1 == addr::MMA2.to_string()).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Ha)));
    let ha_moved = t_move2.elapsed();
    let new_coa = wait_for(
        "the terminal bound with mma2",
        Duration::from_secs(5),
        || {
            let st = site.status(Node::Mn).ok()?;
            let on_e3 = st["attachment"]["ifindex"].as_u64() == Some(e3)
                && bound_with(&st, addr::MMA2)
                && bound_with(&st, addr::HA);
            let m2 = site.status(Node::Mma2).ok()?;
            let t = m2["terminals"].as_array()?.first()?.clone();
            (on_e3 && t["state"] == "registered")
                .then(|| t["on_link"].as_str().map(str::to_owned))
                .flatten()
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} {:?}",
            site.status(Node::Mn),
            site.status(Node::Mma2)
        )
    });
    assert!(
        new_coa.starts_with("2001:db8:2:3:"),
        "on-link address on a3's link: {new_coa}"
    );
    // The old link still works (make before break): the forwarding request goes shortly
    // before the overlap (1 s) ends, out of the old link.
    wait_for(
        "mma1 forwarding to the new on-link address",
        Duration::from_secs(3),
        || {
            let m1 = site.status(Node::Mma1).ok()?;
            (m1["terminals"][0]["forward_to"].as_str() == Some(&*new_coa)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mma1)));
    wait_for("(MMA2, G) at a3", Duration::from_secs(5), || {
        entry(&site, Node::A3, addr::MMA2, group).filter(|e| e.oifs == ["acc0"])
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.mfc(Node::A3)));
    wait_for(
        "bytes after the inter-site move",
        Duration::from_secs(15),
        || (flow.received() > received_before + 20_000).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", flow.errors()));
    std::thread::sleep(
        (t_move2 + Duration::from_secs(6)).saturating_duration_since(Instant::now()),
    );
    let inter_gap = flow.largest_gap(t_move2, t_move2 + Duration::from_secs(4));
    let inter_echo_gap = flow.largest_echo_gap(t_move2, t_move2 + Duration::from_secs(4));
    let last_second = flow.received_between(
        t_move2 + Duration::from_secs(5),
        t_move2 + Duration::from_secs(6),
    );
    assert!(
        last_second > 0,
        "the stream flows again after the inter-site move"
    );
    assert!(
        flow.errors().is_empty(),
        "TCP broke during the inter-site move: {:?}",
        flow.errors()
    );

    // Exactly three BUs on the terminal's links: new MMA, home agent, old MMA (dereg + forwarding).
    let mut bus = Vec::new();
    for f in caps.into_iter().map(Capture::finish) {
        bus.extend(
            tshark_fields(
                &f,
                "mip6.mhtype == 5",
                &[
                    "frame.time_epoch",
                    "ipv6.dst",
                    "mip6.bu.lifetime",
                    "mip6.acoa.acoa",
                    "mip6.em.data",
                ],
            )
            .expect("tshark"),
        );
    }
    bus.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let dsts: Vec<&str> = bus.iter().map(|b| b[1].as_str()).collect();
    assert_eq!(
        dsts,
        [
            addr::MMA2.to_string(),
            addr::HA.to_string(),
            addr::MMA1.to_string()
        ],
        "BUs on the wire: {bus:?}"
    );
    assert_ne!(bus[0][2], "0", "registration with mma2: {bus:?}");
    assert_eq!(
        bus[1][3],
        addr::MMA2.to_string(),
        "home registration with CoA = mma2: {bus:?}"
    );
    assert_eq!(bus[2][2], "0", "deregistration with mma1: {bus:?}");
    // Experimental option, sub-type 3 (forwarding request): the new on-link address.
    let coa_hex: String = new_coa
        .parse::<Ipv6Addr>()
        .unwrap()
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        bus[2][4]
            .replace(':', "")
            .starts_with(&format!("03{coa_hex}")),
        "forwarding request to {new_coa}: {bus:?}"
    );
    println!(
        "inter-site a2 -> a3: HA binding moved in {:.0} ms; largest gap {:.1} ms downlink (at {:+.0} ms), {:.1} ms echo (at {:+.0} ms)",
        ms(ha_moved), inter_gap.ms(), inter_gap.offset_ms(t_move2), inter_echo_gap.ms(), inter_echo_gap.offset_ms(t_move2)
    );

    // --- Teardown: SIGTERM everything; nothing of ours is left in any namespace.
    let errors = flow.stop();
    assert!(errors.is_empty(), "{errors:?}");
    // The snapshot comparison sees the daemons' state while they run (so it can fail).
    let live = site.leftovers().expect("kernel snapshots");
    // No "proxy-nd:": the home agent answers for home addresses in user space by default
    // (home_link.proxy: user) and installs no proxy entries; leftovers of them are still
    // looked for below.
    for section in [
        "routes:",
        "rules:",
        "mfc:",
        "mifs:",
        "nftables:",
        "seg6-tunsrc:",
        "addresses:",
    ] {
        assert!(
            live.iter().any(|l| l.contains(section)),
            "no daemon state seen in {section}\n{}",
            live.join("\n")
        );
    }
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        assert!(
            st.is_some_and(|s| s.success()),
            "{} exit status {st:?}:\n{}",
            node.name(),
            site.log(node)
        );
    }
    let left = site.leftovers().expect("kernel snapshots");
    assert!(
        left.is_empty(),
        "kernel state left behind:\n{}",
        left.join("\n")
    );
    println!("whole test: {:.1} s", t_start.elapsed().as_secs_f64());
}
