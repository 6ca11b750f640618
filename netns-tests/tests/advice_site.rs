//! Handoff advice through the whole system (issue 14): the operator runs `mma advise` against
//! the real MMA of site 1; the real mobile node, on access link a1 with a2 as an alternative in
//! the same site, receives the signed advice and moves to a2 within one second (a
//! multicast re-join: no Binding Update), and the pim-lite tree follows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::io::Write as _;
use std::net::{Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, daemon_dir, metrics_addr, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;

fn attachment(site: &Site) -> Option<u64> {
    site.status(Node::Mn).ok()?["attachment"]["ifindex"].as_u64()
}

fn mn_metric(site: &Site, series: &str) -> f64 {
    let a: SocketAddr = metrics_addr("mobile-node");
    let text = site
        .mn
        .enter(|| mipcast_daemon::metrics::fetch(a, "/metrics").ok())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
#[ignore = "needs root"]
fn operator_advice_moves_the_terminal_to_its_alternative_within_a_second() {
    require_root();
    let mut site = Site::build(&SiteOptions::new("adv")).unwrap_or_else(|e| panic!("{e}"));
    // mma1 gets a control socket and names its access links.
    let socket = site.dir.join("mma1.sock");
    let mma1_cfg = site.config_path(Node::Mma1);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&mma1_cfg)
        .unwrap();
    write!(
        f,
        "advice:\n  control_socket: {}\n  avoid_secs: 30\n  links:\n    - {{ name: a1, prefix: \"{}/64\" }}\n    - {{ name: a2, prefix: \"{}/64\" }}\n",
        socket.display(),
        addr::ACCESS[0],
        addr::ACCESS[1]
    )
    .unwrap();
    drop(f);
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    let (e1, e2) = (
        u64::from(site.ifindex(Node::Mn, "e1").unwrap()),
        u64::from(site.ifindex(Node::Mn, "e2").unwrap()),
    );
    // Registered from a1 first (a2's quality is still 0): the MMA knows a terminal's link by
    // the source of its registration, and a move inside the site is invisible to it, so a
    // terminal that happened to register from a2 would not be "on a1" for the advice.
    wait_for("registered from a1", Duration::from_secs(15), || {
        let st = site.status(Node::Mn).ok()?;
        (st["attachment"]["ifindex"].as_u64() == Some(e1)
            && st["registrations"]
                .as_array()?
                .iter()
                .all(|r| r["state"] == "bound")
            && !st["registrations"].as_array()?.is_empty())
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    // a2 as good as a1: the terminal stays on a1 (listed first) with a2 usable.
    site.set_quality("e2", 100).unwrap();
    wait_for(
        "on a1 with a2 usable and settled",
        Duration::from_secs(20),
        || {
            let st = site.status(Node::Mn).ok()?;
            let l2 = &st["links"][1];
            (st["attachment"]["ifindex"].as_u64() == Some(e1)
                && l2["score"].as_i64().is_some()
                && l2["smoothed_quality"].as_f64()? > 99.0
                && st["registrations"]
                    .as_array()?
                    .iter()
                    .all(|r| r["state"] == "bound"))
            .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));

    let sent = Instant::now();
    let out = Command::new(daemon_dir().unwrap().join("mma"))
        .args(["advise", "-c", mma1_cfg.to_str().unwrap()])
        .args(["--link", "a1", "--reason", "congestion"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"advised\":1"), "{stdout}");
    wait_for("attachment on a2", Duration::from_secs(1), || {
        (attachment(&site)? == e2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    let moved = sent.elapsed();
    eprintln!(
        "mma advise -> terminal on a2: {} ms (includes the CLI and status polling)",
        moved.as_millis()
    );
    assert_eq!(
        mn_metric(
            &site,
            "mobile_node_advice_received_total{reason=\"congestion\"}"
        ),
        1.0
    );
    assert_eq!(mn_metric(&site, "mobile_node_advice_obeyed_total"), 1.0);
    assert_eq!(
        mn_metric(&site, "mobile_node_handover_causes_total{cause=\"advice\"}"),
        1.0
    );
    // Still registered with mma1 (an intra-site move), and the tree follows to a2.
    let group: Ipv6Addr = site.status(Node::Mn).unwrap()["group"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    wait_for("the tree to reach a2", Duration::from_secs(6), || {
        site.mfc(Node::A2)
            .into_iter()
            .find(|e| e.source == addr::MMA1 && e.group == group && e.oifs == ["acc0"])
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.mfc(Node::A2)));
    // The advised link is avoided for 30 s: no move back meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(attachment(&site), Some(e2));
}
