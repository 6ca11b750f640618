//! Protocol jitter (RA intervals, override and triggered-Hello delays) from a seeded
//! generator, so the state machine stays deterministic under test.
use std::time::Duration;

/// xorshift64*: plenty for spreading timers; nothing here needs to be unpredictable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // A zero state would stay zero forever.
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, max]`.
    pub fn up_to(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.next_u64() % ms.saturating_add(1).max(1))
    }

    /// Uniform in `[min, max]` (`min` when the range is empty).
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        min + self.up_to(max.saturating_sub(min))
    }

    pub fn next_u32(&mut self) -> u32 {
        u32::try_from(self.next_u64() >> 32).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_bounds() {
        let mut r = Rng::new(0);
        for _ in 0..1000 {
            let d = r.between(Duration::from_millis(10), Duration::from_millis(20));
            assert!((10..=20).contains(&d.as_millis()));
            assert_eq!(r.up_to(Duration::ZERO), Duration::ZERO);
        }
    }
}
