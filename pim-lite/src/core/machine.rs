//! The router as one of the cores speaking the cores' one contract ([`Machine`]).
//!
//! Inputs are the packets of the three sockets, MRT6 upcalls, RPF answers and interface
//! addresses; outputs are packets, MFC changes and RPF lookups (a kernel read whose answer
//! comes back as [`Input::Rpf`]). pim-lite counts what happens in [`Stats`](super::Stats)
//! rather than emitting events, so its [`Event`] type is empty.
use std::net::Ipv6Addr;

use mipcast_proto::{Machine, Millis, Now, Outcome};
use serde::Serialize;

use super::stats::Counter;
use super::{Action, IfaceAddrs, Packet, Router, RpfRoute, Rx, Sg, UpcallKind};

/// One input of the router.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    Mld {
        rx: Rx,
        bytes: &'a [u8],
    },
    Pim {
        rx: Rx,
        bytes: &'a [u8],
    },
    Nd {
        rx: Rx,
        bytes: &'a [u8],
    },
    Upcall {
        kind: UpcallKind,
        ifindex: Option<u32>,
        sg: Sg,
    },
    /// The answer to a [`Change::LookupRpf`].
    Rpf {
        source: Ipv6Addr,
        route: Option<RpfRoute>,
    },
    /// The addresses the kernel has on one of our interfaces now.
    Addresses {
        ifindex: u32,
        addrs: IfaceAddrs,
    },
    /// Goodbye: Prunes, Hellos with holdtime 0, final RAs, every MFC entry removed.
    Shutdown,
}

/// One change to (or read of) the kernel (as data: the simulation harness records it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Change {
    /// Install or replace the (S,G) entry. `interest_since` is set the first time the entry
    /// goes in after downstream interest appeared (for the join → MFC latency metric).
    MfcAdd {
        sg: Sg,
        iif: u32,
        oifs: Vec<u32>,
        interest_since: Option<Millis>,
    },
    MfcDel {
        sg: Sg,
    },
    /// Look the route toward this source up; the answer comes back as [`Input::Rpf`].
    LookupRpf(Ipv6Addr),
}

/// pim-lite reports through its counters; nothing is emitted as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Event {}

/// What the driver must do.
pub type Output = mipcast_proto::Output<Packet, Change, Event>;

impl Router {
    fn output(action: Action) -> Output {
        match action {
            Action::Send(p) => Output::Send(p),
            Action::MfcAdd {
                sg,
                iif,
                oifs,
                interest_since,
            } => Output::Kernel(Change::MfcAdd {
                sg,
                iif,
                oifs,
                interest_since,
            }),
            Action::MfcDel { sg } => Output::Kernel(Change::MfcDel { sg }),
            Action::ResolveRpf(source) => Output::Kernel(Change::LookupRpf(source)),
        }
    }
}

impl Machine for Router {
    type Input<'a> = Input<'a>;
    type Send = Packet;
    type Change = Change;
    type Event = Event;

    fn handle_input(&mut self, now: Now, input: Input<'_>) {
        let now = now.mono;
        match input {
            Input::Mld { rx, bytes } => self.handle_mld(now, rx, bytes),
            Input::Pim { rx, bytes } => self.handle_pim(now, rx, bytes),
            Input::Nd { rx, bytes } => self.handle_nd(now, rx, bytes),
            Input::Upcall { kind, ifindex, sg } => self.handle_upcall(kind, ifindex, sg),
            Input::Rpf { source, route } => self.rpf_resolved(now, source, route),
            Input::Addresses { ifindex, addrs } => self.set_addresses(now, ifindex, addrs),
            Input::Shutdown => self.shutdown(),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.tick(now.mono);
    }

    fn poll_timeout(&self) -> Option<Millis> {
        Some(self.next_deadline())
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.actions.pop_front().map(Router::output)
    }

    /// A refused MFC entry is forgotten, so the next refresh of its (S,G) (at the latest
    /// the next RPF check) installs it again; it is counted.
    fn kernel_result(&mut self, _now: Now, change: &Change, outcome: Outcome) {
        let Change::MfcAdd { sg, oifs, .. } = change else {
            return;
        };
        if outcome.reached(false) {
            return;
        }
        if oifs.is_empty() {
            // A refused negative entry leaves the forwarding one it was to replace in the
            // kernel: delete that instead (late packets may then be queued, the lesser harm).
            tracing::warn!(source = %sg.source, group = %sg.group, ?outcome, "the kernel refused the negative MFC entry; deleting the forwarding one");
            self.stats.bump(Counter::MfcRefused);
            self.negative.forget(*sg);
            self.actions.push_back(Action::MfcDel { sg: *sg });
            return;
        }
        tracing::warn!(source = %sg.source, group = %sg.group, ?outcome, "the kernel refused the MFC entry; retried at the next refresh");
        self.stats.bump(Counter::MfcRefused);
        self.forget_mfc(*sg);
    }
}
