//! Registration, the data plane it builds, authentication failures and deregistration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::time::Duration;

use common::*;
use mipcast_netns_tests::{require_root, udp_send, UdpProbe};

const PORT: u16 = 7000;

#[test]
#[ignore = "needs root"]
fn registration_tunnels_both_ways_and_deregistration_removes_everything() {
    require_root();
    // The kernel's proxy entries here; the default user-space proxy is netns_neighbour's.
    let lab = Lab::with_kernel_proxy("dp");
    let _ha = lab.start(&[]);
    assert!(lab.kernel_state().is_idle(), "{:?}", lab.kernel_state());
    assert_eq!(
        lab.ha
            .sh("cat /proc/sys/net/ipv6/conf/home0/proxy_ndp")
            .trim(),
        "1"
    );
    assert_eq!(
        lab.ha.sh("ip sr tunsrc show").trim(),
        format!("tunsrc addr {HA}")
    );

    // Register (lifetime 100 units = 400 s).
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert_eq!(
        reply,
        Some(Reply::Ack {
            status: 0,
            sequence: 1,
            lifetime: 100
        })
    );
    let k = lab.kernel_state();
    assert!(
        k.routes.iter().any(|r| r.starts_with(HOA)
            && r.contains(&format!("encap seg6 mode encap.red segs 1 [ {COA} ]"))
            && r.contains("dev wan1")),
        "{k:?}"
    );
    assert!(
        k.rules.iter().any(
            |r| r.contains(&format!("from {COA} to {HA} ipproto ipv6 lookup 3600"))
                || r.contains(&format!("from {COA} to {HA} ipproto 41 lookup 3600"))
        ),
        "{k:?}"
    );
    assert!(
        k.proxies
            .iter()
            .any(|p| p.starts_with(HOA) && p.contains("home0")),
        "{k:?}"
    );

    // CN -> HoA: proxy ND at the HA, tunnel to the CoA, decapsulated there.
    let at_mn = UdpProbe::bind(&lab.mn, HOA, PORT);
    udp_send(&lab.cn, CN, HOA, PORT, "to-the-mobile");
    let (text, from) = at_mn
        .recv(Duration::from_secs(3))
        .expect("datagram reached the CoA");
    assert_eq!(text, "to-the-mobile");
    assert_eq!(from.ip().to_string(), CN);

    // Reverse tunnel: a tunnel from an unregistered source is dropped, from the CoA it passes.
    let at_cn = UdpProbe::bind(&lab.cn, CN, PORT);
    lab.mn.sh(&format!("ip sr tunsrc set {ROGUE}"));
    udp_send(&lab.mn, HOA, CN, PORT, "spoofed");
    lab.mn.sh(&format!("ip sr tunsrc set {COA}"));
    udp_send(&lab.mn, HOA, CN, PORT, "from-the-mobile");
    let (text, from) = at_cn.recv(Duration::from_secs(3)).expect("reverse tunnel");
    assert_eq!(
        text, "from-the-mobile",
        "the spoofed tunnel must not be decapsulated"
    );
    assert_eq!(from.ip().to_string(), HOA);
    assert!(at_cn.recv(Duration::from_millis(300)).is_none());

    // status shows the binding.
    let out = lab.ha.cmd(
        env!("CARGO_BIN_EXE_home-agent"),
        &["-c", path_str(&lab.config), "status", "--json"],
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["bindings"][0]["hoa"], HOA);
    assert_eq!(v["bindings"][0]["coa"], COA);
    assert_eq!(v["bindings"][0]["sequence"], 1);
    assert!(v["bindings"][0]["lifetime_left_s"].as_u64().unwrap() > 390);
    let table = lab.ha.cmd(
        env!("CARGO_BIN_EXE_home-agent"),
        &["-c", path_str(&lab.config), "status"],
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains(HOA));

    // Deregistration: BAck 0, then nothing of the binding is left and traffic stops.
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(2, 0, Some(KEY))).await
    });
    assert_eq!(
        reply,
        Some(Reply::Ack {
            status: 0,
            sequence: 2,
            lifetime: 0
        })
    );
    // The binding's route and proxy entry go at once; its care-of address's decapsulation
    // rule stays for the previous-CoA window (1 s), then goes too.
    let k = lab.kernel_state();
    assert!(k.is_idle_but_windows(), "{k:?}");
    assert!(k.rules.iter().any(|r| r.contains(COA)), "{k:?}");
    let k = lab.kernel_state_after_windows();
    assert!(k.is_idle(), "{k:?}");
    udp_send(&lab.cn, CN, HOA, PORT, "after-dereg");
    assert!(at_mn.recv(Duration::from_millis(500)).is_none());
    assert_eq!(lab.metric("home_agent_bindings "), 0.0);
    assert_eq!(
        lab.metric("home_agent_binding_updates_received_total{outcome=\"accepted\"}"),
        1.0
    );
    assert_eq!(
        lab.metric("home_agent_binding_acks_sent_total{status=\"0\"}"),
        2.0
    );
}

#[test]
#[ignore = "needs root"]
fn unauthenticated_wrong_key_and_replayed_bus_install_nothing() {
    require_root();
    let lab = Lab::new("auth");
    let _ha = lab.start(&[]);
    let (unsigned, wrong, valid, replay, garbage, unknown_type) = with_mn(&lab.mn, async |mn| {
        let unsigned = mn.exchange(&mn.bu(1, 10, None)).await;
        let wrong = mn.exchange(&mn.bu(1, 10, Some(b"not-the-right-key"))).await;
        let bu = mn.bu(1, 10, Some(KEY));
        let valid = mn.exchange(&bu).await;
        // The very same bytes again: its timestamp is not newer (RFC 4285 §6).
        let replay = mn.exchange(&bu).await;
        // Truncated: no reply at all; unknown MH type 42: Binding Error status 2.
        mn.send(&bu[..bu.len() - 8]).await;
        let garbage = mn.reply(Duration::from_millis(300)).await;
        let unknown_type = mn.exchange(&[59, 0, 42, 0, 0, 0, 0, 0]).await;
        (unsigned, wrong, valid, replay, garbage, unknown_type)
    });
    let ack = |status, sequence| {
        Some(Reply::Ack {
            status,
            sequence,
            lifetime: 0,
        })
    };
    assert_eq!(unsigned, ack(146, 1));
    assert_eq!(wrong, ack(146, 1));
    assert_eq!(
        valid,
        Some(Reply::Ack {
            status: 0,
            sequence: 1,
            lifetime: 10
        })
    );
    assert_eq!(replay, ack(144, 1));
    assert_eq!(garbage, None);
    assert_eq!(unknown_type, Some(Reply::Error { status: 2 }));
    assert_eq!(
        lab.metric("home_agent_authentication_failures_total{reason=\"auth_missing\"}"),
        1.0
    );
    assert_eq!(
        lab.metric("home_agent_authentication_failures_total{reason=\"auth_mismatch\"}"),
        1.0
    );
    assert_eq!(
        lab.metric("home_agent_authentication_failures_total{reason=\"replay_timestamp\"}"),
        1.0
    );
    // Only the valid BU is in the kernel (one route, one rule; the home agent answers
    // solicitations itself, so no proxy entry).
    let k = lab.kernel_state();
    assert!(k.proxies.is_empty(), "{k:?}");
    assert_eq!(k.routes.len(), 2, "{k:?}");
    assert_eq!(
        k.rules.iter().filter(|r| r.contains("3600")).count(),
        1,
        "{k:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn rejected_bus_leave_the_kernel_untouched() {
    require_root();
    let lab = Lab::new("rej");
    let _ha = lab.start(&[]);
    let replies = with_mn(&lab.mn, async |mn| {
        let mut out = Vec::new();
        out.push(mn.exchange(&mn.bu(1, 10, None)).await);
        out.push(mn.exchange(&mn.bu(1, 10, Some(b"wrong-key"))).await);
        out
    });
    assert!(
        replies
            .iter()
            .all(|r| matches!(r, Some(Reply::Ack { status: 146, .. }))),
        "{replies:?}"
    );
    assert!(lab.kernel_state().is_idle(), "{:?}", lab.kernel_state());
    assert_eq!(lab.metric("home_agent_bindings "), 0.0);
}
