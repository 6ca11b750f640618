//! Router advertisements on an access link (RFC 4861 §6.2, with the RFC 6275 §7.5 short
//! intervals and the RFC 5380 MAP option naming the MMA).
use std::time::Duration;

use mipcast_proto::Millis;
use mipcast_wire::nd::{MapOption, NdOption, NdRepr, PrefixInformation, RouterAdvert};

use super::rng::Rng;
use super::settings::RaSettings;

/// RFC 4861 §10: the first few RAs come faster.
const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
const MAX_INITIAL_RTR_ADVERT_INTERVAL: Duration = Duration::from_secs(16);

#[derive(Debug, Clone)]
pub struct RaIface {
    cfg: RaSettings,
    next_unsolicited: Millis,
    initial_left: u8,
    /// A solicited RA is scheduled for this time.
    solicited_at: Option<Millis>,
    last_sent: Option<Millis>,
}

/// Why an RA is sent, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaKind {
    Solicited,
    Unsolicited,
}

impl RaIface {
    /// The first RA goes out at once.
    pub fn new(cfg: RaSettings, now: Millis) -> RaIface {
        RaIface {
            cfg,
            next_unsolicited: now,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            solicited_at: None,
            last_sent: None,
        }
    }

    pub fn config(&self) -> &RaSettings {
        &self.cfg
    }

    pub fn set_config(&mut self, cfg: RaSettings) {
        self.cfg = cfg;
    }

    pub fn next_deadline(&self) -> Millis {
        self.solicited_at
            .map_or(self.next_unsolicited, |t| t.min(self.next_unsolicited))
    }

    /// A valid Router Solicitation arrived: answer within `solicited_delay_max_ms`, but not
    /// sooner than `min_delay_between_ras_ms` after the previous RA (RFC 4861 §6.2.6).
    pub fn on_solicitation(&mut self, now: Millis, rng: &mut Rng) {
        let delay = rng.up_to(Duration::from_millis(self.cfg.solicited_delay_max_ms));
        let mut at = now + delay;
        if let Some(last) = self.last_sent {
            at = at.max(last + Duration::from_millis(self.cfg.min_delay_between_ras_ms));
        }
        if at >= self.next_unsolicited {
            return; // the periodic RA goes out first and answers it
        }
        self.solicited_at = Some(self.solicited_at.map_or(at, |t| t.min(at)));
    }

    /// If an RA is due, returns it and schedules the next one.
    pub fn poll(
        &mut self,
        now: Millis,
        mac: Option<[u8; 6]>,
        rng: &mut Rng,
    ) -> Option<(RaKind, NdRepr)> {
        let kind = if self.next_unsolicited <= now {
            RaKind::Unsolicited
        } else if self.solicited_at.is_some_and(|t| t <= now) {
            RaKind::Solicited
        } else {
            return None;
        };
        self.solicited_at = None;
        self.last_sent = Some(now);
        let mut interval = rng.between(
            Duration::from_millis(self.cfg.min_interval_ms()),
            Duration::from_millis(self.cfg.max_interval_ms),
        );
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.next_unsolicited = now + interval;
        Some((kind, self.advert(mac, self.cfg.router_lifetime_secs)))
    }

    /// The advertisement; `router_lifetime` 0 is the final one of RFC 4861 §6.2.5.
    pub fn advert(&self, mac: Option<[u8; 6]>, router_lifetime: u16) -> NdRepr {
        let mut options = Vec::new();
        if let Some(mac) = mac {
            options.push(NdOption::SourceLinkLayerAddress(mac));
        }
        if let Some(mtu) = self.cfg.mtu {
            options.push(NdOption::Mtu(mtu));
        }
        for p in &self.cfg.prefixes {
            options.push(NdOption::PrefixInformation(PrefixInformation {
                prefix_len: p.prefix.prefix(),
                on_link: p.on_link,
                autonomous: p.autonomous,
                valid_lifetime: p.valid_lifetime_secs,
                preferred_lifetime: p.preferred_lifetime_secs,
                prefix: p.prefix.network(),
            }));
        }
        if let Some(map) = &self.cfg.map {
            options.push(NdOption::Map(MapOption {
                distance: map.distance,
                preference: map.preference,
                rcoa: map.rcoa,
                valid_lifetime: map.valid_lifetime_secs,
                address: map.address,
            }));
        }
        NdRepr::RouterAdvert(RouterAdvert {
            cur_hop_limit: self.cfg.cur_hop_limit,
            managed: false,
            other: false,
            router_lifetime,
            reachable_time: 0,
            retrans_timer: 0,
            options,
        })
    }
}
