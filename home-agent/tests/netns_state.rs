//! The state journal: every acknowledged binding survives kill -9, a torn last record is
//! ignored with a warning, and a state file of the previous (JSON) format is still read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::io::Write;
use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use mipcast_netns_tests::bench::{nth_address, pipeline};
use mipcast_netns_tests::mh_client::{Bu, MhClient};
use mipcast_netns_tests::require_root;

const N: u32 = 2000;

fn base() -> Ipv6Addr {
    "2001:db8:1::2:0".parse().unwrap()
}

/// Registers N home addresses; returns how many were acknowledged with status 0.
fn register_many(lab: &Lab) -> u32 {
    lab.mn.enter(|| {
        let client = MhClient::bind(a(COA), a(HA), Duration::from_secs(2)).expect("MH socket");
        pipeline(&client, N, 256, |i| {
            Bu {
                flags: 0xc000,
                lifetime: 200,
                alternate_coa: Some(a(COA)),
                ..Bu::new(1, nth_address(base(), i), a(COA), SPI, KEY)
            }
            .bytes()
        })
        .expect("send BUs")
        .accepted
    })
}

fn bindings_in_status(lab: &Lab) -> usize {
    let status: serde_json::Value =
        serde_json::from_str(&lab.fetch("/status").expect("status")).unwrap();
    status["bindings"].as_array().unwrap().len()
}

/// The log lines of every home-agent run in the lab.
fn logs(lab: &Lab) -> String {
    std::fs::read_dir(&lab.dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn no_acknowledged_binding_is_lost_to_kill_9_and_a_torn_tail_is_ignored() {
    require_root();
    let lab = Lab::new("journal");
    let mut ha = lab.start(&["--log-level", "info"]);
    let accepted = register_many(&lab);
    assert_eq!(accepted, N);
    // At once after the last BAck: no write delay to wait for.
    ha.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("killed");
    // A crash in the middle of the next write: half a record at the end.
    let state = lab.dir.path("state.json");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&state)
        .unwrap();
    f.write_all(&[67, 1, 0x20, 0x01, 0x0d]).unwrap();
    drop(f);

    let ha = lab.start(&["--log-level", "info"]);
    assert_eq!(bindings_in_status(&lab), N as usize, "bindings lost");
    assert!(
        logs(&lab).contains("partly written record"),
        "no warning about the torn record"
    );
    let k = lab.kernel_state();
    assert_eq!(
        k.routes
            .iter()
            .filter(|r| r.starts_with("2001:db8:1::2:"))
            .count(),
        N as usize
    );
    drop(ha);
}

#[test]
#[ignore = "needs root"]
fn a_json_state_file_of_the_previous_version_is_read_and_rewritten() {
    require_root();
    let lab = Lab::new("jsonstate");
    let state = lab.dir.path("state.json");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::fs::write(
        &state,
        format!(
            r#"{{"bindings":[{{"hoa":"{HOA}","coa":"{COA}","peer":"{COA}","local":"{HA}","sequence":5,"lifetime_s":400,"registered_unix_ms":{now_ms},"expires_unix_ms":{},"refresh_unix_ms":null,"last_timestamp":0,"spi":{SPI},"state":"active","payload":null}}],"original":{{"proxy_ndp":null,"seg6_tunsrc":null}}}}"#,
            now_ms + 400_000
        ),
    )
    .unwrap();
    let _ha = lab.start(&[]);
    let status = lab.fetch("/status").unwrap();
    assert!(status.contains(HOA), "{status}");
    let bytes = std::fs::read(&state).unwrap();
    assert!(bytes.starts_with(b"MIPJRNL1"), "rewritten as a journal");
    assert!(status.contains("\"sequence\":5"), "{status}");
}
