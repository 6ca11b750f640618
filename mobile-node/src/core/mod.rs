//! The mobile node's protocol logic as a pure state machine: no sockets, no clock reads.
//!
//! It speaks the cores' one contract ([`Machine`]). Events in ([`Event`]: link state, Router
//! Advertisements, Mobility Header messages, link quality readings, each with the time as a
//! [`Now`]); outputs out ([`Output`]: router solicitations and Binding Updates to send, kernel
//! changes, metric events). The kernel changes are the difference between what the kernel
//! holds ([`Core::applied`], fed by [`Machine::kernel_result`]) and what is wanted after the
//! event ([`kernel::diff`]), so they are ordered make-before-break, are always listed before
//! the Binding Updates of the same event (a BU sent from the home address needs the address),
//! and a change the kernel refused is asked for again until it holds.
mod home;
pub mod kernel;
pub mod links;
mod mipv6;
pub mod raise;
pub mod reg;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::Duration;

use ipnetwork::Ipv6Network;
use std::collections::VecDeque;

use mipcast_proto::{KObject, Machine, Millis, Outcome, RT_TABLE_LOCAL, RT_TABLE_MAIN};
use mipcast_wire::auth;
use mipcast_wire::mh::{advice_reason, Experimental, Message, MhRepr};
use mipcast_wire::nd::NdRepr;
use serde::{Deserialize, Serialize};

use kernel::{Address, DefaultRoute, Desired, KernelChange, Membership};
use links::{Avoid, Cause, Decision, Level, Link, LinkConfig, Policy, RouterInfo};
use reg::{AckOutcome, Client, Ctx, Outgoing, PeerKind, Request, Sa, TimerEvent};

/// IPv6-in-IPv6.
const IPPROTO_IPV6: u8 = 41;
/// Router solicitations per link-up without an answer (RFC 4861 §10 MAX_RTR_SOLICITATIONS).
const MAX_RS: u8 = 3;
/// Between solicitations; shorter than RFC 4861's 4 s because a handover is waiting on it.
const RS_INTERVAL_MS: u64 = 1000;
/// A prepared candidate joined this long ago has its branch grafted (MLD report, PIM Join
/// and MFC entry take ~10-20 ms here).
const PREPARED_GRAFT_MS: u64 = 100;
/// The overlap after moving to such a candidate: only what is in flight on the old branch.
const PREPARED_OVERLAP_MS: u64 = 30;
/// How long before an inter-site overlap ends the previous MMA is asked to forward.
const FORWARD_LEAD_MS: u64 = 100;
/// How long an inter-site overlap lasts once the new site has delivered: what the old site's
/// last hop still holds. What the home agent sent to the old MMA before it moved the binding
/// is forwarded by the old MMA (the forwarding request goes at once, see
/// `send_deferred_forward`).
const DELIVERED_DRAIN_MS: u64 = 50;
/// How often levels are re-evaluated while a moving average converges on a new reading.
const SMOOTH_TICK_MS: u64 = 100;
/// Handoff advice older or newer than this against our clock is refused (as a replay).
const ADVICE_WINDOW_MS: u64 = 10_000;
/// A candidate site that refused to admit us (pre-registration answered 130) is avoided this
/// long.
const NOT_ADMITTED_AVOID_MS: u64 = 30_000;

pub use mipcast_proto::Now;

/// How the node registers (the `mode` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Register with the site's MMA and receive on the terminal group (the mipcast design).
    #[default]
    Site,
    /// Plain RFC 6275 MIPv6: the on-link address is the care-of address at the home agent.
    Mipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub decap_table: u32,
    pub uplink_table: u32,
    /// The group decapsulation route of a second link (overlap or prepared candidate).
    pub second_link_table: u32,
    pub decap_pref: u32,
    pub uplink_pref: u32,
}

/// Everything the core needs from the configuration, with interfaces resolved.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub hoa: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    pub home_prefix: Ipv6Network,
    pub group: Ipv6Addr,
    pub mode: Mode,
    pub lifetime_s: u32,
    pub ha_sa: Sa,
    pub mma_sas: BTreeMap<Ipv6Addr, Sa>,
    pub default_mma_sa: Option<Sa>,
    pub links: Vec<LinkConfig>,
    pub lo_ifindex: u32,
    pub policy: Policy,
    pub overlap_ms: u64,
    pub grace_s: u32,
    pub tables: Tables,
}

impl CoreConfig {
    fn sa(&self, kind: PeerKind, peer: Ipv6Addr) -> Option<Sa> {
        match kind {
            PeerKind::HomeAgent => Some(self.ha_sa.clone()),
            PeerKind::Mma => self
                .mma_sas
                .get(&peer)
                .or(self.default_mma_sa.as_ref())
                .cloned(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// Interface operational state (also its initial state at start).
    Link {
        ifindex: u32,
        up: bool,
    },
    RouterAdvert {
        ifindex: u32,
        src: Ipv6Addr,
        hop_limit: u8,
        bytes: &'a [u8],
    },
    Mobility {
        src: Ipv6Addr,
        bytes: &'a [u8],
    },
    /// A new reading of the interface's quality file (None: no file or unreadable).
    Quality {
        ifindex: u32,
        value: Option<u8>,
    },
    /// Tunnelled traffic arrived on this access link after a move (the shell's per-link
    /// packet counters, read around moves): the new path delivers.
    Delivered {
        ifindex: u32,
    },
    Tick,
}

/// A packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Send {
    /// A router solicitation on the link.
    Rs {
        ifindex: u32,
    },
    Bu(Outgoing),
}

/// What the driver must do, or count.
pub type Output = mipcast_proto::Output<Send, KernelChange, MetricEvent>;

/// First wait before registering again after a refusal (RFC 6275 §13:
/// INITIAL_BINDACK_TIMEOUT_FIRST_REG), doubled per refusal in a row up to MAX_BINDACK_TIMEOUT.
const RETRY_FIRST_MS: u64 = 1500;
const RETRY_MAX_MS: u64 = 32_000;

/// Between retries of kernel changes the kernel refused.
const KERNEL_RETRY_MS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverKind {
    IntraSite,
    InterSite,
    Home,
    Mipv6,
    Detach,
}

impl HandoverKind {
    pub fn label(self) -> &'static str {
        match self {
            HandoverKind::IntraSite => "intra_site",
            HandoverKind::InterSite => "inter_site",
            HandoverKind::Home => "home",
            HandoverKind::Mipv6 => "mipv6",
            HandoverKind::Detach => "detach",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum MetricEvent {
    RaReceived,
    Dropped(&'static str),
    Decision(&'static str),
    Handover(HandoverKind),
    /// outcome: accepted, deregistered, rejected_<status>, timeout.
    Registration {
        peer: PeerKind,
        outcome: String,
    },
    /// A handover between two links, by what caused it.
    HandoverCause(Cause),
    /// Authentic handoff advice about one of our links (reason label).
    AdviceReceived(&'static str),
    /// Advice dropped: bad authenticator, replay, not about one of our links...
    AdviceRejected(&'static str),
    /// Advice made us leave the link.
    AdviceObeyed,
    /// Advice asked us to leave but no other link could take us: we stay.
    AdviceNoAlternative,
    /// Time from the first BU of a phase to its accepted BAck.
    Phase {
        phase: &'static str,
        ms: u64,
    },
    /// The kernel refused a change; it is tried again until it holds.
    KernelRefused {
        change: String,
        reason: String,
    },
}

/// Where we are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Attach {
    Detached,
    Home { ifindex: u32 },
    Site { ifindex: u32, mma: Ipv6Addr },
    Mipv6 { ifindex: u32, coa: Ipv6Addr },
}

impl Attach {
    pub fn ifindex(&self) -> Option<u32> {
        match *self {
            Attach::Detached => None,
            Attach::Home { ifindex }
            | Attach::Site { ifindex, .. }
            | Attach::Mipv6 { ifindex, .. } => Some(ifindex),
        }
    }
}

/// A previous MMA tunnelling to one of our addresses until `until` (in plain Mobile IPv6: the
/// home agent to the previous care-of address, see `mipv6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub from: Ipv6Addr,
    pub to: Ipv6Addr,
    #[serde(skip)]
    pub until: Millis,
}

/// Waiting for the new MMA's acknowledgement before telling the home agent and the old MMA.
#[derive(Clone, Copy, Debug)]
struct PendingSite {
    mma: Ipv6Addr,
    previous: Option<Ipv6Addr>,
}

/// What survives a restart (sequence numbers must keep increasing; a registration we held
/// must be undone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub next_seq: BTreeMap<Ipv6Addr, u16>,
    pub last_mma: Option<Ipv6Addr>,
    pub ha_registered: bool,
}

/// Snapshot for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub mode: Mode,
    pub home_address: Ipv6Addr,
    pub group: Ipv6Addr,
    pub attachment: Attach,
    pub care_of_address: Option<Ipv6Addr>,
    pub links: Vec<LinkStatus>,
    pub registrations: Vec<reg::Registration>,
    pub forwards: Vec<Forward>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinkStatus {
    pub name: String,
    pub ifindex: u32,
    pub up: bool,
    pub quality: Option<u8>,
    /// The moving average of the quality readings.
    pub smoothed_quality: Option<f64>,
    pub level: Level,
    /// Handoff advice in force: the reason byte, seconds left.
    pub avoid: Option<(u8, u64)>,
    /// Being prepared as the next link (the current one is degrading).
    pub prepared: bool,
    /// RS/RA probes: round trip (ms), share lost (%), probes sent.
    pub probe_rtt_ms: Option<f64>,
    pub probe_loss_percent: f64,
    pub probes: u64,
    pub score: Option<i64>,
    pub router: Option<RouterInfo>,
    pub address: Option<Ipv6Addr>,
}

pub struct Core {
    cfg: CoreConfig,
    links: Vec<Link>,
    selected: Option<u32>,
    selected_since: Millis,
    attach: Attach,
    client: Client,
    last_mma: Option<Ipv6Addr>,
    ha_registered: bool,
    pending_site: Option<PendingSite>,
    /// A registration of the current attachment that a peer refused, to be tried again
    /// (RFC 6275 §11.7.1 back-off: 1.5 s doubling to 32 s): when, and with whom.
    retry: Option<(Millis, PeerKind)>,
    /// Refusals in a row, for the back-off; an accepted registration resets it.
    refusals: u32,
    /// A peer refused the attachment's registration for good (a status other than 130):
    /// nothing is retried until the attachment changes.
    refused_for_good: bool,
    overlap: Option<(Membership, Millis)>,
    /// The current link delivered tunnelled traffic since the last move.
    delivered: bool,
    /// The forwarding request to the previous MMA (previous MMA, new care-of address),
    /// held while the old site still delivers during an inter-site overlap.
    deferred_forward: Option<(Ipv6Addr, Ipv6Addr)>,
    /// The home link just left (ifindex, until): the uplink stays native on it meanwhile
    /// (see `home`).
    left_home: Option<(u32, Millis)>,
    forwards: Vec<Forward>,
    /// What the kernel holds of what we asked for: only changes it carried out.
    applied: Desired,
    last_decision: Option<Decision>,
    /// Outputs not yet handed to the driver.
    queue: VecDeque<Output>,
    /// The time of the last input, for [`Machine::poll_timeout`].
    last_now: Millis,
    /// When to try refused kernel changes again.
    kernel_retry: Option<Millis>,
    /// The candidate prepared while the current link degrades, and since when.
    prepared: Option<u32>,
    prepared_at: Millis,
    /// Timestamp of the last accepted handoff advice per MMA (replay protection).
    advice_ts: BTreeMap<Ipv6Addr, u64>,
    /// Advice accepted in this step, not yet obeyed or reported unheeded.
    fresh_advice: bool,
    /// The candidate MMA registered with ahead of a move, and the link it is on.
    pre_registered: Option<(Ipv6Addr, u32)>,
    /// A pre-registration being undone: its deregistration goes from the same link.
    undoing: Option<(Ipv6Addr, u32)>,
    /// Interfaces brought up to be prepared ([`raise`]), and those found up already.
    raised: BTreeSet<u32>,
    declined: BTreeSet<u32>,
}

impl Core {
    pub fn new(cfg: CoreConfig, persisted: Persisted) -> Core {
        let links = cfg.links.iter().cloned().map(Link::new).collect();
        let client = Client::with_sequences(persisted.next_seq);
        Core {
            cfg,
            links,
            selected: None,
            selected_since: Millis(0),
            attach: Attach::Detached,
            client,
            last_mma: persisted.last_mma,
            ha_registered: persisted.ha_registered,
            pending_site: None,
            retry: None,
            refusals: 0,
            refused_for_good: false,
            overlap: None,
            delivered: false,
            deferred_forward: None,
            left_home: None,
            forwards: Vec::new(),
            applied: Desired::default(),
            last_decision: None,
            queue: VecDeque::new(),
            last_now: Millis(0),
            kernel_retry: None,
            prepared: None,
            prepared_at: Millis(0),
            advice_ts: BTreeMap::new(),
            fresh_advice: false,
            pre_registered: None,
            undoing: None,
            raised: BTreeSet::new(),
            declined: BTreeSet::new(),
        }
    }

    pub fn persisted(&self) -> Persisted {
        Persisted {
            next_seq: self.client.next_seq.clone(),
            last_mma: self.last_mma,
            ha_registered: self.ha_registered,
        }
    }

    pub fn attachment(&self) -> Attach {
        self.attach
    }

    /// The care-of address the home agent knows us by (None at home or detached).
    pub fn care_of_address(&self) -> Option<Ipv6Addr> {
        match self.attach {
            Attach::Site { mma, .. } => Some(
                self.client
                    .get(&mma)
                    .and_then(|r| r.assigned_coa)
                    .unwrap_or(mma),
            ),
            Attach::Mipv6 { coa, .. } => Some(coa),
            _ => None,
        }
    }

    /// Kernel state the kernel has carried out so far.
    pub fn applied(&self) -> &Desired {
        &self.applied
    }

    /// Reloadable settings: selection policy, interface preference and cost, lifetime,
    /// overlap, grace and keys. Returns what changed, for the log.
    pub fn reload(&mut self, new: &CoreConfig) -> Vec<String> {
        let mut changed = Vec::new();
        if self.cfg.policy != new.policy {
            changed.push(format!(
                "selection {:?} -> {:?}",
                self.cfg.policy, new.policy
            ));
        }
        if self.cfg.lifetime_s != new.lifetime_s {
            changed.push(format!(
                "binding_lifetime {} -> {} s",
                self.cfg.lifetime_s, new.lifetime_s
            ));
        }
        if self.cfg.overlap_ms != new.overlap_ms || self.cfg.grace_s != new.grace_s {
            changed.push(format!(
                "handover overlap {} ms / grace {} s",
                new.overlap_ms, new.grace_s
            ));
        }
        if self.cfg.ha_sa != new.ha_sa
            || self.cfg.mma_sas != new.mma_sas
            || self.cfg.default_mma_sa != new.default_mma_sa
        {
            changed.push("security associations".to_owned());
        }
        for l in &mut self.links {
            if let Some(n) = new.links.iter().find(|n| n.ifindex == l.cfg.ifindex) {
                if (n.preference, n.cost) != (l.cfg.preference, l.cfg.cost) {
                    changed.push(format!(
                        "{}: preference {} cost {}",
                        n.name, n.preference, n.cost
                    ));
                    l.cfg.preference = n.preference;
                    l.cfg.cost = n.cost;
                }
            }
        }
        self.cfg.policy = new.policy;
        self.cfg.lifetime_s = new.lifetime_s;
        self.cfg.overlap_ms = new.overlap_ms;
        self.cfg.grace_s = new.grace_s;
        self.cfg.ha_sa = new.ha_sa.clone();
        self.cfg.mma_sas = new.mma_sas.clone();
        self.cfg.default_mma_sa = new.default_mma_sa.clone();
        changed
    }

    /// The earliest time after `now` at which [`Machine::handle_timeout`] has timer work.
    pub fn next_deadline(&self, now: Millis) -> Option<Millis> {
        let ra_expiry = self.links.iter().filter_map(|l| {
            l.ra.as_ref()
                .map(|r| Millis(r.last_seen.0.saturating_add(self.cfg.policy.ra_timeout_ms)))
        });
        let dwell = match self.last_decision {
            Some(Decision::HeldByDwell { .. }) => Some(Millis(
                self.selected_since
                    .0
                    .saturating_add(self.cfg.policy.min_dwell_ms),
            )),
            _ => None,
        };
        [
            self.client.next_deadline(),
            self.overlap.map(|(_, u)| u),
            self.deferred_forward
                .and(self.overlap)
                .map(|(_, u)| Millis(u.0.saturating_sub(FORWARD_LEAD_MS))),
            dwell,
            self.retry.map(|(at, _)| at),
            self.left_home.map(|(_, until)| until),
        ]
        .into_iter()
        .flatten()
        .chain(ra_expiry)
        .chain(self.forwards.iter().map(|f| f.until))
        .chain(self.links.iter().filter_map(|l| l.rs_next))
        .chain(self.links.iter().filter_map(|l| l.avoid.map(|a| a.until)))
        .chain(self.links.iter().filter_map(|l| l.probe.next))
        .chain(
            self.links
                .iter()
                .any(|l| l.converging(now, self.cfg.policy.levels.time_constant_ms))
                .then(|| now.plus_ms(SMOOTH_TICK_MS)),
        )
        .filter(|t| *t > now)
        .min()
    }

    pub fn status(&self, now: Millis) -> Status {
        Status {
            mode: self.cfg.mode,
            home_address: self.cfg.hoa,
            group: self.cfg.group,
            attachment: self.attach,
            care_of_address: self.care_of_address(),
            links: self
                .links
                .iter()
                .map(|l| LinkStatus {
                    name: l.cfg.name.clone(),
                    ifindex: l.cfg.ifindex,
                    up: l.up,
                    quality: l.quality,
                    smoothed_quality: l
                        .smoothed(now, self.cfg.policy.levels.time_constant_ms)
                        .map(|s| (s * 10.0).round() / 10.0),
                    level: l.level,
                    avoid: l
                        .avoid
                        .filter(|a| a.until > now)
                        .map(|a| (a.reason, a.until.0.saturating_sub(now.0) / 1000)),
                    prepared: self.prepared == Some(l.cfg.ifindex),
                    probe_rtt_ms: l.probe.rtt_ms.map(|r| r.round()),
                    probe_loss_percent: (l.probe.loss * 1000.0).round() / 10.0,
                    probes: l.probe.count,
                    score: l.score(now, &self.cfg.policy),
                    router: l.ra.clone(),
                    address: l.onlink_address(),
                })
                .collect(),
            registrations: self.client.regs.values().cloned().collect(),
            forwards: self.forwards.clone(),
        }
    }

    /// Handles one event and queues what follows from it: the kernel changes between what
    /// the kernel holds and what is wanted now, then the messages.
    fn step(&mut self, event: Event<'_>, now: Now) {
        self.last_now = now.mono;
        if self.kernel_retry.is_some_and(|at| at <= now.mono) {
            self.kernel_retry = None;
        }
        let mut out = Out::default();
        let mut reattach = false;
        match event {
            Event::Link { ifindex, up } => self.on_link(ifindex, up, now, &mut out),
            Event::RouterAdvert {
                ifindex,
                src,
                hop_limit,
                bytes,
            } => {
                reattach = self.on_ra(ifindex, src, hop_limit, bytes, now, &mut out);
            }
            Event::Mobility { src, bytes } => self.on_mh(src, bytes, now, &mut out),
            Event::Quality { ifindex, value } => {
                let levels = self.cfg.policy.levels;
                if let Some(l) = self.link_mut(ifindex) {
                    if l.quality != value {
                        tracing::info!(link = %l.cfg.name, ?value, "link quality changed");
                    }
                    l.feed(value, now.mono, &levels);
                }
            }
            Event::Delivered { ifindex } => self.on_delivered(ifindex, now.mono),
            Event::Tick => {}
        }
        self.poll_timers(now, &mut out);
        self.update_levels(now.mono);
        self.reselect(now, reattach, &mut out);
        self.prepare(now, &mut out);
        let desired = self.desired(now.mono);
        let (before, after) = kernel::split_for_signalling(kernel::diff(&self.applied, &desired));
        self.queue.extend(before.into_iter().map(Output::Kernel));
        self.queue
            .extend(out.sends.into_iter().map(|bu| Output::Send(Send::Bu(bu))));
        self.queue.extend(after.into_iter().map(Output::Kernel));
        self.queue.extend(out.other);
    }

    /// Levels on the averages at `now`; advice whose avoid time ran out is forgotten.
    fn update_levels(&mut self, now: Millis) {
        let levels = self.cfg.policy.levels;
        for l in &mut self.links {
            let before = l.level;
            l.update_level(now, &levels);
            if l.level != before {
                tracing::info!(link = %l.cfg.name, from = before.label(), to = l.level.label(),
                    smoothed = ?l.smoothed(now, levels.time_constant_ms), "link quality level");
            }
            if l.avoid.is_some_and(|a| a.until <= now) {
                tracing::info!(link = %l.cfg.name, "handoff advice expired");
                l.avoid = None;
            }
        }
    }

    /// Document 003's "degrading" action: while the current link degrades, the best other
    /// link is prepared (its router solicited when we know none, and, within the same site,
    /// the terminal group joined there already, so the move needs no BU and loses nothing);
    /// once the current link is stable again, or we moved, preparation stops.
    fn prepare(&mut self, now: Now, out: &mut Out) {
        let degrading_below = self.cfg.policy.levels.degrading_below;
        let always = self.cfg.policy.prepare_always;
        let want = self.selected.and_then(|c| {
            // The raw reading under the threshold counts too: it is the earliest sign (the
            // average lags it by its time constant), and preparing is cheap and undone when
            // the link recovers.
            let degrading = always
                || self.link(c).is_some_and(|l| {
                    l.level == Level::Degrading || l.quality.is_some_and(|q| q < degrading_below)
                });
            // A candidate without a router yet is prepared too: it is solicited.
            degrading
                .then(|| {
                    links::candidate(&self.links, c, now.mono, &self.cfg.policy).or_else(|| {
                        self.links
                            .iter()
                            .find(|l| l.up && l.ra.is_none() && l.cfg.ifindex != c)
                            .map(|l| l.cfg.ifindex)
                    })
                })
                .flatten()
        });
        let want = want.or_else(|| self.link_to_raise(now.mono));
        self.update_raised(want);
        self.pre_register(want, now, out);
        if want == self.prepared {
            return;
        }
        match (self.prepared, want) {
            (Some(old), None) => {
                tracing::info!(
                    ifindex = old,
                    "current link no longer degrading (or we moved): preparation stopped"
                )
            }
            (_, Some(new)) => {
                tracing::info!(
                    ifindex = new,
                    "current link degrading: preparing the best candidate"
                );
                if let Some(l) = self.link_mut(new) {
                    // A link being brought up is solicited when it comes up.
                    if l.ra.is_none() && l.up {
                        l.rs_sent = 1;
                        l.rs_next = Some(now.mono.plus_ms(RS_INTERVAL_MS));
                        out.other.push(Output::Send(Send::Rs { ifindex: new }));
                    }
                }
            }
            (None, None) => {}
        }
        self.prepared = want;
        self.prepared_at = now.mono;
    }

    /// Pre-registration with the prepared candidate's MMA when it is another site's (policy
    /// `pre_register`), and its undoing when preparation stops without a move there.
    fn pre_register(&mut self, want: Option<u32>, now: Now, out: &mut Out) {
        if let Some((mma, ifindex)) = self.pre_registered {
            let moved_there = self.attach == Attach::Site { ifindex, mma };
            if moved_there {
                self.pre_registered = None;
            } else if want != Some(ifindex) {
                tracing::info!(%mma, "preparation stopped: undoing the pre-registration");
                self.pre_registered = None;
                self.undoing = Some((mma, ifindex));
                let src = self.link(ifindex).and_then(Link::onlink_address);
                let req = Request {
                    kind: PeerKind::Mma,
                    lifetime_s: 0,
                    alt_coa: None,
                    group: None,
                    forward: None,
                    previous_mma: None,
                };
                self.start(mma, req, src, now, out);
            }
        }
        let Attach::Site { mma: current, .. } = self.attach else {
            return;
        };
        let (true, None, Some(c)) = (self.cfg.policy.pre_register, self.pre_registered, want)
        else {
            return;
        };
        let Some(l) = self.link(c) else { return };
        let (Some(mma), Some(src)) = (l.ra.as_ref().and_then(|r| r.mma), l.onlink_address()) else {
            return;
        };
        if mma == current || self.cfg.mode != Mode::Site {
            return;
        }
        tracing::info!(%mma, link = %l.cfg.name, "pre-registering with the candidate site's MMA (request handoff)");
        self.pre_registered = Some((mma, c));
        let request = Request {
            previous_mma: Some(current),
            ..self.mma_request()
        };
        self.start(mma, request, Some(src), now, out);
    }

    /// The group membership on the prepared link when it is in the current site.
    fn prepared_membership(&self) -> Option<Membership> {
        let Attach::Site { ifindex, mma } = self.attach else {
            return None;
        };
        let p = self.prepared.filter(|p| *p != ifindex)?;
        let same_site = self
            .link(p)
            .and_then(|l| l.ra.as_ref())
            .is_some_and(|r| r.mma == Some(mma));
        same_site.then_some(Membership {
            ifindex: p,
            group: self.cfg.group,
            source: mma,
        })
    }

    /// Signed handoff advice from an MMA (sub-type 4 in a Binding Refresh Request): checked
    /// like a BAck (authenticator of the MMA's SA over our on-link address and home address,
    /// replay protection), then the link is avoided for the advised time. Selection weighs
    /// it: we leave at once if another good link exists, else stay and report it.
    fn on_advice(&mut self, src: Ipv6Addr, bytes: &[u8], repr: &MhRepr, now: Now, out: &mut Out) {
        let reject = |out: &mut Out, why: &'static str| {
            tracing::warn!(%src, why, "handoff advice ignored");
            out.other
                .push(Output::Event(MetricEvent::AdviceRejected(why)));
        };
        let Some(&Experimental::HandoffAdvice {
            reason,
            avoid_secs,
            link_address,
        }) = repr
            .experimental()
            .find(|e| matches!(e, Experimental::HandoffAdvice { .. }))
        else {
            return;
        };
        let Some(ifindex) = self
            .links
            .iter()
            .find(|l| l.onlink_address() == Some(link_address))
            .map(|l| l.cfg.ifindex)
        else {
            return reject(out, "unknown_link");
        };
        let Some(sa) = self.cfg.sa(PeerKind::Mma, src) else {
            return reject(out, "no_security_association");
        };
        let lookup = |spi: u32| (spi == sa.spi).then_some((sa.algorithm, &sa.key[..]));
        if auth::verify(bytes, &link_address, &self.cfg.hoa, lookup).is_err() {
            return reject(out, "authentication");
        }
        if repr.home_address() != Some(self.cfg.hoa) {
            return reject(out, "home_address");
        }
        let advertised = self
            .link(ifindex)
            .and_then(|l| l.ra.as_ref())
            .and_then(|r| r.mma);
        if advertised != Some(src) {
            return reject(out, "not_the_links_mma");
        }
        let Some(ts) = repr.replay_timestamp() else {
            return reject(out, "replay");
        };
        // NTP differences read as signed, as RFC 4285 timestamps are compared.
        #[allow(clippy::cast_possible_wrap)]
        let skew = ts.wrapping_sub(now.wall_ntp) as i64;
        let fresh = skew.unsigned_abs() <= mipcast_wire::ntp::ms_to_ntp_units(ADVICE_WINDOW_MS);
        #[allow(clippy::cast_possible_wrap)]
        let newer = self
            .advice_ts
            .get(&src)
            .is_none_or(|last| (ts.wrapping_sub(*last) as i64) > 0);
        if !fresh || !newer {
            return reject(out, "replay");
        }
        self.advice_ts.insert(src, ts);
        let label = match reason {
            advice_reason::CONGESTION => "congestion",
            advice_reason::MAINTENANCE => "maintenance",
            advice_reason::ADMISSION_REFUSED => "admission_refused",
            _ => "other",
        };
        out.other
            .push(Output::Event(MetricEvent::AdviceReceived(label)));
        if let Some(l) = self.link_mut(ifindex) {
            tracing::info!(link = %l.cfg.name, mma = %src, reason = label, avoid_secs, "handoff advice: avoiding the link");
            l.avoid = Some(Avoid {
                until: now.mono.plus_ms(u64::from(avoid_secs) * 1000),
                reason,
            });
        }
        // Advice about a link we are not on only keeps us off it.
        self.fresh_advice = self.selected == Some(ifindex);
    }

    fn link_mut(&mut self, ifindex: u32) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.cfg.ifindex == ifindex)
    }

    fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.cfg.ifindex == ifindex)
    }

    fn on_link(&mut self, ifindex: u32, up: bool, now: Now, out: &mut Out) {
        let Some(l) = self.link_mut(ifindex) else {
            return;
        };
        if l.up == up {
            return;
        }
        tracing::info!(link = %l.cfg.name, up, "link state changed");
        l.up = up;
        if up {
            l.rs_sent = 1;
            l.rs_next = Some(now.mono + Duration::from_millis(RS_INTERVAL_MS));
            out.other.push(Output::Send(Send::Rs { ifindex }));
        } else {
            l.ra = None;
            l.rs_next = None;
            l.probe = links::Probe::default();
            // An administratively downed interface loses its routes in the kernel: forget
            // them so they are installed again when it is used next.
            self.applied.objects.retain(|o| match o {
                KObject::EncapRoute { oif, .. }
                | KObject::DecapRoute { oif, .. }
                | KObject::GatewayRoute { oif, .. } => *oif != ifindex,
                _ => true,
            });
            if self
                .applied
                .default_route
                .is_some_and(|r| r.ifindex == ifindex)
            {
                self.applied.default_route = None;
            }
        }
    }

    /// Records the advertisement; true when it changes the attachment of the current link.
    fn on_ra(
        &mut self,
        ifindex: u32,
        src: Ipv6Addr,
        hop_limit: u8,
        bytes: &[u8],
        now: Now,
        out: &mut Out,
    ) -> bool {
        let drop = |out: &mut Out, reason: &'static str| {
            tracing::debug!(ifindex, %src, reason, "router advertisement dropped");
            out.other.push(Output::Event(MetricEvent::Dropped(reason)));
            false
        };
        if hop_limit != 255 {
            return drop(out, "ra_hop_limit");
        }
        if !src.is_unicast_link_local() {
            return drop(out, "ra_source_not_link_local");
        }
        let ra = match NdRepr::parse(bytes) {
            Ok(NdRepr::RouterAdvert(ra)) => ra,
            Ok(NdRepr::RouterSolicit { .. }) => return false,
            Err(e) => return drop(out, e.label()),
        };
        let selected = self.selected;
        let Some(l) = self.link_mut(ifindex) else {
            return false;
        };
        out.other.push(Output::Event(MetricEvent::RaReceived));
        if !l.up {
            return false;
        }
        let info = RouterInfo::from_advert(src, &ra, now.mono);
        if ra.router_lifetime == 0 {
            // Not a default router (RFC 4861 §6.3.4): nothing to attach through.
            if l.ra.as_ref().is_some_and(|r| r.router == src) {
                l.ra = None;
            }
            return false;
        }
        let moved = l.ra.as_ref().is_some_and(|old| !old.same_attachment(&info));
        if l.ra.is_none() || moved {
            tracing::info!(link = %l.cfg.name, router = %src, prefix = ?info.slaac_prefix, mma = ?info.mma,
                "router advertisement: new attachment information");
        }
        l.ra = Some(info);
        l.rs_next = None;
        l.probe.answered(now.mono);
        moved && selected == Some(ifindex)
    }

    fn on_mh(&mut self, src: Ipv6Addr, bytes: &[u8], now: Now, out: &mut Out) {
        let repr = match MhRepr::parse(bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%src, error = %e, "mobility header dropped");
                out.other
                    .push(Output::Event(MetricEvent::Dropped(e.label())));
                return;
            }
        };
        match repr.message {
            Message::BindingAck(_) => {
                let cfg = &self.cfg;
                let sa = |k, p| cfg.sa(k, p);
                let ctx = Ctx {
                    hoa: cfg.hoa,
                    sa: &sa,
                };
                let outcome = self
                    .client
                    .on_back(src, bytes, &repr, now.mono, now.wall_ntp, &ctx);
                self.on_ack_outcome(outcome, now, out);
            }
            Message::BindingRefreshRequest
                if repr
                    .experimental()
                    .any(|e| matches!(e, Experimental::HandoffAdvice { .. })) =>
            {
                self.on_advice(src, bytes, &repr, now, out);
            }
            Message::BindingRefreshRequest => {
                let source = self
                    .client
                    .get(&src)
                    .map(|r| r.request.kind)
                    .and_then(|k| self.src_for(k));
                let cfg = &self.cfg;
                let sa = |k, p| cfg.sa(k, p);
                let ctx = Ctx {
                    hoa: cfg.hoa,
                    sa: &sa,
                };
                match self
                    .client
                    .refresh_now(src, source, now.mono, now.wall_ntp, &ctx)
                {
                    Some(bu) => {
                        tracing::info!(peer = %src, seq = bu.seq, "binding refresh request: re-registering");
                        out.sends.push(bu);
                    }
                    None => {
                        tracing::debug!(peer = %src, "binding refresh request for no binding of ours; ignored")
                    }
                }
            }
            Message::BindingError(be) => {
                tracing::warn!(peer = %src, status = be.status, home_address = %be.home_address, "binding error received");
            }
            Message::BindingUpdate(_) => {
                out.other.push(Output::Event(MetricEvent::Dropped(
                    "unexpected_binding_update",
                )));
            }
        }
    }

    fn on_ack_outcome(&mut self, outcome: AckOutcome, now: Now, out: &mut Out) {
        match outcome {
            AckOutcome::Ignored(why) => {
                tracing::debug!(why, "binding acknowledgement ignored");
                out.other
                    .push(Output::Event(MetricEvent::Dropped("back_ignored")));
            }
            AckOutcome::Resync { peer, status } => {
                tracing::info!(%peer, status, "binding acknowledgement asks to resynchronise; resending");
                out.other.push(Output::Event(MetricEvent::Registration {
                    peer: self
                        .client
                        .get(&peer)
                        .map_or(PeerKind::Mma, |r| r.request.kind),
                    outcome: format!("resync_{status}"),
                }));
                let source = self
                    .client
                    .get(&peer)
                    .and_then(|r| self.src_for(r.request.kind));
                let cfg = &self.cfg;
                let sa = |k, p| cfg.sa(k, p);
                let ctx = Ctx {
                    hoa: cfg.hoa,
                    sa: &sa,
                };
                out.sends.extend(
                    self.client
                        .resend(peer, source, now.mono, now.wall_ntp, &ctx),
                );
            }
            AckOutcome::Rejected { peer, kind, status } => {
                tracing::warn!(%peer, kind = kind.label(), status, "registration rejected");
                out.other.push(Output::Event(MetricEvent::Registration {
                    peer: kind,
                    outcome: format!("rejected_{status}"),
                }));
                // The attachment still needs this registration: try again after a back-off.
                // Refused deregistrations are left; the bindings expire.
                // Only "insufficient resources" (130, also a revocation after the peer's
                // kernel refused the binding) can pass: the registration is tried again after a
                // back-off (see `ensure_registrations`). Other refusals are configuration.
                let current = match (self.attach, kind) {
                    (Attach::Site { mma, .. }, PeerKind::Mma) => mma == peer,
                    (Attach::Site { .. } | Attach::Mipv6 { .. }, PeerKind::HomeAgent) => {
                        peer == self.cfg.home_agent
                    }
                    _ => false,
                };
                if current && status != mipcast_wire::mh::back_status::INSUFFICIENT_RESOURCES {
                    self.refused_for_good = true;
                }
                if current {
                    self.schedule_retry(kind, now);
                } else if self.pending_site.is_some_and(|p| p.mma == peer) {
                    self.pending_site = None;
                }
                // The candidate site does not admit us: keep off its link for a while.
                if let Some((mma, ifindex)) = self.pre_registered.filter(|(m, _)| *m == peer) {
                    tracing::warn!(%mma, status, "the candidate site did not admit us; avoiding its link");
                    self.pre_registered = None;
                    self.client.forget(mma);
                    out.other.push(Output::Event(MetricEvent::AdviceReceived(
                        "admission_refused",
                    )));
                    if let Some(l) = self.link_mut(ifindex) {
                        l.avoid = Some(Avoid {
                            until: now.mono.plus_ms(NOT_ADMITTED_AVOID_MS),
                            reason: advice_reason::ADMISSION_REFUSED,
                        });
                    }
                }
            }
            AckOutcome::Accepted {
                peer,
                kind,
                deregistration,
                assigned_coa,
                elapsed_ms,
            } => {
                let outcome = if deregistration {
                    "deregistered"
                } else {
                    "accepted"
                };
                tracing::info!(%peer, kind = kind.label(), outcome, ?assigned_coa, elapsed_ms, "registration acknowledged");
                out.other.push(Output::Event(MetricEvent::Registration {
                    peer: kind,
                    outcome: outcome.to_owned(),
                }));
                let phase = match (kind, deregistration) {
                    (PeerKind::Mma, false) => "mma_registration",
                    (PeerKind::Mma, true) => "mma_deregistration",
                    (PeerKind::HomeAgent, false) => "home_registration",
                    (PeerKind::HomeAgent, true) => "home_deregistration",
                };
                out.other.push(Output::Event(MetricEvent::Phase {
                    phase,
                    ms: elapsed_ms,
                }));
                if kind == PeerKind::HomeAgent {
                    self.ha_registered = !deregistration;
                }
                if deregistration && self.undoing.is_some_and(|(m, _)| m == peer) {
                    self.undoing = None;
                }
                if !deregistration {
                    self.refusals = 0;
                }
                if kind == PeerKind::Mma && !deregistration {
                    if let Some(p) = self.pending_site.filter(|p| p.mma == peer) {
                        self.pending_site = None;
                        self.site_registered(p, assigned_coa.unwrap_or(peer), now, out);
                    }
                }
            }
        }
    }

    /// The new MMA accepted us: tell the home agent our new CoA and the previous MMA to
    /// forward to our new on-link address for the grace period.
    fn site_registered(&mut self, p: PendingSite, coa: Ipv6Addr, now: Now, out: &mut Out) {
        self.last_mma = Some(p.mma);
        let Attach::Site { ifindex, .. } = self.attach else {
            return;
        };
        let onlink = self.link(ifindex).and_then(Link::onlink_address);
        self.start(self.cfg.home_agent, self.ha_request(coa), onlink, now, out);
        if let (Some(prev), Some(new_coa)) = (p.previous, onlink) {
            // While the old site still delivers (make before break), the old MMA keeps sending
            // down the old tree: asked to forward now, it would send what reaches it on a
            // longer way (one more WAN crossing) instead. The request goes shortly before the
            // overlap ends, when the home agent has long moved the traffic (see
            // `send_deferred_forward`).
            if self.old_site_link(now.mono, prev).is_some() {
                self.deferred_forward = Some((prev, new_coa));
            } else {
                self.deregister_mma(prev, new_coa, onlink, now, out);
            }
        }
    }

    /// Sends the held forwarding request when the overlap is about to end, or at once when the
    /// old link went. It takes the shortest path: out of the old link, from the address
    /// registered there, while the link works (a host route through the old router, see
    /// `desired`); else from the current address straight to the old MMA.
    fn send_deferred_forward(&mut self, now: Now, out: &mut Out) {
        let Some((prev, new_coa)) = self.deferred_forward else {
            return;
        };
        let old = self.old_site_link(now.mono, prev).map(Link::onlink_address);
        let due = self
            .overlap
            .is_none_or(|(_, until)| until.0.saturating_sub(FORWARD_LEAD_MS) <= now.mono.0);
        if old.is_some() && !due {
            return;
        }
        let via_old_link = old.is_some();
        let src = old.flatten().or_else(|| {
            self.attach
                .ifindex()
                .and_then(|i| self.link(i)?.onlink_address())
        });
        self.deferred_forward = None;
        tracing::info!(mma = %prev, %new_coa, via_old_link, "forwarding request to the previous MMA");
        self.deregister_mma(prev, new_coa, src, now, out);
    }

    /// Traffic arrived on `ifindex` after a move. When that is the current link during an
    /// inter-site overlap, the home agent has moved the traffic to the new site: the old
    /// site's membership is kept only for [`DELIVERED_DRAIN_MS`] more (the overlap's timeout
    /// still bounds it), and the held forwarding request becomes due.
    fn on_delivered(&mut self, ifindex: u32, now: Millis) {
        let Attach::Site {
            ifindex: current,
            mma,
        } = self.attach
        else {
            return;
        };
        if ifindex != current || self.delivered {
            return;
        }
        self.delivered = true;
        if let Some((m, until)) = self.overlap.filter(|(m, _)| m.source != mma) {
            let end = until.min(now.plus_ms(DELIVERED_DRAIN_MS));
            tracing::info!(
                link = ifindex,
                left_ms = end.0.saturating_sub(now.0),
                "the new site delivers: ending the overlap with the old one"
            );
            self.overlap = Some((m, end));
        }
    }

    /// Whether the home agent has accepted the care-of address of the current site (its BAck
    /// came), or the new site already delivers (the home agent moved the traffic).
    fn home_agent_moved(&self, mma: Ipv6Addr) -> bool {
        if self.delivered {
            return true;
        }
        let Some(coa) = self
            .client
            .get(&mma)
            .filter(|r| r.state == reg::State::Bound)
            .map(|r| r.assigned_coa.unwrap_or(mma))
        else {
            return false;
        };
        self.client
            .get(&self.cfg.home_agent)
            .is_some_and(|r| r.state == reg::State::Bound && r.request.alt_coa == Some(coa))
    }

    /// The old site's link during an inter-site overlap with `old_mma`, while it is up.
    fn old_site_link(&self, now: Millis, old_mma: Ipv6Addr) -> Option<&Link> {
        let (m, until) = self.overlap?;
        if until <= now || m.source != old_mma {
            return None;
        }
        self.link(m.ifindex)
            .filter(|l| l.up && l.ra.as_ref().is_some_and(|r| r.mma == Some(old_mma)))
    }

    /// Registration with a site's MMA.
    fn mma_request(&self) -> Request {
        Request {
            kind: PeerKind::Mma,
            lifetime_s: self.cfg.lifetime_s,
            alt_coa: None,
            group: Some(self.cfg.group),
            forward: None,
            // Only on an inter-site move (the pending site names the MMA we come from).
            previous_mma: self.pending_site.and_then(|p| p.previous),
        }
    }

    /// Registration of `coa` with the home agent.
    fn ha_request(&self, coa: Ipv6Addr) -> Request {
        Request {
            kind: PeerKind::HomeAgent,
            lifetime_s: self.cfg.lifetime_s,
            alt_coa: Some(coa),
            group: None,
            forward: None,
            previous_mma: None,
        }
    }

    /// Schedules the attachment's registration with `kind` again after the back-off, unless a
    /// peer refused it for good.
    fn schedule_retry(&mut self, kind: PeerKind, now: Now) {
        if self.refused_for_good || self.retry.is_some() {
            return;
        }
        let backoff = RETRY_FIRST_MS
            .saturating_mul(1 << self.refusals.min(5))
            .min(RETRY_MAX_MS);
        self.refusals = self.refusals.saturating_add(1);
        self.retry = Some((now.mono.plus_ms(backoff), kind));
        tracing::info!(
            kind = kind.label(),
            backoff_ms = backoff,
            "registering again after the back-off"
        );
    }

    /// The attachment's registrations are state to converge on, like its kernel state: one it
    /// needs but no longer has (refused with 130, given up after the maximum back-off, lost in
    /// a race with a move) is scheduled again.
    fn ensure_registrations(&mut self, now: Now) {
        let ha = self.cfg.home_agent;
        let missing = match self.attach {
            Attach::Site { mma, .. } => match self.client.get(&mma) {
                None => Some(PeerKind::Mma),
                Some(r) if r.state == reg::State::Bound && self.client.get(&ha).is_none() => {
                    Some(PeerKind::HomeAgent)
                }
                Some(_) => None,
            },
            Attach::Mipv6 { .. } => self
                .client
                .get(&ha)
                .is_none()
                .then_some(PeerKind::HomeAgent),
            Attach::Home { .. } | Attach::Detached => None,
        };
        if let Some(kind) = missing {
            self.schedule_retry(kind, now);
        }
    }

    /// The refused registration of the current attachment, again.
    fn retry_registration(&mut self, kind: PeerKind, now: Now, out: &mut Out) {
        match (self.attach, kind) {
            (Attach::Site { ifindex, mma }, PeerKind::Mma) => {
                let src = self.link(ifindex).and_then(Link::onlink_address);
                if self.pending_site.is_none_or(|p| p.mma != mma) {
                    self.pending_site = Some(PendingSite {
                        mma,
                        previous: self.last_mma.filter(|p| *p != mma),
                    });
                }
                self.start(mma, self.mma_request(), src, now, out);
            }
            (Attach::Site { ifindex, mma }, PeerKind::HomeAgent) => {
                let coa = self
                    .client
                    .get(&mma)
                    .and_then(|r| r.assigned_coa)
                    .unwrap_or(mma);
                let src = self.link(ifindex).and_then(Link::onlink_address);
                self.start(self.cfg.home_agent, self.ha_request(coa), src, now, out);
            }
            (Attach::Mipv6 { coa, .. }, PeerKind::HomeAgent) => {
                let mut req = self.ha_request(coa);
                req.alt_coa = None;
                self.start(self.cfg.home_agent, req, Some(coa), now, out);
            }
            _ => {}
        }
    }

    fn deregister_mma(
        &mut self,
        mma: Ipv6Addr,
        new_coa: Ipv6Addr,
        src: Option<Ipv6Addr>,
        now: Now,
        out: &mut Out,
    ) {
        let req = Request {
            kind: PeerKind::Mma,
            lifetime_s: 0,
            alt_coa: None,
            group: None,
            forward: Some((new_coa, self.cfg.grace_s)),
            previous_mma: None,
        };
        self.start(mma, req, src, now, out);
        self.forwards.retain(|f| f.from != mma);
        self.forwards.push(Forward {
            from: mma,
            to: new_coa,
            until: now.mono + Duration::from_secs(u64::from(self.cfg.grace_s)),
        });
    }

    fn start(
        &mut self,
        peer: Ipv6Addr,
        req: Request,
        src: Option<Ipv6Addr>,
        now: Now,
        out: &mut Out,
    ) {
        tracing::info!(%peer, kind = req.kind.label(), lifetime_s = req.lifetime_s, alt_coa = ?req.alt_coa,
            forward = ?req.forward, ?src, "sending binding update");
        let cfg = &self.cfg;
        let sa = |k, p| cfg.sa(k, p);
        let ctx = Ctx {
            hoa: cfg.hoa,
            sa: &sa,
        };
        let kind = req.kind;
        match self
            .client
            .start(peer, req, src, now.mono, now.wall_ntp, &ctx)
        {
            Some(bu) => out.sends.push(bu),
            None if self.cfg.sa(kind, peer).is_none() => {
                tracing::warn!(%peer, kind = kind.label(), "no security association for this peer; not registering");
                self.client.forget(peer);
            }
            None => {
                tracing::info!(%peer, "no source address yet; the binding update waits for its timer")
            }
        }
    }

    /// Source address for BUs to a peer kind right now.
    fn src_for(&self, _kind: PeerKind) -> Option<Ipv6Addr> {
        match self.attach {
            Attach::Detached => None,
            Attach::Home { .. } => Some(self.cfg.hoa),
            Attach::Site { ifindex, .. } | Attach::Mipv6 { ifindex, .. } => {
                self.link(ifindex).and_then(Link::onlink_address)
            }
        }
    }

    fn poll_timers(&mut self, now: Now, out: &mut Out) {
        let interval = self.cfg.policy.probe_interval_ms;
        for l in self.links.iter_mut().filter(|_| interval > 0) {
            // Probes start once the link has a router (before that, RS retries run).
            if !l.up || l.ra.is_none() {
                continue;
            }
            match l.probe.next {
                None => l.probe.next = Some(now.mono.plus_ms(interval)),
                Some(t) if t <= now.mono => {
                    l.probe.send(now.mono, interval);
                    out.other.push(Output::Send(Send::Rs {
                        ifindex: l.cfg.ifindex,
                    }));
                }
                Some(_) => {}
            }
        }
        for l in &mut self.links {
            if l.rs_next.is_some_and(|t| t <= now.mono) {
                if l.up && l.ra.is_none() && l.rs_sent < MAX_RS {
                    l.rs_sent += 1;
                    l.rs_next = Some(now.mono + Duration::from_millis(RS_INTERVAL_MS));
                    out.other.push(Output::Send(Send::Rs {
                        ifindex: l.cfg.ifindex,
                    }));
                } else {
                    l.rs_next = None;
                }
            }
        }
        self.send_deferred_forward(now, out);
        if self.overlap.is_some_and(|(_, until)| until <= now.mono) {
            self.overlap = None;
        }
        if let Some((at, kind)) = self.retry.filter(|(at, _)| *at <= now.mono) {
            tracing::debug!(?at, kind = kind.label(), "registration retry due");
            self.retry = None;
            self.retry_registration(kind, now, out);
        }
        self.ensure_registrations(now);
        self.forwards.retain(|f| f.until > now.mono);
        let src = self.src_for(PeerKind::Mma);
        let cfg = &self.cfg;
        let sa = |k, p| cfg.sa(k, p);
        let ctx = Ctx {
            hoa: cfg.hoa,
            sa: &sa,
        };
        // A pre-registration goes on from the candidate link's address.
        let via = |p: Option<(Ipv6Addr, u32)>| {
            p.and_then(|(mma, ifindex)| Some((mma, self.link(ifindex)?.onlink_address()?)))
        };
        let (pre_src, undo_src) = (via(self.pre_registered), via(self.undoing));
        let src_of = |_: PeerKind, peer: Ipv6Addr| match (pre_src, undo_src) {
            (Some((mma, a)), _) | (_, Some((mma, a))) if mma == peer => Some(a),
            _ => src,
        };
        let (sends, events) = self.client.poll(now.mono, now.wall_ntp, &src_of, &ctx);
        out.sends.extend(sends);
        for e in events {
            match e {
                TimerEvent::GaveUp { peer, kind } => {
                    tracing::warn!(%peer, kind = kind.label(), "no binding acknowledgement after the maximum back-off; giving up for now");
                    out.other.push(Output::Event(MetricEvent::Registration {
                        peer: kind,
                        outcome: "timeout".to_owned(),
                    }));
                }
                TimerEvent::Expired { peer, kind } => {
                    tracing::warn!(%peer, kind = kind.label(), "binding lifetime expired before a refresh was acknowledged");
                }
            }
        }
    }

    fn scores(&self, now: Millis) -> Vec<(String, Option<i64>)> {
        self.links
            .iter()
            .map(|l| (l.cfg.name.clone(), l.score(now, &self.cfg.policy)))
            .collect()
    }

    fn reselect(&mut self, now: Now, reattach: bool, out: &mut Out) {
        let decision = links::select(
            &self.links,
            self.selected,
            self.selected_since,
            now.mono,
            &self.cfg.policy,
        );
        if self.last_decision != Some(decision) {
            tracing::info!(decision = decision.label(), ?decision, scores = ?self.scores(now.mono),
                hysteresis = self.cfg.policy.hysteresis, min_dwell_ms = self.cfg.policy.min_dwell_ms, "link selection");
            out.other
                .push(Output::Event(MetricEvent::Decision(decision.label())));
            self.last_decision = Some(decision);
        }
        if let Decision::Switch {
            from: Some(from),
            to,
            cause,
        } = decision
        {
            if from != to && cause != Cause::Attach {
                out.other
                    .push(Output::Event(MetricEvent::HandoverCause(cause)));
                if cause == Cause::Advice {
                    out.other.push(Output::Event(MetricEvent::AdviceObeyed));
                }
            }
        }
        // Each accepted advice is answered once: obeyed (above) or reported here.
        if std::mem::take(&mut self.fresh_advice)
            && matches!(decision, Decision::AdvisedNoAlternative(_))
        {
            tracing::warn!(
                "handoff advice asks us to leave the link, but no other link can take us: staying"
            );
            out.other
                .push(Output::Event(MetricEvent::AdviceNoAlternative));
        }
        let chosen = match decision {
            Decision::None => None,
            Decision::Stay(c)
            | Decision::AdvisedNoAlternative(c)
            | Decision::HeldByDwell { current: c, .. }
            | Decision::HeldByHysteresis { current: c, .. } => Some(c),
            Decision::Switch { to, .. } => Some(to),
        };
        if chosen != self.selected {
            self.selected = chosen;
            self.selected_since = now.mono;
        }
        let target = chosen.map_or(Attach::Detached, |i| self.target(i));
        if target != self.attach || reattach {
            self.transition(target, now, out);
        }
    }

    /// What attaching through `ifindex` means.
    fn target(&self, ifindex: u32) -> Attach {
        let Some(l) = self.link(ifindex) else {
            return Attach::Detached;
        };
        let Some(ra) = &l.ra else {
            return Attach::Detached;
        };
        let home = self.cfg.home_prefix;
        if ra
            .prefixes
            .iter()
            .any(|(p, len)| *len == home.prefix() && home.contains(*p))
        {
            return Attach::Home { ifindex };
        }
        let Some(coa) = l.onlink_address() else {
            return Attach::Detached;
        };
        match (self.cfg.mode, ra.mma) {
            (Mode::Site, Some(mma)) => Attach::Site { ifindex, mma },
            _ => Attach::Mipv6 { ifindex, coa },
        }
    }

    fn transition(&mut self, new: Attach, now: Now, out: &mut Out) {
        let old = self.attach;
        self.attach = new;
        let kind = match new {
            Attach::Detached => HandoverKind::Detach,
            Attach::Site { mma, .. }
                if self.last_mma == Some(mma) && self.client.get(&mma).is_some() =>
            {
                HandoverKind::IntraSite
            }
            Attach::Site { .. } => HandoverKind::InterSite,
            Attach::Home { .. } => HandoverKind::Home,
            Attach::Mipv6 { .. } => HandoverKind::Mipv6,
        };
        tracing::info!(kind = kind.label(), ?old, ?new, "handover");
        out.other.push(Output::Event(MetricEvent::Handover(kind)));
        // A forwarding request held for the previous move: moot when we are back in its
        // site, otherwise due now (its overlap ends here).
        if let Some((prev, _)) = self.deferred_forward {
            if matches!(new, Attach::Site { mma, .. } if mma == prev) {
                self.deferred_forward = None;
            } else {
                self.overlap = None;
                self.send_deferred_forward(now, out);
            }
        }
        self.keep_previous_coa(old, new, now.mono);
        self.overlap = None;
        self.left_home = None;
        self.delivered = false;
        self.retry = None;
        self.refused_for_good = false;
        // A registration with an MMA we are no longer heading for is abandoned.
        if let Some(p) = self.pending_site {
            if !matches!(new, Attach::Site { mma, .. } if mma == p.mma) && new != Attach::Detached {
                self.pending_site = None;
                if Some(p.mma) != self.last_mma {
                    self.client.forget(p.mma);
                }
            }
        }
        match new {
            Attach::Detached => {}
            Attach::Site { ifindex, mma } if kind == HandoverKind::IntraSite => {
                // Make before break: keep the old branch while the old link still works.
                if let Attach::Site {
                    ifindex: old_if,
                    mma: old_mma,
                } = old
                {
                    // Up with its router is enough: a link whose radio reading fell to 0 may
                    // still deliver for a moment, and a membership on a dead link costs
                    // nothing.
                    let old_usable = self.link(old_if).is_some_and(|l| l.up && l.ra.is_some());
                    if old_if != ifindex && old_mma == mma && old_usable && self.cfg.overlap_ms > 0
                    {
                        let m = Membership {
                            ifindex: old_if,
                            group: self.cfg.group,
                            source: mma,
                        };
                        // A candidate prepared long enough has its branch delivering already:
                        // the old link only has to drain what is in flight on it.
                        let grafted = self.prepared == Some(ifindex)
                            && now.mono.0 >= self.prepared_at.0.saturating_add(PREPARED_GRAFT_MS);
                        let ms = if grafted {
                            self.cfg.overlap_ms.min(PREPARED_OVERLAP_MS)
                        } else {
                            self.cfg.overlap_ms
                        };
                        tracing::debug!(overlap_ms = ms, grafted, "overlap on the old link");
                        self.overlap = Some((m, now.mono + Duration::from_millis(ms)));
                    }
                }
            }
            Attach::Site { ifindex, mma } => {
                self.note_left_home(old, ifindex, now);
                let previous = self.last_mma.filter(|p| *p != mma);
                // Make before break between sites too: the old site's branch keeps
                // delivering (and the old link decapsulating) while the home agent and the
                // old MMA learn of the move, for the overlap.
                if let Attach::Site {
                    ifindex: old_if,
                    mma: old_mma,
                } = old
                {
                    let old_up = self.link(old_if).is_some_and(|l| l.up && l.ra.is_some());
                    if old_if != ifindex && old_up && self.cfg.overlap_ms > 0 {
                        let m = Membership {
                            ifindex: old_if,
                            group: self.cfg.group,
                            source: old_mma,
                        };
                        self.overlap =
                            Some((m, now.mono + Duration::from_millis(self.cfg.overlap_ms)));
                    }
                }
                let src = self.link(ifindex).and_then(Link::onlink_address);
                let pre = self
                    .client
                    .get(&mma)
                    .filter(|r| {
                        self.pre_registered == Some((mma, ifindex))
                            && r.state == reg::State::Bound
                            && r.src == src
                    })
                    .map(|r| r.assigned_coa.unwrap_or(mma));
                if let Some(coa) = pre {
                    // Registered there ahead of the move: on to the home agent at once.
                    tracing::info!(%mma, "moving to the pre-registered site");
                    self.pre_registered = None;
                    self.site_registered(PendingSite { mma, previous }, coa, now, out);
                } else {
                    self.pending_site = Some(PendingSite { mma, previous });
                    self.start(mma, self.mma_request(), src, now, out);
                }
            }
            Attach::Home { ifindex } => {
                self.pending_site = None;
                self.keep_site_branch_at_home(old, ifindex, now);
                let ha = self.cfg.home_agent;
                if self.ha_registered || self.client.get(&ha).is_some() {
                    let req = Request {
                        kind: PeerKind::HomeAgent,
                        lifetime_s: 0,
                        alt_coa: None,
                        group: None,
                        forward: None,
                        previous_mma: None,
                    };
                    self.start(ha, req, Some(self.cfg.hoa), now, out);
                }
                if let Some(mma) = self.last_mma.take() {
                    self.deregister_mma(mma, self.cfg.hoa, Some(self.cfg.hoa), now, out);
                }
            }
            Attach::Mipv6 { coa, .. } => {
                self.pending_site = None;
                let req = Request {
                    kind: PeerKind::HomeAgent,
                    lifetime_s: self.cfg.lifetime_s,
                    alt_coa: None,
                    group: None,
                    forward: None,
                    previous_mma: None,
                };
                self.start(self.cfg.home_agent, req, Some(coa), now, out);
                if let Some(mma) = self.last_mma.take() {
                    self.deregister_mma(mma, coa, Some(coa), now, out);
                }
            }
        }
    }

    /// The kernel state wanted now.
    fn desired(&self, now: Millis) -> Desired {
        let c = &self.cfg;
        let t = c.tables;
        let mut d = Desired {
            links_up: self.raised.clone(),
            ..Desired::default()
        };
        for l in self.links.iter().filter(|l| l.up) {
            if let Some(a) = l.onlink_address() {
                d.addresses.insert(Address {
                    ifindex: l.cfg.ifindex,
                    addr: a,
                    prefix_len: 64,
                });
            }
        }
        let host = Ipv6Network::from;
        let unicast_decap = |d: &mut Desired, from: Ipv6Addr, to: Ipv6Addr, oif: u32| {
            d.objects.insert(KObject::Rule {
                pref: t.decap_pref + 1,
                from: Some(host(from)),
                to: Some(host(to)),
                ipproto: Some(IPPROTO_IPV6),
                table: t.decap_table,
            });
            d.objects.insert(KObject::DecapRoute {
                local: to,
                oif,
                table: t.decap_table,
                inner_table: RT_TABLE_LOCAL,
            });
        };
        let uplink = |d: &mut Desired, segment: Ipv6Addr, oif: u32| {
            d.objects.insert(KObject::Rule {
                pref: t.uplink_pref,
                from: Some(host(c.hoa)),
                to: None,
                ipproto: None,
                table: t.uplink_table,
            });
            d.objects.insert(KObject::EncapRoute {
                dst: default_dst(),
                src: None,
                tunnel_dst: segment,
                oif,
                table: t.uplink_table,
            });
        };
        match self.attach {
            Attach::Home { ifindex } => {
                d.addresses.insert(Address {
                    ifindex,
                    addr: c.hoa,
                    prefix_len: c.home_prefix.prefix(),
                });
            }
            _ => {
                d.addresses.insert(Address {
                    ifindex: c.lo_ifindex,
                    addr: c.hoa,
                    prefix_len: 128,
                });
            }
        }
        match self.attach {
            Attach::Detached => {}
            Attach::Home { .. } => self.home_desired(&mut d, now),
            Attach::Site { ifindex, mma } => {
                d.memberships.insert(Membership {
                    ifindex,
                    group: c.group,
                    source: mma,
                });
                let overlap = self
                    .overlap
                    .filter(|(_, until)| *until > now)
                    .map(|(m, _)| m);
                d.memberships.extend(overlap);
                // A prepared candidate joins (its branch is grafted before the move) but does
                // not decapsulate: its copies would only be duplicates until we move there.
                d.memberships.extend(self.prepared_membership());
                // The old link decapsulates during the overlap too (its branch still
                // delivers). The kernel matches a route to a multicast destination only on
                // its own interface, so the current link's route in the decap table does not
                // serve packets arriving on the other one: they fall through to this rule
                // and table.
                // Between sites, the old MMA is reached through the old link meanwhile.
                if let Some(old) = overlap.filter(|m| m.source != mma) {
                    if let Some(router) = self
                        .old_site_link(now, old.source)
                        .and_then(|l| l.ra.as_ref())
                        .map(|r| r.router)
                    {
                        d.objects.insert(KObject::GatewayRoute {
                            dst: host(old.source),
                            gateway: router,
                            oif: old.ifindex,
                            table: RT_TABLE_MAIN,
                        });
                    }
                }
                if let Some(second) = overlap.filter(|m| m.ifindex != ifindex) {
                    d.objects.insert(KObject::Rule {
                        pref: t.decap_pref + 2,
                        from: None,
                        to: Some(host(c.group)),
                        ipproto: Some(IPPROTO_IPV6),
                        table: t.second_link_table,
                    });
                    d.objects.insert(KObject::DecapRoute {
                        local: c.group,
                        oif: second.ifindex,
                        table: t.second_link_table,
                        inner_table: RT_TABLE_LOCAL,
                    });
                }
                d.objects.insert(KObject::Rule {
                    pref: t.decap_pref,
                    from: None,
                    to: Some(host(c.group)),
                    ipproto: Some(IPPROTO_IPV6),
                    table: t.decap_table,
                });
                d.objects.insert(KObject::DecapRoute {
                    local: c.group,
                    oif: ifindex,
                    table: t.decap_table,
                    inner_table: RT_TABLE_LOCAL,
                });
                if self.mark_group_now() {
                    d.marked_groups.insert(c.group);
                }
                // The reverse tunnel stays on the old MMA, out of the old link, during an
                // inter-site overlap until the home agent has accepted the new care-of address:
                // the new MMA's tunnel would be refused until then (no rule for its address),
                // and the home agent keeps accepting the old one for a while after the move
                // (`kernel.previous_coa_accept_ms`), so what is in flight through it arrives.
                let old_uplink = overlap
                    .filter(|m| m.source != mma && !self.home_agent_moved(mma))
                    .filter(|m| self.old_site_link(now, m.source).is_some());
                match (old_uplink, self.home_uplink(now, mma)) {
                    (Some(old), _) => uplink(&mut d, old.source, old.ifindex),
                    (None, Some((home, router))) => self.native_uplink(&mut d, home, router),
                    (None, None) => uplink(&mut d, mma, ifindex),
                }
            }
            Attach::Mipv6 { ifindex, coa } => {
                unicast_decap(&mut d, c.home_agent, coa, ifindex);
                uplink(&mut d, c.home_agent, ifindex);
            }
        }
        if let Some(ifindex) = self.attach.ifindex() {
            for f in self.forwards.iter().filter(|f| f.until > now) {
                unicast_decap(&mut d, f.from, f.to, ifindex);
            }
            d.default_route =
                self.link(ifindex)
                    .and_then(|l| l.ra.as_ref())
                    .map(|r| DefaultRoute {
                        ifindex,
                        gateway: r.router,
                    });
        }
        d
    }
}

/// `::/0`.
pub(super) fn default_dst() -> Ipv6Network {
    Ipv6Network::new(Ipv6Addr::UNSPECIFIED, 0)
        .unwrap_or_else(|_| Ipv6Network::from(Ipv6Addr::UNSPECIFIED))
}

#[derive(Default)]
struct Out {
    sends: Vec<Outgoing>,
    other: Vec<Output>,
}

impl Machine for Core {
    type Input<'a> = Event<'a>;
    type Send = Send;
    type Change = KernelChange;
    type Event = MetricEvent;

    fn handle_input(&mut self, now: Now, input: Event<'_>) {
        self.step(input, now);
    }

    fn handle_timeout(&mut self, now: Now) {
        self.step(Event::Tick, now);
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.next_deadline(self.last_now)
            .into_iter()
            .chain(self.kernel_retry)
            .min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A change the kernel carried out is recorded as held; a refused one is not, so the next
    /// step's diff asks for it again (at the latest after [`KERNEL_RETRY_MS`]), and it is
    /// reported.
    fn kernel_result(&mut self, now: Now, change: &KernelChange, outcome: Outcome) {
        if self.raise_result(change, &outcome) {
            return;
        }
        // Everything the node adds goes to its own socket, nftables set or is a replace, so
        // "already present" means it holds.
        let held = outcome.reached(change.is_removal())
            || (outcome == Outcome::AlreadyPresent && !change.is_removal());
        if held {
            self.applied.record(change);
            return;
        }
        tracing::warn!(?change, ?outcome, "kernel refused a change; will retry");
        self.kernel_retry
            .get_or_insert(now.mono.plus_ms(KERNEL_RETRY_MS));
        self.queue
            .push_back(Output::Event(MetricEvent::KernelRefused {
                change: format!("{change:?}"),
                reason: match outcome {
                    Outcome::Refused { reason, .. } => reason,
                    other => format!("{other:?}"),
                },
            }));
    }
}
