//! Moves in the home site (issue 11 §4), with the real daemons on the standard topology with
//! its home link (`SiteOptions::home_link`):
//! - home link -> foreign site: the terminal starts at home (no binding, the home address on
//!   the home interface), then moves to site 2; the binding, the tunnel and the home address
//!   on `lo` appear, traffic arrives through site 2's tree and no longer on the home link;
//! - 002 FIG 8, the home site's other subnet (`SiteOptions::home_site_mma`): from the home
//!   link to an access link of the home site served by the home site's MMA (mma0): the
//!   terminal registers with mma0 and the home agent tunnels to it; then back home, where
//!   mma0 forwards for its grace period and then holds nothing of the terminal.
//!
//! Each asserts on captured traffic and on the kernel state of every node: after SIGTERM no
//! route, rule, proxy entry, MFC entry or address of ours is left anywhere.
//! (`foreign_site_to_home_and_out_again` in return_home.rs covers FIG 7 itself.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use mipcast_netns_tests::capture::{tshark_fields, Capture};
use mipcast_netns_tests::flow::TcpFlow;
use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, bound_with, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;
use serde_json::Value;

/// The quality of a link being left: usable, but worse than the new one by more than the
/// hysteresis, so the move is make before break.
const FADED: u8 = 30;
/// The MMAs' forwarding grace in the topology's configuration (`default_grace`), plus slack.
const GRACE: Duration = Duration::from_secs(10);

/// Lines of `cmd`'s output in `node` that mention the home address.
fn mentions_hoa(site: &Site, node: Node, cmd: &str) -> Vec<String> {
    let hoa = addr::HOA.to_string();
    site.ns(node)
        .sh(cmd)
        .lines()
        .filter(|l| l.contains(&hoa))
        .map(str::to_owned)
        .collect()
}

/// Our routes (proto 158) for the home address in `node`.
fn ours(site: &Site, node: Node) -> Vec<String> {
    mentions_hoa(site, node, "ip -6 route show table all proto 158")
}

/// The terminal's rules and routes of ours that still name mma0 (decapsulation of what it
/// tunnels or forwards).
fn mn_mentions_mma0(site: &Site) -> Vec<String> {
    let mma0 = addr::MMA0.to_string();
    site.mn
        .sh("ip -6 rule show; ip -6 route show table all proto 158")
        .lines()
        .filter(|l| l.contains(&mma0))
        .map(str::to_owned)
        .collect()
}

fn attached(site: &Site, kind: &str, ifindex: u64) -> Option<Value> {
    let st = site.status(Node::Mn).ok()?;
    (st["attachment"]["kind"] == kind && st["attachment"]["ifindex"].as_u64() == Some(ifindex))
        .then_some(st)
}

/// Frames in `pcap` matching `filter`.
fn frames(pcap: &Path, filter: &str) -> usize {
    tshark_fields(pcap, filter, &["frame.number"])
        .expect("tshark")
        .len()
}

/// Builds the site with the terminal at home (e4 the only usable link) and starts it.
fn at_home(opts: &SiteOptions) -> (Site, u64) {
    let mut site = Site::build(opts).unwrap_or_else(|e| panic!("{e}"));
    site.set_quality("e1", 0).unwrap();
    site.set_quality("e4", 100).unwrap();
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    let e4 = u64::from(site.ifindex(Node::Mn, "e4").expect("e4"));
    wait_for("the terminal at home", Duration::from_secs(10), || {
        attached(&site, "home", e4)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    // At home: no binding, no tunnel, the home address on the home interface only.
    assert!(site.status_list(Node::Ha, "bindings").is_empty());
    assert!(ours(&site, Node::Ha).is_empty(), "a tunnel route at home");
    assert!(mentions_hoa(&site, Node::Ha, "ip -6 neigh show proxy").is_empty());
    assert!(!mentions_hoa(&site, Node::Mn, "ip -6 addr show dev e4").is_empty());
    assert!(mentions_hoa(&site, Node::Mn, "ip -6 addr show dev lo").is_empty());
    (site, e4)
}

fn tcp_flow(site: &Site, port: u16) -> TcpFlow {
    let flow = TcpFlow::start(
        &site.mn,
        &site.cn,
        addr::HOA,
        port,
        1000,
        Duration::from_millis(5),
    )
    .expect("TCP to the HoA");
    wait_for("TCP bytes both ways", Duration::from_secs(10), || {
        (flow.received() > 20_000 && flow.echoed() > 20_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", flow.errors()));
    flow
}

/// Away through `mma` on `ifindex`: bound with it and with the home agent, whose binding's
/// care-of address is the MMA; the home agent tunnels towards it; the home address is on
/// `lo`, not on the home interface.
fn registered_through(site: &Site, mma: Ipv6Addr, ifindex: u64) -> Ipv6Addr {
    let st = wait_for(
        &format!("registered through {mma}"),
        Duration::from_secs(10),
        || {
            let st = attached(site, "site", ifindex)?;
            let b = site.status_list(Node::Ha, "bindings");
            (b.len() == 1
                && b[0]["coa"] == mma.to_string()
                && bound_with(&st, mma)
                && bound_with(&st, addr::HA))
            .then_some(st)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: mn {:?} ha {:?}",
            site.status(Node::Mn),
            site.status(Node::Ha)
        )
    });
    let tunnel = ours(site, Node::Ha);
    assert!(
        tunnel.iter().any(|l| l.contains(&mma.to_string())),
        "the home agent's tunnel to {mma}: {tunnel:?}"
    );
    assert!(!mentions_hoa(site, Node::Mn, "ip -6 addr show dev lo").is_empty());
    assert!(
        mentions_hoa(site, Node::Mn, "ip -6 addr show dev e4").is_empty(),
        "HoA left on the home interface"
    );
    st["group"].as_str().and_then(|g| g.parse().ok()).unwrap()
}

/// The tree from `mma` through `router` to the access link carries the terminal's group.
fn tree_formed(site: &Site, mma_node: Node, mma: Ipv6Addr, router: Node, group: Ipv6Addr) {
    wait_for("the group's tree", Duration::from_secs(5), || {
        let m = site.mfc(mma_node);
        let r = site.mfc(router);
        (m.iter().any(|e| e.source == mma && e.group == group)
            && r.iter()
                .any(|e| e.source == mma && e.group == group && e.oifs == ["acc0"]))
        .then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {} {:?} {} {:?}",
            mma_node.name(),
            site.mfc(mma_node),
            router.name(),
            site.mfc(router)
        )
    });
}

/// SIGTERM: every daemon exits cleanly and nothing of ours is left in any namespace.
fn stop_clean(mut site: Site) {
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        assert!(
            st.is_some_and(|s| s.success()),
            "{} exited with {st:?}",
            node.name()
        );
    }
    let left = site.leftovers().expect("kernel state");
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
#[ignore = "needs root"]
fn home_link_to_foreign_site() {
    require_root();
    let mut opts = SiteOptions::new("hf");
    opts.home_link = true;
    let (site, _e4) = at_home(&opts);
    let e3 = u64::from(site.ifindex(Node::Mn, "e3").expect("e3"));
    let flow = tcp_flow(&site, 5004);

    let cap = Capture::start(&site.mn, "e3", "", &site.dir.join("e3.pcap")).expect("tcpdump");
    let t_move = Instant::now();
    site.set_quality("e3", 100).unwrap();
    site.set_quality("e4", FADED).unwrap();
    let group = registered_through(&site, addr::MMA2, e3);
    let moved_after = t_move.elapsed();
    tree_formed(&site, Node::Mma2, addr::MMA2, Node::A3, group);
    // Nothing reaches the home address on the home link any more.
    let home_cap = Capture::start(&site.mn, "e4", "", &site.dir.join("e4.pcap")).expect("tcpdump");
    std::thread::sleep(Duration::from_secs(2));
    let home_file = home_cap.finish();
    let file = cap.finish();
    assert!(
        flow.received_between(t_move + Duration::from_secs(1), Instant::now()) > 0,
        "no bytes after leaving home"
    );
    let through_tree = frames(
        &file,
        &format!("ipv6.dst == {group} && ipv6.dst == {} && tcp", addr::HOA),
    );
    assert!(
        through_tree > 50,
        "TCP to the HoA inside the group's packets on e3: {through_tree}"
    );
    let at_home = frames(&home_file, &format!("ipv6.dst == {} && tcp", addr::HOA));
    assert_eq!(at_home, 0, "TCP to the HoA still on the home link");
    // The home link's router holds no multicast state for the terminal.
    assert!(!site.mfc(Node::Home).iter().any(|e| e.group == group));
    let errors = flow.stop();
    assert!(errors.is_empty(), "TCP broke: {errors:?}");
    println!(
        "left home for site 2 in {:.0} ms (group packets with TCP on e3: {through_tree})",
        moved_after.as_secs_f64() * 1000.0
    );
    stop_clean(site);
}

#[test]
#[ignore = "needs root"]
fn home_link_to_home_sites_other_subnet_and_back() {
    require_root();
    let mut opts = SiteOptions::new("h8");
    opts.home_link = true;
    opts.home_site_mma = true;
    let (site, e4) = at_home(&opts);
    let e5 = u64::from(site.ifindex(Node::Mn, "e5").expect("e5"));
    let flow = tcp_flow(&site, 5005);

    // --- To the home site's other subnet (FIG 8): registered with the home site's MMA.
    let cap = Capture::start(&site.mn, "e5", "", &site.dir.join("e5.pcap")).expect("tcpdump");
    let t_out = Instant::now();
    site.set_quality("e5", 100).unwrap();
    site.set_quality("e4", FADED).unwrap();
    let group = registered_through(&site, addr::MMA0, e5);
    let out_after = t_out.elapsed();
    tree_formed(&site, Node::Mma0, addr::MMA0, Node::A0, group);
    let t = site.status_list(Node::Mma0, "terminals");
    assert_eq!(t.len(), 1, "mma0's terminals: {t:?}");
    assert!(
        !mn_mentions_mma0(&site).is_empty(),
        "the terminal decapsulates nothing from mma0"
    );
    // The foreign sites know nothing of the terminal.
    for n in [Node::Mma1, Node::Mma2] {
        assert!(site.status_list(n, "terminals").is_empty(), "{}", n.name());
        assert!(ours(&site, n).is_empty(), "{}", n.name());
    }
    std::thread::sleep(Duration::from_secs(1));
    let file = cap.finish();
    assert!(
        flow.received_between(t_out + Duration::from_secs(1), Instant::now()) > 0,
        "no bytes on the home site's other subnet"
    );
    let through_tree = frames(
        &file,
        &format!("ipv6.dst == {group} && ipv6.dst == {} && tcp", addr::HOA),
    );
    assert!(
        through_tree > 50,
        "TCP to the HoA inside the group's packets on e5: {through_tree}"
    );

    // --- Back to the home link: deregistered, mma0 forwards for its grace, then forgets.
    let cap = Capture::start(&site.mn, "e4", "", &site.dir.join("e4.pcap")).expect("tcpdump");
    let t_home = Instant::now();
    site.set_quality("e4", 100).unwrap();
    site.set_quality("e5", FADED).unwrap();
    wait_for(
        "the terminal at home, deregistered at the home agent",
        Duration::from_secs(10),
        || {
            (attached(&site, "home", e4).is_some()
                && site.status_list(Node::Ha, "bindings").is_empty()
                && ours(&site, Node::Ha).is_empty())
            .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: mn {:?} ha {:?}",
            site.status(Node::Mn),
            site.status(Node::Ha)
        )
    });
    let home_after = t_home.elapsed();
    assert!(mentions_hoa(&site, Node::Ha, "ip -6 neigh show proxy").is_empty());
    assert!(mentions_hoa(&site, Node::Mn, "ip -6 addr show dev lo").is_empty());
    assert!(!mentions_hoa(&site, Node::Mn, "ip -6 addr show dev e4").is_empty());
    let t = site.status_list(Node::Mma0, "terminals");
    assert_eq!(t.len(), 1, "mma0 keeps a forwarding state: {t:?}");
    assert_eq!(t[0]["state"], "forwarding", "{t:?}");
    assert_eq!(t[0]["forward_to"], addr::HOA.to_string(), "{t:?}");
    std::thread::sleep(Duration::from_secs(2));
    let file = cap.finish();
    assert!(
        flow.received_between(t_home + Duration::from_secs(1), Instant::now()) > 0,
        "no bytes back home"
    );
    let native = frames(&file, &format!("ipv6.dst == {} && tcp", addr::HOA));
    assert!(native > 50, "native TCP to the HoA at home: {native}");
    // Tunnelled packets on the home link at home: mma0 sits on the home link, so what it
    // forwards during its grace period (packets the home agent tunnelled before the
    // deregistration) arrives encapsulated from it; nothing else may be tunnelled to the
    // terminal here. The terminal's own last reverse-tunnelled packets (outer source its old
    // care-of address, inner source the HoA) can leave through the home link in the instant
    // the default route has moved and the uplink route is not yet gone: counted, not failed.
    let hoa = addr::HOA;
    let forwarded = frames(
        &file,
        &format!("ipv6.nxt == 41 && ipv6.src == {}", addr::MMA0),
    );
    let uplink_leftover = frames(&file, &format!("ipv6.nxt == 41 && ipv6.src == {hoa}"));
    let tunnelled_otherwise = frames(
        &file,
        &format!(
            "ipv6.nxt == 41 && !(ipv6.src == {}) && !(ipv6.src == {hoa})",
            addr::MMA0
        ),
    );
    assert_eq!(
        tunnelled_otherwise, 0,
        "IPv6-in-IPv6 to the terminal on the home link at home, not forwarded by mma0"
    );
    wait_for(
        "mma0 and a0 forget the terminal after the grace period",
        GRACE + Duration::from_secs(5),
        || {
            (site.status_list(Node::Mma0, "terminals").is_empty()
                && ours(&site, Node::Mma0).is_empty()
                && !site.mfc(Node::Mma0).iter().any(|e| e.group == group)
                && !site.mfc(Node::A0).iter().any(|e| e.group == group)
                && mn_mentions_mma0(&site).is_empty())
            .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: terminals {:?} routes {:?} mfc {:?} / {:?}, the terminal's {:?}",
            site.status_list(Node::Mma0, "terminals"),
            ours(&site, Node::Mma0),
            site.mfc(Node::Mma0),
            site.mfc(Node::A0),
            mn_mentions_mma0(&site)
        )
    });
    let errors = flow.stop();
    assert!(errors.is_empty(), "TCP broke: {errors:?}");
    println!(
        "to the home site's other subnet in {:.0} ms (group packets with TCP on e5: {through_tree}), \
         home again in {:.0} ms (native TCP frames on e4: {native}, forwarded by mma0: {forwarded}, \
         reverse-tunnelled by the terminal after the move: {uplink_leftover})",
        out_after.as_secs_f64() * 1000.0,
        home_after.as_secs_f64() * 1000.0
    );
    stop_clean(site);
}
