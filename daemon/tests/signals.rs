//! Its own test binary: once a signal is raised at the process, every test in the same binary
//! would share it, and SIGTERM before a handler exists would kill the whole run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking

use std::time::Duration;

use mipcast_daemon::signals::{Signal, Signals};
use nix::sys::signal::{kill, Signal as Sig};
use nix::unistd::Pid;

#[tokio::test]
async fn sighup_reloads_and_sigterm_or_sigint_shut_down() {
    // Handlers are installed here, before anything is raised.
    let mut signals = Signals::new().expect("install handlers");
    let within = Duration::from_secs(5);

    for (raised, expected) in [
        (Sig::SIGHUP, Signal::Reload),
        (Sig::SIGTERM, Signal::Shutdown),
        (Sig::SIGINT, Signal::Shutdown),
        (Sig::SIGHUP, Signal::Reload),
    ] {
        kill(Pid::this(), raised).expect("kill self");
        let got = tokio::time::timeout(within, signals.next())
            .await
            .unwrap_or_else(|_| panic!("{raised} not delivered within {within:?}"));
        assert_eq!(got, expected, "after {raised}");
    }

    // Nothing else is pending.
    let idle = tokio::time::timeout(Duration::from_millis(200), signals.next()).await;
    assert!(idle.is_err(), "unexpected {idle:?}");
}
