//! Design trap 2, end to end: TCP to a home address reached through an IPv6-in-IPv6 tunnel to a
//! multicast group dies after End.DT6 decapsulation unless NftMarker marks the group's tunnel
//! packets as host-addressed. UDP through the same tunnel shows the path itself works.
//! Needs root (own namespaces).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::io::{Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mipcast_kernel::nft::NftMarker;
use mipcast_netns_tests::{require_root, veth, Netns, UdpProbe};

const S_ADDR: &str = "2001:db8:5::1";
const R_ADDR: &str = "2001:db8:5::2";
const HOA: &str = "2001:db8:99::100";
const G: &str = "ff35::200:ff:fe00:100";
const PORT: u16 = 7000;
const PAYLOAD: &[u8] = b"tcp through the multicast tunnel";

/// S encapsulates everything for the HoA towards G; R decapsulates G's IPv6-in-IPv6 packets
/// into its local table (the terminal side of the design's reference path).
fn topology() -> (Netns, Netns) {
    let s = Netns::new("nftS");
    let r = Netns::new("nftR");
    veth(
        &s,
        "e0",
        &format!("{S_ADDR}/64"),
        &r,
        "e0",
        &format!("{R_ADDR}/64"),
    );
    s.sh(&format!(
        "ip -6 route add {HOA}/128 encap seg6 mode encap.red segs {G} dev e0"
    ));
    r.sh(&format!("ip addr add {HOA}/128 dev lo"));
    r.sh("ip -6 rule add pref 1000 lookup local && ip -6 rule del pref 0");
    r.sh(&format!(
        "ip -6 rule add pref 10 to {G} ipproto 41 lookup 100"
    ));
    r.sh(&format!(
        "ip -6 route add {G}/128 encap seg6local action End.DT6 table 255 dev e0 table 100"
    ));
    (s, r)
}

/// Connects from S to the HoA and sends PAYLOAD; returns what R's listener received, or why not.
fn tcp_through_tunnel(s: &Netns, listener: &TcpListener) -> Result<Vec<u8>, String> {
    let hoa = SocketAddr::from((HOA.parse::<Ipv6Addr>().unwrap(), PORT));
    s.enter(|| -> Result<(), String> {
        let mut c = TcpStream::connect_timeout(&hoa, Duration::from_secs(2))
            .map_err(|e| format!("connect: {e}"))?;
        c.write_all(PAYLOAD).map_err(|e| format!("write: {e}"))?;
        c.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))
    })?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    Ok(got)
}

#[test]
#[ignore = "needs root"]
fn tcp_to_home_address_needs_the_pkttype_mark() {
    require_root();
    let (s, r) = topology();
    let listener = r.enter(|| TcpListener::bind((HOA.parse::<Ipv6Addr>().unwrap(), PORT)).unwrap());
    listener.set_nonblocking(true).unwrap();

    // The tunnel delivers: UDP to the HoA arrives without any marking.
    let probe = UdpProbe::bind(&r, HOA, PORT);
    s.enter(|| {
        let u = std::net::UdpSocket::bind((S_ADDR.parse::<Ipv6Addr>().unwrap(), 0)).unwrap();
        u.send_to(b"udp", (HOA.parse::<Ipv6Addr>().unwrap(), PORT))
            .unwrap();
    });
    let (udp, _) = probe
        .recv(Duration::from_secs(2))
        .expect("UDP through the tunnel without marking");
    assert_eq!(udp, "udp");
    // S's only route to the HoA is the tunnel to G (R has the HoA on lo, not on the link).
    let route = s.sh(&format!("ip -6 route get {HOA}"));
    assert!(
        route.contains(&format!("encap seg6 mode encap.red segs 1 [ {G} ]")),
        "{route}"
    );

    // Trap 2: TCP does not get through.
    let err =
        tcp_through_tunnel(&s, &listener).expect_err("TCP must fail without the pkttype mark");
    assert!(err.starts_with("connect"), "{err}");

    let marker = NftMarker::new("mipcast").unwrap();
    r.enter(|| marker.add_group(G.parse().unwrap())).unwrap();
    assert_eq!(
        tcp_through_tunnel(&s, &listener).expect("TCP with the mark"),
        PAYLOAD
    );

    // Removing the group brings the trap back; removing the table leaves nothing of ours.
    r.enter(|| marker.remove_group(G.parse().unwrap())).unwrap();
    let err = tcp_through_tunnel(&s, &listener).expect_err("TCP must fail again without the mark");
    assert!(err.starts_with("connect"), "{err}");
    r.enter(|| marker.remove_table()).unwrap();
    assert_eq!(r.sh("nft list ruleset").trim(), "");
}

/// The per-link counter the mobile node reads around a move: it counts the tunnelled packets
/// arriving on its interface, and nothing else (not plain traffic on the same link), and
/// adding it twice installs one rule. Shown by `nft` as the rule its text would make.
#[test]
#[ignore = "needs root"]
fn link_counter_counts_the_tunnelled_packets_of_its_interface() {
    require_root();
    let (s, r) = topology();
    let ifindex: u32 = r
        .sh("cat /sys/class/net/e0/ifindex")
        .trim()
        .parse()
        .unwrap();
    let m = mipcast_kernel::nft::NftMarker::new("mipcast_count").unwrap();
    r.enter(|| {
        assert_eq!(m.link_counters().unwrap(), vec![], "no table yet");
        m.add_link_counter(ifindex).unwrap();
        m.add_link_counter(ifindex).unwrap();
        assert_eq!(m.link_counters().unwrap(), vec![(ifindex, 0)]);
    });
    // Four tunnelled datagrams (the tunnel route to the HoA), three plain ones to R's own
    // address; each waited for, so all have passed R's prerouting hook.
    let tunnelled = UdpProbe::bind(&r, HOA, PORT);
    let plain = UdpProbe::bind(&r, R_ADDR, PORT);
    for (to, probe, n) in [(R_ADDR, &plain, 3), (HOA, &tunnelled, 4)] {
        for _ in 0..n {
            s.enter(|| {
                let u =
                    std::net::UdpSocket::bind((S_ADDR.parse::<Ipv6Addr>().unwrap(), 0)).unwrap();
                u.send_to(b"udp", (to.parse::<Ipv6Addr>().unwrap(), PORT))
                    .unwrap();
            });
            assert!(probe.recv(Duration::from_secs(2)).is_some(), "to {to}");
        }
    }
    let counted = r.enter(|| m.link_counters().unwrap());
    assert_eq!(counted, vec![(ifindex, 4)]);
    let listing = r.sh("nft list table ip6 mipcast_count");
    assert!(
        listing.contains("iif \"e0\" ip6 nexthdr ipv6 counter packets 4"),
        "{listing}"
    );
    assert_eq!(r.enter(|| m.groups().unwrap()), Vec::<Ipv6Addr>::new());
    r.enter(|| m.remove_table().unwrap());
    assert_eq!(r.enter(|| m.link_counters().unwrap()), vec![]);
}
