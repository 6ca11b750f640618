//! The binding cache: home address → binding, with O(log n) timers.
//!
//! Two ordered deadline sets index the bindings: expiry and the one-shot Binding Refresh Request
//! time. Both hold `(deadline_ms, hoa)` so that the earliest is `first()` and a binding's entry
//! is found again from its own fields when it is replaced or removed.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::time::Now;

/// Whether a binding serves traffic for a registration or only lingers after deregistration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingState {
    Active,
    /// Deregistered, kept for a policy-chosen grace period (the MMA's forwarding window);
    /// it gets no Binding Refresh Request and ends with [`crate::RemoveReason::GraceEnded`].
    Lingering,
}

/// One binding cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<P> {
    pub hoa: Ipv6Addr,
    pub coa: Ipv6Addr,
    /// Source address of the last accepted BU: where acknowledgements and refresh requests go.
    pub peer: Ipv6Addr,
    /// Our address the last accepted BU was sent to: the source of our replies.
    pub local: Ipv6Addr,
    pub sequence: u16,
    /// Granted lifetime in seconds (a multiple of 4, as acknowledged); for a lingering
    /// binding, its grace period.
    pub lifetime_s: u32,
    /// Monotonic time of the last accepted BU, from which the lifetime runs.
    pub registered_at_ms: u64,
    pub expires_at_ms: u64,
    /// When to send the Binding Refresh Request; `None` once sent or when none is due.
    pub refresh_at_ms: Option<u64>,
    /// RFC 4285 timestamp of the last accepted BU.
    pub last_timestamp: u64,
    /// SPI of the SA that authenticated the last accepted BU (replies are signed with it).
    pub spi: u32,
    pub state: BindingState,
    /// What the daemon's policy attached (e.g. the MMA's terminal group).
    pub payload: P,
}

/// Bindings by home address plus their timers.
#[derive(Debug, Clone)]
pub struct BindingCache<P> {
    bindings: BTreeMap<Ipv6Addr, Binding<P>>,
    expiries: BTreeSet<(u64, Ipv6Addr)>,
    refreshes: BTreeSet<(u64, Ipv6Addr)>,
}

impl<P> Default for BindingCache<P> {
    fn default() -> Self {
        BindingCache {
            bindings: BTreeMap::new(),
            expiries: BTreeSet::new(),
            refreshes: BTreeSet::new(),
        }
    }
}

impl<P> BindingCache<P> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn get(&self, hoa: &Ipv6Addr) -> Option<&Binding<P>> {
        self.bindings.get(hoa)
    }

    /// All bindings, in home address order.
    pub fn iter(&self) -> impl Iterator<Item = &Binding<P>> {
        self.bindings.values()
    }

    /// Inserts `binding`, returning the one it replaces for the same home address.
    pub fn insert(&mut self, binding: Binding<P>) -> Option<Binding<P>> {
        let hoa = binding.hoa;
        let old = self.remove(&hoa);
        self.expiries.insert((binding.expires_at_ms, hoa));
        if let Some(at) = binding.refresh_at_ms {
            self.refreshes.insert((at, hoa));
        }
        self.bindings.insert(hoa, binding);
        old
    }

    pub fn remove(&mut self, hoa: &Ipv6Addr) -> Option<Binding<P>> {
        let old = self.bindings.remove(hoa)?;
        self.expiries.remove(&(old.expires_at_ms, *hoa));
        if let Some(at) = old.refresh_at_ms {
            self.refreshes.remove(&(at, *hoa));
        }
        Some(old)
    }

    /// The earliest pending expiry or refresh time.
    pub fn next_deadline(&self) -> Option<u64> {
        let expiry = self.expiries.first().map(|&(at, _)| at);
        let refresh = self.refreshes.first().map(|&(at, _)| at);
        match (expiry, refresh) {
            (Some(e), Some(r)) => Some(e.min(r)),
            (e, r) => e.or(r),
        }
    }

    /// Removes and returns every binding whose expiry is at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Binding<P>> {
        let mut gone = Vec::new();
        while let Some(&(at, hoa)) = self.expiries.first() {
            if at > now_ms {
                break;
            }
            match self.remove(&hoa) {
                Some(b) => gone.push(b),
                // Unreachable while the indices agree; never loop on a stale entry.
                None => {
                    self.expiries.pop_first();
                }
            }
        }
        gone
    }

    /// Home addresses whose refresh time is at or before `now_ms`, each returned only once:
    /// the refresh time is cleared as it is taken.
    pub fn take_due_refreshes(&mut self, now_ms: u64) -> Vec<Ipv6Addr> {
        let mut due = Vec::new();
        while let Some(&(at, hoa)) = self.refreshes.first() {
            if at > now_ms {
                break;
            }
            self.refreshes.pop_first();
            if let Some(b) = self.bindings.get_mut(&hoa) {
                b.refresh_at_ms = None;
                due.push(hoa);
            }
        }
        due
    }
}

/// A binding as stored in the daemon's state file.
///
/// Monotonic times mean nothing after a restart, so the record carries wall-clock times (Unix
/// milliseconds) and [`BindingCache::restore`] turns them back into monotonic deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord<P> {
    pub hoa: Ipv6Addr,
    pub coa: Ipv6Addr,
    pub peer: Ipv6Addr,
    pub local: Ipv6Addr,
    pub sequence: u16,
    pub lifetime_s: u32,
    pub registered_unix_ms: u64,
    pub expires_unix_ms: u64,
    /// `None` once the refresh request was sent (or none is due).
    pub refresh_unix_ms: Option<u64>,
    pub last_timestamp: u64,
    pub spi: u32,
    pub state: BindingState,
    pub payload: P,
}

impl<P: Clone> BindingCache<P> {
    /// The bindings as state-file records, wall times computed from `now`.
    pub fn records(&self, now: Now) -> Vec<BindingRecord<P>> {
        self.iter().map(|b| Self::record_of(b, now)).collect()
    }

    /// The state-file record of one binding (for a journal entry per change).
    pub fn record(&self, hoa: &Ipv6Addr, now: Now) -> Option<BindingRecord<P>> {
        self.get(hoa).map(|b| Self::record_of(b, now))
    }

    fn record_of(b: &Binding<P>, now: Now) -> BindingRecord<P> {
        let to_wall = |mono: u64| {
            if mono >= now.mono_ms() {
                now.unix_ms().saturating_add(mono - now.mono_ms())
            } else {
                now.unix_ms().saturating_sub(now.mono_ms() - mono)
            }
        };
        BindingRecord {
            hoa: b.hoa,
            coa: b.coa,
            peer: b.peer,
            local: b.local,
            sequence: b.sequence,
            lifetime_s: b.lifetime_s,
            registered_unix_ms: to_wall(b.registered_at_ms),
            expires_unix_ms: to_wall(b.expires_at_ms),
            refresh_unix_ms: b.refresh_at_ms.map(to_wall),
            last_timestamp: b.last_timestamp,
            spi: b.spi,
            state: b.state,
            payload: b.payload.clone(),
        }
    }
}

impl<P> BindingCache<P> {
    /// Adds the records that have not yet expired at `now`, their deadlines translated to the
    /// current monotonic clock, and returns the restored bindings' home addresses. Records for
    /// a home address already in the cache are skipped (the live binding is newer).
    pub fn restore(&mut self, records: Vec<BindingRecord<P>>, now: Now) -> Vec<Ipv6Addr> {
        let now_wall = now.unix_ms();
        let to_mono = |wall: u64| {
            if wall >= now_wall {
                now.mono_ms().saturating_add(wall - now_wall)
            } else {
                now.mono_ms().saturating_sub(now_wall - wall)
            }
        };
        let mut restored = Vec::new();
        for r in records {
            if r.expires_unix_ms <= now_wall || self.bindings.contains_key(&r.hoa) {
                continue;
            }
            restored.push(r.hoa);
            self.insert(Binding {
                hoa: r.hoa,
                coa: r.coa,
                peer: r.peer,
                local: r.local,
                sequence: r.sequence,
                lifetime_s: r.lifetime_s,
                registered_at_ms: to_mono(r.registered_unix_ms),
                expires_at_ms: to_mono(r.expires_unix_ms),
                // A refresh time already past is due at once rather than lost.
                refresh_at_ms: r.refresh_unix_ms.map(|w| to_mono(w).max(now.mono_ms())),
                last_timestamp: r.last_timestamp,
                spi: r.spi,
                state: r.state,
                payload: r.payload,
            });
        }
        restored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)
    }

    fn binding(i: u16, expires: u64, refresh: Option<u64>) -> Binding<u8> {
        Binding {
            hoa: a(i),
            coa: a(1000 + i),
            peer: a(1000 + i),
            local: a(1),
            sequence: i,
            lifetime_s: 40,
            registered_at_ms: 0,
            expires_at_ms: expires,
            refresh_at_ms: refresh,
            last_timestamp: 5,
            spi: 300,
            state: BindingState::Active,
            payload: i as u8,
        }
    }

    #[test]
    fn replace_moves_deadlines() {
        let mut c = BindingCache::new();
        assert_eq!(c.insert(binding(1, 100, Some(80))), None);
        assert_eq!(c.next_deadline(), Some(80));
        let old = c.insert(binding(1, 500, Some(400))).unwrap();
        assert_eq!(old.expires_at_ms, 100);
        assert_eq!(c.next_deadline(), Some(400));
        assert!(c.expire(499).is_empty());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn expire_in_order_and_only_due() {
        let mut c = BindingCache::new();
        for (i, at) in [(1, 300), (2, 100), (3, 200)] {
            c.insert(binding(i, at, None));
        }
        let gone: Vec<_> = c.expire(200).into_iter().map(|b| b.hoa).collect();
        assert_eq!(gone, vec![a(2), a(3)]);
        assert_eq!(c.next_deadline(), Some(300));
        assert_eq!(c.expire(10_000).len(), 1);
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn refresh_taken_once() {
        let mut c = BindingCache::new();
        c.insert(binding(1, 100, Some(80)));
        assert!(c.take_due_refreshes(79).is_empty());
        assert_eq!(c.take_due_refreshes(80), vec![a(1)]);
        assert!(c.take_due_refreshes(90).is_empty());
        assert_eq!(c.get(&a(1)).unwrap().refresh_at_ms, None);
        assert_eq!(c.next_deadline(), Some(100));
    }

    #[test]
    fn remove_clears_timers() {
        let mut c = BindingCache::new();
        c.insert(binding(1, 100, Some(80)));
        assert!(c.remove(&a(1)).is_some());
        assert_eq!(c.next_deadline(), None);
        assert!(c.remove(&a(1)).is_none());
    }

    #[test]
    fn records_survive_a_restart_with_a_new_monotonic_origin() {
        let before = Now::from_unix(50_000, std::time::Duration::from_millis(1_700_000_000_000));
        let mut c = BindingCache::new();
        let mut b = binding(1, 50_000 + 40_000, Some(50_000 + 32_000));
        b.registered_at_ms = 50_000;
        c.insert(b);
        c.insert(binding(2, 50_000 + 10_000, None));
        let records = c.records(before);
        assert_eq!(records[0].expires_unix_ms, 1_700_000_040_000);
        assert_eq!(records[0].refresh_unix_ms, Some(1_700_000_032_000));

        // Restart 20 s later; the new process's monotonic clock starts at 7.
        let after = Now::from_unix(7, std::time::Duration::from_millis(1_700_000_020_000));
        let mut restored = BindingCache::new();
        assert_eq!(restored.restore(records, after), vec![a(1)]);
        let b = restored.get(&a(1)).unwrap();
        assert_eq!(b.expires_at_ms, 7 + 20_000);
        assert_eq!(b.refresh_at_ms, Some(7 + 12_000));
        assert_eq!(b.registered_at_ms, 0); // 20 s before a clock at 7 saturates at 0
        assert!(restored.get(&a(2)).is_none());
    }
}
