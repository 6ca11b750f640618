//! pim-lite on the daemons' one event loop ([`mipcast_daemon::driver::run`]): its inputs (the
//! MLD, ND and PIM sockets, MRT6 upcalls, netlink link notifications), the router's deadline
//! and its own (status refresh, address poll), reload and shutdown.
use mipcast_daemon::clock::Clock;
use mipcast_daemon::config::ConfigError;
use mipcast_daemon::driver::{or_never, ReloadDiff, Removal, Shell as DriverShell};
use mipcast_daemon::status::Snapshot;
use mipcast_kernel::linkwatch::{LinkEvent, LinkWatch};
use mipcast_kernel::mrt6;
use mipcast_kernel::sockets::SocketError;
use mipcast_proto::Machine;
use tokio::time::Instant;

use super::{
    received, received_drained, Direction, Input, Proto, Sg, Shell, ShellError, UpcallKind,
    ADDRESS_REFRESH, PIM_BURST,
};
use crate::config::Config;

/// The shell, with what only the loop uses.
pub(super) struct Driven {
    shell: Shell,
    mld_buf: Vec<u8>,
    nd_buf: Vec<u8>,
    pim_buf: Vec<u8>,
    links: Option<LinkWatch>,
}

impl Driven {
    pub(super) fn new(shell: Shell) -> Driven {
        let links = match LinkWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("no netlink link notifications ({e}); interface addresses are polled every {ADDRESS_REFRESH:?} only");
                None
            }
        };
        Driven {
            shell,
            mld_buf: vec![0u8; 65_536],
            nd_buf: vec![0u8; 2048],
            pim_buf: vec![0u8; 65_536],
            links,
        }
    }
}

/// What pim-lite's sockets deliver.
pub(super) enum Received {
    Mld(Result<mipcast_kernel::sockets::Received, SocketError>),
    Nd(Result<mipcast_kernel::sockets::Received, SocketError>),
    Pim(Result<mipcast_kernel::sockets::Received, SocketError>),
    Upcall(Result<mrt6::Upcall, SocketError>),
    Link(Option<LinkEvent>),
}

impl DriverShell for Driven {
    type Config = Config;
    type Input = Received;
    type Exit = Result<(), ShellError>;

    fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        mipcast_daemon::config::load::<Config>(path)
    }

    async fn before_wait(&mut self) {
        self.shell.turn().await;
    }

    fn deadline(&mut self) -> Option<Instant> {
        let s = &self.shell;
        let deadline = s
            .router
            .next_deadline()
            .min(s.next_status)
            .min(s.next_addresses);
        Some(s.clock.instant_at(deadline))
    }

    async fn next_input(&mut self) -> Received {
        let s = &mut self.shell;
        tokio::select! {
            r = s.sockets.mld.recv(&mut self.mld_buf) => Received::Mld(r),
            r = s.sockets.nd.recv(&mut self.nd_buf) => Received::Nd(r),
            r = s.sockets.pim.recv(&mut self.pim_buf) => Received::Pim(r),
            u = s.mrt.recv_upcall() => Received::Upcall(u),
            ev = or_never(self.links.as_mut().map(|w| w.next())) => Received::Link(ev),
        }
    }

    async fn on_input(&mut self, input: Received) {
        let s = &mut self.shell;
        match input {
            Received::Mld(r) => {
                if let Some((rx, bytes)) = received(r, &self.mld_buf, "MLD") {
                    s.metrics.signalling(Direction::Received, Proto::Mld, bytes);
                    s.router
                        .handle_input(s.clock.reading(), Input::Mld { rx, bytes });
                }
            }
            Received::Nd(r) => {
                if let Some((rx, bytes)) = received(r, &self.nd_buf, "ND") {
                    s.metrics.signalling(Direction::Received, Proto::Nd, bytes);
                    s.router
                        .handle_input(s.clock.reading(), Input::Nd { rx, bytes });
                }
            }
            Received::Pim(r) => {
                if let Some((rx, bytes)) = received(r, &self.pim_buf, "PIM") {
                    s.metrics.signalling(Direction::Received, Proto::Pim, bytes);
                    s.router
                        .handle_input(s.clock.reading(), Input::Pim { rx, bytes });
                }
                // The rest of a burst (a downstream router joining thousands of
                // channels) before the next drive: its MFC entries are installed in one
                // round instead of one round per message.
                let (router, clock) = (&mut s.router, s.clock);
                s.sockets.pim.drain(&mut self.pim_buf, PIM_BURST - 1, |r| {
                    if let Some((rx, bytes)) = received_drained(r, "PIM") {
                        router.handle_input(clock.reading(), Input::Pim { rx, bytes });
                    }
                });
            }
            Received::Upcall(u) => match u {
                Ok(u) => {
                    let kind = match u.kind {
                        mrt6::UpcallKind::NoCache => UpcallKind::NoCache,
                        mrt6::UpcallKind::WrongMif => UpcallKind::WrongMif,
                        _ => UpcallKind::Other,
                    };
                    let ifindex = s.mrt.ifindex_of(u.mif);
                    let sg = Sg {
                        source: u.source,
                        group: u.group,
                    };
                    s.router
                        .handle_input(s.clock.reading(), Input::Upcall { kind, ifindex, sg });
                }
                Err(e) => {
                    if let Some(suppressed) = s.log_limit.admit("upcall_error", s.clock.now()) {
                        tracing::warn!(suppressed, "MRT6 upcall: {e}");
                    }
                }
            },
            Received::Link(ev) => match ev {
                Some(ev) => {
                    let ifindex = match ev {
                        LinkEvent::Link { ifindex, .. } | LinkEvent::Address { ifindex } => ifindex,
                    };
                    if s.names.contains_key(&ifindex) {
                        s.refresh_addresses();
                    }
                }
                None => {
                    tracing::warn!(
                        "netlink link notifications ended; interface addresses are polled only"
                    );
                    self.links = None;
                }
            },
        }
    }

    // The round's outputs are driven at the next turn (before_wait), as the status refresh
    // that follows them needs.

    async fn on_timer(&mut self) {
        let s = &mut self.shell;
        s.router.handle_timeout(s.clock.reading());
    }

    fn reload_diff(&self, new: &Config) -> ReloadDiff {
        self.shell.config.reload_diff(new)
    }

    async fn reload(&mut self, new: Config) -> Result<(), String> {
        self.shell.reload(new)
    }

    fn status(&mut self) -> Snapshot {
        self.shell.status()
    }

    async fn stop(&mut self) {
        self.shell.stop().await;
    }

    async fn remove_installed(&mut self) -> Removal {
        self.shell.remove_installed()
    }

    fn exit(self) -> Result<(), ShellError> {
        self.shell.exit()
    }
}
