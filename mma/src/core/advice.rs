//! Handoff advice (issue 14, document 003's "handoff advice"): the MMA tells the terminals on
//! a site link to leave it, with a reason and a time to keep off it.
//!
//! The message is a Binding Refresh Request carrying the terminal's Home Network Prefix, a
//! Replay Protection option with our clock, the Experimental option sub-type 4 (reason, avoid
//! seconds, the terminal's on-link address) and the Authentication option of the terminal's
//! own security association (the SA of its last accepted BU): only the MMA that shares the
//! key can advise, and a captured advice cannot be replayed. A terminal that does not know
//! sub-type 4 sees a Binding Refresh Request and re-registers, which is harmless.
//!
//! Triggers: the operator (`mma advise`, [`Input::Advise`](super::Input::Advise)), and load:
//! a terminal newly registered on a link that then serves more terminals than the link's
//! `advise_above` is advised to leave with reason "congestion". The terminal weighs the
//! advice: it moves only when it has another usable link.
use std::net::Ipv6Addr;

use mipcast_binding::{Binding, BindingState, Now};
use mipcast_wire::auth::Credentials;
use mipcast_wire::mh::{advice_reason, Experimental, Message, MhRepr, MobilityOption};
use mipcast_wire::prefix::prefix_contains;

use super::{Core, Event, Held, Output, Send, Terminal};

/// A site (access) link, named for operators, known by the prefix its terminals' on-link
/// addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLink {
    pub name: String,
    pub prefix: (Ipv6Addr, u8),
    /// Advise newly registered terminals to leave when more than this many are served here.
    pub advise_above: Option<usize>,
    /// Advise the heaviest terminal to leave when the terminals' multicast traffic on this
    /// link (from the MFC counters) exceeds this many bytes per second.
    pub advise_above_bps: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceConfig {
    pub links: Vec<SiteLink>,
    /// Default avoid time of an advice.
    pub avoid_secs: u16,
}

impl Default for AdviceConfig {
    fn default() -> Self {
        AdviceConfig {
            links: Vec::new(),
            avoid_secs: 30,
        }
    }
}

/// The operator's command: advise every terminal served on `prefix` to leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advise {
    pub prefix: (Ipv6Addr, u8),
    /// One of [`advice_reason`].
    pub reason: u8,
    /// None: the configured default.
    pub avoid_secs: Option<u16>,
}

/// Room for the authentication option: type, length, subtype, SPI, the longest authenticator
/// and alignment padding.
const AUTH_ROOM: usize = 2 + 1 + 4 + 16 + 8;

impl Core {
    /// Replaces the advice settings (links, thresholds, default avoid time).
    pub fn set_advice(&mut self, advice: AdviceConfig) {
        self.advice = advice;
    }

    /// The site's capacity (`admission.max_terminals`).
    pub fn set_capacity(&mut self, max_terminals: Option<usize>) {
        self.registrar.policy_mut().set_capacity(max_terminals);
    }

    pub fn advice_config(&self) -> &AdviceConfig {
        &self.advice
    }

    /// Terminals served (not forwarding) with an on-link address in `prefix`.
    pub fn served_on(&self, prefix: (Ipv6Addr, u8)) -> usize {
        self.registrar
            .cache()
            .iter()
            .filter(|b| served_on(b, prefix))
            .count()
    }

    pub(super) fn advise(&mut self, a: &Advise, now: Now) {
        let avoid = a.avoid_secs.unwrap_or(self.advice.avoid_secs);
        let targets: Vec<Binding<Terminal>> = self
            .registrar
            .cache()
            .iter()
            .filter(|b| served_on(b, a.prefix))
            .cloned()
            .collect();
        for b in &targets {
            self.send_advice(b, a.reason, avoid, "operator", now);
        }
    }

    /// After `binding` newly registered here: advise it to leave when its link is loaded
    /// above the link's threshold.
    pub(super) fn advise_if_loaded(&mut self, binding: &Binding<Terminal>, now: Now) {
        let Some(link) = self
            .advice
            .links
            .iter()
            .find(|l| prefix_contains(l.prefix.0, l.prefix.1, binding.peer))
            .cloned()
        else {
            return;
        };
        let Some(limit) = link.advise_above else {
            return;
        };
        // The new binding is not in the cache yet when the registrar reports its install.
        let served = self.served_on(link.prefix)
            + usize::from(self.registrar.cache().get(&binding.hoa).is_none());
        if served > limit {
            let avoid = self.advice.avoid_secs;
            self.send_advice(binding, advice_reason::CONGESTION, avoid, "load", now);
        }
    }

    fn send_advice(
        &mut self,
        b: &Binding<Terminal>,
        reason: u8,
        avoid_s: u16,
        trigger: &'static str,
        now: Now,
    ) {
        match self.advice_bytes(b, reason, avoid_s, now) {
            // Dropped with the acknowledgement if the registration is revoked this round.
            Ok(bytes) => {
                self.held.push(Held {
                    output: Output::Send(Send {
                        src: b.local,
                        dst: b.peer,
                        bytes,
                    }),
                    confirms: Some(b.hoa),
                });
                self.held.push(Held {
                    output: Output::Event(Event::Advised {
                        hoa: b.hoa,
                        on_link: b.peer,
                        reason,
                        avoid_s,
                        trigger,
                    }),
                    confirms: Some(b.hoa),
                });
            }
            Err(detail) => self.hold(Output::Event(Event::Dropped {
                reason: "advice_not_sent",
                detail,
            })),
        }
    }

    fn advice_bytes(
        &self,
        b: &Binding<Terminal>,
        reason: u8,
        avoid_secs: u16,
        now: Now,
    ) -> Result<Vec<u8>, String> {
        let sa = self
            .sas
            .get(b.spi)
            .ok_or_else(|| format!("no security association {} for {}", b.spi, b.hoa))?;
        let repr = MhRepr {
            message: Message::BindingRefreshRequest,
            options: vec![
                MobilityOption::HomeNetworkPrefix {
                    prefix_len: 128,
                    prefix: b.hoa,
                },
                MobilityOption::ReplayProtection {
                    timestamp: now.wall_ntp,
                },
                MobilityOption::Experimental(Experimental::HandoffAdvice {
                    reason,
                    avoid_secs,
                    link_address: b.peer,
                }),
            ],
        };
        let creds = Credentials {
            spi: sa.spi,
            algorithm: sa.algorithm,
            key: &sa.key,
        };
        let mut buf = vec![0; repr.buffer_len() + AUTH_ROOM];
        let n = repr
            .emit_authenticated(&mut buf, &creds, &b.peer, &b.hoa)
            .map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok(buf)
    }
}

impl Core {
    /// New counter readings: per-link rates; a link above its `advise_above_bps` has its
    /// heaviest terminal advised to leave (congestion), at most once per avoid period.
    pub(super) fn on_counters(&mut self, counters: &[(Ipv6Addr, u64)], now: Now) {
        let mut rates: std::collections::HashMap<Ipv6Addr, u64> = Default::default();
        for &(group, bytes) in counters {
            if let Some((prev, at)) = self.group_bytes.insert(group, (bytes, now.mono)) {
                let ms = now.mono.0.saturating_sub(at.0);
                // A counter that went back restarted (entry re-created): no rate this time.
                if ms > 0 && bytes >= prev {
                    rates.insert(group, (bytes - prev).saturating_mul(1000) / ms);
                }
            }
        }
        let known: std::collections::HashSet<Ipv6Addr> = counters.iter().map(|(g, _)| *g).collect();
        self.group_bytes.retain(|g, _| known.contains(g));
        let links = self.advice.links.clone();
        for link in links {
            let Some(limit) = link.advise_above_bps else {
                continue;
            };
            let on_link: Vec<(u64, Binding<Terminal>)> = self
                .registrar
                .cache()
                .iter()
                .filter(|b| served_on(b, link.prefix))
                .map(|b| (rates.get(&b.payload.group).copied().unwrap_or(0), b.clone()))
                .collect();
            let total: u64 = on_link.iter().map(|(r, _)| *r).sum();
            let held = self
                .load_hold
                .get(&link.prefix)
                .is_some_and(|until| *until > now.mono);
            if total <= limit || held {
                continue;
            }
            let Some((_, heaviest)) = on_link.into_iter().max_by_key(|(r, _)| *r) else {
                continue;
            };
            let avoid = self.advice.avoid_secs;
            self.load_hold.insert(
                link.prefix,
                now.mono.plus_ms(u64::from(avoid).saturating_mul(1000)),
            );
            self.send_advice(&heaviest, advice_reason::CONGESTION, avoid, "load", now);
        }
    }
}

fn served_on(b: &Binding<Terminal>, prefix: (Ipv6Addr, u8)) -> bool {
    b.state == BindingState::Active
        && b.payload.forward_to.is_none()
        && prefix_contains(prefix.0, prefix.1, b.peer)
}
