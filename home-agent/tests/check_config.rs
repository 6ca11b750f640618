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

#[test]
fn example_config_passes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/home-agent.yaml");
    // The example names key files relative to its own directory: check a copy with keys
    // beside it.
    let dir = temp("ok");
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
