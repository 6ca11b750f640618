//! The run loop of `mipcast_daemon::driver` around a scripted shell: every input is one round,
//! the deadline fires the timer, SIGHUP reloads through the background loader and is reported
//! by section (applied, or refused as a whole), `/status` is answered from the loop, and
//! SIGTERM ends in one ordered shutdown. Its own test binary: the signals are raised at the
//! whole process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mipcast_daemon::config::ConfigError;
use mipcast_daemon::driver::{run, Loop, LoopMetrics, ReloadDiff, Removal, Shell};
use mipcast_daemon::signals::Signals;
use mipcast_daemon::status::{status_channel, Snapshot};
use nix::sys::signal::{kill, Signal as Sig};
use nix::unistd::Pid;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The first load reads a changed file; the second finds it unreadable.
static LOADS: AtomicU32 = AtomicU32::new(0);

struct Scripted {
    inputs: mpsc::UnboundedReceiver<u32>,
    /// The timer is armed once both inputs were handled.
    handled: u32,
    timer_fired: bool,
    config: String,
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
        match LOADS.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(format!("{} v2", path.display())),
            _ => Err(ConfigError::Read {
                file: path.to_owned(),
                source: std::io::Error::other("gone"),
            }),
        }
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

    fn reload_diff(&self, new: &String) -> ReloadDiff {
        ReloadDiff::default()
            .live("name", *new != self.config)
            .restart("port", true)
            .live("unchanged", false)
    }

    async fn reload(&mut self, new: String) -> Result<(), String> {
        let diff = self.reload_diff(&new);
        self.note(format!(
            "reload {new} live={:?} restart={:?}",
            diff.changed(),
            diff.needs_restart()
        ));
        self.config = new;
        // The next SIGHUP finds the file unreadable: the loop refuses it without asking us.
        kill(Pid::this(), Sig::SIGHUP).unwrap();
        Ok(())
    }

    fn status(&mut self) -> Snapshot {
        self.note("status".into());
        Snapshot::json(self.config.clone())
    }

    async fn before_wait(&mut self) {
        self.note("wait".into());
    }

    async fn stop(&mut self) {
        self.note("stop".into());
    }

    async fn remove_installed(&mut self) -> Removal {
        self.note("remove".into());
        Removal::default()
    }

    fn exit(self) -> &'static str {
        self.note("exit".into());
        "stopped"
    }
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn rounds_timer_reloads_status_and_shutdown_in_order() {
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
        config: "/etc/scripted.yaml".into(),
        log: Arc::clone(&log),
    };
    let mut registry = Registry::default();
    let metrics = LoopMetrics::register(&mut registry);
    let (desk, status) = status_channel();
    // The operator's side: once the second reload is refused, read /status, then stop.
    let operator = tokio::spawn(async move {
        while !encoded(&registry).contains("config_reloads_total{outcome=\"refused\"} 1") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let text = encoded(&registry);
        assert!(
            text.contains("config_reloads_total{outcome=\"applied\"} 1"),
            "{text}"
        );
        let status = desk.fetch().await.expect("the loop answers /status");
        kill(Pid::this(), Sig::SIGTERM).unwrap();
        status
    });
    let parts = Loop {
        signals,
        status,
        metrics,
        config_path: PathBuf::from("/etc/scripted.yaml"),
        keep_kernel_state: true,
    };
    let exit = tokio::time::timeout(Duration::from_secs(10), run(shell, parts))
        .await
        .expect("SIGTERM ends the loop");
    assert_eq!(exit, "stopped");
    assert_eq!(operator.await.unwrap(), "\"/etc/scripted.yaml v2\"");
    // Each turn waits once. A refused reload reaches no shell call.
    assert_eq!(
        *log.lock().unwrap(),
        [
            "wait",
            "input 1",
            "wait",
            "input 2",
            "wait",
            "timer",
            "wait",
            "wait",
            "reload /etc/scripted.yaml v2 live=[\"name\"] restart=[\"port\"]",
            "wait",
            "wait",
            "wait",
            "status",
            "wait",
            "stop",
            "exit",
        ]
    );

    // Without --keep-kernel-state the installed state is removed between stop and exit.
    let log = Arc::new(Mutex::new(Vec::new()));
    let (_tx, inputs) = mpsc::unbounded_channel();
    let shell = Scripted {
        inputs,
        handled: 0,
        timer_fired: false,
        config: String::new(),
        log: Arc::clone(&log),
    };
    let parts = Loop {
        signals: Signals::new().expect("install handlers"),
        status: mipcast_daemon::status::StatusRequests::none(),
        metrics: LoopMetrics::default(),
        config_path: PathBuf::from("/etc/scripted.yaml"),
        keep_kernel_state: false,
    };
    kill(Pid::this(), Sig::SIGTERM).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), run(shell, parts))
        .await
        .expect("SIGTERM ends the loop");
    assert_eq!(exit, "stopped");
    assert_eq!(*log.lock().unwrap(), ["wait", "stop", "remove", "exit"]);
}
