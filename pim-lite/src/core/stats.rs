//! Event counters the state machine keeps; the shell exports them as Prometheus counters.
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// (S,G) entries in Join/Prune messages. `sent` is true for ours.
    JoinPrune {
        sent: bool,
        join: bool,
    },
    /// MLD multicast address records by type (MLDv1 reports and dones included).
    MldRecord(&'static str),
    /// MLD input we deliberately did not act on, by reason.
    MldIgnored(&'static str),
    /// PIM input we deliberately did not act on, by reason.
    PimIgnored(&'static str),
    /// Packets that did not parse or were invalid, by protocol and reason.
    Malformed {
        protocol: &'static str,
        reason: &'static str,
    },
    /// MRT6 upcalls by kind and what we did about them.
    Upcall {
        kind: &'static str,
        outcome: &'static str,
    },
    /// Router advertisements sent, `solicited` or `unsolicited`.
    RaSent(&'static str),
    RsReceived,
    MldQueriesSent(&'static str),
    HellosSent,
    /// Hello options (or Address List entries) left out of a Hello we otherwise used.
    HelloSkipped(&'static str),
    /// Our DR status changed on some link.
    DrChanges,
    /// A neighbour's Hello came with a new generation id.
    NeighborRestarts,
    /// Our periodic Join delayed by another router's Join (RFC 7761 §4.5.7).
    JoinsSuppressed,
    /// Another router's Prune we overrode with a Join.
    PruneOverrides,
    /// Asserts sent, `assert` or `cancel`.
    AssertsSent(&'static str),
    /// Asserts received, by what came of them.
    AssertsReceived(&'static str),
    /// MFC entries the kernel refused (each is tried again).
    MfcRefused,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub counters: BTreeMap<Counter, u64>,
}

impl Stats {
    pub fn bump(&mut self, c: Counter) {
        self.add(c, 1);
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        let v = self.counters.entry(c).or_insert(0);
        *v = v.saturating_add(n);
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.counters.get(&c).copied().unwrap_or(0)
    }
}
