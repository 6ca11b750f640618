//! Negative MFC entries after a prune.
//!
//! When the last downstream interest in (S,G) goes, packets of the channel keep arriving
//! until the upstream router has processed our Prune. Without an MFC entry the kernel queues
//! them as an *unresolved* entry (up to 10 s) and hands them all out, seconds old, the moment
//! an entry for (S,G) is installed again: a terminal that comes back to the link within that
//! time receives stale copies (issue 11, cause 4). So instead of deleting the entry we replace
//! it with one that forwards nowhere (same incoming interface, no outgoing interface): the
//! kernel drops the late packets instead of queueing them. The negative entry is deleted after
//! [`NEGATIVE_HOLD`], or replaced by a forwarding one when interest returns.
use std::collections::BTreeMap;
use std::time::Duration;

use mipcast_proto::Millis;

use super::Sg;

/// How long a pruned channel's negative entry stays: well past the upstream's Prune
/// processing (J/P override interval 3 s on a LAN) and the kernel's 10 s unresolved-entry
/// lifetime.
pub const NEGATIVE_HOLD: Duration = Duration::from_secs(30);

/// The negative entries in the kernel: channel -> (incoming interface, removal time).
#[derive(Debug, Default)]
pub struct NegativeEntries {
    entries: BTreeMap<Sg, (u32, Millis)>,
}

impl NegativeEntries {
    /// (S,G)'s forwarding entry became a negative one on `iif`.
    pub fn hold(&mut self, sg: Sg, iif: u32, now: Millis) {
        self.entries.insert(sg, (iif, now + NEGATIVE_HOLD));
    }

    /// A forwarding entry took the negative one's place (or the kernel refused it).
    pub fn forget(&mut self, sg: Sg) {
        self.entries.remove(&sg);
    }

    pub fn contains(&self, sg: Sg) -> bool {
        self.entries.contains_key(&sg)
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        self.entries.values().map(|(_, until)| *until).min()
    }

    /// The entries whose hold ended at `now`, forgotten: the caller deletes them.
    pub fn expire(&mut self, now: Millis) -> Vec<Sg> {
        let due: Vec<Sg> = self
            .entries
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(sg, _)| *sg)
            .collect();
        for sg in &due {
            self.entries.remove(sg);
        }
        due
    }

    /// Everything, forgotten (shutdown deletes them all).
    pub fn drain(&mut self) -> Vec<Sg> {
        std::mem::take(&mut self.entries).into_keys().collect()
    }
}
