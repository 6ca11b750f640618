//! Traffic through tunnels built with the route API: encap at A, decap + forward at B,
//! delivery at C; and a tunnel from an unregistered outer source dropped at B.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::time::Duration;

use mipcast_kernel::route::{
    KObject, Kernel, DEFAULT_LOCAL_RULE_PREF, RTPROT_MIPCAST, RT_TABLE_MAIN,
};
use mipcast_netns_tests::{require_root, udp_send, veth, Netns, UdpProbe};

const DECAP_TABLE: u32 = 100;
const PORT: u16 = 9999;

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Runs `f` with a connected [`Kernel`] inside `ns`.
fn with_kernel<R: Send>(ns: &Netns, f: impl AsyncFnOnce(&Kernel) -> R + Send) -> R {
    ns.enter(|| {
        block(async {
            let k = Kernel::connect(RTPROT_MIPCAST).await.expect("connect");
            f(&k).await
        })
    })
}

/// Packets counted by the nft rule with `comment` in table `ip6 probe`.
fn nft_count(ns: &Netns, comment: &str) -> u64 {
    let out = ns.sh("nft list table ip6 probe");
    let line = out
        .lines()
        .find(|l| l.contains(comment))
        .unwrap_or_else(|| panic!("no rule {comment} in {out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "packets").expect("packets");
    words[at + 1].parse().expect("count")
}

/// A --(2001:db8:1::/64)-- B --(2001:db8:2::/64)-- C, C owns 2001:db8:99::9 on lo and B
/// routes 2001:db8:99::/64 to C. B decapsulates tunnels from `peer` to 2001:db8:1::2.
struct Topology {
    a: Netns,
    b: Netns,
    c: Netns,
}

fn topology() -> Topology {
    let (a, b, c) = (Netns::new("ra"), Netns::new("rb"), Netns::new("rc"));
    veth(&a, "va", "2001:db8:1::1/64", &b, "vb", "2001:db8:1::2/64");
    veth(&b, "vc", "2001:db8:2::1/64", &c, "vd", "2001:db8:2::2/64");
    c.sh("ip addr add 2001:db8:99::9/128 dev lo");
    b.sh("ip -6 route add 2001:db8:99::/64 via 2001:db8:2::2");
    // Counters on B's side of the A-B link: every IPv6-in-IPv6 packet for B, and any
    // plain UDP (which must not appear: the datagram travels encapsulated).
    b.sh("nft add table ip6 probe && \
          nft add chain ip6 probe pre '{ type filter hook prerouting priority -300; }' && \
          nft add rule ip6 probe pre iifname vb ip6 daddr 2001:db8:1::2 ip6 nexthdr 41 counter comment tunnel && \
          nft add rule ip6 probe pre iifname vb meta l4proto udp counter comment plainudp");
    Topology { a, b, c }
}

fn encap_at(ns: &Netns, oif_name: &str) {
    with_kernel(ns, async |k| {
        let oif = k.ifindex(oif_name).await.expect("ifindex");
        k.add(&KObject::EncapRoute {
            dst: "2001:db8:99::/64".parse().unwrap(),
            src: None,
            tunnel_dst: "2001:db8:1::2".parse().unwrap(),
            oif,
            table: RT_TABLE_MAIN,
        })
        .await
        .expect("encap route");
    });
}

fn decap_at_b(b: &Netns, peer: &str) {
    with_kernel(b, async |k| {
        let oif = k.ifindex("vb").await.expect("ifindex");
        k.ensure_local_rule_moved(DEFAULT_LOCAL_RULE_PREF)
            .await
            .expect("move local rule");
        let objects = [
            KObject::DecapRoute {
                local: "2001:db8:1::2".parse().unwrap(),
                oif,
                table: DECAP_TABLE,
                inner_table: RT_TABLE_MAIN,
            },
            KObject::Rule {
                pref: 10,
                from: Some(format!("{peer}/128").parse().unwrap()),
                to: Some("2001:db8:1::2/128".parse().unwrap()),
                ipproto: Some(41),
                table: DECAP_TABLE,
            },
        ];
        let failed = k.add_batch(&objects).await;
        assert!(failed.is_empty(), "{failed:?}");
    });
}

#[test]
#[ignore = "needs root"]
fn datagram_crosses_encap_decap_and_forward() {
    require_root();
    let t = topology();
    encap_at(&t.a, "va");
    decap_at_b(&t.b, "2001:db8:1::1");
    // The kernel state our objects became, in iproute2's words.
    let a_routes = t.a.sh("ip -6 route show proto 158");
    assert!(
        a_routes.contains("encap seg6 mode encap.red segs 1 [ 2001:db8:1::2 ]"),
        "{a_routes}"
    );
    let b_routes = t.b.sh("ip -6 route show table 100");
    assert!(
        b_routes.contains("encap seg6local action End.DT6 table main"),
        "{b_routes}"
    );

    // Lookups pim-lite relies on for RPF, against what iproute2 says.
    let vc =
        t.b.sh("cat /sys/class/net/vc/ifindex")
            .trim()
            .parse::<u32>()
            .expect("ifindex");
    let (via_c, nowhere, missing) = with_kernel(&t.b, async |k| {
        (
            k.route_get("2001:db8:99::9".parse().unwrap())
                .await
                .expect("route get"),
            k.route_get("2001:db8:dead::1".parse().unwrap())
                .await
                .expect("route get"),
            k.ifindex("nonexistent0").await,
        )
    });
    let via_c = via_c.expect("B has a route to C's prefix");
    assert_eq!(
        (via_c.oif, via_c.gateway),
        (vc, Some("2001:db8:2::2".parse().unwrap()))
    );
    assert_eq!(nowhere, None, "B has no default route");
    assert_eq!(
        missing.expect_err("no such interface").to_string(),
        "no interface named \"nonexistent0\""
    );

    let probe = UdpProbe::bind(&t.c, "2001:db8:99::9", PORT);
    udp_send(
        &t.a,
        "2001:db8:1::1",
        "2001:db8:99::9",
        PORT,
        "through-the-tunnel",
    );
    let got = probe
        .recv(Duration::from_secs(3))
        .expect("datagram reached C");
    assert_eq!(got.0, "through-the-tunnel");
    assert_eq!(got.1.ip().to_string(), "2001:db8:1::1", "inner source kept");
    assert_eq!(
        nft_count(&t.b, "tunnel"),
        1,
        "one IPv6-in-IPv6 packet on the A-B link"
    );
    assert_eq!(
        nft_count(&t.b, "plainudp"),
        0,
        "no unencapsulated UDP on the A-B link"
    );
}

#[test]
#[ignore = "needs root"]
fn tunnel_from_unregistered_source_is_dropped() {
    require_root();
    let t = topology();
    let d = Netns::new("rd");
    veth(&d, "de", "2001:db8:3::1/64", &t.b, "bd", "2001:db8:3::2/64");
    // D reaches B's decap address through B's other interface, then tunnels like A does.
    d.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:3::2");
    encap_at(&d, "de");
    encap_at(&t.a, "va");
    decap_at_b(&t.b, "2001:db8:1::1");
    t.b.sh("nft add rule ip6 probe pre iifname bd ip6 nexthdr 41 counter comment fromd");

    let probe = UdpProbe::bind(&t.c, "2001:db8:99::9", PORT);
    udp_send(&d, "2001:db8:3::1", "2001:db8:99::9", PORT, "spoofed");
    // D's tunnel packet did reach B (so a drop below is B's decision, not a broken path).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while nft_count(&t.b, "fromd") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        nft_count(&t.b, "fromd"),
        1,
        "D's tunnel packet arrived at B"
    );
    udp_send(&t.a, "2001:db8:1::1", "2001:db8:99::9", PORT, "registered");
    let got = probe
        .recv(Duration::from_secs(3))
        .expect("registered datagram reached C");
    assert_eq!(
        got.0, "registered",
        "the unregistered one must not be forwarded"
    );
    assert!(
        probe.recv(Duration::from_millis(500)).is_none(),
        "nothing else reached C"
    );
}
