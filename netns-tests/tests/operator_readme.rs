//! The README's first daemon commands, run as written on a copy of `configs/` (as a new user
//! on a fresh clone would), and `keygen`'s refusals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mipcast_netns_tests::site::daemon_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch directory holding a copy of `configs/` (example YAML only, no keys).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mipcast-readme-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&p, dir.join("configs").join(p.file_name().unwrap())).unwrap();
            }
        }
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The indented command block of the README's "Running the daemons" section, comments cut.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("## Running the daemons")
        .nth(1)
        .expect("README has a 'Running the daemons' section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    "))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn run(cwd: &Path, argv: &[String]) -> Output {
    let bin = daemon_dir().expect("daemon binaries (cargo build the workspace)");
    Command::new(bin.join(&argv[0]))
        .args(&argv[1..])
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn readme_commands_work_on_a_fresh_copy_of_configs() {
    let scratch = Scratch::new("ok");
    let cwd = &scratch.0;

    // Before keygen the check fails, and says which command makes the missing key.
    let out = run(
        cwd,
        &argv("home-agent -c configs/home-agent.yaml --check-config"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("no such key file; make one with `home-agent keygen configs/keys/mn1.key`"),
        "{}",
        text(&out)
    );

    let commands = readme_commands();
    let (mut keygens, mut checks) = (0, 0);
    for cmd in &commands {
        let is_keygen = cmd.get(1).is_some_and(|a| a == "keygen");
        let is_check = cmd.iter().any(|a| a == "--check-config");
        // Running a daemon or asking a running one for its status is not for a test box.
        if !is_keygen && !is_check {
            continue;
        }
        let out = run(cwd, cmd);
        assert!(out.status.success(), "`{}`: {}", cmd.join(" "), text(&out));
        if is_keygen {
            keygens += 1;
        } else {
            checks += 1;
            assert!(text(&out).contains("configuration OK"), "{}", text(&out));
        }
    }
    assert!(keygens >= 4 && checks == 5, "README block: {commands:?}");

    for (name, hex_len) in [
        ("mn1.key", 64),
        ("mn2.key", 40),
        ("terminals.key", 64),
        ("cn-mma1.key", 64),
    ] {
        let p = cwd.join("configs/keys").join(name);
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        let key = std::fs::read_to_string(&p).unwrap();
        assert_eq!(key.trim().len(), hex_len, "{name}: {key}");
        assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    }
    let a = std::fs::read_to_string(cwd.join("configs/keys/mn1.key")).unwrap();
    let b = std::fs::read_to_string(cwd.join("configs/keys/terminals.key")).unwrap();
    assert_ne!(a, b, "two keygen runs made the same key");
}

#[test]
fn keygen_refuses_to_overwrite_bad_algorithms_and_unwritable_dirs() {
    let scratch = Scratch::new("bad");
    let cwd = &scratch.0;
    let key = cwd.join("configs/keys/k");

    assert!(run(cwd, &argv("mma keygen configs/keys/k"))
        .status
        .success());
    let before = std::fs::read(&key).unwrap();
    let out = run(cwd, &argv("mma keygen configs/keys/k"));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("configs/keys/k: already exists"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before, "overwritten");

    let out = run(
        cwd,
        &argv("mobile-node keygen configs/keys/md5 --algorithm md5"),
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("invalid value 'md5'")
            && msg.contains("hmac-sha1-96")
            && msg.contains("hmac-sha256-128"),
        "{msg}"
    );
    assert!(!cwd.join("configs/keys/md5").exists());

    // A directory nobody may write to. Root ignores permissions, so run keygen as nobody then.
    let ro = cwd.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(cwd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = daemon_dir().unwrap().join("home-agent");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd.arg("keygen").arg(ro.join("k")).output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("cannot create the key file in") && msg.contains("ermission denied"),
        "{msg}"
    );
    assert!(!ro.join("k").exists());

    let out = run(cwd, &argv("pim-lite keygen configs/keys/p"));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("pim-lite has no security associations"),
        "{}",
        text(&out)
    );
}
