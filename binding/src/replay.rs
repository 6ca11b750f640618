//! RFC 4285 §6 timestamp-based replay protection.
//!
//! A Binding Update's timestamp must be within the window of our wall clock and strictly newer
//! than the last timestamp accepted for the same home address. The last timestamp lives in the
//! binding; [`RecentTimestamps`] keeps it for a while after the binding is gone, because
//! otherwise a registration BU captured just before a deregistration could be replayed inside
//! the window and silently re-install the binding.
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv6Addr;

/// Why a timestamp was refused (both map to status 144, MIPV6-ID-MISMATCH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("timestamp outside the replay window of our clock")]
    OutsideWindow,
    #[error("timestamp not newer than the last accepted one")]
    NotNewer,
}

/// Checks `timestamp` against our clock `now_ntp` (both NTP format) with a window of
/// `window_ntp` NTP units either side, and against the last accepted timestamp, if any.
///
/// Differences are taken modulo 2^64 and read as signed, so the check stays correct across an
/// NTP era rollover.
pub fn check(
    timestamp: u64,
    now_ntp: u64,
    window_ntp: u64,
    last_accepted: Option<u64>,
) -> Result<(), ReplayError> {
    if signed_diff(timestamp, now_ntp).unsigned_abs() > window_ntp {
        return Err(ReplayError::OutsideWindow);
    }
    match last_accepted {
        Some(last) if signed_diff(timestamp, last) <= 0 => Err(ReplayError::NotNewer),
        _ => Ok(()),
    }
}

fn signed_diff(a: u64, b: u64) -> i64 {
    // Reinterpreting the wrapped difference as two's complement is the point here.
    a.wrapping_sub(b) as i64
}

/// Last accepted timestamps of home addresses whose binding was removed, kept until no replay
/// of them could pass the window check any more.
#[derive(Debug, Default)]
pub struct RecentTimestamps {
    by_hoa: HashMap<Ipv6Addr, (u64, u64)>,
    /// (forget_at_ms, hoa), for O(log n) pruning.
    deadlines: BTreeSet<(u64, Ipv6Addr)>,
}

impl RecentTimestamps {
    /// Remembers `timestamp` for `hoa` until monotonic time `forget_at_ms`.
    pub fn remember(&mut self, hoa: Ipv6Addr, timestamp: u64, forget_at_ms: u64) {
        self.forget(&hoa);
        self.by_hoa.insert(hoa, (timestamp, forget_at_ms));
        self.deadlines.insert((forget_at_ms, hoa));
    }

    /// The remembered timestamp for `hoa`.
    pub fn get(&self, hoa: &Ipv6Addr) -> Option<u64> {
        self.by_hoa.get(hoa).map(|&(ts, _)| ts)
    }

    /// Drops the entry for `hoa` (a binding now holds its timestamp again).
    pub fn forget(&mut self, hoa: &Ipv6Addr) {
        if let Some((_, at)) = self.by_hoa.remove(hoa) {
            self.deadlines.remove(&(at, *hoa));
        }
    }

    /// Drops every entry whose deadline is at or before `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        while let Some(&(at, hoa)) = self.deadlines.first() {
            if at > now_ms {
                break;
            }
            self.deadlines.pop_first();
            self.by_hoa.remove(&hoa);
        }
    }

    pub fn len(&self) -> usize {
        self.by_hoa.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hoa.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1 << 32;
    const NOW: u64 = 3_900_000_000 * S;
    const W: u64 = 7 * S;

    #[test]
    fn window_is_inclusive_both_sides() {
        assert_eq!(check(NOW + W, NOW, W, None), Ok(()));
        assert_eq!(check(NOW - W, NOW, W, None), Ok(()));
        assert_eq!(
            check(NOW + W + 1, NOW, W, None),
            Err(ReplayError::OutsideWindow)
        );
        assert_eq!(
            check(NOW - W - 1, NOW, W, None),
            Err(ReplayError::OutsideWindow)
        );
    }

    #[test]
    fn must_be_strictly_newer() {
        assert_eq!(check(NOW, NOW, W, Some(NOW)), Err(ReplayError::NotNewer));
        assert_eq!(
            check(NOW - 1, NOW, W, Some(NOW)),
            Err(ReplayError::NotNewer)
        );
        assert_eq!(check(NOW + 1, NOW, W, Some(NOW)), Ok(()));
    }

    #[test]
    fn survives_era_rollover() {
        let now = u64::MAX - S; // just before the end of NTP era 0
        let ts = now.wrapping_add(2 * S); // 2 s later, already in era 1
        assert_eq!(check(ts, now, W, Some(now)), Ok(()));
    }

    #[test]
    fn recent_timestamps_prune_in_deadline_order() {
        let a: Ipv6Addr = "2001:db8::a".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::b".parse().unwrap();
        let mut r = RecentTimestamps::default();
        r.remember(a, 10, 100);
        r.remember(b, 20, 50);
        r.remember(a, 11, 200); // replaces a's entry and deadline
        r.prune(150);
        assert_eq!(r.get(&a), Some(11));
        assert_eq!(r.get(&b), None);
        r.prune(200);
        assert!(r.is_empty());
    }
}
