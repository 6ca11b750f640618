//! The protocol core: a pure state machine. Events go in (received packets with their
//! interface, addresses and hop limit; RPF answers; upcalls; clock ticks, each with `now`),
//! actions come out (packets to send, MFC changes, RPF lookups to run). No sockets, no clock.
//!
//! Per (S,G) the router keeps: downstream interest (MLD listeners on access links, PIM join
//! state on core links), the route toward S (RPF, from the kernel), the upstream Join state
//! toward the RPF neighbour, and the MFC entry it installed. [`Router::refresh`] recomputes
//! the last two from the first two whenever an input changes.
mod assert;
pub mod hold;
pub mod machine;
pub mod mld;
pub mod pim;
pub mod ra;
pub mod rng;
pub mod settings;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_wire::mld::MldRepr;
use mipcast_wire::nd::{NdOption, NdRepr};
use mipcast_wire::pim::{PimRepr, ALL_PIM_ROUTERS};

use crate::status::{
    AssertStatus, DownstreamStatus, IfaceStatus, ListenerStatus, NeighborStatus, QuerierStatus,
    SgStatus, SourceTimer, Status,
};
use assert::AssertState;
use mld::{MldCtx, MldIface, Querier};
use pim::{Downstream, HelloOutcome, PimIface};
use ra::{RaIface, RaKind};
use rng::Rng;
use settings::{GroupRange, PimSettings, Role, Settings};
use stats::{Counter, Stats};

/// How soon an MFC entry the kernel refused is tried again.
const RETRY_AFTER_REFUSAL: std::time::Duration = std::time::Duration::from_secs(1);

/// All nodes (ff02::1): general queries and RAs go there.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A source-specific channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Sg {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
}

/// The addresses the kernel has on one of our interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceAddrs {
    pub link_local: Option<Ipv6Addr>,
    pub globals: Vec<Ipv6Addr>,
    pub mac: Option<[u8; 6]>,
}

/// Which socket a packet belongs on (each has its own hop limit and options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// ICMPv6 MLD: hop limit 1, Router Alert.
    Mld,
    /// PIM: hop limit 1.
    Pim,
    /// ICMPv6 ND: hop limit 255.
    Nd,
}

/// A packet to send (message bytes with a zero checksum: the kernel fills it in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub proto: Proto,
    pub ifindex: u32,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// Where a packet came from, as the socket reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rx {
    pub ifindex: u32,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub hop_limit: u8,
}

/// The unicast route toward a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpfRoute {
    pub ifindex: u32,
    pub gateway: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Packet),
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
    /// Look the route toward this source up and answer with [`Router::rpf_resolved`].
    ResolveRpf(Ipv6Addr),
}

/// What kind of MRT6 upcall arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpcallKind {
    NoCache,
    WrongMif,
    Other,
}

#[derive(Debug)]
enum IfaceKind {
    // Boxed: the MLD state is several times the size of the PIM state.
    Access {
        mld: Box<MldIface>,
        ra: Option<RaIface>,
        /// PIM on the access link (Hellos for the DR election, Asserts), unless disabled.
        pim: Option<PimIface>,
    },
    Core(PimIface),
}

impl IfaceKind {
    fn pim(&self) -> Option<&PimIface> {
        match self {
            IfaceKind::Access { pim, .. } => pim.as_ref(),
            IfaceKind::Core(p) => Some(p),
        }
    }

    fn pim_mut(&mut self) -> Option<&mut PimIface> {
        match self {
            IfaceKind::Access { pim, .. } => pim.as_mut(),
            IfaceKind::Core(p) => Some(p),
        }
    }
}

#[derive(Debug)]
struct Iface {
    name: String,
    addrs: IfaceAddrs,
    kind: IfaceKind,
}

impl Iface {
    fn role(&self) -> Role {
        match self.kind {
            IfaceKind::Access { .. } => Role::Access,
            IfaceKind::Core(_) => Role::Core,
        }
    }

    fn is_ours(&self, addr: Ipv6Addr) -> bool {
        self.addrs.link_local == Some(addr) || self.addrs.globals.contains(&addr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpf {
    Pending,
    Resolved(Option<RpfRoute>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Upstream {
    ifindex: u32,
    neighbor: Ipv6Addr,
    next_join: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mfc {
    iif: u32,
    oifs: Vec<u32>,
}

#[derive(Debug, Clone)]
struct SgState {
    since: Millis,
    upstream: Option<Upstream>,
    mfc: Option<Mfc>,
    /// The join → MFC latency was reported already.
    latency_reported: bool,
}

#[derive(Debug)]
pub struct Router {
    pim_cfg: PimSettings,
    ssm: Vec<GroupRange>,
    ifaces: BTreeMap<u32, Iface>,
    rpf: BTreeMap<Ipv6Addr, Rpf>,
    sg: BTreeMap<Sg, SgState>,
    /// How many of `sg` have upstream Join state. A first-hop router (the source on a
    /// connected link, as the site router next to the MMA) has none, however many (S,G) it
    /// forwards: its next deadline then needs no walk over them on every event.
    with_upstream: usize,
    asserts: BTreeMap<(Sg, u32), AssertState>,
    /// Pruned channels' entries that forward nowhere, so late packets are not queued.
    negative: hold::NegativeEntries,
    /// The latest `now` an event or tick brought: upcalls carry no time of their own.
    now: Millis,
    next_rpf_check: Millis,
    actions: VecDeque<Action>,
    rng: Rng,
    stats: Stats,
    /// Log lines a host can cause per packet (unroutable sources) are summarised.
    log_limit: mipcast_proto::logsummary::LogSummary,
}

impl Router {
    /// `ifaces` pairs each of `cfg.interfaces` (same order) with its ifindex and addresses.
    /// Start-up Hellos, queries and RAs are due at `now`.
    pub fn new(cfg: &Settings, ifaces: Vec<(u32, IfaceAddrs)>, now: Millis, seed: u64) -> Router {
        let mut rng = Rng::new(seed);
        let mut map = BTreeMap::new();
        for (ic, (ifindex, addrs)) in cfg.interfaces.iter().zip(ifaces) {
            let kind = match ic.role {
                Role::Access => IfaceKind::Access {
                    mld: Box::new(MldIface::new(ic.mld.clone(), now)),
                    ra: ic.ra.clone().map(|ra| RaIface::new(ra, now)),
                    pim: ic.pim.then(|| PimIface::new(rng.next_u32(), now)),
                },
                Role::Core => IfaceKind::Core(PimIface::new(rng.next_u32(), now)),
            };
            map.insert(
                ifindex,
                Iface {
                    name: ic.name.clone(),
                    addrs,
                    kind,
                },
            );
        }
        Router {
            pim_cfg: cfg.pim.clone(),
            ssm: cfg.ssm_groups.clone(),
            ifaces: map,
            rpf: BTreeMap::new(),
            sg: BTreeMap::new(),
            with_upstream: 0,
            asserts: BTreeMap::new(),
            negative: hold::NegativeEntries::default(),
            now,
            next_rpf_check: now + cfg.pim.rpf_check_interval(),
            actions: VecDeque::new(),
            rng,
            stats: Stats::default(),
            log_limit: mipcast_proto::logsummary::LogSummary::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Everything queued, at once (the unit tests' view; drivers use [`Machine`]).
    #[cfg(all(test, feature = "shell"))]
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        self.actions.drain(..).collect()
    }

    /// Forgets that (S,G)'s entry is in the kernel (it refused it), so the next refresh of
    /// the (S,G) installs it again.
    fn forget_mfc(&mut self, sg: Sg) {
        self.negative.forget(sg);
        if let Some(st) = self.sg.get_mut(&sg) {
            st.mfc = None;
        }
        // The next RPF check (or any event on the channel) refreshes it.
        self.next_rpf_check = self.next_rpf_check.min(self.now + RETRY_AFTER_REFUSAL);
    }

    pub fn neighbor_count(&self, ifindex: u32) -> usize {
        self.ifaces
            .get(&ifindex)
            .and_then(|i| i.kind.pim())
            .map_or(0, |p| p.neighbors.len())
    }

    /// Whether we are the link's Designated Router (RFC 7761 §4.3.2); None for interfaces
    /// without PIM. Only the DR builds trees for the link's MLD listeners.
    pub fn is_dr(&self, ifindex: u32) -> Option<bool> {
        let iface = self.ifaces.get(&ifindex)?;
        let p = iface.kind.pim()?;
        Some(
            iface
                .addrs
                .link_local
                .is_none_or(|ours| p.dr(ours, self.pim_cfg.dr_priority) == ours),
        )
    }

    /// Some(true/false) for access interfaces: whether we are the MLD querier.
    pub fn is_querier(&self, ifindex: u32) -> Option<bool> {
        match self.ifaces.get(&ifindex).map(|i| &i.kind) {
            Some(IfaceKind::Access { mld, .. }) => Some(mld.is_querier()),
            _ => None,
        }
    }

    pub fn sg_count(&self) -> usize {
        self.sg.len()
    }

    /// Access interfaces: how many groups have MLD listeners (what `/status` lists, counted
    /// without building it: the shell's periodic gauges must stay cheap at any table size).
    pub fn listener_group_count(&self, ifindex: u32) -> Option<usize> {
        match &self.ifaces.get(&ifindex)?.kind {
            IfaceKind::Access { mld, .. } => Some(mld.group_count()),
            IfaceKind::Core(_) => None,
        }
    }

    /// Core interfaces: how many (S,G) downstream routers hold joined (not prune-pending).
    pub fn downstream_join_count(&self, ifindex: u32) -> Option<usize> {
        match &self.ifaces.get(&ifindex)?.kind {
            IfaceKind::Access { .. } => None,
            IfaceKind::Core(p) => Some(p.downstream_joined()),
        }
    }

    /// When [`Router::tick`] has something to do next.
    pub fn next_deadline(&self) -> Millis {
        let mut t = self.next_rpf_check;
        for iface in self.ifaces.values() {
            let d = match &iface.kind {
                IfaceKind::Access { mld, ra, pim } => {
                    let m = mld.next_deadline();
                    let r = ra.as_ref().map(RaIface::next_deadline);
                    let p = pim.as_ref().map(PimIface::next_deadline);
                    [m, r, p].into_iter().flatten().min()
                }
                IfaceKind::Core(p) => Some(p.next_deadline()),
            };
            if let Some(d) = d {
                t = t.min(d);
            }
        }
        if self.with_upstream > 0 {
            for st in self.sg.values() {
                if let Some(u) = st.upstream {
                    t = t.min(u.next_join);
                }
            }
        }
        for a in self.asserts.values() {
            t = t.min(match *a {
                AssertState::Winner { refresh } => refresh,
                AssertState::Loser { until, .. } => until,
            });
        }
        if let Some(d) = self.negative.next_deadline() {
            t = t.min(d);
        }
        t
    }

    // ---- events ----

    /// The kernel's addresses on an interface (at start and whenever they change).
    pub fn set_addresses(&mut self, now: Millis, ifindex: u32, addrs: IfaceAddrs) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        if iface.addrs == addrs {
            return;
        }
        tracing::info!(interface = %iface.name, link_local = ?addrs.link_local, globals = ?addrs.globals, "interface addresses changed");
        let link_local_changed = iface.addrs.link_local != addrs.link_local;
        iface.addrs = addrs;
        let Some(p) = iface.kind.pim_mut() else {
            return;
        };
        // Neighbours must learn our new addresses before our next Join.
        p.next_hello = now;
        p.hello_current = false;
        if link_local_changed {
            // Joins sent so far left from another source address, or not at all while the
            // interface had none: neighbours may hold no state from them, so re-send now
            // (after the Hello) instead of at the next periodic refresh.
            for st in self.sg.values_mut() {
                if let Some(u) = st.upstream.as_mut().filter(|u| u.ifindex == ifindex) {
                    u.next_join = now;
                }
            }
        }
    }

    pub fn handle_mld(&mut self, now: Millis, rx: Rx, bytes: &[u8]) {
        self.now = self.now.max(now);
        let Some(iface) = self.ifaces.get_mut(&rx.ifindex) else {
            return;
        };
        let IfaceKind::Access { mld, .. } = &mut iface.kind else {
            self.stats.bump(Counter::MldIgnored("not_access_interface"));
            return;
        };
        let msg = match MldRepr::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(interface = %iface.name, source = %rx.source, "malformed MLD message: {e}");
                self.stats.bump(Counter::Malformed {
                    protocol: "mld",
                    reason: e.label(),
                });
                return;
            }
        };
        let mut out = Vec::new();
        let mut changed = Vec::new();
        let mut ctx = MldCtx {
            now,
            our_address: iface.addrs.link_local,
            ssm: &self.ssm,
            stats: &mut self.stats,
            out: &mut out,
            changed: &mut changed,
        };
        mld.handle(&mut ctx, rx.source, rx.hop_limit, msg);
        self.flush_mld(rx.ifindex, out);
        for sg in changed {
            self.refresh(now, sg);
        }
    }

    pub fn handle_pim(&mut self, now: Millis, rx: Rx, bytes: &[u8]) {
        self.now = self.now.max(now);
        let Some(iface) = self.ifaces.get_mut(&rx.ifindex) else {
            return;
        };
        let name = iface.name.clone();
        let Some(p) = iface.kind.pim_mut() else {
            self.stats
                .bump(Counter::PimIgnored("pim_disabled_on_interface"));
            return;
        };
        if !rx.source.is_unicast_link_local() {
            self.stats.bump(Counter::Malformed {
                protocol: "pim",
                reason: "source_not_link_local",
            });
            return;
        }
        let msg = match PimRepr::parse(bytes) {
            Ok(m) => m,
            Err(mipcast_wire::Error::Unsupported("pim message type")) => {
                // Bootstrap, Register and the like: legal PIM we do not speak.
                self.stats.bump(Counter::PimIgnored("message_type"));
                return;
            }
            Err(e) => {
                tracing::debug!(interface = %name, source = %rx.source, "malformed PIM message: {e}");
                self.stats.bump(Counter::Malformed {
                    protocol: "pim",
                    reason: e.label(),
                });
                return;
            }
        };
        match msg {
            PimRepr::Hello { options } => {
                // What the tolerant parse left out (RFC 7761 §4.9.2: ignored, not fatal).
                let hello = mipcast_wire::pim::parse_hello(bytes.get(4..).unwrap_or(&[]));
                for skip in &hello.skipped {
                    tracing::debug!(interface = %name, source = %rx.source, ?skip, "Hello option skipped");
                    self.stats
                        .add(Counter::HelloSkipped(skip.label()), skip.count() as u64);
                }
                let unknown = options
                    .iter()
                    .filter(|o| matches!(o, mipcast_wire::pim::HelloOption::Unknown { .. }))
                    .count();
                self.stats
                    .add(Counter::HelloSkipped("unknown_option"), unknown as u64);
                let dr_before = self.is_dr(rx.ifindex);
                let Some(p) = self
                    .ifaces
                    .get_mut(&rx.ifindex)
                    .and_then(|i| i.kind.pim_mut())
                else {
                    return;
                };
                let outcome = p.on_hello(now, rx.source, &options);
                self.on_hello_outcome(now, rx.ifindex, rx.source, outcome);
                self.dr_check(now, rx.ifindex, dr_before);
            }
            PimRepr::JoinPrune(jp) => {
                if !p.neighbors.contains_key(&rx.source) {
                    // RFC 7761 §4.9: only Hellos are accepted from non-neighbours. The sender
                    // may not have heard our Hello yet, or we restarted and lost its: a
                    // triggered Hello lets it (re)discover us and re-send soon.
                    tracing::debug!(interface = %name, source = %rx.source, "Join/Prune from a non-neighbour ignored; triggered Hello");
                    self.stats.bump(Counter::PimIgnored("non_neighbor"));
                    let at = now + self.rng.up_to(self.pim_cfg.triggered_hello_delay());
                    p.next_hello = p.next_hello.min(at);
                    return;
                }
                self.on_join_prune(now, rx.ifindex, rx.source, &jp);
            }
            PimRepr::Assert(a) => {
                if !p.neighbors.contains_key(&rx.source) {
                    self.stats.bump(Counter::PimIgnored("non_neighbor"));
                    return;
                }
                self.on_assert(now, rx.ifindex, rx.source, &a);
            }
        }
    }

    pub fn handle_nd(&mut self, now: Millis, rx: Rx, bytes: &[u8]) {
        let Some(iface) = self.ifaces.get_mut(&rx.ifindex) else {
            return;
        };
        let IfaceKind::Access { ra: Some(ra), .. } = &mut iface.kind else {
            return;
        };
        // RFC 4861 §6.1.1 validity checks (the kernel verified the checksum).
        if rx.hop_limit != 255 {
            self.stats.bump(Counter::Malformed {
                protocol: "nd",
                reason: "hop_limit",
            });
            return;
        }
        match NdRepr::parse(bytes) {
            Ok(NdRepr::RouterSolicit { options }) => {
                let has_slla = options
                    .iter()
                    .any(|o| matches!(o, NdOption::SourceLinkLayerAddress(_)));
                if rx.source.is_unspecified() && has_slla {
                    self.stats.bump(Counter::Malformed {
                        protocol: "nd",
                        reason: "slla_from_unspecified",
                    });
                    return;
                }
                self.stats.bump(Counter::RsReceived);
                tracing::debug!(interface = %iface.name, source = %rx.source, "router solicitation");
                ra.on_solicitation(now, &mut self.rng);
            }
            Ok(NdRepr::RouterAdvert(_)) => {}
            Err(e) => {
                self.stats.bump(Counter::Malformed {
                    protocol: "nd",
                    reason: e.label(),
                });
            }
        }
    }

    /// An MRT6 upcall for (S,G), arrived on `ifindex` (None: a MIF we do not know).
    pub fn handle_upcall(&mut self, kind: UpcallKind, ifindex: Option<u32>, sg: Sg) {
        let now = self.now;
        match kind {
            UpcallKind::NoCache => {
                let entry = self.sg.get(&sg).and_then(|st| st.mfc.clone());
                match entry {
                    Some(m) => {
                        // The kernel lost an entry we installed: put it back.
                        tracing::info!(source = %sg.source, group = %sg.group, "NOCACHE upcall for an (S,G) we forward: re-installing the MFC entry");
                        self.stats.bump(Counter::Upcall {
                            kind: "nocache",
                            outcome: "reinstalled",
                        });
                        self.actions.push_back(Action::MfcAdd {
                            sg,
                            iif: m.iif,
                            oifs: m.oifs,
                            interest_since: None,
                        });
                    }
                    None => {
                        tracing::debug!(source = %sg.source, group = %sg.group, ?ifindex, "NOCACHE upcall without downstream interest");
                        self.stats.bump(Counter::Upcall {
                            kind: "nocache",
                            outcome: "no_state",
                        });
                    }
                }
            }
            UpcallKind::WrongMif => {
                // Data of an (S,G) we forward arrived on one of its outgoing links: another
                // router forwards onto that link too. Assert (RFC 7761 §4.6.1).
                let assert_on = ifindex.filter(|&i| {
                    self.forwards_on(sg, i)
                        && self.ifaces.get(&i).is_some_and(|f| f.kind.pim().is_some())
                });
                match assert_on {
                    Some(i) => {
                        tracing::info!(source = %sg.source, group = %sg.group, interface = %self.if_name(i), "(S,G) data on an outgoing link: Assert");
                        self.stats.bump(Counter::Upcall {
                            kind: "wrongmif",
                            outcome: "assert",
                        });
                        self.send_assert(now, sg, i);
                    }
                    None => {
                        tracing::debug!(source = %sg.source, group = %sg.group, ?ifindex, "WRONGMIF upcall");
                        self.stats.bump(Counter::Upcall {
                            kind: "wrongmif",
                            outcome: "counted",
                        });
                    }
                }
            }
            UpcallKind::Other => {
                self.stats.bump(Counter::Upcall {
                    kind: "other",
                    outcome: "counted",
                });
            }
        }
    }

    /// The answer to an [`Action::ResolveRpf`].
    pub fn rpf_resolved(&mut self, now: Millis, source: Ipv6Addr, route: Option<RpfRoute>) {
        let Some(entry) = self.rpf.get_mut(&source) else {
            return; // nobody wants this source any more
        };
        let new = Rpf::Resolved(route);
        if *entry == new {
            return;
        }
        let name = |i: u32| {
            self.ifaces
                .get(&i)
                .map_or_else(|| format!("ifindex {i}"), |f| f.name.clone())
        };
        match route {
            Some(r) => {
                tracing::info!(%source, iif = %name(r.ifindex), gateway = ?r.gateway, "RPF toward source")
            }
            None => {
                if let Some(suppressed) = self.log_limit.admit("no_route_to_source", self.now) {
                    tracing::warn!(%source, suppressed, "no unicast route toward source: cannot forward it");
                }
            }
        }
        if let Some(e) = self.rpf.get_mut(&source) {
            *e = new;
        }
        let sgs: Vec<Sg> = self
            .sg
            .keys()
            .filter(|sg| sg.source == source)
            .copied()
            .collect();
        for sg in sgs {
            self.refresh(now, sg);
        }
    }

    /// Runs every timer due at `now`.
    pub fn tick(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.log_limit.flush(now);
        let ifindexes: Vec<u32> = self.ifaces.keys().copied().collect();
        for ifindex in ifindexes {
            self.tick_iface(now, ifindex);
        }
        self.tick_asserts(now);
        self.send_due_joins(now);
        for sg in self.negative.expire(now) {
            tracing::debug!(source = %sg.source, group = %sg.group, "hold time over: removing the negative MFC entry");
            self.actions.push_back(Action::MfcDel { sg });
        }
        if self.next_rpf_check <= now {
            self.next_rpf_check = now + self.pim_cfg.rpf_check_interval();
            let sources: Vec<Ipv6Addr> = self.rpf.keys().copied().collect();
            self.actions
                .extend(sources.into_iter().map(Action::ResolveRpf));
            // Channels whose entry the kernel refused are put back on the way.
            let unforwarded: Vec<Sg> = self
                .sg
                .iter()
                .filter(|(_, st)| st.mfc.is_none())
                .map(|(sg, _)| *sg)
                .collect();
            for sg in unforwarded {
                self.refresh(now, sg);
            }
        }
    }

    /// Goodbye: Prunes upstream, Hellos with holdtime 0, final RAs, and every MFC entry
    /// removed. The router is empty afterwards.
    pub fn shutdown(&mut self) {
        let mut prunes: BTreeMap<(u32, Ipv6Addr), Vec<Sg>> = BTreeMap::new();
        for (&sg, st) in &self.sg {
            if let Some(u) = st.upstream {
                prunes.entry((u.ifindex, u.neighbor)).or_default().push(sg);
            }
        }
        for ((ifindex, neighbor), sgs) in prunes {
            // No Hello first: a neighbour that never heard ours holds no Join state from us.
            self.emit_join_prune(ifindex, neighbor, &[], &sgs);
        }
        // Links where we won an Assert: the losers take over at once (AssertCancel).
        let won: Vec<(Sg, u32)> = self
            .asserts
            .iter()
            .filter(|(_, a)| matches!(a, AssertState::Winner { .. }))
            .map(|(&k, _)| k)
            .collect();
        for (sg, ifindex) in won {
            self.send_pim(
                ifindex,
                ALL_PIM_ROUTERS,
                &pim::assert(sg, pim::ASSERT_CANCEL),
            );
        }
        self.asserts.clear();
        let ifindexes: Vec<u32> = self.ifaces.keys().copied().collect();
        for ifindex in ifindexes {
            let Some(iface) = self.ifaces.get(&ifindex) else {
                continue;
            };
            if let Some(p) = iface.kind.pim() {
                let msg = pim::hello(&self.pim_cfg, p.gen_id, 0, &iface.addrs.globals);
                self.send_pim(ifindex, ALL_PIM_ROUTERS, &msg);
            }
            let Some(iface) = self.ifaces.get(&ifindex) else {
                continue;
            };
            if let IfaceKind::Access { ra: Some(ra), .. } = &iface.kind {
                let msg = ra.advert(iface.addrs.mac, 0);
                self.send_nd(ifindex, &msg);
            }
        }
        let installed: Vec<Sg> = self
            .sg
            .iter()
            .filter(|(_, st)| st.mfc.is_some())
            .map(|(&sg, _)| sg)
            .collect();
        self.actions
            .extend(installed.into_iter().map(|sg| Action::MfcDel { sg }));
        let negative = self.negative.drain();
        self.actions
            .extend(negative.into_iter().map(|sg| Action::MfcDel { sg }));
        self.sg.clear();
        self.with_upstream = 0;
        self.rpf.clear();
    }

    /// Applies a new configuration whose interface list (names and roles) is unchanged;
    /// returns a line per change, or why it needs a restart.
    pub fn reload(&mut self, cfg: &Settings) -> Result<Vec<String>, String> {
        let same_ifaces = cfg.interfaces.len() == self.ifaces.len()
            && cfg.interfaces.iter().all(|ic| {
                self.ifaces.values().any(|i| {
                    i.name == ic.name
                        && i.role() == ic.role
                        && i.kind.pim().is_some() == (ic.role == Role::Core || ic.pim)
                })
            });
        if !same_ifaces {
            return Err(
                "the interface list, a role or an access link's `pim` changed: restart pim-lite to apply it".into(),
            );
        }
        let mut changes = Vec::new();
        if self.pim_cfg != cfg.pim {
            changes.push(format!("pim: {:?} -> {:?}", self.pim_cfg, cfg.pim));
            // A new DR priority may move the DR role: announce it and re-evaluate.
            let before: Vec<(u32, Option<bool>)> =
                self.ifaces.keys().map(|&i| (i, self.is_dr(i))).collect();
            self.pim_cfg = cfg.pim.clone();
            let now = self.now;
            for (ifindex, dr) in before {
                if let Some(p) = self.ifaces.get_mut(&ifindex).and_then(|i| i.kind.pim_mut()) {
                    p.next_hello = now;
                }
                self.dr_check(now, ifindex, dr);
            }
        }
        if self.ssm != cfg.ssm_groups {
            changes.push(format!(
                "ssm_groups: {:?} -> {:?}",
                self.ssm, cfg.ssm_groups
            ));
            self.ssm = cfg.ssm_groups.clone();
        }
        for ic in &cfg.interfaces {
            let Some(iface) = self.ifaces.values_mut().find(|i| i.name == ic.name) else {
                continue;
            };
            if let IfaceKind::Access { mld, ra, .. } = &mut iface.kind {
                if mld.config() != &ic.mld {
                    changes.push(format!("{}: mld settings changed", ic.name));
                    mld.set_config(ic.mld.clone());
                }
                match (ra.as_mut(), &ic.ra) {
                    (Some(r), Some(new)) => {
                        if r.config() != new {
                            changes.push(format!(
                                "{}: router advertisement contents changed",
                                ic.name
                            ));
                            r.set_config(new.clone());
                        }
                    }
                    (None, None) => {}
                    (_, new) => {
                        changes.push(format!(
                            "{}: router advertisements {}",
                            ic.name,
                            if new.is_some() { "enabled" } else { "disabled" }
                        ));
                        *ra = new.clone().map(|c| RaIface::new(c, Millis(0)));
                    }
                }
            }
        }
        Ok(changes)
    }

    // ---- internals ----

    fn tick_iface(&mut self, now: Millis, ifindex: u32) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        match &mut iface.kind {
            IfaceKind::Access { mld, ra, .. } => {
                let mut out = Vec::new();
                let mut changed = Vec::new();
                let mut ctx = MldCtx {
                    now,
                    our_address: iface.addrs.link_local,
                    ssm: &self.ssm,
                    stats: &mut self.stats,
                    out: &mut out,
                    changed: &mut changed,
                };
                mld.tick(&mut ctx);
                let advert = ra
                    .as_mut()
                    .and_then(|r| r.poll(now, iface.addrs.mac, &mut self.rng));
                self.flush_mld(ifindex, out);
                if let Some((kind, msg)) = advert {
                    self.stats.bump(Counter::RaSent(match kind {
                        RaKind::Solicited => "solicited",
                        RaKind::Unsolicited => "unsolicited",
                    }));
                    self.send_nd(ifindex, &msg);
                }
                for sg in changed {
                    self.refresh(now, sg);
                }
                self.tick_pim(now, ifindex);
            }
            IfaceKind::Core(_) => self.tick_pim(now, ifindex),
        }
    }

    /// Hellos, neighbour and downstream expiry of a PIM-enabled interface.
    fn tick_pim(&mut self, now: Millis, ifindex: u32) {
        let dr_before = self.is_dr(ifindex);
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let Some(p) = iface.kind.pim_mut() else {
            return;
        };
        let hello = if p.next_hello <= now {
            p.next_hello = now + self.pim_cfg.hello_period();
            // Without a link-local address the Hello cannot leave (see push_packet).
            p.hello_current = iface.addrs.link_local.is_some();
            Some(pim::hello(
                &self.pim_cfg,
                p.gen_id,
                self.pim_cfg.hello_holdtime(),
                &iface.addrs.globals,
            ))
        } else {
            None
        };
        let gone = p.expire_neighbors(now);
        let expired = p.expire_downstream(now);
        for n in &gone {
            tracing::info!(interface = %iface.name, neighbor = %n, "PIM neighbour expired");
        }
        for sg in &expired {
            tracing::info!(interface = %iface.name, source = %sg.source, group = %sg.group, "downstream join state expired");
        }
        if let Some(h) = hello {
            self.stats.bump(Counter::HellosSent);
            self.send_pim(ifindex, ALL_PIM_ROUTERS, &h);
        }
        for n in &gone {
            self.forget_assert_winner(ifindex, *n);
        }
        if !gone.is_empty() {
            self.refresh_all(now);
        }
        for sg in expired {
            self.refresh(now, sg);
        }
        self.dr_check(now, ifindex, dr_before);
    }

    /// After a neighbour change on `ifindex`: when we became or stopped being the DR, the
    /// link's listeners start or stop counting as our downstream interest.
    fn dr_check(&mut self, now: Millis, ifindex: u32, before: Option<bool>) {
        let after = self.is_dr(ifindex);
        if after == before {
            return;
        }
        let Some(iface) = self.ifaces.get(&ifindex) else {
            return;
        };
        let dr = iface
            .kind
            .pim()
            .zip(iface.addrs.link_local)
            .map(|(p, ours)| p.dr(ours, self.pim_cfg.dr_priority));
        tracing::info!(interface = %iface.name, dr = ?dr, we_are_dr = ?after, "designated router changed");
        self.stats.bump(Counter::DrChanges);
        if let IfaceKind::Access { mld, .. } = &iface.kind {
            // The link's listeners start or stop counting: their (S,G)s and every other.
            let mut sgs: BTreeSet<Sg> = mld.listened().collect();
            sgs.extend(self.sg.keys().copied());
            for sg in sgs {
                self.refresh(now, sg);
            }
        }
    }

    fn on_hello_outcome(
        &mut self,
        now: Millis,
        ifindex: u32,
        from: Ipv6Addr,
        outcome: HelloOutcome,
    ) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let Some(p) = iface.kind.pim_mut() else {
            return;
        };
        match outcome {
            HelloOutcome::Refreshed | HelloOutcome::Unknown => return,
            HelloOutcome::AddressesChanged => {
                tracing::info!(interface = %iface.name, neighbor = %from, addresses = ?p.neighbors.get(&from).map(|n| &n.addresses), "PIM neighbour's address list changed");
            }
            HelloOutcome::New | HelloOutcome::Restarted => {
                let restarted = outcome == HelloOutcome::Restarted;
                tracing::info!(interface = %iface.name, neighbor = %from, gen_id = ?p.neighbors.get(&from).and_then(|n| n.gen_id), "{}", if restarted { "PIM neighbour restarted (new generation id)" } else { "new PIM neighbour" });
                // RFC 7761 §4.3.1: a triggered Hello so the neighbour accepts our Joins, and
                // it MUST precede any Join/Prune to it: until it went out, Join/Prunes send
                // it first (see ensure_hello). A new or restarted neighbour does not know us.
                let at = now + self.rng.up_to(self.pim_cfg.triggered_hello_delay());
                p.next_hello = p.next_hello.min(at);
                p.hello_current = false;
                if restarted {
                    self.stats.bump(Counter::NeighborRestarts);
                    self.forget_assert_winner(ifindex, from);
                    let Some(p) = self.ifaces.get(&ifindex).and_then(|i| i.kind.pim()) else {
                        return;
                    };
                    // §4.5.7: it lost our join state; refresh it within the override interval.
                    let override_interval = p.effective_override_interval(&self.pim_cfg);
                    for st in self.sg.values_mut() {
                        if let Some(u) = st.upstream.as_mut() {
                            if u.ifindex == ifindex && u.neighbor == from {
                                u.next_join =
                                    u.next_join.min(now + self.rng.up_to(override_interval));
                            }
                        }
                    }
                }
            }
            HelloOutcome::Gone => {
                tracing::info!(interface = %iface.name, neighbor = %from, "PIM neighbour left (holdtime 0)");
                self.forget_assert_winner(ifindex, from);
            }
        }
        self.refresh_all(now);
    }

    fn on_join_prune(
        &mut self,
        now: Millis,
        ifindex: u32,
        from: Ipv6Addr,
        jp: &mipcast_wire::pim::JoinPrune,
    ) {
        let (joins, prunes, skipped) = pim::entries(jp);
        self.stats.add(
            Counter::JoinPrune {
                sent: false,
                join: true,
            },
            joins.len() as u64,
        );
        self.stats.add(
            Counter::JoinPrune {
                sent: false,
                join: false,
            },
            prunes.len() as u64,
        );
        if skipped > 0 {
            self.stats
                .add(Counter::PimIgnored("not_source_specific"), skipped as u64);
        }
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let for_us = iface.is_ours(jp.upstream_neighbor);
        let Some(p) = iface.kind.pim_mut() else {
            return;
        };
        if for_us {
            let mut changed = Vec::new();
            for &sg in &joins {
                if jp.holdtime == 0 {
                    continue;
                }
                if p.downstream_join(now, sg, jp.holdtime) {
                    tracing::info!(interface = %iface.name, neighbor = %from, source = %sg.source, group = %sg.group, holdtime = jp.holdtime, "downstream Join");
                    changed.push(sg);
                }
            }
            for &sg in &prunes {
                let gone = p.downstream_prune(now, sg, &self.pim_cfg);
                tracing::info!(interface = %iface.name, neighbor = %from, source = %sg.source, group = %sg.group, removed = gone, "downstream Prune");
                if gone {
                    changed.push(sg);
                }
            }
            for sg in changed {
                self.refresh(now, sg);
            }
            return;
        }
        // Another router's Join to our upstream neighbour for an (S,G) we join too: ours can
        // wait (Join suppression, RFC 7761 §4.5.7; always in effect, since we advertise no
        // T bit). The Join's holdtime bounds the wait.
        let target = p.neighbor_for(jp.upstream_neighbor);
        let override_interval = p.effective_override_interval(&self.pim_cfg);
        let period = self.pim_cfg.join_prune_period();
        for sg in joins {
            let Some(u) = self.sg.get_mut(&sg).and_then(|st| st.upstream.as_mut()) else {
                continue;
            };
            if u.ifindex == ifindex && Some(u.neighbor) == target && jp.holdtime > 0 {
                let suppress = self
                    .rng
                    .between(period * 11 / 10, period * 14 / 10)
                    .min(std::time::Duration::from_secs(u64::from(jp.holdtime)));
                if u.next_join < now + suppress {
                    tracing::debug!(neighbor = %u.neighbor, source = %sg.source, group = %sg.group, "Join suppressed by another router's Join");
                    u.next_join = now + suppress;
                    self.stats.bump(Counter::JoinsSuppressed);
                }
            }
        }
        // A Prune to our upstream neighbour for an (S,G) we still want: override it with a
        // Join before its prune-pending time runs out (RFC 7761 §4.5.7).
        for sg in prunes {
            let Some(st) = self.sg.get_mut(&sg) else {
                continue;
            };
            if let Some(u) = st.upstream.as_mut() {
                if u.ifindex == ifindex && Some(u.neighbor) == target {
                    let at = now + self.rng.up_to(override_interval);
                    tracing::info!(neighbor = %u.neighbor, source = %sg.source, group = %sg.group, "overriding another router's Prune");
                    u.next_join = u.next_join.min(at);
                    self.stats.bump(Counter::PruneOverrides);
                }
            }
        }
    }

    fn refresh_all(&mut self, now: Millis) {
        let sgs: Vec<Sg> = self.sg.keys().copied().collect();
        for sg in sgs {
            self.refresh(now, sg);
        }
    }

    /// Interfaces with downstream interest in `sg`: PIM Joins, and MLD listeners on links
    /// where we are the DR (another DR builds the tree for the others).
    fn interested(&self, sg: Sg) -> BTreeSet<u32> {
        self.ifaces
            .iter()
            .filter(|(&i, iface)| {
                let joined = iface
                    .kind
                    .pim()
                    .is_some_and(|p| p.downstream().contains_key(&sg));
                let listening = match &iface.kind {
                    IfaceKind::Access { mld, .. } => {
                        mld.has_listener(sg) && self.is_dr(i) != Some(false)
                    }
                    IfaceKind::Core(_) => false,
                };
                joined || listening
            })
            .map(|(&i, _)| i)
            .collect()
    }

    /// Recomputes upstream Join state and the MFC entry of `sg` from its downstream interest
    /// and the route toward S.
    fn refresh(&mut self, now: Millis, sg: Sg) {
        let interested = self.interested(sg);
        if interested.is_empty() {
            let Some(st) = self.sg.remove(&sg) else {
                return;
            };
            tracing::info!(source = %sg.source, group = %sg.group, "no downstream interest left");
            if let Some(u) = st.upstream {
                self.with_upstream -= 1;
                self.prune_if_neighbor(now, u, sg);
            }
            self.cancel_lost_asserts(sg);
            if let Some(m) = st.mfc {
                self.unforward(now, sg, m.iif);
            }
            if !self.sg.keys().any(|k| k.source == sg.source) {
                self.rpf.remove(&sg.source);
            }
            return;
        }
        if let std::collections::btree_map::Entry::Vacant(e) = self.sg.entry(sg) {
            tracing::info!(source = %sg.source, group = %sg.group, "downstream interest appeared");
            e.insert(SgState {
                since: now,
                upstream: None,
                mfc: None,
                latency_reported: false,
            });
        }
        if let std::collections::btree_map::Entry::Vacant(e) = self.rpf.entry(sg.source) {
            e.insert(Rpf::Pending);
            self.actions.push_back(Action::ResolveRpf(sg.source));
        }
        let route = match self.rpf.get(&sg.source) {
            Some(Rpf::Resolved(Some(r))) if self.ifaces.contains_key(&r.ifindex) => Some(*r),
            Some(Rpf::Resolved(Some(r))) => {
                tracing::debug!(source = %sg.source, ifindex = r.ifindex, "route toward source leaves through an interface pim-lite does not manage");
                None
            }
            _ => None,
        };
        // Links where another router won the Assert are its to forward onto.
        let oifs: Vec<u32> = match route {
            Some(r) => interested
                .into_iter()
                .filter(|&i| i != r.ifindex)
                .filter(|&i| !matches!(self.asserts.get(&(sg, i)), Some(AssertState::Loser { .. })))
                .collect(),
            None => Vec::new(),
        };
        let upstream_target = match route {
            Some(r) if !oifs.is_empty() => self.rpf_neighbor(r, sg),
            _ => None,
        };
        let (old_upstream, old_mfc) = match self.sg.get(&sg) {
            Some(st) => (st.upstream, st.mfc.clone()),
            None => return,
        };
        // Upstream Join state.
        let new_upstream = match (old_upstream, upstream_target) {
            (Some(u), Some((i, n))) if u.ifindex == i && u.neighbor == n => Some(u),
            (old, Some((ifindex, neighbor))) => {
                if let Some(u) = old {
                    tracing::info!(source = %sg.source, group = %sg.group, from = %u.neighbor, to = %neighbor, "RPF neighbour changed: moving the Join");
                    self.prune_if_neighbor(now, u, sg);
                }
                tracing::info!(source = %sg.source, group = %sg.group, %neighbor, "sending Join upstream");
                self.send_join_prune(now, ifindex, neighbor, &[sg], &[]);
                Some(Upstream {
                    ifindex,
                    neighbor,
                    next_join: now + self.pim_cfg.join_prune_period(),
                })
            }
            (Some(u), None) => {
                tracing::info!(source = %sg.source, group = %sg.group, neighbor = %u.neighbor, "no upstream Join needed any more");
                self.prune_if_neighbor(now, u, sg);
                None
            }
            (None, None) => None,
        };
        // Forwarding entry.
        let new_mfc = match route {
            Some(r) if !oifs.is_empty() => Some(Mfc {
                iif: r.ifindex,
                oifs,
            }),
            _ => None,
        };
        let mut latency = None;
        if new_mfc != old_mfc {
            match &new_mfc {
                Some(m) => {
                    tracing::info!(source = %sg.source, group = %sg.group, iif = %self.if_name(m.iif), oifs = ?m.oifs.iter().map(|&i| self.if_name(i)).collect::<Vec<_>>(), "installing MFC entry");
                    let reported = self.sg.get(&sg).is_some_and(|st| st.latency_reported);
                    if !reported {
                        latency = self.sg.get(&sg).map(|st| st.since);
                    }
                    self.negative.forget(sg);
                    self.actions.push_back(Action::MfcAdd {
                        sg,
                        iif: m.iif,
                        oifs: m.oifs.clone(),
                        interest_since: latency,
                    });
                }
                None => {
                    if let Some(old) = &old_mfc {
                        self.unforward(now, sg, old.iif);
                    }
                }
            }
        }
        if let Some(st) = self.sg.get_mut(&sg) {
            match (st.upstream.is_some(), new_upstream.is_some()) {
                (false, true) => self.with_upstream += 1,
                (true, false) => self.with_upstream -= 1,
                _ => {}
            }
            st.upstream = new_upstream;
            st.mfc = new_mfc;
            st.latency_reported |= latency.is_some();
        }
        self.cancel_lost_asserts(sg);
    }

    /// (S,G) no longer forwards: its entry becomes a negative one (see [`hold`]), so the
    /// packets still arriving until the upstream prunes are dropped, not queued by the
    /// kernel and released stale when the channel is joined again.
    fn unforward(&mut self, now: Millis, sg: Sg, iif: u32) {
        tracing::info!(source = %sg.source, group = %sg.group, hold_secs = hold::NEGATIVE_HOLD.as_secs(), "MFC entry now forwards nowhere (negative entry)");
        self.negative.hold(sg, iif, now);
        self.actions.push_back(Action::MfcAdd {
            sg,
            iif,
            oifs: Vec::new(),
            interest_since: None,
        });
    }

    /// RPF'(S): the PIM neighbour behind the route's gateway. None when S is directly
    /// connected (no gateway) or the gateway is no PIM neighbour.
    fn rpf_neighbor(&self, r: RpfRoute, sg: Sg) -> Option<(u32, Ipv6Addr)> {
        let gateway = r.gateway?;
        let iface = self.ifaces.get(&r.ifindex)?;
        let p = iface.kind.pim()?;
        // An Assert winner on the RPF interface is RPF'(S) (RFC 7761 §4.1.6): our Joins go
        // to the router that actually forwards onto the link.
        if let Some(AssertState::Loser { winner, .. }) = self.asserts.get(&(sg, r.ifindex)) {
            if p.neighbors.contains_key(winner) {
                return Some((r.ifindex, *winner));
            }
        }
        match p.neighbor_for(gateway) {
            Some(n) => Some((r.ifindex, n)),
            None => {
                tracing::debug!(source = %sg.source, %gateway, interface = %iface.name, "RPF gateway is not a PIM neighbour (yet): no Join sent");
                None
            }
        }
    }

    fn prune_if_neighbor(&mut self, now: Millis, u: Upstream, sg: Sg) {
        let alive = self
            .ifaces
            .get(&u.ifindex)
            .and_then(|i| i.kind.pim())
            .is_some_and(|p| p.neighbors.contains_key(&u.neighbor));
        if alive {
            tracing::info!(source = %sg.source, group = %sg.group, neighbor = %u.neighbor, "sending Prune upstream");
            self.send_join_prune(now, u.ifindex, u.neighbor, &[], &[sg]);
        }
    }

    fn send_due_joins(&mut self, now: Millis) {
        let mut due: BTreeMap<(u32, Ipv6Addr), Vec<Sg>> = BTreeMap::new();
        let period = self.pim_cfg.join_prune_period();
        for (&sg, st) in self.sg.iter_mut() {
            if let Some(u) = st.upstream.as_mut() {
                if u.next_join <= now {
                    u.next_join = now + period;
                    due.entry((u.ifindex, u.neighbor)).or_default().push(sg);
                }
            }
        }
        for ((ifindex, neighbor), sgs) in due {
            self.send_join_prune(now, ifindex, neighbor, &sgs, &[]);
        }
    }

    /// A Join/Prune, preceded by a Hello when the neighbours have not heard our current one
    /// yet: they would drop the Join/Prune, and nothing would repeat it before the next
    /// periodic Join (RFC 7761 §4.3.1: "it MUST immediately send the relevant Hello message
    /// ... followed by the Join/Prune"). This happens when an event is handled before the
    /// start-up Hello went out, or right after an address change.
    fn send_join_prune(
        &mut self,
        now: Millis,
        ifindex: u32,
        neighbor: Ipv6Addr,
        joins: &[Sg],
        prunes: &[Sg],
    ) {
        self.ensure_hello(now, ifindex);
        self.emit_join_prune(ifindex, neighbor, joins, prunes);
    }

    fn ensure_hello(&mut self, now: Millis, ifindex: u32) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let Some(p) = iface.kind.pim_mut() else {
            return;
        };
        if p.hello_current || iface.addrs.link_local.is_none() {
            return;
        }
        tracing::info!(interface = %iface.name, "sending a Hello ahead of a Join/Prune: neighbours have not heard our current one yet");
        p.hello_current = true;
        p.next_hello = now + self.pim_cfg.hello_period();
        let msg = pim::hello(
            &self.pim_cfg,
            p.gen_id,
            self.pim_cfg.hello_holdtime(),
            &iface.addrs.globals,
        );
        self.stats.bump(Counter::HellosSent);
        self.send_pim(ifindex, ALL_PIM_ROUTERS, &msg);
    }

    fn emit_join_prune(&mut self, ifindex: u32, neighbor: Ipv6Addr, joins: &[Sg], prunes: &[Sg]) {
        self.stats.add(
            Counter::JoinPrune {
                sent: true,
                join: true,
            },
            joins.len() as u64,
        );
        self.stats.add(
            Counter::JoinPrune {
                sent: true,
                join: false,
            },
            prunes.len() as u64,
        );
        let holdtime = self.pim_cfg.join_prune_holdtime();
        for msg in pim::join_prune(neighbor, holdtime, joins, prunes) {
            self.send_pim(ifindex, ALL_PIM_ROUTERS, &msg);
        }
    }

    fn send_pim(&mut self, ifindex: u32, destination: Ipv6Addr, msg: &PimRepr) {
        let mut bytes = vec![0; msg.buffer_len()];
        match msg.emit(&mut bytes) {
            Ok(n) => bytes.truncate(n),
            Err(e) => {
                tracing::warn!("cannot encode PIM message: {e}");
                return;
            }
        }
        self.push_packet(Proto::Pim, ifindex, destination, bytes);
    }

    fn send_nd(&mut self, ifindex: u32, msg: &NdRepr) {
        let mut bytes = vec![0; msg.buffer_len()];
        match msg.emit(&mut bytes) {
            Ok(n) => bytes.truncate(n),
            Err(e) => {
                tracing::warn!("cannot encode router advertisement: {e}");
                return;
            }
        }
        self.push_packet(Proto::Nd, ifindex, ALL_NODES, bytes);
    }

    fn flush_mld(&mut self, ifindex: u32, out: Vec<(Ipv6Addr, MldRepr)>) {
        for (destination, msg) in out {
            let mut bytes = vec![0; msg.buffer_len()];
            match msg.emit(&mut bytes) {
                Ok(n) => bytes.truncate(n),
                Err(e) => {
                    tracing::warn!("cannot encode MLD query: {e}");
                    continue;
                }
            }
            self.push_packet(Proto::Mld, ifindex, destination, bytes);
        }
    }

    /// Every packet leaves from the interface's link-local address (RFC 3810 §5.1.14,
    /// RFC 4861 §6.1.2, RFC 7761 §4.9); without one yet, nothing is sent.
    fn push_packet(&mut self, proto: Proto, ifindex: u32, destination: Ipv6Addr, bytes: Vec<u8>) {
        let Some(source) = self.ifaces.get(&ifindex).and_then(|i| i.addrs.link_local) else {
            return;
        };
        self.actions.push_back(Action::Send(Packet {
            proto,
            ifindex,
            source,
            destination,
            bytes,
        }));
    }

    fn if_name(&self, ifindex: u32) -> String {
        self.ifaces
            .get(&ifindex)
            .map_or_else(|| format!("ifindex {ifindex}"), |i| i.name.clone())
    }

    /// The `/status` document (kernel counters left empty for the shell to fill).
    pub fn status(&self, now: Millis) -> Status {
        let left = |t: Millis| t.0.saturating_sub(now.0);
        let interfaces = self
            .ifaces
            .iter()
            .map(|(&ifindex, iface)| {
                let mut s = IfaceStatus {
                    name: iface.name.clone(),
                    ifindex,
                    role: iface.role().to_string(),
                    link_local: iface.addrs.link_local,
                    querier: None,
                    neighbors: Vec::new(),
                    listeners: Vec::new(),
                    downstream: Vec::new(),
                    dr: iface
                        .kind
                        .pim()
                        .zip(iface.addrs.link_local)
                        .map(|(p, ours)| p.dr(ours, self.pim_cfg.dr_priority)),
                    asserts: self
                        .asserts
                        .iter()
                        .filter(|((_, i), _)| *i == ifindex)
                        .map(|((sg, _), a)| AssertStatus {
                            source: sg.source,
                            group: sg.group,
                            winner: match a {
                                AssertState::Winner { .. } => iface.addrs.link_local,
                                AssertState::Loser { winner, .. } => Some(*winner),
                            },
                            we_won: matches!(a, AssertState::Winner { .. }),
                        })
                        .collect(),
                };
                if let Some(p) = iface.kind.pim() {
                    s.neighbors = p
                        .neighbors
                        .iter()
                        .map(|(&address, n)| NeighborStatus {
                            address,
                            gen_id: n.gen_id,
                            dr_priority: n.dr_priority,
                            addresses: n.addresses.clone(),
                            expires_in_ms: n.expires.map(left),
                        })
                        .collect();
                }
                match &iface.kind {
                    IfaceKind::Access { mld, .. } => {
                        s.querier = Some(match mld.querier() {
                            Querier::Us { .. } => QuerierStatus {
                                we_are_querier: true,
                                address: iface.addrs.link_local,
                            },
                            Querier::Other { address, .. } => QuerierStatus {
                                we_are_querier: false,
                                address: Some(*address),
                            },
                        });
                        s.listeners = mld
                            .groups()
                            .into_iter()
                            .map(|g| ListenerStatus {
                                group: g.group,
                                sources: g
                                    .sources
                                    .into_iter()
                                    .map(|(source, t)| SourceTimer {
                                        source,
                                        expires_in_ms: left(t),
                                    })
                                    .collect(),
                                any_source_expires_in_ms: g.any_source_until.map(left),
                            })
                            .collect();
                    }
                    IfaceKind::Core(p) => {
                        s.downstream = p
                            .downstream()
                            .iter()
                            .map(|(sg, d)| {
                                let (state, expires) = match *d {
                                    Downstream::Join { expires } => ("join", expires),
                                    Downstream::PrunePending { prune_at, .. } => {
                                        ("prune_pending", prune_at)
                                    }
                                };
                                DownstreamStatus {
                                    source: sg.source,
                                    group: sg.group,
                                    state: state.to_owned(),
                                    expires_in_ms: left(expires),
                                }
                            })
                            .collect();
                    }
                }
                s
            })
            .collect();
        let sg = self
            .sg
            .iter()
            .map(|(&sg, st)| {
                let route = match self.rpf.get(&sg.source) {
                    Some(Rpf::Resolved(r)) => *r,
                    _ => None,
                };
                SgStatus {
                    source: sg.source,
                    group: sg.group,
                    iif: route.map(|r| self.if_name(r.ifindex)),
                    rpf_gateway: route.and_then(|r| r.gateway),
                    upstream_neighbor: st.upstream.map(|u| u.neighbor),
                    oifs: st
                        .mfc
                        .as_ref()
                        .map(|m| m.oifs.iter().map(|&i| self.if_name(i)).collect())
                        .unwrap_or_default(),
                    mfc_installed: st.mfc.is_some(),
                    packets: None,
                    bytes: None,
                    wrong_if: None,
                }
            })
            .collect();
        Status { interfaces, sg }
    }
}

// The unit tests build their settings from YAML configurations, a shell-side type.
#[cfg(test)]
#[cfg(feature = "shell")]
mod tests;
