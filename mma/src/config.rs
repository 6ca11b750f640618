//! `mma.yaml`: what the MMA serves, whom it trusts, and where its kernel state lives.
use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use mipcast_daemon::config::ratelimit::RateLimitConfig;
use mipcast_daemon::config::sa::{self, SaConfig};
use mipcast_daemon::config::{limits, secs, Ipv6Prefix, Validate, Validator};
use mipcast_daemon::driver::ReloadDiff;
use mipcast_wire::group::{DEFAULT_GROUP_PREFIX, GROUP_PREFIX_LEN};

pub const DEFAULT_METRICS_PORT: u16 = 9642;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The MMA's own address: the care-of address handed to terminals, the destination of
    /// their Binding Updates and reverse tunnels and of the home agents' tunnels, the outer
    /// source of every tunnel the MMA originates (S of each terminal's (S,G) tree).
    pub address: Ipv6Addr,
    /// The interface the home agents' tunnels arrive on: the incoming interface of every
    /// (MMA, G) multicast forwarding entry. One only, because an MFC entry has one.
    pub wan_interface: String,
    /// Interfaces towards the site's multicast routers: the outgoing interfaces of the MFC
    /// entries. The first also carries the per-terminal encapsulation routes.
    pub site_interfaces: Vec<String>,
    /// Prefixes terminals' on-link addresses come from: BUs and reverse tunnels from elsewhere
    /// are refused.
    pub site_prefixes: Vec<Ipv6Prefix>,
    /// The terminal multicast prefix (default ff35::/64); a registered group must lie inside
    /// it. Use [`Config::group_prefix`].
    #[serde(default, rename = "group_prefix")]
    pub group_prefix_setting: Option<Ipv6Prefix>,
    /// Home agents allowed to tunnel to us, and the home prefixes each serves: a terminal's
    /// reverse tunnel goes to the home agent whose prefix holds its home address.
    pub home_agents: Vec<HomeAgent>,
    pub security_associations: Vec<SaConfig>,
    #[serde(default)]
    pub registration: Registration,
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Replies to refused messages (BAck >= 128, Binding Error), as for the home agent.
    #[serde(default)]
    pub reply_rate_limit: RateLimitConfig,
    #[serde(default)]
    pub kernel: KernelConfig,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub state: State,
    /// Handoff advice to terminals (issue 14).
    #[serde(default)]
    pub advice: Advice,
    #[serde(default)]
    pub admission: Admission,
    /// Peer MMAs (other sites) this MMA exchanges terminal contexts with after inter-site
    /// moves (issue 12 §3), each with its own RFC 4285 security association.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Binding updates to correspondents (issue 12); absent: off.
    #[serde(default)]
    pub route_optimisation: Option<crate::ro_shell::RoSettings>,
}

/// One `peers` entry: a peer MMA's address and the MMA–MMA security association (the same
/// SPI, algorithm and key on both MMAs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub address: Ipv6Addr,
    pub spi: u32,
    pub algorithm: sa::SaAlgorithm,
    /// Read (and permission-checked) while the config loads; make it with `mma keygen`.
    pub key_file: mipcast_daemon::config::SecretKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Advice {
    /// Unix socket `mma advise` talks to (none: no operator advice).
    pub control_socket: Option<PathBuf>,
    /// How long an advised terminal keeps off the link unless told otherwise (seconds).
    pub avoid_secs: u16,
    /// Site access links by name, for `mma advise --link NAME` and the load trigger.
    pub links: Vec<AdviceLink>,
}

impl Default for Advice {
    fn default() -> Self {
        Advice {
            control_socket: None,
            avoid_secs: 30,
            links: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdviceLink {
    pub name: String,
    /// The prefix the terminals' on-link addresses on this link come from.
    pub prefix: Ipv6Prefix,
    /// Load threshold: a terminal newly registered here while more than this many terminals
    /// are served on the link is advised to leave (reason congestion).
    #[serde(default)]
    pub advise_above: Option<usize>,
    /// Load trigger on traffic: when the terminals' multicast traffic on this link (the MMA's
    /// (MMA, G) counters, read every metrics.mfc_poll) exceeds this many bytes per second,
    /// the heaviest terminal is advised to leave (congestion), once per avoid_secs.
    #[serde(default)]
    pub advise_above_bps: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admission {
    /// Terminals the site serves at most; new ones beyond are refused with BAck 130 (how a
    /// terminal's "request handoff" is answered). None: no limit.
    pub max_terminals: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAgent {
    pub address: Ipv6Addr,
    pub home_prefixes: Vec<Ipv6Prefix>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    /// Longest registration lifetime granted (seconds).
    #[serde(with = "secs")]
    pub max_lifetime: Duration,
    /// RFC 4285 timestamp window either side of our clock (seconds).
    #[serde(with = "secs")]
    pub replay_window: Duration,
    /// When to send the Binding Refresh Request, in percent of the lifetime.
    pub refresh_percent: u8,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            max_lifetime: Duration::from_secs(3600),
            replay_window: Duration::from_secs(7),
            refresh_percent: 80,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forwarding {
    /// Grace period used when a forwarding request asks for 0 seconds (seconds).
    #[serde(with = "secs")]
    pub default_grace: Duration,
    /// Longest grace period granted; longer requests are refused with status 130 (seconds).
    #[serde(with = "secs")]
    pub max_grace: Duration,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            default_grace: Duration::from_secs(10),
            max_grace: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    /// Routing-protocol number tagging our routes and rules.
    pub protocol: u8,
    /// MRT6 table for our (MMA, G) entries; absent = the kernel's default table. Another
    /// table is reached through an `ip -6 mrule iif <wan_interface>` the MMA installs.
    pub mrt6_table: Option<u32>,
    /// Priority of that mrule (when `mrt6_table` is set).
    pub mrule_pref: u32,
    /// Table holding the decapsulation route for tunnels from home agents (inner lookup: main).
    pub ha_decap_table: u32,
    /// Table holding the decapsulation route for reverse tunnels from the site.
    pub site_decap_table: u32,
    /// Table of the per-terminal source-specific uplink routes.
    pub uplink_table: u32,
    /// Priority of the `from <home agent> to <MMA> ipproto 41` rules.
    pub ha_rule_pref: u32,
    /// Priority of the `from <site prefix> to <MMA> ipproto 41` rules.
    pub site_rule_pref: u32,
    /// Where the `lookup local` rule moves to (must be above both rule priorities).
    pub local_rule_pref: u32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            protocol: mipcast_kernel::route::RTPROT_MIPCAST,
            mrt6_table: None,
            mrule_pref: 100,
            ha_decap_table: 100,
            site_decap_table: 101,
            uplink_table: 102,
            ha_rule_pref: 10,
            site_rule_pref: 20,
            local_rule_pref: mipcast_kernel::route::DEFAULT_LOCAL_RULE_PREF,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    pub listen: SocketAddr,
    /// How often the per-(S,G) MFC counters are read from the kernel (seconds; 0 = never).
    #[serde(with = "secs")]
    pub mfc_poll: Duration,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: SocketAddr::from((Ipv6Addr::LOCALHOST, DEFAULT_METRICS_PORT)),
            mfc_poll: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    /// Registrations survive restarts here.
    pub file: PathBuf,
    /// Changes are written at most this often (milliseconds): a burst of registrations is
    /// one write.
    pub write_delay_ms: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            file: PathBuf::from("/var/lib/mipcast/mma.json"),
            write_delay_ms: 1000,
        }
    }
}

fn is_global_unicast(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.is_unicast_link_local())
}

impl Validate for Config {
    fn validate(&self, v: &mut Validator) {
        self.reply_rate_limit.validate("reply_rate_limit", v);
        if let Some(ro) = &self.route_optimisation {
            ro.validate("route_optimisation", v);
        }
        if !is_global_unicast(self.address) {
            v.error("address", "must be a global unicast address");
        }
        if self.site_interfaces.is_empty() {
            v.error("site_interfaces", "at least one site interface is needed");
        }
        if self.site_interfaces.contains(&self.wan_interface) {
            v.error("wan_interface", "must not also be a site interface");
        }
        let mut seen = BTreeSet::new();
        for (i, name) in self.site_interfaces.iter().enumerate() {
            if !seen.insert(name) {
                v.error(format!("site_interfaces[{i}]"), "listed twice");
            }
        }
        if self.site_interfaces.len() + 1 > mipcast_kernel::mrt6::MAX_MIFS {
            v.error(
                "site_interfaces",
                "more interfaces than MRT6 has MIFs (32 with the WAN one)",
            );
        }
        if self.site_prefixes.is_empty() {
            v.error("site_prefixes", "at least one site prefix is needed");
        }
        for (i, p) in self.site_prefixes.iter().enumerate() {
            if p.addr().is_multicast() {
                v.error(format!("site_prefixes[{i}]"), "must be a unicast prefix");
            }
            if p.contains(self.address) {
                v.error(
                    format!("site_prefixes[{i}]"),
                    "contains the MMA address: terminals and the MMA must be told apart",
                );
            }
        }
        let (group, len) = self.group_prefix();
        if !group.is_multicast() || len != GROUP_PREFIX_LEN {
            v.error("group_prefix", "must be a multicast /64 (e.g. ff35::/64)");
        }
        if self.home_agents.is_empty() {
            v.error("home_agents", "at least one home agent is needed");
        }
        for (i, ha) in self.home_agents.iter().enumerate() {
            if !is_global_unicast(ha.address) {
                v.error(
                    format!("home_agents[{i}].address"),
                    "must be a global unicast address",
                );
            }
            if ha.home_prefixes.is_empty() {
                v.error(
                    format!("home_agents[{i}].home_prefixes"),
                    "at least one home prefix is needed",
                );
            }
            if self
                .home_agents
                .iter()
                .take(i)
                .any(|h| h.address == ha.address)
            {
                v.error(format!("home_agents[{i}].address"), "listed twice");
            }
            for (j, p) in ha.home_prefixes.iter().enumerate() {
                limits::check_not_everything(&format!("home_agents[{i}].home_prefixes[{j}]"), p, v);
                let overlap = self
                    .home_agents
                    .iter()
                    .take(i)
                    .flat_map(|h| &h.home_prefixes)
                    .any(|q| q.contains(p.addr()) || p.contains(q.addr()));
                if overlap {
                    v.error(
                        format!("home_agents[{i}].home_prefixes[{j}]"),
                        "overlaps another home agent's prefix: the uplink target would be ambiguous",
                    );
                }
            }
        }
        sa::validate_sas("security_associations", &self.security_associations, v);
        let r = &self.registration;
        if r.max_lifetime.as_secs() < 4 || r.max_lifetime.as_secs() > 4 * u64::from(u16::MAX) {
            v.error(
                "registration.max_lifetime",
                "must be between 4 and 262140 seconds",
            );
        }
        limits::check_replay_window("registration.replay_window", r.replay_window, v);
        limits::check_state_path("state.file", &self.state.file, v);
        if !(1..=99).contains(&r.refresh_percent) {
            v.error("registration.refresh_percent", "must be between 1 and 99");
        }
        let f = &self.forwarding;
        if f.default_grace > f.max_grace {
            v.error(
                "forwarding.default_grace",
                "is longer than forwarding.max_grace",
            );
        }
        if f.max_grace.as_secs() > u64::from(u32::MAX) {
            v.error("forwarding.max_grace", "too long");
        }
        let k = &self.kernel;
        let tables = [k.ha_decap_table, k.site_decap_table, k.uplink_table];
        for (name, t) in ["ha_decap_table", "site_decap_table", "uplink_table"]
            .iter()
            .zip(tables)
        {
            if t == 0 || (253..=255).contains(&t) {
                v.error(
                    format!("kernel.{name}"),
                    "must be a table of our own (not 0, 253, 254, 255)",
                );
            }
        }
        if tables.iter().collect::<BTreeSet<_>>().len() != tables.len() {
            v.error(
                "kernel",
                "ha_decap_table, site_decap_table and uplink_table must differ",
            );
        }
        if k.ha_rule_pref == k.site_rule_pref {
            v.error(
                "kernel.site_rule_pref",
                "must differ from kernel.ha_rule_pref",
            );
        }
        if k.local_rule_pref <= k.ha_rule_pref.max(k.site_rule_pref) {
            v.error(
                "kernel.local_rule_pref",
                "must be above both decapsulation rule priorities",
            );
        }
        if k.mrt6_table == Some(0) {
            v.error("kernel.mrt6_table", "must not be 0");
        }
        if self.advice.avoid_secs == 0 {
            v.error("advice.avoid_secs", "must be positive");
        }
        self.validate_peers(v);
        for (i, l) in self.advice.links.iter().enumerate() {
            if self.advice.links.iter().take(i).any(|o| o.name == l.name) {
                v.error(format!("advice.links[{i}].name"), "listed twice");
            }
            if !self
                .site_prefixes
                .iter()
                .any(|p| p.contains(l.prefix.addr()))
            {
                v.error(
                    format!("advice.links[{i}].prefix"),
                    "is not inside any of site_prefixes",
                );
            }
        }
    }
}

impl Config {
    /// What a SIGHUP's configuration changes: the addresses, interfaces, registration,
    /// kernel, metrics, state, control socket and route optimisation need a restart.
    pub fn reload_diff(&self, new: &Config) -> ReloadDiff {
        let old = self;
        ReloadDiff::default()
            .restart("address", old.address != new.address)
            .restart("wan_interface", old.wan_interface != new.wan_interface)
            .restart(
                "site_interfaces",
                old.site_interfaces != new.site_interfaces,
            )
            .restart("registration", old.registration != new.registration)
            .restart("kernel", old.kernel != new.kernel)
            .restart("metrics", old.metrics != new.metrics)
            .restart("state", old.state != new.state)
            .restart(
                "advice.control_socket",
                old.advice.control_socket != new.advice.control_socket,
            )
            .restart(
                "route_optimisation",
                old.route_optimisation != new.route_optimisation,
            )
            .live("site_prefixes", old.site_prefixes != new.site_prefixes)
            .live("group_prefix", old.group_prefix() != new.group_prefix())
            .live("home_agents", old.home_agents != new.home_agents)
            .live("forwarding", old.forwarding != new.forwarding)
            .live(
                "reply_rate_limit",
                old.reply_rate_limit != new.reply_rate_limit,
            )
            // Keys are re-read from their files.
            .live("security_associations", true)
            .live("advice", old.advice != new.advice)
            .live("admission", old.admission != new.admission)
            .live("peers", old.peers != new.peers)
    }

    fn validate_peers(&self, v: &mut Validator) {
        for (i, peer) in self.peers.iter().enumerate() {
            let at = |f: &str| format!("peers[{i}].{f}");
            if !is_global_unicast(peer.address) {
                v.error(at("address"), "must be a global unicast address");
            }
            if peer.address == self.address {
                v.error(at("address"), "is this MMA's own address");
            }
            if self.peers.iter().take(i).any(|p| p.address == peer.address) {
                v.error(at("address"), "listed twice");
            }
            if peer.spi < 256 {
                v.error(
                    at("spi"),
                    "SPIs 0-255 are reserved (RFC 4285 §5): use 256 or more",
                );
            }
            if self.security_associations.iter().any(|s| s.spi == peer.spi) {
                v.error(
                    at("spi"),
                    "is also a terminal's security association: give MMA peers their own SPIs",
                );
            }
            sa::check_key_len(
                &at("key_file"),
                peer.algorithm,
                peer.key_file.expose().len(),
                v,
            );
        }
    }

    /// The terminal multicast prefix as (address, length).
    pub fn group_prefix(&self) -> (Ipv6Addr, u8) {
        self.group_prefix_setting
            .map_or((DEFAULT_GROUP_PREFIX, GROUP_PREFIX_LEN), |p| {
                (p.addr(), p.prefix_len())
            })
    }

    /// The home agent serving `hoa`, if any.
    pub fn home_agent_of(&self, hoa: Ipv6Addr) -> Option<Ipv6Addr> {
        home_agent_of(&self.home_agents, hoa)
    }
}

pub fn home_agent_of(home_agents: &[HomeAgent], hoa: Ipv6Addr) -> Option<Ipv6Addr> {
    home_agents
        .iter()
        .find(|ha| ha.home_prefixes.iter().any(|p| p.contains(hoa)))
        .map(|ha| ha.address)
}
