//! Terminal → kernel objects: which routes, rules and MFC entries the MMA wants, as values.
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, RT_TABLE_MAIN};
use serde::Serialize;

use super::policy::Terminal;

/// ip protocol number of IPv6-in-IPv6 (RFC 2473).
const IPPROTO_IPV6: u8 = 41;

/// Everything the kernel mapping depends on. Interface indexes are resolved by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mma: Ipv6Addr,
    pub wan_ifindex: u32,
    /// Carries the encapsulation routes towards groups (the MFC sends them on).
    pub site_ifindex: u32,
    pub site_prefixes: Vec<(Ipv6Addr, u8)>,
    pub home_agents: Vec<Ipv6Addr>,
    pub ha_decap_table: u32,
    pub site_decap_table: u32,
    pub uplink_table: u32,
    pub ha_rule_pref: u32,
    pub site_rule_pref: u32,
}

/// The kernel state of one terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalState {
    pub routes: Vec<KObject>,
    /// The group of its (MMA, G) MFC entry, while it is served here.
    pub mfc_group: Option<Ipv6Addr>,
}

/// One change to the kernel, in the order to apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    Add(KObject),
    /// Atomically takes the place of the route with the same table, destination and source.
    Replace(KObject),
    Delete(KObject),
    /// (source, group) entry: iif = the WAN MIF, oifs = the site MIFs.
    AddMfc {
        source: Ipv6Addr,
        group: Ipv6Addr,
    },
    DelMfc {
        source: Ipv6Addr,
        group: Ipv6Addr,
    },
}

impl Change {
    /// True for the changes that take something out of the kernel.
    pub fn is_delete(&self) -> bool {
        matches!(self, Change::Delete(_) | Change::DelMfc { .. })
    }
}

/// `::/0`, the destination of the source-specific uplink routes.
const DEFAULT_ROUTE: Ipv6Network = match Ipv6Network::new_checked(Ipv6Addr::UNSPECIFIED, 0) {
    Some(n) => n,
    None => panic!("::/0 is a valid prefix"),
};

fn any_device(route: KObject) -> KObject {
    match route {
        KObject::EncapRoute {
            dst,
            src,
            tunnel_dst,
            table,
            ..
        } => KObject::EncapRoute {
            dst,
            src,
            tunnel_dst,
            oif: 0,
            table,
        },
        other => other,
    }
}

fn host(a: Ipv6Addr) -> Ipv6Network {
    Ipv6Network::from(a)
}

fn net(p: Ipv6Addr, len: u8) -> Option<Ipv6Network> {
    Ipv6Network::new(p, len).ok()
}

/// The home address a terminal's route is for: `HoA/128` (downlink or forwarding) or
/// `default from HoA/128` (uplink). None for the constant objects.
pub fn terminal_of(o: &KObject) -> Option<Ipv6Addr> {
    match *o {
        KObject::EncapRoute { dst, src: None, .. } if dst.prefix() == 128 => Some(dst.ip()),
        KObject::EncapRoute { src: Some(src), .. } if src.prefix() == 128 => Some(src.ip()),
        _ => None,
    }
}

/// Kernel identity of a route (table, destination, source); rules are their own identity.
fn route_key(o: &KObject) -> Option<(u32, Ipv6Network, Option<Ipv6Network>)> {
    match *o {
        KObject::EncapRoute {
            dst, src, table, ..
        } => Some((table, dst, src)),
        KObject::DecapRoute { local, table, .. } => Some((table, host(local), None)),
        _ => None,
    }
}

impl Plan {
    /// State that exists whatever terminals are registered: the decapsulation rules and routes.
    /// (The moved `lookup local` rule and the seg6 tunnel source are set by the shell.)
    pub fn constant_objects(&self) -> Vec<KObject> {
        let me = Some(host(self.mma));
        let mut out = vec![
            // Tunnels from home agents: the inner packet is routed normally (main), which
            // finds the terminal's encapsulation route towards its group.
            KObject::DecapRoute {
                local: self.mma,
                oif: self.wan_ifindex,
                table: self.ha_decap_table,
                inner_table: RT_TABLE_MAIN,
            },
            // Reverse tunnels from terminals: the inner packet is looked up in the uplink
            // table, which only has routes from registered home addresses.
            KObject::DecapRoute {
                local: self.mma,
                oif: self.site_ifindex,
                table: self.site_decap_table,
                inner_table: self.uplink_table,
            },
        ];
        out.extend(self.home_agents.iter().map(|&ha| KObject::Rule {
            pref: self.ha_rule_pref,
            from: Some(host(ha)),
            to: me,
            ipproto: Some(IPPROTO_IPV6),
            table: self.ha_decap_table,
        }));
        out.extend(
            self.site_prefixes
                .iter()
                .filter_map(|&(p, l)| net(p, l))
                .map(|from| KObject::Rule {
                    pref: self.site_rule_pref,
                    from: Some(from),
                    to: me,
                    ipproto: Some(IPPROTO_IPV6),
                    table: self.site_decap_table,
                }),
        );
        out
    }

    /// A served terminal: `HoA/128 → encap to G` (main), `default from HoA/128 → encap to its
    /// home agent` (uplink table), and the (MMA, G) MFC entry without which the
    /// re-encapsulated packet, produced on the input path, is treated as received multicast
    /// and never leaves (architecture §3, trap 1). A terminal in its forwarding window only
    /// has `HoA/128 → encap to the new CoA`: unicast, so no MFC entry, and no uplink.
    pub fn terminal(&self, hoa: Ipv6Addr, t: &Terminal) -> TerminalState {
        match t.forward_to {
            // Home (002 FIG 7): the home address is reachable natively (routed toward the
            // home network); a tunnel to the home address would be looked up in this very
            // route again (the kernel refuses the loop: "Network is down"), and would take
            // our own acknowledgement to the terminal with it.
            Some(new_coa) if new_coa == hoa => TerminalState {
                routes: Vec::new(),
                mfc_group: None,
            },
            Some(new_coa) => TerminalState {
                routes: vec![KObject::EncapRoute {
                    dst: host(hoa),
                    src: None,
                    tunnel_dst: new_coa,
                    oif: self.wan_ifindex,
                    table: RT_TABLE_MAIN,
                }],
                mfc_group: None,
            },
            None => TerminalState {
                routes: vec![
                    KObject::EncapRoute {
                        dst: host(hoa),
                        src: None,
                        tunnel_dst: t.group,
                        oif: self.site_ifindex,
                        table: RT_TABLE_MAIN,
                    },
                    KObject::EncapRoute {
                        dst: DEFAULT_ROUTE,
                        src: Some(host(hoa)),
                        tunnel_dst: t.home_agent,
                        oif: self.wan_ifindex,
                        table: self.uplink_table,
                    },
                ],
                mfc_group: Some(t.group),
            },
        }
    }

    /// Deletes of everything a terminal may have in the kernel, whatever state a failed change
    /// left it in: both route identities (downlink or forwarding `HoA/128`, uplink) with any
    /// device, since a refused replace leaves the previous route (maybe on another device),
    /// and its (MMA, G) entry. Apply tolerating "not found".
    pub fn withdraw(&self, hoa: Ipv6Addr, t: &Terminal) -> Vec<Change> {
        let served = Terminal {
            forward_to: None,
            ..*t
        };
        let mut out: Vec<Change> = self
            .terminal(hoa, &served)
            .routes
            .into_iter()
            .map(|route| match route {
                // Device 0: the kernel then matches table, destination, source and our tag.
                KObject::EncapRoute { .. } => Change::Delete(any_device(route)),
                other => Change::Delete(other),
            })
            .collect();
        out.push(Change::DelMfc {
            source: self.mma,
            group: t.group,
        });
        out
    }

    /// The changes that turn `old` into `new` (either may be absent), leaving alone what both
    /// share, and replacing (not deleting and adding) routes whose identity stays, so traffic
    /// never meets a missing route.
    pub fn diff(&self, old: Option<&TerminalState>, new: Option<&TerminalState>) -> Vec<Change> {
        let empty = TerminalState {
            routes: Vec::new(),
            mfc_group: None,
        };
        let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
        let mut out = Vec::new();
        if old.mfc_group != new.mfc_group {
            if let Some(group) = new.mfc_group {
                out.push(Change::AddMfc {
                    source: self.mma,
                    group,
                });
            }
        }
        for r in &new.routes {
            match old.routes.iter().find(|o| route_key(o) == route_key(r)) {
                Some(o) if o == r => {}
                Some(_) => out.push(Change::Replace(*r)),
                None => out.push(Change::Add(*r)),
            }
        }
        for o in &old.routes {
            if !new.routes.iter().any(|r| route_key(r) == route_key(o)) {
                out.push(Change::Delete(*o));
            }
        }
        if old.mfc_group != new.mfc_group {
            if let Some(group) = old.mfc_group {
                out.push(Change::DelMfc {
                    source: self.mma,
                    group,
                });
            }
        }
        out
    }
}
