//! Unix signals as daemon events.

use std::io;

use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: remove installed kernel state and exit.
    Shutdown,
    /// SIGHUP: re-read the configuration.
    Reload,
}

/// Must be created inside a tokio runtime. From creation on, these signals no longer kill the
/// process; they are queued until [`Signals::next`] is awaited.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal. Cancel-safe, so it can sit in a `tokio::select!` loop.
    pub async fn next(&mut self) -> Signal {
        // `recv` yields None only once the runtime is shutting down: treat that as shutdown too.
        tokio::select! {
            _ = self.terminate.recv() => Signal::Shutdown,
            _ = self.interrupt.recv() => Signal::Shutdown,
            received = self.hangup.recv() => match received {
                Some(()) => Signal::Reload,
                None => Signal::Shutdown,
            },
        }
    }
}
