//! The checked-in golden fixtures are exactly what the scapy generators produce: regenerate
//! them into a scratch directory and compare file by file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::path::Path;
use std::process::Command;

fn regenerate_and_compare(script: &str, fixture_dir: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("regen-{fixture_dir}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    // Debian's python3-scapy lives under /usr/bin/python3, not a pyenv python on PATH.
    let out = match Command::new("/usr/bin/python3")
        .arg(root.join(script))
        .env("FIXTURE_OUT", &scratch)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("{script}: /usr/bin/python3 is required (python3-scapy): {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed: {stderr}");
    let checked_in = root.join("fixtures").join(fixture_dir);
    let mut names: Vec<_> = std::fs::read_dir(&checked_in)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut regenerated: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    regenerated.sort();
    assert_eq!(
        names, regenerated,
        "{script} writes a different set of fixtures than is checked in"
    );
    for name in names {
        let a = std::fs::read(checked_in.join(&name)).unwrap();
        let b = std::fs::read(scratch.join(&name)).unwrap();
        assert_eq!(
            a,
            b,
            "{fixture_dir}/{}: checked-in bytes differ from what {script} generates",
            name.to_string_lossy()
        );
    }
}

#[test]
#[ignore = "needs python3-scapy (run-tests.sh runs it)"]
fn mh_fixtures_match_scapy() {
    regenerate_and_compare("gen_mh_fixtures.py", "mh");
}

#[test]
#[ignore = "needs python3-scapy (run-tests.sh runs it)"]
fn icmp_pim_fixtures_match_scapy() {
    regenerate_and_compare("gen_icmp_pim_fixtures.py", "icmp_pim");
}
