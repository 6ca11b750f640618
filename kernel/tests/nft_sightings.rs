//! Route-optimisation detection (issue 12): the sighting rule copies the first packet of each
//! (source, destination) pair that the router re-encapsulates from the WAN to the site
//! interface (as the MMA does toward a terminal's group) to the NFLOG group, once per
//! interval, and nothing else; the NFLOG socket reads the inner pairs. Needs root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_kernel::nft::{SightingRule, SightingSpec};
use mipcast_kernel::sockets::NflogSocket;
use mipcast_netns_tests::{require_root, udp_send, veth, Netns};

const A1: &str = "2001:db8:a::1";
const A2: &str = "2001:db8:a::11";
const B: &str = "2001:db8:b::2";
const GROUP: u16 = 7;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Every pair logged until the group is quiet for 300 ms.
async fn drain(sock: &mut NflogSocket) -> Vec<(Ipv6Addr, Ipv6Addr)> {
    let mut out = Vec::new();
    while let Ok(got) = tokio::time::timeout(Duration::from_millis(300), sock.next()).await {
        out.extend(got.unwrap());
    }
    out
}

#[test]
#[ignore = "needs root"]
fn first_packet_of_each_pair_is_logged_once_per_interval() {
    require_root();
    let a = Netns::new("sgA");
    let r = Netns::new("sgR");
    let b = Netns::new("sgB");
    veth(
        &a,
        "e0",
        &format!("{A1}/64"),
        &r,
        "wan0",
        "2001:db8:a::2/64",
    );
    veth(
        &r,
        "site0",
        "2001:db8:b::1/64",
        &b,
        "e0",
        &format!("{B}/64"),
    );
    a.sh(&format!(
        "ip -6 addr add {A2}/64 dev e0 nodad && ip -6 route add default via 2001:db8:a::2"
    ));
    b.sh(
        "ip -6 route add default via 2001:db8:b::1 && ip -6 addr add 2001:db8:b::3/64 dev e0 nodad",
    );
    // The router tunnels everything for B to b's second address, on the input path.
    r.sh(&format!(
        "ip sr tunsrc set 2001:db8:b::1 && \
         ip -6 route add {B}/128 encap seg6 mode encap.red segs 2001:db8:b::3 dev site0"
    ));
    let ifindex = |name: &str| -> u32 {
        r.sh(&format!("cat /sys/class/net/{name}/ifindex"))
            .trim()
            .parse()
            .unwrap()
    };
    let spec = SightingSpec {
        site_ifindex: ifindex("site0"),
        group: GROUP,
        interval_s: 1,
        max_pairs: 1024,
    };
    let rule = SightingRule::new("mipcast_ro").unwrap();
    r.enter(|| rule.install(&spec)).unwrap();
    // Installing again replaces, never duplicates.
    r.enter(|| rule.install(&spec)).unwrap();
    let listing = r.sh("nft list table ip6 mipcast_ro");
    assert_eq!(listing.matches("log group 7").count(), 1, "{listing}");

    let (first, again) = r.enter(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut sock = NflogSocket::bind(GROUP).await.unwrap();
            for i in 0..5 {
                udp_send(&a, A1, B, 9000, &format!("a1-{i}"));
            }
            for i in 0..3 {
                udp_send(&a, A2, B, 9000, &format!("a2-{i}"));
            }
            // The other direction (site to WAN) is not what the rule watches.
            udp_send(&b, B, A1, 9000, "reverse");
            let first = drain(&mut sock).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            udp_send(&a, A1, B, 9000, "later");
            udp_send(&a, A1, B, 9000, "later-2");
            (first, drain(&mut sock).await)
        })
    });
    assert_eq!(first, vec![(ip(A1), ip(B)), (ip(A2), ip(B))]);
    assert_eq!(again, vec![(ip(A1), ip(B))], "once more after the interval");

    r.enter(|| rule.remove()).unwrap();
    assert!(!r.sh("nft list tables").contains("mipcast_ro"));
}
