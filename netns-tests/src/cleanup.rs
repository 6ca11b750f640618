//! Benchmarks and harness binaries leave nothing behind when stopped by a signal (`timeout`
//! sends SIGTERM, a terminal SIGINT): the default action would kill the process before any
//! `Drop` ran, leaving namespaces and the daemons inside them.
//!
//! Call [`on_signals`] first thing in `main`, before any thread starts. SIGINT, SIGTERM and
//! SIGHUP are then taken by a watcher thread: the first one [`crate::wait::interrupt`]s (so a
//! binary that polls with [`crate::wait`] winds down in order and prints its summary) and,
//! if the process is still running [`GRACE`] later, or at a second signal, every namespace
//! this process created is removed with everything running inside it, and the process exits
//! with 128 + the signal number.
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

/// How long an orderly wind-down may take before namespaces are removed under it.
pub const GRACE: Duration = Duration::from_secs(5);

/// Namespaces alive in this process ([`crate::Netns`] registers and forgets them).
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub(crate) fn register(name: &str) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned());
}

pub(crate) fn forget(name: &str) {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
}

/// Kills what runs inside namespace `name` and deletes it (what [`crate::Netns`]'s drop does).
pub(crate) fn remove_namespace(name: &str) {
    use std::process::Command;
    if let Ok(o) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).status();
}

/// See the module documentation. Panics if the signal mask cannot be set (it can only fail
/// for invalid arguments).
pub fn on_signals() {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    // Blocked here and so in every thread started after: only the watcher takes them.
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .expect("block SIGINT/SIGTERM/SIGHUP");
    std::thread::spawn(move || {
        let Ok(first) = set.wait() else { return };
        crate::wait::interrupt();
        eprintln!("\n{first}: stopping; namespaces are removed in {GRACE:?} at the latest");
        // The second signal, or the grace period, whichever comes first.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(sig) = set.wait() {
                let _ = tx.send(sig);
            }
        });
        let sig = rx.recv_timeout(GRACE).unwrap_or(first);
        let names: Vec<String> = LIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for name in &names {
            remove_namespace(name);
        }
        eprintln!(
            "{sig}: removed {} namespace(s) and their processes",
            names.len()
        );
        std::process::exit(128 + sig as i32);
    });
}
