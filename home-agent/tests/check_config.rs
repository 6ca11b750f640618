//! `--check-config` on the shipped example and on a broken file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn temp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ha-check-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(p.join("keys")).unwrap();
    p
}

/// A copy of the example in a fresh directory, with the key files it names beside it (they
/// are relative to its own directory).
fn example_copy(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/home-agent.yaml");
    let dir = temp(tag);
    let copy = dir.join("home-agent.yaml");
    std::fs::copy(&example, &copy).unwrap();
    for (name, key) in [
        (
            "mn1.key",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
        ("mn2.key", "raw bytes, twenty-plus"),
    ] {
        let p = dir.join("keys").join(name);
        std::fs::write(&p, key).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    (dir, copy)
}

#[test]
fn example_config_passes() {
    let (dir, copy) = example_copy("ok");
    let out = Command::new(env!("CARGO_BIN_EXE_home-agent"))
        .args(["--check-config", "-c"])
        .arg(&copy)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn broken_config_names_file_and_line() {
    let dir = temp("bad");
    let key = dir.join("keys/k");
    std::fs::write(&key, "secret").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.join("ha.yaml");
    let cases = [
        // SPI in the reserved range: a semantic error on line 6.
        (
            format!(
                "home_link:\n  interface: eth0\n  address: 2001:db8:1::1\nhome_prefixes: [2001:db8:1::/64]\nsecurity_associations:\n  - spi: 12\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::100/128]\n",
                key.display()
            ),
            ":6:",
            "security_associations[0].spi",
        ),
        // Unknown algorithm name on line 7.
        (
            format!(
                "home_link:\n  interface: eth0\n  address: 2001:db8:1::1\nhome_prefixes: [2001:db8:1::/64]\nsecurity_associations:\n  - spi: 1000\n    algorithm: md5\n    key_file: {}\n    home_prefixes: [2001:db8:1::100/128]\n",
                key.display()
            ),
            ":7:",
            "algorithm",
        ),
        // A virtual home link has no neighbours to answer: a proxy setting is a mistake.
        (
            format!(
                "home_link:\n  interface: eth0\n  address: 2001:db8:1::1\n  mode: virtual\n  proxy: kernel\nhome_prefixes: [2001:db8:1::/64]\nsecurity_associations:\n  - spi: 1000\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::100/128]\n",
                key.display()
            ),
            ":5:",
            "home_link.proxy",
        ),
        // Unknown home link mode.
        (
            format!(
                "home_link:\n  interface: eth0\n  address: 2001:db8:1::1\n  mode: bridge\nhome_prefixes: [2001:db8:1::/64]\nsecurity_associations:\n  - spi: 1000\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::100/128]\n",
                key.display()
            ),
            ":4:",
            "mode",
        ),
    ];
    for (text, line, field) in cases {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_home-agent"))
            .args(["--check-config", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&format!("{}{line}", cfg.display())), "{err}");
        assert!(err.contains(field), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A SIGHUP's file compared with the running one: home prefixes and the reply rate limit
/// change in place; the interface, bindings and the metrics listener wait for a restart;
/// associations always count as changed (keys are re-read).
#[test]
fn reload_diff_sorts_sections_into_live_and_restart() {
    use home_agent::agent::Agent;
    use home_agent::config::Config;
    let (dir, copy) = example_copy("diff");
    let text = std::fs::read_to_string(&copy).unwrap();
    let load = |text: &str| -> Config {
        std::fs::write(&copy, text).unwrap();
        Config::load(&copy).unwrap()
    };
    let running = load(&text);
    let same = running.reload_diff(&load(&text));
    assert_eq!(same.changed(), ["security_associations"]);
    assert!(same.needs_restart().is_empty(), "{same:?}");

    let tuned = text
        .replace(
            "  - 2001:db8:1::/64",
            "  - 2001:db8:1::/64\n  - 2001:db8:11::/64",
        )
        .replace("per_second: 20 ", "per_second: 30 ");
    assert_ne!(tuned, text);
    let diff = running.reload_diff(&load(&tuned));
    assert_eq!(
        diff.changed(),
        ["security_associations", "home_prefixes", "reply_rate_limit"]
    );
    assert!(diff.needs_restart().is_empty(), "{diff:?}");

    let moved = text
        .replace("interface: eth0", "interface: eth1")
        .replace("max_lifetime: 3600", "max_lifetime: 1800");
    assert_ne!(moved, text);
    let diff = running.reload_diff(&load(&moved));
    assert_eq!(diff.needs_restart(), ["home_link", "bindings"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
