//! Raw MH / ICMPv6 / PIM sockets and SSM memberships against a real kernel, in namespaces.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use mipcast_kernel::sockets::{
    IcmpSocket, MhSocket, PacketInfo, PimSocket, SsmMembership, ALL_MLDV2_ROUTERS, ALL_NODES,
    ALL_PIM_ROUTERS, ALL_ROUTERS,
};
use mipcast_netns_tests::{require_root, veth, Daemon, Netns};
use mipcast_wire::checksum::verify_ipv6_upper_layer;
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

/// Waits until IPv6 on `ifname` is up (link-local address and multicast route installed):
/// right after `ip link set up` the kernel drops multicast for lack of a route.
fn wait_ready(ns: &Netns, ifname: &str) {
    for _ in 0..100 {
        let routes = ns.sh(&format!("ip -6 route show table local dev {ifname}"));
        let addrs = ns.sh(&format!("ip -6 -o addr show dev {ifname} scope link"));
        if routes.contains("ff00::/8") && addrs.contains("inet6") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("IPv6 on {ifname} in {} never became ready", ns.name());
}

/// A veth pair whose both ends are ready for IPv6 traffic.
fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    veth(a, a_if, a_addr, b, b_if, b_addr);
    wait_ready(a, a_if);
    wait_ready(b, b_if);
}

fn link_local(ns: &Netns, ifname: &str) -> Ipv6Addr {
    let out = ns.sh(&format!("ip -6 -o addr show dev {ifname} scope link"));
    let cidr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .expect("link-local address");
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("address")
}

/// tcpdump writing a pcap in a namespace; stopped with SIGINT so the file is complete.
struct Capture {
    daemon: Daemon,
    file: PathBuf,
    log: PathBuf,
}

impl Capture {
    fn start(ns: &Netns, ifname: &str) -> Capture {
        let dir = std::env::temp_dir();
        let file = dir.join(format!("{}-{ifname}.pcap", ns.name()));
        let log = dir.join(format!("{}-{ifname}.tcpdump.log", ns.name()));
        let path = file.to_str().expect("utf-8 path");
        let child = ns.spawn(
            "tcpdump",
            &["-i", ifname, "-n", "--immediate-mode", "-U", "-w", path],
            Some(&log),
        );
        let daemon = Daemon(child);
        for _ in 0..100 {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on")) {
                return Capture { daemon, file, log };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tcpdump did not start on {ifname}");
    }

    /// Stops the capture and returns tshark's tab-separated `fields` of packets matching `filter`.
    fn fields(mut self, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        std::thread::sleep(Duration::from_millis(200));
        self.daemon
            .signal_and_wait(libc::SIGINT, Duration::from_secs(5))
            .expect("tcpdump exits");
        let mut args = vec![
            "-r".to_string(),
            self.file.display().to_string(),
            "-Y".into(),
            filter.into(),
            "-T".into(),
            "fields".into(),
        ];
        for f in fields {
            args.extend(["-e".to_string(), (*f).to_string()]);
        }
        let out = std::process::Command::new("tshark")
            .args(&args)
            .output()
            .expect("tshark");
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.log);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }
}

#[test]
#[ignore = "needs root"]
fn mh_socket_carries_mh_between_namespaces_with_kernel_checksum() {
    require_root();
    let (a, b) = (Netns::new("mha"), Netns::new("mhb"));
    link(&a, "a0", "2001:db8:1::1/64", &b, "b0", "2001:db8:1::2/64");
    a.sh("ip addr add 2001:db8:1::11/64 dev a0 nodad");
    let rt = runtime();
    let rx = b.enter(|| {
        let _g = rt.enter();
        MhSocket::new().expect("MH socket in b")
    });
    let tx = a.enter(|| {
        let _g = rt.enter();
        MhSocket::new().expect("MH socket in a")
    });
    // A Binding Update: payload proto 59, header length 1 (16 bytes), type 5, checksum zero,
    // sequence 0x1234, flags A, lifetime 16, PadN(2).
    let bu = [59u8, 1, 5, 0, 0, 0, 0x12, 0x34, 0x80, 0, 0, 16, 1, 2, 0, 0];
    let src: Ipv6Addr = "2001:db8:1::11".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    let mut buf = [0u8; 2048];
    let got = rt.block_on(async {
        tx.send_to(&bu, dst, PacketInfo::ANY.with_source(src))
            .await
            .expect("send MH");
        tokio::time::timeout(Duration::from_secs(3), rx.recv(&mut buf))
            .await
            .expect("MH arrives")
            .expect("recv")
    });
    let msg = &buf[..got.len];
    // The payload only: the socket returns the MH, not the IPv6 header (version nibble 6).
    assert_eq!(msg.len(), bu.len(), "received {msg:02x?}");
    assert_eq!(
        (msg[..4].to_vec(), msg[6..].to_vec()),
        (bu[..4].to_vec(), bu[6..].to_vec())
    );
    assert_eq!(
        (got.source, got.destination, got.ifindex),
        (src, dst, ifindex(&b, "b0"))
    );
    assert_ne!(
        &msg[4..6],
        &[0, 0],
        "the sending kernel filled the checksum"
    );
    assert!(
        verify_ipv6_upper_layer(&src, &dst, 135, msg),
        "MH checksum is the pseudo-header checksum"
    );
}

#[test]
#[ignore = "needs root"]
fn mh_socket_with_a_large_receive_buffer_keeps_a_burst_and_drains_it() {
    require_root();
    const BURST: usize = 1500;
    let (a, b) = (Netns::new("mba"), Netns::new("mbb"));
    link(&a, "a0", "2001:db8:1::1/64", &b, "b0", "2001:db8:1::2/64");
    let rt = runtime();
    let (small, big) = b.enter(|| {
        let _g = rt.enter();
        (
            MhSocket::new().expect("MH socket in b"),
            MhSocket::new().expect("MH socket in b"),
        )
    });
    let granted = big.set_recv_buffer(8 << 20).expect("receive buffer");
    assert!(granted >= 8 << 20, "granted {granted}");
    let tx = a.enter(|| {
        let _g = rt.enter();
        MhSocket::new().expect("MH socket in a")
    });
    let dst: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    // Sent while nobody reads, as when the daemon is busy programming the kernel.
    rt.block_on(async {
        for i in 0..BURST {
            let seq = u16::try_from(i).unwrap().to_be_bytes();
            let bu = [
                59u8, 1, 5, 0, 0, 0, seq[0], seq[1], 0x80, 0, 0, 16, 1, 2, 0, 0,
            ];
            tx.send_to(&bu, dst, PacketInfo::ANY)
                .await
                .expect("send MH");
        }
    });
    let mut buf = [0u8; 2048];
    let mut count = |socket: &MhSocket| {
        let mut seqs = Vec::new();
        let _g = rt.enter();
        let first = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await
            })
            .expect("first MH")
            .expect("recv");
        seqs.push(u16::from_be_bytes([buf[6], buf[7]]));
        assert_eq!(first.len, 16);
        let taken = socket.drain(&mut buf, usize::MAX, |r| {
            let (rx, bytes) = r.expect("recv");
            assert_eq!((rx.len, bytes.len()), (16, 16));
            seqs.push(u16::from_be_bytes([bytes[6], bytes[7]]));
        });
        assert_eq!(taken + 1, seqs.len());
        seqs
    };
    let got = count(&big);
    assert_eq!(got.len(), BURST, "every BU of the burst kept");
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "in order");
    // The default buffer, for contrast, overflows on the same burst.
    let default_got = count(&small).len();
    println!("default buffer kept {default_got} of {BURST}");
    assert!(default_got < BURST, "default buffer kept all {default_got}");
    // Nothing queued: drain returns at once.
    assert_eq!(big.drain(&mut buf, 10, |_| panic!("nothing queued")), 0);
}

#[test]
#[ignore = "needs root"]
fn icmp_socket_filters_types_reports_hop_limit_and_interface() {
    require_root();
    let (a, b) = (Netns::new("ica"), Netns::new("icb"));
    link(&a, "a0", "", &b, "b0", "");
    link(&a, "a1", "", &b, "b1", "");
    let rt = runtime();
    let rx = b.enter(|| {
        let _g = rt.enter();
        let s = IcmpSocket::new(&[134]).expect("ICMPv6 socket in b");
        // Link-scope joins are accepted, including groups the interface is already in.
        s.join(ALL_NODES, ifindex(&b, "b0")).expect("join ff02::1");
        s.join(ALL_ROUTERS, ifindex(&b, "b1"))
            .expect("join ff02::2");
        s.leave(ALL_ROUTERS, ifindex(&b, "b1"))
            .expect("leave ff02::2");
        s
    });
    let tx = a.enter(|| {
        let _g = rt.enter();
        let s = IcmpSocket::new(&[]).expect("ICMPv6 socket in a");
        s.set_multicast_hops(255).expect("hops");
        s
    });
    let (a0, a1) = (ifindex(&a, "a0"), ifindex(&a, "a1"));
    let echo = [128u8, 0, 0, 0, 0, 1, 0, 1];
    let ra = |tag: u8| [134u8, 0, 0, 0, tag, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut buf = [0u8; 2048];
    let (first, first_bytes, second, second_bytes, extra) = rt.block_on(async {
        tx.send_to(&echo, ALL_NODES, PacketInfo::on(a0))
            .await
            .expect("send echo");
        tx.send_to(&ra(1), ALL_NODES, PacketInfo::on(a0))
            .await
            .expect("send RA on a0");
        tx.send_to(&ra(2), ALL_NODES, PacketInfo::on(a1))
            .await
            .expect("send RA on a1");
        let wait = Duration::from_secs(3);
        let first = tokio::time::timeout(wait, rx.recv(&mut buf))
            .await
            .expect("first")
            .expect("recv");
        let first_bytes = buf[..first.len].to_vec();
        let second = tokio::time::timeout(wait, rx.recv(&mut buf))
            .await
            .expect("second")
            .expect("recv");
        let second_bytes = buf[..second.len].to_vec();
        let extra = tokio::time::timeout(Duration::from_millis(500), rx.recv(&mut buf))
            .await
            .ok();
        (first, first_bytes, second, second_bytes, extra)
    });
    assert_eq!(
        first_bytes[0], 134,
        "the echo request sent first was filtered: {first_bytes:02x?}"
    );
    assert_eq!(first_bytes[4], 1);
    assert_eq!(
        (first.ifindex, first.hop_limit, first.destination),
        (ifindex(&b, "b0"), 255, ALL_NODES)
    );
    assert_eq!(first.source, link_local(&a, "a0"));
    assert_eq!((second_bytes[0], second_bytes[4]), (134, 2));
    assert_eq!((second.ifindex, second.hop_limit), (ifindex(&b, "b1"), 255));
    assert_eq!(second.source, link_local(&a, "a1"));
    assert!(extra.is_none(), "nothing else passes the filter: {extra:?}");
}

#[test]
#[ignore = "needs root"]
fn icmp_socket_router_alert_and_hop_limit_one_for_mld() {
    require_root();
    let (a, b) = (Netns::new("raa"), Netns::new("rab"));
    link(&a, "a0", "", &b, "b0", "");
    let rt = runtime();
    let tx = a.enter(|| {
        let _g = rt.enter();
        let s = IcmpSocket::new(&[]).expect("ICMPv6 socket");
        s.set_multicast_hops(1).expect("hops");
        s.set_router_alert(true).expect("router alert");
        s
    });
    let cap = Capture::start(&b, "b0");
    // An MLDv2 report with zero records: enough for the option check.
    let report = [143u8, 0, 0, 0, 0, 0, 0, 0];
    rt.block_on(tx.send_to(
        &report,
        ALL_MLDV2_ROUTERS,
        PacketInfo::on(ifindex(&a, "a0")),
    ))
    .expect("send");
    tx.set_router_alert(false).expect("router alert off");
    rt.block_on(tx.send_to(
        &report,
        ALL_MLDV2_ROUTERS,
        PacketInfo::on(ifindex(&a, "a0")),
    ))
    .expect("send");
    let rows = cap.fields(
        "icmpv6.type == 143 && ipv6.src == fe80::/10 && icmpv6.mldr.nb_mcast_records == 0",
        &[
            "ipv6.hlim",
            "ipv6.opt.router_alert",
            "icmpv6.checksum.status",
        ],
    );
    assert_eq!(rows.len(), 2, "both reports captured: {rows:?}");
    assert_eq!(
        rows[0],
        vec!["1", "0", "1"],
        "hop limit 1, Router Alert MLD (0), checksum good (status 1)"
    );
    assert_eq!(
        rows[1],
        vec!["1", "", "1"],
        "no hop-by-hop option once turned off"
    );
}

#[test]
#[ignore = "needs root"]
fn pim_socket_hello_reaches_peer_with_valid_checksum() {
    require_root();
    let (a, b) = (Netns::new("pia"), Netns::new("pib"));
    link(&a, "a0", "", &b, "b0", "");
    let rt = runtime();
    let b0 = ifindex(&b, "b0");
    let rx = b.enter(|| {
        let _g = rt.enter();
        let s = PimSocket::new().expect("PIM socket in b");
        s.join_all_pim_routers(b0).expect("join ff02::d");
        s
    });
    let tx = a.enter(|| {
        let _g = rt.enter();
        PimSocket::new().expect("PIM socket in a")
    });
    // Hello: holdtime 105, DR priority 1, generation id.
    let hello = [
        0x20u8, 0, 0, 0, 0, 1, 0, 2, 0, 105, 0, 19, 0, 4, 0, 0, 0, 1, 0, 20, 0, 4, 0xde, 0xad,
        0xbe, 0xef,
    ];
    let mut buf = [0u8; 2048];
    let got = rt.block_on(async {
        tx.send_to(&hello, ALL_PIM_ROUTERS, PacketInfo::on(ifindex(&a, "a0")))
            .await
            .expect("send hello");
        tokio::time::timeout(Duration::from_secs(3), rx.recv(&mut buf))
            .await
            .expect("hello arrives")
            .expect("recv")
    });
    let msg = &buf[..got.len];
    assert_eq!(
        (msg[..2].to_vec(), msg[4..].to_vec()),
        (hello[..2].to_vec(), hello[4..].to_vec())
    );
    assert_eq!(
        (got.destination, got.ifindex, got.hop_limit),
        (ALL_PIM_ROUTERS, b0, 1)
    );
    assert_eq!(got.source, link_local(&a, "a0"));
    assert!(
        verify_ipv6_upper_layer(&got.source, &ALL_PIM_ROUTERS, 103, msg),
        "PIM checksum valid: {msg:02x?}"
    );
}

#[test]
#[ignore = "needs root"]
fn ssm_membership_makes_kernel_send_mldv2_reports() {
    require_root();
    let (a, b) = (Netns::new("ssa"), Netns::new("ssb"));
    link(&a, "a0", "", &b, "b0", "");
    let group: Ipv6Addr = "ff35::200:ff:fe00:100".parse().unwrap();
    let source: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    let a0 = ifindex(&a, "a0");
    let cap = Capture::start(&b, "b0");
    let m = a.enter(|| SsmMembership::new().expect("membership socket"));
    m.join(a0, group, source).expect("join (S,G)");
    std::thread::sleep(Duration::from_millis(1500));
    m.leave(a0, group, source).expect("leave (S,G)");
    std::thread::sleep(Duration::from_millis(1500));
    let rows = cap.fields(
        &format!("icmpv6.type == 143 && icmpv6.mldr.mar.multicast_address == {group}"),
        &[
            "ipv6.dst",
            "icmpv6.mldr.mar.record_type",
            "icmpv6.mldr.mar.multicast_address",
            "icmpv6.mldr.mar.source_address",
            "ipv6.opt.router_alert",
        ],
    );
    // One report may carry several records; the only one with sources is G's.
    let record_type = |r: &Vec<String>| {
        let groups = r[2].split(',');
        groups
            .zip(r[1].split(','))
            .find(|(g, _)| g.parse::<Ipv6Addr>().ok() == Some(group))
            .map(|(_, t)| t.to_string())
    };
    let types: Vec<String> = rows.iter().filter_map(record_type).collect();
    // ALLOW_NEW_SOURCES (5) on the join, BLOCK_OLD_SOURCES (6) on the leave.
    assert!(
        types.contains(&"5".to_string()) && types.contains(&"6".to_string()),
        "records for G: {rows:?}"
    );
    for r in &rows {
        assert_eq!(
            (r[0].as_str(), r[3].as_str(), r[4].as_str()),
            ("ff02::16", "2001:db8:2::1", "0"),
            "{rows:?}"
        );
    }
}
