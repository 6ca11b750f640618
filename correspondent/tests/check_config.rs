//! `--check-config` on the shipped example and on broken files; `--help` explains.
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
    let p = std::env::temp_dir().join(format!("cn-check-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(p.join("keys")).unwrap();
    p
}

fn check(cfg: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_correspondent"))
        .args(["--check-config", "-c"])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn example_config_passes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/correspondent.yaml");
    let dir = temp("ok");
    let copy = dir.join("correspondent.yaml");
    std::fs::copy(&example, &copy).unwrap();
    let key = dir.join("keys/cn-mma1.key");
    std::fs::write(&key, "5e".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check(&copy);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
}

#[test]
fn broken_config_names_file_line_and_field() {
    let dir = temp("bad");
    let key = dir.join("keys/k");
    std::fs::write(&key, "secret").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.join("cn.yaml");
    let head = "correspondent:\n  interface: eth0\n  address: 2001:db8:c::1\nmmas:\n";
    let cases = [
        // Reserved SPI on line 6.
        (
            format!(
                "{head}  - address: 2001:db8:2::1/128\n    spi: 12\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::/64]\n",
                key.display()
            ),
            "mmas[0].spi",
        ),
        // The MMA's prefix covers our own address.
        (
            format!(
                "{head}  - address: 2001:db8::/32\n    spi: 2000\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::/64]\n",
                key.display()
            ),
            "mmas[0].address",
        ),
        // Unknown key.
        (
            format!(
                "{head}  - address: 2001:db8:2::1/128\n    spi: 2000\n    algorithm: hmac-sha1-96\n    key_file: {}\n    home_prefixes: [2001:db8:1::/64]\n    group: ff35::1\n",
                key.display()
            ),
            "group",
        ),
    ];
    for (text, field) in cases {
        std::fs::write(&cfg, text).unwrap();
        let out = check(&cfg);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{field}: accepted");
        assert!(err.contains("cn.yaml:"), "{err}");
        assert!(err.contains(field), "{field}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_explains_the_daemon() {
    let out = Command::new(env!("CARGO_BIN_EXE_correspondent"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("correspondent agent") && text.contains("--check-config"),
        "{text}"
    );
}
