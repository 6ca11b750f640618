#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::fs;
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::TempDir;
use mipcast_daemon::config::{
    self, secs, ConfigError, Ipv6Prefix, KeyError, SecretKey, Validate, Validator,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HomeAgent {
    name: String,
    #[serde(with = "secs")]
    lifetime: Duration,
    home_prefixes: Vec<Ipv6Prefix>,
    security_associations: Vec<SecurityAssociation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityAssociation {
    spi: u32,
    peer: Ipv6Addr,
    #[serde(default)]
    key_file: Option<SecretKey>,
}

fn host_name(name: &str) -> Result<&str, String> {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(name)
    } else {
        Err(format!(
            "`{name}` is not a host name (letters, digits and '-')"
        ))
    }
}

impl Validate for HomeAgent {
    fn validate(&self, v: &mut Validator) {
        v.check("name", host_name(&self.name));
        for (i, prefix) in self.home_prefixes.iter().enumerate() {
            if prefix.prefix_len() != 64 {
                v.error(
                    format!("home_prefixes[{i}]"),
                    format!("{prefix} is not a /64"),
                );
            }
        }
        for (i, sa) in self.security_associations.iter().enumerate() {
            if sa.spi < 256 {
                v.error(
                    format!("security_associations[{i}].spi"),
                    format!("SPI {} is reserved (0 to 255)", sa.spi),
                );
            }
        }
    }
}

/// Line N of the file is element N-1; every test edits one line of this known-good file.
const GOOD: [&str; 10] = [
    "# home agent test config",
    "name: ha1",
    "lifetime: 60",
    "home_prefixes:",
    "  - 2001:db8:1::/64",
    "security_associations:",
    "  - spi: 300",
    "    peer: 2001:db8:1::10",
    "  - spi: 301",
    "    peer: 2001:db8:1::11",
];

fn write_config(dir: &TempDir, edits: &[(usize, &str)]) -> std::path::PathBuf {
    let mut lines = GOOD.map(str::to_owned).to_vec();
    for (line, text) in edits {
        lines[line - 1] = (*text).to_owned();
    }
    let path = dir.path().join("home-agent.yaml");
    fs::write(&path, lines.join("\n") + "\n").expect("write config");
    path
}

fn error_text(path: &Path) -> String {
    match config::load::<HomeAgent>(path) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn good_file_loads() {
    let dir = TempDir::new("cfg-good");
    let path = write_config(&dir, &[]);
    let cfg: HomeAgent = config::load(&path).expect("valid config");
    assert_eq!(cfg.name, "ha1");
    assert_eq!(cfg.lifetime, Duration::from_secs(60));
    assert_eq!(cfg.home_prefixes[0].to_string(), "2001:db8:1::/64");
    assert_eq!(cfg.security_associations[1].spi, 301);
    assert_eq!(
        cfg.security_associations[1].peer,
        "2001:db8:1::11".parse::<Ipv6Addr>().expect("addr")
    );
}

#[test]
fn wrong_type_in_nested_list_item_names_file_line_column_and_path() {
    let dir = TempDir::new("cfg-type");
    let path = write_config(&dir, &[(9, "  - spi: three hundred")]);
    assert_eq!(
        error_text(&path),
        format!(
            "{}:9:10: security_associations[1].spi: invalid type: string \"three hundred\", expected u32",
            path.display()
        )
    );
}

#[test]
fn unknown_field_is_rejected_at_the_key() {
    let dir = TempDir::new("cfg-unknown");
    let path = write_config(&dir, &[(10, "    peerr: 2001:db8:1::11")]);
    assert_eq!(
        error_text(&path),
        format!(
            "{}:10:5: security_associations[1].peerr: unknown field `peerr`, expected one of `spi`, `peer`, `key_file`",
            path.display()
        )
    );
}

#[test]
fn bad_prefix_is_a_located_parse_error() {
    let dir = TempDir::new("cfg-prefix");
    let path = write_config(&dir, &[(5, "  - 2001:db8::/129")]);
    assert_eq!(
        error_text(&path),
        format!(
            "{}:5:5: home_prefixes[0]: `129` is not an IPv6 prefix length (0 to 128)",
            path.display()
        )
    );
}

#[test]
fn semantic_errors_are_all_reported_with_their_lines() {
    let dir = TempDir::new("cfg-semantic");
    let path = write_config(
        &dir,
        &[
            (2, "name: 'ha 1'"),
            (5, "  - 2001:db8:1::/72"),
            (9, "  - {spi: 100, peer: \"2001:db8:1::11\"}"),
            (10, ""),
        ],
    );
    let err = config::load::<HomeAgent>(&path).expect_err("invalid");
    let ConfigError::Invalid { problems } = &err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(problems.len(), 3);
    assert_eq!(
        err.to_string(),
        format!(
            "{f}:2:7: name: `ha 1` is not a host name (letters, digits and '-')\n\
             {f}:5:5: home_prefixes[0]: 2001:db8:1::/72 is not a /64\n\
             {f}:9:11: security_associations[1].spi: SPI 100 is reserved (0 to 255)",
            f = path.display()
        )
    );
}

#[test]
fn syntax_error_missing_field_and_missing_file() {
    let dir = TempDir::new("cfg-syntax");
    let path = write_config(&dir, &[(3, "lifetime: 60: 70")]);
    let text = error_text(&path);
    assert!(
        text.starts_with(&format!(
            "{}:3:13: mapping values are not allowed",
            path.display()
        )),
        "{text}"
    );

    let path = write_config(&dir, &[(2, "")]);
    assert_eq!(
        error_text(&path),
        format!("{}:3:1: missing field `name`", path.display())
    );

    let missing = dir.path().join("absent.yaml");
    let text = error_text(&missing);
    assert!(
        text.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{text}"
    );
}

fn key_file(dir: &TempDir, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, content).expect("write key");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn key_files_hex_or_raw_and_never_printed() {
    let dir = TempDir::new("keys");
    let hex = key_file(
        &dir,
        "hex.key",
        b"00112233445566778899aabbccddeeff00112233\n",
        0o600,
    );
    let key = SecretKey::load(&hex).expect("hex key");
    assert_eq!(key.expose().len(), 20);
    assert_eq!(&key.expose()[..4], &[0x00, 0x11, 0x22, 0x33]);
    assert_eq!(format!("{key:?}"), "SecretKey(<20 bytes>)");

    let raw = key_file(&dir, "raw.key", &[0xde, 0xad, b'x', 0xff], 0o400);
    assert_eq!(
        SecretKey::load(&raw).expect("raw key").expose(),
        &[0xde, 0xad, b'x', 0xff]
    );

    let empty = key_file(&dir, "empty.key", b" \n", 0o600);
    assert!(matches!(
        SecretKey::load(&empty),
        Err(KeyError::Empty { .. })
    ));
}

#[test]
fn key_files_readable_by_others_are_refused() {
    let dir = TempDir::new("keys-mode");
    let open = key_file(&dir, "open.key", b"0011", 0o644);
    let err = SecretKey::load(&open).expect_err("world-readable");
    assert_eq!(
        err.to_string(),
        format!(
            "{p}: key file is accessible to all users (mode 0644); refusing to use it, run `chmod 600 {p}`",
            p = open.display()
        )
    );
    let writable = key_file(&dir, "writable.key", b"0011", 0o602);
    assert!(matches!(
        SecretKey::load(&writable),
        Err(KeyError::Exposed { mode: 0o602, .. })
    ));

    // Through a config file, the refusal carries the field path and line.
    let path = write_config(&dir, &[(10, &format!("    key_file: {}", open.display()))]);
    let text = error_text(&path);
    assert!(
        text.starts_with(&format!(
            "{}:10:15: security_associations[1].key_file: {}: key file is accessible to all users",
            path.display(),
            open.display()
        )),
        "{text}"
    );

    let private = key_file(&dir, "private.key", b"a1b2c3d4", 0o600);
    let path = write_config(
        &dir,
        &[(
            10,
            &format!(
                "    peer: 2001:db8:1::11\n    key_file: {}",
                private.display()
            ),
        )],
    );
    let cfg: HomeAgent = config::load(&path).expect("private key file accepted");
    let key = cfg.security_associations[1]
        .key_file
        .as_ref()
        .expect("key loaded");
    assert_eq!(key.expose(), &[0xa1, 0xb2, 0xc3, 0xd4]);
}

#[test]
fn relative_key_file_is_relative_to_the_config_file() {
    let dir = TempDir::new("relkey");
    std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
    key_file(&dir, "keys/rel.key", b"0a0b", 0o600);
    // The test's working directory is the crate, not `dir`: only the config's directory can
    // make `keys/rel.key` resolve.
    let path = write_config(
        &dir,
        &[(10, "    peer: 2001:db8:1::11\n    key_file: keys/rel.key")],
    );
    let cfg: HomeAgent = config::load(&path).expect("relative key file found next to the config");
    let key = cfg.security_associations[1]
        .key_file
        .as_ref()
        .expect("key loaded");
    assert_eq!(key.expose(), &[0x0a, 0x0b]);
}
