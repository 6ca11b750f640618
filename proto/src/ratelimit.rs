//! The one token bucket of the daemons, for replies to refused messages (RFC 6275 §9.5.1 and
//! §11.3.4 ask for a rate limit on Binding Errors and negative acknowledgements, so bad BUs
//! cannot be reflected). Time comes in as a value.
use crate::Millis;

/// Allows `burst` replies at once and `per_second` on average; time comes in as a value.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: u64,
    capacity_milli: u64,
    /// Thousandths of a token, so that refills at any rate are exact per millisecond.
    tokens_milli: u64,
    last_ms: Option<u64>,
}

impl TokenBucket {
    /// `per_second` and `burst` of 0 are taken as 1 (config validation forbids them).
    pub fn new(per_second: u32, burst: u32) -> TokenBucket {
        let capacity_milli = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            per_second: u64::from(per_second.max(1)),
            capacity_milli,
            tokens_milli: capacity_milli,
            last_ms: None,
        }
    }

    /// Takes one token at monotonic time `now` if there is one.
    pub fn allow(&mut self, now: Millis) -> bool {
        let now_ms = now.0;
        if let Some(last) = self.last_ms {
            // A token per 1000/per_second ms = per_second thousandths per ms.
            let refill = now_ms.saturating_sub(last).saturating_mul(self.per_second);
            self.tokens_milli = self
                .tokens_milli
                .saturating_add(refill)
                .min(self.capacity_milli);
        }
        self.last_ms = Some(self.last_ms.map_or(now_ms, |l| l.max(now_ms)));
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use crate::Millis;

    fn at(ms: u64) -> Millis {
        Millis(ms)
    }

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10, 3);
        let allowed = (0..10).filter(|_| b.allow(at(1000))).count();
        assert_eq!(allowed, 3, "the burst");
        assert!(!b.allow(at(1099)), "99 ms is not a whole token at 10/s");
        assert!(b.allow(at(1100)));
        assert!(!b.allow(at(1100)));
        // A long pause refills only up to the burst.
        let allowed = (0..10).filter(|_| b.allow(at(100_000))).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1, 1);
        assert!(b.allow(at(5000)));
        assert!(!b.allow(at(1000)));
        assert!(!b.allow(at(5999)));
        assert!(b.allow(at(6000)));
    }
}
