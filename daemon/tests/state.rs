#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::TempDir;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mipcast_daemon::state::{StateError, StateFile, StateWriter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bindings {
    generation: u32,
    care_of: Vec<String>,
}

fn bindings(generation: u32, n: usize) -> Bindings {
    Bindings {
        generation,
        care_of: (0..n).map(|i| format!("2001:db8::{i:x}")).collect(),
    }
}

#[test]
fn missing_file_is_none_then_write_overwrite_read_back() {
    let dir = TempDir::new("state");
    let path = dir.path().join("bindings.json");
    let file = StateFile::<Bindings>::new(&path);
    assert_eq!(file.load().expect("load"), None);

    file.store(&bindings(1, 50)).expect("first store");
    assert_eq!(file.load().expect("load"), Some(bindings(1, 50)));

    // A shorter state must fully replace the longer one (no stale tail).
    file.store(&bindings(2, 1)).expect("overwrite");
    let on_disk: Bindings =
        serde_json::from_slice(&fs::read(&path).expect("read")).expect("plain JSON on disk");
    assert_eq!(on_disk, bindings(2, 1));
    // Compact: one line, no indentation (the file is rewritten at every burst of changes).
    let raw = fs::read(&path).expect("read");
    assert_eq!(raw.iter().filter(|b| **b == b'\n').count(), 1);
    assert!(!raw.windows(2).any(|w| w == b"  "));
    assert_eq!(file.load().expect("load"), Some(bindings(2, 1)));

    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Only the state file is left behind: the temporary file was renamed over it.
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bindings.json")]);
}

#[test]
fn leftover_temp_file_from_a_crash_is_ignored_and_replaced() {
    let dir = TempDir::new("state-crash");
    let path = dir.path().join("bindings.json");
    let file = StateFile::<Bindings>::new(&path);
    file.store(&bindings(7, 3)).expect("store");

    // A crash between creating the temporary file and renaming it leaves a partial write.
    let temp = dir.path().join(".bindings.json.tmp");
    fs::write(&temp, b"{\"generation\": 8, \"care_").expect("partial temp");
    assert_eq!(file.load().expect("load"), Some(bindings(7, 3)));

    file.store(&bindings(9, 2)).expect("store over leftover");
    assert_eq!(file.load().expect("load"), Some(bindings(9, 2)));
    assert!(
        !temp.exists(),
        "temporary file must be consumed by the rename"
    );
}

#[test]
fn corrupt_file_is_a_clear_error_naming_the_file() {
    let dir = TempDir::new("state-corrupt");
    let path = dir.path().join("bindings.json");
    fs::write(&path, b"{\"generation\": 1,").expect("write");
    let err = StateFile::<Bindings>::new(&path)
        .load()
        .expect_err("corrupt");
    assert!(matches!(err, StateError::Corrupt { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("state file {} is corrupt: ", path.display())),
        "{err}"
    );
}

/// A writer whose outcomes land in a shared list (true = written).
fn writer(path: &std::path::Path, delay_ms: u64) -> (StateWriter<Bindings>, Arc<Mutex<Vec<bool>>>) {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let w = StateWriter::new(
        StateFile::new(path),
        Duration::from_millis(delay_ms),
        move |o| seen.lock().unwrap().push(o.is_ok()),
    );
    (w, outcomes)
}

#[tokio::test]
async fn writer_coalesces_a_burst_of_changes_into_one_delayed_write() {
    let dir = TempDir::new("state-writer");
    let path = dir.path().join("bindings.json");
    let (mut w, outcomes) = writer(&path, 80);

    // Nothing changed: nothing is due.
    assert!(tokio::time::timeout(Duration::from_millis(150), w.due())
        .await
        .is_err());

    let started = tokio::time::Instant::now();
    let mut generation = 0;
    for _ in 0..500 {
        generation += 1;
        w.mark_dirty();
    }
    assert!(w.is_dirty());
    tokio::time::timeout(Duration::from_secs(2), w.due())
        .await
        .expect("due");
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
    w.start(|| bindings(generation, 20_000));
    assert!(!w.is_dirty());

    // Changes while the first write is on disk join one second write.
    for _ in 0..300 {
        generation += 1;
        w.mark_dirty();
    }
    tokio::time::timeout(Duration::from_secs(5), w.due())
        .await
        .expect("due again");
    assert_eq!(
        *outcomes.lock().unwrap(),
        vec![true],
        "the first write is reported first"
    );
    w.start(|| bindings(generation, 3));
    // Collects the second write, then waits for nothing.
    assert!(tokio::time::timeout(Duration::from_millis(300), w.due())
        .await
        .is_err());
    assert_eq!(*outcomes.lock().unwrap(), vec![true, true]);
    assert_eq!(w.file().load().expect("load"), Some(bindings(800, 3)));
}

#[tokio::test]
async fn writer_reports_failures_and_writes_now_on_request() {
    let dir = TempDir::new("state-writer-fail");
    let (mut bad, outcomes) = writer(&dir.path().join("missing-dir/bindings.json"), 10);
    let outcome = bad.write_now(bindings(1, 1)).await;
    assert!(matches!(outcome, Err(StateError::Io { .. })), "{outcome:?}");
    assert_eq!(*outcomes.lock().unwrap(), vec![false]);

    let path = dir.path().join("bindings.json");
    let (mut good, outcomes) = writer(&path, 10_000);
    good.mark_dirty();
    good.start(|| bindings(1, 5));
    // Waits for the running write, then writes at once, without the delay.
    good.write_now(bindings(2, 2)).await.expect("write now");
    assert_eq!(*outcomes.lock().unwrap(), vec![true, true]);
    assert_eq!(good.file().load().expect("load"), Some(bindings(2, 2)));
    assert!(!good.is_dirty());
}
