//! Time sources: monotonic milliseconds for timers, wall-clock time for RFC 4285 timestamps.
//! The daemons' state machines take a `&dyn Clock` so tests can drive time by hand.

use std::ops::Add;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// 64-bit NTP timestamp (RFC 5905 §6, used by the RFC 4285 replay protection option):
/// seconds since 1900 modulo 2^32 in the high half, binary fraction in the low half.
/// Times before 1970 map to the Unix epoch.
pub fn ntp_timestamp(time: SystemTime) -> u64 {
    let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    seconds << 32 | fraction
}

/// Inverse of [`ntp_timestamp`], for the years 1968 to 2104: a seconds value with the top bit
/// clear is read as NTP era 1 (from 2036-02-07), the RFC 4330 §3 convention.
pub fn from_ntp_timestamp(timestamp: u64) -> SystemTime {
    let seconds = timestamp >> 32;
    let seconds = if seconds & 0x8000_0000 == 0 {
        seconds + (1 << 32)
    } else {
        seconds
    };
    let nanos = ((timestamp & 0xffff_ffff) * 1_000_000_000) >> 32;
    let since_ntp_epoch = Duration::new(seconds, nanos as u32);
    let offset = Duration::from_secs(NTP_UNIX_OFFSET);
    match since_ntp_epoch.checked_sub(offset) {
        Some(after) => UNIX_EPOCH + after,
        None => UNIX_EPOCH
            .checked_sub(offset - since_ntp_epoch)
            .unwrap_or(UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_epoch_offsets_match_rfc_5905() {
        // RFC 5905 figure 4: 1970-01-01 is NTP seconds 2,208,988,800 = 0x83AA7E80.
        assert_eq!(ntp_timestamp(UNIX_EPOCH), 0x83AA_7E80_0000_0000);
        // Half a second is fraction 0x8000_0000.
        let half = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp_timestamp(half), 0x83AA_7E81_8000_0000);
        // 2036-02-07T06:28:16Z is the first second of era 1: seconds field wraps to 0.
        let era1 = UNIX_EPOCH + Duration::from_secs(2_085_978_496);
        assert_eq!(ntp_timestamp(era1), 0);
    }

    #[test]
    fn ntp_round_trips_across_the_era_boundary() {
        for unix_secs in [
            0,
            1_700_000_000,
            2_085_978_495,
            2_085_978_496,
            3_000_000_000,
        ] {
            let t = UNIX_EPOCH + Duration::new(unix_secs, 250_000_000);
            assert_eq!(from_ntp_timestamp(ntp_timestamp(t)), t, "{unix_secs}");
        }
    }

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
