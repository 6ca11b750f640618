//! Time as a value: a daemon reads its clocks once per event and passes a [`Now`] in; timers
//! are [`Millis`] deadlines on the monotonic clock. The one clock type of every core.
//!
//! Two clocks are needed. Lifetimes and timers run on a monotonic millisecond clock (wall-clock
//! steps must not expire or extend bindings); RFC 4285 replay protection compares a peer's
//! timestamp with our wall clock in 64-bit NTP format; and state files store wall-clock expiry
//! so that a restarted daemon (whose monotonic clock restarted) can resume lifetimes.
use std::ops::Add;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mipcast_wire::ntp;
use serde::{Deserialize, Serialize};

/// Monotonic time in milliseconds since an arbitrary origin (the daemon's start, or zero in a
/// simulation).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `ms` milliseconds later, saturating.
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;

    fn add(self, duration: Duration) -> Millis {
        self.plus_ms(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

/// One reading of both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Now {
    /// Monotonic time, for timers and lifetimes.
    pub mono: Millis,
    /// Wall clock as a 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, binary
    /// fraction in the low 32 bits (RFC 5905), the format of RFC 4285's Replay Protection option.
    pub wall_ntp: u64,
}

impl Now {
    /// Builds a reading from a monotonic time in milliseconds and the wall clock's offset from
    /// the Unix epoch (what `SystemTime::now().duration_since(UNIX_EPOCH)` gives).
    pub fn from_unix(mono_ms: u64, since_unix_epoch: Duration) -> Self {
        Now {
            mono: Millis(mono_ms),
            wall_ntp: unix_to_ntp(since_unix_epoch),
        }
    }

    /// Builds a reading from a monotonic time and a wall-clock time (times before 1970 count
    /// as the Unix epoch).
    pub fn from_system(mono_ms: u64, wall: SystemTime) -> Self {
        Self::from_unix(mono_ms, wall.duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    /// Monotonic milliseconds, for arithmetic on deadlines.
    pub fn mono_ms(&self) -> u64 {
        self.mono.0
    }

    /// The wall clock in milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> u64 {
        ntp_to_unix_ms(self.wall_ntp)
    }

    /// Both clocks moved on by `ms` milliseconds (a simulation's or a test's clock).
    pub fn advanced(self, ms: u64) -> Now {
        Now {
            mono: self.mono.plus_ms(ms),
            wall_ntp: self.wall_ntp.wrapping_add(ntp::ms_to_ntp_units(ms)),
        }
    }
}

/// Converts a time since the Unix epoch to a 64-bit NTP timestamp (wrapping at NTP era ends).
pub fn unix_to_ntp(since_unix_epoch: Duration) -> u64 {
    ntp::ntp_timestamp(UNIX_EPOCH + since_unix_epoch)
}

/// Converts a 64-bit NTP timestamp to milliseconds since the Unix epoch (1968-2104, see
/// [`ntp::from_ntp_timestamp`]); times before 1970 give 0.
pub fn ntp_to_unix_ms(ntp: u64) -> u64 {
    let since = ntp::from_ntp_timestamp(ntp)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instant_round_trips() {
        // 2024-01-01T00:00:00.5Z: Unix 1704067200 s; NTP seconds = Unix + 2208988800.
        let d = Duration::from_millis(1_704_067_200_500);
        let ntp = unix_to_ntp(d);
        assert_eq!(ntp >> 32, 3_913_056_000);
        assert_eq!(ntp & 0xffff_ffff, 0x8000_0000);
        assert_eq!(ntp_to_unix_ms(ntp), 1_704_067_200_500);
        assert_eq!(Now::from_unix(5, d).unix_ms(), 1_704_067_200_500);
    }

    #[test]
    fn era_one_converts_after_2036() {
        // Unix 2208988800 (year 2040) is past 2^32 NTP seconds, so it lands in NTP era 1.
        let d = Duration::from_secs(2_208_988_800);
        let ntp = unix_to_ntp(d);
        assert!(ntp >> 32 < 2_208_988_800);
        assert_eq!(ntp_to_unix_ms(ntp), 2_208_988_800_000);
    }

    #[test]
    fn system_time_matches_duration() {
        let d = Duration::from_millis(1_704_067_200_500);
        assert_eq!(Now::from_system(1, UNIX_EPOCH + d), Now::from_unix(1, d));
        assert_eq!(Now::from_system(1, UNIX_EPOCH - d).unix_ms(), 0);
    }

    #[test]
    fn advancing_moves_both_clocks_together() {
        let d = Duration::from_millis(1_704_067_200_000);
        let now = Now::from_unix(100, d).advanced(1500);
        assert_eq!(now.mono, Millis(1600));
        // NTP keeps 1/2^32 s, so the conversion may round down by a millisecond.
        assert!((1_704_067_201_499..=1_704_067_201_500).contains(&now.unix_ms()));
        assert_eq!(Millis(5) + Duration::from_secs(1), Millis(1005));
        assert_eq!(Millis(u64::MAX).plus_ms(1), Millis(u64::MAX));
        assert_eq!(Millis(3).saturating_since(Millis(9)), Duration::ZERO);
    }
}
