//! Plumbing shared by the daemon benchmarks (src/bin/*-bench.rs): flag parsing, the daemon's
//! files and readiness, its memory, and a windowed Binding Update load over an [`MhClient`].
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::mh_client::{MhClient, Reply};
use crate::Netns;

/// A benchmark's command line: `--flag value` pairs, and a usage message to exit with.
pub struct Cli {
    pub bin: &'static str,
    /// The usage line's options, e.g. `[--bindings N] [--daemon PATH]`.
    pub options: &'static str,
}

impl Cli {
    /// Prints `msg` and the usage line, exits with status 2.
    pub fn usage(&self, msg: &str) -> ! {
        eprintln!(
            "{bin}: {msg}\nusage: {bin} {}",
            self.options,
            bin = self.bin
        );
        std::process::exit(2)
    }

    /// The process arguments as (flag, value) pairs; exits when a flag has no value, and
    /// with the usage line (status 0) on `-h` / `--help`.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.pairs_and_switches(&[]).0
    }

    /// Like [`Self::pairs`], with `switches` (flags without a value, e.g. `--json`) taken out
    /// and returned apart.
    pub fn pairs_and_switches(&self, switches: &[&str]) -> (Vec<(String, String)>, Vec<String>) {
        let mut on = Vec::new();
        let mut out = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!("usage: {} {}", self.bin, self.options);
                std::process::exit(0);
            }
            if switches.contains(&flag.as_str()) {
                on.push(flag);
                continue;
            }
            let value = it
                .next()
                .unwrap_or_else(|| self.usage(&format!("{flag} needs a value")));
            out.push((flag, value));
        }
        (out, on)
    }

    /// `--steps 10000,50000,100000`: table sizes, each at least 1.
    pub fn steps(&self, flag: &str, value: &str) -> Vec<u32> {
        value
            .split(',')
            .map(|v| self.number::<u32>(flag, v.trim()).max(1))
            .collect()
    }

    /// `value` parsed as a number; exits when it is not one.
    pub fn number<T: FromStr>(&self, flag: &str, value: &str) -> T {
        value
            .parse()
            .unwrap_or_else(|_| self.usage(&format!("{flag}: not a number")))
    }
}

/// `name` in the directory of the running executable (where cargo puts the daemons).
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Resident set size of process `pid` in KiB (0 when unknown).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time process `pid` has used so far (user + system, all threads), in seconds (0 when
/// unknown). A per-operation figure from it does not depend on how much of the machine other
/// work takes, unlike a rate.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces, hence the last ')'):
    // state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    (ticks(11) + ticks(12)) as f64 / hz as f64
}

/// Nanoseconds process `pid`'s main thread has spent running and waiting on a run queue
/// (ready, but no CPU free) so far (`/proc/PID/schedstat`; zeros when unknown). A daemon that
/// waits much of the time is held back by the machine, not by its own work.
pub fn sched_ns(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut fields = stat
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// A fresh scratch directory for benchmark `tag` and a key file `key` in it (mode 600, as the
/// daemons demand); returns (directory, key path).
pub fn scratch_with_key(tag: &str, key: &[u8]) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("key");
    std::fs::write(&path, key)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((dir, path))
}

/// Waits up to 15 s until something listens on TCP `port` in `ns` (the daemon's metrics
/// endpoint, opened once it is ready); panics with the daemon's `log` otherwise.
pub fn wait_listening(ns: &Netns, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while ns.try_sh(&format!("ss -ltn | grep -q {port}")).is_err() {
        assert!(
            Instant::now() < deadline,
            "daemon not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome of one [`pipeline`] run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub secs: f64,
    /// BAcks with status 0.
    pub accepted: u32,
    /// BAcks with another status.
    pub refused: u32,
    /// Binding Errors.
    pub errors: u32,
    /// Receive timeouts: answers lost (e.g. a BU dropped by a full socket buffer).
    pub lost: u32,
}

impl Tally {
    fn answered(&self) -> u32 {
        self.accepted + self.refused + self.errors + self.lost
    }
}

/// Sends `count` BUs (`bu(i)` for i in 0..count) with at most `window` unanswered, until each
/// is answered or given up on; reports progress every 10000 answers on stderr.
pub fn pipeline(
    client: &MhClient,
    count: u32,
    window: u32,
    mut bu: impl FnMut(u32) -> Vec<u8>,
) -> std::io::Result<Tally> {
    let started = Instant::now();
    let mut t = Tally::default();
    let mut sent = 0u32;
    while t.answered() < count {
        while sent < count && sent - t.answered() < window {
            client.send(&bu(sent))?;
            sent += 1;
        }
        match client.recv() {
            Ok(Some(Reply::Ack { status: 0, .. })) => t.accepted += 1,
            Ok(Some(Reply::Ack { .. })) => t.refused += 1,
            Ok(Some(Reply::Error { .. })) => t.errors += 1,
            Ok(None) => continue,
            Err(_) => t.lost += 1,
        }
        let done = t.answered();
        if done % 10_000 == 0 {
            eprintln!(
                "  {done} replies after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    t.secs = started.elapsed().as_secs_f64();
    Ok(t)
}

/// Address `base + i`, for per-index home addresses.
pub fn nth_address(base: Ipv6Addr, i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base).wrapping_add(u128::from(i)))
}
