//! The simulated world: the home agent, one MMA per site and the terminals, each a real core
//! with a fake kernel, joined by an in-memory network with virtual time. Nothing sleeps: the
//! clock jumps to the next delivery, router advertisement or core timer.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv6Addr;

use mipcast_proto::{KObject, Machine, Millis, Output};
use mipcast_wire::mh::{bu_flags, Message, MhRepr};
use mobile_node::core::kernel::KernelChange;
use serde::Serialize;

use crate::kernel::{FakeKernel, Op, Target, Verb};
use crate::pim::{self, McastPacket, RouterId, RouterNode};

mod mcast;
use crate::record::{drive, hex, now_at, In, NodeId, Record, What};
use crate::rng::Rng;
use crate::topology::{self as topo, SimConfig};

/// An access link: a router advertising a /64, in a site (with the site's MMA in the MAP
/// option) or the home link (no MAP option).
#[derive(Debug, Clone)]
pub struct AccessLink {
    pub prefix: Ipv6Addr,
    pub router: Ipv6Addr,
    pub site: Option<usize>,
    /// Phase of its periodic advertisements (they go out at phase + k * interval).
    phase: u64,
    /// When it last advertised.
    last_ra: Option<u64>,
    ra: Vec<u8>,
}

/// Identifies an access link: the home link, or link `l` of site `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LinkId {
    Home,
    Site(usize, usize),
}

pub struct HaNode {
    pub core: home_agent::core::Core,
    pub kernel: FakeKernel,
}

pub struct MmaNode {
    pub core: mma::core::Core,
    pub kernel: FakeKernel,
}

pub struct MnNode {
    pub core: mobile_node::core::Core,
    pub kernel: FakeKernel,
    /// The access link each radio is on (index into [`World::links`]).
    pub radios: [Option<usize>; topo::RADIOS],
}

/// What a Mobility Header message was, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MhKind {
    Bu { seq: u16, lifetime: u16, home: bool },
    Back { seq: u16, status: u8 },
    RefreshRequest,
    Error,
    Other,
}

pub fn classify(bytes: &[u8]) -> MhKind {
    match MhRepr::parse(bytes).map(|r| r.message) {
        Ok(Message::BindingUpdate(bu)) => MhKind::Bu {
            seq: bu.sequence,
            lifetime: bu.lifetime,
            home: bu.flags & bu_flags::HOME != 0,
        },
        Ok(Message::BindingAck(ba)) => MhKind::Back {
            seq: ba.sequence,
            status: ba.status,
        },
        Ok(Message::BindingRefreshRequest) => MhKind::RefreshRequest,
        Ok(Message::BindingError(_)) => MhKind::Error,
        Err(_) => MhKind::Other,
    }
}

/// A Mobility Header message put on the network.
#[derive(Debug, Clone, Serialize)]
pub struct Packet {
    pub t: u64,
    pub from: NodeId,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub kind: MhKind,
    /// Where it went: None while in flight or when it was lost/undeliverable.
    pub delivered_to: Option<NodeId>,
    pub dropped: bool,
}

/// What a scripted rule does to a message.
#[derive(Debug, Clone)]
pub enum Fate {
    Drop,
    /// Delivered this many ms late.
    Delay(u64),
    /// Delivered, plus one copy this many ms after each listed delay.
    Duplicate(Vec<u64>),
}

/// Applies `fate` to the next `remaining` messages for which `matches` is true.
pub struct Rule {
    pub remaining: usize,
    pub matches: Box<dyn Fn(&Packet) -> bool>,
    pub fate: Fate,
}

/// Random impairments of the signalling, per message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairments {
    /// Per mille of messages lost.
    pub loss: u32,
    /// Per mille of messages duplicated.
    pub duplicate: u32,
    /// Up to this many extra ms of delay (reorders messages closer than that).
    pub jitter_ms: u64,
}

#[derive(Debug)]
enum Delivery {
    Mh {
        packet: usize,
        bytes: Vec<u8>,
    },
    Ra {
        mn: usize,
        radio: usize,
        link: usize,
    },
    /// An MLD or PIM message arriving at a router's interface.
    ToRouter {
        router: usize,
        ifindex: u32,
        packet: pim_lite::core::Packet,
    },
    /// An MLD query arriving at the terminals on world link `link`.
    ToHosts {
        link: usize,
        bytes: Vec<u8>,
    },
    /// A terminal's host MLD transmits a report on radio `radio`, if it is still on `link`.
    HostSend {
        mn: usize,
        radio: usize,
        link: usize,
        bytes: Vec<u8>,
    },
}

#[derive(Debug)]
struct Pending {
    at: u64,
    seq: u64,
    what: Delivery,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Counters of what happened.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub events: u64,
    pub deliveries: u64,
    pub ras: u64,
    pub timeouts: u64,
    /// A core still asked for a timeout at or before the time it just handled one (the world
    /// asks it again 1 ms later; a real driver would spin).
    pub stale_timeouts: u64,
    /// Timeouts handled by the pim-lite routers.
    pub router_timeouts: u64,
}

pub struct World {
    pub cfg: SimConfig,
    /// Virtual time, ms.
    pub now: u64,
    pub ha: HaNode,
    pub mmas: Vec<MmaNode>,
    pub mns: Vec<MnNode>,
    pub links: Vec<AccessLink>,
    pub packets: Vec<Packet>,
    pub drops: Vec<Rule>,
    pub impair: Impairments,
    pub stats: Stats,
    /// Set to record the run.
    pub recording: Option<Vec<Record>>,
    /// Checked after every event when set (the invariants that hold at every instant).
    /// Bumped by every message delivered and every link event.
    pub generation: u64,
    /// Registrations the terminals saw rejected: (time, terminal, outcome).
    pub rejections: Vec<(u64, usize, String)>,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    rng: Rng,
    /// Per node, the time its last timeout was handled.
    last_timeout: Vec<(NodeId, u64)>,
    /// The pim-lite routers: site `s`'s router at `s`, then the access routers
    /// ([`World::router_index`]).
    pub routers: Vec<RouterNode>,
    /// Every MLD and PIM message put on a link (lost ones included).
    pub mcast: Vec<McastPacket>,
    /// Scripted fates of MLD and PIM messages, as [`World::drops`] for Mobility Headers.
    pub mcast_rules: Vec<McastRule>,
}

/// Applies `fate` to the next `remaining` MLD or PIM messages for which `matches` is true.
pub struct McastRule {
    pub remaining: usize,
    pub matches: Box<dyn Fn(&McastPacket) -> bool>,
    pub fate: Fate,
}

impl World {
    pub fn new(cfg: SimConfig) -> World {
        let ha_core = topo::ha_core(&cfg);
        let ha_kernel = FakeKernel::with_constant(topo::ha_constant(&ha_core));
        let mmas = (0..cfg.sites)
            .map(|s| {
                let core = topo::mma_core(&cfg, s);
                let kernel = FakeKernel::with_constant(core.plan().constant_objects());
                MmaNode { core, kernel }
            })
            .collect();
        let mns = (0..cfg.terminals)
            .map(|t| MnNode {
                core: topo::mn_core(&cfg, t),
                kernel: FakeKernel::default(),
                radios: [None; topo::RADIOS],
            })
            .collect();
        let mut links = vec![AccessLink {
            prefix: topo::home_prefix(),
            router: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x99, 1),
            site: None,
            phase: 0,
            last_ra: None,
            ra: topo::router_advert(topo::home_prefix(), None),
        }];
        for s in 0..cfg.sites {
            for l in 0..cfg.links_per_site {
                let prefix = topo::site_link_prefix(s, l);
                links.push(AccessLink {
                    prefix,
                    router: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, s as u16 + 1, l as u16 + 1),
                    site: Some(s),
                    phase: 0,
                    last_ra: None,
                    ra: topo::router_advert(prefix, Some(topo::mma_addr(s))),
                });
            }
        }
        // Routers advertise out of phase with each other.
        let interval = cfg.ra_interval_ms;
        for (i, l) in links.iter_mut().enumerate() {
            l.phase = (i as u64 * 37) % interval.max(1);
        }
        let rng = Rng::new(cfg.seed);
        let routers = (0..cfg.sites)
            .map(RouterId::Site)
            .chain(
                (0..cfg.sites)
                    .flat_map(|s| (0..cfg.links_per_site).map(move |l| RouterId::Access(s, l))),
            )
            .map(|id| RouterNode::new(&cfg, id))
            .collect();
        World {
            cfg,
            now: 0,
            ha: HaNode {
                core: ha_core,
                kernel: ha_kernel,
            },
            mmas,
            mns,
            links,
            packets: Vec::new(),
            drops: Vec::new(),
            impair: Impairments::default(),
            stats: Stats::default(),
            recording: None,
            generation: 0,
            rejections: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng,
            last_timeout: Vec::new(),
            routers,
            mcast: Vec::new(),
            mcast_rules: Vec::new(),
        }
    }

    pub fn link_index(&self, id: LinkId) -> usize {
        match id {
            LinkId::Home => 0,
            LinkId::Site(s, l) => 1 + s * self.cfg.links_per_site + l,
        }
    }

    pub fn link_id(&self, index: usize) -> LinkId {
        match index.checked_sub(1) {
            None => LinkId::Home,
            Some(i) => LinkId::Site(i / self.cfg.links_per_site, i % self.cfg.links_per_site),
        }
    }

    /// Where radio `radio` of terminal `mn` is, as a link id.
    pub fn radio_link(&self, mn: usize, radio: usize) -> Option<LinkId> {
        self.mns[mn].radios[radio].map(|i| self.link_id(i))
    }

    // ---- scenario actions -------------------------------------------------------------

    /// Puts radio `radio` of terminal `mn` on `link`. From nowhere, the interface comes up
    /// (the core solicits a router); from another link, it roamed at layer 2 (no link event:
    /// the new router's advertisements tell the core).
    pub fn attach(&mut self, mn: usize, radio: usize, link: LinkId) {
        let idx = self.link_index(link);
        self.generation += 1;
        let was = self.mns[mn].radios[radio].replace(idx);
        if was.is_none() {
            self.mn_input(
                mn,
                In::Link {
                    ifindex: topo::radio_ifindex(radio),
                    up: true,
                },
            );
        }
        if was != Some(idx) {
            self.host_link_changed(mn, radio);
        }
    }

    /// Takes radio `radio` of terminal `mn` off its link: the interface goes down.
    pub fn detach(&mut self, mn: usize, radio: usize) {
        if self.mns[mn].radios[radio].take().is_some() {
            let ifindex = topo::radio_ifindex(radio);
            self.mns[mn].kernel.link_down(ifindex);
            self.mn_input(mn, In::Link { ifindex, up: false });
        }
    }

    /// Drops the next `n` messages matching `matches`.
    pub fn drop_next(&mut self, n: usize, matches: impl Fn(&Packet) -> bool + 'static) {
        self.script(n, Fate::Drop, matches);
    }

    /// Applies `fate` to the next `n` messages matching `matches` (rules apply in the order
    /// they were added, one per message).
    pub fn script(&mut self, n: usize, fate: Fate, matches: impl Fn(&Packet) -> bool + 'static) {
        self.drops.push(Rule {
            remaining: n,
            matches: Box::new(matches),
            fate,
        });
    }

    /// The fake kernel of `node`.
    pub fn kernel_mut(&mut self, node: NodeId) -> &mut FakeKernel {
        match node {
            NodeId::Ha => &mut self.ha.kernel,
            NodeId::Mma(s) => &mut self.mmas[s].kernel,
            NodeId::Mn(t) => &mut self.mns[t].kernel,
            NodeId::Router(id) => {
                let r = self.router_index(id);
                &mut self.routers[r].kernel
            }
        }
    }

    pub fn kernel(&self, node: NodeId) -> &FakeKernel {
        match node {
            NodeId::Ha => &self.ha.kernel,
            NodeId::Mma(s) => &self.mmas[s].kernel,
            NodeId::Mn(t) => &self.mns[t].kernel,
            NodeId::Router(id) => &self.router(id).kernel,
        }
    }

    /// Refuses the next `n` kernel changes of `node` matching `matches` (errno ENOBUFS).
    pub fn refuse_next(&mut self, node: NodeId, n: usize, matches: impl Fn(&Op) -> bool + 'static) {
        self.kernel_mut(node).refuse_next(n, 105, matches);
    }

    // ---- the clock ----------------------------------------------------------------------

    /// Runs every event up to and including `t` (ms), then sets the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        self.run_until_with(t, &mut |_| {});
    }

    /// As [`run_until`](Self::run_until), calling `check` after every event that changed
    /// something (a kernel change, a message sent or received, a link event: the state the
    /// invariants read cannot change otherwise), and once at the end.
    pub fn run_until_with(&mut self, t: u64, check: &mut dyn FnMut(&World)) {
        let mut seen = self.fingerprint();
        while let Some(at) = self.next_event_time() {
            if at > t {
                break;
            }
            self.now = self.now.max(at);
            self.step();
            let now = self.fingerprint();
            if now != seen {
                seen = now;
                check(self);
            }
        }
        self.now = self.now.max(t);
        check(self);
    }

    /// Changes whenever anything the invariants read may have changed.
    fn fingerprint(&self) -> (u64, usize, usize) {
        let kernel_ops = self.ha.kernel.applied
            + self.mmas.iter().map(|m| m.kernel.applied).sum::<usize>()
            + self.mns.iter().map(|m| m.kernel.applied).sum::<usize>();
        (self.generation, self.packets.len(), kernel_ops)
    }

    /// Runs for `ms` more.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    fn node_timeout(&self, node: NodeId) -> Option<u64> {
        let t = self.poll(node)?.0;
        // A deadline at or before the last handled timeout of this node would spin: the core
        // is asked again 1 ms later (counted in `stale_timeouts`).
        match self.last_timeout.iter().find(|(n, _)| *n == node) {
            Some((_, last)) if t <= *last => Some(*last + 1),
            _ => Some(t),
        }
    }

    /// When link `i` advertises next: only links with a radio on them need the event (the
    /// advertisements of an empty link reach nobody).
    fn next_ra(&self, i: usize) -> Option<u64> {
        if !self.mns.iter().any(|m| m.radios.contains(&Some(i))) {
            return None;
        }
        let l = &self.links[i];
        let interval = self.cfg.ra_interval_ms.max(1);
        let from = l.last_ra.map_or(self.now, |t| (t + 1).max(self.now));
        let k = from.saturating_sub(l.phase).div_ceil(interval);
        Some(l.phase + k * interval)
    }

    fn nodes(&self) -> impl Iterator<Item = NodeId> {
        std::iter::once(NodeId::Ha)
            .chain((0..self.mmas.len()).map(NodeId::Mma))
            .chain((0..self.mns.len()).map(NodeId::Mn))
    }

    fn next_event_time(&self) -> Option<u64> {
        let delivery = self.queue.peek().map(|Reverse(p)| p.at);
        let ra = (0..self.links.len()).filter_map(|i| self.next_ra(i)).min();
        let timer = self.nodes().filter_map(|n| self.node_timeout(n)).min();
        let router = self
            .routers
            .iter()
            .filter_map(RouterNode::next_timeout)
            .min();
        [delivery, ra, timer, router].into_iter().flatten().min()
    }

    /// Handles the earliest event (deliveries first, then advertisements, then timers).
    fn step(&mut self) {
        self.stats.events += 1;
        let now = self.now;
        if let Some(Reverse(p)) = self.queue.peek() {
            if p.at <= now {
                if let Some(Reverse(p)) = self.queue.pop() {
                    self.deliver(p.what);
                }
                return;
            }
        }
        if let Some(i) = (0..self.links.len()).find(|&i| self.next_ra(i).is_some_and(|t| t <= now))
        {
            self.links[i].last_ra = Some(now);
            self.advertise(i);
            return;
        }
        let due: Vec<NodeId> = self
            .nodes()
            .filter(|n| self.node_timeout(*n).is_some_and(|t| t <= now))
            .collect();
        for node in due {
            self.last_timeout.retain(|(n, _)| *n != node);
            self.last_timeout.push((node, now));
            self.stats.timeouts += 1;
            self.input(node, In::Timeout);
            // A core that still wants a timeout at or before `now` after handling it would
            // spin a real driver.
            if self.poll(node).is_some_and(|p| p.0 <= now) {
                self.stats.stale_timeouts += 1;
            }
        }
        for r in 0..self.routers.len() {
            if self.routers[r].next_timeout().is_some_and(|t| t <= now) {
                self.stats.router_timeouts += 1;
                self.router_input(r, In::Timeout);
            }
        }
    }

    fn poll(&self, node: NodeId) -> Option<Millis> {
        match node {
            NodeId::Ha => self.ha.core.poll_timeout(),
            NodeId::Mma(s) => self.mmas[s].core.poll_timeout(),
            NodeId::Mn(m) => self.mns[m].core.poll_timeout(),
            NodeId::Router(id) => self.router(id).core.poll_timeout(),
        }
    }

    /// Periodic advertisement of link `i` to every radio on it.
    fn advertise(&mut self, i: usize) {
        for mn in 0..self.mns.len() {
            for radio in 0..topo::RADIOS {
                if self.mns[mn].radios[radio] == Some(i) {
                    self.schedule(1, Delivery::Ra { mn, radio, link: i });
                }
            }
        }
    }

    fn schedule(&mut self, delay: u64, what: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            at: self.now + delay,
            seq: self.seq,
            what,
        }));
    }

    fn deliver(&mut self, what: Delivery) {
        self.stats.deliveries += 1;
        match what {
            Delivery::Ra { mn, radio, link } => {
                if self.mns[mn].radios[radio] != Some(link) {
                    return;
                }
                self.stats.ras += 1;
                let l = &self.links[link];
                let input = In::RouterAdvert {
                    ifindex: topo::radio_ifindex(radio),
                    src: l.router,
                    bytes: hex(&l.ra),
                };
                self.mn_input(mn, input);
            }
            Delivery::ToRouter {
                router,
                ifindex,
                packet,
            } => self.router_input(router, pim::message_input(&packet, ifindex)),
            Delivery::ToHosts { link, bytes } => self.hosts_hear_query(link, &bytes),
            Delivery::HostSend {
                mn,
                radio,
                link,
                bytes,
            } => self.host_send(mn, radio, link, bytes),
            Delivery::Mh { packet, bytes } => {
                let (src, dst) = (self.packets[packet].src, self.packets[packet].dst);
                let Some(to) = self.owner_of(dst) else {
                    self.packets[packet].dropped = true;
                    return;
                };
                self.packets[packet].delivered_to = Some(to);
                self.input(
                    to,
                    In::Message {
                        src,
                        dst,
                        bytes: hex(&bytes),
                    },
                );
            }
        }
    }

    /// The node that receives packets to `dst` now: the home agent, an MMA, or a terminal
    /// whose radio is on the link of that address (its home address only on the home link).
    pub fn owner_of(&self, dst: Ipv6Addr) -> Option<NodeId> {
        if dst == topo::ha_addr() {
            return Some(NodeId::Ha);
        }
        if let Some(s) = (0..self.mmas.len()).find(|s| topo::mma_addr(*s) == dst) {
            return Some(NodeId::Mma(s));
        }
        (0..self.mns.len())
            .find(|&t| self.valid_source(t, dst))
            .map(NodeId::Mn)
    }

    /// Whether terminal `t` can use `addr` where it is: an on-link address of a link one of
    /// its radios is on, or its home address on the home link.
    pub fn valid_source(&self, t: usize, addr: Ipv6Addr) -> bool {
        self.mns[t].radios.iter().enumerate().any(|(r, l)| match l {
            Some(0) => addr == topo::hoa(t) || addr == topo::onlink(t, r, self.links[0].prefix),
            Some(i) => addr == topo::onlink(t, r, self.links[*i].prefix),
            None => false,
        })
    }

    /// Puts a Mobility Header message on the network.
    fn send_mh(&mut self, from: NodeId, src: Ipv6Addr, dst: Ipv6Addr, bytes: Vec<u8>) {
        let mut packet = Packet {
            t: self.now,
            from,
            src,
            dst,
            kind: classify(&bytes),
            delivered_to: None,
            dropped: false,
        };
        // A terminal cannot send from an address it no longer has a link for.
        let stranded = matches!(from, NodeId::Mn(t) if !self.valid_source(t, src));
        let fate = self
            .drops
            .iter_mut()
            .find(|d| d.remaining > 0 && (d.matches)(&packet))
            .map(|d| {
                d.remaining -= 1;
                d.fate.clone()
            });
        self.drops.retain(|d| d.remaining > 0);
        let lost = self.impair.loss > 0 && self.rng.below(1000) < u64::from(self.impair.loss);
        packet.dropped = stranded || lost || matches!(fate, Some(Fate::Drop));
        let idx = self.packets.len();
        let dropped = packet.dropped;
        self.packets.push(packet);
        if dropped {
            return;
        }
        // Between sites (context transfer, MMA to MMA) is the WAN too.
        let between_mmas =
            matches!(from, NodeId::Mma(_)) && matches!(self.owner_of(dst), Some(NodeId::Mma(_)));
        let wan = from == NodeId::Ha || dst == topo::ha_addr() || between_mmas;
        let base = if wan {
            self.cfg.wan_latency_ms
        } else {
            self.cfg.site_latency_ms
        };
        let mut delays = vec![0];
        if self.impair.duplicate > 0 && self.rng.below(1000) < u64::from(self.impair.duplicate) {
            delays.push(0);
        }
        match fate {
            Some(Fate::Delay(ms)) => delays = vec![ms],
            Some(Fate::Duplicate(extra)) => delays.extend(extra),
            _ => {}
        }
        for extra in delays {
            let jitter = if self.impair.jitter_ms > 0 {
                self.rng.below(self.impair.jitter_ms + 1)
            } else {
                0
            };
            self.schedule(
                base + extra + jitter,
                Delivery::Mh {
                    packet: idx,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    // ---- feeding the cores --------------------------------------------------------------

    fn record(&mut self, node: NodeId, what: What) {
        if let Some(r) = &mut self.recording {
            r.push(Record {
                t: self.now,
                node,
                what,
            });
        }
    }

    /// The operator of site `site`'s MMA advises the terminals on its link `link` to leave
    /// it (`mma advise`), for `avoid_secs`.
    pub fn advise(&mut self, site: usize, link: usize, reason: u8, avoid_secs: u16) {
        let input = In::Advise {
            prefix: topo::site_link_prefix(site, link),
            prefix_len: 64,
            reason,
            avoid_secs: Some(avoid_secs),
        };
        self.input(NodeId::Mma(site), input);
    }

    fn mn_input(&mut self, mn: usize, input: In) {
        self.input(NodeId::Mn(mn), input);
    }

    /// Feeds one input to router `r` (by index), drives it to idle, records what it did
    /// and puts what it sent on its links.
    fn router_input(&mut self, r: usize, input: In) {
        let node = NodeId::Router(self.routers[r].id);
        let mut log = Vec::new();
        let sends = self.routers[r].handle(self.now, &input, &mut |w| log.push(w));
        for w in log {
            self.record(node, w);
        }
        self.router_sends(r, sends);
    }

    /// Feeds one input to `node`'s core and drives it to idle.
    fn input(&mut self, node: NodeId, input: In) {
        if let NodeId::Router(id) = node {
            self.router_input(self.router_index(id), input);
            return;
        }
        if matches!(input, In::Message { .. } | In::Link { .. }) {
            self.generation += 1;
        }
        let now = now_at(self.now);
        self.record(
            node,
            What::In {
                input: input.clone(),
            },
        );
        let mut log = Vec::new();
        let members_before = match node {
            NodeId::Mn(t) => Some(self.mns[t].kernel.memberships.clone()),
            _ => None,
        };
        let sends: Vec<(Ipv6Addr, Ipv6Addr, Vec<u8>, Option<u32>)> = match node {
            NodeId::Ha => {
                let ha = &mut self.ha;
                if let Err(e) = crate::record::feed_ha(&mut ha.core, now, &input) {
                    panic!("harness fed the home agent a bad input: {e}");
                }
                // The shell looks up the interface toward each new care-of address: in the
                // simulation every CoA is behind the WAN (the home link's interface).
                for coa in ha.core.unresolved() {
                    let r = In::Resolve {
                        coa,
                        oif: topo::IF_A,
                    };
                    log.push(What::In { input: r });
                    ha.core.resolve(coa, topo::IF_A);
                }
                let kernel = &mut ha.kernel;
                let out = drive(
                    &mut ha.core,
                    now,
                    &mut |c| note(kernel, ha_op(c), now.mono.0),
                    &mut |w| log.push(w),
                );
                out.into_iter()
                    .filter_map(|o| match o {
                        Output::Send(s) => Some((s.src, s.dst, s.bytes, None)),
                        _ => None,
                    })
                    .collect()
            }
            NodeId::Mma(s) => {
                let m = &mut self.mmas[s];
                if let Err(e) = crate::record::feed_mma(&mut m.core, now, &input) {
                    panic!("harness fed an MMA a bad input: {e}");
                }
                let kernel = &mut m.kernel;
                let out = drive(
                    &mut m.core,
                    now,
                    &mut |c| note(kernel, mma_op(c), now.mono.0),
                    &mut |w| log.push(w),
                );
                out.into_iter()
                    .filter_map(|o| match o {
                        Output::Send(s) => Some((s.src, s.dst, s.bytes, None)),
                        _ => None,
                    })
                    .collect()
            }
            NodeId::Mn(t) => {
                let m = &mut self.mns[t];
                if let Err(e) = crate::record::feed_mn(&mut m.core, now, &input) {
                    panic!("harness fed a mobile node a bad input: {e}");
                }
                let kernel = &mut m.kernel;
                let out = drive(
                    &mut m.core,
                    now,
                    &mut |c| note(kernel, mn_op(c), now.mono.0),
                    &mut |w| log.push(w),
                );
                for o in &out {
                    if let Output::Event(mobile_node::core::MetricEvent::Registration {
                        outcome,
                        ..
                    }) = o
                    {
                        if outcome.starts_with("rejected") {
                            self.rejections.push((self.now, t, outcome.clone()));
                        }
                    }
                }
                out.into_iter()
                    .filter_map(|o| match o {
                        Output::Send(mobile_node::core::Send::Bu(b)) => {
                            Some((b.src, b.peer, b.bytes, None))
                        }
                        Output::Send(mobile_node::core::Send::Rs { ifindex }) => Some((
                            Ipv6Addr::UNSPECIFIED,
                            Ipv6Addr::UNSPECIFIED,
                            Vec::new(),
                            Some(ifindex),
                        )),
                        _ => None,
                    })
                    .collect()
            }
            // Routers are fed by `router_input` (returned above).
            NodeId::Router(_) => Vec::new(),
        };
        for w in log {
            self.record(node, w);
        }
        if let (NodeId::Mn(t), Some(before)) = (node, members_before) {
            self.host_memberships_changed(t, &before);
        }
        for (src, dst, bytes, rs) in sends {
            match (node, rs) {
                (NodeId::Mn(t), Some(ifindex)) => {
                    // A router answers a solicitation at once.
                    let radio = (ifindex - topo::IF_A) as usize;
                    if let Some(link) = self.mns[t].radios.get(radio).copied().flatten() {
                        self.schedule(1, Delivery::Ra { mn: t, radio, link });
                    }
                }
                _ => self.send_mh(node, src, dst, bytes),
            }
        }
    }

    // ---- queries ------------------------------------------------------------------------

    /// Binding Updates terminal `t` sent (lost ones included).
    pub fn bus_sent_by(&self, t: usize) -> Vec<&Packet> {
        self.packets
            .iter()
            .filter(|p| p.from == NodeId::Mn(t) && matches!(p.kind, MhKind::Bu { .. }))
            .collect()
    }

    /// The MN core's status now.
    pub fn mn_status(&self, t: usize) -> mobile_node::core::Status {
        self.mns[t].core.status(Millis(self.now))
    }
}

/// Applies `op`, noting when the kernel refused.
fn note(kernel: &mut FakeKernel, op: Op, now: u64) -> mipcast_proto::Outcome {
    let outcome = kernel.apply(&op);
    if matches!(outcome, mipcast_proto::Outcome::Refused { .. }) {
        kernel.last_refusal_ms = Some(now);
    }
    outcome
}

/// A home agent change as the fake kernel sees it.
pub fn ha_op(c: &home_agent::core::Change) -> Op {
    use home_agent::core::Change;
    let (verb, o) = match *c {
        Change::Add(o) => (Verb::Add, o),
        Change::Replace(o) => (Verb::Replace, o),
        Change::Delete(o) => (Verb::Delete, o),
    };
    Op {
        verb,
        target: Target::Object(o),
    }
}

pub fn mma_op(c: &mma::core::Change) -> Op {
    use mma::core::Change;
    match *c {
        Change::Add(o) => obj(Verb::Add, o),
        Change::Replace(o) => obj(Verb::Replace, o),
        Change::Delete(o) => obj(Verb::Delete, o),
        Change::AddMfc { source, group } => Op {
            verb: Verb::Add,
            target: Target::Mfc { source, group },
        },
        Change::DelMfc { source, group } => Op {
            verb: Verb::Delete,
            target: Target::Mfc { source, group },
        },
    }
}

fn obj(verb: Verb, o: KObject) -> Op {
    Op {
        verb,
        target: Target::Object(o),
    }
}

/// A mobile node change: `Install` adds or replaces routes (rules are plain adds).
pub fn mn_op(c: &KernelChange) -> Op {
    let membership = |m: &mobile_node::core::kernel::Membership| Target::Membership {
        ifindex: m.ifindex,
        group: m.group,
        source: m.source,
    };
    match c {
        KernelChange::Join(m) => Op {
            verb: Verb::Add,
            target: membership(m),
        },
        KernelChange::Leave(m) => Op {
            verb: Verb::Delete,
            target: membership(m),
        },
        KernelChange::AddAddress(a) => obj(Verb::Add, a.object()),
        KernelChange::RemoveAddress(a) => obj(Verb::Delete, a.object()),
        KernelChange::MarkGroup(g) => Op {
            verb: Verb::Add,
            target: Target::Mark(*g),
        },
        KernelChange::UnmarkGroup(g) => Op {
            verb: Verb::Delete,
            target: Target::Mark(*g),
        },
        KernelChange::Install(o @ KObject::Rule { .. }) => obj(Verb::Add, *o),
        KernelChange::Install(o) => obj(Verb::Replace, *o),
        KernelChange::Remove(o) => obj(Verb::Delete, *o),
        KernelChange::SetDefaultRoute(r) => obj(Verb::Replace, r.object()),
        KernelChange::RemoveDefaultRoute(r) => obj(Verb::Delete, r.object()),
        KernelChange::SetLinkUp(i) => Op {
            verb: Verb::Add,
            target: Target::LinkUp(*i),
        },
        KernelChange::SetLinkDown(i) => Op {
            verb: Verb::Delete,
            target: Target::LinkUp(*i),
        },
    }
}
