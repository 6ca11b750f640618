//! The kernel state the mobile node wants, as a value, and the ordered changes between two
//! such values.
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, RT_TABLE_MAIN};
use serde::Serialize;

/// An address we put on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Address {
    pub ifindex: u32,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
}

impl Address {
    /// The kernel object, tagged ours by the kernel crate so a restart finds it.
    pub fn object(&self) -> KObject {
        KObject::Address {
            addr: self.addr,
            prefix_len: self.prefix_len,
            ifindex: self.ifindex,
        }
    }
}

/// A source-specific multicast membership (the kernel sends the MLDv2 reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Membership {
    pub ifindex: u32,
    pub group: Ipv6Addr,
    pub source: Ipv6Addr,
}

/// The default route for native traffic (BUs, on-link addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DefaultRoute {
    pub ifindex: u32,
    pub gateway: Ipv6Addr,
}

impl DefaultRoute {
    /// The main table's default route, tagged ours, so the shutdown sweep removes it too.
    pub fn object(&self) -> KObject {
        KObject::GatewayRoute {
            dst: super::default_dst(),
            gateway: self.gateway,
            oif: self.ifindex,
            table: RT_TABLE_MAIN,
        }
    }
}

/// One change to apply, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum KernelChange {
    /// Bring the interface up administratively (a prepared candidate, issue 14).
    SetLinkUp(u32),
    Join(Membership),
    AddAddress(Address),
    MarkGroup(Ipv6Addr),
    /// Add, or atomically replace the route with the same identity (table, destination,
    /// source).
    Install(KObject),
    SetDefaultRoute(DefaultRoute),
    RemoveDefaultRoute(DefaultRoute),
    Remove(KObject),
    UnmarkGroup(Ipv6Addr),
    RemoveAddress(Address),
    Leave(Membership),
    /// Put an interface we brought up down again.
    SetLinkDown(u32),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub objects: BTreeSet<KObject>,
    pub addresses: BTreeSet<Address>,
    pub memberships: BTreeSet<Membership>,
    pub marked_groups: BTreeSet<Ipv6Addr>,
    pub default_route: Option<DefaultRoute>,
    /// Interfaces we hold administratively up (found down, raised by us).
    pub links_up: BTreeSet<u32>,
}

impl KernelChange {
    /// True for the changes that take something away.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            KernelChange::Leave(_)
                | KernelChange::RemoveAddress(_)
                | KernelChange::UnmarkGroup(_)
                | KernelChange::Remove(_)
                | KernelChange::RemoveDefaultRoute(_)
                | KernelChange::SetLinkDown(_)
        )
    }
}

impl Desired {
    /// Notes that the kernel carried out `change`: applying every change of
    /// [`diff`]`(old, new)` to `old` gives `new`. The core keeps what the kernel really holds
    /// this way, so a refused change stays in the next diff and is tried again.
    pub fn record(&mut self, change: &KernelChange) {
        match *change {
            KernelChange::SetLinkUp(i) => {
                self.links_up.insert(i);
            }
            KernelChange::SetLinkDown(i) => {
                self.links_up.remove(&i);
            }
            KernelChange::Join(m) => {
                self.memberships.insert(m);
            }
            KernelChange::Leave(m) => {
                self.memberships.remove(&m);
            }
            KernelChange::AddAddress(a) => {
                self.addresses.insert(a);
            }
            KernelChange::RemoveAddress(a) => {
                self.addresses.remove(&a);
            }
            KernelChange::MarkGroup(g) => {
                self.marked_groups.insert(g);
            }
            KernelChange::UnmarkGroup(g) => {
                self.marked_groups.remove(&g);
            }
            KernelChange::Install(o) => {
                // It took the place of any route with the same identity.
                self.objects.retain(|old| key(old) != key(&o));
                self.objects.insert(o);
            }
            KernelChange::Remove(o) => {
                self.objects.remove(&o);
            }
            KernelChange::SetDefaultRoute(r) => self.default_route = Some(r),
            KernelChange::RemoveDefaultRoute(r) => {
                if self.default_route == Some(r) {
                    self.default_route = None;
                }
            }
        }
    }
}

/// What identifies a route in the kernel (two with one identity cannot coexist).
#[derive(PartialEq, Eq)]
enum RouteKey {
    Route {
        table: u32,
        dst: Ipv6Network,
        src: Option<Ipv6Network>,
    },
    Other(KObject),
}

fn key(o: &KObject) -> RouteKey {
    match *o {
        KObject::EncapRoute {
            dst, src, table, ..
        } => RouteKey::Route { table, dst, src },
        KObject::DecapRoute { local, table, .. } => RouteKey::Route {
            table,
            dst: Ipv6Network::from(local),
            src: None,
        },
        KObject::GatewayRoute { dst, table, .. } => RouteKey::Route {
            table,
            dst,
            src: None,
        },
        other => RouteKey::Other(other),
    }
}

fn is_rule(o: &KObject) -> bool {
    matches!(o, KObject::Rule { .. })
}

/// The changes turning `old` into `new`: make before break. Joins, addresses and marks come
/// first, then routes before rules (a rule never points at an empty table), the default route,
/// and only then removals (rules before routes) and leaves.
pub fn diff(old: &Desired, new: &Desired) -> Vec<KernelChange> {
    let mut out = Vec::new();
    // An interface comes up before anything is put on it, and goes down after all is off it.
    out.extend(
        new.links_up
            .difference(&old.links_up)
            .map(|i| KernelChange::SetLinkUp(*i)),
    );
    out.extend(
        new.memberships
            .difference(&old.memberships)
            .map(|m| KernelChange::Join(*m)),
    );
    out.extend(
        new.addresses
            .difference(&old.addresses)
            .map(|a| KernelChange::AddAddress(*a)),
    );
    out.extend(
        new.marked_groups
            .difference(&old.marked_groups)
            .map(|g| KernelChange::MarkGroup(*g)),
    );
    let added: Vec<&KObject> = new.objects.difference(&old.objects).collect();
    out.extend(
        added
            .iter()
            .filter(|o| !is_rule(o))
            .map(|o| KernelChange::Install(**o)),
    );
    out.extend(
        added
            .iter()
            .filter(|o| is_rule(o))
            .map(|o| KernelChange::Install(**o)),
    );
    if old.default_route != new.default_route {
        match new.default_route {
            Some(r) => out.push(KernelChange::SetDefaultRoute(r)),
            None => out.extend(old.default_route.map(KernelChange::RemoveDefaultRoute)),
        }
        // A route through another interface or router is a different kernel route: drop it.
        if let (Some(o), Some(n)) = (old.default_route, new.default_route) {
            if o != n {
                out.push(KernelChange::RemoveDefaultRoute(o));
            }
        }
    }
    // Objects replaced in place by an added one with the same identity are not removed.
    let removed: Vec<&KObject> = old
        .objects
        .difference(&new.objects)
        .filter(|o| !added.iter().any(|a| key(a) == key(o)))
        .collect();
    out.extend(
        removed
            .iter()
            .filter(|o| is_rule(o))
            .map(|o| KernelChange::Remove(**o)),
    );
    out.extend(
        removed
            .iter()
            .filter(|o| !is_rule(o))
            .map(|o| KernelChange::Remove(**o)),
    );
    out.extend(
        old.marked_groups
            .difference(&new.marked_groups)
            .map(|g| KernelChange::UnmarkGroup(*g)),
    );
    out.extend(
        old.addresses
            .difference(&new.addresses)
            .map(|a| KernelChange::RemoveAddress(*a)),
    );
    out.extend(
        old.memberships
            .difference(&new.memberships)
            .map(|m| KernelChange::Leave(*m)),
    );
    out.extend(
        old.links_up
            .difference(&new.links_up)
            .map(|i| KernelChange::SetLinkDown(*i)),
    );
    out
}

/// Splits a step's changes into those its Binding Updates need applied first (addresses,
/// routes, rules, memberships) and those that can follow them: the nftables marking of the
/// group's tunnel packets, which only feeds the per-link delivery counters. An nftables
/// commit is slow (it waits for the kernel's synchronisation of the ruleset): in issue 11's
/// home moves the acknowledgements came 13-34 ms after the move's decision in `mode: site`
/// (the terminal's log) for a wire round trip of 1-4 ms (captures), while `mode: mipv6`, which
/// marks nothing, came home with 2-4 ms gaps. The order within each part is kept.
pub fn split_for_signalling(changes: Vec<KernelChange>) -> (Vec<KernelChange>, Vec<KernelChange>) {
    changes
        .into_iter()
        .partition(|c| !matches!(c, KernelChange::MarkGroup(_) | KernelChange::UnmarkGroup(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encap(oif: u32, seg: &str) -> KObject {
        KObject::EncapRoute {
            dst: "::/0".parse().unwrap(),
            src: None,
            tunnel_dst: seg.parse().unwrap(),
            oif,
            table: 200,
        }
    }

    #[test]
    fn a_changed_route_is_replaced_not_removed_and_leaves_come_last() {
        let m = |i| Membership {
            ifindex: i,
            group: "ff35::1".parse().unwrap(),
            source: "2001:db8::1".parse().unwrap(),
        };
        let old = Desired {
            objects: [encap(2, "2001:db8::1")].into(),
            memberships: [m(2)].into(),
            ..Default::default()
        };
        let new = Desired {
            objects: [encap(3, "2001:db8::1")].into(),
            memberships: [m(3)].into(),
            ..Default::default()
        };
        assert_eq!(
            diff(&old, &new),
            vec![
                KernelChange::Join(m(3)),
                KernelChange::Install(encap(3, "2001:db8::1")),
                KernelChange::Leave(m(2))
            ]
        );
        assert!(diff(&new, &new).is_empty());
        // Recording every change of the diff turns the old state into the new one.
        let mut held = old.clone();
        for change in diff(&old, &new) {
            held.record(&change);
        }
        assert_eq!(held, new);
        let mut back = new.clone();
        for change in diff(&new, &old) {
            back.record(&change);
        }
        assert_eq!(back, old);
    }
}
