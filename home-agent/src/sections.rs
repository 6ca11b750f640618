//! Configuration sections shared by the agents that run the home agent's core (the home
//! agent and the correspondent agent): `bindings`, `kernel` and `metrics` have the same keys
//! and checks in both files; only their defaults differ, given by an agent's [`Defaults`].
use std::marker::PhantomData;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use mipcast_binding::RegistrarConfig;
use mipcast_daemon::config::{self, secs, Validator};
use mipcast_kernel::route::{DEFAULT_LOCAL_RULE_PREF, RTPROT_MIPCAST};
use serde::Deserialize;

use crate::agent::KernelSettings;

/// An agent's defaults for the shared sections.
pub trait Defaults {
    const MAX_LIFETIME: Duration;
    const REFRESH_PERCENT: u8;
    const DECAP_TABLE: u32;
    /// The metrics listener's port (on `[::1]`).
    const METRICS_PORT: u16;
    /// `kernel.previous_coa_accept_ms` when the file does not say.
    const PREVIOUS_COA_ACCEPT_MS: u64;
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct BindingsConfig<D: Defaults> {
    #[serde(with = "secs", default = "max_lifetime::<D>")]
    pub max_lifetime: Duration,
    #[serde(with = "secs", default = "default_replay_window")]
    pub replay_window: Duration,
    /// A refresh is asked for (BRR) or expected at this share of the lifetime.
    #[serde(default = "refresh_percent::<D>")]
    pub refresh_percent: u8,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

impl<D: Defaults> Default for BindingsConfig<D> {
    fn default() -> Self {
        BindingsConfig {
            max_lifetime: max_lifetime::<D>(),
            replay_window: default_replay_window(),
            refresh_percent: refresh_percent::<D>(),
            defaults: PhantomData,
        }
    }
}

fn max_lifetime<D: Defaults>() -> Duration {
    D::MAX_LIFETIME
}
fn default_replay_window() -> Duration {
    Duration::from_secs(7)
}
fn refresh_percent<D: Defaults>() -> u8 {
    D::REFRESH_PERCENT
}

impl<D: Defaults> BindingsConfig<D> {
    pub fn registrar_config(&self) -> RegistrarConfig {
        RegistrarConfig {
            max_lifetime_s: u32::try_from(self.max_lifetime.as_secs()).unwrap_or(u32::MAX),
            replay_window_ms: u64::try_from(self.replay_window.as_millis()).unwrap_or(u64::MAX),
            refresh_percent: self.refresh_percent,
        }
    }

    pub fn validate(&self, v: &mut Validator) {
        if self.max_lifetime.as_secs() < 4 || self.max_lifetime.as_secs() > 262_140 {
            v.error(
                "bindings.max_lifetime",
                "must be 4 to 262140 seconds (the BU lifetime is 16 bits of 4 s units)",
            );
        }
        config::limits::check_replay_window("bindings.replay_window", self.replay_window, v);
        if !(1..=99).contains(&self.refresh_percent) {
            v.error("bindings.refresh_percent", "must be 1 to 99");
        }
    }
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct KernelConfig<D: Defaults> {
    /// Routing-protocol number tagging every route, rule and proxy entry we install.
    #[serde(default = "default_protocol")]
    pub protocol: u8,
    /// Table holding our `address/128 End.DT6` decapsulation route.
    #[serde(default = "decap_table::<D>")]
    pub decap_table: u32,
    /// Preference of the per-peer decapsulation rules.
    #[serde(default = "default_decap_rule_pref")]
    pub decap_rule_pref: u32,
    /// Where the `lookup local` rule is moved (must be after the decapsulation rules).
    #[serde(default = "default_local_rule_pref")]
    pub local_rule_pref: u32,
    /// After a binding moves to a new care-of address, reverse-tunnelled packets from the
    /// previous one are still decapsulated for this long (its rule stays), so what the
    /// terminal sent before it learnt of the move is not refused. 0: refused at once.
    #[serde(default = "previous_coa_accept_ms::<D>")]
    pub previous_coa_accept_ms: u64,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

impl<D: Defaults> Default for KernelConfig<D> {
    fn default() -> Self {
        KernelConfig {
            protocol: default_protocol(),
            decap_table: decap_table::<D>(),
            decap_rule_pref: default_decap_rule_pref(),
            local_rule_pref: default_local_rule_pref(),
            previous_coa_accept_ms: previous_coa_accept_ms::<D>(),
            defaults: PhantomData,
        }
    }
}

fn default_protocol() -> u8 {
    RTPROT_MIPCAST
}
fn decap_table<D: Defaults>() -> u32 {
    D::DECAP_TABLE
}
fn default_decap_rule_pref() -> u32 {
    10
}
fn default_local_rule_pref() -> u32 {
    DEFAULT_LOCAL_RULE_PREF
}
fn previous_coa_accept_ms<D: Defaults>() -> u64 {
    D::PREVIOUS_COA_ACCEPT_MS
}
/// Longer would let a care-of address the terminal left inject for too long.
const MAX_PREVIOUS_COA_ACCEPT_MS: u64 = 10_000;

/// Routing tables the kernel reserves (unspec, compat, default, main, local).
const RESERVED_TABLES: [u32; 5] = [0, 252, 253, 254, 255];
/// Protocol numbers 0-4 are the kernel's own (unspec, redirect, kernel, boot, static).
const FIRST_FREE_PROTOCOL: u8 = 5;

impl<D: Defaults> KernelConfig<D> {
    pub fn settings(&self) -> KernelSettings {
        KernelSettings {
            protocol: self.protocol,
            decap_table: self.decap_table,
            decap_rule_pref: self.decap_rule_pref,
            local_rule_pref: self.local_rule_pref,
        }
    }

    pub fn validate(&self, v: &mut Validator) {
        if self.protocol < FIRST_FREE_PROTOCOL {
            v.error(
                "kernel.protocol",
                format!(
                    "{} is one of the kernel's own protocol numbers (0-4)",
                    self.protocol
                ),
            );
        }
        if RESERVED_TABLES.contains(&self.decap_table) {
            v.error(
                "kernel.decap_table",
                format!("table {} is reserved by the kernel", self.decap_table),
            );
        }
        if self.decap_rule_pref == 0 || self.decap_rule_pref >= self.local_rule_pref {
            v.error(
                "kernel.decap_rule_pref",
                format!(
                    "must be between 1 and local_rule_pref ({}) exclusive, so decapsulation \
                     rules come before the local table",
                    self.local_rule_pref
                ),
            );
        }
        if self.previous_coa_accept_ms > MAX_PREVIOUS_COA_ACCEPT_MS {
            v.error(
                "kernel.previous_coa_accept_ms",
                format!("at most {MAX_PREVIOUS_COA_ACCEPT_MS} (ten seconds)"),
            );
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct MetricsConfig<D: Defaults> {
    #[serde(default = "metrics_listen::<D>")]
    pub listen: SocketAddr,
    #[serde(skip)]
    defaults: PhantomData<D>,
}

impl<D: Defaults> Default for MetricsConfig<D> {
    fn default() -> Self {
        MetricsConfig {
            listen: metrics_listen::<D>(),
            defaults: PhantomData,
        }
    }
}

fn metrics_listen<D: Defaults>() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, D::METRICS_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Omitted sections and keys take the home agent's defaults (configs/home-agent.yaml).
    #[test]
    fn omitted_keys_take_the_home_agents_defaults() {
        let c: Config = serde_json::from_str(
            r#"{"home_link": {"interface": "home0", "address": "2001:db8:1::1"},
                "home_prefixes": [], "security_associations": [],
                "kernel": {"decap_rule_pref": 20}}"#,
        )
        .unwrap();
        assert_eq!(c.bindings.max_lifetime, Duration::from_secs(3600));
        assert_eq!(c.bindings.replay_window, Duration::from_secs(7));
        assert_eq!(c.bindings.refresh_percent, 80);
        assert_eq!(c.kernel.protocol, RTPROT_MIPCAST);
        assert_eq!(c.kernel.decap_table, 3600);
        assert_eq!(c.kernel.decap_rule_pref, 20);
        assert_eq!(c.kernel.local_rule_pref, DEFAULT_LOCAL_RULE_PREF);
        assert_eq!(c.kernel.previous_coa_accept_ms, 1000);
        assert_eq!(c.metrics.listen.to_string(), "[::1]:9641");
    }

    #[test]
    fn shared_checks_name_their_field() {
        let c: Config = serde_json::from_str(
            r#"{"home_link": {"interface": "home0", "address": "2001:db8:1::1"},
                "home_prefixes": [], "security_associations": [],
                "kernel": {"decap_table": 254, "protocol": 2, "previous_coa_accept_ms": 10001},
                "bindings": {"refresh_percent": 100, "max_lifetime": 2}}"#,
        )
        .unwrap();
        let mut v = Validator::default();
        c.bindings.validate(&mut v);
        c.kernel.validate(&mut v);
        let problems = format!("{v:?}");
        for field in [
            "bindings.max_lifetime",
            "bindings.refresh_percent",
            "kernel.protocol",
            "kernel.decap_table",
            "kernel.previous_coa_accept_ms",
        ] {
            assert!(problems.contains(field), "{field} in {problems}");
        }
        assert!(!problems.contains("kernel.decap_rule_pref"), "{problems}");
    }
}
