//! Events as data: a run recorded as JSON lines replays identically against fresh cores, and a
//! recorded scenario's inputs and outputs match the checked-in expectation
//! (`tests/conformance/*.jsonl`, as holo's conformance tests do). After an intended change of
//! behaviour, regenerate with `SIM_BLESS=1 cargo test -p mipcast-sim --test conformance` and
//! review the diff.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::path::PathBuf;

use mipcast_sim::invariants;
use mipcast_sim::record::{self, RecOutcome, Record, What};
use mipcast_sim::{LinkId, SimConfig, World};

fn config() -> SimConfig {
    SimConfig {
        seed: 9,
        lifetime_s: 20,
        grace_s: 3,
        ra_interval_ms: 1000,
        ..SimConfig::default()
    }
}

/// 002's figures in a row: register in site 0 (FIG 4), roam inside it, move to site 1
/// (FIG 6), return home (FIG 7), and wait until everything is clean.
fn scenario() -> Vec<Record> {
    let mut w = World::new(config());
    w.recording = Some(Vec::new());
    w.attach(0, 0, LinkId::Site(0, 0));
    w.run_for(1000);
    w.attach(0, 0, LinkId::Site(0, 1));
    w.run_for(2000);
    w.attach(0, 0, LinkId::Site(1, 0));
    w.run_for(2000);
    w.attach(0, 0, LinkId::Home);
    w.run_for(2000);
    w.detach(0, 0);
    w.run_for(5000);
    invariants::pristine(&w).unwrap();
    w.recording.take().unwrap_or_default()
}

#[test]
fn recorded_run_replays_identically() {
    let records = scenario();
    let text = record::to_jsonl(&records);
    let parsed = record::parse_jsonl(&text).unwrap();
    assert_eq!(parsed, records, "JSON lines round trip");
    let compared = record::replay(&config(), &parsed).unwrap();
    println!(
        "{} records, {compared} outputs replayed identically",
        records.len()
    );
    assert!(compared > 50, "{compared}");
}

#[test]
fn replay_notices_a_different_outcome() {
    let mut records = scenario();
    // The home agent's kernel said no to its first change: the replayed core answers 130
    // instead of 0 and withdraws, so its outputs differ from the recording.
    let first = records
        .iter_mut()
        .find(|r| r.node == mipcast_sim::NodeId::Ha && matches!(r.what, What::Kernel { .. }))
        .unwrap();
    first.what = What::Kernel {
        outcome: RecOutcome::Refused {
            errno: Some(105),
            reason: "No buffer space available".into(),
        },
    };
    let err = record::replay(&config(), &records).unwrap_err();
    assert!(err.contains("Ha"), "{err}");
}

#[test]
fn replay_notices_a_refused_mfc_entry() {
    let mut records = scenario();
    // The first MFC entry a pim-lite router installs is refused instead: the replayed router
    // forgets it and installs it again at its next check, which the recording never did.
    let is_router = |r: &Record| matches!(r.node, mipcast_sim::NodeId::Router(_));
    let add = records
        .iter()
        .position(|r| {
            is_router(r)
                && matches!(&r.what, What::Out { output } if output["kernel"].get("MfcAdd").is_some())
        })
        .expect("the scenario installs an MFC entry");
    let node = records[add].node;
    let outcome = records
        .iter_mut()
        .skip(add)
        .find(|r| r.node == node && matches!(r.what, What::Kernel { .. }))
        .unwrap();
    outcome.what = What::Kernel {
        outcome: RecOutcome::Refused {
            errno: Some(12),
            reason: "Cannot allocate memory".into(),
        },
    };
    let err = record::replay(&config(), &records).unwrap_err();
    assert!(err.contains("Router"), "{err}");
}

#[test]
fn conformance_matches_expectation() {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "conformance",
        "register_move_home.jsonl",
    ]
    .iter()
    .collect();
    let got = record::to_jsonl(&scenario());
    if std::env::var_os("SIM_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate with SIM_BLESS=1)", path.display()));
    // The expectation replays against today's cores too (inputs and outcomes drive them).
    record::replay(&config(), &record::parse_jsonl(&want).unwrap()).unwrap();
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(
            g,
            w,
            "line {} of {} differs (SIM_BLESS=1 regenerates)",
            i + 1,
            path.display()
        );
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{} has a different length (SIM_BLESS=1 regenerates)",
        path.display()
    );
}
