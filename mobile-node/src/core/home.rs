//! Moves to and from the home link while the link left still works (make before break).
//!
//! Coming home, the home agent stops tunnelling as soon as it has our deregistration (sent on
//! the home link: at once), but what it tunnelled to the site's MMA before is still crossing
//! the WAN and then the site's tree. Dropping the site's membership and decapsulation at the
//! move lost all of it (issue 11, home moves: 7-19 ms gaps and ~40 packets per move, against
//! 2-4 ms for plain Mobile IPv6, which keeps its previous care-of address decapsulating, see
//! `mipv6`). The old site's branch is therefore kept for the overlap, as between sites. No
//! duplicates: each packet took either the tunnel or the native path.
//!
//! Leaving home, the home agent routes nothing of ours through a tunnel until it has the
//! binding update, which leaves only after the MMA accepted us and then crosses the WAN. A
//! reverse tunnel through the MMA meanwhile is dropped (the MMA has no uplink route yet, then
//! the home agent has no decapsulation rule for the new care-of address). The uplink therefore
//! stays native, out of the home link through its router, until the home agent's
//! acknowledgement or the first packets through the new site (`home_agent_moved`), bounded by
//! the overlap and only while the home link is up with its router.
use std::net::Ipv6Addr;
use std::time::Duration;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, Millis, Now, RT_TABLE_LOCAL};

use super::kernel::{Desired, Membership};
use super::{default_dst, Attach, Core, IPPROTO_IPV6};

impl Core {
    /// Called when the terminal moves to the home link from `old`: keeps `old`'s site branch
    /// (membership and decapsulation on its link) for the overlap while that link is up.
    pub(super) fn keep_site_branch_at_home(&mut self, old: Attach, home_ifindex: u32, now: Now) {
        let Attach::Site { ifindex, mma } = old else {
            return;
        };
        let up = self.link(ifindex).is_some_and(|l| l.up && l.ra.is_some());
        if ifindex == home_ifindex || !up || self.cfg.overlap_ms == 0 {
            return;
        }
        let m = Membership {
            ifindex,
            group: self.cfg.group,
            source: mma,
        };
        tracing::debug!(link = ifindex, %mma, overlap_ms = self.cfg.overlap_ms, "home: keeping the site's branch for the overlap");
        self.overlap = Some((m, now.mono + Duration::from_millis(self.cfg.overlap_ms)));
    }

    /// Called when the terminal moves from `old` to a site through `ifindex`: remembers the
    /// home link when `old` was home and that link still works, for [`Core::home_uplink`].
    pub(super) fn note_left_home(&mut self, old: Attach, ifindex: u32, now: Now) {
        let Attach::Home { ifindex: home } = old else {
            return;
        };
        let up = self.link(home).is_some_and(|l| l.up && l.ra.is_some());
        if home != ifindex && up && self.cfg.overlap_ms > 0 {
            self.left_home = Some((home, now.mono + Duration::from_millis(self.cfg.overlap_ms)));
        }
    }

    /// The home link and its router while the uplink stays native after leaving home: until
    /// the home agent moved the traffic to `mma`'s site, the window ends or the link goes.
    pub(super) fn home_uplink(&self, now: Millis, mma: Ipv6Addr) -> Option<(u32, Ipv6Addr)> {
        let (home, until) = self.left_home?;
        if until <= now || self.home_agent_moved(mma) {
            return None;
        }
        let l = self.link(home).filter(|l| l.up)?;
        Some((home, l.ra.as_ref()?.router))
    }

    /// The native uplink out of the home link: `default from HoA` through its router, in the
    /// uplink table (the same rule and route identity as the reverse tunnel, which replaces it).
    pub(super) fn native_uplink(&self, d: &mut Desired, oif: u32, gateway: Ipv6Addr) {
        let t = self.cfg.tables;
        d.objects.insert(KObject::Rule {
            pref: t.uplink_pref,
            from: Some(Ipv6Network::from(self.cfg.hoa)),
            to: None,
            ipproto: None,
            table: t.uplink_table,
        });
        d.objects.insert(KObject::GatewayRoute {
            dst: default_dst(),
            gateway,
            oif,
            table: t.uplink_table,
        });
    }

    /// Whether the group's tunnel packets are marked (counted per link) now. The nftables
    /// commit holds the terminal's event loop for ~10 ms (the acknowledgements of a home move
    /// are read that much later), so a terminal arriving in a site with the group unmarked
    /// (from home, or detached) marks it only once the MMA accepted it: after the BU to the
    /// home agent, which then does not wait for it. Nothing is tunnelled to us before the home
    /// agent has that BU, so no delivery goes uncounted. A group already marked stays marked.
    pub(super) fn mark_group_now(&self) -> bool {
        self.pending_site.is_none() || self.applied.marked_groups.contains(&self.cfg.group)
    }

    /// At home: the site branch kept for the overlap listens and decapsulates.
    pub(super) fn home_desired(&self, d: &mut Desired, now: Millis) {
        let Some((m, _)) = self.overlap.filter(|(_, until)| *until > now) else {
            return;
        };
        let t = self.cfg.tables;
        d.memberships.insert(m);
        d.objects.insert(KObject::Rule {
            pref: t.decap_pref,
            from: None,
            to: Some(Ipv6Network::from(m.group)),
            ipproto: Some(IPPROTO_IPV6),
            table: t.decap_table,
        });
        d.objects.insert(KObject::DecapRoute {
            local: m.group,
            oif: m.ifindex,
            table: t.decap_table,
            inner_table: RT_TABLE_LOCAL,
        });
    }
}
