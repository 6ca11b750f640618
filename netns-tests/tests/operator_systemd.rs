//! The systemd units in `dist/systemd/` and what they promise: `systemd-analyze verify` finds
//! nothing to say about them; the daemons run (and register a terminal, and clean up) as an
//! unprivileged user with only CAP_NET_ADMIN and CAP_NET_RAW, telling systemd they are ready
//! through $NOTIFY_SOCKET; and a daemon missing one of those capabilities names it.
//!
//! Runs the daemon binaries of the same build (`cargo build --workspace` first when running
//! this file alone).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mipcast_netns_tests::require_root;
use mipcast_netns_tests::site::{addr, daemon_dir, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;

const DAEMONS: [&str; 5] = [
    "home-agent",
    "mma",
    "mobile-node",
    "pim-lite",
    "correspondent",
];
/// The capabilities the units grant (setpriv's spelling).
const CAPS: &str = "net_admin,net_raw";
/// nobody: an unprivileged user every Debian system has.
const NOBODY: u32 = 65534;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/systemd")
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mipcast-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "needs {tool} (Debian package {package}; .ci/run installs it)"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs systemd-analyze"]
fn units_pass_systemd_analyze_verify() {
    require_tool("systemd-analyze", "systemd");
    // A root directory laid out as the package installs it: systemd's own units (for the
    // targets ours refer to), our units, the daemons in /usr/bin and kill in /bin.
    let root = scratch("sdroot");
    let system = root.join("usr/lib/systemd");
    std::fs::create_dir_all(&system).unwrap();
    copy_tree(Path::new("/usr/lib/systemd/system"), &system);
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    let bins = daemon_dir().expect("daemon binaries");
    let mut names = Vec::new();
    for daemon in DAEMONS {
        let unit = format!("mipcast-{daemon}.service");
        let text = std::fs::read_to_string(units_dir().join(&unit))
            .unwrap_or_else(|e| panic!("{unit}: {e}"));
        for line in [
            "Type=notify",
            &format!("ExecStart=/usr/bin/{daemon} -c /etc/mipcast/{daemon}.yaml"),
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "User=mipcast",
            "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW",
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
            "ProtectSystem=strict",
            "StateDirectory=mipcast",
            "ConfigurationDirectory=mipcast",
        ] {
            assert!(text.lines().any(|l| l == line), "{unit} lacks `{line}`");
        }
        std::fs::write(units.join(&unit), &text).unwrap();
        let dst = root.join("usr/bin").join(daemon);
        std::fs::hard_link(bins.join(daemon), &dst)
            .or_else(|_| std::fs::copy(bins.join(daemon), &dst).map(|_| ()))
            .unwrap();
        names.push(unit);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(&names)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&root).unwrap();
    // Unknown keys and unparsable values are warnings with exit status 0: any output fails.
    assert!(
        out.status.success() && report.trim().is_empty(),
        "systemd-analyze verify:\n{report}"
    );
}

/// `setpriv` arguments that run a program as `uid` with exactly `caps` (setpriv's names)
/// inheritable, ambient and in the bounding set: what the units' AmbientCapabilities= and
/// CapabilityBoundingSet= give a daemon.
fn setpriv(uid: u32, caps: &str) -> Vec<String> {
    let set = |c: &str| {
        if c.is_empty() {
            "-all".to_owned()
        } else {
            format!(
                "-all,{}",
                c.split(',')
                    .map(|c| format!("+{c}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    };
    vec![
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        format!("--inh-caps={}", set(caps)),
        format!("--ambient-caps={}", set(caps)),
        format!("--bounding-set={}", set(caps)),
        "--".into(),
    ]
}

/// A directory of wrappers named like the daemons that run the real ones through setpriv
/// (and with $NOTIFY_SOCKET set), for `SiteOptions::bin_dir`.
fn wrappers(dir: &Path, uid: u32, caps: &str, notify: &Path) -> PathBuf {
    let real = daemon_dir().expect("daemon binaries");
    let wrap = dir.join("bin");
    std::fs::create_dir_all(&wrap).unwrap();
    for daemon in DAEMONS {
        let script = format!(
            "#!/bin/sh\nNOTIFY_SOCKET={} exec setpriv {} {} \"$@\"\n",
            notify.display(),
            setpriv(uid, caps).join(" "),
            real.join(daemon).display()
        );
        let p = wrap.join(daemon);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    wrap
}

fn chown_r(path: &Path, uid: u32) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root"]
fn daemons_run_as_nobody_with_only_net_admin_and_net_raw() {
    require_root();
    require_tool("setpriv", "util-linux");
    let dir = scratch("caps-ok");
    // The service manager's end of the readiness protocol.
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut opts = SiteOptions::new("cap");
    opts.bin_dir = Some(wrappers(&dir, NOBODY, CAPS, &notify_path));
    let mut site = Site::build(&opts).unwrap_or_else(|e| panic!("{e}"));
    // Configs, keys and state files belong to the daemons' user, as in /etc/mipcast and
    // /var/lib/mipcast under the units.
    chown_r(&site.dir, NOBODY);
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));

    let mut ready = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 256];
    while ready < 8 && Instant::now() < deadline {
        if let Ok(n) = notify.recv(&mut buf) {
            assert_eq!(&buf[..n], b"READY=1");
            ready += 1;
        }
    }
    assert_eq!(ready, 8, "READY=1 from every daemon of the site");

    // Each runs as nobody with exactly the two capabilities.
    for node in Node::ALL.into_iter().filter(|n| n.daemon().is_some()) {
        let pid = daemon_pid(&site, node).unwrap_or_else(|| panic!("{} pid", node.name()));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains(&format!("Uid:\t{NOBODY}\t")), "{status}");
        assert!(status.contains("CapEff:\t0000000000003000"), "{status}");
    }

    // And they do their job: the terminal registers through mma1 with the home agent.
    wait_for(
        "the terminal bound with mma1 and the home agent",
        Duration::from_secs(15),
        || {
            let st = site.status(Node::Mn).ok()?;
            let regs = st["registrations"].as_array()?.clone();
            let bound = |peer: std::net::Ipv6Addr| {
                regs.iter()
                    .any(|r| r["peer"] == peer.to_string() && r["state"] == "bound")
            };
            (bound(addr::MMA1) && bound(addr::HA)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));

    // A clean stop still removes everything they installed.
    for (node, st) in site.stop_daemons(Duration::from_secs(10)) {
        assert!(
            st.is_some_and(|s| s.success()),
            "{} in {}: {st:?}",
            node.daemon().unwrap_or("?"),
            node.name()
        );
    }
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
    drop(site);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The pid of the daemon (the setpriv wrapper execs it) running in `node`'s namespace.
fn daemon_pid(site: &Site, node: Node) -> Option<u32> {
    let bin = node.daemon()?;
    let out = Command::new("ip")
        .args(["netns", "pids", site.ns(node).name()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == bin)
        })
}

#[test]
#[ignore = "needs root"]
fn a_daemon_without_a_capability_names_the_one_it_lacks() {
    require_root();
    require_tool("setpriv", "util-linux");
    let site = Site::build(&SiteOptions::new("nocap")).unwrap_or_else(|e| panic!("{e}"));
    chown_r(&site.dir, NOBODY);
    let bins = daemon_dir().unwrap();
    for node in [Node::Ha, Node::Mma1, Node::Mn, Node::A1] {
        let daemon = node.daemon().unwrap();
        for (caps, missing, present) in [
            ("net_admin", "CAP_NET_RAW", "CAP_NET_ADMIN"),
            ("net_raw", "CAP_NET_ADMIN", "CAP_NET_RAW"),
        ] {
            let mut args = setpriv(NOBODY, caps);
            args.push(bins.join(daemon).to_string_lossy().into_owned());
            args.extend([
                "-c".into(),
                site.config_path(node).to_string_lossy().into_owned(),
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let t = Instant::now();
            let out = site.ns(node).cmd("setpriv", &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{daemon} with {caps}: {err}");
            assert!(
                err.contains(&format!(
                    "{daemon}: missing capability {missing} (needed for "
                )),
                "{daemon} with only {caps}: {err}"
            );
            assert!(
                !err.contains(&format!("missing capability {present}")),
                "{err}"
            );
            assert!(t.elapsed() < Duration::from_secs(5), "refused at once");
        }
    }
    // Nothing was installed by the refused starts.
    assert_eq!(site.leftovers().unwrap(), Vec::<String>::new());
}
