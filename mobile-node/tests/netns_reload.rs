//! SIGHUP reload of the real `mobile-node` against scripted MMAs and a scripted home agent:
//! new link preferences and binding lifetime take effect live (a move to the now-preferred
//! link, Binding Updates with the new lifetime on the wire), and a broken file is refused with
//! the running configuration kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use mipcast_netns_tests::{require_root, Daemon};
use mipcast_wire::mh::bu_flags;

const HOA: &str = "2001:db8:99::100";
const HA: &str = "2001:db8:2::1";
const MMA1: &str = "2001:db8:10::1";
const MMA2: &str = "2001:db8:20::1";
const PORT: u16 = 19645;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn hup(d: &Daemon) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn log_count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// The `score` of link `name` in a `/status` document.
fn score(st: &serde_json::Value, name: &str) -> Option<f64> {
    st["links"].as_array()?.iter().find(|l| l["name"] == name)?["score"].as_f64()
}

#[test]
#[ignore = "needs root"]
fn netns_sighup_applies_preference_and_lifetime_and_refuses_broken_file() {
    require_root();
    let sites = two_sites(HA, MMA1, MMA2);
    let (mn, log1, log2, logh) = (&sites.mn, &sites.log1, &sites.log2, &sites.logh);

    let dir = std::env::temp_dir().join(format!("mipcast-mn-reload-{}", std::process::id()));
    let cfg = write_mn_config(
        &dir,
        &MnSetup {
            hoa: HOA,
            ha: HA,
            home_prefix: "2001:db8:99::/64",
            interfaces: &[("e1", 60), ("e2", 40)],
            quality_dir: None,
            metrics_port: PORT,
        },
    );
    let log = dir.join("mn.log");
    let mut daemon = Daemon(mn.spawn(
        env!("CARGO_BIN_EXE_mobile-node"),
        &["-c", cfg.to_str().unwrap(), "--log-level", "debug"],
        Some(&log),
    ));
    wait_for(Duration::from_secs(10), "home registration", || {
        (!logh.lock().unwrap().is_empty()).then_some(())
    });
    let hb = logh.lock().unwrap()[0].clone();
    assert_eq!((hb.alt_coa, hb.lifetime_units), (Some(a(MMA1)), 15), "60 s");
    let st = status(mn, PORT).expect("status");
    assert_eq!(st["attachment"]["mma"], MMA1);
    let (e1_before, e2_before) = (score(&st, "e1"), score(&st, "e2"));
    assert!(e1_before > e2_before, "{st}");

    // Swap the preferences (beyond the hysteresis of 10) and double the binding lifetime.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let swapped = text
        .replace(
            "name: e1\n    preference: 60",
            "name: e1\n    preference: 40",
        )
        .replace(
            "name: e2\n    preference: 40",
            "name: e2\n    preference: 60",
        )
        .replace("binding_lifetime: 60", "binding_lifetime: 120");
    assert_eq!(
        swapped.matches("preference: 60").count()
            + swapped.matches("binding_lifetime: 120").count(),
        2,
        "{swapped}"
    );
    let cap = Capture::start(mn, "e2", "ip6 proto 135", dir.join("e2.pcap"));
    std::fs::write(&cfg, &swapped).unwrap();
    hup(&daemon);
    wait_for(Duration::from_secs(5), "reload logged", || {
        (log_count(&log, "configuration reloaded") == 1).then_some(())
    });

    // The node moves to e2 (MMA2's site) although e1 is still up, with 120 s bindings.
    wait_for(
        Duration::from_secs(10),
        "home registration via MMA2",
        || (logh.lock().unwrap().len() >= 2).then_some(()),
    );
    let new_mma = log2.lock().unwrap().clone();
    assert_eq!(new_mma.len(), 1, "{new_mma:?}");
    assert_eq!(
        (new_mma[0].flags, new_mma[0].lifetime_units),
        (bu_flags::ACK | bu_flags::MAP, 30),
        "MMA2 BU with the reloaded lifetime"
    );
    let home = logh.lock().unwrap()[1].clone();
    assert_eq!(
        (home.alt_coa, home.lifetime_units),
        (Some(a(MMA2)), 30),
        "HA BU with the reloaded lifetime"
    );
    let on_wire = cap.finish(
        &format!("mip6.mhtype == 5 && ipv6.dst == {HA}"),
        &["mip6.bu.lifetime"],
    );
    assert_eq!(on_wire, vec!["30".to_owned()], "lifetime on the wire");
    let st = wait_for(Duration::from_secs(5), "status on MMA2", || {
        status(mn, PORT).filter(|st| st["attachment"]["mma"] == MMA2)
    });
    assert!(score(&st, "e2") > score(&st, "e1"), "{st}");
    assert!(mn.sh("ip link show e1").contains("state UP"));

    // A broken file (which would swap back) and then one naming a missing key file: both
    // refused, the node stays on e2 and the daemon keeps running.
    let broken_yaml = format!("{text}\nnot_a_field: [\n");
    let missing_key = swapped.replace(
        dir.join("mn.key").to_str().unwrap(),
        dir.join("missing.key").to_str().unwrap(),
    );
    assert_ne!(missing_key, swapped);
    // The deregistration with forwarding request reaches MMA1 from the old link shortly before
    // the make-before-break overlap ends (issue 11): count from after it.
    wait_for(Duration::from_secs(5), "forwarding request to MMA1", || {
        (log1.lock().unwrap().len() >= 2).then_some(())
    });
    let bus_before = (log1.lock().unwrap().len(), logh.lock().unwrap().len());
    for (n, bad) in [broken_yaml, missing_key].into_iter().enumerate() {
        std::fs::write(&cfg, bad).unwrap();
        hup(&daemon);
        wait_for(Duration::from_secs(5), "reload refusal logged", || {
            (log_count(&log, "reload refused") == n + 1).then_some(())
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            daemon.0.try_wait().unwrap().is_none(),
            "mobile-node exited on a broken config"
        );
        let st = status(mn, PORT).expect("status after a refused reload");
        assert_eq!(st["attachment"]["mma"], MMA2, "{st}");
        assert!(score(&st, "e2") > score(&st, "e1"), "{st}");
    }
    assert_eq!(
        (log1.lock().unwrap().len(), logh.lock().unwrap().len()),
        bus_before,
        "no move back after refused reloads"
    );
    assert_eq!(log_count(&log, "configuration reloaded"), 1);

    assert!(daemon
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert_eq!(mn.sh("ip -6 route show table all proto 158"), "");
    let _ = std::fs::remove_dir_all(&dir);
}
