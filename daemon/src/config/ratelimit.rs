//! The `reply_rate_limit` section shared by every daemon that answers refused messages.
//!
//! ```yaml
//! reply_rate_limit:
//!   per_second: 20          # replies to unauthenticated messages, all sources together
//!   burst: 50
//!   per_source:             # ... and per source prefix (both budgets)
//!     per_second: 5
//!     burst: 10
//!   source_prefix_len: 64   # sources in one /64 share a bucket
//!   max_sources: 4096
//!   authenticated:          # signed replies a real terminal needs (135, 144): a budget apart
//!     per_second: 200
//!     burst: 200
//!   failures_per_source:    # failed messages read from one source prefix; beyond, dropped
//!     per_second: 200       # unread (no MAC computed) until the budget refills
//!     burst: 400
//! ```
use serde::Deserialize;

use mipcast_proto::{Rate, ReplyBudgets, SourceLimits};

use super::Validator;

/// Token buckets for replies to refused messages (BAck ≥ 128, Binding Error), which RFC 6275
/// §9.5.1/§11.3.4 ask to rate-limit so a flood of bad BUs cannot be reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Replies to unauthenticated messages, per second, every source together.
    #[serde(default = "default_rate")]
    pub per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// The budget of each source prefix (in both the authenticated and the unauthenticated
    /// budget): one flooding source cannot spend the others' replies.
    #[serde(default = "default_per_source")]
    pub per_source: RateConfig,
    #[serde(default = "default_prefix_len")]
    pub source_prefix_len: u8,
    /// Source prefixes tracked at once; beyond, new sources get no reply until some go idle.
    #[serde(default = "default_max_sources")]
    pub max_sources: u32,
    /// Signed replies to authenticated messages (135, 144, 145, 129), a budget of their own
    /// so a flood of forged messages cannot starve a terminal's resynchronisation.
    #[serde(default = "default_authenticated")]
    pub authenticated: RateConfig,
    /// Failed messages (wrong MAC, malformed) taken from one source prefix: beyond, its
    /// messages are dropped unread (no MAC computed) until the budget refills, so one
    /// flooding prefix cannot keep the daemon busy for everyone.
    #[serde(default = "default_failures_per_source")]
    pub failures_per_source: RateConfig,
}

/// A `per_second` / `burst` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub per_second: u32,
    pub burst: u32,
}

impl RateConfig {
    fn rate(self) -> Rate {
        Rate {
            per_second: self.per_second,
            burst: self.burst,
        }
    }

    fn validate(&self, path: &str, v: &mut Validator) {
        if self.per_second == 0 {
            v.error(format!("{path}.per_second"), "must be at least 1");
        }
        if self.burst == 0 {
            v.error(format!("{path}.burst"), "must be at least 1");
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: default_rate(),
            burst: default_burst(),
            per_source: default_per_source(),
            source_prefix_len: default_prefix_len(),
            max_sources: default_max_sources(),
            authenticated: default_authenticated(),
            failures_per_source: default_failures_per_source(),
        }
    }
}

impl RateLimitConfig {
    /// Checks the section found at `path`.
    pub fn validate(&self, path: &str, v: &mut Validator) {
        RateConfig {
            per_second: self.per_second,
            burst: self.burst,
        }
        .validate(path, v);
        self.per_source.validate(&format!("{path}.per_source"), v);
        self.authenticated
            .validate(&format!("{path}.authenticated"), v);
        self.failures_per_source
            .validate(&format!("{path}.failures_per_source"), v);
        if self.source_prefix_len > 128 {
            v.error(
                format!("{path}.source_prefix_len"),
                "must be 0 to 128 (bits of the source address)",
            );
        }
        if self.max_sources == 0 {
            v.error(format!("{path}.max_sources"), "must be at least 1");
        }
    }

    /// The budgets this section describes, full.
    pub fn budgets(&self) -> ReplyBudgets {
        let limits = |global: Rate| SourceLimits {
            global,
            per_source: Some(self.per_source.rate()),
            source_prefix_len: self.source_prefix_len,
            max_sources: usize::try_from(self.max_sources).unwrap_or(usize::MAX),
        };
        let unauthenticated = Rate {
            per_second: self.per_second,
            burst: self.burst,
        };
        let failures = SourceLimits {
            per_source: Some(self.failures_per_source.rate()),
            ..limits(unauthenticated)
        };
        ReplyBudgets::new(limits(self.authenticated.rate()), limits(unauthenticated))
            .with_failure_budget(failures)
    }
}

fn default_rate() -> u32 {
    20
}

fn default_burst() -> u32 {
    50
}

fn default_per_source() -> RateConfig {
    RateConfig {
        per_second: 5,
        burst: 10,
    }
}

fn default_prefix_len() -> u8 {
    64
}

fn default_max_sources() -> u32 {
    4096
}

fn default_failures_per_source() -> RateConfig {
    RateConfig {
        per_second: 200,
        burst: 400,
    }
}

fn default_authenticated() -> RateConfig {
    RateConfig {
        per_second: 200,
        burst: 200,
    }
}
