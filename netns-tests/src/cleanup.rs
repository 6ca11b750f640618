//! Benchmarks and harness binaries leave nothing behind when stopped by a signal (`timeout`
//! sends SIGTERM, a terminal SIGINT): the default action would kill the process before any
//! `Drop` ran, leaving namespaces and the daemons inside them.
//!
//! Call [`on_signals`] first thing in `main`. SIGINT, SIGTERM and SIGHUP are then reported
//! to a watcher thread: the first one [`crate::wait::interrupt`]s (so a
//! binary that polls with [`crate::wait`] winds down in order and prints its summary) and,
//! if the process is still running [`GRACE`] later, or at a second signal, every namespace
//! this process created is removed with everything running inside it, and the process exits
//! with 128 + the signal number.
use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

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

/// Write end of the pipe the signal handler reports on (-1 before [`on_signals`]).
static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    crate::wait::interrupt();
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; one byte from a live local to our pipe.
    unsafe { libc::write(PIPE.load(Ordering::Relaxed), (&raw const byte).cast(), 1) };
}

/// See the module documentation. A handler, not a blocked signal mask: children inherit a
/// mask across exec (the daemons a bench starts would never see their SIGTERM), while
/// handlers are reset to the default there. Panics if the pipe or handlers cannot be set up.
pub fn on_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    let (rd, wr) = nix::unistd::pipe().expect("signal pipe");
    PIPE.store(wr.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(wr); // written by the handler for the life of the process
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic and writes to a pipe, both
        // async-signal-safe.
        unsafe { sigaction(sig, &action) }.expect("signal handler");
    }
    std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(rd);
        let mut byte = [0u8; 1];
        if pipe.read_exact(&mut byte).is_err() {
            return;
        }
        let first = Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGTERM);
        eprintln!("\n{first}: stopping; namespaces are removed in {GRACE:?} at the latest");
        // The second signal, or the grace period, whichever comes first.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if pipe.read_exact(&mut byte).is_ok() {
                let _ = tx.send(Signal::try_from(i32::from(byte[0])).unwrap_or(first));
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
