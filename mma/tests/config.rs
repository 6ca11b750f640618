//! The example configuration is accepted by `--check-config`; mistakes are reported with file,
//! line, column and field path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The example's key file is relative (`keys/terminals.key`): put one beside the copy.
fn with_key(text: &str, dir: &std::path::Path) -> String {
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let key = dir.join("keys/terminals.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff".repeat(2)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The route-optimisation example's association with a correspondent.
    let key = dir.join("keys/cn-mma1.key");
    std::fs::write(&key, "5e".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    text.to_owned()
}

fn check(text: &str, name: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("mma-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mma.yaml");
    std::fs::write(&path, with_key(text, &dir)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mma"))
        .args(["--check-config", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

const EXAMPLE: &str = include_str!("../../configs/mma.yaml");

#[test]
fn example_config_is_accepted() {
    let out = check(EXAMPLE, "ok");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn errors_name_the_line_and_field() {
    let bad = EXAMPLE
        .replace("group_prefix: ff35::/64", "group_prefix: 2001:db8::/64")
        .replace("max_grace: 60 ", "max_grace: 5  ");
    let out = check(&bad, "bad");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| EXAMPLE.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    assert!(
        err.contains(&format!("mma.yaml:{}:", line_of("group_prefix:")))
            && err.contains("group_prefix: must be a multicast /64"),
        "{err}"
    );
    assert!(
        err.contains("forwarding.default_grace: is longer than forwarding.max_grace"),
        "{err}"
    );
}

/// The example's commented `peers:` block, switched on.
fn with_peers(address: &str, spi: &str) -> String {
    EXAMPLE
        .replace("# peers:", "peers:")
        .replace(
            "#   - address: 2001:db8:ff::2",
            &format!("  - address: {address}"),
        )
        .replace("#     spi: 5000", &format!("    spi: {spi}"))
        .replace("#     algorithm:", "    algorithm:")
        .replace(
            "#     key_file: keys/mma-peers.key",
            "    key_file: keys/terminals.key",
        )
}

#[test]
fn peers_for_context_transfer_are_validated() {
    let out = check(&with_peers("2001:db8:ff::2", "5000"), "peers-ok");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let own = EXAMPLE
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let terminal_spi = EXAMPLE
        .lines()
        .find_map(|l| l.trim().strip_prefix("- spi: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = check(&with_peers(&own, &terminal_spi), "peers-bad");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("peers[0].address: is this MMA's own address"),
        "{err}"
    );
    assert!(
        err.contains("peers[0].spi: is also a terminal's security association"),
        "{err}"
    );
}

/// The example's commented `route_optimisation:` block, switched on.
fn with_ro() -> String {
    let mut on = false;
    EXAMPLE
        .lines()
        .map(|l| {
            on |= l == "# route_optimisation:";
            let line = if on {
                l.strip_prefix("# ").unwrap_or(l)
            } else {
                l
            };
            on &= !l.starts_with("#   max_pairs");
            format!("{line}\n")
        })
        .collect()
}

#[test]
fn route_optimisation_mistakes_name_their_field() {
    let good = with_ro();
    assert!(good.contains("\nroute_optimisation:\n"), "{good}");
    let out = check(&good, "ro-ok");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = with_ro()
        .replace("  lifetime: 60 ", "  lifetime: 61 ")
        .replace("      spi: 2000 ", "      spi: 20   ");
    let out = check(&bad, "ro");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("route_optimisation.lifetime"), "{err}");
    assert!(
        err.contains("route_optimisation.correspondents[0].spi"),
        "{err}"
    );
}

/// The seconds after `key:` on its line in a YAML example (comments after it ignored).
fn yaml_secs(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split('#').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{key}:` in the example"))
}

/// Issue 11, "Bad input": a grace period beyond the MMA's maximum is refused (130), so the
/// terminal must not ask for more than MMAs allow by default: the examples and the MMA's
/// built-in default agree.
#[test]
fn terminal_grace_is_within_the_mma_maximum() {
    let asked = yaml_secs(
        include_str!("../../configs/mobile-node.yaml"),
        "forwarding_grace_secs",
    );
    let max = yaml_secs(EXAMPLE, "max_grace");
    let built_in = mma::config::Forwarding::default().max_grace.as_secs();
    assert!(
        asked <= max && asked <= built_in,
        "mobile node asks {asked} s; MMA example allows {max} s, built-in {built_in} s"
    );
}

/// A SIGHUP's file compared with the running one: forwarding and the reply rate limit change
/// in place; the address and the metrics listener wait for a restart; associations always
/// count as changed (keys are re-read).
#[test]
fn reload_diff_sorts_sections_into_live_and_restart() {
    use mma::config::Config;
    let dir = std::env::temp_dir().join(format!("mma-config-{}-diff", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mma.yaml");
    let load = |text: &str| -> Config {
        std::fs::write(&path, with_key(text, &dir)).unwrap();
        mipcast_daemon::config::load(&path).unwrap()
    };
    let running = load(EXAMPLE);
    let same = running.reload_diff(&load(EXAMPLE));
    assert_eq!(same.changed(), ["security_associations"]);
    assert!(same.needs_restart().is_empty(), "{same:?}");

    let tuned = EXAMPLE
        .replace("default_grace: 10 ", "default_grace: 20 ")
        .replace("per_second: 20 ", "per_second: 30 ");
    assert_ne!(tuned, EXAMPLE);
    let diff = running.reload_diff(&load(&tuned));
    assert_eq!(
        diff.changed(),
        ["forwarding", "reply_rate_limit", "security_associations"]
    );
    assert!(diff.needs_restart().is_empty(), "{diff:?}");

    let moved = EXAMPLE
        .replace("address: 2001:db8:2::2", "address: 2001:db8:2::3")
        .replace("\"[::1]:9642\"", "\"[::1]:9652\"");
    assert_ne!(moved, EXAMPLE);
    let diff = running.reload_diff(&load(&moved));
    assert_eq!(diff.needs_restart(), ["address", "metrics"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
