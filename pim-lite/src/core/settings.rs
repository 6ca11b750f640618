//! What the core needs to know of the configuration, as plain values.
//!
//! The same types are the configuration file's sections (`crate::config` embeds them; serde
//! is allowed in a core): their defaults are the RFC 3810 (MLDv2), RFC 7761 (PIM) and
//! RFC 4861 (ND) protocol constants. The shell builds a [`Settings`] from the YAML
//! configuration (`crate::settings`); the simulation harness builds one directly. Where the
//! file writes a prefix, the types are generic over it: the configuration reads a strict
//! `Ipv6Prefix` (a daemon type, with its clear errors), the core keeps an [`Ipv6Network`].
//! So the core compiles without the daemon crate (no tokio, netlink or HTTP).
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use ipnetwork::Ipv6Network;
use serde::Deserialize;

/// Everything the router is told at start and on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub interfaces: Vec<InterfaceSettings>,
    /// Groups handled as source-specific (RFC 4607).
    pub ssm_groups: Vec<GroupRange>,
    pub pim: PimSettings,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSettings {
    pub name: String,
    pub role: Role,
    /// Access interfaces: the MLD querier's variables.
    pub mld: MldSettings,
    /// Access interfaces: router advertisement contents.
    pub ra: Option<RaSettings>,
    /// Access interfaces: whether PIM runs on the link too (core interfaces always run it).
    pub pim: bool,
}

/// A range of multicast groups: a prefix, or `ff3x::/32`, the SSM range of every scope.
/// (The configuration file's spelling is parsed in `crate::config`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRange<P = Ipv6Network> {
    SsmAnyScope,
    Prefix(P),
}

impl<P: Copy + Into<Ipv6Network>> GroupRange<P> {
    pub fn contains(&self, group: Ipv6Addr) -> bool {
        match *self {
            GroupRange::SsmAnyScope => {
                let s = group.segments();
                s[0] & 0xfff0 == 0xff30 && s[1] == 0
            }
            GroupRange::Prefix(p) => p.into().contains(group),
        }
    }

    /// The range with the core's prefix type.
    pub fn network(self) -> GroupRange {
        match self {
            GroupRange::SsmAnyScope => GroupRange::SsmAnyScope,
            GroupRange::Prefix(p) => GroupRange::Prefix(p.into()),
        }
    }
}

/// RFC 3810 §9 variables for one access link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MldSettings {
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

impl Default for MldSettings {
    fn default() -> Self {
        MldSettings {
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

impl MldSettings {
    pub fn query_interval(&self) -> Duration {
        Duration::from_secs(self.query_interval_secs)
    }
    pub fn query_response_interval(&self) -> Duration {
        Duration::from_millis(self.query_response_interval_ms)
    }
    /// Multicast Address Listening Interval (§9.4): how long a report keeps a source alive.
    pub fn mali(&self) -> Duration {
        self.query_interval() * u32::from(self.robustness) + self.query_response_interval()
    }
    /// Other Querier Present Timeout (§9.5).
    pub fn other_querier_present(&self) -> Duration {
        self.query_interval() * u32::from(self.robustness) + self.query_response_interval() / 2
    }
    pub fn llqi(&self) -> Duration {
        Duration::from_millis(self.last_listener_query_interval_ms)
    }
    pub fn llqc(&self) -> u8 {
        self.last_listener_query_count.unwrap_or(self.robustness)
    }
    /// Last Listener Query Time (§9.14).
    pub fn llqt(&self) -> Duration {
        self.llqi() * u32::from(self.llqc())
    }
    pub fn startup_query_interval(&self) -> Duration {
        self.startup_query_interval_secs
            .map(Duration::from_secs)
            .unwrap_or(self.query_interval() / 4)
    }
    pub fn startup_query_count(&self) -> u8 {
        self.startup_query_count.unwrap_or(self.robustness)
    }
}

/// What an access router announces (RFC 4861 §6.2.1, RFC 5380 §4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaSettings<P = Ipv6Network> {
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
    #[serde(default = "Vec::new")]
    pub prefixes: Vec<RaPrefix<P>>,
    pub map: Option<MapSettings>,
}

impl<P> RaSettings<P> {
    pub fn min_interval_ms(&self) -> u64 {
        self.min_interval_ms.unwrap_or(self.max_interval_ms / 3)
    }
}

impl<P: Copy + Into<Ipv6Network>> RaSettings<P> {
    /// The same announcement with the core's prefix type.
    pub fn network(&self) -> RaSettings {
        RaSettings {
            max_interval_ms: self.max_interval_ms,
            min_interval_ms: self.min_interval_ms,
            solicited_delay_max_ms: self.solicited_delay_max_ms,
            min_delay_between_ras_ms: self.min_delay_between_ras_ms,
            router_lifetime_secs: self.router_lifetime_secs,
            cur_hop_limit: self.cur_hop_limit,
            mtu: self.mtu,
            prefixes: self
                .prefixes
                .iter()
                .map(|p| RaPrefix {
                    prefix: p.prefix.into(),
                    on_link: p.on_link,
                    autonomous: p.autonomous,
                    valid_lifetime_secs: p.valid_lifetime_secs,
                    preferred_lifetime_secs: p.preferred_lifetime_secs,
                })
                .collect(),
            map: self.map.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaPrefix<P = Ipv6Network> {
    pub prefix: P,
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
pub struct MapSettings {
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
pub struct PimSettings {
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

impl Default for PimSettings {
    fn default() -> Self {
        PimSettings {
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

impl PimSettings {
    pub fn hello_period(&self) -> Duration {
        Duration::from_secs(self.hello_period_secs)
    }
    pub fn hello_holdtime(&self) -> u16 {
        self.hello_holdtime_secs.unwrap_or_else(|| {
            u16::try_from(self.hello_period_secs.saturating_mul(7) / 2).unwrap_or(u16::MAX - 1)
        })
    }
    pub fn triggered_hello_delay(&self) -> Duration {
        Duration::from_millis(self.triggered_hello_delay_ms)
    }
    pub fn join_prune_period(&self) -> Duration {
        Duration::from_secs(self.join_prune_period_secs)
    }
    pub fn join_prune_holdtime(&self) -> u16 {
        self.join_prune_holdtime_secs.unwrap_or_else(|| {
            u16::try_from(self.join_prune_period_secs.saturating_mul(7) / 2).unwrap_or(u16::MAX - 1)
        })
    }
    pub fn override_interval(&self) -> Duration {
        Duration::from_millis(self.override_interval_ms)
    }
    /// J/P_Override_Interval (RFC 7761 §4.11): how long a Prune waits for an override.
    pub fn prune_pending(&self) -> Duration {
        Duration::from_millis(self.override_interval_ms + self.propagation_delay_ms)
    }
    pub fn rpf_check_interval(&self) -> Duration {
        Duration::from_secs(self.rpf_check_interval_secs)
    }
    pub fn assert_time(&self) -> Duration {
        Duration::from_secs(self.assert_time_secs)
    }
    /// The winner re-asserts this long before the losers' Assert_Time runs out
    /// (Assert_Override_Interval, RFC 7761 §4.11), bounded for short test settings.
    pub fn assert_refresh(&self) -> Duration {
        self.assert_time()
            .saturating_sub(Duration::from_secs(3))
            .max(self.assert_time() / 2)
    }
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
/// A serde default (the file's boolean switches that are on unless turned off).
pub(crate) fn yes() -> bool {
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
