//! The home agent's YAML configuration (see `configs/home-agent.yaml` for a commented example).
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mipcast_binding::{HomeAgentPolicy, PolicyError, RegistrarConfig, SaError, SaTable};
use mipcast_daemon::config::ratelimit::RateLimitConfig;
use mipcast_daemon::config::sa::{self, SaConfig};
use mipcast_daemon::config::{self, secs, ConfigError, Ipv6Prefix, Validate, Validator};
use mipcast_kernel::route::{DEFAULT_LOCAL_RULE_PREF, RTPROT_MIPCAST};
use serde::Deserialize;

pub const DEFAULT_METRICS: &str = "[::1]:9641";

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingsConfig {
    #[serde(with = "secs", default = "default_max_lifetime")]
    pub max_lifetime: Duration,
    #[serde(with = "secs", default = "default_replay_window")]
    pub replay_window: Duration,
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
    Duration::from_secs(3600)
}
fn default_replay_window() -> Duration {
    Duration::from_secs(7)
}
fn default_refresh_percent() -> u8 {
    80
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Routing-protocol number tagging every route, rule and proxy entry we install.
    #[serde(default = "default_protocol")]
    pub protocol: u8,
    /// Table holding the `HA/128 End.DT6` decapsulation route.
    #[serde(default = "default_decap_table")]
    pub decap_table: u32,
    /// Preference of the per-care-of-address decapsulation rules.
    #[serde(default = "default_decap_rule_pref")]
    pub decap_rule_pref: u32,
    /// Where the `lookup local` rule is moved (must be after the decapsulation rules).
    #[serde(default = "default_local_rule_pref")]
    pub local_rule_pref: u32,
    /// After a binding moves to a new care-of address, reverse-tunnelled packets from the
    /// previous one are still decapsulated for this long (its rule stays), so what the
    /// terminal sent before it learnt of the move is not refused. 0: refused at once.
    #[serde(default = "default_previous_coa_accept_ms")]
    pub previous_coa_accept_ms: u64,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            protocol: default_protocol(),
            decap_table: default_decap_table(),
            decap_rule_pref: default_decap_rule_pref(),
            local_rule_pref: default_local_rule_pref(),
            previous_coa_accept_ms: default_previous_coa_accept_ms(),
        }
    }
}

fn default_protocol() -> u8 {
    RTPROT_MIPCAST
}
fn default_decap_table() -> u32 {
    3600
}
fn default_decap_rule_pref() -> u32 {
    10
}
fn default_local_rule_pref() -> u32 {
    DEFAULT_LOCAL_RULE_PREF
}
/// A WAN round trip or two plus the terminal's registration time, with a wide margin.
fn default_previous_coa_accept_ms() -> u64 {
    1000
}
/// Longer would let a care-of address the terminal left inject for too long.
const MAX_PREVIOUS_COA_ACCEPT_MS: u64 = 10_000;

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
    // A constant that parses; the fallback is never taken.
    DEFAULT_METRICS
        .parse()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9641)))
}

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

/// Routing tables the kernel reserves (unspec, compat, default, main, local).
const RESERVED_TABLES: [u32; 5] = [0, 252, 253, 254, 255];
/// Protocol numbers 0-4 are the kernel's own (unspec, redirect, kernel, boot, static).
const FIRST_FREE_PROTOCOL: u8 = 5;

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
        if k.previous_coa_accept_ms > MAX_PREVIOUS_COA_ACCEPT_MS {
            v.error(
                "kernel.previous_coa_accept_ms",
                format!("at most {MAX_PREVIOUS_COA_ACCEPT_MS} (ten seconds)"),
            );
        }
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
