//! The multicast last hop: a pim-lite core on every access link of a site, one pim-lite core
//! next to each site's MMA (the "MMA's router", upstream of the access routers), and the
//! terminals' host MLD (what the Linux kernel sends for a socket's source-specific join).
//!
//! Each access router has its access link (MLDv2 querier, no PIM on it: it is the link's only
//! router) and a point-to-point core link to its site's router; the site router has one core
//! link per access router and one toward the MMA (the (MMA, G) traffic comes in there: RPF
//! toward the MMA is that link, directly connected). MFC entries go to the router's
//! [`FakeKernel`] with their interfaces. RPF lookups are answered at once from this topology.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use mipcast_proto::{Machine, Now, Output};
use mipcast_wire::mld::{GroupRecord, MldRepr, RecordType};
use mipcast_wire::pim::PimRepr;
use pim_lite::core::machine::{Change, Input};
use pim_lite::core::settings::Settings;
use pim_lite::core::settings::{GroupRange, InterfaceSettings, MldSettings, PimSettings, Role};
use pim_lite::core::{IfaceAddrs, Packet as PimPacket, Proto, Router, RpfRoute, Rx, Sg};
use serde::{Deserialize, Serialize};

use crate::invariants::{self, Settled};
use crate::kernel::{FakeKernel, Op, Target, Verb};
use crate::record::{self, now_at, In, What};
use crate::topology::{self as topo, SimConfig};
use crate::world::World;

/// An access router's access link.
pub const ACCESS_IF: u32 = 10;
/// An access router's link up to its site router.
pub const UP_IF: u32 = 11;
/// The site router's link toward the MMA.
pub const TO_MMA_IF: u32 = 20;
/// The site router's link down to access router `l` is `DOWN_IF_BASE + l`.
pub const DOWN_IF_BASE: u32 = 21;

/// All MLDv2-capable routers (ff02::16): where hosts send reports.
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// MLD on the access links: query interval 5 s, robustness 2, response interval 1 s, so a
/// listener that stopped reporting is gone after MALI = 11 s; last-listener queries 200 ms.
pub fn mld_settings() -> MldSettings {
    MldSettings {
        robustness: 2,
        query_interval_secs: 5,
        query_response_interval_ms: 1000,
        last_listener_query_interval_ms: 200,
        startup_query_interval_secs: Some(1),
        fast_leave: false,
        ..MldSettings::default()
    }
}

/// PIM on the core links: Joins refreshed every 3 s and held 10 s; Hellos and RPF checks
/// every 10 s (they cost events in every itinerary and decide nothing the tests time).
pub fn pim_settings() -> PimSettings {
    PimSettings {
        hello_period_secs: 10,
        triggered_hello_delay_ms: 100,
        join_prune_period_secs: 3,
        override_interval_ms: 500,
        propagation_delay_ms: 100,
        rpf_check_interval_secs: 10,
        ..PimSettings::default()
    }
}

/// The longest a listener keeps an access router's entry after its last report: MALI.
pub fn mali_ms() -> u64 {
    mld_settings().mali().as_millis() as u64
}

/// The longest a site router keeps a downstream Join that is not refreshed: the holdtime.
pub fn join_holdtime_ms() -> u64 {
    u64::from(pim_settings().join_prune_holdtime()) * 1000
}

/// Which router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouterId {
    /// The router next to site `s`'s MMA.
    Site(usize),
    /// The router of access link `l` of site `s`.
    Access(usize, usize),
}

pub struct RouterNode {
    pub id: RouterId,
    pub core: Router,
    pub kernel: FakeKernel,
    /// The interfaces of each installed forwarding MFC entry: (S, G) → (iif, oifs).
    pub mfc: BTreeMap<(Ipv6Addr, Ipv6Addr), (u32, Vec<u32>)>,
    /// Negative entries (no outgoing interface: the kernel drops the channel's late packets
    /// instead of queueing them after a prune), by (S, G): they forward nothing, so the
    /// multicast invariants look at `mfc` only.
    pub negative: BTreeMap<(Ipv6Addr, Ipv6Addr), u32>,
    /// When its last timeout was handled.
    pub last_timeout: Option<u64>,
}

fn v6(segs: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segs;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

/// The access router's address on its access link (the world's router of that link).
pub fn access_ll(s: usize, l: usize) -> Ipv6Addr {
    v6([0xfe80, 0, 0, 0, 0, 0, s as u16 + 1, l as u16 + 1])
}

/// The access router's address on its link up.
pub fn up_ll(s: usize, l: usize) -> Ipv6Addr {
    v6([0xfe80, 0, 0, 0, 0xa, s as u16, l as u16, 1])
}

/// The site router's address on its link down to access router `l`.
pub fn down_ll(s: usize, l: usize) -> Ipv6Addr {
    v6([0xfe80, 0, 0, 0, 0xb, s as u16, l as u16, 1])
}

fn to_mma_ll(s: usize) -> Ipv6Addr {
    v6([0xfe80, 0, 0, 0, 0xc, s as u16, 0, 1])
}

/// A terminal's link-local address on radio `radio` (the source of its MLD reports).
pub fn host_ll(t: usize, radio: usize) -> Ipv6Addr {
    mobile_node::core::links::slaac(v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), topo::mac(t, radio))
}

fn addrs(ll: Ipv6Addr) -> IfaceAddrs {
    IfaceAddrs {
        link_local: Some(ll),
        globals: Vec::new(),
        mac: None,
    }
}

fn core_iface(name: String) -> InterfaceSettings {
    InterfaceSettings {
        name,
        role: Role::Core,
        mld: mld_settings(),
        ra: None,
        pim: true,
    }
}

/// Index of router `id` among a world's routers: the site routers first, then the access
/// routers site by site.
pub fn router_index(cfg: &SimConfig, id: RouterId) -> usize {
    match id {
        RouterId::Site(s) => s,
        RouterId::Access(s, l) => cfg.sites + s * cfg.links_per_site + l,
    }
}

/// The pim-lite core of router `id` as a world built from `cfg` starts it (the replay builds
/// it again from the same values).
pub fn router_core(cfg: &SimConfig, id: RouterId) -> Router {
    let (interfaces, ifaces): (Vec<InterfaceSettings>, Vec<(u32, IfaceAddrs)>) = match id {
        RouterId::Access(s, l) => [
            (
                InterfaceSettings {
                    name: format!("acc{s}.{l}"),
                    role: Role::Access,
                    mld: mld_settings(),
                    // The world sends the links' advertisements itself.
                    ra: None,
                    pim: false,
                },
                (ACCESS_IF, addrs(access_ll(s, l))),
            ),
            (
                core_iface(format!("up{s}.{l}")),
                (UP_IF, addrs(up_ll(s, l))),
            ),
        ]
        .into_iter()
        .unzip(),
        RouterId::Site(s) => std::iter::once((
            core_iface(format!("mma{s}")),
            (TO_MMA_IF, addrs(to_mma_ll(s))),
        ))
        .chain((0..cfg.links_per_site).map(|l| {
            (
                core_iface(format!("down{s}.{l}")),
                (DOWN_IF_BASE + l as u32, addrs(down_ll(s, l))),
            )
        }))
        .unzip(),
    };
    let settings = Settings {
        interfaces,
        ssm_groups: vec![GroupRange::SsmAnyScope],
        pim: pim_settings(),
    };
    let seed = cfg.seed ^ (router_index(cfg, id) as u64 + 1);
    Router::new(&settings, ifaces, now_at(0).mono, seed)
}

impl RouterNode {
    pub fn new(cfg: &SimConfig, id: RouterId) -> RouterNode {
        RouterNode {
            id,
            core: router_core(cfg, id),
            kernel: FakeKernel::default(),
            mfc: BTreeMap::new(),
            negative: BTreeMap::new(),
            last_timeout: None,
        }
    }

    /// The unicast route toward `source` from this router: the site router reaches its MMA
    /// directly; an access router through its site router.
    fn rpf(&self, source: Ipv6Addr) -> Option<RpfRoute> {
        match self.id {
            RouterId::Site(s) => (source == topo::mma_addr(s)).then_some(RpfRoute {
                ifindex: TO_MMA_IF,
                gateway: None,
            }),
            RouterId::Access(s, l) => Some(RpfRoute {
                ifindex: UP_IF,
                gateway: Some(down_ll(s, l)),
            }),
        }
    }

    /// Drives the core to idle after an input at `now` with the harness's one burst rule
    /// ([`record::drive`]): MFC changes go to the fake kernel; each RPF lookup is answered
    /// from this topology as an input of its own (recorded, then driven to idle, so that a
    /// replay feeding the recorded inputs one at a time sees the same rounds). Returns the
    /// packets it sends; every input, output and outcome goes to `log`.
    pub fn drive(&mut self, now: u64, log: &mut dyn FnMut(What)) -> Vec<PimPacket> {
        let now = now_at(now);
        let mut sends = Vec::new();
        let mut lookups = std::collections::VecDeque::new();
        loop {
            let RouterNode {
                core,
                kernel,
                mfc,
                negative,
                ..
            } = self;
            let out = record::drive(
                core,
                now,
                &mut |c| apply(kernel, mfc, negative, c, &mut lookups),
                log,
            );
            sends.extend(out.into_iter().filter_map(|o| match o {
                Output::Send(p) => Some(p),
                _ => None,
            }));
            let Some(source) = lookups.pop_front() else {
                return sends;
            };
            let input = rpf_input(source, self.rpf(source));
            log(What::In {
                input: input.clone(),
            });
            if let Err(e) = feed_pim(&mut self.core, now, &input) {
                panic!("harness fed router {:?} a bad input: {e}", self.id);
            }
        }
    }

    /// Whether this router forwards (S, G) out of `oif`.
    pub fn forwards(&self, source: Ipv6Addr, group: Ipv6Addr, oif: u32) -> bool {
        self.mfc
            .get(&(source, group))
            .is_some_and(|(_, oifs)| oifs.contains(&oif))
    }

    /// Feeds one input (a message or a timeout) at `now` and drives the core to idle.
    pub fn handle(&mut self, now: u64, input: &In, log: &mut dyn FnMut(What)) -> Vec<PimPacket> {
        if matches!(input, In::Timeout) {
            self.last_timeout = Some(now);
        }
        log(What::In {
            input: input.clone(),
        });
        if let Err(e) = feed_pim(&mut self.core, now_at(now), input) {
            panic!("harness fed router {:?} a bad input: {e}", self.id);
        }
        self.drive(now, log)
    }

    /// When it wants its next timeout (ms of virtual time).
    pub fn next_timeout(&self) -> Option<u64> {
        let t = self.core.poll_timeout()?.0;
        match self.last_timeout {
            Some(last) if t <= last => Some(last + 1),
            _ => Some(t),
        }
    }
}

/// Applies an MFC change to a router's fake kernel and its forwarding view; an RPF lookup
/// is queued for [`RouterNode::drive`] to answer.
fn apply(
    kernel: &mut FakeKernel,
    mfc: &mut BTreeMap<(Ipv6Addr, Ipv6Addr), (u32, Vec<u32>)>,
    negative: &mut BTreeMap<(Ipv6Addr, Ipv6Addr), u32>,
    c: &Change,
    lookups: &mut std::collections::VecDeque<Ipv6Addr>,
) -> mipcast_proto::Outcome {
    match c {
        Change::MfcAdd { sg, iif, oifs, .. } => {
            let outcome = kernel.apply(&mfc_op(Verb::Add, *sg));
            if outcome.reached(false) {
                let key = (sg.source, sg.group);
                if oifs.is_empty() {
                    mfc.remove(&key);
                    negative.insert(key, *iif);
                } else {
                    negative.remove(&key);
                    mfc.insert(key, (*iif, oifs.clone()));
                }
            }
            outcome
        }
        Change::MfcDel { sg } => {
            let outcome = kernel.apply(&mfc_op(Verb::Delete, *sg));
            mfc.remove(&(sg.source, sg.group));
            negative.remove(&(sg.source, sg.group));
            outcome
        }
        Change::LookupRpf(source) => {
            lookups.push_back(*source);
            mipcast_proto::Outcome::Applied
        }
    }
}

/// The input answering an RPF lookup for `source`.
fn rpf_input(source: Ipv6Addr, route: Option<RpfRoute>) -> In {
    In::Rpf {
        source,
        ifindex: route.map(|r| r.ifindex),
        gateway: route.and_then(|r| r.gateway),
    }
}

/// The input of a multicast-control message `p` arriving on `ifindex` (hop limit 1, as MLD
/// and PIM are sent).
pub fn message_input(p: &PimPacket, ifindex: u32) -> In {
    In::Mcast {
        proto: p.proto,
        ifindex,
        src: p.source,
        dst: p.destination,
        hop_limit: 1,
        bytes: record::hex(&p.bytes),
    }
}

/// Feeds a recorded pim-lite input to a router's core.
pub fn feed_pim(core: &mut Router, now: Now, input: &In) -> Result<(), String> {
    match input {
        In::Mcast {
            proto,
            ifindex,
            src,
            dst,
            hop_limit,
            bytes,
        } => {
            let bytes = record::unhex(bytes)?;
            let rx = Rx {
                ifindex: *ifindex,
                source: *src,
                destination: *dst,
                hop_limit: *hop_limit,
            };
            let bytes = bytes.as_slice();
            core.handle_input(
                now,
                match proto {
                    Proto::Mld => Input::Mld { rx, bytes },
                    Proto::Pim => Input::Pim { rx, bytes },
                    Proto::Nd => Input::Nd { rx, bytes },
                },
            );
        }
        In::Rpf {
            source,
            ifindex,
            gateway,
        } => core.handle_input(
            now,
            Input::Rpf {
                source: *source,
                route: ifindex.map(|ifindex| RpfRoute {
                    ifindex,
                    gateway: *gateway,
                }),
            },
        ),
        In::Timeout => core.handle_timeout(now),
        other => return Err(format!("not a pim-lite input: {other:?}")),
    }
    Ok(())
}

fn mfc_op(verb: Verb, sg: Sg) -> Op {
    Op {
        verb,
        target: Target::Mfc {
            source: sg.source,
            group: sg.group,
        },
    }
}

/// Where a router's packet goes: the router and interface on the other end of the link, or
/// the terminals on an access link (by the world's link index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Router(RouterId, u32),
    Hosts { site: usize, link: usize },
    Nobody,
}

pub fn peer_of(from: RouterId, ifindex: u32) -> Peer {
    match (from, ifindex) {
        (RouterId::Access(s, l), ACCESS_IF) => Peer::Hosts { site: s, link: l },
        (RouterId::Access(s, l), UP_IF) => Peer::Router(RouterId::Site(s), DOWN_IF_BASE + l as u32),
        (RouterId::Site(s), i) if i >= DOWN_IF_BASE => {
            Peer::Router(RouterId::Access(s, (i - DOWN_IF_BASE) as usize), UP_IF)
        }
        _ => Peer::Nobody,
    }
}

/// What a multicast-control message was, for assertions and scripted losses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum McastKind {
    MldQuery {
        group: Ipv6Addr,
    },
    /// (record type, group, sources) per record.
    MldReport {
        records: Vec<(u8, Ipv6Addr, Vec<Ipv6Addr>)>,
    },
    PimHello,
    PimJoinPrune {
        joins: Vec<(Ipv6Addr, Ipv6Addr)>,
        prunes: Vec<(Ipv6Addr, Ipv6Addr)>,
    },
    Other,
}

impl McastKind {
    pub fn of(proto: Proto, bytes: &[u8]) -> McastKind {
        match proto {
            Proto::Mld => match MldRepr::parse(bytes) {
                Ok(MldRepr::QueryV2(q)) => McastKind::MldQuery {
                    group: q.multicast_address,
                },
                Ok(MldRepr::ReportV2 { records }) => McastKind::MldReport {
                    records: records
                        .into_iter()
                        .map(|r| (r.record_type as u8, r.multicast_address, r.sources))
                        .collect(),
                },
                _ => McastKind::Other,
            },
            Proto::Pim => match PimRepr::parse(bytes) {
                Ok(PimRepr::Hello { .. }) => McastKind::PimHello,
                Ok(PimRepr::JoinPrune(jp)) => {
                    let mut joins = Vec::new();
                    let mut prunes = Vec::new();
                    for g in jp.groups {
                        joins.extend(g.joins.iter().map(|s| (s.addr, g.group.addr)));
                        prunes.extend(g.prunes.iter().map(|s| (s.addr, g.group.addr)));
                    }
                    McastKind::PimJoinPrune { joins, prunes }
                }
                _ => McastKind::Other,
            },
            Proto::Nd => McastKind::Other,
        }
    }

    pub fn is_report(&self) -> bool {
        matches!(self, McastKind::MldReport { .. })
    }

    /// A Join/Prune that joins (S, G).
    pub fn joins(&self, sg: (Ipv6Addr, Ipv6Addr)) -> bool {
        matches!(self, McastKind::PimJoinPrune { joins, .. } if joins.contains(&sg))
    }

    /// A Join/Prune that prunes (S, G).
    pub fn prunes(&self, sg: (Ipv6Addr, Ipv6Addr)) -> bool {
        matches!(self, McastKind::PimJoinPrune { prunes, .. } if prunes.contains(&sg))
    }
}

/// Who sent a multicast-control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum McastFrom {
    Router(RouterId),
    /// Terminal `t`'s radio `radio`.
    Host(usize, usize),
}

/// An MLD or PIM message put on a link.
#[derive(Debug, Clone, Serialize)]
pub struct McastPacket {
    pub t: u64,
    pub from: McastFrom,
    pub kind: McastKind,
    pub dropped: bool,
}

/// An MLDv2 report of `records` (bytes with a zero checksum, as the kernel would fill it).
pub fn report(records: Vec<GroupRecord>) -> Vec<u8> {
    let repr = MldRepr::ReportV2 { records };
    let mut buf = vec![0; repr.buffer_len()];
    // A report emitted into a buffer of its own length cannot fail.
    let n = repr.emit(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

/// One record per (G, S) of `members`, all of `record_type`.
pub fn records(
    record_type: RecordType,
    members: impl IntoIterator<Item = (Ipv6Addr, Ipv6Addr)>,
) -> Vec<GroupRecord> {
    let mut by_group: BTreeMap<Ipv6Addr, BTreeSet<Ipv6Addr>> = BTreeMap::new();
    for (g, s) in members {
        by_group.entry(g).or_default().insert(s);
    }
    by_group
        .into_iter()
        .map(|(g, sources)| GroupRecord {
            record_type,
            multicast_address: g,
            sources: sources.into_iter().collect(),
        })
        .collect()
}

/// What the host's MLD answers to a query: its memberships on the radio that the query asks
/// about (RFC 3810 §6.2: current-state records), or nothing.
pub fn answer(
    query: &MldRepr,
    members: &[(Ipv6Addr, Ipv6Addr)],
) -> Option<(u32, Vec<GroupRecord>)> {
    let MldRepr::QueryV2(q) = query else {
        return None;
    };
    let asked: Vec<(Ipv6Addr, Ipv6Addr)> = members
        .iter()
        .copied()
        .filter(|(g, s)| {
            (q.multicast_address.is_unspecified() || q.multicast_address == *g)
                && (q.sources.is_empty() || q.sources.contains(s))
        })
        .collect();
    if asked.is_empty() {
        return None;
    }
    Some((
        q.max_response_delay_ms(),
        records(RecordType::ModeIsInclude, asked),
    ))
}

// ---- invariants of the multicast last hop --------------------------------------------------

/// How long after the last change of memberships every router's state has caught up with
/// them, whatever was lost in between: a listener that went silent is gone after MALI, the
/// access router's Prune (or, if it was lost, the site router's join holdtime) removes the
/// branch, plus the prune-pending delay and a query's response time.
pub fn quiet_ms() -> u64 {
    let pim = pim_settings();
    mali_ms() + join_holdtime_ms() + pim.prune_pending().as_millis() as u64 + 2000
}

/// Every terminal settled in a site receives its group over exactly one path: the site
/// router forwards (MMA, G) from the MMA's link to the access router of the link the
/// terminal's registered radio is on, that router forwards it onto the link, and no other
/// source of G is forwarded onto that link. Holds once the terminal's reports got through
/// (after [`quiet_ms`] without movement, whatever was lost).
pub fn mcast_delivery(w: &World) -> Result<(), String> {
    for t in 0..w.mns.len() {
        let Settled::InSite { site, ifindex } = invariants::settled(w, t) else {
            continue;
        };
        let radio = (ifindex - topo::IF_A) as usize;
        let Some(crate::LinkId::Site(s, l)) = w.radio_link(t, radio) else {
            continue;
        };
        let (mma, g) = (topo::mma_addr(site), topo::group(t));
        let sr = w.router(RouterId::Site(s));
        let ar = w.router(RouterId::Access(s, l));
        let down = DOWN_IF_BASE + l as u32;
        if sr.mfc.get(&(mma, g)).map(|e| e.0) != Some(TO_MMA_IF) || !sr.forwards(mma, g, down) {
            return Err(format!(
                "terminal {t} in site {site} on link {l}: the site router does not forward ({mma}, {g}) from the MMA to link {l} (MFC {:?})",
                sr.mfc
            ));
        }
        if ar.mfc.get(&(mma, g)).map(|e| e.0) != Some(UP_IF) || !ar.forwards(mma, g, ACCESS_IF) {
            return Err(format!(
                "terminal {t} in site {site} on link {l}: its access router does not forward ({mma}, {g}) onto the link (MFC {:?})",
                ar.mfc
            ));
        }
        let others: Vec<_> = ar
            .mfc
            .iter()
            .filter(|((src, grp), (_, oifs))| *grp == g && *src != mma && oifs.contains(&ACCESS_IF))
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "terminal {t} on link ({s}, {l}) gets G from a second source: {others:?}"
            ));
        }
    }
    Ok(())
}

/// No MFC entry, and no outgoing interface of one, without a listener or a downstream join
/// behind it: an access router forwards (S, G) onto its link only while a terminal's radio
/// there holds that membership; a site router forwards it down a link only while that
/// link's access router forwards it. Holds after [`quiet_ms`] without movement.
pub fn mcast_no_stale(w: &World) -> Result<(), String> {
    for r in &w.routers {
        for (&(src, grp), (_, oifs)) in &r.mfc {
            if oifs.is_empty() {
                return Err(format!(
                    "{:?} holds ({src}, {grp}) with no outgoing interface",
                    r.id
                ));
            }
            for &oif in oifs {
                let wanted = match (r.id, oif) {
                    (RouterId::Access(s, l), ACCESS_IF) => {
                        let link = w.link_index(crate::LinkId::Site(s, l));
                        (0..w.mns.len()).any(|t| {
                            (0..topo::RADIOS).any(|radio| {
                                w.mns[t].radios[radio] == Some(link)
                                    && w.mns[t].kernel.memberships.contains(&(
                                        topo::radio_ifindex(radio),
                                        grp,
                                        src,
                                    ))
                            })
                        })
                    }
                    (RouterId::Site(s), i) if i >= DOWN_IF_BASE => w
                        .router(RouterId::Access(s, (i - DOWN_IF_BASE) as usize))
                        .mfc
                        .contains_key(&(src, grp)),
                    _ => false,
                };
                if !wanted {
                    return Err(format!(
                        "t={} ms: {:?} forwards ({src}, {grp}) out of interface {oif} with no listener or downstream join behind it",
                        w.now, r.id
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Both, after a quiet period.
pub fn mcast_check(w: &World) -> Result<(), String> {
    mcast_delivery(w)?;
    mcast_no_stale(w)
}
