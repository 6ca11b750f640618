//! Restart after kill -9, graceful shutdown, and many register/deregister cycles.
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

const PORT: u16 = 7001;

/// Whether the state journal (binary records) holds the home address.
fn holds_hoa(state: &std::path::Path) -> bool {
    let hoa = a(HOA).octets();
    std::fs::read(state).is_ok_and(|b| b.windows(16).any(|w| w == hoa))
}

#[test]
#[ignore = "needs root"]
fn kill_9_and_restart_restores_the_binding_then_sigterm_removes_everything() {
    require_root();
    let lab = Lab::new("restart");
    let rules_before = lab.ha.sh("ip -6 rule show");
    let mut ha = lab.start(&[]);
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status: 0, .. })),
        "{reply:?}"
    );
    // The binding was journaled (and synced) before its BAck left: kill -9 at once.
    let state = lab.dir.path("state.json");
    assert!(holds_hoa(&state), "journal lacks the binding");
    ha.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("killed");

    // A stale object of ours the new process must remove.
    lab.ha.sh("ip -6 route add 2001:db8:1::7777/128 encap seg6 mode encap.red segs 2001:db8:2::77 dev wan1 proto 158");
    let mut ha = lab.start(&[]);
    let k = lab.kernel_state();
    assert!(
        !k.routes.iter().any(|r| r.contains("7777")),
        "stale route removed: {k:?}"
    );
    // User-space proxy (the default): the home address is answered without a proxy entry,
    // as the datagram from the home link below shows.
    assert!(k.proxies.is_empty(), "{k:?}");
    assert!(k.routes.iter().any(|r| r.starts_with(HOA)), "{k:?}");
    let status = lab.fetch("/status").expect("status");
    assert!(status.contains(HOA) && status.contains(COA), "{status}");

    let at_mn = UdpProbe::bind(&lab.mn, HOA, PORT);
    udp_send(&lab.cn, CN, HOA, PORT, "after-restart");
    assert_eq!(
        at_mn.recv(Duration::from_secs(3)).map(|r| r.0).as_deref(),
        Some("after-restart")
    );
    // The restored binding keeps its sequence number: an old one is refused with 135.
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(
        matches!(
            reply,
            Some(Reply::Ack {
                status: 135,
                sequence: 1,
                ..
            })
        ),
        "{reply:?}"
    );

    let st = ha
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited");
    assert!(st.success(), "{st}");
    let k = lab.kernel_state();
    assert!(k.is_empty(), "{k:?}");
    assert_eq!(
        lab.ha.sh("ip -6 rule show"),
        rules_before,
        "local rule back at pref 0"
    );
    assert_eq!(
        lab.ha
            .sh("cat /proc/sys/net/ipv6/conf/home0/proxy_ndp")
            .trim(),
        "0"
    );
    assert_eq!(lab.ha.sh("ip sr tunsrc show").trim(), "tunsrc addr ::");
    // The binding survives a clean stop in the state file too.
    assert!(holds_hoa(&state));
}

#[test]
#[ignore = "needs root"]
fn thousand_register_deregister_cycles_leave_nothing() {
    require_root();
    let lab = Lab::new("cycles");
    let mut ha = lab.start(&["--log-level", "warn"]);
    let started = std::time::Instant::now();
    let bad = with_mn(&lab.mn, async |mn| {
        let mut bad = Vec::new();
        for i in 0..1000u16 {
            let reg = mn.exchange(&mn.bu(2 * i + 1, 10, Some(KEY))).await;
            let dereg = mn.exchange(&mn.bu(2 * i + 2, 0, Some(KEY))).await;
            for r in [reg, dereg] {
                if !matches!(r, Some(Reply::Ack { status: 0, .. })) {
                    bad.push((i, r));
                }
            }
        }
        bad
    });
    assert!(
        bad.is_empty(),
        "{} cycles went wrong, first: {:?}",
        bad.len(),
        bad.first()
    );
    eprintln!("1000 cycles in {:?}", started.elapsed());
    let k = lab.kernel_state_after_windows();
    assert!(k.is_idle(), "{k:?}");
    assert_eq!(
        lab.metric("home_agent_binding_updates_received_total{outcome=\"deregistered\"}"),
        1000.0
    );
    assert_eq!(lab.metric("home_agent_kernel_errors_total"), 0.0);
    let st = ha
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited");
    assert!(st.success());
    assert!(lab.kernel_state().is_empty());
}

#[test]
#[ignore = "needs root"]
fn sighup_reloads_security_associations_and_keeps_bindings() {
    require_root();
    let lab = Lab::new("hup");
    let mut ha = lab.start(&[]);
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(matches!(reply, Some(Reply::Ack { status: 0, .. })));
    // New key for SPI 1000 in a new key file.
    let key2 = lab.dir.path("mn2.key");
    std::fs::write(&key2, b"a-completely-new-key-for-spi-1000").unwrap();
    std::fs::set_permissions(&key2, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let old_key = lab.dir.path("mn.key");
    std::fs::write(
        &lab.config,
        text.replace(path_str(&old_key), path_str(&key2)),
    )
    .unwrap();
    // SAFETY-free: kill(1) through the shell tool.
    std::process::Command::new("kill")
        .args(["-HUP", &ha.0.id().to_string()])
        .status()
        .unwrap();
    // Until the daemon has applied the reload, the old key still registers; each such BU uses
    // up its sequence number, so every attempt takes the next one.
    let (replies, seq) = with_mn(&lab.mn, async |mn| {
        let mut seq = 2;
        let mut out = Vec::new();
        for _ in 0..30 {
            let r = mn.exchange(&mn.bu(seq, 100, Some(KEY))).await;
            if matches!(r, Some(Reply::Ack { status: 146, .. })) {
                out.push(r);
                break;
            }
            if matches!(r, Some(Reply::Ack { status: 0, .. })) {
                seq += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out.push(
            mn.exchange(&mn.bu(seq, 100, Some(b"a-completely-new-key-for-spi-1000")))
                .await,
        );
        (out, seq)
    });
    assert!(
        matches!(replies[0], Some(Reply::Ack { status: 146, .. })),
        "{replies:?}"
    );
    assert!(
        matches!(replies[1], Some(Reply::Ack { status: 0, sequence, .. }) if sequence == seq),
        "{replies:?}"
    );
    assert!(lab.fetch("/status").unwrap().contains(HOA));
    assert!(lab.kernel_state().routes.iter().any(|r| r.starts_with(HOA)));
    ha.signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited");
}

/// A reload whose SA no longer authorises a registered home address withdraws that binding
/// at once (route and rule gone, status without it), counts it and says so
/// in one log line; the home address's next BU is refused.
#[test]
#[ignore = "needs root"]
fn sighup_that_narrows_the_sa_prefix_withdraws_the_binding() {
    require_root();
    let lab = Lab::new("hupn");
    let mut ha = lab.start(&[]);
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(matches!(reply, Some(Reply::Ack { status: 0, .. })));
    assert!(!lab.kernel_state().is_idle());

    let text = std::fs::read_to_string(&lab.config).unwrap();
    let narrowed = text.replace(
        "\n    home_prefixes: [2001:db8:1::/64]",
        "\n    home_prefixes: [2001:db8:1::7/128]",
    );
    assert_ne!(narrowed, text, "the SA's prefix is in the config");
    std::fs::write(&lab.config, narrowed).unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &ha.0.id().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || lab.kernel_state().is_idle()),
        "{:?}",
        lab.kernel_state()
    );
    assert!(!lab.fetch("/status").unwrap().contains(HOA));
    assert_eq!(
        lab.metric(
            "home_agent_bindings_invalidated_total{when=\"reload\",reason=\"spi_not_authorised\"}"
        ),
        1.0
    );
    let log: String = std::fs::read_dir(lab.dir.path(""))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_owned();
            (name.starts_with("ha-") && name.ends_with(".log"))
                .then(|| std::fs::read_to_string(&p).unwrap_or_default())
        })
        .collect();
    assert!(log.contains("no longer validate"), "{log}");
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(2, 100, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status, .. }) if status != 0),
        "{reply:?}"
    );
    ha.signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .expect("exited");
}
