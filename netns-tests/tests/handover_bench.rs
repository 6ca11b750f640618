//! CI runs `handover-bench` once at its smallest size (`--moves 2 --delays 10`), so it cannot
//! rot: it must finish, print one JSON run per combination (mipcast and mipv6 x intra, inter,
//! home x make-before-break, break-before-make), each with 2 moves measured, and leave no
//! namespace behind. The figures themselves come from full runs (docs/benchmarks.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::collections::BTreeSet;
use std::process::Command;

use mipcast_netns_tests::require_root;
use serde_json::Value;

#[test]
#[ignore = "needs root"]
fn handover_bench_smallest_size_reports_every_combination() {
    require_root();
    let out = Command::new(env!("CARGO_BIN_EXE_handover-bench"))
        .args(["--moves", "2", "--delays", "10", "--json"])
        .output()
        .expect("run handover-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "handover-bench failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let runs = v["runs"].as_array().expect("runs");
    let mut combos = BTreeSet::new();
    for r in runs {
        assert_eq!(r["moves"], 2, "{r}");
        assert_eq!(r["wan_delay_ms"], 10, "{r}");
        for k in [
            "lost",
            "duplicates",
            "signalling_outside_site",
            "signalling_total",
        ] {
            assert!(r[k].is_u64(), "{k} in {r}");
        }
        // At 1000 packets/s consecutive packets are 1 ms apart: a measured move shows at
        // least that, and the largest gap is at least the mean.
        let (max, mean) = (
            r["max_gap_ms"].as_f64().expect("max_gap_ms"),
            r["mean_gap_ms"].as_f64().expect("mean_gap_ms"),
        );
        assert!(mean >= 0.9 && max >= mean, "{r}");
        assert!(
            r["signalling_total"].as_u64() >= r["signalling_outside_site"].as_u64(),
            "{r}"
        );
        combos.insert((
            r["mode"].as_str().unwrap_or("").to_owned(),
            r["move"].as_str().unwrap_or("").to_owned(),
            r["style"].as_str().unwrap_or("").to_owned(),
        ));
    }
    assert_eq!(runs.len(), 12, "{v}");
    assert_eq!(combos.len(), 12, "every combination once: {combos:?}");
    assert!(
        stderr.contains("summary 10 ms intra mbb"),
        "summary lines: {stderr}"
    );
    let left = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains("mchb"),
        "namespaces left behind"
    );
}
