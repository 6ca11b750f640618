//! Issue 14: with `selection.prepare_link_up`, a degrading link makes the mobile node bring an
//! administratively down candidate interface up, so the prepared candidate is usable at the
//! decision; it goes down again when the terminal leaves it, and at shutdown. On the standard
//! topology with e2 (site 1's second access link) down before the daemons start. Asserted on
//! the interface's flags, the terminal's registrations and the traffic captured on a2's side
//! of the link (the terminal's solicitation and its group report on e2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::time::{Duration, Instant};

use mipcast_netns_tests::capture::{tshark_fields, Capture};
use mipcast_netns_tests::kstate::Snapshot;
use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, bound_with, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;

/// IFF_UP of the terminal's `ifname`.
fn admin_up(site: &Site, ifname: &str) -> bool {
    let flags = site.mn.sh(&format!("cat /sys/class/net/{ifname}/flags"));
    u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap() & 1 != 0
}

fn on_link(site: &Site, ifindex: u64) -> bool {
    site.status(Node::Mn).is_ok_and(|st| {
        st["attachment"]["kind"] == "site"
            && st["attachment"]["ifindex"].as_u64() == Some(ifindex)
            && bound_with(&st, addr::MMA1)
    })
}

#[test]
#[ignore = "needs root"]
fn a_degrading_link_brings_the_down_candidate_up_and_the_terminal_moves_there() {
    require_root();
    let mut site = Site::build(&SiteOptions::new("pl")).unwrap_or_else(|e| panic!("{e}"));
    let cfg = site.config_path(Node::Mn);
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    assert!(yaml.contains("selection: { "), "{yaml}");
    std::fs::write(
        &cfg,
        yaml.replace("selection: { ", "selection: { prepare_link_up: true, "),
    )
    .unwrap();
    site.set_quality("e2", 80).unwrap();
    site.mn.sh("ip link set e2 down");
    // The terminal's namespace as the operator left it, e2 down (the site's own baseline
    // has e2 up).
    let mn_before = Snapshot::take(&site.mn).unwrap();
    // a2's side of that link has no carrier now (its routes on acc0 say `linkdown`), and will
    // have none again after the shutdown: its state is compared with this, not the site's.
    let a2_before = Snapshot::take(&site.a2).unwrap();
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    let e1 = u64::from(site.ifindex(Node::Mn, "e1").unwrap());
    let e2 = u64::from(site.ifindex(Node::Mn, "e2").unwrap());
    wait_for("registered on e1", Duration::from_secs(15), || {
        on_link(&site, e1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!admin_up(&site, "e2"), "e2 raised while e1 is stable");

    // e1 degrades: e2 is brought up, solicited, joined, and the terminal moves there.
    let cap_path = site.dir.join("a2-acc0.pcap");
    let cap = Capture::start(&site.a2, "acc0", "", &cap_path).expect("tcpdump");
    let t = Instant::now();
    site.set_quality("e1", 40).unwrap();
    wait_for("e2 brought up", Duration::from_secs(5), || {
        admin_up(&site, "e2").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", site.log(Node::Mn)));
    let raised_after = t.elapsed();
    wait_for("the terminal on e2", Duration::from_secs(10), || {
        on_link(&site, e2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    let moved_after = t.elapsed();
    let group = site.status(Node::Mn).unwrap()["group"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = cap.finish();
    let rs = tshark_fields(&file, "icmpv6.type == 133", &["frame.number"]).unwrap();
    assert!(!rs.is_empty(), "no router solicitation on e2");
    let reports = tshark_fields(
        &file,
        &format!("icmpv6.type == 143 && icmpv6.mldr.mar.multicast_address == {group}"),
        &["frame.number"],
    )
    .unwrap();
    assert!(!reports.is_empty(), "no MLD report for {group} on e2");
    let log = site.log(Node::Mn);
    assert!(
        log.contains("bringing the prepared candidate up"),
        "the mobile node's log does not say it: {log}"
    );

    // e1 recovers, e2 fades: back to e1, and e2 goes down again (after the overlap).
    site.set_quality("e1", 100).unwrap();
    site.set_quality("e2", 30).unwrap();
    wait_for("back on e1", Duration::from_secs(10), || {
        on_link(&site, e1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    wait_for("e2 down again", Duration::from_secs(5), || {
        (!admin_up(&site, "e2")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", site.log(Node::Mn)));

    // Degrading once more: e2 raised again, and the shutdown puts it down.
    site.set_quality("e2", 80).unwrap();
    site.set_quality("e1", 40).unwrap();
    wait_for("e2 brought up again", Duration::from_secs(5), || {
        admin_up(&site, "e2").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", site.log(Node::Mn)));
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        assert!(
            st.is_some_and(|s| s.success()),
            "{} exited with {st:?}",
            node.name()
        );
    }
    assert!(!admin_up(&site, "e2"), "e2 left up at shutdown");
    let mn_diff = Snapshot::take(&site.mn).unwrap().diff(&mn_before);
    assert!(mn_diff.is_empty(), "left behind in mn: {mn_diff:#?}");
    // The carrier of a2's acc0 follows e2 going down at the shutdown.
    wait_for("a2 as before the daemons", Duration::from_secs(2), || {
        Snapshot::take(&site.a2)
            .unwrap()
            .diff(&a2_before)
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|e| {
        let diff = Snapshot::take(&site.a2).unwrap().diff(&a2_before);
        panic!("{e}: left behind in a2: {diff:#?}")
    });
    let (mn, a2) = (
        format!("{} ", site.mn.name()),
        format!("{} ", site.a2.name()),
    );
    let left: Vec<String> = site
        .leftovers()
        .unwrap()
        .into_iter()
        .filter(|l| !l.starts_with(&mn) && !l.starts_with(&a2))
        .collect();
    assert!(left.is_empty(), "left behind: {left:#?}");
    println!(
        "e2 up {:.0} ms after e1 degraded, the terminal on it after {:.0} ms",
        raised_after.as_secs_f64() * 1000.0,
        moved_after.as_secs_f64() * 1000.0
    );
}
