//! PIM Assert (RFC 7761 §4.6, (S,G) only): which of several routers forwarding an (S,G)
//! onto one link keeps doing so. The state lives in [`Router`] per (S,G) and interface; this
//! module holds the transitions.
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_wire::pim::ALL_PIM_ROUTERS;

use super::pim;
use super::stats::Counter;
use super::{Router, Rpf, Sg};

/// Assert state of one (S,G) on one interface (RFC 7761 §4.6.1, SSM subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AssertState {
    /// We won (or asserted first): we forward, and re-assert at `refresh`.
    Winner { refresh: Millis },
    /// `winner` forwards here: we do not (downstream of the link, `winner` is RPF'(S)).
    Loser { winner: Ipv6Addr, until: Millis },
}

impl Router {
    /// The assert winner `winner` went away (expired, left, restarted): its losers on
    /// `ifindex` forward again (RFC 7761 §4.6.1, "winner's NLT expires").
    pub(super) fn forget_assert_winner(&mut self, ifindex: u32, winner: Ipv6Addr) {
        self.asserts.retain(|&(_, i), a| {
            !(i == ifindex && matches!(a, AssertState::Loser { winner: w, .. } if *w == winner))
        });
    }

    /// Links of `sg` where we won the Assert but no longer forward: AssertCancel, so the
    /// losers take over now rather than when their Assert timer runs out (§4.6.1).
    pub(super) fn cancel_lost_asserts(&mut self, sg: Sg) {
        let oifs = self
            .sg
            .get(&sg)
            .and_then(|st| st.mfc.as_ref())
            .map(|m| m.oifs.clone())
            .unwrap_or_default();
        let stale: Vec<u32> = self
            .asserts
            .range((sg, 0)..=(sg, u32::MAX))
            .filter(|(_, a)| matches!(a, AssertState::Winner { .. }))
            .map(|(&(_, i), _)| i)
            .filter(|i| !oifs.contains(i))
            .collect();
        for ifindex in stale {
            self.asserts.remove(&(sg, ifindex));
            tracing::info!(source = %sg.source, group = %sg.group, interface = %self.if_name(ifindex), "no longer forwarding where we won the Assert: AssertCancel");
            self.stats.bump(Counter::AssertsSent("cancel"));
            self.send_pim(
                ifindex,
                ALL_PIM_ROUTERS,
                &pim::assert(sg, pim::ASSERT_CANCEL),
            );
        }
        // Loser state of an (S,G) we dropped altogether is of no use any more.
        if !self.sg.contains_key(&sg) {
            self.asserts.retain(|(k, _), _| *k != sg);
        }
    }

    /// Our Assert metric on `ifindex`.
    fn our_assert_metric(&self, ifindex: u32) -> pim::AssertMetric {
        pim::AssertMetric {
            preference: self.pim_cfg.assert_metric_preference,
            metric: self.pim_cfg.assert_metric,
            address: self
                .ifaces
                .get(&ifindex)
                .and_then(|i| i.addrs.link_local)
                .unwrap_or(Ipv6Addr::UNSPECIFIED),
        }
    }

    pub(super) fn forwards_on(&self, sg: Sg, ifindex: u32) -> bool {
        self.sg
            .get(&sg)
            .and_then(|st| st.mfc.as_ref())
            .is_some_and(|m| m.oifs.contains(&ifindex))
    }

    /// Sends our Assert for `sg` on `ifindex` and records that we win there for now.
    pub(super) fn send_assert(&mut self, now: Millis, sg: Sg, ifindex: u32) {
        let m = self.our_assert_metric(ifindex);
        self.asserts.insert(
            (sg, ifindex),
            AssertState::Winner {
                refresh: now + self.pim_cfg.assert_refresh(),
            },
        );
        self.stats.bump(Counter::AssertsSent("assert"));
        self.send_pim(ifindex, ALL_PIM_ROUTERS, &pim::assert(sg, m));
    }

    /// An Assert from neighbour `from` (RFC 7761 §4.6.1, SSM subset: (S,G) Asserts only).
    pub(super) fn on_assert(
        &mut self,
        now: Millis,
        ifindex: u32,
        from: Ipv6Addr,
        a: &mipcast_wire::pim::Assert,
    ) {
        let sg = Sg {
            source: a.source,
            group: a.group.addr,
        };
        if a.rpt || a.group.mask_len != 128 || !sg.group.is_multicast() {
            self.stats
                .bump(Counter::AssertsReceived("not_source_specific"));
            return;
        }
        let theirs = pim::AssertMetric {
            preference: a.metric_preference,
            metric: a.metric,
            address: from,
        };
        let key = (sg, ifindex);
        if theirs.is_cancel() {
            self.stats.bump(Counter::AssertsReceived("cancel"));
            if matches!(self.asserts.get(&key), Some(AssertState::Loser { winner, .. }) if *winner == from)
            {
                tracing::info!(source = %sg.source, group = %sg.group, winner = %from, "AssertCancel from the winner: we forward again");
                self.asserts.remove(&key);
                self.refresh(now, sg);
            }
            return;
        }
        if !self.sg.contains_key(&sg) {
            self.stats.bump(Counter::AssertsReceived("no_state"));
            return;
        }
        let ours = self.our_assert_metric(ifindex);
        let we_could_forward = self.forwards_on(sg, ifindex)
            || matches!(self.asserts.get(&key), Some(AssertState::Winner { .. }));
        let upstream_link = matches!(self.rpf.get(&sg.source), Some(Rpf::Resolved(Some(r))) if r.ifindex == ifindex);
        if we_could_forward && ours.beats(&theirs) {
            // We forward with the better route: tell the other router to stop.
            self.stats.bump(Counter::AssertsReceived("we_win"));
            tracing::info!(source = %sg.source, group = %sg.group, loser = %from, "Assert: we win, re-asserting");
            self.send_assert(now, sg, ifindex);
            return;
        }
        if !we_could_forward && !upstream_link {
            // Not our fight: we neither forward here nor take the stream from this link.
            self.stats.bump(Counter::AssertsReceived("not_involved"));
            return;
        }
        self.stats.bump(Counter::AssertsReceived("we_lose"));
        let previous = self.asserts.insert(
            key,
            AssertState::Loser {
                winner: from,
                until: now + self.pim_cfg.assert_time(),
            },
        );
        if !matches!(previous, Some(AssertState::Loser { winner, .. }) if winner == from) {
            tracing::info!(source = %sg.source, group = %sg.group, winner = %from, interface = %self.if_name(ifindex), "Assert lost: {}", if upstream_link { "joining toward the winner" } else { "we stop forwarding on this link" });
        }
        self.refresh(now, sg);
    }

    /// Assert timers: winners re-assert while they forward, losers forget after Assert_Time.
    pub(super) fn tick_asserts(&mut self, now: Millis) {
        let due: Vec<((Sg, u32), AssertState)> = self
            .asserts
            .iter()
            .filter(|(_, a)| match a {
                AssertState::Winner { refresh } => *refresh <= now,
                AssertState::Loser { until, .. } => *until <= now,
            })
            .map(|(&k, &a)| (k, a))
            .collect();
        for ((sg, ifindex), a) in due {
            match a {
                AssertState::Winner { .. } if self.forwards_on(sg, ifindex) => {
                    self.send_assert(now, sg, ifindex);
                }
                _ => {
                    self.asserts.remove(&(sg, ifindex));
                    self.refresh(now, sg);
                }
            }
        }
    }
}
