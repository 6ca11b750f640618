//! The mobile node on the daemons' one event loop ([`mipcast_daemon::driver::run`]): its
//! inputs (router advertisements, the Mobility Header socket, carrier reads, netlink link
//! notifications, `mobile-node quality set` requests, the interruption probe's samples), the
//! turn's polls (interface state, quality, status, the state file), the core's timers, reload
//! and shutdown.
use std::time::Instant;

use mipcast_daemon::clock::Millis;
use mipcast_daemon::config::ConfigError;
use mipcast_daemon::control::{self, ControlSocket};
use mipcast_daemon::driver::{or_never, ReloadDiff, Removal, Shell};
use mipcast_daemon::state::StateFile;
use mipcast_daemon::status::Snapshot;
use mipcast_kernel::linkwatch::{LinkEvent, LinkWatch};
use mipcast_kernel::sockets::SocketError;
use mipcast_proto::Machine;

use super::{
    apply, host, publish, quality_request, release_held, reload, remove_nft, sample_interruption,
    tick, Io, PolledLink, LINK_POLL_INTERVAL, POLL_INTERVAL,
};
use crate::carrier::CarrierChange;
use crate::config::Config;
use crate::core::{Core, Event, Persisted};

/// Everything the loop keeps between turns.
pub(super) struct Node {
    /// The running configuration (reload compares against it and takes what changes in
    /// place).
    pub(super) cfg: Config,
    pub(super) io: Io,
    pub(super) core: Core,
    pub(super) polled: Vec<PolledLink>,
    pub(super) radio: Option<crate::radio::Radio>,
    pub(super) control: Option<ControlSocket>,
    pub(super) state_file: StateFile<Persisted>,
    pub(super) last_persisted: Persisted,
    pub(super) interruption: crate::interruption::Interruption,
    /// Whether per-link packet counters exist (for the interruption probe).
    pub(super) counted: bool,
    pub(super) links: Option<LinkWatch>,
    pub(super) next_link_poll: Millis,
    pub(super) carrier: tokio::sync::mpsc::UnboundedReceiver<CarrierChange>,
    pub(super) ra_buf: Vec<u8>,
    pub(super) mh_buf: Vec<u8>,
}

/// What the mobile node's sockets and watchers deliver.
pub(super) enum Received {
    Ra(Result<mipcast_kernel::sockets::Received, SocketError>),
    Mobility(Result<mipcast_kernel::sockets::Received, SocketError>),
    Carrier(CarrierChange),
    Link(Option<LinkEvent>),
    Sample,
    Control(control::Request),
}

impl Shell for Node {
    type Config = Config;
    type Input = Received;
    type Exit = ();

    fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        mipcast_daemon::config::load(path)
    }

    /// Interface state and quality files are polled: cheap, and robust to missed events.
    /// Then the status page and the state file follow what changed.
    async fn before_wait(&mut self) {
        let now = self.io.now().mono;
        let link_poll = self.next_link_poll <= now;
        if link_poll {
            self.next_link_poll = now + LINK_POLL_INTERVAL;
        }
        for p in &mut self.polled {
            let up = if link_poll || p.up.is_none() {
                host::link_up(&p.name)
            } else {
                p.up.unwrap_or(false)
            };
            if p.up != Some(up) {
                p.up = Some(up);
                apply(
                    &self.io,
                    &mut self.core,
                    Event::Link {
                        ifindex: p.ifindex,
                        up,
                    },
                    self.io.now(),
                )
                .await;
            }
            let q = match self.radio.as_mut().filter(|_| p.nl80211) {
                Some(r) => r.quality(p.ifindex, &p.name).await,
                None => p.quality_file.as_deref().and_then(host::read_quality),
            };
            if p.quality != Some(q) {
                p.quality = Some(q);
                apply(
                    &self.io,
                    &mut self.core,
                    Event::Quality {
                        ifindex: p.ifindex,
                        value: q,
                    },
                    self.io.now(),
                )
                .await;
            }
        }
        if self.counted {
            let io = &self.io;
            self.interruption
                .attachment(self.core.attachment().ifindex(), Instant::now(), || {
                    io.nft.link_counters().ok()
                });
        }
        publish(&self.core, &self.io, self.io.now().mono);
        let p = self.core.persisted();
        if p != self.last_persisted {
            if let Err(e) = self.state_file.store(&p) {
                tracing::warn!(error = %e, "cannot write the state file");
            }
            self.last_persisted = p;
        }
    }

    /// The core's next timer, at most [`POLL_INTERVAL`] away (the polls above).
    fn deadline(&mut self) -> Option<tokio::time::Instant> {
        let now = self.io.now().mono;
        let wake = self.core.poll_timeout().map_or(POLL_INTERVAL, |d| {
            d.saturating_since(now).min(POLL_INTERVAL)
        });
        Some(tokio::time::Instant::now() + wake)
    }

    async fn next_input(&mut self) -> Received {
        tokio::select! {
            r = self.io.icmp.recv(&mut self.ra_buf) => Received::Ra(r),
            r = self.io.mh.recv(&mut self.mh_buf) => Received::Mobility(r),
            Some(change) = self.carrier.recv() => Received::Carrier(change),
            ev = or_never(self.links.as_mut().map(|w| w.next())) => Received::Link(ev),
            () = or_never(self.interruption.next_sample(Instant::now()).map(|at| tokio::time::sleep_until(at.into()))) => Received::Sample,
            Some(request) = or_never(self.control.as_mut().map(|c| c.next())) => Received::Control(request),
        }
    }

    async fn on_input(&mut self, input: Received) {
        let io = &self.io;
        let core = &mut self.core;
        match input {
            Received::Ra(r) => match r {
                Ok(rx) => {
                    let bytes = self.ra_buf.get(..rx.len).unwrap_or(&[]);
                    let ev = Event::RouterAdvert {
                        ifindex: rx.ifindex,
                        src: rx.source,
                        hop_limit: rx.hop_limit,
                        bytes,
                    };
                    apply(io, core, ev, io.now()).await;
                }
                Err(e) => tracing::warn!(error = %e, "receiving on the ICMPv6 socket"),
            },
            Received::Mobility(r) => match r {
                Ok(rx) => {
                    let bytes = self.mh_buf.get(..rx.len).unwrap_or(&[]);
                    io.metrics.signalling.mobility(
                        mipcast_daemon::metrics::signalling::Direction::Received,
                        bytes,
                    );
                    let ev = Event::Mobility {
                        src: rx.source,
                        bytes,
                    };
                    apply(io, core, ev, io.now()).await;
                }
                Err(e) => tracing::warn!(error = %e, "receiving on the mobility header socket"),
            },
            Received::Carrier((ifindex, up)) => {
                link_state(&mut self.polled, io, core, ifindex, up).await
            }
            Received::Link(ev) => {
                match ev {
                    Some(LinkEvent::Link { ifindex, up }) => {
                        link_state(&mut self.polled, io, core, ifindex, up).await;
                        // The carrier read may have seen the link first; a solicitation held for
                        // want of carrier can go now.
                        release_held(io, io.now()).await;
                    }
                    Some(LinkEvent::Address { .. }) => release_held(io, io.now()).await,
                    None => {
                        tracing::warn!("netlink link notifications ended; link changes are seen by polling only");
                        self.links = None;
                    }
                }
            }
            Received::Sample => {
                // The first packets on the new path also tell the core the new site delivers.
                if let Some(ifindex) = sample_interruption(io, &mut self.interruption) {
                    apply(io, core, Event::Delivered { ifindex }, io.now()).await;
                }
            }
            Received::Control(request) => {
                let reply = match quality_request(&request.line, &self.polled) {
                    Ok((ifindex, value)) => {
                        apply(io, core, Event::Quality { ifindex, value }, io.now()).await;
                        let status = core.status(io.now().mono);
                        let link = status.links.iter().find(|l| l.ifindex == ifindex);
                        serde_json::json!({ "link": link })
                    }
                    Err(e) => serde_json::json!({ "error": e }),
                };
                request.reply(reply.to_string());
            }
        }
    }

    async fn on_timer(&mut self) {
        tick(&self.io, &mut self.core, self.io.now()).await;
    }

    fn reload_diff(&self, new: &Config) -> ReloadDiff {
        self.cfg.reload_diff(new)
    }

    async fn reload(&mut self, new: Config) -> Result<(), String> {
        reload(
            new,
            &mut self.cfg,
            &self.io,
            &mut self.core,
            &mut self.polled,
        )
        .await
    }

    fn status(&mut self) -> Snapshot {
        Snapshot::json(self.core.status(self.io.now().mono))
    }

    /// The state file was written by the last turn; nothing runs beside the loop.
    async fn stop(&mut self) {}

    /// Our routes, rules, addresses and nftables table go, the local rule is put back, and
    /// interfaces we brought up go down again.
    async fn remove_installed(&mut self) -> Removal {
        let io = &self.io;
        let (routes, mut failed) = io
            .kernel
            .remove_ours_at_stop(self.cfg.kernel.local_rule_pref)
            .await;
        let mut removed = routes + remove_nft(&io.nft);
        for ifindex in self.core.raised_links() {
            match io.kernel.set_link_admin(ifindex, false).await {
                Ok(_) => {
                    removed += 1;
                    tracing::info!(ifindex, "interface we brought up is down again");
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(ifindex, error = %e, "putting an interface we brought up down");
                }
            }
        }
        Removal { removed, failed }
    }

    /// Closing the membership socket leaves the terminal group.
    fn exit(self) {}
}

/// A link's state as the carrier read or a netlink notification saw it: the core hears of a
/// change once, from whichever saw it first.
async fn link_state(polled: &mut [PolledLink], io: &Io, core: &mut Core, ifindex: u32, up: bool) {
    if let Some(p) = polled
        .iter_mut()
        .find(|p| p.ifindex == ifindex && p.up != Some(up))
    {
        p.up = Some(up);
        apply(io, core, Event::Link { ifindex, up }, io.now()).await;
    }
}
