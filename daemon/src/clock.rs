//! Time sources: monotonic milliseconds for timers, wall-clock time for RFC 4285 timestamps.
//! The daemons' state machines take a `&dyn Clock` so tests can drive time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The cores' one monotonic time type, re-exported for the shells.
pub use mipcast_proto::{Millis, Now};

pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
    fn wall(&self) -> SystemTime;
}

#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Both clocks read once, as the binding registrar takes them: monotonic milliseconds
    /// since this clock was created and the wall clock.
    pub fn reading(&self) -> Now {
        Now::from_system(Clock::now(self).0, SystemTime::now())
    }

    /// The tokio instant of monotonic time `at` (a core's next deadline), for `sleep_until`.
    pub fn instant_at(&self, at: Millis) -> tokio::time::Instant {
        let at = self
            .start
            .checked_add(Duration::from_millis(at.0))
            // Beyond what `Instant` can hold: far enough in the future to mean "never".
            .or_else(|| {
                self.start
                    .checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
            })
            .unwrap_or(self.start);
        tokio::time::Instant::from_std(at)
    }
}

/// Sleeps until `at`; never wakes when there is nothing to wait for. For `select!` branches
/// whose deadline comes and goes (the next timer of a core, a debounced write).
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    crate::driver::or_never(at.map(tokio::time::sleep_until)).await
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told; monotonic and wall time advance together.
#[derive(Debug)]
pub struct FakeClock {
    now: AtomicU64,
    wall: Mutex<SystemTime>,
}

impl FakeClock {
    pub fn new(wall: SystemTime) -> Self {
        Self {
            now: AtomicU64::new(0),
            wall: Mutex::new(wall),
        }
    }

    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(millis))
            })
            .ok();
        let mut wall = self
            .wall
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *wall = wall.checked_add(by).unwrap_or(*wall);
    }

    /// Moves only the wall clock (e.g. a peer with a skewed clock, or an NTP step).
    pub fn set_wall(&self, wall: SystemTime) {
        *self
            .wall
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = wall;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Millis {
        Millis(self.now.load(Ordering::SeqCst))
    }

    fn wall(&self) -> SystemTime {
        *self
            .wall
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub use mipcast_wire::ntp::{from_ntp_timestamp, ntp_timestamp};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = FakeClock::new(start);
        assert_eq!(clock.now(), Millis(0));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), Millis(1500));
        assert_eq!(clock.wall(), start + Duration::from_millis(1500));
        assert_eq!(clock.now() + Duration::from_secs(2), Millis(3500));
        assert_eq!(
            Millis(3500).saturating_since(clock.now()),
            Duration::from_secs(2)
        );
        assert_eq!(Millis(0).saturating_since(clock.now()), Duration::ZERO);
    }

    #[test]
    fn system_clock_maps_deadlines_to_instants_and_reads_both_clocks() {
        let clock = SystemClock::new();
        let before = SystemTime::now();
        let now = clock.reading();
        let after = SystemTime::now();
        let unix_ms = |t: SystemTime| {
            u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
        };
        // NTP keeps 1/2^32 s, so a round trip may lose the last millisecond.
        assert!(now.unix_ms() + 1 >= unix_ms(before) && now.unix_ms() <= unix_ms(after));
        assert!(now.mono_ms() < 1000, "{now:?}");
        let t0 = clock.instant_at(Millis(0));
        assert_eq!(
            clock.instant_at(Millis(2500)) - t0,
            Duration::from_millis(2500)
        );
        // The origin is the clock's creation, not the call.
        assert!(t0 <= tokio::time::Instant::now());
        // An absurd deadline is clamped, not a panic.
        assert!(clock.instant_at(Millis(u64::MAX)) > t0);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_until_none_never_wakes() {
        let never = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(never.is_err());
        let at = tokio::time::Instant::now() + Duration::from_secs(5);
        sleep_until(Some(at)).await;
        assert!(tokio::time::Instant::now() >= at);
    }
}
