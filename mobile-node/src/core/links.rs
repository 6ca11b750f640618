//! Access links: what their routers advertise, and which one to use.
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_wire::group::eui64_from_mac;
use mipcast_wire::nd::{NdOption, RouterAdvert};
use serde::Serialize;

/// Static facts and policy inputs of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    pub ifindex: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub preference: u8,
    pub cost: u8,
}

/// What the last Router Advertisement on a link said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouterInfo {
    /// Link-local address of the router.
    pub router: Ipv6Addr,
    #[serde(skip)]
    pub last_seen: Millis,
    /// Autonomous /64 prefix we form our on-link address from.
    pub slaac_prefix: Option<Ipv6Addr>,
    /// Every advertised prefix (address, length), to recognise the home link.
    pub prefixes: Vec<(Ipv6Addr, u8)>,
    /// The MMA of the MAP option (preference above 0), if any.
    pub mma: Option<Ipv6Addr>,
}

impl RouterInfo {
    pub fn from_advert(router: Ipv6Addr, ra: &RouterAdvert, now: Millis) -> RouterInfo {
        let mut prefixes = Vec::new();
        let mut slaac_prefix = None;
        let mut mma: Option<(u8, Ipv6Addr)> = None;
        for opt in &ra.options {
            match opt {
                NdOption::PrefixInformation(pi) if pi.valid_lifetime > 0 => {
                    prefixes.push((pi.prefix, pi.prefix_len));
                    if pi.autonomous && pi.prefix_len == 64 && slaac_prefix.is_none() {
                        slaac_prefix = Some(pi.prefix);
                    }
                }
                // The most preferred MAP; preference 0 means "do not use" (RFC 5380 §4).
                NdOption::Map(m)
                    if m.preference > 0
                        && m.valid_lifetime > 0
                        && mma.is_none_or(|(p, _)| m.preference > p) =>
                {
                    mma = Some((m.preference, m.address));
                }
                _ => {}
            }
        }
        RouterInfo {
            router,
            last_seen: now,
            slaac_prefix,
            prefixes,
            mma: mma.map(|(_, a)| a),
        }
    }

    /// Same router, prefixes and MMA: a refresh, not a movement.
    pub fn same_attachment(&self, other: &RouterInfo) -> bool {
        self.router == other.router
            && self.slaac_prefix == other.slaac_prefix
            && self.mma == other.mma
            && self.prefixes == other.prefixes
    }
}

/// One interface's live state.
#[derive(Clone, Debug)]
pub struct Link {
    pub cfg: LinkConfig,
    pub up: bool,
    pub quality: Option<u8>,
    pub ra: Option<RouterInfo>,
    /// Router solicitations sent since the link came up without an answer.
    pub rs_sent: u8,
    pub rs_next: Option<Millis>,
}

impl Link {
    pub fn new(cfg: LinkConfig) -> Link {
        Link {
            cfg,
            up: false,
            quality: None,
            ra: None,
            rs_sent: 0,
            rs_next: None,
        }
    }

    /// SLAAC-style on-link address: the advertised /64 followed by our EUI-64.
    pub fn onlink_address(&self) -> Option<Ipv6Addr> {
        let prefix = self.ra.as_ref()?.slaac_prefix?;
        Some(slaac(prefix, self.cfg.mac))
    }

    fn ra_fresh(&self, now: Millis, ra_timeout_ms: u64) -> Option<&RouterInfo> {
        self.ra
            .as_ref()
            .filter(|r| now.0 < r.last_seen.0.saturating_add(ra_timeout_ms))
    }

    /// The link's score, or None when it cannot carry us (down, no fresh RA, quality 0).
    pub fn score(&self, now: Millis, ra_timeout_ms: u64) -> Option<i64> {
        if !self.up || self.quality == Some(0) {
            return None;
        }
        let ra = self.ra_fresh(now, ra_timeout_ms)?;
        // An ageing RA costs up to 10 points: a router that went quiet loses ties first.
        let age = i64::try_from(now.0.saturating_sub(ra.last_seen.0)).unwrap_or(i64::MAX);
        let age_penalty =
            age.saturating_mul(10) / i64::try_from(ra_timeout_ms.max(1)).unwrap_or(i64::MAX);
        Some(
            i64::from(self.cfg.preference) + i64::from(self.quality.unwrap_or(100))
                - i64::from(self.cfg.cost)
                - age_penalty,
        )
    }
}

pub fn slaac(prefix: Ipv6Addr, mac: [u8; 6]) -> Ipv6Addr {
    let p = prefix.octets();
    let iid = eui64_from_mac(mac);
    let mut a = [0u8; 16];
    for (i, b) in a.iter_mut().enumerate() {
        *b = if i < 8 {
            p.get(i).copied().unwrap_or(0)
        } else {
            iid.get(i - 8).copied().unwrap_or(0)
        };
    }
    Ipv6Addr::from(a)
}

/// Selection policy parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub hysteresis: u32,
    pub min_dwell_ms: u64,
    pub ra_timeout_ms: u64,
}

/// The outcome of one selection round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No usable link at all.
    None,
    Stay(u32),
    Switch {
        from: Option<u32>,
        to: u32,
    },
    /// A better link exists but not by the hysteresis margin.
    HeldByHysteresis {
        current: u32,
        candidate: u32,
    },
    /// A better link exists but we have not been on the current one for the dwell time.
    HeldByDwell {
        current: u32,
        candidate: u32,
    },
}

impl Decision {
    pub fn label(&self) -> &'static str {
        match self {
            Decision::None => "no_link",
            Decision::Stay(_) => "stay",
            Decision::Switch { .. } => "switch",
            Decision::HeldByHysteresis { .. } => "held_hysteresis",
            Decision::HeldByDwell { .. } => "held_dwell",
        }
    }
}

/// Picks the link to use. The current link is kept unless it became unusable, or another beats
/// it by `hysteresis` points after `min_dwell_ms` on the current one.
pub fn select(
    links: &[Link],
    current: Option<u32>,
    since: Millis,
    now: Millis,
    p: &Policy,
) -> Decision {
    let scored: Vec<(u32, i64)> = links
        .iter()
        .filter_map(|l| l.score(now, p.ra_timeout_ms).map(|s| (l.cfg.ifindex, s)))
        .collect();
    // Highest score; on a tie the interface listed first in the config.
    let best = scored
        .iter()
        .fold(None::<(u32, i64)>, |acc, &(i, s)| match acc {
            Some((_, bs)) if bs >= s => acc,
            _ => Some((i, s)),
        });
    let current_score = current.and_then(|c| scored.iter().find(|(i, _)| *i == c).map(|(_, s)| *s));
    match (best, current, current_score) {
        (None, _, _) => Decision::None,
        (Some((b, _)), cur, None) => Decision::Switch { from: cur, to: b },
        (Some((b, bs)), Some(c), Some(cs)) => {
            if b == c || bs <= cs {
                Decision::Stay(c)
            } else if bs < cs.saturating_add(i64::from(p.hysteresis)) {
                Decision::HeldByHysteresis {
                    current: c,
                    candidate: b,
                }
            } else if now.0 < since.0.saturating_add(p.min_dwell_ms) {
                Decision::HeldByDwell {
                    current: c,
                    candidate: b,
                }
            } else {
                Decision::Switch {
                    from: Some(c),
                    to: b,
                }
            }
        }
        (Some((b, _)), None, Some(_)) => Decision::Switch { from: None, to: b },
    }
}
