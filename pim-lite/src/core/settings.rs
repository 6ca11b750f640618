//! What the core needs to know of the configuration, as plain values.
//!
//! The shell builds a [`Settings`] from the YAML configuration (`crate::settings`); the
//! simulation harness builds one directly. The core never sees the configuration file's
//! types, so it compiles without the daemon crate (no tokio, netlink or HTTP).
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use ipnetwork::Ipv6Network;

/// Everything the router is told at start and on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub interfaces: Vec<InterfaceSettings>,
    /// Groups handled as source-specific (RFC 4607).
    pub ssm_groups: Vec<GroupRange>,
    pub pim: PimSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A leaf network with listeners: MLD querier and router advertisements.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRange {
    SsmAnyScope,
    Prefix(Ipv6Network),
}

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

/// RFC 3810 §9 variables for one access link.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub fast_leave: bool,
    pub max_groups: usize,
    pub max_sources_per_group: usize,
    pub max_sg: usize,
    pub reports_per_second_per_host: u32,
    pub report_burst_per_host: u32,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaSettings {
    pub max_interval_ms: u64,
    /// Defaults to a third of `max_interval_ms` (RFC 4861 §6.2.1).
    pub min_interval_ms: Option<u64>,
    pub solicited_delay_max_ms: u64,
    pub min_delay_between_ras_ms: u64,
    /// Seconds; 0 = not a default router.
    pub router_lifetime_secs: u16,
    pub cur_hop_limit: u8,
    pub mtu: Option<u32>,
    pub prefixes: Vec<RaPrefix>,
    pub map: Option<MapSettings>,
}

impl RaSettings {
    pub fn min_interval_ms(&self) -> u64 {
        self.min_interval_ms.unwrap_or(self.max_interval_ms / 3)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaPrefix {
    pub prefix: Ipv6Network,
    pub on_link: bool,
    pub autonomous: bool,
    pub valid_lifetime_secs: u32,
    pub preferred_lifetime_secs: u32,
}

/// The RFC 5380 MAP option announcing the site's MMA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSettings {
    pub address: Ipv6Addr,
    pub distance: u8,
    pub preference: u8,
    pub rcoa: bool,
    pub valid_lifetime_secs: u32,
}

/// RFC 7761 §4.11 timers and our Hello contents.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub override_interval_ms: u64,
    pub propagation_delay_ms: u64,
    pub rpf_check_interval_secs: u64,
    pub assert_metric_preference: u32,
    pub assert_metric: u32,
    pub assert_time_secs: u64,
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
