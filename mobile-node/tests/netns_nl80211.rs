//! `quality_source: nl80211` on a kernel without a wireless stack (this machine: no cfg80211,
//! so no "nl80211" generic-netlink family): the probe says "not available", the real
//! `mobile-node` names each such link in a warning, runs on, and the link falls back to its
//! quality file (or to no reading without one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::time::Duration;

use common::*;
use mipcast_kernel::nl80211::{Nl80211, Probe};
use mipcast_netns_tests::{require_root, veth, Daemon, Netns};

const PORT: u16 = 19651;

/// Whether this kernel has a wireless stack: generic-netlink families are global, so the
/// answer is the same in every namespace.
fn kernel_has_wireless() -> bool {
    std::path::Path::new("/sys/class/ieee80211").exists()
}

fn probe_in(ns: &Netns) -> Result<(), String> {
    ns.enter(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                match Nl80211::probe().await {
                    Probe::Available(_) => Ok(()),
                    Probe::NotAvailable(why) => Err(why),
                }
            })
    })
}

#[test]
#[ignore = "needs root"]
fn netns_nl80211_absent_warns_falls_back_and_runs_on() {
    require_root();
    let mn = Netns::new("nlmn");
    let ar = Netns::new("nlar");
    veth(
        &mn,
        "e1",
        "2001:db8:10::100/64",
        &ar,
        "p1",
        "2001:db8:10::1/64",
    );
    veth(
        &mn,
        "e2",
        "2001:db8:20::100/64",
        &ar,
        "p2",
        "2001:db8:20::1/64",
    );

    let probe = probe_in(&mn);
    if kernel_has_wireless() {
        assert_eq!(
            probe,
            Ok(()),
            "a kernel with cfg80211 has the nl80211 family"
        );
        eprintln!("this kernel has a wireless stack: the fallback is not exercised here");
        return;
    }
    let why = probe.expect_err("no cfg80211, yet the nl80211 family resolved");
    assert!(why.contains("no nl80211 generic-netlink family"), "{why}");

    let dir = std::env::temp_dir().join(format!("mipcast-mn-nl80211-{}", std::process::id()));
    let qdir = dir.join("q");
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::write(qdir.join("e1.quality"), "42\n").unwrap();
    let cfg = write_mn_config(
        &dir,
        &MnSetup {
            hoa: "2001:db8:99::100",
            ha: "2001:db8:2::1",
            home_prefix: "2001:db8:99::/64",
            interfaces: &[("e1", 60), ("e2", 40)],
            quality_dir: Some(&qdir),
            metrics_port: PORT,
        },
    );
    // e1: nl80211 with its quality file as the fallback; e2: nl80211 alone (no file, no
    // control socket), so no reading.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let e2_file = format!("    quality_file: {}/e2.quality\n", qdir.display());
    assert!(text.contains(&e2_file));
    let text = text
        .replace(&e2_file, "")
        .replace(
            "    preference: 60\n",
            "    preference: 60\n    quality_source: nl80211\n",
        )
        .replace(
            "    preference: 40\n",
            "    preference: 40\n    quality_source: nl80211\n",
        );
    std::fs::write(&cfg, text).unwrap();

    let log = dir.join("mn.log");
    let mut daemon = Daemon(mn.spawn(
        env!("CARGO_BIN_EXE_mobile-node"),
        &["-c", cfg.to_str().unwrap()],
        Some(&log),
    ));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let warning = "nl80211 is not available on this kernel";
    wait_for(Duration::from_secs(10), "the nl80211 warnings", || {
        (read_log().matches(warning).count() >= 2).then_some(())
    });
    let text = read_log();
    let line = |link: &str| {
        text.lines()
            .find(|l| l.contains(warning) && l.contains(&format!("link={link}")))
            .unwrap_or_else(|| panic!("no warning naming {link}:\n{text}"))
            .to_owned()
    };
    assert!(
        line("e1").contains("falls back to its quality_file"),
        "{text}"
    );
    assert!(line("e2").contains("falls back to no reading"), "{text}");
    assert!(line("e1").contains("WARN"), "{text}");
    eprintln!("{}\n{}", line("e1"), line("e2"));

    // It runs on, and e1 scores on its file, e2 on nothing.
    let st = wait_for(
        Duration::from_secs(10),
        "e1's file quality in /status",
        || {
            let st = status(&mn, PORT)?;
            let e1 = st["links"].as_array()?.iter().find(|l| l["name"] == "e1")?;
            (e1["quality"] == 42).then_some(st)
        },
    );
    let e2 = st["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "e2")
        .unwrap()
        .clone();
    assert!(e2["quality"].is_null(), "{e2}");
    std::fs::write(qdir.join("e1.quality"), "17\n").unwrap();
    wait_for(Duration::from_secs(5), "e1's new file quality", || {
        let st = status(&mn, PORT)?;
        let e1 = st["links"].as_array()?.iter().find(|l| l["name"] == "e1")?;
        (e1["quality"] == 17).then_some(())
    });
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the mobile node exited:\n{}",
        read_log()
    );
    assert_eq!(
        read_log().matches(warning).count(),
        2,
        "one warning per link, once"
    );
    let st = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", read_log());
    std::fs::remove_dir_all(&dir).unwrap();
}
