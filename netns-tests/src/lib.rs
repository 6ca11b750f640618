//! Throwaway network-namespace topologies for mipcast's integration tests and benchmarks.
//!
//! A [`Netns`] is created with `ip netns add` and deleted when dropped, so a failing test leaves
//! nothing behind. Commands run inside with `ip netns exec`; Rust code (netlink and raw
//! sockets) runs inside with [`Netns::enter`], which moves a fresh thread into the namespace:
//! sockets belong to the namespace of the thread that creates them.
// Test support: what cannot be set up is a failed test, so panicking is how this crate reports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod bench;
pub mod capture;
pub mod cleanup;
pub mod delay;
pub mod flow;
pub mod kstate;
pub mod mh_client;
pub mod site;
pub mod wait;

use std::fs::File;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// True when the caller may build namespaces; for the benchmark and demo binaries, which say
/// why and exit when it is false.
pub fn have_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For tests marked `#[ignore = "needs root"]`: a plain `cargo test` reports them as ignored,
/// and a run that asks for them (`--include-ignored`, as run-tests.sh does) without root fails
/// here instead of passing without having tested anything.
pub fn require_root() {
    assert!(
        have_root(),
        "needs root to build network namespaces (run ./netns-tests/run-tests.sh as root)"
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that is deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named `mc<tag>_<pid>_<n>`, loopback up, forwarding on, DAD off (so
    /// addresses are usable at once).
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("mc{tag}_{}_{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        cleanup::register(&name);
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns.sh(
            "sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0 \
               net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.keep_addr_on_down=1",
        );
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command in the namespace and returns its output, whatever its exit status.
    pub fn cmd(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs a shell command in the namespace; Ok(stdout) on success, Err(stderr) otherwise.
    pub fn try_sh(&self, script: &str) -> Result<String, String> {
        let out = self.cmd("sh", &["-c", script]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`{script}` in {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// Runs a shell command in the namespace and panics, with its stderr, if it fails.
    pub fn sh(&self, script: &str) -> String {
        self.try_sh(script).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a long-running program in the namespace (stdout/stderr to the given file, or
    /// inherited). The caller kills it; [`Daemon`] does so on drop.
    pub fn spawn(&self, program: &str, args: &[&str], log: Option<&std::path::Path>) -> Child {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null());
        if let Some(path) = log {
            let f = File::create(path).unwrap_or_else(|e| panic!("log {}: {e}", path.display()));
            let f2 = f.try_clone().expect("dup log fd");
            c.stdout(f).stderr(f2);
        }
        c.spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kills anything still running inside (daemons a failed test left behind).
        cleanup::remove_namespace(&self.name);
        cleanup::forget(&self.name);
    }
}

/// A child process that is killed (SIGKILL) and reaped on drop.
pub struct Daemon(pub Child);

impl Daemon {
    /// Sends `sig` (e.g. `libc::SIGTERM`) and waits up to `timeout` for the exit status.
    pub fn signal_and_wait(
        &mut self,
        sig: i32,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(self.0.id() as i32, sig) };
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A veth pair between two namespaces, both ends up, with the given addresses (CIDR, `nodad`).
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    run_ok(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]));
    for (ns, ifname, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.sh(&format!("ip link set {ifname} up"));
        if !addr.is_empty() {
            ns.sh(&format!("ip addr add {addr} dev {ifname} nodad"));
        }
    }
}

/// Sends one UDP datagram from `src` (bound) to `[dst]:port` inside `ns`.
pub fn udp_send(ns: &Netns, src: &str, dst: &str, port: u16, payload: &str) {
    ns.enter(|| {
        let s = std::net::UdpSocket::bind((src.parse::<std::net::Ipv6Addr>().expect("src"), 0))
            .unwrap_or_else(|e| panic!("bind {src}: {e}"));
        s.send_to(
            payload.as_bytes(),
            (dst.parse::<std::net::Ipv6Addr>().expect("dst"), port),
        )
        .unwrap_or_else(|e| panic!("send to {dst}: {e}"));
    });
}

/// A UDP socket bound inside `ns` to `[addr]:port`, for [`UdpProbe::recv`].
pub struct UdpProbe(std::net::UdpSocket);

impl UdpProbe {
    pub fn bind(ns: &Netns, addr: &str, port: u16) -> UdpProbe {
        ns.enter(|| {
            let a: std::net::Ipv6Addr = addr.parse().expect("addr");
            let s =
                std::net::UdpSocket::bind((a, port)).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            UdpProbe(s)
        })
    }

    /// The next datagram's payload and source, or None after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<(String, std::net::SocketAddr)> {
        self.0.set_read_timeout(Some(timeout)).ok()?;
        let mut buf = [0u8; 2048];
        let (n, from) = self.0.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(buf.get(..n)?).into_owned(), from))
    }
}

fn run_ok(c: &mut Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
