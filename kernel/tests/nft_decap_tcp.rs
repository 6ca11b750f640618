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
