//! Return home (002 FIG 7) and out again, with the real daemons on the standard topology with
//! its home link (`SiteOptions::home_link`): a TCP stream CN -> HoA runs through a foreign
//! site, the terminal comes home (make before break), and then leaves again. Asserted on the
//! kernel state of every node and on captured traffic:
//! - at home the home agent holds no binding, no (kernel) proxy entry and no route for the
//!   home address; the home address moves from `lo` to the home interface; traffic reaches it
//!   natively (no IPv6-in-IPv6 to it on the home link); the old MMA forwards for its grace
//!   period and then holds nothing of the terminal (no route, no MFC entry);
//! - out again, the binding, the home address on `lo` and the tunnel come back;
//! - the TCP connection survives both moves, and after SIGTERM nothing of ours is left.
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
use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;
use serde_json::Value;

const TCP_PORT: u16 = 5003;
/// The quality of a link being left: usable, but worse than the new one by more than the
/// hysteresis, so the move is make before break.
const FADED: u8 = 30;
/// The MMAs' forwarding grace in the topology's configuration (`default_grace`), plus slack.
const GRACE: Duration = Duration::from_secs(10);

fn bound_with(st: &Value, peer: Ipv6Addr) -> bool {
    st["registrations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["peer"] == peer.to_string() && r["state"] == "bound")
}

fn ha_bindings(site: &Site) -> Vec<Value> {
    site.status(Node::Ha)
        .ok()
        .and_then(|s| s["bindings"].as_array().cloned())
        .unwrap_or_default()
}

fn mma1_terminals(site: &Site) -> Vec<Value> {
    site.status(Node::Mma1)
        .ok()
        .and_then(|s| s["terminals"].as_array().cloned())
        .unwrap_or_default()
}

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

fn ours(site: &Site, node: Node) -> Vec<String> {
    mentions_hoa(site, node, "ip -6 route show table all proto 158")
}

#[test]
#[ignore = "needs root"]
fn foreign_site_to_home_and_out_again() {
    require_root();
    let mut opts = SiteOptions::new("rh");
    opts.home_link = true;
    let mut site = Site::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    let e4 = u64::from(site.ifindex(Node::Mn, "e4").expect("e4"));

    // --- Registered through site 1 (a1), traffic tunnelled HA -> mma1 -> tree -> terminal.
    let mn = wait_for(
        "the terminal bound with mma1 and the home agent",
        Duration::from_secs(15),
        || {
            let st = site.status(Node::Mn).ok()?;
            (bound_with(&st, addr::MMA1) && bound_with(&st, addr::HA)).then_some(st)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    let group: Ipv6Addr = mn["group"].as_str().and_then(|g| g.parse().ok()).unwrap();
    assert_eq!(ha_bindings(&site).len(), 1);
    // Away: the home agent tunnels the HoA (the neighbour proxy is in user space by default,
    // so no kernel proxy entry either way).
    assert!(
        !ours(&site, Node::Ha).is_empty(),
        "the tunnel route while away"
    );
    assert!(!mentions_hoa(&site, Node::Mn, "ip -6 addr show dev lo").is_empty());
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
        (flow.received() > 20_000 && flow.echoed() > 20_000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", flow.errors()));

    // --- Home (FIG 7): the home link gets better, site 1's link fades but stays usable.
    let cap_path = site.dir.join("home-e4.pcap");
    let cap = Capture::start(&site.mn, "e4", "", &cap_path).expect("tcpdump on e4");
    let t_home = Instant::now();
    site.set_quality("e4", 100).unwrap();
    site.set_quality("e1", FADED).unwrap();
    wait_for(
        "the terminal at home, deregistered at the home agent",
        Duration::from_secs(10),
        || {
            let st = site.status(Node::Mn).ok()?;
            (st["attachment"]["kind"] == "home"
                && st["attachment"]["ifindex"].as_u64() == Some(e4)
                && ha_bindings(&site).is_empty())
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
    // The home agent withdrew its proxy entry and its tunnel.
    wait_for(
        "the home agent's state for the HoA gone",
        Duration::from_secs(3),
        || {
            (mentions_hoa(&site, Node::Ha, "ip -6 neigh show proxy").is_empty()
                && ours(&site, Node::Ha).is_empty())
            .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: proxy {:?} routes {:?}",
            mentions_hoa(&site, Node::Ha, "ip -6 neigh show proxy"),
            ours(&site, Node::Ha)
        )
    });
    // The home address moved from lo to the home interface.
    assert!(
        mentions_hoa(&site, Node::Mn, "ip -6 addr show dev lo").is_empty(),
        "HoA still on lo at home"
    );
    assert!(
        !mentions_hoa(&site, Node::Mn, "ip -6 addr show dev e4").is_empty(),
        "HoA not on the home interface"
    );
    // The old MMA forwards to the home address for its grace period.
    let t = mma1_terminals(&site);
    assert_eq!(t.len(), 1, "mma1 keeps a forwarding state: {t:?}");
    assert_eq!(t[0]["state"], "forwarding", "{t:?}");
    assert_eq!(t[0]["forward_to"], addr::HOA.to_string(), "{t:?}");
    // Traffic goes on, natively on the home link.
    std::thread::sleep(Duration::from_secs(2));
    let after_home = flow.received_between(t_home + Duration::from_secs(1), Instant::now());
    assert!(after_home > 0, "no bytes at home");
    let file = cap.finish();
    let native = tshark_fields(
        &file,
        &format!("ipv6.dst == {} && tcp", addr::HOA),
        &["frame.number"],
    )
    .expect("tshark")
    .len();
    let tunnelled = tshark_fields(&file, "ipv6.nxt == 41", &["frame.number"])
        .expect("tshark")
        .len();
    assert!(
        native > 50,
        "native TCP to the HoA on the home link: {native}"
    );
    assert_eq!(tunnelled, 0, "IPv6-in-IPv6 on the home link at home");

    // After the grace period the old MMA holds nothing of the terminal.
    wait_for(
        "mma1 forgets the terminal after the grace period",
        GRACE + Duration::from_secs(5),
        || {
            (mma1_terminals(&site).is_empty()
                && ours(&site, Node::Mma1).is_empty()
                && !site.mfc(Node::Mma1).iter().any(|e| e.group == group))
            .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: terminals {:?} routes {:?} mfc {:?}",
            mma1_terminals(&site),
            ours(&site, Node::Mma1),
            site.mfc(Node::Mma1)
        )
    });

    // --- Out again to site 1: binding, lo address and tunnel come back.
    let t_out = Instant::now();
    site.set_quality("e1", 100).unwrap();
    site.set_quality("e4", FADED).unwrap();
    wait_for(
        "registered through mma1 again",
        Duration::from_secs(15),
        || {
            let b = ha_bindings(&site);
            let st = site.status(Node::Mn).ok()?;
            (b.len() == 1
                && b[0]["coa"] == addr::MMA1.to_string()
                && bound_with(&st, addr::MMA1)
                && bound_with(&st, addr::HA))
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
    let out_after = t_out.elapsed();
    assert!(
        !ours(&site, Node::Ha).is_empty(),
        "the tunnel route is back"
    );
    assert!(!mentions_hoa(&site, Node::Mn, "ip -6 addr show dev lo").is_empty());
    assert!(
        mentions_hoa(&site, Node::Mn, "ip -6 addr show dev e4").is_empty(),
        "HoA left on the home interface"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        flow.received_between(t_out + Duration::from_secs(1), Instant::now()) > 0,
        "no bytes after leaving home"
    );
    let errors = flow.stop();
    assert!(errors.is_empty(), "TCP broke: {errors:?}");
    println!(
        "home after {:.0} ms (native TCP frames on e4: {native}), out again after {:.0} ms",
        home_after.as_secs_f64() * 1000.0,
        out_after.as_secs_f64() * 1000.0
    );

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
