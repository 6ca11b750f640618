//! The previous care-of address's window (issue 11 §3), on the real daemon and kernel: after
//! a move, reverse-tunnelled packets from the old CoA still reach the correspondent for
//! `kernel.previous_coa_accept_ms`, then are refused; a tunnel from a CoA the home agent does
//! not know yet is refused and counted by the kernel (`Ip6InUnknownProtos`); the window's rule
//! is owned state: reconciled away on restart, removed at shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::time::Duration;

use common::*;
use mipcast_netns_tests::{require_root, udp_send, Netns, UdpProbe};

const PORT: u16 = 7002;
const WINDOW_MS: u64 = 2000;

/// One BU from `coa` (the MN's other address when not COA), its BAck status.
fn register(lab: &Lab, coa: &str, seq: u16) -> Option<u8> {
    let reply = with_mn(&lab.mn, async |_| {
        let mn = Mn {
            coa: a(coa),
            ..Mn::new()
        };
        mn.exchange(&mn.bu(seq, 100, Some(KEY))).await
    });
    match reply {
        Some(Reply::Ack { status, .. }) => Some(status),
        _ => None,
    }
}

fn accepts(lab: &Lab, coa: &str) -> bool {
    lab.kernel_state()
        .rules
        .iter()
        .any(|r| r.contains(&format!("from {coa} ")) && r.contains("ipproto"))
}

/// The terminal's reverse tunnel leaves from `coa` (the namespace's seg6 tunnel source).
fn tunnel_from(mn: &Netns, coa: &str) {
    mn.sh(&format!("ip sr tunsrc set {coa}"));
}

fn unknown_protos(ha: &Netns) -> u64 {
    ha.sh("cat /proc/net/snmp6")
        .lines()
        .find_map(|l| l.strip_prefix("Ip6InUnknownProtos"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An upstream datagram from the home address: whether the correspondent got it.
fn upstream(lab: &Lab, at_cn: &UdpProbe, payload: &str) -> bool {
    udp_send(&lab.mn, HOA, CN, PORT, payload);
    at_cn
        .recv(Duration::from_millis(700))
        .is_some_and(|(got, _)| got == payload)
}

#[test]
#[ignore = "needs root"]
fn the_previous_coa_is_accepted_for_its_window_then_refused_and_never_outlives_the_daemon() {
    require_root();
    let lab = Lab::new("prevcoa");
    write_config(
        &lab.dir,
        &format!("kernel:\n  previous_coa_accept_ms: {WINDOW_MS}\n"),
    );
    let mut ha = lab.start(&[]);
    let at_cn = UdpProbe::bind(&lab.cn, CN, PORT);
    assert_eq!(register(&lab, COA, 1), Some(0));
    assert!(
        upstream(&lab, &at_cn, "bound"),
        "reverse tunnel from the CoA"
    );

    // The other order: a tunnel from a CoA the home agent has not bound yet is refused,
    // and only the kernel counts it.
    tunnel_from(&lab.mn, ROGUE);
    let unknown = unknown_protos(&lab.ha);
    assert!(
        !upstream(&lab, &at_cn, "too-early"),
        "refused before the BU"
    );
    assert!(
        unknown_protos(&lab.ha) > unknown,
        "counted as Ip6InUnknownProtos"
    );

    // The move; the terminal's packets still leave from the old CoA (in flight).
    assert_eq!(register(&lab, ROGUE, 2), Some(0));
    assert!(
        accepts(&lab, ROGUE) && accepts(&lab, COA),
        "{:?}",
        lab.kernel_state()
    );
    tunnel_from(&lab.mn, COA);
    assert!(
        upstream(&lab, &at_cn, "old-coa-in-window"),
        "the previous CoA is accepted for the window"
    );
    tunnel_from(&lab.mn, ROGUE);
    assert!(upstream(&lab, &at_cn, "new-coa"));

    // The window ends: the old CoA's rule goes, its tunnel is refused.
    assert!(
        wait_for(Duration::from_millis(WINDOW_MS + 2000), || !accepts(
            &lab, COA
        )),
        "{:?}",
        lab.kernel_state()
    );
    assert!(accepts(&lab, ROGUE));
    tunnel_from(&lab.mn, COA);
    assert!(!upstream(&lab, &at_cn, "old-coa-after-window"));

    // Back to COA: ROGUE in its window; kill -9 and restart: reconciliation removes the
    // window's rule (not restored), keeps the binding's.
    assert_eq!(register(&lab, COA, 3), Some(0));
    assert!(accepts(&lab, ROGUE), "{:?}", lab.kernel_state());
    ha.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("killed");
    let mut ha = lab.start(&[]);
    assert!(
        wait_for(Duration::from_secs(5), || !accepts(&lab, ROGUE)),
        "{:?}",
        lab.kernel_state()
    );
    assert!(accepts(&lab, COA));
    assert!(upstream(&lab, &at_cn, "after-restart"));

    // A move, then SIGTERM inside the window: nothing of ours is left.
    assert_eq!(register(&lab, ROGUE, 4), Some(0));
    assert!(accepts(&lab, COA) && accepts(&lab, ROGUE));
    let st = ha
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited");
    assert!(st.success(), "{st}");
    let k = lab.kernel_state();
    assert!(k.is_empty(), "{k:?}");
}
