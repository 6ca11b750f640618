//! The shipped example configuration loads, and `--check-config` accepts it and names the
//! field of a broken one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example with its key paths pointed at a private temporary directory holding keys.
fn example_with_keys(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/mobile-node.yaml"
    ))
    .unwrap();
    // Its key paths are relative (keys/...): put keys beside the copy.
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for name in ["mn1.key", "terminals.key"] {
        let p = dir.join("keys").join(name);
        std::fs::write(&p, "00112233445566778899aabbccddeeff".repeat(2) + "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join("mobile-node.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn example_config_is_accepted() {
    let dir = std::env::temp_dir().join(format!("mipcast-mn-cfg-{}", std::process::id()));
    let path = example_with_keys(&dir);
    let cfg: mobile_node::config::Config = mipcast_daemon::config::load(&path).unwrap();
    assert_eq!(cfg.interfaces.len(), 2);
    assert_eq!(cfg.mode, mobile_node::config::Mode::Site);
    let out = Command::new(env!("CARGO_BIN_EXE_mobile-node"))
        .args(["--check-config", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = std::fs::read_to_string(&path).unwrap().replace(
        "home_prefix: 2001:db8:99::/64",
        "home_prefix: 2001:db8:98::/64",
    );
    let bad_path = dir.join("bad.yaml");
    std::fs::write(&bad_path, bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mobile-node"))
        .args(["--check-config", "-c"])
        .arg(&bad_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yaml:7:14:")
            && err.contains("home_prefix: does not contain the home address"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A key shorter than its algorithm's hash output is refused at load, for each SA of the
/// terminal (here the 16-byte key of an HMAC-SHA256 SA, once accepted with a warning).
#[test]
fn a_key_shorter_than_the_hash_output_is_refused() {
    let dir = std::env::temp_dir().join(format!("mipcast-mn-short-{}", std::process::id()));
    let path = example_with_keys(&dir);
    let short = dir.join("keys/mn1.key");
    std::fs::write(&short, "00112233445566778899aabbccddeeff\n").unwrap();
    let err = mipcast_daemon::config::load::<mobile_node::config::Config>(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "security_associations.home_agent.key_file: the key is 16 bytes: hmac-sha256-128 needs at least 32"
        ),
        "{err}"
    );
    // terminals.key (the MMAs' key) is still 32 bytes: only the short one is named.
    assert!(!err.contains("default_mma.key_file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `quality_source` per link: nl80211 (with its quality_file as the fallback) is accepted by
/// `--check-config`; `control` with a quality file, and `file` without one, are refused with
/// the link's field named.
#[test]
fn quality_source_is_checked() {
    let dir = std::env::temp_dir().join(format!("mipcast-mn-qsrc-{}", std::process::id()));
    let path = example_with_keys(&dir);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("    # quality_source: nl80211\n"));
    let check = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mobile-node"))
            .args(["--check-config", "-c"])
            .arg(&p)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let nl = text.replace(
        "    # quality_source: nl80211\n",
        "    quality_source: nl80211\n",
    );
    let cfg: mobile_node::config::Config = mipcast_daemon::config::load_str(&path, &nl).unwrap();
    assert_eq!(
        cfg.interfaces[0].quality_source,
        Some(mobile_node::config::QualitySource::Nl80211)
    );
    assert_eq!(cfg.interfaces[1].quality_source, None);
    let (ok, err) = check("nl.yaml", nl);
    assert!(ok, "{err}");

    let control = text.replace(
        "    # quality_source: nl80211\n",
        "    quality_source: control\n",
    );
    let (ok, err) = check("control.yaml", control);
    assert!(!ok);
    assert!(
        err.contains("interfaces[0].quality_file: is not read with quality_source control"),
        "{err}"
    );

    let file = text.replace(
        "  - name: eth0\n",
        "  - name: eth0\n    quality_source: file\n",
    );
    let (ok, err) = check("file.yaml", file);
    assert!(!ok);
    assert!(
        err.contains("interfaces[1].quality_source: file needs the link's quality_file"),
        "{err}"
    );

    let bogus = text.replace(
        "    # quality_source: nl80211\n",
        "    quality_source: wext\n",
    );
    let (ok, err) = check("bogus.yaml", bogus);
    assert!(!ok);
    assert!(
        err.contains("quality_source") || err.contains("wext"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A SIGHUP's file compared with the running one: selection, lifetime and preferences change
/// in place; an interface renamed and the metrics listener wait for a restart; associations
/// always count as changed (keys are re-read).
#[test]
fn reload_diff_sorts_sections_into_live_and_restart() {
    use mobile_node::config::Config;
    let dir = std::env::temp_dir().join(format!("mipcast-mn-diff-{}", std::process::id()));
    let path = example_with_keys(&dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let running: Config = mipcast_daemon::config::load(&path).unwrap();
    let same = running.reload_diff(&mipcast_daemon::config::load(&path).unwrap());
    assert_eq!(same.changed(), ["security_associations"]);
    assert!(same.needs_restart().is_empty(), "{same:?}");

    let tuned = text
        .replace("binding_lifetime: 300", "binding_lifetime: 120")
        .replace("preference: 60", "preference: 70")
        .replace("hysteresis: 10", "hysteresis: 20");
    assert_ne!(tuned, text);
    std::fs::write(&path, tuned).unwrap();
    let diff = running.reload_diff(&mipcast_daemon::config::load(&path).unwrap());
    assert_eq!(
        diff.changed(),
        [
            "selection",
            "binding_lifetime",
            "security_associations",
            "interfaces (preference, cost, quality_file)"
        ]
    );
    assert!(diff.needs_restart().is_empty(), "{diff:?}");

    let moved = text
        .replace("name: eth0", "name: eth1")
        .replace("\"[::1]:9643\"", "\"[::1]:9653\"");
    std::fs::write(&path, moved).unwrap();
    let diff = running.reload_diff(&mipcast_daemon::config::load(&path).unwrap());
    assert_eq!(diff.needs_restart(), ["interfaces (names)", "metrics"]);
    assert_eq!(diff.changed(), ["security_associations"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
