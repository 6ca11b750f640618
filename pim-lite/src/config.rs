//! The YAML configuration (`configs/pim-lite.yaml` is the commented example).
//!
//! Timer fields carry their unit in the name (`_secs`, `_ms`); defaults are the RFC 3810
//! (MLDv2), RFC 7761 (PIM) and RFC 4861 (ND) protocol constants.
use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;

use mipcast_daemon::config::{Ipv6Prefix, Validate, Validator};
use mipcast_kernel::mrt6::{DEFAULT_TABLE, MAX_MIFS};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub interfaces: Vec<InterfaceConfig>,
    /// Groups handled as source-specific (RFC 4607): MLDv1 reports and EXCLUDE records for
    /// them are ignored (RFC 4604 §2.2).
    #[serde(default = "default_ssm_groups")]
    pub ssm_groups: Vec<GroupRange>,
    #[serde(default)]
    pub pim: PimConfig,
    #[serde(default)]
    pub mrt6: Mrt6Config,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A leaf network with listeners: MLD querier and router advertisements, plus PIM
    /// Hellos (unless `pim: false`) so that routers sharing the link elect one DR.
    Access,
    /// A link toward other routers (or toward a source): PIM Hellos and Join/Prune.
    Core,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Access => "access",
            Role::Core => "core",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    pub role: Role,
    /// MLD querier settings (access interfaces only).
    pub mld: Option<MldConfig>,
    /// Router advertisement contents (access interfaces only).
    pub ra: Option<RaConfig>,
    /// Access interfaces: send and hear PIM Hellos, so that of several routers on the link
    /// only the elected DR (RFC 7761 §4.3.2) builds trees for its listeners, and Asserts
    /// settle duplicate forwarders. `false`: no PIM on the link, we always act as its DR.
    /// Core interfaces always run PIM.
    #[serde(default = "yes")]
    pub pim: bool,
}

impl InterfaceConfig {
    pub fn mld(&self) -> MldConfig {
        self.mld.clone().unwrap_or_default()
    }
}

/// RFC 3810 §9 variables for one access link (the core reads them as
/// [`crate::core::settings::MldSettings`], with the derived timers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MldConfig {
    pub robustness: u8,
    pub query_interval_secs: u64,
    pub query_response_interval_ms: u64,
    pub last_listener_query_interval_ms: u64,
    /// Defaults to `robustness`.
    pub last_listener_query_count: Option<u8>,
    /// Defaults to a quarter of the query interval.
    pub startup_query_interval_secs: Option<u64>,
    /// Defaults to `robustness`.
    pub startup_query_count: Option<u8>,
    /// Drop a source as soon as its last listener reports it gone, without a
    /// multicast-address-and-source-specific query (right for one listener per link).
    pub fast_leave: bool,
    /// Caps on what the hosts of one link can make us keep: groups with listeners, sources
    /// per group and (S,G) pairs in all. Reports beyond are counted
    /// (`pim_lite_mld_ignored_total{reason="..._limit"}`) and dropped.
    pub max_groups: usize,
    pub max_sources_per_group: usize,
    pub max_sg: usize,
    /// MLD reports taken from one host (source address) per second and at once; the rest
    /// are counted and dropped before any parsing of their records.
    pub reports_per_second_per_host: u32,
    pub report_burst_per_host: u32,
}

impl Default for MldConfig {
    fn default() -> Self {
        MldConfig {
            robustness: 2,
            query_interval_secs: 125,
            query_response_interval_ms: 10_000,
            last_listener_query_interval_ms: 1_000,
            last_listener_query_count: None,
            startup_query_interval_secs: None,
            startup_query_count: None,
            fast_leave: false,
            max_groups: 1024,
            max_sources_per_group: 64,
            max_sg: 4096,
            reports_per_second_per_host: 50,
            report_burst_per_host: 100,
        }
    }
}

/// What an access router announces (RFC 4861 §6.2.1, RFC 5380 §4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaConfig {
    #[serde(default = "default_ra_max_interval_ms")]
    pub max_interval_ms: u64,
    /// Defaults to a third of `max_interval_ms` (RFC 4861 §6.2.1).
    pub min_interval_ms: Option<u64>,
    /// Upper bound of the random delay before answering a Router Solicitation. RFC 4861 says
    /// 500 ms; movement detection wants it small.
    #[serde(default = "default_solicited_delay_max_ms")]
    pub solicited_delay_max_ms: u64,
    /// Minimum gap between two multicast RAs (RFC 6275 §7.5 allows 30 ms for mobility).
    #[serde(default = "default_min_delay_between_ras_ms")]
    pub min_delay_between_ras_ms: u64,
    /// Seconds; 0 = not a default router.
    #[serde(default = "default_router_lifetime_secs")]
    pub router_lifetime_secs: u16,
    #[serde(default = "default_cur_hop_limit")]
    pub cur_hop_limit: u8,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub prefixes: Vec<RaPrefix>,
    pub map: Option<MapConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaPrefix {
    pub prefix: Ipv6Prefix,
    #[serde(default = "yes")]
    pub on_link: bool,
    #[serde(default = "yes")]
    pub autonomous: bool,
    #[serde(default = "default_valid_lifetime_secs")]
    pub valid_lifetime_secs: u32,
    #[serde(default = "default_preferred_lifetime_secs")]
    pub preferred_lifetime_secs: u32,
}

/// The RFC 5380 MAP option announcing the site's MMA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// The MMA's global address.
    pub address: Ipv6Addr,
    /// 0..=15; 1 = the MAP is reached over this link's router.
    #[serde(default = "default_map_distance")]
    pub distance: u8,
    /// 0..=15; 15 most preferred, 0 = do not use.
    #[serde(default = "default_map_preference")]
    pub preference: u8,
    /// The R flag (form a regional CoA from the MAP prefix); mipcast terminals use the MMA
    /// address itself, so it is off by default.
    #[serde(default)]
    pub rcoa: bool,
    #[serde(default = "default_map_valid_lifetime_secs")]
    pub valid_lifetime_secs: u32,
}

/// RFC 7761 §4.11 timers and our Hello contents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PimConfig {
    pub hello_period_secs: u64,
    /// Defaults to 3.5 × the hello period.
    pub hello_holdtime_secs: Option<u16>,
    pub triggered_hello_delay_ms: u64,
    pub dr_priority: u32,
    /// t_periodic: Join refresh interval.
    pub join_prune_period_secs: u64,
    /// Defaults to 3.5 × the join/prune period.
    pub join_prune_holdtime_secs: Option<u16>,
    /// Override_Interval: a router that sees a Prune it disagrees with sends its Join within
    /// a random delay up to this.
    pub override_interval_ms: u64,
    /// Propagation_Delay: added to the override interval to give the Prune-Pending time.
    pub propagation_delay_ms: u64,
    /// How often the unicast route toward each source is looked up again (routes change).
    pub rpf_check_interval_secs: u64,
    /// Assert metric preference (RFC 7761 §4.6, the route's administrative distance; lower
    /// wins). pim-lite does not read the kernel route's origin, so one value serves every
    /// source; the defaults are pimd's.
    pub assert_metric_preference: u32,
    /// Assert metric (the route cost; lower wins; ties go to the higher address).
    pub assert_metric: u32,
    /// Assert_Time: how long an Assert loser stays silent on the link.
    pub assert_time_secs: u64,
}

impl Default for PimConfig {
    fn default() -> Self {
        PimConfig {
            hello_period_secs: 30,
            hello_holdtime_secs: None,
            triggered_hello_delay_ms: 5_000,
            dr_priority: 1,
            join_prune_period_secs: 60,
            join_prune_holdtime_secs: None,
            override_interval_ms: 2_500,
            propagation_delay_ms: 500,
            rpf_check_interval_secs: 5,
            assert_metric_preference: 101,
            assert_metric: 1024,
            assert_time_secs: 180,
        }
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

/// A range of multicast groups: a prefix, or `ff3x::/32`, the SSM range of every scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRange {
    SsmAnyScope,
    Prefix(Ipv6Prefix),
}

const SSM_ANY_SCOPE: &str = "ff3x::/32";

impl GroupRange {
    pub fn contains(&self, group: Ipv6Addr) -> bool {
        match self {
            GroupRange::SsmAnyScope => {
                let s = group.segments();
                s[0] & 0xfff0 == 0xff30 && s[1] == 0
            }
            GroupRange::Prefix(p) => p.contains(group),
        }
    }
}

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
fn default_ra_max_interval_ms() -> u64 {
    600_000
}
fn default_solicited_delay_max_ms() -> u64 {
    50
}
fn default_min_delay_between_ras_ms() -> u64 {
    30
}
fn default_router_lifetime_secs() -> u16 {
    1800
}
fn default_cur_hop_limit() -> u8 {
    64
}
fn yes() -> bool {
    true
}
fn default_valid_lifetime_secs() -> u32 {
    2_592_000
}
fn default_preferred_lifetime_secs() -> u32 {
    604_800
}
fn default_map_distance() -> u8 {
    1
}
fn default_map_preference() -> u8 {
    10
}
fn default_map_valid_lifetime_secs() -> u32 {
    1800
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

fn validate_mld(v: &mut Validator, at: &str, m: &MldConfig) {
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

fn validate_pim(v: &mut Validator, p: &PimConfig) {
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
