//! The correspondent agent's YAML configuration (see `configs/correspondent.yaml` for a
//! commented example).
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use home_agent::sections::{self, Defaults};
use mipcast_binding::{RegistrarConfig, SaError, SaTable};
use mipcast_daemon::config::ratelimit::RateLimitConfig;
use mipcast_daemon::config::sa::{self, SaAlgorithm, SaConfig};
use mipcast_daemon::config::{self, ConfigError, Ipv6Prefix, SecretKey, Validate, Validator};
use serde::Deserialize;

use crate::core::{CorrespondentPolicy, MmaSource, PolicyError};

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

/// The correspondent agent's defaults for the sections shared with the home agent ([`home_agent::sections`]).
#[derive(Debug, PartialEq, Eq)]
pub struct CorrespondentDefaults;

impl Defaults for CorrespondentDefaults {
    const MAX_LIFETIME: Duration = Duration::from_secs(300);
    const REFRESH_PERCENT: u8 = 90;
    const DECAP_TABLE: u32 = 3610;
    const METRICS_PORT: u16 = 9645;
    /// Off: after a move to another MMA the correspondent's tunnel follows the binding at
    /// once (the home agent's window covers the terminal's own reverse tunnel).
    const PREVIOUS_COA_ACCEPT_MS: u64 = 0;
}

pub type BindingsConfig = sections::BindingsConfig<CorrespondentDefaults>;
pub type KernelConfig = sections::KernelConfig<CorrespondentDefaults>;
pub type MetricsConfig = sections::MetricsConfig<CorrespondentDefaults>;

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
        self.bindings.validate(v);
        self.reply_rate_limit.validate("reply_rate_limit", v);
        self.kernel.validate(v);
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
        self.bindings.registrar_config()
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

    /// The shared sections (home_agent::sections) keep the correspondent's own defaults,
    /// as configs/correspondent.yaml documents them.
    #[test]
    fn omitted_sections_take_the_correspondents_defaults() {
        let c: Config = serde_json::from_str(
            r#"{"correspondent": {"interface": "eth0", "address": "2001:db8:c::1"}, "mmas": []}"#,
        )
        .unwrap();
        assert_eq!(c.bindings.max_lifetime, Duration::from_secs(300));
        assert_eq!(c.bindings.refresh_percent, 90);
        assert_eq!(c.kernel.decap_table, 3610);
        assert_eq!(c.kernel.decap_rule_pref, 10);
        assert_eq!(c.kernel.previous_coa_accept_ms, 0);
        assert_eq!(c.metrics.listen.to_string(), "[::1]:9645");
        let partial: Config = serde_json::from_str(
            r#"{"correspondent": {"interface": "eth0", "address": "2001:db8:c::1"}, "mmas": [],
                "kernel": {"decap_rule_pref": 20}, "bindings": {"refresh_percent": 50}}"#,
        )
        .unwrap();
        assert_eq!(partial.kernel.decap_table, 3610);
        assert_eq!(partial.kernel.decap_rule_pref, 20);
        assert_eq!(partial.bindings.max_lifetime, Duration::from_secs(300));
        assert_eq!(partial.bindings.refresh_percent, 50);
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
