//! Time sources: monotonic milliseconds for timers, wall-clock time for RFC 4285 timestamps.
//! The daemons' state machines take a `&dyn Clock` so tests can drive time by hand.

use std::ops::Add;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Monotonic time in milliseconds since the clock was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;

    fn add(self, duration: Duration) -> Millis {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(millis))
    }
}

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
}
