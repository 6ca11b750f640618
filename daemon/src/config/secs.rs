//! `std::time::Duration` written in the config as a whole number of seconds.
//!
//! Use as `#[serde(with = "mipcast_daemon::config::secs")] lifetime: Duration`. Serializing
//! drops any fraction of a second (config values are whole seconds by construction).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}
