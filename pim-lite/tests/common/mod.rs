//! Helpers for pim-lite's namespace tests: links, daemons, captures, kernel MRT6 state.
#![allow(dead_code)]
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use mipcast_netns_tests::kstate::{mfc, mifs, MfcEntry};
use mipcast_netns_tests::{veth, Daemon, Netns};
use pim_lite::status::Status;

pub(crate) const METRICS: &str = "[::1]:9644";

pub(crate) fn ifindex(ns: &Netns, ifname: &str) -> u32 {
    ns.sh(&format!("cat /sys/class/net/{ifname}/ifindex"))
        .trim()
        .parse()
        .expect("ifindex")
}

/// Waits until IPv6 on `ifname` is usable (link-local address and multicast route).
pub(crate) fn wait_ready(ns: &Netns, ifname: &str) {
    for _ in 0..100 {
        let routes = ns.sh(&format!("ip -6 route show table local dev {ifname}"));
        let addrs = ns.sh(&format!("ip -6 -o addr show dev {ifname} scope link"));
        if routes.contains("ff00::/8") && addrs.contains("inet6") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("IPv6 on {ifname} in {} never became ready", ns.name());
}

pub(crate) fn link(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    veth(a, a_if, a_addr, b, b_if, b_addr);
    wait_ready(a, a_if);
    wait_ready(b, b_if);
}

pub(crate) fn link_local(ns: &Netns, ifname: &str) -> Ipv6Addr {
    let out = ns.sh(&format!("ip -6 -o addr show dev {ifname} scope link"));
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("link-local address")
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pim-lite-netns");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// Polls `f` every 50 ms until it returns Some, or panics with `what` after `timeout`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running pim-lite in a namespace, with its log file.
pub(crate) struct Router {
    pub daemon: Daemon,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Router {
    pub(crate) fn start(ns: &Netns, name: &str, config: &str) -> Router {
        let cfg = scratch(&format!("{}-{name}.yaml", ns.name()));
        std::fs::write(&cfg, config).expect("write config");
        let log = scratch(&format!("{}-{name}.log", ns.name()));
        let child = ns.spawn(
            env!("CARGO_BIN_EXE_pim-lite"),
            &[
                "-c",
                cfg.to_str().expect("utf-8"),
                "--log-level",
                "info,pim_lite=debug",
            ],
            Some(&log),
        );
        let mut r = Router {
            daemon: Daemon(child),
            log,
            config: cfg,
        };
        let addr: SocketAddr = METRICS.parse().expect("addr");
        let ok = (0..100).any(|_| {
            if let Ok(Some(st)) = r.daemon.0.try_wait() {
                panic!("pim-lite exited ({st}):\n{}", r.log_text());
            }
            let up = ns.enter(|| mipcast_daemon::metrics::fetch(addr, "/healthz").is_ok());
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
            up
        });
        assert!(
            ok,
            "pim-lite in {} never answered /healthz:\n{}",
            ns.name(),
            r.log_text()
        );
        r
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; asserts a clean exit.
    pub(crate) fn stop(mut self) -> String {
        let st = self
            .daemon
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(5))
            .expect("pim-lite exits on SIGTERM");
        let log = self.log_text();
        assert!(st.success(), "pim-lite exit status {st}:\n{log}");
        log
    }
}

pub(crate) fn status(ns: &Netns) -> Status {
    let addr: SocketAddr = METRICS.parse().expect("addr");
    let body = ns
        .enter(|| mipcast_daemon::metrics::fetch(addr, "/status"))
        .expect("fetch /status");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status: {e}: {body}"))
}

pub(crate) fn metrics(ns: &Netns) -> String {
    let addr: SocketAddr = METRICS.parse().expect("addr");
    ns.enter(|| mipcast_daemon::metrics::fetch(addr, "/metrics"))
        .expect("fetch /metrics")
}

/// The value of one sample line of /metrics (exact name and labels), 0 when absent.
pub(crate) fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

pub(crate) fn neighbors(ns: &Netns) -> usize {
    status(ns)
        .interfaces
        .iter()
        .map(|i| i.neighbors.len())
        .sum()
}

/// tcpdump writing a pcap in a namespace; stopped with SIGINT so the file is complete.
pub(crate) struct Capture {
    daemon: Daemon,
    pub file: PathBuf,
}

impl Capture {
    pub(crate) fn start(ns: &Netns, ifname: &str) -> Capture {
        let file = scratch(&format!("{}-{ifname}.pcap", ns.name()));
        let log = scratch(&format!("{}-{ifname}.tcpdump.log", ns.name()));
        let child = ns.spawn(
            "tcpdump",
            &[
                "-i",
                ifname,
                "-n",
                "--immediate-mode",
                "-U",
                "-w",
                file.to_str().expect("utf-8"),
            ],
            Some(&log),
        );
        let daemon = Daemon(child);
        wait_for("tcpdump to start", Duration::from_secs(5), || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("listening on"))
                .then_some(())
        });
        Capture { daemon, file }
    }

    pub(crate) fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(200));
        self.daemon
            .signal_and_wait(libc::SIGINT, Duration::from_secs(5))
            .expect("tcpdump exits");
        self.file.clone()
    }
}

/// tshark's fields of the packets matching `filter`, one Vec per packet.
pub(crate) fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Frames matching `filter` that tshark has any expert remark on or finds malformed.
pub(crate) fn tshark_problems(pcap: &Path, filter: &str) -> Vec<String> {
    tshark_fields(
        pcap,
        filter,
        &[
            "frame.number",
            "frame.protocols",
            "_ws.expert.severity",
            "_ws.expert.message",
            "_ws.malformed",
        ],
    )
    .into_iter()
    .filter(|c| {
        let protocols = c.get(1).map_or("", String::as_str);
        let sev = c.get(2).map_or("", String::as_str);
        let malformed = c.get(4).map_or("", String::as_str);
        !sev.trim().is_empty() || !malformed.is_empty() || protocols.contains("malformed")
    })
    .map(|c| c.join("\t"))
    .collect()
}

pub(crate) fn tshark_verbose(pcap: &Path, filter: &str) -> String {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-V"])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs tests/scapy_decode.py on `pcap` and returns its JSON report.
pub(crate) fn scapy_report(pcap: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scapy_decode.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .arg(pcap)
        .output()
        .expect("run /usr/bin/python3");
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scapy output {e}: {}", String::from_utf8_lossy(&out.stdout)))
}
