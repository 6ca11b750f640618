//! The run loop of `mipcast_daemon::driver` around a scripted shell: every input is one round,
//! the deadline fires the timer, SIGHUP reloads through the background loader, the state is
//! written after each round, and SIGTERM ends in one ordered shutdown. Its own test binary:
//! the signals are raised at the whole process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mipcast_daemon::config::ConfigError;
use mipcast_daemon::driver::{run, Shell};
use mipcast_daemon::signals::Signals;
use nix::sys::signal::{kill, Signal as Sig};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::Instant;

struct Scripted {
    inputs: mpsc::UnboundedReceiver<u32>,
    /// The timer is armed once both inputs were handled.
    handled: u32,
    timer_fired: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

impl Shell for Scripted {
    type Config = String;
    type Input = u32;
    type Exit = &'static str;

    fn load(path: &Path) -> Result<String, ConfigError> {
        Ok(path.display().to_string())
    }

    async fn next_input(&mut self) -> u32 {
        match self.inputs.recv().await {
            Some(n) => n,
            None => std::future::pending().await,
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        (self.handled == 2 && !self.timer_fired).then(Instant::now)
    }

    async fn on_input(&mut self, input: u32) {
        self.handled += 1;
        self.note(format!("input {input}"));
    }

    async fn on_timer(&mut self) {
        self.timer_fired = true;
        self.note("timer".into());
        kill(Pid::this(), Sig::SIGHUP).unwrap();
    }

    async fn on_reload(&mut self, loaded: Result<String, ConfigError>) {
        self.note(format!("reload {}", loaded.unwrap()));
        kill(Pid::this(), Sig::SIGTERM).unwrap();
    }

    fn write_state(&mut self) {
        self.note("state".into());
    }

    async fn before_wait(&mut self) {
        self.note("wait".into());
    }

    async fn shutdown(self, keep_kernel_state: bool) -> &'static str {
        self.note(format!("shutdown keep={keep_kernel_state}"));
        "stopped"
    }
}

#[tokio::test]
async fn rounds_timer_reload_and_shutdown_in_order() {
    // Handlers are installed before anything is raised.
    let signals = Signals::new().expect("install handlers");
    let (tx, inputs) = mpsc::unbounded_channel();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let shell = Scripted {
        inputs,
        handled: 0,
        timer_fired: false,
        log: Arc::clone(&log),
    };
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        run(shell, signals, PathBuf::from("/etc/scripted.yaml"), true),
    )
    .await
    .expect("SIGTERM ends the loop");
    assert_eq!(exit, "stopped");
    // Each turn waits once; the SIGHUP and SIGTERM turns are no rounds (no state write).
    assert_eq!(
        *log.lock().unwrap(),
        [
            "wait",
            "input 1",
            "state",
            "wait",
            "input 2",
            "state",
            "wait",
            "timer",
            "state",
            "wait",
            "wait",
            "reload /etc/scripted.yaml",
            "state",
            "wait",
            "shutdown keep=true",
        ]
    );
}
