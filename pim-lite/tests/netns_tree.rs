//! The whole (S,G) tree in namespaces: a source S beside the core router, two access routers
//! under it, one host with an interface on each access link. Every router runs the real
//! pim-lite binary; the host joins with the kernel's own MLDv2; S is a plain UDP sender.
//!
//! ```text
//!  S --(s0|c_s)-- core --(c_a1|a1_up)-- acc1 --(a1_dn|h1)--+
//!                   \                                      host
//!                    `--(c_a2|a2_up)-- acc2 --(a2_dn|h2)--+
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::time::{Duration, Instant};

use common::*;
use mipcast_kernel::sockets::{IcmpSocket, PacketInfo, SsmMembership, ALL_ROUTERS};
use mipcast_netns_tests::{require_root, Netns};
use mipcast_wire::nd::{NdRepr, ROUTER_ADVERTISEMENT};

const PIM: &str = "
pim:
  hello_period_secs: 30
  triggered_hello_delay_ms: 100
  rpf_check_interval_secs: 1
";

fn core_config() -> String {
    format!(
        "interfaces:\n  - {{ name: c_s, role: core }}\n  - {{ name: c_a1, role: core }}\n  - {{ name: c_a2, role: core }}\n{PIM}"
    )
}

fn access_config(up: &str, down: &str, prefix: &str, fast_leave: bool) -> String {
    format!(
        "interfaces:
  - {{ name: {up}, role: core }}
  - name: {down}
    role: access
    mld:
      query_interval_secs: 10
      query_response_interval_ms: 1000
      last_listener_query_interval_ms: 300
      fast_leave: {fast_leave}
    ra:
      max_interval_ms: 10000
      solicited_delay_max_ms: 50
      prefixes: [ {{ prefix: \"{prefix}\" }} ]
      map: {{ address: \"{S}\", distance: 1, preference: 10, valid_lifetime_secs: 1800 }}
{PIM}"
    )
}

/// The generation id of the only PIM neighbour on `ifname`, from the router's /status.
fn neighbor_gen_id(ns: &Netns, ifname: &str) -> Option<u32> {
    let st = status(ns);
    let iface = st.interfaces.iter().find(|i| i.name == ifname)?;
    match iface.neighbors.as_slice() {
        [n] => n.gen_id,
        _ => None,
    }
}

fn has_sg(entries: &[MfcEntry]) -> Option<MfcEntry> {
    entries
        .iter()
        .find(|e| e.source == a(S) && e.group == a(G))
        .cloned()
}

/// Sends a Router Solicitation from the host on `ifname` and returns how long the first RA
/// took, with the RA.
fn solicit(host: &Netns, ifname: &str) -> (Duration, NdRepr) {
    let ifindex = ifindex(host, ifname);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    host.enter(|| {
        rt.block_on(async {
            let s = IcmpSocket::new(&[ROUTER_ADVERTISEMENT]).expect("icmp socket");
            s.set_multicast_hops(255).expect("hops");
            let rs = NdRepr::RouterSolicit { options: vec![] };
            let mut msg = vec![0; rs.buffer_len()];
            rs.emit(&mut msg).expect("emit RS");
            let start = Instant::now();
            s.send_to(&msg, ALL_ROUTERS, PacketInfo::on(ifindex))
                .await
                .expect("send RS");
            let mut buf = [0u8; 1500];
            let got = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
                .await
                .expect("an RA within 2 s")
                .expect("recv RA");
            let elapsed = start.elapsed();
            assert_eq!((got.ifindex, got.hop_limit), (ifindex, 255));
            (elapsed, NdRepr::parse(&buf[..got.len]).expect("RA parses"))
        })
    })
}

#[test]
#[ignore = "needs root"]
fn ssm_tree_follows_the_host_and_leaves_no_kernel_state() {
    require_root();
    let test_start = Instant::now();
    let (src, core, acc1, acc2, host) = (
        Netns::new("ps"),
        Netns::new("pc"),
        Netns::new("pa1"),
        Netns::new("pa2"),
        Netns::new("ph"),
    );
    link(
        &src,
        "s0",
        "2001:db8:1::1/64",
        &core,
        "c_s",
        "2001:db8:1::2/64",
    );
    link(
        &core,
        "c_a1",
        "2001:db8:11::1/64",
        &acc1,
        "a1_up",
        "2001:db8:11::2/64",
    );
    link(
        &core,
        "c_a2",
        "2001:db8:12::1/64",
        &acc2,
        "a2_up",
        "2001:db8:12::2/64",
    );
    link(
        &acc1,
        "a1_dn",
        "2001:db8:21::1/64",
        &host,
        "h1",
        "2001:db8:21::100/64",
    );
    link(
        &acc2,
        "a2_dn",
        "2001:db8:22::1/64",
        &host,
        "h2",
        "2001:db8:22::100/64",
    );
    src.sh("ip -6 route add default via 2001:db8:1::2");
    // acc1 reaches S through the core's global address (matched through the core's Hello
    // address list), acc2 through its link-local address (matched as the Hello's source).
    acc1.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:11::1");
    let core_ll = link_local(&core, "c_a2");
    acc2.sh(&format!(
        "ip -6 route add 2001:db8:1::/64 via {core_ll} dev a2_up"
    ));
    let (h1, h2) = (ifindex(&host, "h1"), ifindex(&host, "h2"));

    let cap_access = Capture::start(&acc1, "a1_dn");
    let cap_core = Capture::start(&acc1, "a1_up");

    let r_core = Router::start(&core, "core", &core_config());
    let r_acc1 = Router::start(
        &acc1,
        "acc1",
        &access_config("a1_up", "a1_dn", "2001:db8:21::/64", false),
    );
    let mut r_acc2 = Some(Router::start(
        &acc2,
        "acc2",
        &access_config("a2_up", "a2_dn", "2001:db8:22::/64", true),
    ));
    wait_for("PIM adjacencies", Duration::from_secs(5), || {
        (neighbors(&core) == 2 && neighbors(&acc1) == 1 && neighbors(&acc2) == 1).then_some(())
    });
    let st = status(&acc1);
    let access = st
        .interfaces
        .iter()
        .find(|i| i.name == "a1_dn")
        .expect("a1_dn in /status");
    assert_eq!(access.role, "access");
    assert!(
        access.querier.as_ref().is_some_and(|q| q.we_are_querier),
        "acc1 queries its access link"
    );

    let sender = Sender::start(&src, "s0");
    let rx = Receiver::bind(&host);
    // Nothing is forwarded before anyone joins.
    assert_eq!(
        rx.next(Duration::from_millis(300)),
        None,
        "traffic before any join"
    );

    // Join on access link 1 with the kernel's own MLDv2.
    let membership = host.enter(|| SsmMembership::new().expect("membership socket"));
    let (t0, fresh) = (Instant::now(), sender.mark());
    membership.join(h1, a(G), a(S)).expect("join on h1");
    let first = rx
        .first_on(h1, fresh, Duration::from_secs(5))
        .map(|_| t0.elapsed());
    let first = first.unwrap_or_else(|| {
        panic!(
            "no datagram on h1 after the join\ncore:\n{}\nacc1:\n{}",
            r_core.log_text(),
            r_acc1.log_text()
        )
    });
    println!(
        "join -> first packet on access link 1: {:.1} ms",
        first.as_secs_f64() * 1000.0
    );
    let e1 = has_sg(&mfc(&acc1)).expect("acc1 MFC entry");
    assert_eq!(
        (e1.iif.as_str(), e1.oifs.clone()),
        ("a1_up", vec!["a1_dn".to_string()])
    );
    let ec = has_sg(&mfc(&core)).expect("core MFC entry");
    assert_eq!(
        (ec.iif.as_str(), ec.oifs.clone()),
        ("c_s", vec!["c_a1".to_string()])
    );
    // /status is published after each change; the datagram may still overtake it.
    let sg = wait_for(
        "core /status shows the (S,G)",
        Duration::from_secs(2),
        || {
            let sg = status(&core).sg;
            sg.iter()
                .any(|s| s.source == a(S) && s.mfc_installed)
                .then_some(sg)
        },
    );
    assert!(
        sg.iter().any(|s| s.upstream_neighbor.is_none()
            && s.oifs == vec!["c_a1".to_string()]
            && s.iif.as_deref() == Some("c_s")),
        "core: S is directly connected, no upstream neighbour: {sg:?}"
    );

    // Move: leave on link 1, join on link 2.
    membership.leave(h1, a(G), a(S)).expect("leave on h1");
    let (t1, fresh) = (Instant::now(), sender.mark());
    membership.join(h2, a(G), a(S)).expect("join on h2");
    let moved = rx
        .first_on(h2, fresh, Duration::from_secs(5))
        .map(|_| t1.elapsed())
        .unwrap_or_else(|| {
            panic!(
                "no datagram on h2 after the move\ncore:\n{}\nacc2:\n{}",
                r_core.log_text(),
                r_acc2.as_ref().map(Router::log_text).unwrap_or_default()
            )
        });
    println!(
        "join -> first packet on access link 2 (after move): {:.1} ms",
        moved.as_secs_f64() * 1000.0
    );
    // Link 1's branch is pruned: acc1 (no fast leave) queries, times the source out, prunes.
    wait_for("acc1 MFC entry removed", Duration::from_secs(5), || {
        has_sg(&mfc(&acc1)).is_none().then_some(())
    });
    let ec = wait_for(
        "core oif list shrinks to c_a2",
        Duration::from_secs(5),
        || has_sg(&mfc(&core)).filter(|e| e.oifs == vec!["c_a2".to_string()]),
    );
    assert_eq!(ec.iif, "c_s");
    rx.drain();
    assert_eq!(
        rx.first_on(h1, sender.mark(), Duration::from_millis(300)),
        None,
        "traffic still on h1 after the prune"
    );

    // Router Solicitation on link 1 is answered quickly, with the MAP option.
    let before = metric(
        &metrics(&acc1),
        "pim_lite_router_advertisements_sent_total{kind=\"solicited\"}",
    );
    let (rs_delay, ra) = solicit(&host, "h1");
    println!(
        "RS -> RA on access link 1: {:.1} ms",
        rs_delay.as_secs_f64() * 1000.0
    );
    assert!(
        rs_delay < Duration::from_millis(100),
        "RA took {rs_delay:?}"
    );
    let NdRepr::RouterAdvert(ra) = ra else {
        panic!("not an RA")
    };
    assert_eq!(ra.map().map(|m| m.address), Some(a(S)));
    std::thread::sleep(Duration::from_millis(600)); // metrics refresh
    let after = metric(
        &metrics(&acc1),
        "pim_lite_router_advertisements_sent_total{kind=\"solicited\"}",
    );
    assert!(
        after > before,
        "the RA was a solicited one ({before} -> {after})"
    );

    // Restart acc2: its table is flushed on SIGTERM and rebuilt from relearned MLD state.
    let old_gen_id = neighbor_gen_id(&core, "c_a2").expect("core has acc2 as neighbour");
    let log2 = r_acc2.take().expect("acc2").stop();
    assert!(log2.contains("stopped; kernel state removed"), "{log2}");
    assert!(
        mfc(&acc2).is_empty() && mifs(&acc2).is_empty(),
        "acc2 left MRT6 state"
    );
    rx.drain();
    let (t2, fresh) = (Instant::now(), sender.mark());
    r_acc2 = Some(Router::start(
        &acc2,
        "acc2-restarted",
        &access_config("a2_up", "a2_dn", "2001:db8:22::/64", true),
    ));
    let rebuilt = rx
        .first_on(h2, fresh, Duration::from_secs(8))
        .map(|_| t2.elapsed());
    let rebuilt = rebuilt.unwrap_or_else(|| {
        panic!(
            "no traffic after acc2 restarted:\n{}",
            r_acc2.as_ref().map(Router::log_text).unwrap_or_default()
        )
    });
    println!(
        "acc2 restart -> traffic again: {:.0} ms",
        rebuilt.as_secs_f64() * 1000.0
    );
    assert!(has_sg(&mfc(&acc2)).is_some(), "acc2 rebuilt its MFC entry");
    // A datagram sent after the restart crossed the core: its kernel entry points at c_a2.
    let ec = has_sg(&mfc(&core)).expect("core MFC entry after acc2's restart");
    assert_eq!(
        (ec.iif.as_str(), ec.oifs.clone()),
        ("c_s", vec!["c_a2".to_string()])
    );
    // The daemon publishes /status right after it changes the kernel, but the datagram can
    // still overtake it: wait (bounded) for the core's own view before asserting on it.
    let waited = Instant::now();
    wait_for(
        "core /status: (S,G) toward c_a2, acc2 with a new generation id",
        Duration::from_secs(2),
        || {
            let sg = status(&core).sg;
            let joined = sg.iter().any(|s| {
                s.source == a(S)
                    && s.group == a(G)
                    && s.mfc_installed
                    && s.oifs == vec!["c_a2".to_string()]
            });
            let gen_id = neighbor_gen_id(&core, "c_a2");
            (joined && gen_id.is_some() && gen_id != Some(old_gen_id)).then_some(())
        },
    );
    println!(
        "core /status showed the rebuilt branch after {:.1} ms of waiting",
        waited.elapsed().as_secs_f64() * 1000.0
    );

    // `pim-lite status` renders the daemon's /status as a table.
    let table = core.sh(&format!(
        "{} -c {} status",
        env!("CARGO_BIN_EXE_pim-lite"),
        r_core.config.display()
    ));
    assert!(
        table.contains("c_a2") && table.contains(G) && table.contains("neighbour fe80::"),
        "{table}"
    );

    // SIGHUP: a broken file is rejected (the daemon keeps running), a good one is applied.
    let good = std::fs::read_to_string(&r_acc1.config).expect("config");
    std::fs::write(
        &r_acc1.config,
        "interfaces: [ { name: a1_up, role: sideways } ]\n",
    )
    .expect("write");
    acc1.sh(&format!("kill -HUP {}", r_acc1.daemon.0.id()));
    wait_for("bad reload rejected", Duration::from_secs(3), || {
        r_acc1.log_text().contains("reload refused").then_some(())
    });
    std::fs::write(
        &r_acc1.config,
        good.replace("preference: 10", "preference: 11"),
    )
    .expect("write");
    acc1.sh(&format!("kill -HUP {}", r_acc1.daemon.0.id()));
    wait_for("good reload applied", Duration::from_secs(3), || {
        r_acc1
            .log_text()
            .contains("reload: a1_dn: router advertisement contents changed")
            .then_some(())
    });
    let (_, ra) = solicit(&host, "h1");
    let NdRepr::RouterAdvert(ra) = ra else {
        panic!("not an RA")
    };
    assert_eq!(
        ra.map().map(|m| m.preference),
        Some(11),
        "reloaded MAP preference"
    );

    // Metrics reflect the run.
    let sg_packets =
        "pim_lite_sg_packets{source=\"2001:db8:1::1\",group=\"ff35::200:ff:fe00:100\"}";
    let m = wait_for(
        "core gauges catch up (refreshed twice a second)",
        Duration::from_secs(2),
        || {
            let m = metrics(&core);
            (metric(&m, sg_packets) > 0.0).then_some(m)
        },
    );
    assert!(metric(&m, "pim_lite_mfc_entries") == 1.0, "{m}");
    // Gauges from the router's counts (not from a /status build) agree with /status: one
    // downstream join, from acc2; on acc2's access link, as many groups with listeners as
    // /status lists (the host's own link-scope groups too).
    assert!(
        metric(&m, "pim_lite_pim_downstream_joins{interface=\"c_a2\"}") == 1.0
            && metric(&m, "pim_lite_pim_downstream_joins{interface=\"c_a1\"}") == 0.0,
        "{m}"
    );
    let listener_groups = "pim_lite_mld_listener_groups{interface=\"a2_dn\"}";
    let deadline = Instant::now() + Duration::from_secs(2);
    let (gauge, listed) = loop {
        let listed = status(&acc2)
            .interfaces
            .iter()
            .find(|i| i.name == "a2_dn")
            .map_or(0, |i| i.listeners.len());
        let gauge = metric(&metrics(&acc2), listener_groups);
        if (gauge == listed as f64 && listed > 0) || Instant::now() > deadline {
            break (gauge, listed);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        gauge == listed as f64 && listed > 0,
        "{listener_groups} {gauge}, /status lists {listed}"
    );
    assert!(
        metric(&m, "pim_lite_pim_neighbors{interface=\"c_a1\"}") == 1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "pim_lite_join_prune_entries_total{direction=\"received\",kind=\"prune\"}"
        ) >= 1.0,
        "{m}"
    );
    let m1 = metrics(&acc1);
    assert!(
        metric(&m1, "pim_lite_mld_records_total{record_type=\"is_in\"}")
            + metric(&m1, "pim_lite_mld_records_total{record_type=\"allow\"}")
            >= 1.0,
        "{m1}"
    );
    assert!(
        metric(&m1, "pim_lite_join_to_mfc_seconds_count") >= 1.0,
        "{m1}"
    );

    // SIGTERM everywhere: no MFC entries and no MIFs left.
    drop(membership);
    for (ns, r) in [
        (&core, r_core),
        (&acc1, r_acc1),
        (&acc2, r_acc2.take().expect("acc2")),
    ] {
        r.stop();
        assert!(
            mfc(ns).is_empty(),
            "MFC left in {}: {:?}",
            ns.name(),
            mfc(ns)
        );
        assert!(
            mifs(ns).is_empty(),
            "MIFs left in {}: {:?}",
            ns.name(),
            mifs(ns)
        );
    }

    // What pim-lite put on the wire decodes cleanly in tshark and in scapy.
    let (pcap_access, pcap_core) = (cap_access.stop(), cap_core.stop());
    let ours_access = "(icmpv6.type == 130 || icmpv6.type == 134) && ipv6.src == fe80::/10";
    let problems = tshark_problems(&pcap_access, ours_access);
    assert!(
        problems.is_empty(),
        "tshark on the access link:\n{}",
        problems.join("\n")
    );
    let problems = tshark_problems(&pcap_core, "pim");
    assert!(
        problems.is_empty(),
        "tshark on the core link:\n{}",
        problems.join("\n")
    );
    let text = tshark_verbose(&pcap_access, "icmpv6.type == 134");
    for needle in [
        "Type: MAP (23)",
        "Global Address: 2001:db8:1::1",
        "Prefix: 2001:db8:21::",
    ] {
        assert!(text.contains(needle), "RA decode lacks {needle:?}:\n{text}");
    }
    let queries = tshark_fields(
        &pcap_access,
        "icmpv6.type == 130",
        &["icmpv6.mld.multicast_address", "icmpv6.mld.source_address"],
    );
    assert!(
        queries.iter().any(|q| q.first().is_some_and(|g| g == "::")),
        "general query: {queries:?}"
    );
    assert!(
        queries
            .iter()
            .any(|q| q.first().is_some_and(|g| g == G) && q.get(1).is_some_and(|s| s == S)),
        "group-and-source-specific query for (S,G) after the leave: {queries:?}"
    );
    let pim = tshark_fields(&pcap_core, "pim", &["pim.type"]);
    for (ty, what) in [("0", "Hello"), ("3", "Join/Prune")] {
        assert!(
            pim.iter().any(|p| p.first().is_some_and(|t| t == ty)),
            "no PIM {what} captured: {pim:?}"
        );
    }

    for pcap in [&pcap_access, &pcap_core] {
        let r = scapy_report(pcap);
        assert_eq!(
            r["errors"],
            serde_json::json!([]),
            "scapy on {}: {r}",
            pcap.display()
        );
    }
    let ra = scapy_report(&pcap_access);
    assert!(
        ra["router_adverts"]
            .as_array()
            .is_some_and(|v| v.iter().any(|r| r["map"]["address"] == S)),
        "{ra}"
    );
    assert!(
        ra["mld_queries"].as_array().is_some_and(|v| v.len() >= 2),
        "{ra}"
    );
    let core_r = scapy_report(&pcap_core);
    let jps = core_r["pim_join_prunes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        jps.iter()
            .any(|j| j["group"] == G && j["joins"] == serde_json::json!([S])),
        "{core_r}"
    );
    assert!(
        jps.iter()
            .any(|j| j["group"] == G && j["prunes"] == serde_json::json!([S])),
        "{core_r}"
    );
    let hellos = core_r["pim_hellos"].as_array().cloned().unwrap_or_default();
    assert!(
        hellos
            .iter()
            .any(|h| h["addresses"] == serde_json::json!(["2001:db8:11::2"])),
        "{core_r}"
    );
    assert!(
        hellos.iter().any(|h| h["holdtime"] == 0),
        "goodbye Hello on shutdown: {core_r}"
    );
    for pcap in [pcap_access, pcap_core] {
        let _ = std::fs::remove_file(pcap);
    }
    println!("test took {:.1} s", test_start.elapsed().as_secs_f64());
}
