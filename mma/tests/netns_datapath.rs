//! The MMA in the reference topology: a real authenticated registration, then downlink
//! (HA tunnel → MMA → (MMA, G) → terminal) with TCP, uplink (terminal → MMA → HA), spoofed
//! uplink dropped, refusals installing nothing, forwarding after deregistration, restart and
//! clean shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;
mod netns_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use mipcast_netns_tests::require_root;
use mipcast_wire::mh::{Experimental, MobilityOption};
use netns_common::*;

#[test]
#[ignore = "needs root"]
fn netns_registration_downlink_tcp_and_uplink() {
    require_root();
    let t = Topo::new("md");
    let config = t.write_config("");
    let _mma = t.start_mma(&config, 1);

    let ack = t.register(1);
    assert!(ack.authentic, "BAck must be signed with the terminal's SA");
    assert!(
        ack.options
            .contains(&MobilityOption::Experimental(Experimental::AssignedCoa(
                MMA
            ))),
        "{ack:?}"
    );
    assert!(t.has_mfc_entry(), "MFC: {}", t.mfc());

    // Downlink: observed on the site link with outer (MMA, G), and TCP works end to end.
    let site = Capture::start(&t.r, "e0", &t.dir, "site");
    let wan = Capture::start(&t.mma, "e0", &t.dir, "wan");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        tcp_echo(&t, &payload),
        payload,
        "TCP echo through the tunnels"
    );
    let site_packets = site.stop();
    let wan_packets = wan.stop();
    // The MFC counter poll (every second here, on a blocking thread) reads the downlink's
    // (MMA, G) entry into the sums.
    let addr: std::net::SocketAddr = "[::1]:9642".parse().unwrap();
    let forwarded = mipcast_netns_tests::wait::wait_for(
        "mma_mfc_forwarded_packets_total > 0",
        Duration::from_secs(5),
        || {
            let text = t
                .mma
                .enter(|| mipcast_daemon::metrics::fetch(addr, "/metrics"))
                .ok()?;
            let value: f64 = text.lines().find_map(|l| {
                l.strip_prefix("mma_mfc_forwarded_packets_total ")
                    .and_then(|v| v.trim().parse().ok())
            })?;
            (value > 0.0).then_some(value)
        },
    )
    .unwrap();
    assert!(forwarded > 0.0);
    let (mma, ha, hoa, group, cn) = (
        MMA.to_string(),
        HA.to_string(),
        HOA.to_string(),
        GROUP.to_string(),
        CN.to_string(),
    );
    assert!(
        site_packets
            .iter()
            .any(|(os, od, is, id)| *os == mma && *od == group && *is == cn && *id == hoa),
        "no (MMA -> G) tunnel packet on the site link: {site_packets:?}"
    );
    // The rest are the terminal's reverse tunnel (on-link address -> MMA).
    assert!(
        site_packets
            .iter()
            .all(|(os, od, _, _)| (*os == mma && *od == group)
                || (*os == ON_LINK.to_string() && *od == mma)),
        "unexpected tunnel packets on the site link: {site_packets:?}"
    );
    // Uplink: the terminal's replies leave towards its home agent with the MMA as outer source.
    assert!(
        wan_packets
            .iter()
            .any(|(os, od, is, id)| *os == mma && *od == ha && *is == hoa && *id == cn),
        "no (MMA -> HA) reverse tunnel packet on the WAN link: {wan_packets:?}"
    );

    // A terminal that did not register cannot use the uplink: the MMA has no route for it.
    let stranger: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    t.mn.sh(&format!(
        "ip addr add {stranger}/128 dev lo && ip -6 rule add pref 21 from {stranger} lookup 200"
    ));
    assert!(
        udp_arrives(&t.mn, HOA, &t.cn, CN, 7100, Duration::from_secs(3)),
        "registered uplink"
    );
    assert!(
        !udp_arrives(&t.mn, stranger, &t.cn, CN, 7101, Duration::from_secs(2)),
        "unregistered uplink must be dropped"
    );

    let status = t.mma.sh(&format!(
        "{} status -c {}",
        env!("CARGO_BIN_EXE_mma"),
        config.display()
    ));
    assert!(
        status.contains(&hoa) && status.contains(&group) && status.contains("registered"),
        "{status}"
    );
    let metrics = t
        .mma
        .sh("curl -s http://[::1]:9642/metrics 2>/dev/null || true");
    if !metrics.is_empty() {
        assert!(metrics.contains("mma_terminals 1"), "{metrics}");
    }
}

#[test]
#[ignore = "needs root"]
fn netns_refusals_install_nothing() {
    require_root();
    let t = Topo::new("mr");
    let config = t.write_config("");
    let _mma = t.start_mma(&config, 1);
    let constant = t.our_kernel_state();

    let outside: Ipv6Addr = "ff35:0:0:1::100".parse().unwrap();
    let ack = t.send_bu(&terminal_bu(1, HOA, outside, ntp_now()));
    assert_eq!(
        (ack.status, ack.authentic),
        (129, true),
        "group outside the prefix"
    );
    assert_eq!(t.our_kernel_state(), constant);
    assert!(!t.mfc().contains("ff35"), "{}", t.mfc());

    t.register(2);
    let with_one = t.our_kernel_state();
    let other: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    let ack = t.send_bu(&terminal_bu(1, other, GROUP, ntp_now()));
    assert_eq!(ack.status, 130, "group in use");
    assert_eq!(t.our_kernel_state(), with_one);
    assert!(!with_one.contains(&other.to_string()));
}

#[test]
#[ignore = "needs root"]
fn netns_forwarding_after_deregistration_then_stops() {
    require_root();
    let t = Topo::new("mf");
    let config = t.write_config("");
    let _mma = t.start_mma(&config, 1);
    // Issue 11, "Bad input": each refused forwarding request gets its documented status,
    // installs nothing and is counted by reason.
    let constant = t.our_kernel_state();
    let ack = t.send_bu(&terminal_bu(1, HOA, GROUP, ntp_now()).dereg(Some((NEW_COA, 3))));
    assert_eq!(
        (ack.status, ack.authentic),
        (133, true),
        "terminal not registered"
    );
    assert_eq!(t.our_kernel_state(), constant);
    assert!(!t.has_mfc_entry());

    t.register(2);
    let registered = t.our_kernel_state();
    let ack = t.send_bu(&terminal_bu(3, HOA, GROUP, ntp_now()).dereg(Some((NEW_COA, 30))));
    assert_eq!(
        (ack.status, ack.authentic),
        (130, true),
        "grace 30 s beyond max_grace 3 s"
    );
    // An address outside the site (routed to the terminal's namespace), signed with the
    // terminal's key: neither where the registered terminal can be nor the new care-of
    // address.
    let stranger = "2001:db8:6::3";
    t.mn.sh(&format!("ip addr add {stranger}/128 dev e0 nodad"));
    t.r.sh(&format!("ip -6 route add {stranger}/128 via 2001:db8:4::2"));
    t.mma
        .sh(&format!("ip -6 route add {stranger}/128 via 2001:db8:3::2"));
    let ack = t.send_bu(&Bu {
        coa: stranger.parse().unwrap(),
        ..terminal_bu(4, HOA, GROUP, ntp_now()).dereg(Some((NEW_COA, 3)))
    });
    assert_eq!(
        (ack.status, ack.authentic),
        (129, true),
        "source not the terminal"
    );
    assert_eq!(
        t.our_kernel_state(),
        registered,
        "refusals changed the kernel"
    );
    assert!(
        t.has_mfc_entry(),
        "the terminal is still served: {}",
        t.mfc()
    );
    let metrics = t
        .mma
        .enter(|| mipcast_daemon::metrics::fetch("[::1]:9642".parse().unwrap(), "/metrics"))
        .unwrap();
    for reason in ["not_registered", "grace_over_max", "source_not_terminal"] {
        let line = format!("mma_forwarding_requests_refused_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
    }

    // Within the maximum: granted and echoed.
    let ack = t.send_bu(&terminal_bu(5, HOA, GROUP, ntp_now()).dereg(Some((NEW_COA, 3))));
    assert_eq!(ack.status, 0);
    assert!(ack.options.contains(&MobilityOption::Experimental(
        Experimental::ForwardingRequest {
            new_coa: NEW_COA,
            grace_secs: 3
        }
    )));
    assert!(
        !t.mfc().contains("ff35"),
        "MFC entry must go when forwarding starts: {}",
        t.mfc()
    );

    let wan = Capture::start(&t.mma, "e0", &t.dir, "fwd");
    for _ in 0..3 {
        mipcast_netns_tests::udp_send(&t.cn, &CN.to_string(), &HOA.to_string(), 7200, "during");
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = wan.stop();
    let (mma, new_coa, hoa) = (MMA.to_string(), NEW_COA.to_string(), HOA.to_string());
    assert!(
        during
            .iter()
            .any(|(os, od, _, id)| *os == mma && *od == new_coa && *id == hoa),
        "no tunnel packet to the new CoA: {during:?}"
    );

    wait_for(Duration::from_secs(8), "the forwarding route to go", || {
        !t.our_kernel_state().contains(&new_coa)
    });
    let wan = Capture::start(&t.mma, "e0", &t.dir, "after");
    mipcast_netns_tests::udp_send(&t.cn, &CN.to_string(), &HOA.to_string(), 7201, "after");
    let after = wan.stop();
    assert!(
        after.iter().all(|(_, od, _, _)| *od != new_coa),
        "still forwarding: {after:?}"
    );
    assert!(!t.our_kernel_state().contains(&hoa));
}

#[test]
#[ignore = "needs root"]
fn netns_restart_keeps_terminals_and_sigterm_cleans_up() {
    require_root();
    let t = Topo::new("mk");
    let rules_before = t.mma.sh("ip -6 rule show");
    let tunsrc_before = t.mma.sh("ip sr tunsrc show");
    let config = t.write_config("");
    let mut first = t.start_mma(&config, 1);
    t.register(1);
    assert!(
        udp_arrives(&t.cn, CN, &t.mn, HOA, 7300, Duration::from_secs(3)),
        "downlink before restart"
    );
    // The registration was journaled (synced) before its BAck left: no wait needed.
    let journal = std::fs::read(t.dir.join("state.json")).unwrap_or_default();
    assert!(
        journal.windows(16).any(|w| w == HOA.octets()),
        "journal lacks the terminal"
    );

    first
        .signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("killed");
    // The MFC entry died with the MRT6 socket: downlink is broken until the restart.
    assert!(!t.mfc().contains("ff35"), "{}", t.mfc());
    let mut second = t.start_mma(&config, 2);
    assert!(t.has_mfc_entry(), "MFC restored: {}", t.mfc());
    assert!(
        udp_arrives(&t.cn, CN, &t.mn, HOA, 7301, Duration::from_secs(3)),
        "downlink after restart"
    );
    assert!(
        udp_arrives(&t.mn, HOA, &t.cn, CN, 7302, Duration::from_secs(3)),
        "uplink after restart"
    );

    let st = second
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");
    assert_eq!(t.our_kernel_state().trim(), "", "routes/rules left behind");
    assert!(!t.mfc().contains("ff35"), "{}", t.mfc());
    assert_eq!(
        t.mma.sh("ip -6 rule show"),
        rules_before,
        "rules not restored"
    );
    // After the crash the second run found its own address as the tunnel source: the state
    // file told it the original, which it put back.
    assert_eq!(
        t.mma.sh("ip sr tunsrc show"),
        tunsrc_before,
        "tunsrc restored"
    );
    let log = std::fs::read_to_string(t.log(2)).unwrap();
    assert!(log.contains("kernel state removed"), "{log}");
}

#[test]
#[ignore = "needs root"]
fn netns_own_mrt6_table_with_mrule() {
    require_root();
    let t = Topo::new("mt");
    let config = t.write_config("kernel:\n  mrt6_table: 1000\n  mrule_pref: 100\n");
    let mut mma = t.start_mma(&config, 1);
    let mrules = t.mma.sh("ip -6 mrule show");
    assert!(mrules.contains("iif e0 lookup 1000"), "{mrules}");
    t.register(1);
    assert!(
        udp_arrives(&t.cn, CN, &t.mn, HOA, 7400, Duration::from_secs(3)),
        "downlink through MRT6 table 1000"
    );
    // The default table (what /proc shows) stays empty: the entry is in table 1000.
    assert!(!t.has_mfc_entry(), "{}", t.mfc());
    mma.signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exits");
    assert!(
        !t.mma.sh("ip -6 mrule show").contains("1000"),
        "mrule left behind"
    );
}
