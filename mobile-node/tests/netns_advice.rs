//! Handoff advice (issue 14) against the real mobile node: signed advice from the site's MMA
//! moves the terminal off its link to the alternative within one second; a terminal with no
//! alternative stays and reports it; forged (wrong key) and replayed advice is ignored and
//! counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use mipcast_kernel::sockets::{MhSocket, PacketInfo};
use mipcast_netns_tests::{require_root, veth, Daemon, Netns};
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{advice_reason, Experimental, Message, MhRepr, MobilityOption};

const HOA: &str = "2001:db8:99::100";
const MMA: &str = "2001:db8:1::1";
const HA: &str = "2001:db8:1::2";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

struct Setup {
    cfg: std::path::PathBuf,
    mma: Netns,
    mn: Netns,
    _others: Vec<Netns>,
    _bg: Vec<Bg>,
    _daemon: Daemon,
    port: u16,
}

/// cn (home agent responder) — mma (MMA responder) — r (router, access links a1, a2) — mn.
/// The MN has e1 (preference 60) and, when `two`, e2 (50), both in the MMA's site.
fn setup(tag: &str, two: bool, port: u16) -> Setup {
    let cn = Netns::new("cn");
    let mma = Netns::new("mma");
    let r = Netns::new("r");
    let mn = Netns::new("mn");
    veth(
        &cn,
        "e0",
        "2001:db8:1::2/64",
        &mma,
        "e0",
        "2001:db8:1::1/64",
    );
    veth(&mma, "e1", "2001:db8:3::1/64", &r, "e0", "2001:db8:3::2/64");
    veth(&r, "a1", "2001:db8:4::1/64", &mn, "e1", "");
    let mut adverts = vec![(ifindex(&r, "a1"), ra_bytes(a("2001:db8:4::"), Some(a(MMA))))];
    if two {
        veth(&r, "a2", "2001:db8:5::1/64", &mn, "e2", "");
        adverts.push((ifindex(&r, "a2"), ra_bytes(a("2001:db8:5::"), Some(a(MMA)))));
    }
    cn.sh("ip -6 route add default via 2001:db8:1::1");
    mma.sh("ip -6 route add 2001:db8:4::/47 via 2001:db8:3::2");
    r.sh("ip -6 route add default via 2001:db8:3::1");
    let dir = std::env::temp_dir().join(format!("mipcast-mn-advice-{tag}-{}", std::process::id()));
    let interfaces: &[(&str, u8)] = if two {
        &[("e1", 60), ("e2", 50)]
    } else {
        &[("e1", 60)]
    };
    let cfg = write_mn_config(
        &dir,
        &MnSetup {
            hoa: HOA,
            ha: HA,
            home_prefix: "2001:db8:99::/64",
            interfaces,
            quality_dir: None,
            metrics_port: port,
        },
    );
    // A control socket for `mobile-node quality set`.
    let socket = dir.join("mn.sock");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}control_socket: {}\n", socket.display()),
    )
    .unwrap();
    let ras = ra_sender(&r, adverts);
    let (rm, _) = responder(&mma);
    let (rh, log_ha) = responder(&cn);
    let daemon = Daemon(mn.spawn(
        env!("CARGO_BIN_EXE_mobile-node"),
        &["-c", cfg.to_str().unwrap(), "--log-level", "debug"],
        Some(&dir.join("mn.log")),
    ));
    wait_for(Duration::from_secs(10), "registration", || {
        (!log_ha.lock().unwrap().is_empty()).then_some(())
    });
    let e1 = u64::from(ifindex(&mn, "e1"));
    wait_for(Duration::from_secs(5), "attachment on e1", || {
        (status(&mn, port)?["attachment"]["ifindex"].as_u64()? == e1).then_some(())
    });
    if two {
        // Both links scored (e2's RA seen) before the advice.
        wait_for(Duration::from_secs(5), "e2 usable", || {
            status(&mn, port)?["links"][1]["score"].as_i64().map(|_| ())
        });
    }
    Setup {
        cfg,
        mma,
        mn,
        _others: vec![cn, r],
        _bg: vec![ras, rm, rh],
        _daemon: daemon,
        port,
    }
}

/// Advice about the MN's on-link address `link_address`, signed with `key`, timestamped `ts`.
fn advice(key: &[u8], link_address: Ipv6Addr, reason: u8, ts: u64) -> Vec<u8> {
    let repr = MhRepr {
        message: Message::BindingRefreshRequest,
        options: vec![
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: a(HOA),
            },
            MobilityOption::ReplayProtection { timestamp: ts },
            MobilityOption::Experimental(Experimental::HandoffAdvice {
                reason,
                avoid_secs: 30,
                link_address,
            }),
        ],
    };
    let mut buf = vec![0u8; repr.buffer_len() + 40];
    let creds = Credentials {
        spi: SPI_MMA,
        algorithm: Algorithm::HmacSha256_128,
        key,
    };
    let n = repr
        .emit_authenticated(&mut buf, &creds, &link_address, &a(HOA))
        .unwrap();
    buf.truncate(n);
    buf
}

fn send_from_mma(mma: &Netns, bytes: &[u8], to: Ipv6Addr) {
    let bytes = bytes.to_vec();
    mma.enter(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = MhSocket::new().unwrap();
            s.send_to(&bytes, to, PacketInfo::ANY.with_source(a(MMA)))
                .await
                .unwrap();
        });
    });
}

fn metric(s: &Setup, series: &str) -> f64 {
    let text =
        s.mn.enter(|| {
            mipcast_daemon::metrics::fetch(
                std::net::SocketAddr::from((Ipv6Addr::LOCALHOST, s.port)),
                "/metrics",
            )
            .ok()
        })
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn e1_address(s: &Setup) -> Ipv6Addr {
    let st = status(&s.mn, s.port).unwrap();
    st["links"][0]["address"].as_str().unwrap().parse().unwrap()
}

fn ntp_now() -> u64 {
    mipcast_wire::ntp::ntp_timestamp(SystemTime::now())
}

#[test]
#[ignore = "needs root"]
fn netns_advice_moves_the_terminal_within_a_second_and_forgeries_are_counted() {
    require_root();
    let s = setup("move", true, 19651);
    let e1 = e1_address(&s);
    let e2_index = u64::from(ifindex(&s.mn, "e2"));

    // Forged: signed with a key that is not the MMA's. Ignored, counted, no move.
    send_from_mma(
        &s.mma,
        &advice(&[0x22; 16], e1, advice_reason::CONGESTION, ntp_now()),
        e1,
    );
    wait_for(Duration::from_secs(3), "forged advice counted", || {
        (metric(
            &s,
            "mobile_node_advice_rejected_total{reason=\"authentication\"}",
        ) == 1.0)
            .then_some(())
    });
    let st = status(&s.mn, s.port).unwrap();
    assert_eq!(
        st["attachment"]["ifindex"].as_u64(),
        Some(u64::from(ifindex(&s.mn, "e1")))
    );

    // Genuine: the terminal is on e2 within one second.
    let genuine = advice(&KEY, e1, advice_reason::CONGESTION, ntp_now());
    let sent = Instant::now();
    send_from_mma(&s.mma, &genuine, e1);
    wait_for(
        Duration::from_secs(1),
        "attachment on e2 within one second",
        || (status(&s.mn, s.port)?["attachment"]["ifindex"].as_u64()? == e2_index).then_some(()),
    );
    let moved = sent.elapsed();
    eprintln!("advice to attachment on e2: {} ms", moved.as_millis());
    assert!(moved < Duration::from_secs(1));
    assert_eq!(
        metric(
            &s,
            "mobile_node_advice_received_total{reason=\"congestion\"}"
        ),
        1.0
    );
    assert_eq!(metric(&s, "mobile_node_advice_obeyed_total"), 1.0);
    assert_eq!(
        metric(&s, "mobile_node_handover_causes_total{cause=\"advice\"}"),
        1.0
    );
    let st = status(&s.mn, s.port).unwrap();
    assert!(st["links"][0]["avoid"].is_array(), "{st}");

    // Replayed: the same bytes again are refused and counted.
    send_from_mma(&s.mma, &genuine, e1);
    wait_for(Duration::from_secs(3), "replay counted", || {
        (metric(&s, "mobile_node_advice_rejected_total{reason=\"replay\"}") == 1.0).then_some(())
    });
    assert_eq!(
        metric(
            &s,
            "mobile_node_advice_received_total{reason=\"congestion\"}"
        ),
        1.0
    );
}

#[test]
#[ignore = "needs root"]
fn netns_advice_without_an_alternative_keeps_the_terminal_and_reports_it() {
    require_root();
    let s = setup("stay", false, 19652);
    let e1 = e1_address(&s);
    send_from_mma(
        &s.mma,
        &advice(&KEY, e1, advice_reason::MAINTENANCE, ntp_now()),
        e1,
    );
    wait_for(Duration::from_secs(3), "advice reported unheeded", || {
        (metric(&s, "mobile_node_advice_unheeded_total") == 1.0).then_some(())
    });
    assert_eq!(
        metric(
            &s,
            "mobile_node_advice_received_total{reason=\"maintenance\"}"
        ),
        1.0
    );
    assert_eq!(metric(&s, "mobile_node_advice_obeyed_total"), 0.0);
    // Still attached on e1, a while later too.
    std::thread::sleep(Duration::from_millis(500));
    let st = status(&s.mn, s.port).unwrap();
    assert_eq!(
        st["attachment"]["ifindex"].as_u64(),
        Some(u64::from(ifindex(&s.mn, "e1"))),
        "{st}"
    );
    assert!(st["links"][0]["avoid"].is_array(), "{st}");
}

#[test]
#[ignore = "needs root"]
fn netns_quality_set_feeds_the_running_node_through_its_control_socket() {
    require_root();
    let s = setup("qset", true, 19653);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mobile-node"))
            .args(["quality", "-c", s.cfg.to_str().unwrap(), "set"])
            .args(args)
            .output()
            .unwrap()
    };
    // The first reading starts e1's average; the next is smoothed towards.
    assert!(run(&["e1", "100"]).status.success());
    let set = Instant::now();
    let out = run(&["e1", "30"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"quality\":30"), "{stdout}");
    // The average falls from 100 towards 30 (time constant 2 s); e1 (60 + average) falls
    // behind e2 (50 + 100) by the margin at 80, after about 0.7 s: the node moves to e2.
    let e2 = u64::from(ifindex(&s.mn, "e2"));
    wait_for(
        Duration::from_secs(5),
        "move to e2 on e1's falling quality",
        || {
            let st = status(&s.mn, s.port)?;
            (st["attachment"]["ifindex"].as_u64()? == e2).then_some(())
        },
    );
    let moved = set.elapsed();
    eprintln!(
        "quality 100 -> 30 to attachment on e2: {} ms",
        moved.as_millis()
    );
    assert!(
        moved > Duration::from_millis(300),
        "not smoothed: {moved:?}"
    );
    // Below 50 the level is degrading (after about 2.5 s).
    wait_for(Duration::from_secs(5), "e1 degrading", || {
        let st = status(&s.mn, s.port)?;
        (st["links"][0]["level"] == "degrading").then_some(())
    });
    let st = status(&s.mn, s.port).unwrap();
    assert_eq!(st["links"][0]["quality"], 30, "{st}");
    assert_eq!(
        // e1 was still stable (average 80) when e2 won by the margin: a preference move.
        metric(
            &s,
            "mobile_node_handover_causes_total{cause=\"preference\"}"
        ),
        1.0
    );
    // Unknown interface and out-of-range values are refused.
    let out = run(&["e9", "30"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interface"));
    let out = run(&["e1", "130"]);
    assert!(!out.status.success());
}
