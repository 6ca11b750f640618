//! The handover interruption as the terminal itself sees it: the time between the last
//! tunnelled packet on the old path and the first on the new one.
//!
//! The shell counts the tunnelled (IPv6-in-IPv6) packets arriving on each access interface
//! with nftables counters in the node's own table ([`mipcast_kernel::nft::NftMarker::
//! add_link_counter`]) and reads them only around a move: when the attachment leaves a link, a
//! probe starts and the counters are read every [`SAMPLE_INTERVAL`] until another link's
//! counter moves (the first packet on the new path) or [`GIVE_UP_AFTER`] passes (no traffic to
//! measure). Between moves nothing is read.
//!
//! Resolution is the sampling interval. The last packet on the old path is the last reading
//! in which the old link's counter grew; when it did not grow after the move began (the link
//! died before the node noticed), the probe's start stands for it, so such an interruption is
//! a lower bound. Packets on both links at once (make-before-break) give 0.
//!
//! Pure logic (readings and instants in, a duration out), so it is tested without a kernel.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Between counter readings while a probe runs.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(5);
/// A probe that sees no packet on another link for this long ends without a measurement.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// (interface index, tunnelled packets counted so far) for each counted interface.
pub type Readings = Vec<(u32, u64)>;

/// Follows the attachment and runs one probe per move.
#[derive(Debug, Default)]
pub struct Interruption {
    attached: Option<u32>,
    probe: Option<Probe>,
}

#[derive(Debug)]
struct Probe {
    old: u32,
    started: Instant,
    /// When the old link's counter last grew (the probe's start until it does).
    last_old: Instant,
    counts: BTreeMap<u32, u64>,
}

/// What a reading concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still waiting for the new path.
    Waiting,
    /// The first packet on the new path came this long after the last on the old one, on
    /// this interface.
    Measured(Duration, u32),
    /// No packet on another link within [`GIVE_UP_AFTER`]: nothing to measure.
    GaveUp,
}

impl Interruption {
    /// The attachment's interface now (None: detached). Leaving a link starts a probe with
    /// `read`'s counters as the baseline (none when they cannot be read).
    pub fn attachment(
        &mut self,
        ifindex: Option<u32>,
        now: Instant,
        read: impl FnOnce() -> Option<Readings>,
    ) {
        let left = self.attached.filter(|old| Some(*old) != ifindex);
        self.attached = ifindex;
        let Some(old) = left else {
            return;
        };
        if self.probe.is_some() {
            // A further move while measuring (A → detached → B): the first still counts.
            return;
        }
        if let Some(readings) = read() {
            self.probe = Some(Probe {
                old,
                started: now,
                last_old: now,
                counts: readings.into_iter().collect(),
            });
        }
    }

    /// When the counters should be read next; None between moves.
    pub fn next_sample(&self, now: Instant) -> Option<Instant> {
        self.probe.as_ref().map(|_| now + SAMPLE_INTERVAL)
    }

    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// One reading of the counters while a probe runs.
    pub fn sample(&mut self, readings: &[(u32, u64)], now: Instant) -> Outcome {
        let Some(p) = self.probe.as_mut() else {
            return Outcome::Waiting;
        };
        let mut new_path = None;
        for &(ifindex, count) in readings {
            let before = p.counts.insert(ifindex, count).unwrap_or(count);
            if count > before {
                if ifindex == p.old {
                    p.last_old = now;
                } else {
                    new_path = new_path.or(Some(ifindex));
                }
            }
        }
        if let Some(on) = new_path {
            let gap = now.saturating_duration_since(p.last_old);
            self.probe = None;
            return Outcome::Measured(gap, on);
        }
        if now.saturating_duration_since(p.started) >= GIVE_UP_AFTER {
            self.probe = None;
            return Outcome::GaveUp;
        }
        Outcome::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn the_gap_runs_from_the_last_old_packet_to_the_first_new_one() {
        let t0 = Instant::now();
        let mut i = Interruption::default();
        i.attachment(Some(2), t0, || panic!("no move, no reading"));
        assert!(!i.probing());
        i.attachment(Some(3), ms(t0, 100), || Some(vec![(2, 50), (3, 0)]));
        assert!(i.probing());
        // The old path still delivers for 20 ms, then nothing, then the new path from 180 ms.
        assert_eq!(i.sample(&[(2, 52), (3, 0)], ms(t0, 105)), Outcome::Waiting);
        assert_eq!(i.sample(&[(2, 53), (3, 0)], ms(t0, 120)), Outcome::Waiting);
        assert_eq!(i.sample(&[(2, 53), (3, 0)], ms(t0, 150)), Outcome::Waiting);
        assert_eq!(
            i.sample(&[(2, 53), (3, 4)], ms(t0, 180)),
            Outcome::Measured(Duration::from_millis(60), 3)
        );
        assert!(!i.probing());
        assert_eq!(i.next_sample(ms(t0, 200)), None);
    }

    #[test]
    fn overlap_is_no_interruption_and_silence_gives_up() {
        let t0 = Instant::now();
        let mut i = Interruption::default();
        i.attachment(Some(2), t0, || None);
        i.attachment(Some(3), t0, || Some(vec![(2, 10), (3, 0)]));
        assert_eq!(
            i.sample(&[(2, 11), (3, 1)], ms(t0, 5)),
            Outcome::Measured(Duration::ZERO, 3)
        );

        // Detached, then attached elsewhere: one probe, from the first move; no traffic at all.
        i.attachment(None, ms(t0, 10), || Some(vec![(2, 11), (3, 1)]));
        i.attachment(Some(2), ms(t0, 20), || panic!("the first probe runs"));
        assert_eq!(
            i.sample(&[(2, 11), (3, 1)], ms(t0, 9_000)),
            Outcome::Waiting
        );
        assert_eq!(
            i.sample(&[(2, 11), (3, 1)], ms(t0, 10_010)),
            Outcome::GaveUp
        );
        assert!(!i.probing());
    }

    #[test]
    fn unreadable_counters_start_no_probe() {
        let t0 = Instant::now();
        let mut i = Interruption::default();
        i.attachment(Some(2), t0, || None);
        i.attachment(Some(3), t0, || None);
        assert!(!i.probing());
        assert_eq!(i.sample(&[(3, 5)], t0), Outcome::Waiting);
    }
}
