//! The YAML configuration (`configs/pim-lite.yaml` is the commented example).
//!
//! Timer fields carry their unit in the name (`_secs`, `_ms`); defaults are the RFC 3810
//! (MLDv2), RFC 7761 (PIM) and RFC 4861 (ND) protocol constants. The protocol sections
//! (`mld`, `ra`, `pim`) are the core's settings types themselves
//! ([`crate::core::settings`]); what is only the daemon's (interfaces by name, the MRT6 table,
//! metrics) and the checks are here.
use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;

use mipcast_daemon::config::{Ipv6Prefix, Validate, Validator};
use mipcast_daemon::driver::ReloadDiff;
use mipcast_kernel::mrt6::{DEFAULT_TABLE, MAX_MIFS};
use serde::{Deserialize, Deserializer};

pub use crate::core::settings::Role;
use crate::core::settings::{MldSettings, PimSettings, RaSettings};

/// A range of multicast groups as the file writes it: `ff3x::/32` or a strict prefix.
pub type GroupRange = crate::core::settings::GroupRange<Ipv6Prefix>;
/// Router advertisement contents as the file writes them (strict prefixes).
pub type RaConfig = RaSettings<Ipv6Prefix>;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub interfaces: Vec<InterfaceConfig>,
    /// Groups handled as source-specific (RFC 4607): MLDv1 reports and EXCLUDE records for
    /// them are ignored (RFC 4604 §2.2).
    #[serde(default = "default_ssm_groups")]
    pub ssm_groups: Vec<GroupRange>,
    #[serde(default)]
    pub pim: PimSettings,
    #[serde(default)]
    pub mrt6: Mrt6Config,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    pub role: Role,
    /// MLD querier settings (access interfaces only).
    pub mld: Option<MldSettings>,
    /// Router advertisement contents (access interfaces only).
    pub ra: Option<RaConfig>,
    /// Access interfaces: send and hear PIM Hellos, so that of several routers on the link
    /// only the elected DR (RFC 7761 §4.3.2) builds trees for its listeners, and Asserts
    /// settle duplicate forwarders. `false`: no PIM on the link, we always act as its DR.
    /// Core interfaces always run PIM.
    #[serde(default = "crate::core::settings::yes")]
    pub pim: bool,
}

impl Config {
    /// `mrt6` and `metrics` need a restart; interfaces, SSM ranges and PIM change in place.
    pub fn reload_diff(&self, new: &Config) -> ReloadDiff {
        let old = self;
        ReloadDiff::default()
            .restart("mrt6", new.mrt6 != old.mrt6)
            .restart("metrics", new.metrics != old.metrics)
            .live("interfaces", new.interfaces != old.interfaces)
            .live("ssm_groups", new.ssm_groups != old.ssm_groups)
            .live("pim", new.pim != old.pim)
    }
}

impl InterfaceConfig {
    pub fn mld(&self) -> MldSettings {
        self.mld.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mrt6Config {
    /// The kernel multicast routing table we own (one daemon per table).
    pub table: u32,
}

impl Default for Mrt6Config {
    fn default() -> Self {
        Mrt6Config {
            table: DEFAULT_TABLE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 9644)),
        }
    }
}

const SSM_ANY_SCOPE: &str = "ff3x::/32";

impl FromStr for GroupRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case(SSM_ANY_SCOPE) {
            return Ok(GroupRange::SsmAnyScope);
        }
        let prefix: Ipv6Prefix = text.parse().map_err(|e| format!("{e}"))?;
        if prefix.prefix_len() < 8 || !prefix.addr().is_multicast() {
            return Err(format!("{prefix} is not inside ff00::/8"));
        }
        Ok(GroupRange::Prefix(prefix))
    }
}

impl fmt::Display for GroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRange::SsmAnyScope => f.write_str(SSM_ANY_SCOPE),
            GroupRange::Prefix(p) => write!(f, "{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for GroupRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn default_ssm_groups() -> Vec<GroupRange> {
    vec![GroupRange::SsmAnyScope]
}

impl Validate for Config {
    fn validate(&self, v: &mut Validator) {
        if self.interfaces.is_empty() {
            v.error("interfaces", "at least one interface is needed");
        }
        if self.interfaces.len() > MAX_MIFS {
            v.error(
                "interfaces",
                format!(
                    "{} interfaces configured, but a kernel multicast routing table has at most \
                     {MAX_MIFS} multicast interfaces (MAXMIFS)",
                    self.interfaces.len()
                ),
            );
        }
        let mut names = BTreeSet::new();
        for (i, iface) in self.interfaces.iter().enumerate() {
            let at = format!("interfaces[{i}]");
            if iface.name.is_empty() || iface.name.len() > 15 {
                v.error(
                    format!("{at}.name"),
                    "an interface name has 1 to 15 characters",
                );
            }
            if !names.insert(iface.name.as_str()) {
                v.error(
                    format!("{at}.name"),
                    format!("{} is listed twice", iface.name),
                );
            }
            if iface.role == Role::Core {
                if iface.mld.is_some() {
                    v.error(format!("{at}.mld"), "MLD runs on access interfaces only");
                }
                if iface.ra.is_some() {
                    v.error(
                        format!("{at}.ra"),
                        "router advertisements are for access interfaces only",
                    );
                }
                if !iface.pim {
                    v.error(format!("{at}.pim"), "core interfaces always run PIM");
                }
            }
            if let Some(mld) = &iface.mld {
                validate_mld(v, &format!("{at}.mld"), mld);
            }
            if let Some(ra) = &iface.ra {
                validate_ra(v, &format!("{at}.ra"), ra);
            }
        }
        validate_pim(v, &self.pim);
        if self.mrt6.table == 0 {
            v.error(
                "mrt6.table",
                "table 0 is not a valid multicast routing table",
            );
        }
    }
}

fn validate_mld(v: &mut Validator, at: &str, m: &MldSettings) {
    if !(1..=7).contains(&m.robustness) {
        v.error(
            format!("{at}.robustness"),
            "must be 1 to 7 (3-bit QRV field)",
        );
    }
    if m.query_interval_secs == 0
        || u64::from(mipcast_wire::mld::QQI_SECS_MAX) < m.query_interval_secs
    {
        v.error(
            format!("{at}.query_interval_secs"),
            "must be 1 to 31744 (QQIC range)",
        );
    }
    let qri_max = u64::from(mipcast_wire::mld::MAX_RESPONSE_DELAY_MS_MAX);
    if m.query_response_interval_ms == 0 || m.query_response_interval_ms > qri_max {
        v.error(
            format!("{at}.query_response_interval_ms"),
            format!("must be 1 to {qri_max}"),
        );
    }
    if m.query_response_interval_ms >= m.query_interval_secs.saturating_mul(1000) {
        v.error(
            format!("{at}.query_response_interval_ms"),
            "must be shorter than the query interval (RFC 3810 §9.3)",
        );
    }
    if m.last_listener_query_interval_ms == 0 || m.last_listener_query_interval_ms > qri_max {
        v.error(
            format!("{at}.last_listener_query_interval_ms"),
            format!("must be 1 to {qri_max}"),
        );
    }
    if m.last_listener_query_count == Some(0) {
        v.error(
            format!("{at}.last_listener_query_count"),
            "must be at least 1",
        );
    }
    if m.startup_query_count == Some(0) {
        v.error(format!("{at}.startup_query_count"), "must be at least 1");
    }
    if m.startup_query_interval_secs == Some(0) {
        v.error(
            format!("{at}.startup_query_interval_secs"),
            "must be at least 1",
        );
    }
    for (name, value) in [
        ("max_groups", m.max_groups),
        ("max_sources_per_group", m.max_sources_per_group),
        ("max_sg", m.max_sg),
        (
            "reports_per_second_per_host",
            usize::try_from(m.reports_per_second_per_host).unwrap_or(usize::MAX),
        ),
        (
            "report_burst_per_host",
            usize::try_from(m.report_burst_per_host).unwrap_or(usize::MAX),
        ),
    ] {
        if value == 0 {
            v.error(format!("{at}.{name}"), "must be at least 1");
        }
    }
}

fn validate_ra(v: &mut Validator, at: &str, ra: &RaConfig) {
    if !(70..=1_800_000).contains(&ra.max_interval_ms) {
        v.error(
            format!("{at}.max_interval_ms"),
            "must be 70 to 1800000 (RFC 6275 §7.5)",
        );
    }
    if let Some(min) = ra.min_interval_ms {
        if min < 30 || min > ra.max_interval_ms.saturating_mul(3) / 4 {
            v.error(
                format!("{at}.min_interval_ms"),
                "must be 30 to 0.75 × max_interval_ms (RFC 6275 §7.5)",
            );
        }
    }
    if ra.solicited_delay_max_ms > 500 {
        v.error(
            format!("{at}.solicited_delay_max_ms"),
            "must be at most 500 (RFC 4861 MAX_RA_DELAY_TIME)",
        );
    }
    if let Some(mtu) = ra.mtu {
        if mtu < 1280 {
            v.error(format!("{at}.mtu"), "IPv6 needs an MTU of at least 1280");
        }
    }
    for (i, p) in ra.prefixes.iter().enumerate() {
        if p.preferred_lifetime_secs > p.valid_lifetime_secs {
            v.error(
                format!("{at}.prefixes[{i}].preferred_lifetime_secs"),
                "must not exceed valid_lifetime_secs",
            );
        }
        if p.prefix.addr().is_multicast() {
            v.error(
                format!("{at}.prefixes[{i}].prefix"),
                "must be a unicast prefix",
            );
        }
    }
    if let Some(map) = &ra.map {
        if map.distance > 15 {
            v.error(
                format!("{at}.map.distance"),
                "must be 0 to 15 (4-bit field)",
            );
        }
        if map.preference > 15 {
            v.error(
                format!("{at}.map.preference"),
                "must be 0 to 15 (4-bit field)",
            );
        }
        let a = map.address;
        if a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.is_unicast_link_local() {
            v.error(
                format!("{at}.map.address"),
                "must be the MMA's global unicast address",
            );
        }
    }
}

fn validate_pim(v: &mut Validator, p: &PimSettings) {
    if p.hello_period_secs == 0 || p.hello_period_secs > 18_000 {
        v.error("pim.hello_period_secs", "must be 1 to 18000");
    }
    if p.hello_holdtime_secs
        .is_some_and(|h| h == 0 || u64::from(h) <= p.hello_period_secs)
    {
        v.error(
            "pim.hello_holdtime_secs",
            "must be longer than hello_period_secs",
        );
    }
    if p.join_prune_period_secs == 0 || p.join_prune_period_secs > 18_000 {
        v.error("pim.join_prune_period_secs", "must be 1 to 18000");
    }
    if p.join_prune_holdtime_secs
        .is_some_and(|h| u64::from(h) <= p.join_prune_period_secs)
    {
        v.error(
            "pim.join_prune_holdtime_secs",
            "must be longer than join_prune_period_secs",
        );
    }
    if p.override_interval_ms == 0 || p.override_interval_ms > 65_535 {
        v.error("pim.override_interval_ms", "must be 1 to 65535");
    }
    if p.propagation_delay_ms > 0x7fff {
        v.error(
            "pim.propagation_delay_ms",
            "must be at most 32767 (15-bit field)",
        );
    }
    if p.rpf_check_interval_secs == 0 {
        v.error("pim.rpf_check_interval_secs", "must be at least 1");
    }
    if p.assert_metric_preference >= 0x7fff_ffff {
        v.error(
            "pim.assert_metric_preference",
            "must be below 2147483648 (31-bit field; the largest value means AssertCancel)",
        );
    }
    if p.assert_time_secs < 2 || p.assert_time_secs > 65_535 {
        v.error("pim.assert_time_secs", "must be 2 to 65535");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    /// A SIGHUP's file compared with the running one: RA contents and PIM timers change in
    /// place, the MRT6 table and the metrics listener wait for a restart.
    #[test]
    fn reload_diff_sorts_sections_into_live_and_restart() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pim-lite.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let load = |text: &str| {
            mipcast_daemon::config::load_str::<Config>(Path::new("p.yaml"), text).unwrap()
        };
        let running = load(&text);
        assert_eq!(running.reload_diff(&load(&text)), ReloadDiff::default());

        let tuned = text
            .replace("preference: 10", "preference: 11")
            .replace("override_interval_ms: 2500", "override_interval_ms: 3000");
        assert_ne!(tuned, text);
        let diff = running.reload_diff(&load(&tuned));
        assert_eq!(diff.changed(), ["interfaces", "pim"]);
        assert!(diff.needs_restart().is_empty(), "{diff:?}");

        let moved = text.replace("\"[::1]:9644\"", "\"[::1]:9654\"");
        assert_ne!(moved, text);
        let diff = running.reload_diff(&load(&moved));
        assert_eq!(diff.needs_restart(), ["metrics"]);
        assert!(diff.changed().is_empty(), "{diff:?}");
    }
}
