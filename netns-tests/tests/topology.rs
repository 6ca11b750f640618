#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_netns_tests::*;
use std::time::Duration;

#[test]
#[ignore = "needs root"]
fn veth_pair_carries_udp_and_namespaces_are_removed() {
    require_root();
    let name;
    {
        let a = Netns::new("t");
        let b = Netns::new("t");
        name = a.name().to_string();
        veth(&a, "va", "2001:db8:1::1/64", &b, "vb", "2001:db8:1::2/64");
        let probe = UdpProbe::bind(&b, "2001:db8:1::2", 9000);
        udp_send(&a, "2001:db8:1::1", "2001:db8:1::2", 9000, "hello");
        let (msg, from) = probe.recv(Duration::from_secs(2)).expect("datagram");
        assert_eq!(msg, "hello");
        assert_eq!(from.ip().to_string(), "2001:db8:1::1");
    }
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
}
