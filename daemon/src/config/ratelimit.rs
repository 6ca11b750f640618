//! The `reply_rate_limit` section shared by every daemon that answers refused messages.
use serde::Deserialize;

use super::Validator;

/// Token bucket for replies to refused messages (BAck ≥ 128, Binding Error), which RFC 6275
/// §9.5.1/§11.3.4 ask to rate-limit so a flood of bad BUs cannot be reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default = "default_rate")]
    pub per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: default_rate(),
            burst: default_burst(),
        }
    }
}

impl RateLimitConfig {
    /// Checks the section found at `path`.
    pub fn validate(&self, path: &str, v: &mut Validator) {
        if self.per_second == 0 {
            v.error(format!("{path}.per_second"), "must be at least 1");
        }
        if self.burst == 0 {
            v.error(format!("{path}.burst"), "must be at least 1");
        }
    }

    /// The bucket this section describes, full.
    pub fn bucket(&self) -> mipcast_proto::TokenBucket {
        mipcast_proto::TokenBucket::new(self.per_second, self.burst)
    }
}

fn default_rate() -> u32 {
    20
}

fn default_burst() -> u32 {
    50
}
