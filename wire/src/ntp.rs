//! 64-bit NTP timestamps (RFC 5905 §6), the format of RFC 4285's Replay Protection option:
//! seconds since 1900 modulo 2^32 in the high half, binary fraction in the low half.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The NTP timestamp of `time`. Times before 1970 map to the Unix epoch.
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
    // The fraction is below 2^32, so the nanoseconds are below 10^9 and fit in u32.
    let nanos = u32::try_from(((timestamp & 0xffff_ffff) * 1_000_000_000) >> 32).unwrap_or(0);
    let since_ntp_epoch = Duration::new(seconds, nanos);
    let offset = Duration::from_secs(NTP_UNIX_OFFSET);
    match since_ntp_epoch.checked_sub(offset) {
        Some(after) => UNIX_EPOCH + after,
        None => UNIX_EPOCH
            .checked_sub(offset.saturating_sub(since_ntp_epoch))
            .unwrap_or(UNIX_EPOCH),
    }
}

/// A duration in milliseconds expressed in NTP timestamp units (2^-32 s).
pub fn ms_to_ntp_units(ms: u64) -> u64 {
    // Split so that large durations cannot overflow the shift.
    ((ms / 1000) << 32) | (((ms % 1000) << 32) / 1000)
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
    fn seven_seconds_in_ntp_units() {
        assert_eq!(ms_to_ntp_units(7000), 7 << 32);
        assert_eq!(ms_to_ntp_units(500), 1 << 31);
    }
}
