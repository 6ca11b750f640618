//! The home agent's YAML configuration (see `configs/home-agent.yaml` for a commented example).
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sections::{self, Defaults};
use mipcast_binding::{HomeAgentPolicy, PolicyError, RegistrarConfig, SaError, SaTable};
use mipcast_daemon::config::ratelimit::RateLimitConfig;
use mipcast_daemon::config::sa::{self, SaConfig};
use mipcast_daemon::config::{self, ConfigError, Ipv6Prefix, Validate, Validator};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub home_link: HomeLink,
    /// Home addresses are registered only inside these prefixes (else BAck 132).
    pub home_prefixes: Vec<Ipv6Prefix>,
    /// RFC 4285 MN-HA associations (the section shared with the MMA).
    pub security_associations: Vec<SaConfig>,
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
pub struct HomeLink {
    /// Interface on the home link: proxy ND entries for home addresses go there.
    pub interface: String,
    /// The home agent's address: BUs are accepted on it, and it is the outer source of every
    /// tunnel (the namespace-wide seg6 tunnel source) and the decapsulation address.
    pub address: Ipv6Addr,
    /// Whether hosts share the home link with the home addresses (they must be defended in
    /// Neighbour Discovery) or the home prefix is only routed to the home agent.
    #[serde(default)]
    pub mode: HomeLinkMode,
    /// Who answers neighbour solicitations for registered home addresses (`mode: link`
    /// only); default `user`.
    #[serde(default)]
    pub proxy: Option<ProxyMode>,
}

impl HomeLink {
    /// The proxy in effect: None on a virtual home link (nothing to answer).
    pub fn proxy(&self) -> Option<ProxyMode> {
        match self.mode {
            HomeLinkMode::Link => Some(self.proxy.unwrap_or_default()),
            HomeLinkMode::Virtual => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeLinkMode {
    /// A real link with other hosts on it: home addresses are answered for in ND.
    #[default]
    Link,
    /// The home prefix is routed to the home agent (no host of it on any link): no ND at all.
    Virtual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// The home agent answers solicitations itself: one binding-cache lookup each, whatever
    /// the number of bindings (the default: the kernel's per-address proxy entries cost O(n)
    /// each to add, minutes at 100,000).
    #[default]
    User,
    /// One kernel proxy-ND entry per home address (`ip -6 neigh show proxy`); fine for a
    /// few thousand bindings, needs no packet socket.
    Kernel,
}

/// The home agent's defaults for the sections shared with the correspondent agent ([`crate::sections`]).
#[derive(Debug, PartialEq, Eq)]
pub struct HomeAgentDefaults;

impl Defaults for HomeAgentDefaults {
    const MAX_LIFETIME: Duration = Duration::from_secs(3600);
    const REFRESH_PERCENT: u8 = 80;
    const DECAP_TABLE: u32 = 3600;
    const METRICS_PORT: u16 = 9641;
    /// A WAN round trip or two plus the terminal's registration time, with a wide margin.
    const PREVIOUS_COA_ACCEPT_MS: u64 = 1000;
}

pub type BindingsConfig = sections::BindingsConfig<HomeAgentDefaults>;
pub type KernelConfig = sections::KernelConfig<HomeAgentDefaults>;
pub type MetricsConfig = sections::MetricsConfig<HomeAgentDefaults>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default = "default_state_file")]
    pub file: PathBuf,
    /// Changes are written at most this often (milliseconds); a clean stop always writes.
    #[serde(default = "default_write_delay_ms")]
    pub write_delay_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            file: default_state_file(),
            write_delay_ms: default_write_delay_ms(),
        }
    }
}

fn default_state_file() -> PathBuf {
    PathBuf::from("/var/lib/mipcast/home-agent.json")
}
fn default_write_delay_ms() -> u64 {
    1000
}

impl Validate for Config {
    fn validate(&self, v: &mut Validator) {
        if self.home_link.interface.is_empty() || self.home_link.interface.len() > 15 {
            v.error(
                "home_link.interface",
                "an interface name has 1 to 15 characters",
            );
        }
        if self.home_link.mode == HomeLinkMode::Virtual && self.home_link.proxy.is_some() {
            v.error(
                "home_link.proxy",
                "a virtual home link has no neighbours to answer: remove proxy or use mode: link",
            );
        }
        let ha = self.home_link.address;
        if ha.is_multicast() || ha.is_unspecified() || ha.is_loopback() {
            v.error(
                "home_link.address",
                format!("{ha} is not a unicast address"),
            );
        }
        if self.home_prefixes.is_empty() {
            v.error("home_prefixes", "at least one home prefix is needed");
        } else if !self.home_prefixes.iter().any(|p| p.contains(ha)) {
            v.error(
                "home_link.address",
                format!("{ha} is in none of the home prefixes"),
            );
        }
        for (i, p) in self.home_prefixes.iter().enumerate() {
            config::limits::check_not_everything(&format!("home_prefixes[{i}]"), p, v);
        }
        if self.security_associations.is_empty() {
            v.error(
                "security_associations",
                "at least one security association is needed (every BU must be authenticated)",
            );
        }
        sa::validate_sas("security_associations", &self.security_associations, v);
        for (i, sa) in self.security_associations.iter().enumerate() {
            for (j, p) in sa.home_prefixes.iter().enumerate() {
                if !self
                    .home_prefixes
                    .iter()
                    .any(|h| h.prefix_len() <= p.prefix_len() && h.contains(p.addr()))
                {
                    v.error(
                        format!("security_associations[{i}].home_prefixes[{j}]"),
                        format!("{p} is outside every home prefix"),
                    );
                }
            }
        }
        self.bindings.validate(v);
        self.reply_rate_limit.validate("reply_rate_limit", v);
        self.kernel.validate(v);
        config::limits::check_state_path("state.file", &self.state.file, v);
        if self.state.write_delay_ms > 60_000 {
            v.error("state.write_delay_ms", "at most 60000 (one minute)");
        }
    }
}

/// Why the parts the registrar needs could not be built from a validated config (only
/// checks the registrar crate adds on top of [`Validate`]).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("security associations: {0}")]
    Sa(#[from] SaError),
    #[error("home prefixes: {0}")]
    Policy(#[from] PolicyError),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        config::load(path)
    }

    pub fn sa_table(&self) -> Result<SaTable, SaError> {
        sa::sa_table(&self.security_associations)
    }

    pub fn policy(&self) -> Result<HomeAgentPolicy, PolicyError> {
        HomeAgentPolicy::new(
            self.home_prefixes
                .iter()
                .map(|p| (p.addr(), p.prefix_len()))
                .collect(),
        )
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
