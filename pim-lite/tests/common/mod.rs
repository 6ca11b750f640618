//! Helpers for pim-lite's namespace tests: links, daemons, captures, kernel MRT6 state.
#![allow(dead_code, unused_imports)]
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use mipcast_netns_tests::kstate::{mfc, mifs, MfcEntry};
use mipcast_netns_tests::{veth, Daemon, Netns};
use pim_lite::status::Status;

pub(crate) const METRICS: &str = "[::1]:9644";
/// The source and group every namespace test streams.
pub(crate) const S: &str = "2001:db8:1::1";
pub(crate) const G: &str = "ff35::200:ff:fe00:100";
pub(crate) const PORT: u16 = 5000;

pub(crate) fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

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

/// A UDP socket in the host that reports the arrival interface of each datagram.
pub(crate) struct Receiver(UdpSocket);

impl Receiver {
    pub(crate) fn bind(host: &Netns) -> Receiver {
        host.enter(|| {
            let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, PORT)).expect("bind receiver");
            let on: libc::c_int = 1;
            // SAFETY: setsockopt on our own socket with a live int.
            let rc = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_RECVPKTINFO,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "IPV6_RECVPKTINFO");
            Receiver(s)
        })
    }

    /// The next datagram's arrival ifindex and sequence number, or None after `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Option<(u32, u64)> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
        self.0.set_read_timeout(Some(timeout)).ok()?;
        let mut buf = [0u8; 2048];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        let msg = recvmsg::<SockaddrIn6>(
            self.0.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .ok()?;
        let (len, ifindex) = (
            msg.bytes,
            msg.cmsgs().ok()?.find_map(|c| match c {
                ControlMessageOwned::Ipv6PacketInfo(i) => Some(i.ipi6_ifindex),
                _ => None,
            })?,
        );
        let seq = std::str::from_utf8(buf.get(..len)?)
            .ok()?
            .strip_prefix("seq ")?
            .parse()
            .ok()?;
        Some((ifindex, seq))
    }

    /// Time until a datagram sent at or after `fresh` (a [`Sender::mark`]) arrives on
    /// `ifindex`, or None. Older ones are skipped: the kernel queues datagrams of an (S,G)
    /// without an MFC entry for up to 10 s and delivers them when one appears, so they prove
    /// nothing about the tree at the time of the check.
    pub(crate) fn first_on(&self, ifindex: u32, fresh: u64, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while let Some(left) = within.checked_sub(start.elapsed()) {
            let (i, seq) = self.next(left)?;
            if i == ifindex && seq >= fresh {
                return Some(start.elapsed());
            }
        }
        None
    }

    pub(crate) fn drain(&self) {
        while self.next(Duration::from_millis(1)).is_some() {}
    }
}

/// S sends a datagram "seq N" to G every 2 ms until dropped.
pub(crate) struct Sender {
    stop: Arc<AtomicBool>,
    next_seq: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    pub(crate) fn start(src: &Netns, ifname: &str) -> Sender {
        let ifindex = ifindex(src, ifname);
        let sock = src.enter(|| {
            let s = UdpSocket::bind((a(S), 0)).expect("bind sender");
            for (opt, v) in [
                (libc::IPV6_MULTICAST_HOPS, 16 as libc::c_int),
                (libc::IPV6_MULTICAST_IF, ifindex as libc::c_int),
            ] {
                // SAFETY: setsockopt on our own socket with a live int.
                let rc = unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::IPPROTO_IPV6,
                        opt,
                        (&v as *const libc::c_int).cast(),
                        4,
                    )
                };
                assert_eq!(rc, 0, "sender setsockopt {opt}");
            }
            s
        });
        let stop = Arc::new(AtomicBool::new(false));
        let next_seq = Arc::new(AtomicU64::new(0));
        let (flag, seq) = (Arc::clone(&stop), Arc::clone(&next_seq));
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let n = seq.fetch_add(1, Ordering::SeqCst);
                let _ = sock.send_to(format!("seq {n}").as_bytes(), (a(G), PORT));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Sender {
            stop,
            next_seq,
            thread: Some(thread),
        }
    }

    /// The sequence number of the next datagram: everything from it on is sent from now.
    pub(crate) fn mark(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Router {
    /// SIGKILL: no goodbye Hello, no Prunes; the kernel flushes the MRT6 table when the
    /// socket closes.
    pub(crate) fn kill9(mut self) {
        self.daemon
            .signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
            .expect("pim-lite dies on SIGKILL");
    }
}

/// A bridge `br0` in `lan` (MLD snooping off, so multicast floods like on a hub) and a port
/// `port` on it wired to `ifname` in `ns` with `addr`.
pub(crate) fn bridge_port(lan: &Netns, port: &str, ns: &Netns, ifname: &str, addr: &str) {
    if lan.try_sh("ip link show br0").is_err() {
        lan.sh("ip link add br0 type bridge mcast_snooping 0 && ip link set br0 up");
    }
    veth(ns, ifname, addr, lan, port, "");
    lan.sh(&format!("ip link set {port} master br0"));
    wait_ready(ns, ifname);
}
