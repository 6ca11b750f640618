//! The correspondent agent's YAML configuration (see `configs/correspondent.yaml` for a
//! commented example).
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mipcast_binding::{RegistrarConfig, SaError, SaTable};
use mipcast_daemon::config::ratelimit::RateLimitConfig;
use mipcast_daemon::config::sa::{self, SaAlgorithm, SaConfig};
use mipcast_daemon::config::{self, secs, ConfigError, Ipv6Prefix, SecretKey, Validate, Validator};
use mipcast_kernel::route::{DEFAULT_LOCAL_RULE_PREF, RTPROT_MIPCAST};
use serde::Deserialize;

use crate::core::{CorrespondentPolicy, MmaSource, PolicyError};

pub const DEFAULT_METRICS: &str = "[::1]:9645";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub correspondent: Local,
    /// The MMAs that may bind home addresses here, each with its RFC 4285 association.
    pub mmas: Vec<MmaConfig>,
    #[serde(default)]
    pub bindings: BindingsConfig,
    #[serde(default)]
    pub reply_rate_limit: RateLimitConfig,
    #[serde(default)]
    pub kernel: KernelConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub state: StateConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Local {
    /// Interface toward the MMAs (the decapsulation route's device; the fallback device of
    /// the encapsulation routes).
    pub interface: String,
    /// Our address: BUs are accepted on it, it is the outer source of every tunnel (the
    /// namespace-wide seg6 tunnel source) and the address MMA tunnels are decapsulated at.
    pub address: Ipv6Addr,
    /// `host`: the agent runs on the correspondent, decapsulated packets are its own (looked
    /// up in the local table). `router`: it runs on the correspondents' first router and
    /// routes them on (main table).
    #[serde(default)]
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Host,
    Router,
}

impl Role {
    /// The table decapsulated packets are looked up in.
    pub fn inner_table(self) -> u32 {
        match self {
            Role::Host => 255,
            Role::Router => 254,
        }
    }
}

/// One MMA: where its BUs come from, its association, what it may bind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmaConfig {
    /// The MMA's address (`/128`) or prefix: BUs with this SPI from elsewhere get 129.
    pub address: Ipv6Prefix,
    pub spi: u32,
    pub algorithm: SaAlgorithm,
    pub key_file: SecretKey,
    /// Home addresses this MMA may bind (else 129).
    pub home_prefixes: Vec<Ipv6Prefix>,
}

impl MmaConfig {
    fn association(&self) -> SaConfig {
        SaConfig {
            spi: self.spi,
            algorithm: self.algorithm,
            key_file: self.key_file.clone(),
            home_prefixes: self.home_prefixes.clone(),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingsConfig {
    #[serde(with = "secs", default = "default_max_lifetime")]
    pub max_lifetime: Duration,
    #[serde(with = "secs", default = "default_replay_window")]
    pub replay_window: Duration,
    /// A Binding Refresh Request goes to the MMA at this share of the lifetime.
    #[serde(default = "default_refresh_percent")]
    pub refresh_percent: u8,
}

impl Default for BindingsConfig {
    fn default() -> Self {
        BindingsConfig {
            max_lifetime: default_max_lifetime(),
            replay_window: default_replay_window(),
            refresh_percent: default_refresh_percent(),
        }
    }
}

fn default_max_lifetime() -> Duration {
    // Route optimisation follows flows: short bindings, refreshed while traffic lasts.
    Duration::from_secs(300)
}
fn default_replay_window() -> Duration {
    Duration::from_secs(7)
}
fn default_refresh_percent() -> u8 {
    90
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    #[serde(default = "default_protocol")]
    pub protocol: u8,
    #[serde(default = "default_decap_table")]
    pub decap_table: u32,
    #[serde(default = "default_decap_rule_pref")]
    pub decap_rule_pref: u32,
    #[serde(default = "default_local_rule_pref")]
    pub local_rule_pref: u32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            protocol: default_protocol(),
            decap_table: default_decap_table(),
            decap_rule_pref: default_decap_rule_pref(),
            local_rule_pref: default_local_rule_pref(),
        }
    }
}

fn default_protocol() -> u8 {
    RTPROT_MIPCAST
}
fn default_decap_table() -> u32 {
    3610
}
fn default_decap_rule_pref() -> u32 {
    10
}
fn default_local_rule_pref() -> u32 {
    DEFAULT_LOCAL_RULE_PREF
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics(),
        }
    }
}

fn default_metrics() -> SocketAddr {
    DEFAULT_METRICS
        .parse()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9645)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default = "default_state_file")]
    pub file: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            file: default_state_file(),
        }
    }
}

fn default_state_file() -> PathBuf {
    PathBuf::from("/var/lib/mipcast/correspondent.journal")
}

/// Routing tables the kernel reserves (unspec, compat, default, main, local).
const RESERVED_TABLES: [u32; 5] = [0, 252, 253, 254, 255];
/// Protocol numbers 0-4 are the kernel's own.
const FIRST_FREE_PROTOCOL: u8 = 5;

impl Validate for Config {
    fn validate(&self, v: &mut Validator) {
        let c = &self.correspondent;
        if c.interface.is_empty() || c.interface.len() > 15 {
            v.error(
                "correspondent.interface",
                "an interface name has 1 to 15 characters",
            );
        }
        let me = c.address;
        if me.is_multicast() || me.is_unspecified() || me.is_loopback() {
            v.error(
                "correspondent.address",
                format!("{me} is not a unicast address"),
            );
        }
        if self.mmas.is_empty() {
            v.error(
                "mmas",
                "at least one MMA is needed (every BU must be authenticated)",
            );
        }
        let sas: Vec<SaConfig> = self.mmas.iter().map(MmaConfig::association).collect();
        sa::validate_sas("mmas", &sas, v);
        for (i, m) in self.mmas.iter().enumerate() {
            if m.address.contains(me) {
                v.error(
                    format!("mmas[{i}].address"),
                    format!("{} contains our own address {me}", m.address),
                );
            }
            for (j, p) in m.home_prefixes.iter().enumerate() {
                config::limits::check_not_everything(
                    &format!("mmas[{i}].home_prefixes[{j}]"),
                    p,
                    v,
                );
                if p.contains(me) {
                    v.error(
                        format!("mmas[{i}].home_prefixes[{j}]"),
                        format!("{p} contains our own address {me}"),
                    );
                }
            }
        }
        let b = &self.bindings;
        if b.max_lifetime.as_secs() < 4 || b.max_lifetime.as_secs() > 262_140 {
            v.error(
                "bindings.max_lifetime",
                "must be 4 to 262140 seconds (the BU lifetime is 16 bits of 4 s units)",
            );
        }
        config::limits::check_replay_window("bindings.replay_window", b.replay_window, v);
        if !(1..=99).contains(&b.refresh_percent) {
            v.error("bindings.refresh_percent", "must be 1 to 99");
        }
        self.reply_rate_limit.validate("reply_rate_limit", v);
        let k = &self.kernel;
        if k.protocol < FIRST_FREE_PROTOCOL {
            v.error(
                "kernel.protocol",
                format!(
                    "{} is one of the kernel's own protocol numbers (0-4)",
                    k.protocol
                ),
            );
        }
        if RESERVED_TABLES.contains(&k.decap_table) {
            v.error(
                "kernel.decap_table",
                format!("table {} is reserved by the kernel", k.decap_table),
            );
        }
        if k.decap_rule_pref == 0 || k.decap_rule_pref >= k.local_rule_pref {
            v.error(
                "kernel.decap_rule_pref",
                format!(
                    "must be between 1 and local_rule_pref ({}) exclusive, so decapsulation \
                     rules come before the local table",
                    k.local_rule_pref
                ),
            );
        }
        config::limits::check_state_path("state.file", &self.state.file, v);
    }
}

/// Why the parts the core needs could not be built from a validated config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("MMA security associations: {0}")]
    Sa(#[from] SaError),
    #[error("MMAs: {0}")]
    Policy(#[from] PolicyError),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        config::load(path)
    }

    pub fn sa_table(&self) -> Result<SaTable, SaError> {
        let sas: Vec<SaConfig> = self.mmas.iter().map(MmaConfig::association).collect();
        sa::sa_table(&sas)
    }

    pub fn policy(&self) -> Result<CorrespondentPolicy, PolicyError> {
        CorrespondentPolicy::new(self.mmas.iter().map(|m| MmaSource {
            spi: m.spi,
            prefix: m.address.addr(),
            prefix_len: m.address.prefix_len(),
        }))
    }

    pub fn registrar_config(&self) -> RegistrarConfig {
        RegistrarConfig {
            max_lifetime_s: u32::try_from(self.bindings.max_lifetime.as_secs()).unwrap_or(u32::MAX),
            replay_window_ms: u64::try_from(self.bindings.replay_window.as_millis())
                .unwrap_or(u64::MAX),
            refresh_percent: self.bindings.refresh_percent,
        }
    }

    /// Everything the daemon derives from the file, checked together.
    pub fn check(&self) -> Result<(), BuildError> {
        self.sa_table()?;
        self.policy()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        config::load_str(Path::new("/nonexistent/correspondent.yaml"), text)
    }

    #[test]
    fn problems_are_reported_at_their_field() {
        let err = load(
            "correspondent: {interface: eth0, address: 2001:db8:c::1}\n\
             mmas: []\n\
             kernel: {decap_table: 254}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mmas"), "{err}");
        assert!(err.contains("kernel.decap_table"), "{err}");
        let err = load("correspondent: {interface: eth0}\nmmas: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("address"), "{err}");
    }
}
