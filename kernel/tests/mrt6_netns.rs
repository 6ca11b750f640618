//! MRT6 against a real kernel: the seg6 encap-to-group path across MFC entries, upcalls,
//! counters, table flush on close, the MIF limit, per-daemon tables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_kernel::mrt6::{Mrt6, UpcallKind, MAX_MIFS};
use mipcast_kernel::sockets::SocketError;
use mipcast_netns_tests::{require_root, udp_send, veth, Netns, UdpProbe};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    ns.sh(&format!("cat /sys/class/net/{ifname}/ifindex"))
        .trim()
        .parse()
        .expect("ifindex")
}

fn wait_ready(ns: &Netns, ifname: &str) {
    for _ in 0..100 {
        if ns
            .sh(&format!("ip -6 route show table local dev {ifname}"))
            .contains("ff00::/8")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("IPv6 on {ifname} in {} never became ready", ns.name());
}

fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    veth(a, a_if, a_addr, b, b_if, b_addr);
    wait_ready(a, a_if);
    wait_ready(b, b_if);
}

fn open(ns: &Netns, rt: &Runtime, table: Option<u32>) -> Mrt6 {
    ns.enter(|| {
        let _g = rt.enter();
        Mrt6::open(table).expect("MRT6_INIT")
    })
}

/// Waits for datagram `want`, skipping others (a packet queued by the kernel while an (S,G)
/// was unresolved is forwarded late, once the entry appears).
fn received(probe: &UdpProbe, want: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match probe.recv(left) {
            Some((payload, _)) if payload == want => return true,
            Some(_) => continue,
            None => return false,
        }
    }
    false
}

/// (origin, group) pairs in /proc/net/ip6_mr_cache (the default table).
fn mr_cache(ns: &Netns) -> Vec<(Ipv6Addr, Ipv6Addr)> {
    ns.sh("cat /proc/net/ip6_mr_cache")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let group = w.next()?.parse().ok()?;
            let origin = w.next()?.parse().ok()?;
            Some((origin, group))
        })
        .collect()
}

/// Interface names in /proc/net/ip6_mr_vif (the default table).
fn mr_vifs(ns: &Netns) -> Vec<String> {
    ns.sh("cat /proc/net/ip6_mr_vif")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn encapsulation_to_group_crosses_mfc_entries_to_receiver() {
    require_root();
    let (src, mma, r, rcv) = (
        Netns::new("esrc"),
        Netns::new("emma"),
        Netns::new("er"),
        Netns::new("ercv"),
    );
    link(
        &src,
        "s0",
        "2001:db8:1::1/64",
        &mma,
        "m0",
        "2001:db8:1::2/64",
    );
    link(&mma, "m1", "2001:db8:2::1/64", &r, "r0", "2001:db8:2::2/64");
    link(&r, "r1", "2001:db8:3::1/64", &rcv, "v0", "2001:db8:3::2/64");
    let s: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    let g: Ipv6Addr = "ff35::200:ff:fe00:100".parse().unwrap();
    let inner = "2001:db8:99::1";
    src.sh("ip -6 route add default via 2001:db8:1::2");
    mma.sh(&format!("ip sr tunsrc set {s} && ip -6 route add {inner}/128 encap seg6 mode encap.red segs {g} dev m1"));
    rcv.sh(&format!(
        "ip addr add {inner}/128 dev lo && ip -6 rule add pref 1000 lookup local && ip -6 rule del pref 0 && \
         ip -6 rule add pref 10 to {g} ipproto 41 lookup 100 && \
         ip -6 route add {g}/128 encap seg6local action End.DT6 table 255 dev v0 table 100"
    ));
    let rt = runtime();
    let mma_mrt = open(&mma, &rt, None);
    let (m0, m1) = (
        mma_mrt.add_mif(ifindex(&mma, "m0")).unwrap(),
        mma_mrt.add_mif(ifindex(&mma, "m1")).unwrap(),
    );
    let r_mrt = open(&r, &rt, None);
    let (r0, r1) = (
        r_mrt.add_mif(ifindex(&r, "r0")).unwrap(),
        r_mrt.add_mif(ifindex(&r, "r1")).unwrap(),
    );
    r_mrt.add_mfc(s, g, r0, &[r1]).expect("r MFC");
    let probe = UdpProbe::bind(&rcv, inner, 5000);

    // Trap 1: without the MMA's own (S,G) entry the re-encapsulated packet, on the input path,
    // is a received multicast packet and stays in the MMA (as an unresolved-cache upcall).
    udp_send(&src, "2001:db8:1::1", inner, 5000, "one");
    assert!(
        !received(&probe, "one", Duration::from_secs(1)),
        "arrived without the MMA's MFC entry"
    );
    let upcall = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(2), mma_mrt.recv_upcall()).await
        })
        .expect("NOCACHE upcall in the MMA")
        .expect("recv upcall");
    assert_eq!(
        (upcall.kind, upcall.mif, upcall.source, upcall.group),
        (UpcallKind::NoCache, m0, s, g)
    );

    mma_mrt.add_mfc(s, g, m0, &[m1]).expect("MMA MFC");
    udp_send(&src, "2001:db8:1::1", inner, 5000, "two");
    assert!(
        received(&probe, "two", Duration::from_secs(3)),
        "datagram did not cross both MFC entries"
    );
    let sg = r_mrt.sg_counters(s, g).expect("r (S,G) counters");
    assert!(sg.packets > 0 && sg.bytes > 0, "{sg:?}");
    assert_eq!(sg.wrong_if, 0);
    let out = r_mrt.mif_counters(r1).expect("r MIF counters");
    assert!(out.out_packets > 0, "{out:?}");
    let mma_sg = mma_mrt.sg_counters(s, g).expect("MMA (S,G) counters");
    assert!(mma_sg.packets > 0, "{mma_sg:?}");

    r_mrt.del_mfc(s, g).expect("r del MFC");
    assert!(r_mrt.sg_counters(s, g).is_err(), "the entry is gone");
    udp_send(&src, "2001:db8:1::1", inner, 5000, "three");
    assert!(
        !received(&probe, "three", Duration::from_secs(1)),
        "arrived after del_mfc in r"
    );
    let upcall = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(2), r_mrt.recv_upcall()).await })
        .expect("NOCACHE upcall in r")
        .expect("recv upcall");
    assert_eq!(
        (upcall.kind, upcall.mif, upcall.source, upcall.group),
        (UpcallKind::NoCache, r0, s, g)
    );

    // With MRT6_ASSERT on, data arriving on one of an entry's outgoing interfaces is reported
    // (WRONGMIF): the trigger of a PIM Assert.
    r_mrt.set_assert(true).expect("MRT6_ASSERT");
    r_mrt.add_mfc(s, g, r1, &[r0]).expect("r MFC, r0 outgoing");
    udp_send(&src, "2001:db8:1::1", inner, 5000, "four");
    let wrong = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match r_mrt.recv_upcall().await {
                    Ok(u) if u.kind == UpcallKind::WrongMif => return Some(u),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await
    });
    let wrong = wrong.ok().flatten().expect("WRONGMIF upcall in r");
    assert_eq!((wrong.mif, wrong.source, wrong.group), (r0, s, g));
}

#[test]
#[ignore = "needs root"]
fn close_flushes_table_mif_limit_and_per_daemon_tables() {
    require_root();
    let ns = Netns::new("mrt");
    ns.sh("for i in $(seq 0 32); do ip link add v$i type veth peer name p$i; done");
    let rt = runtime();
    let mrt = open(&ns, &rt, None);
    assert_eq!(mrt.table(), 254);
    assert_eq!(
        ns.sh("cat /proc/sys/net/ipv6/conf/all/mc_forwarding")
            .trim(),
        "1",
        "MRT6_INIT raises all.mc_forwarding"
    );
    let mut mifs = Vec::new();
    for i in 0..MAX_MIFS {
        mifs.push(
            mrt.add_mif(ifindex(&ns, &format!("v{i}")))
                .expect("add MIF"),
        );
    }
    assert_eq!(
        mrt.add_mif(ifindex(&ns, "v0")).unwrap(),
        mifs[0],
        "adding an interface again returns its MIF"
    );
    match mrt.add_mif(ifindex(&ns, "v32")) {
        Err(e @ SocketError::MifTableFull { .. }) => {
            assert!(e.to_string().contains("all 32 MIFs"), "{e}")
        }
        other => panic!("33rd MIF: {other:?}"),
    }
    assert_eq!(mr_vifs(&ns).len(), 32);
    assert_eq!(
        ns.sh("cat /proc/sys/net/ipv6/conf/v5/mc_forwarding").trim(),
        "1",
        "a MIF raises its interface's"
    );
    mrt.del_mif(mifs[31]).expect("del MIF");
    assert!(!mr_vifs(&ns).contains(&"v31".to_string()));
    assert_eq!(
        mrt.add_mif(ifindex(&ns, "v32")).unwrap(),
        mifs[31],
        "the freed slot is reused"
    );

    let (s, g): (Ipv6Addr, Ipv6Addr) = ("2001:db8::5".parse().unwrap(), "ff35::1".parse().unwrap());
    mrt.add_mfc(s, g, mifs[0], &[mifs[1], mifs[2]])
        .expect("add MFC");
    assert_eq!(mr_cache(&ns), vec![(s, g)]);
    assert!(
        matches!(mrt.add_mfc(s, g, mifs[0], &[]), Ok(())),
        "replacing an entry"
    );

    match ns.enter(|| {
        let _g = rt.enter();
        Mrt6::open(None)
    }) {
        Err(e @ SocketError::TableInUse { table: 254 }) => {
            assert!(e.to_string().contains("already owns"))
        }
        other => panic!(
            "second socket on the default table: {:?}",
            other.map(|m| m.table())
        ),
    }
    let other = open(&ns, &rt, Some(100));
    let o0 = other.add_mif(ifindex(&ns, "v0")).expect("MIF in table 100");
    let o1 = other.add_mif(ifindex(&ns, "v1")).expect("MIF in table 100");
    other
        .add_mfc(s, "ff35::2".parse().unwrap(), o0, &[o1])
        .expect("MFC in table 100");
    assert!(ns.sh("ip -6 mroute show table 100").contains("ff35::2"));
    assert!(
        !ns.sh("ip -6 mroute show table 100").contains("ff35::1"),
        "tables are separate"
    );

    drop(mrt);
    assert!(mr_vifs(&ns).is_empty(), "MRT6_DONE removed the MIFs");
    assert!(
        mr_cache(&ns).is_empty(),
        "MRT6_DONE removed the MFC entries"
    );
    assert_eq!(
        ns.sh("cat /proc/sys/net/ipv6/conf/v5/mc_forwarding").trim(),
        "0"
    );
    assert!(
        ns.sh("ip -6 mroute show table 100").contains("ff35::2"),
        "the other table is untouched"
    );
    other.close().expect("MRT6_DONE on table 100");
    assert!(!ns.sh("ip -6 mroute show table 100").contains("ff35::2"));
    assert_eq!(
        ns.sh("cat /proc/sys/net/ipv6/conf/all/mc_forwarding")
            .trim(),
        "0"
    );
}
