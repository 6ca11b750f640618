//! Hostile files (issue 16): a tampered state file, a FIFO for a key, configs too deep or too
//! big, and a SIGHUP with such a config while terminals register.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use mipcast_daemon::state::{BindingEntry, Journal};
use mipcast_netns_tests::require_root;
use serde_json::Value;

/// `home-agent --check-config -c PATH`: (exit success, stderr, how long it took).
fn check_config(path: &std::path::Path) -> (bool, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_home-agent"))
        .args(["--check-config", "-c"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

fn mkfifo(path: &std::path::Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
#[ignore = "needs root"]
fn a_tampered_state_file_is_restored_minus_its_invalid_records() {
    require_root();
    let lab = Lab::new("tamper");
    let mut ha = lab.start(&[]);
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status: 0, .. })),
        "{reply:?}"
    );
    let state = lab.dir.path("state.json");
    // The journal (binary) has the binding as soon as it was acknowledged.
    let journaled = || {
        let (_, st) = Journal::<BindingEntry<()>>::open(&state).ok()?;
        st.records.into_values().next()
    };
    assert!(wait_for(Duration::from_secs(3), || journaled().is_some()));
    ha.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("killed");

    // Every way a well-formed record can lie, each beside the one real binding, in the
    // older JSON state format (which a start reads and migrates, validating every record).
    let ha_addr: std::net::Ipv6Addr = HA.parse().unwrap();
    let good = serde_json::to_value(journaled().unwrap().with_local(ha_addr)).unwrap();
    let mut saved = serde_json::json!({ "bindings": [good.clone()] });
    let forged = |field: &str, value: Value, hoa: &str| {
        let mut r = good.clone();
        r["hoa"] = Value::from(hoa);
        r[field] = value;
        r
    };
    let bad = [
        forged("hoa", Value::from("ff02::1"), "ff02::1"),
        forged("hoa", Value::from("::"), "::"),
        forged("hoa", Value::from("2001:db8:77::1"), "2001:db8:77::1"),
        forged("hoa", Value::from(HA), HA),
        forged("coa", Value::from("::1"), "2001:db8:1::201"),
        forged("coa", Value::from("ff05::1"), "2001:db8:1::202"),
        forged("spi", Value::from(4242), "2001:db8:1::203"),
        forged("expires_unix_ms", Value::from(u64::MAX), "2001:db8:1::204"),
        forged("lifetime_s", Value::from(u32::MAX), "2001:db8:1::205"),
    ];
    let n_bad = bad.len();
    saved["bindings"].as_array_mut().unwrap().extend(bad);
    std::fs::write(&state, serde_json::to_string(&saved).unwrap()).unwrap();

    let _ha = lab.start(&["--log-level", "info"]);
    let status = lab.fetch("/status").expect("status");
    let page: Value = serde_json::from_str(&status).unwrap();
    let hoas: Vec<&str> = page["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["hoa"].as_str().unwrap())
        .collect();
    assert_eq!(hoas, vec![HOA], "{status}");
    // Only the real binding is in the kernel: its route beside the static decapsulation route
    // (the neighbour proxy is in user space: no kernel proxy entry at all).
    let k = lab.kernel_state();
    assert!(k.proxies.is_empty(), "{k:?}");
    let bindings: Vec<&String> = k.routes.iter().filter(|r| !r.contains("End.DT6")).collect();
    assert_eq!(bindings.len(), 1, "{k:?}");
    assert!(bindings[0].starts_with(&format!("{HOA} ")), "{k:?}");
    // One summary line for all of them, not one per record.
    let logs: String = std::fs::read_dir(&lab.dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    let summaries: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("no longer validate"))
        .collect();
    assert_eq!(summaries.len(), 1, "{logs}");
    assert!(
        summaries[0].contains(&format!("refused={n_bad}")),
        "{}",
        summaries[0]
    );
}

#[test]
fn a_fifo_key_file_is_an_error_within_a_second() {
    let dir = TempDir::new("fifo");
    let config = write_config(&dir, "");
    let key = dir.path("mn.key");
    std::fs::remove_file(&key).unwrap();
    mkfifo(&key);
    let (ok, stderr, took) = check_config(&config);
    assert!(!ok, "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(stderr.contains("FIFO"), "{stderr}");

    // A FIFO as the state file too, and the daemon itself (not only --check-config).
    let dir = TempDir::new("fifo-state");
    let config = write_config(&dir, "");
    mkfifo(&dir.path("state.json"));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_home-agent"))
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        stderr.contains("state.file") && stderr.contains("FIFO"),
        "{stderr}"
    );
}

#[test]
fn deep_and_huge_configs_are_refused_quickly() {
    let dir = TempDir::new("deep");
    let config = write_config(&dir, "");
    let good = std::fs::read_to_string(&config).unwrap();
    for (what, text, expect) in [
        (
            "deep flow",
            format!("{good}x: {}\n", "[".repeat(200_000)),
            "nested",
        ),
        (
            "deep block",
            format!("{good}x:\n{}", "- ".repeat(200_000)),
            "nested",
        ),
        (
            "huge",
            format!("{good}# {}\n", "x".repeat(5 << 20)),
            "larger than 4 MiB",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let (ok, stderr, took) = check_config(&config);
        assert!(!ok, "{what}: {stderr}");
        assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
        assert!(stderr.contains(expect), "{what}: {stderr}");
    }
}

#[test]
#[ignore = "needs root"]
fn a_sighup_with_a_deep_config_leaves_registrations_unaffected() {
    require_root();
    let lab = Lab::new("hup");
    let ha = lab.start(&["--log-level", "info"]);
    // Round trips of fresh registrations, with SIGHUPs of a hostile file in the middle.
    let good = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(&lab.config, format!("{good}x: {}\n", "[".repeat(20_000))).unwrap();
    let pid = ha.0.id() as i32;
    let latencies = with_mn(&lab.mn, async |mn| {
        let mut latencies = Vec::new();
        for seq in 1..=20u16 {
            if seq % 5 == 0 {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid, libc::SIGHUP) };
            }
            let t = Instant::now();
            let reply = mn.exchange(&mn.bu(seq, 100, Some(KEY))).await;
            assert!(
                matches!(reply, Some(Reply::Ack { status: 0, .. })),
                "{seq}: {reply:?}"
            );
            latencies.push(t.elapsed());
        }
        latencies
    });
    let worst = latencies.iter().max().unwrap();
    assert!(*worst < Duration::from_millis(200), "{latencies:?}");
    let logs: String = std::fs::read_dir(&lab.dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("reload refused, the running configuration stays") && logs.contains("nested"),
        "{logs}"
    );
}
