mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::TempDir;
use mipcast_daemon::state::{StateError, StateFile};
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
