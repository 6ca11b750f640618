//! Route optimisation (issue 12) with the real correspondent agent on the standard topology
//! (`SiteOptions::correspondent_agent`): the agent in `cn` is driven by Binding Updates played
//! from the MMA's own address (as the MMA's route-optimisation side will send them) and by a
//! forger on an access link. Asserted on the correspondent's kernel state, its answers, and
//! captured traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mipcast_netns_tests::capture::{tshark_fields, Capture};
use mipcast_netns_tests::flow::TcpFlow;
use mipcast_netns_tests::mh_client::{Bu, MhClient, Reply};
use mipcast_netns_tests::site::{
    addr, metrics_addr, Node, Site, SiteOptions, KEY_CN_MMA, SPI_CN_MMA1, SPI_CN_MMA2,
};
use mipcast_netns_tests::wait::wait_for;
use mipcast_netns_tests::{require_root, udp_send, UdpProbe};
use mipcast_wire::mh::bu_flags;

/// A host on a1's access link that holds no key.
const FORGER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 1, 0, 0, 0, 0x66);
const UDP_PORT: u16 = 5104;

/// The correspondent's routes and rules that are ours (protocol 158), and its decap table.
fn cn_kernel(site: &Site) -> String {
    site.cn.sh(
        "ip -6 route show table all proto 158; ip -6 rule show | grep -v 'lookup local\\|lookup main\\|lookup default' || true",
    )
}

fn bindings(site: &Site) -> Vec<serde_json::Value> {
    site.status(Node::Cn).unwrap()["bindings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Sends `bu` from `src` in `node` to the correspondent and returns the answer's status.
fn exchange(site: &Site, node: Node, src: Ipv6Addr, bu: &Bu) -> Option<u8> {
    let bytes = bu.bytes();
    site.ns(node).enter(|| {
        let client = MhClient::bind(src, addr::CN, Duration::from_secs(2)).unwrap();
        client.send(&bytes).unwrap();
        match client.recv() {
            Ok(Some(Reply::Ack { status, .. })) => Some(status),
            _ => None,
        }
    })
}

/// A route-optimisation BU as the MMA sends it: A flag, no H, signed with its SA.
fn mma_bu(seq: u16, lifetime_units: u16) -> Bu {
    let mut bu = Bu::new(seq, addr::HOA, addr::MMA1, SPI_CN_MMA1, &KEY_CN_MMA);
    bu.flags = bu_flags::ACK;
    bu.lifetime = lifetime_units;
    bu
}

#[test]
#[ignore = "needs root"]
fn correspondent_binds_authenticated_mmas_only_and_cleans_up() {
    require_root();
    let mut opts = SiteOptions::new("ro");
    opts.correspondent_agent = true;
    let mut site = Site::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    site.start_node(Node::Cn).unwrap_or_else(|e| panic!("{e}"));
    site.a1
        .sh(&format!("ip -6 addr add {FORGER}/128 dev acc0 nodad"));
    let idle = cn_kernel(&site);
    assert!(
        idle.contains("encap seg6local action End.DT6") && !idle.contains("lookup 3610"),
        "{idle}"
    );

    // Forgery: a host on an access link claims the terminal's home address, with no key,
    // a guessed key, and the MMA's address as care-of address.
    let unsigned = Bu {
        key: None,
        ..mma_bu(1, 10)
    };
    let mut guessed = mma_bu(2, 10);
    guessed.key = Some(vec![0x11; 32]);
    let mut as_mma = guessed.clone();
    as_mma.sequence = 3;
    as_mma.alternate_coa = Some(addr::MMA1);
    for (what, bu) in [
        ("unsigned", &unsigned),
        ("guessed key", &guessed),
        ("MMA as CoA", &as_mma),
    ] {
        let bu = Bu {
            coa: FORGER,
            ..bu.clone()
        };
        assert_eq!(exchange(&site, Node::A1, FORGER, &bu), Some(146), "{what}");
    }
    assert_eq!(cn_kernel(&site), idle, "a forged BU changed the kernel");
    assert!(bindings(&site).is_empty());

    // The MMA binds the home address: encap route to it, decap rule for its tunnels.
    assert_eq!(
        exchange(&site, Node::Mma1, addr::MMA1, &mma_bu(1, 10)),
        Some(0)
    );
    let bound = cn_kernel(&site);
    let route = bound
        .lines()
        .find(|l| l.starts_with(&addr::HOA.to_string()))
        .unwrap_or_else(|| panic!("no route for the home address:\n{bound}"));
    assert!(
        route.contains("encap seg6 mode encap") && route.contains(&addr::MMA1.to_string()),
        "{route}"
    );
    assert!(
        bound.contains(&format!(
            "from {} to {} ipproto ipv6 lookup 3610",
            addr::MMA1,
            addr::CN
        )),
        "{bound}"
    );
    let b = bindings(&site);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["coa"], addr::MMA1.to_string());

    // Applications on the correspondent send to the home address unmodified: on the wire the
    // packet is tunnelled to the MMA, never sent to the home address in the clear.
    let pcap = site.dir.join("cn-wan0.pcap");
    let cap = Capture::start(&site.cn, "wan0", "ip6", &pcap).unwrap();
    for i in 0..3 {
        udp_send(
            &site.cn,
            &addr::CN.to_string(),
            &addr::HOA.to_string(),
            UDP_PORT,
            &format!("ro-{i}"),
        );
    }
    let pcap = cap.finish();
    // (The MMA in this test runs no daemon: it answers with ICMPv6 errors, left out here.)
    let rows = tshark_fields(
        &pcap,
        &format!("udp.dstport == {UDP_PORT} && !icmpv6"),
        &["ipv6.src", "ipv6.dst"],
    )
    .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows {
        assert_eq!(
            (r[0].as_str(), r[1].as_str()),
            (
                format!("{},{}", addr::CN, addr::CN).as_str(),
                format!("{},{}", addr::MMA1, addr::HOA).as_str()
            ),
            "outer packet CN -> MMA, inner CN -> home address"
        );
    }

    // A forged deregistration changes nothing; the MMA's own removes everything.
    let mut forged_dereg = mma_bu(4, 0);
    forged_dereg.key = Some(vec![0x22; 32]);
    forged_dereg.coa = FORGER;
    assert_eq!(exchange(&site, Node::A1, FORGER, &forged_dereg), Some(146));
    assert_eq!(cn_kernel(&site), bound);
    assert_eq!(
        exchange(&site, Node::Mma1, addr::MMA1, &mma_bu(2, 0)),
        Some(0)
    );
    assert_eq!(cn_kernel(&site), idle, "deregistration left state behind");
    assert!(bindings(&site).is_empty());

    // Bound again, then SIGTERM: nothing of ours is left in any namespace.
    assert_eq!(
        exchange(&site, Node::Mma1, addr::MMA1, &mma_bu(3, 10)),
        Some(0)
    );
    site.a1.sh(&format!("ip -6 addr del {FORGER}/128 dev acc0"));
    for (node, st) in site.stop_daemons(Duration::from_secs(5)) {
        assert!(st.is_some_and(|s| s.success()), "{node:?}: {st:?}");
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}

#[test]
#[ignore = "needs root"]
fn correspondent_restores_after_a_crash_and_reloads_its_mmas() {
    require_root();
    let mut opts = SiteOptions::new("rr");
    opts.correspondent_agent = true;
    let mut site = Site::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    site.start_node(Node::Cn).unwrap_or_else(|e| panic!("{e}"));
    let first = mma_bu(1, 10);
    assert_eq!(exchange(&site, Node::Mma1, addr::MMA1, &first), Some(0));
    let bound = cn_kernel(&site);

    // A crash leaves the kernel state; the restart restores the binding from the journal,
    // reconciles to the same state, and still knows the last timestamp (a replay is 144).
    assert!(site.kill_node(Node::Cn).is_some());
    site.start_node(Node::Cn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bindings(&site).len(), 1);
    assert_eq!(cn_kernel(&site), bound);
    assert_eq!(exchange(&site, Node::Mma1, addr::MMA1, &first), Some(144));

    // SIGHUP with MMA1 no longer configured: its BUs are refused (unknown SPI), the binding
    // it holds is kept; MMA2 takes the home address over.
    let cfg = site.config_path(Node::Cn);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let without_mma1: String = text
        .lines()
        .filter(|l| !l.contains(&format!("{}/128", addr::MMA1)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without_mma1);
    std::fs::write(&cfg, without_mma1).unwrap();
    assert!(site.signal_node(Node::Cn, nix::sys::signal::Signal::SIGHUP));
    wait_for("the reload", Duration::from_secs(5), || {
        site.log(Node::Cn)
            .contains("configuration reloaded")
            .then_some(())
    })
    .unwrap();
    assert_eq!(
        exchange(&site, Node::Mma1, addr::MMA1, &mma_bu(2, 10)),
        Some(146)
    );
    assert_eq!(cn_kernel(&site), bound);
    let mut from_mma2 = Bu::new(4, addr::HOA, addr::MMA2, SPI_CN_MMA2, &KEY_CN_MMA);
    from_mma2.flags = bu_flags::ACK;
    from_mma2.lifetime = 10;
    assert_eq!(exchange(&site, Node::Mma2, addr::MMA2, &from_mma2), Some(0));
    let moved = cn_kernel(&site);
    assert!(
        moved.contains(&format!(
            "from {} to {} ipproto ipv6 lookup 3610",
            addr::MMA2,
            addr::CN
        )) && !moved.contains(&format!("from {} ", addr::MMA1)),
        "{moved}"
    );
    for (node, st) in site.stop_daemons(Duration::from_secs(5)) {
        assert!(st.is_some_and(|s| s.success()), "{node:?}: {st:?}");
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}

const TCP_PORT: u16 = 5105;

fn registered(site: &Site) -> bool {
    site.status(Node::Mma1)
        .ok()
        .and_then(|s| s["terminals_registered"].as_u64())
        == Some(1)
        && site
            .status(Node::Ha)
            .ok()
            .and_then(|s| s["bindings"].as_array().map(Vec::len))
            == Some(1)
}

/// Packets of the home address tunnelled by the home agent (its home address as the outer
/// source or destination), or on the home link, seen while `during` runs. (The `ha` namespace
/// is also the WAN router between the correspondent and the sites: route-optimised tunnels
/// CN <-> MMA cross it as plain forwarded packets, which are not the home agent's.)
/// `mma` is the MMA serving the terminal, whose optimised traffic must show on the WAN side.
fn through_ha(site: &Site, tag: &str, mma: Node, during: impl FnOnce()) -> usize {
    let (mma_addr, mma_if) = match mma {
        Node::Mma2 => (addr::MMA2, "m2"),
        _ => (addr::MMA1, "m1"),
    };
    let ifs = ["wan0", mma_if, "home0"];
    let caps: Vec<_> = ifs
        .iter()
        .map(|ifname| {
            let pcap = site.dir.join(format!("{tag}-ha-{ifname}.pcap"));
            Capture::start(&site.ha, ifname, "ip6", &pcap).unwrap()
        })
        .collect();
    during();
    caps.into_iter()
        .zip(ifs)
        .map(|(c, ifname)| {
            let pcap = c.finish();
            let filter = if ifname == "home0" {
                format!("ipv6.addr == {}", addr::HOA)
            } else {
                format!("ipv6.addr == {} && ipv6.addr == {}", addr::HOA, addr::HA)
            };
            let rows = tshark_fields(&pcap, &filter, &["frame.number"]).unwrap();
            // The optimised path's packets are on the WAN interfaces all the same.
            if ifname != "home0" {
                let direct = tshark_fields(
                    &pcap,
                    &format!("ipv6.addr == {} && ipv6.addr == {mma_addr}", addr::HOA),
                    &["frame.number"],
                )
                .unwrap();
                assert!(!direct.is_empty(), "no optimised traffic seen on {ifname}");
            }
            rows.len()
        })
        .sum()
}

/// 002 FIG 5 and FIG 7 with the real daemons: the MMA sees the CN's flow to the terminal
/// arrive through the home agent (kernel sighting), binds the CN's agent, and from then on
/// TCP and UDP go CN <-> MMA directly in both directions; a correspondent without an agent
/// (the home link's host) keeps going through the home agent and gets a bounded number of
/// BUs; when the terminal comes home the CN's binding is removed.
#[test]
#[ignore = "needs root"]
fn fig5_traffic_skips_the_home_agent_once_the_mma_bound_the_correspondent() {
    require_root();
    let mut opts = SiteOptions::new("ro5");
    opts.correspondent_agent = true;
    let mut site = Site::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the terminal registered at mma1 and the home agent",
        Duration::from_secs(15),
        || registered(&site).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // A plain correspondent (no agent) talks to the terminal during the whole test.
    let home_pcap = site.dir.join("home-mh.pcap");
    let home_cap = Capture::start(&site.home, "home0", "ip6 proto 135", &home_pcap).unwrap();
    let probe = UdpProbe::bind(&site.mn, &addr::HOA.to_string(), 5106);
    let started = Instant::now();

    let flow = TcpFlow::start(
        &site.mn,
        &site.cn,
        addr::HOA,
        TCP_PORT,
        500,
        Duration::from_millis(20),
    )
    .expect("TCP to the home address");
    let bound = wait_for(
        "the CN's agent bound by mma1",
        Duration::from_secs(15),
        || {
            udp_send(
                &site.home,
                &addr::HOME_HOST.to_string(),
                &addr::HOA.to_string(),
                5106,
                "plain",
            );
            let b = bindings(&site);
            (b.len() == 1 && b[0]["coa"] == addr::MMA1.to_string()).then_some(b)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            site.mma1
                .sh("nft list ruleset; ip -6 rule; ip -6 route show table all | grep -v fe80"),
            site.log(Node::Mma1)
        )
    });
    assert_eq!(bound[0]["hoa"], addr::HOA.to_string());
    let uplink = site.mma1.sh("ip -6 route show table all proto 158");
    assert!(
        uplink.contains(&format!("{} from {}", addr::CN, addr::HOA)),
        "reverse route in the uplink table: {uplink}"
    );

    // Both directions of TCP and UDP CN -> HoA now avoid the home agent.
    let udp = UdpProbe::bind(&site.mn, &addr::HOA.to_string(), UDP_PORT);
    let (down0, up0) = (flow.received(), flow.echoed());
    let seen = through_ha(&site, "ro", Node::Mma1, || {
        for i in 0..5 {
            udp_send(
                &site.cn,
                &addr::CN.to_string(),
                &addr::HOA.to_string(),
                UDP_PORT,
                &format!("ro-{i}"),
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    });
    let got = (0..5)
        .filter(|_| udp.recv(Duration::from_secs(1)).is_some())
        .count();
    assert_eq!(got, 5, "UDP CN -> home address over the optimised path");
    assert!(
        flow.received() > down0 + 10_000 && flow.echoed() > up0 + 10_000,
        "TCP both ways while optimised: down {down0} -> {}, back {up0} -> {}, {:?}\ncn: {}\nmma1: {}",
        flow.received(),
        flow.echoed(),
        flow.errors(),
        site.cn.sh("ip -6 route show table all proto 158; ip -6 rule"),
        site.mma1.sh("ip -6 route show table all proto 158"),
    );
    assert_eq!(
        seen, 0,
        "packets of the terminal crossed the home agent after the binding"
    );

    // The plain correspondent kept reaching the terminal through the home agent, and got
    // max_attempts (3) BUs, then nothing during its hold.
    // Keep its flow alive past the MMA's attempts (1 + 2 + 4 s) into the hold.
    while started.elapsed() < Duration::from_secs(10) {
        udp_send(
            &site.home,
            &addr::HOME_HOST.to_string(),
            &addr::HOA.to_string(),
            5106,
            "plain",
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    while probe.recv(Duration::from_millis(100)).is_some() {}
    udp_send(
        &site.home,
        &addr::HOME_HOST.to_string(),
        &addr::HOA.to_string(),
        5106,
        "still",
    );
    assert_eq!(
        probe
            .recv(Duration::from_secs(2))
            .map(|(m, _)| m)
            .as_deref(),
        Some("still"),
        "plain correspondent via the home agent"
    );
    let pcap = home_cap.finish();
    // tshark decodes them as standard correspondent BUs: A set, H clear.
    let bus = tshark_fields(
        &pcap,
        &format!("mip6.mhtype == 5 && ipv6.dst == {}", addr::HOME_HOST),
        &["mip6.bu.a_flag", "mip6.bu.h_flag"],
    )
    .unwrap();
    for r in &bus {
        assert!(
            matches!(r[0].as_str(), "1" | "True") && matches!(r[1].as_str(), "0" | "False"),
            "BU flags as tshark reads them: {r:?}"
        );
    }

    assert_eq!(
        bus.len(),
        3,
        "BUs to a correspondent without an agent: {bus:?}"
    );
    // The MMA's metrics say the same.
    let metrics = site
        .mma1
        .enter(|| mipcast_daemon::metrics::fetch(metrics_addr("mma"), "/metrics"))
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert!(value("mma_route_optimisation_binding_updates_sent_total") >= 4.0);
    assert!(value("mma_route_optimisation_sightings_total") >= 2.0);
    assert!(value("mma_route_optimisation_events_total{event=\"bound\"}") >= 1.0);
    assert!(value("mma_route_optimisation_events_total{event=\"on_hold\"}") >= 1.0);
    assert_eq!(value("mma_route_optimisation_correspondents_bound"), 1.0);

    // Errors while the traffic ran (stopping may itself cut a write short: not counted).
    let errors = flow.errors();
    assert!(errors.is_empty(), "{errors:?}");
    drop(flow.stop());
    for (node, st) in site.stop_daemons(Duration::from_secs(5)) {
        assert!(st.is_some_and(|s| s.success()), "{node:?}: {st:?}");
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}

/// The correspondent agent's binding of the home address, if any: its care-of address.
fn cn_coa(site: &Site) -> Option<String> {
    let b = bindings(site);
    (b.len() == 1).then(|| b[0]["coa"].as_str().unwrap_or_default().to_owned())
}

/// The site of `opts` running, the terminal registered at mma1, a TCP flow CN <-> home address
/// going, and the CN's agent bound by mma1.
fn bound_with_flow(opts: &SiteOptions) -> (Site, TcpFlow) {
    let mut site = Site::build(opts).unwrap_or_else(|e| panic!("{e}"));
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the terminal registered at mma1 and the home agent",
        Duration::from_secs(15),
        || registered(&site).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let flow = TcpFlow::start(
        &site.mn,
        &site.cn,
        addr::HOA,
        TCP_PORT,
        500,
        Duration::from_millis(20),
    )
    .expect("TCP to the home address");
    wait_for(
        "the CN's agent bound by mma1",
        Duration::from_secs(15),
        || (cn_coa(&site)? == addr::MMA1.to_string()).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", site.log(Node::Mma1)));
    (site, flow)
}

/// 002 FIG 7: the terminal comes home; the MMA deregisters it at the correspondent, whose
/// binding, route and rule go, and the correspondent's traffic reaches the home address
/// natively (no tunnel) while the TCP connection carries on.
#[test]
#[ignore = "needs root"]
fn fig7_return_home_removes_the_correspondents_binding() {
    require_root();
    let mut opts = SiteOptions::new("ro7");
    opts.correspondent_agent = true;
    opts.home_link = true;
    let (mut site, flow) = bound_with_flow(&opts);
    let idle_route = |site: &Site| {
        !cn_kernel(site)
            .lines()
            .any(|l| l.starts_with(&addr::HOA.to_string()))
    };
    assert!(!idle_route(&site));

    // Home: the home link gets better, site 1's link fades but stays usable.
    site.set_quality("e4", 100).unwrap();
    site.set_quality("e1", 30).unwrap();
    wait_for(
        "the correspondent's binding removed",
        Duration::from_secs(15),
        || (bindings(&site).is_empty() && idle_route(&site)).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", cn_kernel(&site), site.log(Node::Mma1)));
    let uplink = site.mma1.sh("ip -6 route show table all proto 158");
    assert!(
        !uplink.contains(&format!("{} from {}", addr::CN, addr::HOA)),
        "reverse route left at mma1: {uplink}"
    );

    // Traffic flows direct: TCP to the home address leaves the CN untunnelled, and arrives.
    let pcap = site.dir.join("cn-home.pcap");
    let cap = Capture::start(&site.cn, "wan0", "ip6", &pcap).unwrap();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let pcap = cap.finish();
    assert!(
        flow.received_between(t, Instant::now()) > 0,
        "no bytes at home"
    );
    let native = tshark_fields(
        &pcap,
        &format!("ipv6.dst == {} && tcp", addr::HOA),
        &["ipv6.nxt"],
    )
    .unwrap();
    assert!(
        !native.is_empty(),
        "no TCP to the home address on the CN's link"
    );
    assert!(
        native.iter().all(|r| r[0] == "6"),
        "tunnelled packets to the home address after the return home: {native:?}"
    );
    // Errors while the traffic ran (stopping may itself cut a write short: not counted).
    let errors = flow.errors();
    assert!(errors.is_empty(), "{errors:?}");
    drop(flow.stop());
    for (node, st) in site.stop_daemons(Duration::from_secs(5)) {
        assert!(st.is_some_and(|s| s.success()), "{node:?}: {st:?}");
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}

/// 002 FIG 6 with route optimisation and context transfer: the terminal moves a1 (mma1) ->
/// a3 (mma2) while the correspondent, bound to mma1, talks to it. mma2 learns the CN from
/// mma1's context (one MMA-MMA round trip) and binds it at once, without waiting for a
/// sighting of the CN's traffic; the CN's binding moves to mma2; TCP carries on both ways and
/// nothing of the terminal crosses the home agent afterwards.
#[test]
#[ignore = "needs root"]
fn fig6_inter_site_move_rebinds_the_correspondent_from_the_transferred_context() {
    require_root();
    let mut opts = SiteOptions::new("ro6");
    opts.correspondent_agent = true;
    opts.mma_peers = true;
    let (mut site, flow) = bound_with_flow(&opts);

    // The move, captured at mma2's WAN side and on its link to mma1.
    let wan_pcap = site.dir.join("ro6-mma2-wan0.pcap");
    let peer_pcap = site.dir.join("ro6-mma2-peer0.pcap");
    let wan_cap = Capture::start(&site.mma2, "wan0", "ip6 proto 135", &wan_pcap).unwrap();
    let peer_cap = Capture::start(&site.mma2, "peer0", "ip6 proto 135", &peer_pcap).unwrap();
    let (down0, up0) = (flow.received(), flow.echoed());
    site.set_quality("e3", 100).unwrap();
    site.set_quality("e1", 30).unwrap();
    wait_for(
        "the CN's binding moved to mma2",
        Duration::from_secs(15),
        || (cn_coa(&site)? == addr::MMA2.to_string()).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", bindings(&site), site.log(Node::Mma2)));
    std::thread::sleep(Duration::from_millis(500));
    let (wan, peer) = (wan_cap.finish(), peer_cap.finish());

    // mma2 sent the CN a BU right after mma1's Context Reply (the sighting interval is 2 s;
    // a BU prompted by the CN's own traffic would come later).
    let fields = ["frame.time_epoch", "ipv6.src", "ipv6.dst", "mip6.mhtype"];
    let reply_at = tshark_fields(&peer, "mip6.mhtype == 6", &fields)
        .unwrap()
        .iter()
        .find(|r| r[1] == addr::MMA1.to_string() && r[2] == addr::MMA2.to_string())
        .map(|r| r[0].parse::<f64>().unwrap())
        .unwrap_or_else(|| panic!("no Context Reply from mma1 on peer0"));
    let bu_at = tshark_fields(&wan, "mip6.mhtype == 5", &fields)
        .unwrap()
        .iter()
        .find(|r| r[1] == addr::MMA2.to_string() && r[2] == addr::CN.to_string())
        .map(|r| r[0].parse::<f64>().unwrap())
        .unwrap_or_else(|| panic!("no BU from mma2 to the CN"));
    let after_ms = (bu_at - reply_at) * 1000.0;
    println!("fig6: mma2's BU to the CN {after_ms:.1} ms after mma1's Context Reply");
    // (Two captures on two interfaces: their timestamps may disagree by a fraction of a ms.)
    assert!(
        (-5.0..200.0).contains(&after_ms),
        "the BU to the CN follows the context at once: {after_ms:.1} ms"
    );
    let uplink = site.mma2.sh("ip -6 route show table all proto 158");
    assert!(
        uplink.contains(&format!("{} from {}", addr::CN, addr::HOA)),
        "reverse route at mma2: {uplink}"
    );
    // ... and it was the context that named the CN (a sighting of forwarded traffic would
    // bind it too, a little later).
    let metrics = site
        .mma2
        .enter(|| mipcast_daemon::metrics::fetch(metrics_addr("mma"), "/metrics"))
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "mma_route_optimisation_context_correspondents_total 1"),
        "{metrics}"
    );

    // Traffic carried on through the move, and now avoids the home agent.
    wait_for(
        "TCP flowing after the move",
        Duration::from_secs(10),
        || (flow.received() > down0 + 10_000 && flow.echoed() > up0 + 10_000).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", flow.errors()));
    let seen = through_ha(&site, "ro6", Node::Mma2, || {
        let before = (flow.received(), flow.echoed());
        std::thread::sleep(Duration::from_secs(2));
        assert!(flow.received() > before.0 && flow.echoed() > before.1);
    });
    assert_eq!(
        seen, 0,
        "packets of the terminal crossed the home agent after the move"
    );
    let errors = flow.errors();
    assert!(errors.is_empty(), "{errors:?}");
    drop(flow.stop());
    for (node, st) in site.stop_daemons(Duration::from_secs(5)) {
        assert!(st.is_some_and(|s| s.success()), "{node:?}: {st:?}");
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}
