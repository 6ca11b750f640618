//! flood-bench at its smallest size: the built binary against the built daemons, with the
//! issue 16 bounds that hold even in a debug build (replies to the attacker within the
//! budget, every legitimate registration answered, bounded log growth).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::path::PathBuf;
use std::process::Command;

use mipcast_netns_tests::require_root;

/// The daemons cargo built beside this test's binaries (`cargo test --workspace` builds them).
fn daemon(name: &str) -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_flood-bench"));
    let path = bench.parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build -p home-agent -p mma` first (cargo test --workspace does)",
        path.display()
    );
    path
}

#[test]
#[ignore = "needs root"]
fn flood_bench_smallest_size() {
    require_root();
    let out = Command::new(env!("CARGO_BIN_EXE_flood-bench"))
        .args(["--seconds", "2", "--senders", "1", "--json", "--home-agent"])
        .arg(daemon("home-agent"))
        .arg("--mma")
        .arg(daemon("mma"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{report}");
    for r in results {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!(f("flood_bus_sent") > 1000.0, "the flood ran: {r}");
        assert!(f("legit_sent") >= 1.0, "{r}");
        assert_eq!(f("legit_success_ratio"), 1.0, "{r}");
        assert!(
            f("replies_to_attacker") <= f("attacker_reply_budget") + 1.0,
            "{r}"
        );
        assert!(f("log_bytes_per_minute") < 1_048_576.0, "{r}");
    }
}
