//! The one rate-limiting implementation of the daemons, for replies to refused messages
//! (RFC 6275 §9.5.1 and §11.3.4 ask for a rate limit on Binding Errors and negative
//! acknowledgements, so bad BUs cannot be reflected). Time comes in as a value.
//!
//! [`TokenBucket`] is the primitive; [`SourceLimiter`] adds a bucket per source prefix under a
//! global one, so one flooding source cannot spend everyone's budget; [`ReplyBudgets`] keeps
//! two of those apart: replies to authenticated messages (what a real terminal needs to
//! resynchronise: 135 with our sequence, 144 with our time) and replies to messages nobody
//! authenticated (128, 146, Binding Errors), which are all an attacker without a key can cause.
use std::collections::HashMap;
use std::net::Ipv6Addr;

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

    /// Whether [`Self::allow`] at `now` would take a token, without taking it.
    fn has_token_at(&self, now: Millis) -> bool {
        let elapsed = self.last_ms.map_or(0, |l| now.0.saturating_sub(l));
        self.tokens_milli
            .saturating_add(elapsed.saturating_mul(self.per_second))
            .min(self.capacity_milli)
            >= 1000
    }

    /// Whether the bucket would be full at `now` (an idle source: forgetting it changes
    /// nothing, since a new bucket starts full).
    fn is_full_at(&self, now: Millis) -> bool {
        let elapsed = self.last_ms.map_or(u64::MAX, |l| now.0.saturating_sub(l));
        self.tokens_milli
            .saturating_add(elapsed.saturating_mul(self.per_second))
            >= self.capacity_milli
    }
}

/// A rate: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn bucket(self) -> TokenBucket {
        TokenBucket::new(self.per_second, self.burst)
    }
}

/// Settings of one [`SourceLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLimits {
    /// For every source together.
    pub global: Rate,
    /// For each source prefix; None: the global bucket only.
    pub per_source: Option<Rate>,
    /// Sources sharing this many leading bits share a bucket (64: one per link, since an
    /// attacker picks its interface identifier freely).
    pub source_prefix_len: u8,
    /// At most this many per-source buckets are kept; when all are busy, a new source is
    /// refused (the global bucket would not have let a flood through anyway).
    pub max_sources: usize,
}

/// How often idle per-source buckets are swept out when the table is full: a sweep is
/// O(sources), so an attacker spraying source prefixes must not cause one per packet.
const SWEEP_EVERY_MS: u64 = 1000;

/// A global token bucket with one bucket per source prefix in front of it.
#[derive(Debug, Clone)]
pub struct SourceLimiter {
    limits: SourceLimits,
    global: TokenBucket,
    sources: HashMap<u128, TokenBucket>,
    last_sweep: Option<u64>,
}

impl SourceLimiter {
    pub fn new(limits: SourceLimits) -> SourceLimiter {
        SourceLimiter {
            limits,
            global: limits.global.bucket(),
            sources: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Takes a token for a reply to `src` at `now` if both its source's bucket and the global
    /// one have one. A source over its own rate does not spend the global budget.
    pub fn allow(&mut self, src: Ipv6Addr, now: Millis) -> bool {
        let Some(rate) = self.limits.per_source else {
            return self.global.allow(now);
        };
        let key = prefix_key(src, self.limits.source_prefix_len);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.limits.max_sources {
            self.sweep(now);
            if self.sources.len() >= self.limits.max_sources {
                return false;
            }
        }
        let own = self.sources.entry(key).or_insert_with(|| rate.bucket());
        own.allow(now) && self.global.allow(now)
    }

    /// Whether `src`'s own bucket has a token at `now` (taking none); true for a source with
    /// no bucket yet, and without per-source buckets.
    pub fn would_allow(&self, src: Ipv6Addr, now: Millis) -> bool {
        if self.limits.per_source.is_none() {
            return true;
        }
        self.sources
            .get(&prefix_key(src, self.limits.source_prefix_len))
            .is_none_or(|b| b.has_token_at(now))
    }

    /// Source prefixes with a bucket of their own (for tests and status).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn sweep(&mut self, now: Millis) {
        if self
            .last_sweep
            .is_some_and(|last| now.0.saturating_sub(last) < SWEEP_EVERY_MS)
        {
            return;
        }
        self.last_sweep = Some(now.0);
        self.sources.retain(|_, bucket| !bucket.is_full_at(now));
    }
}

fn prefix_key(addr: Ipv6Addr, len: u8) -> u128 {
    let bits = u128::from(addr);
    match len {
        0 => 0,
        1..=127 => bits & (u128::MAX << (128 - u32::from(len))),
        _ => bits,
    }
}

/// Which budget a reply to a refused message draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// The refused message carried a valid MAC: the reply is signed and a real terminal needs
    /// it (135 with the expected sequence number, 144 with our time).
    Authenticated,
    /// Nobody proved anything (BAck 128/146, Binding Error): all a keyless attacker can cause.
    Unauthenticated,
}

/// The two reply budgets of a daemon, and the receive budget of failed messages per source;
/// see the module documentation.
#[derive(Debug, Clone)]
pub struct ReplyBudgets {
    authenticated: SourceLimiter,
    unauthenticated: SourceLimiter,
    /// Messages that failed (a wrong MAC, malformed) per source prefix: a source over it is
    /// not served at all until its bucket refills, so a flood from one prefix costs a few
    /// MAC computations per second, not one per packet, and the socket drains for everyone.
    failures: Option<SourceLimiter>,
}

impl ReplyBudgets {
    pub fn new(authenticated: SourceLimits, unauthenticated: SourceLimits) -> ReplyBudgets {
        ReplyBudgets {
            authenticated: SourceLimiter::new(authenticated),
            unauthenticated: SourceLimiter::new(unauthenticated),
            failures: None,
        }
    }

    /// With a budget of failed messages per source (`limits.per_source`; its global rate is
    /// not used).
    pub fn with_failure_budget(mut self, limits: SourceLimits) -> ReplyBudgets {
        self.failures = Some(SourceLimiter::new(SourceLimits {
            global: Rate {
                per_second: u32::MAX,
                burst: u32::MAX,
            },
            ..limits
        }));
        self
    }

    /// Whether a message from `src` should be looked at at all: false while its source
    /// prefix is over its budget of failed messages (drop it before any MAC computation).
    pub fn admits(&self, src: Ipv6Addr, now: Millis) -> bool {
        self.failures
            .as_ref()
            .is_none_or(|f| f.would_allow(src, now))
    }

    /// Counts a message from `src` that failed (authentication, parsing).
    pub fn note_failure(&mut self, src: Ipv6Addr, now: Millis) {
        if let Some(f) = self.failures.as_mut() {
            let _ = f.allow(src, now);
        }
    }

    /// Takes a token for a `kind` reply to `src` at `now`, if its budget has one.
    pub fn allow(&mut self, kind: ReplyKind, src: Ipv6Addr, now: Millis) -> bool {
        match kind {
            ReplyKind::Authenticated => self.authenticated.allow(src, now),
            ReplyKind::Unauthenticated => self.unauthenticated.allow(src, now),
        }
    }
}

/// One bucket's worth for each budget, no per-source buckets (tests and the simulator).
impl From<TokenBucket> for ReplyBudgets {
    fn from(bucket: TokenBucket) -> ReplyBudgets {
        let rate = Rate {
            per_second: u32::try_from(bucket.per_second).unwrap_or(u32::MAX),
            burst: u32::try_from(bucket.capacity_milli / 1000).unwrap_or(u32::MAX),
        };
        let limits = SourceLimits {
            global: rate,
            per_source: None,
            source_prefix_len: 64,
            max_sources: 0,
        };
        ReplyBudgets::new(limits, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn limits(per_source: Option<Rate>, max_sources: usize) -> SourceLimits {
        SourceLimits {
            global: Rate {
                per_second: 10,
                burst: 10,
            },
            per_source,
            source_prefix_len: 64,
            max_sources,
        }
    }

    const TWO: Rate = Rate {
        per_second: 1,
        burst: 2,
    };

    #[test]
    fn one_flooding_prefix_leaves_the_global_budget_to_others() {
        let mut l = SourceLimiter::new(limits(Some(TWO), 100));
        let flood = (0..1000u16)
            .filter(|i| l.allow(a(&format!("2001:db8:1::{i:x}")), at(1000)))
            .count();
        assert_eq!(flood, 2, "the whole /64 shares one bucket");
        assert!(l.allow(a("2001:db8:2::1"), at(1000)));
        assert!(l.allow(a("2001:db8:2::1"), at(1000)));
        assert!(!l.allow(a("2001:db8:2::1"), at(1000)));
    }

    #[test]
    fn the_global_bucket_caps_many_sources() {
        let mut l = SourceLimiter::new(limits(Some(TWO), 10_000));
        let allowed = (0..1000u16)
            .filter(|i| l.allow(a(&format!("2001:db8:{i:x}::1")), at(1000)))
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn a_full_table_refuses_new_sources_until_idle_ones_are_swept() {
        let mut l = SourceLimiter::new(limits(Some(TWO), 2));
        assert!(l.allow(a("2001:db8:1::1"), at(0)));
        assert!(l.allow(a("2001:db8:2::1"), at(0)));
        assert!(!l.allow(a("2001:db8:3::1"), at(0)), "table full");
        assert!(
            !l.allow(a("2001:db8:3::1"), at(500)),
            "no sweep within a second"
        );
        // By 2 s both buckets have refilled: idle, swept, room for the newcomer.
        assert!(l.allow(a("2001:db8:3::1"), at(2000)));
        assert!(l.tracked_sources() <= 2);
    }

    #[test]
    fn the_budgets_are_separate() {
        let mut b = ReplyBudgets::from(TokenBucket::new(1, 1));
        let src = a("2001:db8::1");
        assert!(b.allow(ReplyKind::Unauthenticated, src, at(0)));
        assert!(!b.allow(ReplyKind::Unauthenticated, src, at(0)));
        assert!(
            b.allow(ReplyKind::Authenticated, src, at(0)),
            "its own budget"
        );
        assert!(!b.allow(ReplyKind::Authenticated, src, at(0)));
    }

    #[test]
    fn a_source_over_its_failure_budget_is_not_admitted_until_it_refills() {
        let mut b = ReplyBudgets::from(TokenBucket::new(1, 1)).with_failure_budget(limits(
            Some(Rate {
                per_second: 10,
                burst: 3,
            }),
            100,
        ));
        let (bad, good) = (a("2001:db8:1::1"), a("2001:db8:2::1"));
        for _ in 0..3 {
            assert!(b.admits(bad, at(0)));
            b.note_failure(bad, at(0));
        }
        assert!(!b.admits(bad, at(0)));
        assert!(!b.admits(a("2001:db8:1::2"), at(50)), "the whole /64");
        assert!(b.admits(good, at(0)), "others are not affected");
        assert!(b.admits(bad, at(100)), "a token back after 100 ms at 10/s");
    }

    #[test]
    fn prefix_keys() {
        assert_eq!(prefix_key(a("2001:db8::1"), 0), 0);
        assert_eq!(
            prefix_key(a("2001:db8::1"), 64),
            prefix_key(a("2001:db8::ffff"), 64)
        );
        assert_ne!(
            prefix_key(a("2001:db8::1"), 128),
            prefix_key(a("2001:db8::2"), 128)
        );
    }
}
