//! The simulated network's addresses and each core's configuration, as the daemons'
//! configuration files would give them (same shapes as the cores' unit tests).
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use mipcast_binding::{HomeAgentPolicy, Registrar, RegistrarConfig, SaTable, SecurityAssociation};
use mipcast_proto::{KObject, TokenBucket};
use mipcast_wire::auth::Algorithm;
use mipcast_wire::nd::{MapOption, NdOption, NdRepr, PrefixInformation, RouterAdvert};
use mobile_node::core::links::{slaac, Levels, LinkConfig, Policy};
use mobile_node::core::reg::Sa;
use mobile_node::core::Mode;
use mobile_node::core::{CoreConfig, Tables};

/// Interface indexes: the same on every node (each node has its own kernel).
pub const LO_IF: u32 = 1;
/// The home agent's home link; an MMA's WAN; a terminal's first radio.
pub const IF_A: u32 = 2;
/// An MMA's site side; a terminal's second radio.
pub const IF_B: u32 = 3;
/// Radios per terminal.
pub const RADIOS: usize = 2;

pub const HA_DECAP_TABLE: u32 = 3600;
/// Wall clock of virtual time zero (ms since the Unix epoch).
pub const WALL0_MS: u64 = 1_800_000_000_000;

/// Knobs of one simulated world.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub sites: usize,
    pub links_per_site: usize,
    pub terminals: usize,
    /// Lifetime the terminals ask for.
    pub lifetime_s: u32,
    /// Forwarding grace period asked of the previous MMA.
    pub grace_s: u32,
    pub ra_interval_ms: u64,
    /// One-way latency inside a site (terminal ↔ MMA, router ↔ terminal).
    pub site_latency_ms: u64,
    /// One-way latency to or from the home agent.
    pub wan_latency_ms: u64,
    /// Make-before-break overlap of the terminal's memberships.
    pub overlap_ms: u64,
    /// How long the home agent accepts a previous care-of address's tunnel after a move
    /// (`kernel.previous_coa_accept_ms`).
    pub ha_previous_coa_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            sites: 2,
            links_per_site: 2,
            terminals: 1,
            lifetime_s: 60,
            grace_s: 4,
            ra_interval_ms: 500,
            site_latency_ms: 2,
            wan_latency_ms: 20,
            overlap_ms: 1000,
            ha_previous_coa_ms: 1000,
        }
    }
}

fn v6(segs: [u16; 8]) -> Ipv6Addr {
    Ipv6Addr::new(
        segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7],
    )
}

pub fn home_prefix() -> Ipv6Addr {
    v6([0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0])
}

pub fn ha_addr() -> Ipv6Addr {
    v6([0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 1])
}

/// The MMA of site `s` (0-based).
pub fn mma_addr(s: usize) -> Ipv6Addr {
    v6([0x2001, 0xdb8, 0xf0 + s as u16, 0, 0, 0, 0, 1])
}

/// The /64 of access link `l` of site `s`.
pub fn site_link_prefix(s: usize, l: usize) -> Ipv6Addr {
    v6([
        0x2001,
        0xdb8,
        0x100 * (s as u16 + 1) + l as u16,
        0,
        0,
        0,
        0,
        0,
    ])
}

pub fn hoa(t: usize) -> Ipv6Addr {
    v6([0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x100 + t as u16])
}

pub fn mac(t: usize, radio: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, t as u8, radio as u8 + 1]
}

/// The terminal group: ff35::/64 followed by the EUI-64 of the first radio.
pub fn group(t: usize) -> Ipv6Addr {
    slaac(v6([0xff35, 0, 0, 0, 0, 0, 0, 0]), mac(t, 0))
}

pub fn radio_ifindex(radio: usize) -> u32 {
    IF_A + radio as u32
}

/// The terminal's SLAAC address on a link with `prefix`.
pub fn onlink(t: usize, radio: usize, prefix: Ipv6Addr) -> Ipv6Addr {
    slaac(prefix, mac(t, radio))
}

/// Security association between terminal `t` and the home agent (`ha`) or the MMAs.
fn sa(t: usize, ha: bool) -> Sa {
    let spi = 1000 + 2 * t as u32 + u32::from(!ha);
    Sa {
        spi,
        algorithm: Algorithm::HmacSha256_128,
        key: format!("key-{spi}-0123456789abcdef").into_bytes(),
    }
}

fn sa_table(terminals: usize, ha: bool) -> SaTable {
    let sas: Vec<SecurityAssociation> = (0..terminals)
        .map(|t| {
            let s = sa(t, ha);
            SecurityAssociation {
                spi: s.spi,
                algorithm: s.algorithm,
                key: s.key,
                allowed: vec![(hoa(t), 128)],
            }
        })
        .collect();
    #[allow(clippy::expect_used)] // fixed, valid configuration
    SaTable::new(sas).expect("simulation SAs are valid")
}

fn registrar_config() -> RegistrarConfig {
    RegistrarConfig {
        max_lifetime_s: 3600,
        replay_window_ms: 7000,
        refresh_percent: 80,
    }
}

pub fn ha_core(cfg: &SimConfig) -> home_agent::core::Core {
    use home_agent::core::plan::{Plan, PlanParams};
    let sas = sa_table(cfg.terminals, true);
    #[allow(clippy::expect_used)]
    let registrar = Registrar::new(
        registrar_config(),
        sas.clone(),
        HomeAgentPolicy::new(vec![(home_prefix(), 64)]).expect("home prefix"),
    )
    .expect("registrar");
    let plan = Plan::new(PlanParams {
        home_ifindex: IF_A,
        ha_address: ha_addr(),
        decap_table: HA_DECAP_TABLE,
        decap_rule_pref: 10,
    })
    .with_previous_coa_window(cfg.ha_previous_coa_ms);
    home_agent::core::Core::new(registrar, sas, plan, TokenBucket::new(1000, 1000))
}

pub fn site_prefixes(cfg: &SimConfig, s: usize) -> Vec<(Ipv6Addr, u8)> {
    (0..cfg.links_per_site)
        .map(|l| (site_link_prefix(s, l), 64))
        .collect()
}

pub fn mma_plan(cfg: &SimConfig, s: usize) -> mma::core::Plan {
    mma::core::Plan {
        mma: mma_addr(s),
        wan_ifindex: IF_A,
        site_ifindex: IF_B,
        site_prefixes: site_prefixes(cfg, s),
        home_agents: vec![ha_addr()],
        ha_decap_table: 100,
        site_decap_table: 101,
        uplink_table: 102,
        ha_rule_pref: 10,
        site_rule_pref: 20,
    }
}

pub fn mma_core(cfg: &SimConfig, s: usize) -> mma::core::Core {
    let policy = mma::core::PolicyConfig {
        site_prefixes: site_prefixes(cfg, s),
        group_prefix: (v6([0xff35, 0, 0, 0, 0, 0, 0, 0]), 64),
        home_agents: vec![(ha_addr(), vec![(home_prefix(), 64)])],
        default_grace_s: 10,
        max_grace_s: 60,
    };
    #[allow(clippy::expect_used)]
    let mut core = mma::core::Core::new(
        registrar_config(),
        sa_table(cfg.terminals, false),
        policy,
        mma_plan(cfg, s),
        TokenBucket::new(1000, 1000),
    )
    .expect("MMA core");
    core.set_context(mma_context(cfg, s));
    core
}

/// Every other site's MMA is a peer for context transfer (issue 12 §3), one shared SA.
pub fn mma_context(cfg: &SimConfig, s: usize) -> mma::core::ContextConfig {
    mma::core::ContextConfig {
        peers: (0..cfg.sites)
            .filter(|o| *o != s)
            .map(|o| mma::core::context::Peer {
                address: mma_addr(o),
                spi: MMA_PEER_SPI,
                algorithm: Algorithm::HmacSha256_128,
                key: vec![0x4d; 32],
            })
            .collect(),
        replay_window_ms: 7000,
    }
}

/// SPI of the MMA–MMA security association.
pub const MMA_PEER_SPI: u32 = 5000;

pub fn mn_config(cfg: &SimConfig, t: usize) -> CoreConfig {
    CoreConfig {
        hoa: hoa(t),
        home_agent: ha_addr(),
        #[allow(clippy::expect_used)]
        home_prefix: ipnetwork::Ipv6Network::new(home_prefix(), 64).expect("/64"),
        group: group(t),
        mode: Mode::Site,
        lifetime_s: cfg.lifetime_s,
        ha_sa: sa(t, true),
        mma_sas: BTreeMap::new(),
        default_mma_sa: Some(sa(t, false)),
        links: (0..RADIOS)
            .map(|r| LinkConfig {
                ifindex: radio_ifindex(r),
                name: format!("radio{r}"),
                mac: mac(t, r),
                preference: 50,
                cost: 0,
            })
            .collect(),
        lo_ifindex: LO_IF,
        policy: Policy {
            hysteresis: 10,
            min_dwell_ms: 0,
            ra_timeout_ms: cfg.ra_interval_ms * 3 + 100,
            levels: Levels::OFF,
            probe_interval_ms: 0,
            loss_penalty: 0,
            pre_register: false,
            prepare_always: false,
            prepare_link_up: false,
        },
        overlap_ms: cfg.overlap_ms,
        grace_s: cfg.grace_s,
        tables: Tables {
            decap_table: 100,
            uplink_table: 200,
            second_link_table: 101,
            decap_pref: 10,
            uplink_pref: 20,
        },
    }
}

pub fn mn_core(cfg: &SimConfig, t: usize) -> mobile_node::core::Core {
    mobile_node::core::Core::new(mn_config(cfg, t), Default::default())
}

/// The objects the home agent's shell installs at start (its decapsulation route).
pub fn ha_constant(core: &home_agent::core::Core) -> Vec<KObject> {
    vec![core.plan().decap_route()]
}

/// A Router Advertisement with one autonomous /64 and, in a site, the MAP option naming the
/// site's MMA (the home link's has none).
pub fn router_advert(prefix: Ipv6Addr, mma: Option<Ipv6Addr>) -> Vec<u8> {
    let mut options = vec![NdOption::PrefixInformation(PrefixInformation {
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 86400,
        preferred_lifetime: 14400,
        prefix,
    })];
    if let Some(m) = mma {
        options.push(NdOption::Map(MapOption {
            distance: 1,
            preference: 10,
            rcoa: false,
            valid_lifetime: 3600,
            address: m,
        }));
    }
    let repr = NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        options,
    });
    let mut buf = vec![0; repr.buffer_len()];
    // Emitting a well-formed RA into a buffer of its own length cannot fail.
    let n = repr.emit(&mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}
