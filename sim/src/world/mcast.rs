//! The world's multicast last hop: routing MLD and PIM messages between the pim-lite routers
//! and the terminals' host MLD (see [`crate::pim`]).
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use mipcast_wire::mld::{MldRepr, RecordType};
use pim_lite::core::{Packet as PimPacket, Proto};

use super::{Delivery, Fate, McastRule, World};
use crate::pim::{self, McastFrom, McastKind, McastPacket, Peer, RouterId};
use crate::topology as topo;

/// RFC 3810 §9.11: a host spreads its retransmitted state-change reports over this.
const UNSOLICITED_REPORT_INTERVAL_MS: u64 = 1000;

impl World {
    /// Index of router `id` in [`World::routers`].
    pub fn router_index(&self, id: RouterId) -> usize {
        pim::router_index(&self.cfg, id)
    }

    pub fn router(&self, id: RouterId) -> &crate::pim::RouterNode {
        &self.routers[self.router_index(id)]
    }

    /// Applies `fate` to the next `n` MLD or PIM messages matching `matches`.
    pub fn mcast_script(
        &mut self,
        n: usize,
        fate: Fate,
        matches: impl Fn(&McastPacket) -> bool + 'static,
    ) {
        self.mcast_rules.push(McastRule {
            remaining: n,
            matches: Box::new(matches),
            fate,
        });
    }

    /// Drops the next `n` MLD or PIM messages matching `matches`.
    pub fn mcast_drop_next(&mut self, n: usize, matches: impl Fn(&McastPacket) -> bool + 'static) {
        self.mcast_script(n, Fate::Drop, matches);
    }

    /// Logs a message, applies the scripted rules, and returns the delays (after the site
    /// latency) at which it arrives: none when it is lost.
    fn mcast_fate(&mut self, from: McastFrom, kind: McastKind) -> Vec<u64> {
        let mut packet = McastPacket {
            t: self.now,
            from,
            kind,
            dropped: false,
        };
        let fate = self
            .mcast_rules
            .iter_mut()
            .find(|r| r.remaining > 0 && (r.matches)(&packet))
            .map(|r| {
                r.remaining -= 1;
                r.fate.clone()
            });
        self.mcast_rules.retain(|r| r.remaining > 0);
        // The itineraries' random impairments hit MLD and PIM as they hit Mobility Headers.
        let lost = self.impair.loss > 0 && self.rng.below(1000) < u64::from(self.impair.loss);
        let delays = match fate {
            _ if lost => Vec::new(),
            Some(Fate::Drop) => Vec::new(),
            Some(Fate::Delay(ms)) => vec![ms],
            Some(Fate::Duplicate(extra)) => std::iter::once(0).chain(extra).collect(),
            None => vec![0],
        };
        packet.dropped = delays.is_empty();
        self.mcast.push(packet);
        let base = self.cfg.site_latency_ms;
        let jitter = self.impair.jitter_ms;
        delays
            .into_iter()
            .map(|d| {
                let j = if jitter > 0 {
                    self.rng.below(jitter + 1)
                } else {
                    0
                };
                base + d + j
            })
            .collect()
    }

    /// Puts what router `r` sent on its links.
    pub(super) fn router_sends(&mut self, r: usize, sends: Vec<PimPacket>) {
        let id = self.routers[r].id;
        for p in sends {
            let peer = pim::peer_of(id, p.ifindex);
            // Router advertisements are the world's own; nobody listens past the MMA's link.
            if p.proto == Proto::Nd || peer == Peer::Nobody {
                continue;
            }
            let kind = McastKind::of(p.proto, &p.bytes);
            for delay in self.mcast_fate(McastFrom::Router(id), kind) {
                match peer {
                    Peer::Router(to, ifindex) => {
                        let router = self.router_index(to);
                        self.schedule(
                            delay,
                            Delivery::ToRouter {
                                router,
                                ifindex,
                                packet: p.clone(),
                            },
                        );
                    }
                    Peer::Hosts { site, link } => {
                        let link = self.link_index(super::LinkId::Site(site, link));
                        self.schedule(
                            delay,
                            Delivery::ToHosts {
                                link,
                                bytes: p.bytes.clone(),
                            },
                        );
                    }
                    Peer::Nobody => {}
                }
            }
        }
    }

    /// Terminal `t`'s (group, source) memberships on radio `radio`.
    fn radio_members(&self, t: usize, radio: usize) -> Vec<(Ipv6Addr, Ipv6Addr)> {
        let ifindex = topo::radio_ifindex(radio);
        self.mns[t]
            .kernel
            .memberships
            .iter()
            .filter(|(i, _, _)| *i == ifindex)
            .map(|&(_, g, s)| (g, s))
            .collect()
    }

    /// The host sends a state-change report now and once more within the Unsolicited Report
    /// Interval (robustness 2, RFC 3810 §6.1), on the link radio `radio` is on now.
    fn host_state_change(&mut self, t: usize, radio: usize, bytes: Vec<u8>) {
        let Some(link) = self.mns[t].radios[radio] else {
            return;
        };
        let again = 1 + self.rng.below(UNSOLICITED_REPORT_INTERVAL_MS);
        for delay in [0, again] {
            self.schedule(
                delay,
                Delivery::HostSend {
                    mn: t,
                    radio,
                    link,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// The terminal's core joined or left (S, G) channels: its kernel's MLD reports them
    /// (ALLOW for new sources, BLOCK for old ones).
    pub(super) fn host_memberships_changed(
        &mut self,
        t: usize,
        before: &BTreeSet<(u32, Ipv6Addr, Ipv6Addr)>,
    ) {
        let after = self.mns[t].kernel.memberships.clone();
        for radio in 0..topo::RADIOS {
            let ifindex = topo::radio_ifindex(radio);
            let on = |set: &BTreeSet<(u32, Ipv6Addr, Ipv6Addr)>, other: &BTreeSet<_>| {
                set.difference(other)
                    .filter(|(i, _, _)| *i == ifindex)
                    .map(|&(_, g, s)| (g, s))
                    .collect::<Vec<_>>()
            };
            let joined = on(&after, before);
            let left = on(before, &after);
            let mut records = pim::records(RecordType::AllowNewSources, joined);
            records.extend(pim::records(RecordType::BlockOldSources, left));
            if !records.is_empty() {
                self.host_state_change(t, radio, pim::report(records));
            }
        }
    }

    /// Radio `radio` of terminal `t` came up on a link (or roamed to another): the kernel
    /// reports the radio's memberships there (as Linux does when an interface comes up).
    pub(super) fn host_link_changed(&mut self, t: usize, radio: usize) {
        let members = self.radio_members(t, radio);
        if !members.is_empty() {
            let records = pim::records(RecordType::AllowNewSources, members);
            self.host_state_change(t, radio, pim::report(records));
        }
    }

    /// A query reached the terminals on world link `link`: each radio there with memberships
    /// the query asks about answers within the query's maximum response delay.
    pub(super) fn hosts_hear_query(&mut self, link: usize, bytes: &[u8]) {
        let Ok(query) = MldRepr::parse(bytes) else {
            return;
        };
        for t in 0..self.mns.len() {
            for radio in 0..topo::RADIOS {
                if self.mns[t].radios[radio] != Some(link) {
                    continue;
                }
                let members = self.radio_members(t, radio);
                if let Some((max_ms, records)) = pim::answer(&query, &members) {
                    let delay = self.rng.below(u64::from(max_ms).max(1));
                    self.schedule(
                        delay,
                        Delivery::HostSend {
                            mn: t,
                            radio,
                            link,
                            bytes: pim::report(records),
                        },
                    );
                }
            }
        }
    }

    /// The host transmits a report, if its radio is still on the link it was meant for.
    pub(super) fn host_send(&mut self, t: usize, radio: usize, link: usize, bytes: Vec<u8>) {
        if self.mns[t].radios[radio] != Some(link) {
            return;
        }
        let super::LinkId::Site(s, l) = self.link_id(link) else {
            // The home link has no multicast router.
            return;
        };
        let kind = McastKind::of(Proto::Mld, &bytes);
        let router = self.router_index(RouterId::Access(s, l));
        let packet = PimPacket {
            proto: Proto::Mld,
            ifindex: pim::ACCESS_IF,
            source: pim::host_ll(t, radio),
            destination: pim::ALL_MLDV2_ROUTERS,
            bytes,
        };
        for delay in self.mcast_fate(McastFrom::Host(t, radio), kind) {
            self.schedule(
                delay,
                Delivery::ToRouter {
                    router,
                    ifindex: pim::ACCESS_IF,
                    packet: packet.clone(),
                },
            );
        }
    }
}
