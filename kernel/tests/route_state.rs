//! Our tagged state in the kernel: reconcile, remove-all, batched installs, the seg6 tunnel
//! source and the local-rule move, each checked against what iproute2 reads back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::collections::HashSet;
use std::time::Instant;

use mipcast_kernel::route::{
    KObject, Kernel, DEFAULT_LOCAL_RULE_PREF, RTPROT_MIPCAST, RT_TABLE_MAIN,
};
use mipcast_netns_tests::{require_root, Netns};

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn with_kernel<R: Send>(ns: &Netns, f: impl AsyncFnOnce(&Kernel) -> R + Send) -> R {
    ns.enter(|| {
        block(async {
            let k = Kernel::connect(RTPROT_MIPCAST).await.expect("connect");
            f(&k).await
        })
    })
}

/// A namespace with one up interface x0 (a veth whose peer x1 stays in the namespace).
fn one_link(tag: &str) -> (Netns, u32) {
    let ns = Netns::new(tag);
    ns.sh(
        "ip link add x0 type veth peer name x1 && ip link set x0 up && ip link set x1 up && \
           ip addr add 2001:db8:7::1/64 dev x0 nodad",
    );
    let ifindex = ns
        .sh("cat /sys/class/net/x0/ifindex")
        .trim()
        .parse()
        .expect("ifindex");
    (ns, ifindex)
}

/// Every route, rule and proxy entry as iproute2 prints them, one per line.
fn kernel_state(ns: &Netns) -> Vec<String> {
    let text = ns.sh("ip -6 route show table all; ip -6 rule; ip -6 neigh show proxy");
    text.lines().map(str::to_owned).collect()
}

fn lines(ns: &Netns, cmd: &str) -> Vec<String> {
    ns.sh(cmd)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn reconcile_touches_exactly_our_objects() {
    require_root();
    let (ns, x0) = one_link("rq");
    let encap = |dst: &str, tunnel: &str, table: u32| KObject::EncapRoute {
        dst: dst.parse().unwrap(),
        src: None,
        tunnel_dst: tunnel.parse().unwrap(),
        oif: x0,
        table,
    };
    let e1 = encap("2001:db8:50::1/128", "2001:db8:7::99", RT_TABLE_MAIN);
    let e2 = encap("2001:db8:50::2/128", "ff35::2", RT_TABLE_MAIN);
    let e3 = KObject::EncapRoute {
        dst: "::/0".parse().unwrap(),
        src: Some("2001:db8:60::1/128".parse().unwrap()),
        tunnel_dst: "2001:db8:7::98".parse().unwrap(),
        oif: x0,
        table: 300,
    };
    let d1 = KObject::DecapRoute {
        local: "2001:db8:7::1".parse().unwrap(),
        oif: x0,
        table: 100,
        inner_table: RT_TABLE_MAIN,
    };
    let rule = |pref: u32, from: &str| KObject::Rule {
        pref,
        from: Some(from.parse().unwrap()),
        to: Some("2001:db8:7::1/128".parse().unwrap()),
        ipproto: Some(41),
        table: 100,
    };
    let (r1, r2) = (rule(10, "2001:db8:7::5/128"), rule(11, "2001:db8:7::6/128"));
    let p1 = KObject::ProxyNeigh {
        addr: "2001:db8:7::50".parse().unwrap(),
        ifindex: x0,
    };
    let p2 = KObject::ProxyNeigh {
        addr: "2001:db8:7::51".parse().unwrap(),
        ifindex: x0,
    };
    let ours = [e1, e2, e3, d1, r1, r2, p1, p2];
    with_kernel(&ns, async |k| {
        let failed = k.add_batch(&ours).await;
        assert!(failed.is_empty(), "{failed:?}");
    });
    // Others' objects, some sharing tables, prefixes or prefs with ours.
    ns.sh("ip -6 route add 2001:db8:50::3/128 dev x0 proto static && \
           ip -6 route add 2001:db8:50::4/128 encap seg6 mode encap.red segs 2001:db8:7::99 dev x0 proto boot table 300 && \
           ip -6 route add 2001:db8:50::1/128 dev x0 proto static table 301 && \
           ip -6 rule add pref 10 from 2001:db8:7::5 to 2001:db8:7::1 ipproto 41 lookup 101 proto static && \
           ip -6 rule add pref 12 from 2001:db8:7::7 lookup 100 && \
           ip -6 neigh add proxy 2001:db8:7::52 dev x0");
    let others_before: Vec<String> = kernel_state(&ns)
        .into_iter()
        .filter(|l| !l.contains("proto 158"))
        .collect();
    // One of ours in a shape we do not install: still ours, so it goes.
    ns.sh("ip -6 route add 2001:db8:50::5/128 dev x0 proto 158");
    assert_eq!(lines(&ns, "ip -6 route show table all proto 158").len(), 5);

    let listed: HashSet<KObject> = with_kernel(&ns, async |k| k.list_ours().await.expect("list"))
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        ours.iter().copied().collect(),
        "list_ours sees exactly what we added"
    );

    // Desired: e1 with a new tunnel destination (a replace), e3, d1, r1, p1.
    let e1_moved = encap("2001:db8:50::1/128", "ff35::77", RT_TABLE_MAIN);
    let desired: HashSet<KObject> = [e1_moved, e3, d1, r1, p1].into_iter().collect();
    let report = with_kernel(&ns, async |k| {
        k.reconcile(&desired).await.expect("reconcile")
    });
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.added.is_empty(), "{:?}", report.added);
    assert_eq!(report.replaced, vec![e1_moved]);
    let removed: HashSet<KObject> = report.removed.iter().copied().collect();
    assert_eq!(removed, [e2, r2, p2].into_iter().collect());
    assert_eq!(report.removed_unrecognised, 1);

    let routes = lines(&ns, "ip -6 route show table all proto 158");
    assert_eq!(routes.len(), 3, "{routes:?}");
    assert!(
        routes
            .iter()
            .any(|l| l.starts_with("2001:db8:50::1 ") && l.contains("[ ff35::77 ]")),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|l| l.starts_with("default from 2001:db8:60::1 ") && l.contains("table 300")),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|l| l.starts_with("2001:db8:7::1 ") && l.contains("End.DT6")),
        "{routes:?}"
    );
    let rules: Vec<String> = lines(&ns, "ip -6 rule")
        .into_iter()
        .filter(|l| l.contains("proto 158"))
        .collect();
    assert_eq!(
        rules,
        vec![
            "10:\tfrom 2001:db8:7::5 to 2001:db8:7::1 ipproto ipv6 lookup 100 proto 158".to_owned()
        ]
    );
    let proxies: Vec<String> = lines(&ns, "ip -6 neigh show proxy")
        .into_iter()
        .filter(|l| l.contains("proto 158"))
        .collect();
    assert_eq!(
        proxies,
        vec!["2001:db8:7::50 dev x0 proxy proto 158".to_owned()]
    );
    let others_after: Vec<String> = kernel_state(&ns)
        .into_iter()
        .filter(|l| !l.contains("proto 158"))
        .collect();
    assert_eq!(
        others_after, others_before,
        "objects without our tag are untouched"
    );

    // Already converged: a second run changes nothing.
    let again = with_kernel(&ns, async |k| {
        k.reconcile(&desired).await.expect("reconcile")
    });
    assert!(
        again.added.is_empty()
            && again.replaced.is_empty()
            && again.removed.is_empty()
            && again.failed.is_empty()
    );

    // A desired proxy entry that exists without our tag is reported, not adopted.
    let foreign = KObject::ProxyNeigh {
        addr: "2001:db8:7::52".parse().unwrap(),
        ifindex: x0,
    };
    let mut with_foreign = desired.clone();
    with_foreign.insert(foreign);
    let clash = with_kernel(&ns, async |k| {
        k.reconcile(&with_foreign).await.expect("reconcile")
    });
    assert_eq!(clash.failed.len(), 1, "{:?}", clash.failed);
    assert!(
        clash.failed[0]
            .to_string()
            .starts_with("adding proxy neighbour 2001:db8:7::52"),
        "{}",
        clash.failed[0]
    );

    // Deleting by description never reaches objects without our tag: the kernel matches the
    // tag for routes and rules, we check it for proxy entries.
    let their_route = KObject::EncapRoute {
        dst: "2001:db8:50::4/128".parse().unwrap(),
        src: None,
        tunnel_dst: "2001:db8:7::99".parse().unwrap(),
        oif: x0,
        table: 300,
    };
    let their_rule = KObject::Rule {
        pref: 12,
        from: Some("2001:db8:7::7/128".parse().unwrap()),
        to: None,
        ipproto: None,
        table: 100,
    };
    for obj in [their_route, their_rule, foreign] {
        let err =
            with_kernel(&ns, async |k| k.delete(&obj).await).expect_err("must not delete theirs");
        println!("{err}");
    }
    assert_eq!(
        kernel_state(&ns)
            .into_iter()
            .filter(|l| !l.contains("proto 158"))
            .collect::<Vec<_>>(),
        others_before
    );

    let gone = with_kernel(&ns, async |k| {
        k.remove_all_ours().await.expect("remove all")
    });
    assert!(gone.failed.is_empty(), "{:?}", gone.failed);
    assert_eq!(gone.removed.len(), 5);
    assert!(lines(&ns, "ip -6 route show table all proto 158").is_empty());
    assert!(!ns
        .sh("ip -6 rule; ip -6 neigh show proxy")
        .contains("proto 158"));
    let others_end: Vec<String> = kernel_state(&ns)
        .into_iter()
        .filter(|l| !l.contains("proto 158"))
        .collect();
    assert_eq!(others_end, others_before);
}

#[test]
#[ignore = "needs root"]
fn five_thousand_routes_in_one_batch() {
    require_root();
    let (ns, x0) = one_link("rb");
    let objects: Vec<KObject> = (0..5000u32)
        .map(|i| KObject::EncapRoute {
            dst: format!("2001:db8:a::{:x}:{:x}/128", i >> 16, i & 0xffff)
                .parse()
                .unwrap(),
            src: None,
            tunnel_dst: "ff35::1".parse().unwrap(),
            oif: x0,
            table: 200,
        })
        .collect();
    let (failed, elapsed, listed) = with_kernel(&ns, async |k| {
        let start = Instant::now();
        let failed = k.add_batch(&objects).await;
        let elapsed = start.elapsed();
        (failed, elapsed, k.list_ours().await.expect("list").len())
    });
    println!(
        "add_batch of {} encap routes took {elapsed:?}",
        objects.len()
    );
    assert!(
        failed.is_empty(),
        "{} failures, first {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(listed, 5000);
    assert_eq!(
        lines(&ns, "ip -6 route show table 200 proto 158").len(),
        5000
    );

    // A second add of the same set fails per object, each naming its route.
    let again = with_kernel(&ns, async |k| k.add_batch(&objects[..3]).await);
    assert_eq!(again.len(), 3);
    assert_eq!(
        again[0].to_string(),
        format!("adding encap route 2001:db8:a::/128 -> ff35::1 dev {x0} table 200: File exists")
    );

    let (removed, elapsed) = with_kernel(&ns, async |k| {
        let start = Instant::now();
        let report = k.remove_all_ours().await.expect("remove all");
        assert!(report.failed.is_empty(), "{:?}", report.failed.first());
        (report.removed.len(), start.elapsed())
    });
    println!("remove_all_ours of {removed} routes took {elapsed:?}");
    assert_eq!(removed, 5000);
    assert!(lines(&ns, "ip -6 route show table 200").is_empty());
}

#[test]
#[ignore = "needs root"]
fn seg6_tunsrc_round_trip() {
    require_root();
    let ns = Netns::new("rt");
    let unset = with_kernel(&ns, async |k| k.get_seg6_tunsrc().await.expect("get"));
    assert_eq!(unset, std::net::Ipv6Addr::UNSPECIFIED);
    with_kernel(&ns, async |k| {
        k.set_seg6_tunsrc("2001:db8::77".parse().unwrap())
            .await
            .expect("set")
    });
    assert_eq!(
        ns.sh("ip sr tunsrc show").trim(),
        "tunsrc addr 2001:db8::77"
    );
    ns.sh("ip sr tunsrc set 2001:db8::78");
    let read = with_kernel(&ns, async |k| k.get_seg6_tunsrc().await.expect("get"));
    assert_eq!(read, "2001:db8::78".parse::<std::net::Ipv6Addr>().unwrap());
}

#[test]
#[ignore = "needs root"]
fn local_rule_move_is_idempotent_and_reversible() {
    require_root();
    let ns = Netns::new("rl");
    let original = ns.sh("ip -6 rule");
    assert!(original.contains("0:\tfrom all lookup local"), "{original}");
    for _ in 0..2 {
        with_kernel(&ns, async |k| {
            k.ensure_local_rule_moved(DEFAULT_LOCAL_RULE_PREF)
                .await
                .expect("move")
        });
        let rules = lines(&ns, "ip -6 rule");
        assert_eq!(
            rules,
            vec![
                "1000:\tfrom all lookup local proto 158".to_owned(),
                "32766:\tfrom all lookup main".to_owned()
            ]
        );
    }
    // Moved or not, the local rule is infrastructure, not a reconcilable object.
    let report = with_kernel(&ns, async |k| {
        k.remove_all_ours().await.expect("remove all")
    });
    assert!(report.removed.is_empty() && report.removed_unrecognised == 0);
    assert!(ns.sh("ip -6 rule").contains("1000:\tfrom all lookup local"));
    for _ in 0..2 {
        with_kernel(&ns, async |k| {
            k.restore_local_rule(DEFAULT_LOCAL_RULE_PREF)
                .await
                .expect("restore")
        });
        assert_eq!(ns.sh("ip -6 rule"), original);
    }
}

#[test]
#[ignore = "needs root"]
fn batches_never_take_over_or_delete_foreign_proxy_entries() {
    require_root();
    let (ns, x0) = one_link("rp");
    let proxy = |a: &str| KObject::ProxyNeigh {
        addr: a.parse().unwrap(),
        ifindex: x0,
    };
    // Someone else's entries: one untagged, one tagged by another daemon. The kernel would
    // silently adopt either on an add of ours.
    ns.sh("ip -6 neigh add proxy 2001:db8:7::52 dev x0 && \
           ip -6 neigh add proxy 2001:db8:7::53 dev x0 proto static");
    let theirs = [proxy("2001:db8:7::52"), proxy("2001:db8:7::53")];
    let mine = [proxy("2001:db8:7::60"), proxy("2001:db8:7::61")];
    let before = lines(&ns, "ip -6 neigh show proxy");
    let (added, deleted) = with_kernel(&ns, async |k| {
        let added = k.add_batch(&[theirs[0], mine[0], theirs[1], mine[1]]).await;
        let deleted = k.delete_batch(&[theirs[0], mine[0], theirs[1]]).await;
        (added, deleted)
    });
    let refused = |errors: &[mipcast_kernel::route::RouteError]| -> Vec<String> {
        let mut v: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        v.sort();
        v
    };
    let added = refused(&added);
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(
        added[0].starts_with("adding proxy neighbour 2001:db8:7::52"),
        "{added:?}"
    );
    assert!(
        added[1].starts_with("adding proxy neighbour 2001:db8:7::53"),
        "{added:?}"
    );
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    let now = lines(&ns, "ip -6 neigh show proxy");
    // Theirs exactly as before (no tag taken over), ours: 61 added, 60 added then deleted.
    for line in &before {
        assert!(now.contains(line), "{line} changed: {now:?}");
    }
    assert!(now
        .iter()
        .any(|l| l.starts_with("2001:db8:7::61 ") && l.contains("proto 158")));
    assert!(
        !now.iter().any(|l| l.starts_with("2001:db8:7::60 ")),
        "{now:?}"
    );
    assert_eq!(now.len(), before.len() + 1, "{now:?}");
}

#[test]
#[ignore = "needs root"]
fn deleting_a_route_with_device_zero_matches_any_device() {
    require_root();
    // The MMA withdraws a terminal whose refused replace may have left the previous route on
    // another device: it deletes by identity with device 0.
    let (ns, x0) = one_link("rz");
    let route = |oif: u32, tunnel: &str| KObject::EncapRoute {
        dst: "2001:db8:50::1/128".parse().unwrap(),
        src: None,
        tunnel_dst: tunnel.parse().unwrap(),
        oif,
        table: RT_TABLE_MAIN,
    };
    let (failed_add, failed_del) = with_kernel(&ns, async |k| {
        let added = k.add_batch(&[route(x0, "2001:db8:7::99")]).await;
        let deleted = k.delete_batch(&[route(0, "ff35::1")]).await;
        (added, deleted)
    });
    assert!(
        failed_add.is_empty() && failed_del.is_empty(),
        "{failed_add:?} {failed_del:?}"
    );
    assert!(lines(&ns, "ip -6 route show table all proto 158").is_empty());
}

/// Our addresses (IFA_PROTO) and gateway routes: listed, replaced, reconciled and removed
/// like the other objects, while a hand-made address (no tag), an address tagged by another
/// protocol and routes of another protocol (one with our route's very selectors) survive.
#[test]
#[ignore = "needs root"]
fn addresses_and_gateway_routes_are_ours_alone() {
    require_root();
    let (ns, x0) = one_link("ag");
    ns.sh("ip addr add 2001:db8:7::50/64 dev x0 nodad && \
         ip -6 route add 2001:db8:90::/48 via 2001:db8:7::2 dev x0 proto static && \
         ip -6 route add default via 2001:db8:7::3 dev x0 table 300 proto static");
    let other_protocol = KObject::Address {
        addr: "2001:db8:7::60".parse().unwrap(),
        prefix_len: 64,
        ifindex: x0,
    };
    ns.enter(|| {
        block(async {
            let other = Kernel::connect(RTPROT_MIPCAST + 1).await.expect("connect");
            other
                .add(&other_protocol)
                .await
                .expect("other protocol's address");
        })
    });
    let addr = |a: &str, prefix_len| KObject::Address {
        addr: a.parse().unwrap(),
        prefix_len,
        ifindex: x0,
    };
    let via = |dst: &str, gw: &str, table| KObject::GatewayRoute {
        dst: dst.parse().unwrap(),
        gateway: gw.parse().unwrap(),
        oif: x0,
        table,
    };
    let a1 = addr("2001:db8:7::5", 64);
    let a2 = addr("2001:db8:7::6", 128);
    let g1 = via("::/0", "fe80::1", RT_TABLE_MAIN);
    let g2 = via("2001:db8:91::1/48", "2001:db8:7::2", 300);
    let foreign_default = via("::/0", "2001:db8:7::3", 300);
    let foreign_lines = [
        "2001:db8:90::/48 via 2001:db8:7::2 dev x0 proto static metric 1024 pref medium",
        "default via 2001:db8:7::3 dev x0 table 300 proto static metric 1024 pref medium",
    ];

    let g1_moved = via("::/0", "fe80::2", RT_TABLE_MAIN);
    with_kernel(&ns, async |k: &Kernel| {
        for o in [a1, a2, g1, g2] {
            k.add(&o).await.unwrap_or_else(|e| panic!("{e}"));
        }
        // The mobile node re-applies its addresses: replace of one present succeeds, a plain
        // add reports it.
        k.replace(&a1).await.expect("replace of a present address");
        assert_eq!(
            k.add(&a1).await.expect_err("duplicate add").errno(),
            Some(libc::EEXIST)
        );
        let mut ours = k.list_ours().await.expect("list");
        ours.sort();
        let mut want = vec![a1, a2, g1.normalized(), g2.normalized()];
        want.sort();
        assert_eq!(ours, want);
        // The kernel matches the route's protocol on delete: the other daemon's route with
        // the same table, destination, gateway and device stays.
        assert!(k.delete(&foreign_default).await.is_err());
        k.replace(&g1_moved).await.expect("replace default route");
    });
    let addrs = ns.sh("ip -6 addr show dev x0");
    for a in [
        "2001:db8:7::5/64",
        "2001:db8:7::6/128",
        "2001:db8:7::50/64",
        "2001:db8:7::60/64",
    ] {
        assert!(addrs.contains(a), "{a} missing in\n{addrs}");
    }
    let ours = lines(&ns, "ip -6 route show table all proto 158");
    assert_eq!(
        ours,
        [
            "2001:db8:91::/48 via 2001:db8:7::2 dev x0 table 300 metric 1024 pref medium",
            "default via fe80::2 dev x0 metric 1024 pref medium",
        ]
    );
    let all = lines(&ns, "ip -6 route show table all");
    for l in foreign_lines {
        assert!(all.iter().any(|a| a == l), "{l} missing in {all:#?}");
    }

    let report = with_kernel(&ns, async |k: &Kernel| {
        k.reconcile(&HashSet::from([a1, g1_moved]))
            .await
            .expect("reconcile")
    });
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut removed = report.removed.clone();
    removed.sort();
    let mut want = vec![a2, g2.normalized()];
    want.sort();
    assert_eq!(removed, want);
    assert!(!ns
        .sh("ip -6 addr show dev x0")
        .contains("2001:db8:7::6/128"));

    let report = with_kernel(&ns, async |k: &Kernel| {
        k.remove_all_ours().await.expect("remove all")
    });
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.removed.len(), 2, "{:?}", report.removed);
    let addrs = ns.sh("ip -6 addr show dev x0");
    assert!(!addrs.contains("2001:db8:7::5/64"), "{addrs}");
    for a in ["2001:db8:7::50/64", "2001:db8:7::60/64", "2001:db8:7::1/64"] {
        assert!(addrs.contains(a), "{a} removed:\n{addrs}");
    }
    assert!(lines(&ns, "ip -6 route show table all proto 158").is_empty());
    let all = lines(&ns, "ip -6 route show table all");
    for l in foreign_lines {
        assert!(all.iter().any(|a| a == l), "{l} missing in {all:#?}");
    }
    let theirs = ns.enter(|| {
        block(async {
            let other = Kernel::connect(RTPROT_MIPCAST + 1).await.expect("connect");
            other.list_ours().await.expect("list")
        })
    });
    assert_eq!(theirs, vec![other_protocol]);
}

/// `apply_in_runs`: one outcome per change in order, across runs of adds, deletes and
/// replaces; `remove_ours_at_stop` leaves nothing of ours and the local rule at 0.
#[test]
#[ignore = "needs root"]
fn changes_in_runs_answer_in_order_and_stop_removes_everything() {
    use mipcast_kernel::route::Op;
    use mipcast_proto::Outcome;
    require_root();
    let (ns, x0) = one_link("rr");
    let route = |n: u16, tunnel: &str| KObject::EncapRoute {
        dst: format!("2001:db8:b::{n:x}/128").parse().unwrap(),
        src: None,
        tunnel_dst: tunnel.parse().unwrap(),
        oif: x0,
        table: 201,
    };
    let (a, b, c) = (
        route(1, "ff35::1"),
        route(2, "ff35::2"),
        route(3, "ff35::3"),
    );
    let changes = [
        (Op::Add, a),
        (Op::Add, b),
        // Already there: refused as EEXIST, and only this one.
        (Op::Add, a),
        (Op::Delete, b),
        // Already gone.
        (Op::Delete, b),
        (Op::Replace, route(1, "ff35::9")),
        (Op::Add, c),
    ];
    let outcomes = with_kernel(&ns, async |k| {
        k.ensure_local_rule_moved(DEFAULT_LOCAL_RULE_PREF)
            .await
            .expect("move the local rule");
        k.apply_in_runs(&changes).await
    });
    assert_eq!(
        outcomes,
        [
            Outcome::Applied,
            Outcome::Applied,
            Outcome::AlreadyPresent,
            Outcome::Applied,
            Outcome::AlreadyGone,
            Outcome::Applied,
            Outcome::Applied,
        ]
    );
    let routes = lines(&ns, "ip -6 route show table 201 proto 158");
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("2001:db8:b::1 ") && r.contains("ff35::9")),
        "{routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("2001:db8:b::3 ")),
        "{routes:?}"
    );

    let (removed, failed) = with_kernel(&ns, async |k| {
        k.remove_ours_at_stop(DEFAULT_LOCAL_RULE_PREF).await
    });
    assert_eq!((removed, failed), (2, 0));
    assert!(lines(&ns, "ip -6 route show table all proto 158").is_empty());
    assert!(
        lines(&ns, "ip -6 rule")
            .iter()
            .any(|r| r.starts_with("0:") && r.contains("lookup local")),
        "{:?}",
        lines(&ns, "ip -6 rule")
    );
}
