//! The MMA on the daemons' one event loop ([`mipcast_daemon::driver::run`]): its inputs (the
//! Mobility Header socket, route optimisation's NFLOG sightings, `mma advise` requests, the
//! MFC counter poll), its two timers (the core's, route optimisation's), reload and shutdown.
use mipcast_daemon::config::ConfigError;
use mipcast_daemon::control;
use mipcast_daemon::driver::{lock, or_never, ReloadDiff, Removal, Shell};
use mipcast_daemon::status::Snapshot;
use mipcast_kernel::sockets::SocketError;
use mipcast_proto::Machine;
use std::net::Ipv6Addr;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, Interval};

use super::{Daemon, BURST, RECV_BUF};
use crate::config::Config;

/// The daemon, with what only the loop uses.
pub(super) struct Driven {
    pub(super) daemon: Daemon,
    buf: Vec<u8>,
    /// `metrics.mfc_poll` (None: 0, no polling).
    mfc_tick: Option<Interval>,
    /// The MFC counter poll running on a blocking thread, if one is.
    mfc_reading: Option<JoinHandle<Vec<(Ipv6Addr, u64)>>>,
}

impl Driven {
    pub(super) fn new(daemon: Daemon) -> Driven {
        let mfc_poll = daemon.config.metrics.mfc_poll;
        let mfc_tick = (!mfc_poll.is_zero()).then(|| {
            let mut tick = tokio::time::interval(mfc_poll);
            // A poll that outlasts the period (100,000 entries) is followed by a whole period,
            // not by the ticks it missed back to back.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        Driven {
            daemon,
            buf: vec![0u8; RECV_BUF],
            mfc_tick,
            mfc_reading: None,
        }
    }

    fn core_deadline(&self) -> Option<Instant> {
        let d = &self.daemon;
        lock(&d.core)
            .poll_timeout()
            .map(|at| d.clock.instant_at(at))
    }

    fn ro_deadline(&self) -> Option<Instant> {
        let d = &self.daemon;
        d.ro.as_ref()
            .and_then(|ro| ro.poll_timeout())
            .map(|at| d.clock.instant_at(at))
    }
}

/// What the MMA's sockets and ticks deliver.
pub(super) enum Received {
    Mobility(Result<mipcast_kernel::sockets::Received, SocketError>),
    Sightings(std::io::Result<Vec<(Ipv6Addr, Ipv6Addr)>>),
    Control(control::Request),
    MfcPoll,
    MfcRead(Result<Vec<(Ipv6Addr, u64)>, JoinError>),
}

impl Shell for Driven {
    type Config = Config;
    type Input = Received;
    type Exit = ();

    fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        mipcast_daemon::config::load::<Config>(path)
    }

    async fn next_input(&mut self) -> Received {
        let d = &mut self.daemon;
        tokio::select! {
            sightings = or_never(d.nflog.as_mut().map(|n| n.next())) => Received::Sightings(sightings),
            received = d.mh.recv(&mut self.buf) => Received::Mobility(received),
            Some(request) = or_never(d.control.as_mut().map(|c| c.next())) => Received::Control(request),
            _ = or_never(self.mfc_tick.as_mut().map(Interval::tick)), if self.mfc_reading.is_none() => Received::MfcPoll,
            read = or_never(self.mfc_reading.as_mut()) => Received::MfcRead(read),
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        match (self.core_deadline(), self.ro_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn on_input(&mut self, input: Received) {
        let d = &mut self.daemon;
        match input {
            Received::Sightings(sightings) => d.on_sightings(sightings).await,
            Received::Mobility(received) => {
                let buf = &mut self.buf;
                let first = received.map(|rx| (rx, buf.get(..rx.len).unwrap_or_default()));
                d.handle_received(first);
                // Drain what else is queued, so a burst of BUs is one batch of kernel changes.
                d.mh.drain(buf, BURST - 1, |received| d.handle_received(received));
                d.settle().await;
            }
            Received::Control(request) => d.control_request(request).await,
            Received::MfcPoll => self.mfc_reading = d.poll_mfc_counters(),
            Received::MfcRead(read) => {
                self.mfc_reading = None;
                d.mfc_counters_read(read).await;
            }
        }
    }

    /// Whichever of the two timers is due: route optimisation's, the core's.
    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.ro_deadline().is_some_and(|at| at <= now) {
            let d = &self.daemon;
            if let Some(ro) = &d.ro {
                ro.handle_timeout(d.clock.reading());
            }
            d.drive_ro().await;
        }
        if self.core_deadline().is_some_and(|at| at <= now) {
            let d = &mut self.daemon;
            let now = d.clock.reading();
            lock(&d.core).handle_timeout(now);
            d.settle().await;
        }
    }

    fn reload_diff(&self, new: &Config) -> ReloadDiff {
        self.daemon.config.reload_diff(new)
    }

    async fn reload(&mut self, new: Config) -> Result<(), String> {
        self.daemon.reload(new).await
    }

    fn status(&mut self) -> Snapshot {
        self.daemon.status()
    }

    async fn stop(&mut self) {
        self.daemon.stop().await;
    }

    async fn remove_installed(&mut self) -> Removal {
        self.daemon.remove_installed().await
    }

    fn exit(self) {}
}
