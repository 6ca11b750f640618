//! PIM (RFC 7761, SSM subset) per core link: neighbours from Hellos, downstream (S,G) join
//! state, and building our Hello and Join/Prune messages.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_proto::Millis;
use mipcast_wire::pim::{
    EncodedGroup, EncodedSource, HelloOption, JoinPrune, JoinPruneGroup, LanPruneDelay, PimRepr,
};

use super::settings::PimSettings;
use super::Sg;

/// RFC 7761 §4.11: Hello holdtime when the option is absent.
const DEFAULT_HELLO_HOLDTIME: u16 = 105;
/// (S,G) entries per Join/Prune message: 40 × 20 bytes plus group headers stays well below
/// the minimum IPv6 MTU.
const MAX_SOURCES_PER_MESSAGE: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub gen_id: Option<u32>,
    pub dr_priority: Option<u32>,
    /// Secondary addresses from the Address List option.
    pub addresses: Vec<Ipv6Addr>,
    /// The LAN Prune Delay option, when the neighbour sent one.
    pub lan_prune_delay: Option<LanPruneDelay>,
    /// None: holdtime 0xffff, never expires.
    pub expires: Option<Millis>,
}

/// What a Hello did to the neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloOutcome {
    New,
    /// The generation id changed: the neighbour restarted and lost its state.
    Restarted,
    Refreshed,
    /// Same generation id, another Address List: routes through the neighbour may now
    /// (or no longer) lead to it, so RPF neighbours must be recomputed.
    AddressesChanged,
    /// Holdtime 0: the neighbour is going away.
    Gone,
    Unknown,
}

/// Downstream (S,G) state of one interface (RFC 7761 §4.5.2, SSM subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downstream {
    Join {
        expires: Millis,
    },
    /// A Prune was heard; unless a Join overrides it by `prune_at`, the state goes.
    PrunePending {
        expires: Millis,
        prune_at: Millis,
    },
}

impl Downstream {
    fn deadline(&self) -> Millis {
        match *self {
            Downstream::Join { expires } => expires,
            Downstream::PrunePending { expires, prune_at } => expires.min(prune_at),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PimIface {
    pub gen_id: u32,
    pub next_hello: Millis,
    /// Our Hello with the interface's current addresses went out. Neighbours accept Join/Prunes
    /// only from routers they heard a Hello from (RFC 7761 §4.3.1).
    pub hello_current: bool,
    pub neighbors: BTreeMap<Ipv6Addr, Neighbor>,
    /// Changed only through the methods below, which keep the two indexes after it.
    downstream: BTreeMap<Sg, Downstream>,
    /// Each downstream entry's deadline: the next one and the expired ones without a scan
    /// (10,000 (S,G) from one downstream router made every loop iteration walk them all).
    deadlines: BTreeSet<(Millis, Sg)>,
    /// How many downstream entries are prune-pending (the rest are joined).
    prune_pending: usize,
}

impl PimIface {
    /// The first Hello goes out at once (a triggered Hello on start-up).
    pub fn new(gen_id: u32, now: Millis) -> PimIface {
        PimIface {
            gen_id,
            next_hello: now,
            hello_current: false,
            neighbors: BTreeMap::new(),
            downstream: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            prune_pending: 0,
        }
    }

    /// Downstream join state by (S,G).
    pub fn downstream(&self) -> &BTreeMap<Sg, Downstream> {
        &self.downstream
    }

    /// Downstream (S,G) in Join state (not prune-pending).
    pub fn downstream_joined(&self) -> usize {
        self.downstream.len() - self.prune_pending
    }

    /// Sets (S,G)'s downstream state, keeping the indexes; returns the previous one.
    fn set_downstream(&mut self, sg: Sg, state: Option<Downstream>) -> Option<Downstream> {
        let before = match state {
            Some(d) => {
                self.deadlines.insert((d.deadline(), sg));
                if matches!(d, Downstream::PrunePending { .. }) {
                    self.prune_pending += 1;
                }
                self.downstream.insert(sg, d)
            }
            None => self.downstream.remove(&sg),
        };
        if let Some(old) = before {
            if state.is_none_or(|new| new.deadline() != old.deadline()) {
                self.deadlines.remove(&(old.deadline(), sg));
            }
            if matches!(old, Downstream::PrunePending { .. }) {
                self.prune_pending -= 1;
            }
        }
        before
    }

    pub fn next_deadline(&self) -> Millis {
        let neighbors = self.neighbors.values().filter_map(|n| n.expires);
        let downstream = self.deadlines.first().map(|&(t, _)| t);
        neighbors
            .chain(downstream)
            .fold(self.next_hello, Millis::min)
    }

    /// Applies a Hello from `from` (its link-local source address).
    pub fn on_hello(
        &mut self,
        now: Millis,
        from: Ipv6Addr,
        options: &[HelloOption],
    ) -> HelloOutcome {
        let mut holdtime = DEFAULT_HELLO_HOLDTIME;
        let mut gen_id = None;
        let mut dr_priority = None;
        let mut addresses = Vec::new();
        let mut lan_prune_delay = None;
        for opt in options {
            match opt {
                HelloOption::Holdtime(h) => holdtime = *h,
                HelloOption::GenerationId(g) => gen_id = Some(*g),
                HelloOption::DrPriority(p) => dr_priority = Some(*p),
                HelloOption::AddressList(a) => addresses.extend(a.iter().copied()),
                HelloOption::LanPruneDelay(d) => lan_prune_delay = Some(*d),
                HelloOption::Unknown { .. } => {}
            }
        }
        if holdtime == 0 {
            return match self.neighbors.remove(&from) {
                Some(_) => HelloOutcome::Gone,
                None => HelloOutcome::Unknown,
            };
        }
        let expires = (holdtime != u16::MAX)
            .then(|| now + std::time::Duration::from_secs(u64::from(holdtime)));
        let neighbor = Neighbor {
            gen_id,
            dr_priority,
            addresses,
            lan_prune_delay,
            expires,
        };
        match self.neighbors.insert(from, neighbor) {
            None => HelloOutcome::New,
            Some(old) if old.gen_id != gen_id => HelloOutcome::Restarted,
            Some(old)
                if self.neighbors.get(&from).map(|n| &n.addresses) != Some(&old.addresses) =>
            {
                HelloOutcome::AddressesChanged
            }
            Some(_) => HelloOutcome::Refreshed,
        }
    }

    /// The Designated Router (RFC 7761 §4.3.2): highest DR priority, then highest address;
    /// when any router on the link sends no DR Priority option, addresses alone decide.
    /// `ours` is our link-local address on the link.
    pub fn dr(&self, ours: Ipv6Addr, our_priority: u32) -> Ipv6Addr {
        let all_have_priority = self.neighbors.values().all(|n| n.dr_priority.is_some());
        let key = |addr: Ipv6Addr, prio: Option<u32>| {
            (
                if all_have_priority {
                    prio.unwrap_or(0)
                } else {
                    0
                },
                addr,
            )
        };
        self.neighbors
            .iter()
            .map(|(&a, n)| key(a, n.dr_priority))
            .chain([key(ours, Some(our_priority))])
            .max()
            .map_or(ours, |(_, a)| a)
    }

    /// LAN_Prune_Delay is in effect when every neighbour sent the option (§4.3.3).
    fn lan_delay_enabled(&self) -> bool {
        self.neighbors.values().all(|n| n.lan_prune_delay.is_some())
    }

    /// Effective_Override_Interval(I): the largest of ours and the neighbours' when the LAN
    /// Prune Delay is in effect, our configured one otherwise.
    pub fn effective_override_interval(&self, cfg: &PimSettings) -> Duration {
        let ours = cfg.override_interval_ms;
        let ms = if self.lan_delay_enabled() {
            self.neighbors
                .values()
                .filter_map(|n| n.lan_prune_delay)
                .map(|d| u64::from(d.override_interval_ms))
                .fold(ours, u64::max)
        } else {
            ours
        };
        Duration::from_millis(ms)
    }

    /// Effective_Propagation_Delay(I), as [`Self::effective_override_interval`].
    pub fn effective_propagation_delay(&self, cfg: &PimSettings) -> Duration {
        let ours = cfg.propagation_delay_ms;
        let ms = if self.lan_delay_enabled() {
            self.neighbors
                .values()
                .filter_map(|n| n.lan_prune_delay)
                .map(|d| u64::from(d.propagation_delay_ms))
                .fold(ours, u64::max)
        } else {
            ours
        };
        Duration::from_millis(ms)
    }

    /// J/P_Override_Interval(I) (§4.11): how long a Prune waits for a Join to override it.
    pub fn jp_override_interval(&self, cfg: &PimSettings) -> Duration {
        self.effective_override_interval(cfg) + self.effective_propagation_delay(cfg)
    }

    /// The neighbour whose link-local address or Address List holds `addr`.
    pub fn neighbor_for(&self, addr: Ipv6Addr) -> Option<Ipv6Addr> {
        if self.neighbors.contains_key(&addr) {
            return Some(addr);
        }
        self.neighbors
            .iter()
            .find(|(_, n)| n.addresses.contains(&addr))
            .map(|(&a, _)| a)
    }

    /// Removes neighbours whose holdtime ran out; returns them.
    pub fn expire_neighbors(&mut self, now: Millis) -> Vec<Ipv6Addr> {
        let gone: Vec<Ipv6Addr> = self
            .neighbors
            .iter()
            .filter(|(_, n)| n.expires.is_some_and(|t| t <= now))
            .map(|(&a, _)| a)
            .collect();
        for a in &gone {
            self.neighbors.remove(a);
        }
        gone
    }

    /// Join(S,G) received for us with `holdtime` seconds.
    pub fn downstream_join(&mut self, now: Millis, sg: Sg, holdtime: u16) -> bool {
        let until = now + std::time::Duration::from_secs(u64::from(holdtime));
        let expires = match self.downstream.get(&sg) {
            Some(Downstream::Join { expires }) | Some(Downstream::PrunePending { expires, .. }) => {
                (*expires).max(until)
            }
            None => until,
        };
        self.set_downstream(sg, Some(Downstream::Join { expires }))
            .is_none()
    }

    /// Prune(S,G) received for us. With one neighbour only the state goes at once (nobody
    /// can override); on a shared link it waits for the override window. True when the state
    /// went.
    pub fn downstream_prune(&mut self, now: Millis, sg: Sg, cfg: &PimSettings) -> bool {
        let Some(&state) = self.downstream.get(&sg) else {
            return false;
        };
        if self.neighbors.len() <= 1 {
            self.set_downstream(sg, None);
            return true;
        }
        if let Downstream::Join { expires } = state {
            let prune_at = now + self.jp_override_interval(cfg);
            self.set_downstream(sg, Some(Downstream::PrunePending { expires, prune_at }));
        }
        false
    }

    /// Removes downstream state whose holdtime or prune-pending time ran out.
    pub fn expire_downstream(&mut self, now: Millis) -> Vec<Sg> {
        let gone: Vec<Sg> = self
            .deadlines
            .iter()
            .take_while(|&&(t, _)| t <= now)
            .map(|&(_, sg)| sg)
            .collect();
        for sg in &gone {
            self.set_downstream(*sg, None);
        }
        gone
    }
}

/// Our Hello: holdtime (0 = we are leaving), DR priority, generation id, LAN prune delay and
/// our global addresses on the link.
pub fn hello(cfg: &PimSettings, gen_id: u32, holdtime: u16, globals: &[Ipv6Addr]) -> PimRepr {
    let mut options = vec![
        HelloOption::Holdtime(holdtime),
        HelloOption::LanPruneDelay(LanPruneDelay {
            tracking_support: false,
            propagation_delay_ms: u16::try_from(cfg.propagation_delay_ms)
                .unwrap_or(0x7fff)
                .min(0x7fff),
            override_interval_ms: u16::try_from(cfg.override_interval_ms).unwrap_or(u16::MAX),
        }),
        HelloOption::DrPriority(cfg.dr_priority),
        HelloOption::GenerationId(gen_id),
    ];
    if !globals.is_empty() {
        options.push(HelloOption::AddressList(globals.to_vec()));
    }
    PimRepr::Hello { options }
}

/// Join/Prune messages to `neighbor`, grouped by group and split to stay small.
pub fn join_prune(neighbor: Ipv6Addr, holdtime: u16, joins: &[Sg], prunes: &[Sg]) -> Vec<PimRepr> {
    let mut entries: Vec<(Sg, bool)> = joins.iter().map(|&sg| (sg, true)).collect();
    entries.extend(prunes.iter().map(|&sg| (sg, false)));
    entries.sort_by_key(|(sg, _)| (sg.group, sg.source));
    entries
        .chunks(MAX_SOURCES_PER_MESSAGE)
        .map(|chunk| {
            let mut groups: Vec<JoinPruneGroup> = Vec::new();
            for &(sg, join) in chunk {
                if groups.last().is_none_or(|g| g.group.addr != sg.group) {
                    groups.push(JoinPruneGroup {
                        group: EncodedGroup::new(sg.group),
                        joins: Vec::new(),
                        prunes: Vec::new(),
                    });
                }
                if let Some(g) = groups.last_mut() {
                    let list = if join { &mut g.joins } else { &mut g.prunes };
                    list.push(EncodedSource::new(sg.source));
                }
            }
            PimRepr::JoinPrune(JoinPrune {
                upstream_neighbor: neighbor,
                holdtime,
                groups,
            })
        })
        .collect()
}

/// The (S,G) joins and prunes of a received Join/Prune. Entries that are not plain (S,G)
/// (wildcard, RPT bit, a prefix instead of one source or group) have no meaning in SSM and
/// are counted as skipped.
pub fn entries(jp: &JoinPrune) -> (Vec<Sg>, Vec<Sg>, usize) {
    let mut joins = Vec::new();
    let mut prunes = Vec::new();
    let mut skipped = 0;
    for g in &jp.groups {
        for (list, out) in [(&g.joins, &mut joins), (&g.prunes, &mut prunes)] {
            for s in list {
                let plain = !s.wildcard && !s.rpt && s.mask_len == 128 && g.group.mask_len == 128;
                if plain && g.group.addr.is_multicast() {
                    out.push(Sg {
                        source: s.addr,
                        group: g.group.addr,
                    });
                } else {
                    skipped += 1;
                }
            }
        }
    }
    (joins, prunes, skipped)
}

/// Metric preference and metric of an AssertCancel (RFC 7761 §4.6.1): the winner tells
/// the losers it stopped forwarding, so they take over at once.
pub const ASSERT_CANCEL: AssertMetric = AssertMetric {
    preference: 0x7fff_ffff,
    metric: u32::MAX,
    address: Ipv6Addr::UNSPECIFIED,
};

/// What an Assert compares (§4.6.1): lower preference, then lower metric, then the higher
/// address wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertMetric {
    pub preference: u32,
    pub metric: u32,
    pub address: Ipv6Addr,
}

impl AssertMetric {
    pub fn beats(&self, other: &AssertMetric) -> bool {
        (other.preference, other.metric, self.address)
            > (self.preference, self.metric, other.address)
    }

    pub fn is_cancel(&self) -> bool {
        self.preference == ASSERT_CANCEL.preference && self.metric == ASSERT_CANCEL.metric
    }
}

/// An (S,G) Assert with `m`'s metrics.
pub fn assert(sg: Sg, m: AssertMetric) -> PimRepr {
    PimRepr::Assert(mipcast_wire::pim::Assert {
        group: EncodedGroup::new(sg.group),
        source: sg.source,
        rpt: false,
        metric_preference: m.preference,
        metric: m.metric,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)] // a test fails by panicking
    use super::*;
    use crate::core::settings::PimSettings;

    fn sg(n: u16) -> Sg {
        Sg {
            source: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            group: Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, n),
        }
    }

    fn neighbor() -> Neighbor {
        Neighbor {
            gen_id: None,
            dr_priority: None,
            addresses: Vec::new(),
            lan_prune_delay: None,
            expires: None,
        }
    }

    /// The deadline index and the join count follow every change of the downstream state.
    #[test]
    fn downstream_indexes_follow_joins_prunes_and_expiry() {
        let cfg = PimSettings::default();
        let mut p = PimIface::new(1, Millis(0));
        p.next_hello = Millis(1_000_000);
        // Two neighbours: a Prune waits for the override window (prune-pending).
        p.neighbors
            .insert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2), neighbor());
        p.neighbors
            .insert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3), neighbor());
        assert!(p.downstream_join(Millis(0), sg(1), 100));
        assert!(p.downstream_join(Millis(0), sg(2), 50));
        assert_eq!(
            (p.downstream_joined(), p.next_deadline()),
            (2, Millis(50_000))
        );
        // A refresh extends sg(2): the earliest deadline is now sg(1)'s.
        assert!(!p.downstream_join(Millis(10_000), sg(2), 200));
        assert_eq!(p.next_deadline(), Millis(100_000));
        assert!(!p.downstream_prune(Millis(20_000), sg(1), &cfg));
        let prune_at = Millis(20_000) + p.jp_override_interval(&cfg);
        assert_eq!((p.downstream_joined(), p.next_deadline()), (1, prune_at));
        assert_eq!(p.expire_downstream(prune_at), vec![sg(1)]);
        assert_eq!(
            (p.downstream_joined(), p.next_deadline()),
            (1, Millis(210_000))
        );
        assert_eq!(p.expire_downstream(Millis(210_000)), vec![sg(2)]);
        assert_eq!(p.downstream_joined(), 0);
        assert_eq!(p.next_deadline(), p.next_hello);
        assert!(p.deadlines.is_empty() && p.downstream().is_empty());
    }
}
