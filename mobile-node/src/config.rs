//! The mobile node's YAML configuration (`configs/mobile-node.yaml` is the commented example).
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use mipcast_daemon::config::sa::{check_key_len, SaAlgorithm};
use mipcast_daemon::config::{secs, Ipv6Prefix, SecretKey, Validate, Validator};
use mipcast_daemon::driver::ReloadDiff;
use mipcast_wire::group::{DEFAULT_GROUP_PREFIX, GROUP_PREFIX_LEN};

/// Default metrics listener of the mobile node.
pub const DEFAULT_METRICS: &str = "[::1]:9643";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub home_address: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    pub home_prefix: Ipv6Prefix,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_group_prefix")]
    pub multicast_prefix: Ipv6Prefix,
    /// Interface whose MAC gives the EUI-64 of the terminal group (default: the first one).
    #[serde(default)]
    pub group_interface: Option<String>,
    #[serde(default = "default_lifetime", with = "secs")]
    pub binding_lifetime: Duration,
    pub security_associations: SecurityAssociations,
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    pub selection: Selection,
    #[serde(default)]
    pub handover: Handover,
    #[serde(default)]
    pub kernel: KernelConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default = "default_state_file")]
    pub state_file: PathBuf,
    /// Unix socket for `mobile-node quality set LINK N` (tests and external agents feeding
    /// link quality); none: no control socket.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
}

pub use crate::core::Mode;

impl Config {
    /// What a SIGHUP's configuration `new` changes against this, the running one.
    pub fn reload_diff(&self, new: &Config) -> ReloadDiff {
        let running = self;
        let names = |c: &Config| {
            c.interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>()
        };
        // nl80211 is probed at start.
        let sources = |c: &Config| {
            c.interfaces
                .iter()
                .map(|i| i.quality_source)
                .collect::<Vec<_>>()
        };
        let tuning = |c: &Config| {
            c.interfaces
                .iter()
                .map(|i| (i.preference, i.cost, i.quality_file.clone()))
                .collect::<Vec<_>>()
        };
        ReloadDiff::default()
            .restart("home_address", new.home_address != running.home_address)
            .restart("home_agent", new.home_agent != running.home_agent)
            .restart("home_prefix", new.home_prefix != running.home_prefix)
            .restart("mode", new.mode != running.mode)
            .restart(
                "multicast_prefix",
                new.multicast_prefix != running.multicast_prefix,
            )
            .restart(
                "group_interface",
                new.group_interface != running.group_interface,
            )
            .restart("interfaces (names)", names(new) != names(running))
            .restart(
                "interfaces (quality_source)",
                sources(new) != sources(running),
            )
            .restart("kernel", new.kernel != running.kernel)
            .restart("metrics", new.metrics != running.metrics)
            .restart("state_file", new.state_file != running.state_file)
            .restart(
                "control_socket",
                new.control_socket != running.control_socket,
            )
            .live("selection", new.selection != running.selection)
            .live(
                "binding_lifetime",
                new.binding_lifetime != running.binding_lifetime,
            )
            .live("handover", new.handover != running.handover)
            // Keys are re-read from their files.
            .live("security_associations", true)
            .live(
                "interfaces (preference, cost, quality_file)",
                names(new) == names(running) && tuning(new) != tuning(running),
            )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaConfig {
    pub spi: u32,
    pub algorithm: SaAlgorithm,
    pub key_file: SecretKey,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmaSaConfig {
    pub address: Ipv6Addr,
    pub spi: u32,
    pub algorithm: SaAlgorithm,
    pub key_file: SecretKey,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityAssociations {
    pub home_agent: SaConfig,
    #[serde(default)]
    pub mmas: Vec<MmaSaConfig>,
    /// Used with any MMA not listed in `mmas`; without it such MMAs are not registered with.
    #[serde(default)]
    pub default_mma: Option<SaConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    /// 0-100, higher is preferred.
    #[serde(default = "default_preference")]
    pub preference: u8,
    /// 0-100, subtracted from the score (e.g. a metered link).
    #[serde(default)]
    pub cost: u8,
    /// File holding a 0-100 link quality written by a radio driver; 0 = unusable.
    #[serde(default)]
    pub quality_file: Option<PathBuf>,
    /// Where the link's quality readings come from; unset: `quality_file` if given (and the
    /// control socket, as for every link).
    #[serde(default)]
    pub quality_source: Option<QualitySource>,
}

/// A link's source of quality readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualitySource {
    /// `quality_file` (required), read at every poll.
    File,
    /// The signal of the associated access point from the kernel's nl80211 (Wi-Fi) family,
    /// mapped linearly from -90 dBm (0) to -30 dBm (100). Probed once at start: a kernel
    /// without a wireless stack logs a warning naming the link, which then falls back to
    /// `quality_file` if given, else to the control socket if one is configured, else has no
    /// reading (it scores as a link without a quality source).
    Nl80211,
    /// Only `mobile-node quality set` on the control socket (required).
    Control,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Score margin a candidate needs over the current link before we switch.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: u32,
    /// Minimum time on a link before a switch to a merely better link (milliseconds).
    #[serde(default = "default_min_dwell_ms")]
    pub min_dwell_ms: u64,
    /// A link without a Router Advertisement for this long is no longer usable (milliseconds).
    #[serde(default = "default_ra_timeout_ms")]
    pub ra_timeout_ms: u64,
    /// Time constant of the moving average of each link's quality readings (milliseconds;
    /// 0 scores the raw reading).
    #[serde(default = "default_time_constant_ms")]
    pub quality_time_constant_ms: u64,
    /// Smoothed quality below which a link is degrading (the best candidate is prepared)...
    #[serde(default = "default_degrading_below")]
    pub degrading_below: u8,
    /// ...and at or above which it is stable again.
    #[serde(default = "default_stable_from")]
    pub stable_from: u8,
    /// Smoothed quality below which a link is unusable (left at once for any usable link)...
    #[serde(default = "default_unusable_below")]
    pub unusable_below: u8,
    /// ...and at or above which it is usable (degrading) again.
    #[serde(default = "default_usable_from")]
    pub usable_from: u8,
    /// Between RS/RA probes of each link's router (milliseconds; 0: no probes). Above the
    /// routers' 3 s minimum between advertisements (RFC 4861 MIN_DELAY_BETWEEN_RAS), or
    /// probes count as lost when the answer is rate-limited.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Score points taken off at 100 % probe loss (proportionally below; 0: measure only).
    #[serde(default)]
    pub probe_loss_penalty: u32,
    /// While the current link degrades, register with the MMA of a candidate link in another
    /// site already (a refusal, BAck 130, keeps us off that link for 30 s).
    #[serde(default)]
    pub pre_register: bool,
    /// Keep the terminal group joined (and decapsulated) on the best other link of the
    /// current site at all times, not only while the current link degrades: a move inside
    /// the site, even a sudden one, then finds its branch grafted (costs the site a second
    /// copy of the terminal's traffic).
    #[serde(default)]
    pub prepare_always: bool,
    /// While the current link degrades and no other link is up, bring the best
    /// administratively down interface up (down again if preparation stops without a move
    /// there, and at shutdown), so the prepared candidate is usable at the decision.
    #[serde(default)]
    pub prepare_link_up: bool,
}

impl Selection {
    pub fn levels(&self) -> crate::core::links::Levels {
        crate::core::links::Levels {
            time_constant_ms: self.quality_time_constant_ms,
            degrading_below: self.degrading_below,
            stable_from: self.stable_from,
            unusable_below: self.unusable_below,
            usable_from: self.usable_from,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// Make-before-break: how long the old link keeps its membership after an intra-site
    /// switch while it is still usable (milliseconds).
    #[serde(default = "default_overlap_ms")]
    pub overlap_ms: u64,
    /// Grace the previous MMA forwards to our new care-of address (seconds).
    #[serde(default = "default_grace")]
    pub forwarding_grace_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    #[serde(default = "default_protocol")]
    pub protocol: u8,
    #[serde(default = "default_decap_table")]
    pub decap_table: u32,
    #[serde(default = "default_uplink_table")]
    pub uplink_table: u32,
    /// Holds the terminal-group decapsulation route of a second link (the old link during a
    /// make-before-break overlap, or a prepared candidate): the kernel matches a multicast
    /// destination's route only on its own interface, and one table holds one route per
    /// destination.
    #[serde(default = "default_second_link_table")]
    pub second_link_table: u32,
    /// Preference of the terminal-group decapsulation rule; unicast decapsulation rules
    /// (forwarding from a previous MMA, plain MIPv6) use the next one.
    #[serde(default = "default_decap_pref")]
    pub decap_rule_pref: u32,
    #[serde(default = "default_uplink_pref")]
    pub uplink_rule_pref: u32,
    #[serde(default = "default_local_pref")]
    pub local_rule_pref: u32,
    #[serde(default = "default_nft_table")]
    pub nft_table: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics")]
    pub listen: SocketAddr,
}

fn default_group_prefix() -> Ipv6Prefix {
    // A constant /64 multicast prefix: `new` cannot fail on it.
    Ipv6Prefix::new(DEFAULT_GROUP_PREFIX, GROUP_PREFIX_LEN).unwrap_or_else(|_| unreachable!())
}
fn default_lifetime() -> Duration {
    Duration::from_secs(300)
}
fn default_preference() -> u8 {
    50
}
fn default_hysteresis() -> u32 {
    10
}
fn default_min_dwell_ms() -> u64 {
    2000
}
fn default_ra_timeout_ms() -> u64 {
    5000
}
fn default_time_constant_ms() -> u64 {
    2000
}
fn default_degrading_below() -> u8 {
    50
}
fn default_stable_from() -> u8 {
    65
}
fn default_unusable_below() -> u8 {
    20
}
fn default_usable_from() -> u8 {
    35
}
fn default_probe_interval_ms() -> u64 {
    5000
}
fn default_overlap_ms() -> u64 {
    1000
}
fn default_grace() -> u32 {
    10
}
fn default_protocol() -> u8 {
    mipcast_kernel::route::RTPROT_MIPCAST
}
fn default_decap_table() -> u32 {
    100
}
fn default_uplink_table() -> u32 {
    200
}
fn default_second_link_table() -> u32 {
    101
}
fn default_decap_pref() -> u32 {
    10
}
fn default_uplink_pref() -> u32 {
    20
}
fn default_local_pref() -> u32 {
    mipcast_kernel::route::DEFAULT_LOCAL_RULE_PREF
}
fn default_nft_table() -> String {
    "mipcast_mn".to_owned()
}
fn default_metrics() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 9643))
}
fn default_state_file() -> PathBuf {
    PathBuf::from("/var/lib/mipcast/mobile-node.state")
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            hysteresis: default_hysteresis(),
            min_dwell_ms: default_min_dwell_ms(),
            ra_timeout_ms: default_ra_timeout_ms(),
            quality_time_constant_ms: default_time_constant_ms(),
            degrading_below: default_degrading_below(),
            stable_from: default_stable_from(),
            unusable_below: default_unusable_below(),
            usable_from: default_usable_from(),
            probe_interval_ms: default_probe_interval_ms(),
            probe_loss_penalty: 0,
            pre_register: false,
            prepare_always: false,
            prepare_link_up: false,
        }
    }
}
impl Default for Handover {
    fn default() -> Self {
        Handover {
            overlap_ms: default_overlap_ms(),
            forwarding_grace_secs: default_grace(),
        }
    }
}
impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            protocol: default_protocol(),
            decap_table: default_decap_table(),
            uplink_table: default_uplink_table(),
            second_link_table: default_second_link_table(),
            decap_rule_pref: default_decap_pref(),
            uplink_rule_pref: default_uplink_pref(),
            local_rule_pref: default_local_pref(),
            nft_table: default_nft_table(),
        }
    }
}
impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics(),
        }
    }
}

fn is_global_unicast(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.is_unicast_link_local())
}

impl Validate for Config {
    fn validate(&self, v: &mut Validator) {
        if !is_global_unicast(self.home_address) {
            v.error("home_address", "must be a global unicast address");
        }
        if !is_global_unicast(self.home_agent) {
            v.error("home_agent", "must be a global unicast address");
        }
        if !self.home_prefix.contains(self.home_address) {
            v.error(
                "home_prefix",
                format!("does not contain the home address {}", self.home_address),
            );
        }
        if !self.multicast_prefix.addr().is_multicast()
            || self.multicast_prefix.prefix_len() != GROUP_PREFIX_LEN
        {
            v.error(
                "multicast_prefix",
                "must be a multicast /64 (e.g. ff35::/64)",
            );
        }
        let lifetime = self.binding_lifetime.as_secs();
        if !(4..=262_140).contains(&lifetime) {
            v.error(
                "binding_lifetime",
                "must be 4 to 262140 seconds (16-bit count of 4 s units)",
            );
        }
        let sas = &self.security_associations;
        check_spi(
            v,
            "security_associations.home_agent.spi",
            sas.home_agent.spi,
        );
        check_key_len(
            "security_associations.home_agent.key_file",
            sas.home_agent.algorithm,
            sas.home_agent.key_file.expose().len(),
            v,
        );
        for (i, m) in sas.mmas.iter().enumerate() {
            check_spi(v, &format!("security_associations.mmas[{i}].spi"), m.spi);
            check_key_len(
                &format!("security_associations.mmas[{i}].key_file"),
                m.algorithm,
                m.key_file.expose().len(),
                v,
            );
            if !is_global_unicast(m.address) {
                v.error(
                    format!("security_associations.mmas[{i}].address"),
                    "must be a global unicast address",
                );
            }
            if sas.mmas.iter().take(i).any(|e| e.address == m.address) {
                v.error(
                    format!("security_associations.mmas[{i}].address"),
                    "configured twice",
                );
            }
        }
        if let Some(d) = &sas.default_mma {
            check_spi(v, "security_associations.default_mma.spi", d.spi);
            check_key_len(
                "security_associations.default_mma.key_file",
                d.algorithm,
                d.key_file.expose().len(),
                v,
            );
        }
        if self.interfaces.is_empty() {
            v.error("interfaces", "at least one interface is needed");
        }
        for (i, ifc) in self.interfaces.iter().enumerate() {
            if ifc.name.is_empty() || ifc.name.len() > 15 {
                v.error(
                    format!("interfaces[{i}].name"),
                    "must be 1 to 15 characters",
                );
            }
            if self.interfaces.iter().take(i).any(|e| e.name == ifc.name) {
                v.error(format!("interfaces[{i}].name"), "configured twice");
            }
            if ifc.preference > 100 {
                v.error(format!("interfaces[{i}].preference"), "must be 0 to 100");
            }
            if ifc.cost > 100 {
                v.error(format!("interfaces[{i}].cost"), "must be 0 to 100");
            }
            match ifc.quality_source {
                Some(QualitySource::File) if ifc.quality_file.is_none() => v.error(
                    format!("interfaces[{i}].quality_source"),
                    "file needs the link's quality_file",
                ),
                Some(QualitySource::Control) if self.control_socket.is_none() => v.error(
                    format!("interfaces[{i}].quality_source"),
                    "control needs a control_socket",
                ),
                Some(QualitySource::Control) if ifc.quality_file.is_some() => v.error(
                    format!("interfaces[{i}].quality_file"),
                    "is not read with quality_source control",
                ),
                _ => {}
            }
        }
        if let Some(g) = &self.group_interface {
            if !self.interfaces.iter().any(|i| &i.name == g) {
                v.error(
                    "group_interface",
                    format!("{g:?} is not one of `interfaces`"),
                );
            }
        }
        let sel = &self.selection;
        if sel.stable_from < sel.degrading_below || sel.stable_from > 100 {
            v.error(
                "selection.stable_from",
                "must be between selection.degrading_below and 100",
            );
        }
        if sel.usable_from < sel.unusable_below || sel.usable_from > sel.stable_from {
            v.error(
                "selection.usable_from",
                "must be between selection.unusable_below and selection.stable_from",
            );
        }
        if sel.unusable_below > sel.degrading_below {
            v.error(
                "selection.unusable_below",
                "must not be above selection.degrading_below",
            );
        }
        if (1..1000).contains(&sel.probe_interval_ms) {
            v.error(
                "selection.probe_interval_ms",
                "must be 0 (no probes) or at least 1000",
            );
        }
        if sel.quality_time_constant_ms > 600_000 {
            v.error(
                "selection.quality_time_constant_ms",
                "must be at most 600000 (10 minutes)",
            );
        }
        if self.selection.ra_timeout_ms < 100 {
            v.error("selection.ra_timeout_ms", "must be at least 100");
        }
        let k = &self.kernel;
        if k.decap_table == k.uplink_table {
            v.error("kernel.uplink_table", "must differ from kernel.decap_table");
        }
        if k.second_link_table == k.decap_table || k.second_link_table == k.uplink_table {
            v.error(
                "kernel.second_link_table",
                "must differ from kernel.decap_table and kernel.uplink_table",
            );
        }
        for (path, t) in [
            ("kernel.decap_table", k.decap_table),
            ("kernel.uplink_table", k.uplink_table),
            ("kernel.second_link_table", k.second_link_table),
        ] {
            if t == 0 || (253..=255).contains(&t) {
                v.error(path, "must not be 0 or a reserved table (253-255)");
            }
        }
        let prefs = [k.decap_rule_pref, k.uplink_rule_pref];
        if prefs.iter().any(|p| *p == 0 || *p >= k.local_rule_pref) {
            v.error(
                "kernel.local_rule_pref",
                "must be above decap_rule_pref and uplink_rule_pref (which must not be 0)",
            );
        }
        if k.uplink_rule_pref <= k.decap_rule_pref.saturating_add(2) {
            // decap_rule_pref + 1 holds the unicast (forwarded / plain MIPv6) decap rules,
            // + 2 the second link's group rule.
            v.error(
                "kernel.uplink_rule_pref",
                "must be above decap_rule_pref + 2",
            );
        }
        if k.nft_table.is_empty() {
            v.error("kernel.nft_table", "must not be empty");
        }
    }
}

fn check_spi(v: &mut Validator, path: &str, spi: u32) {
    if spi < 256 {
        v.error(
            path,
            format!("SPI {spi} is reserved (RFC 4285 §5): use 256 or more"),
        );
    }
}
