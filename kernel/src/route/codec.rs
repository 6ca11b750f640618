//! [`KObject`]s to rtnetlink messages and back.
use std::net::{IpAddr, Ipv6Addr};

use ipnetwork::Ipv6Network;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteLwEnCapType, RouteLwTunnelEncap, RouteMessage,
    RouteProtocol, RouteScope, RouteSeg6IpTunnel, RouteSeg6LocalTunnel, RouteType, Seg6Header,
    Seg6LocalAction, Seg6Mode,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, IpProtocol, RouteNetlinkMessage};

use super::object::{masked, KObject};
use super::RT_TABLE_LOCAL;

/// `SEG6_IPTUN_MODE_ENCAP_RED`: IPv6-in-IPv6 without a routing header when there is one
/// segment. netlink-packet-route 0.34 has no named variant for it.
const SEG6_MODE_ENCAP_RED: u32 = 3;
const FIB_RULE_INVERT: u32 = 2;

/// The message that creates (or, with NLM_F_REPLACE, replaces) `obj`, tagged `protocol`.
pub(crate) fn new_message(obj: &KObject, protocol: u8) -> RouteNetlinkMessage {
    match obj {
        KObject::EncapRoute { .. } | KObject::DecapRoute { .. } | KObject::GatewayRoute { .. } => {
            RouteNetlinkMessage::NewRoute(route_message(obj, protocol))
        }
        KObject::Address { .. } => RouteNetlinkMessage::NewAddress(address_message(obj, protocol)),
        KObject::Rule { .. } => RouteNetlinkMessage::NewRule(rule_message(obj, protocol)),
        KObject::ProxyNeigh { .. } => {
            RouteNetlinkMessage::NewNeighbour(neigh_message(obj, protocol))
        }
    }
}

/// The message that deletes `obj`. Routes and rules carry our protocol, so the kernel itself
/// refuses to delete someone else's object with the same selectors (addresses: it does not).
pub(crate) fn del_message(obj: &KObject, protocol: u8) -> RouteNetlinkMessage {
    match obj {
        KObject::EncapRoute { .. } | KObject::DecapRoute { .. } | KObject::GatewayRoute { .. } => {
            RouteNetlinkMessage::DelRoute(route_message(obj, protocol))
        }
        KObject::Address { .. } => RouteNetlinkMessage::DelAddress(address_message(obj, protocol)),
        KObject::Rule { .. } => RouteNetlinkMessage::DelRule(rule_message(obj, protocol)),
        KObject::ProxyNeigh { .. } => {
            RouteNetlinkMessage::DelNeighbour(neigh_message(obj, protocol))
        }
    }
}

fn header_table(table: u32) -> u8 {
    // Tables above 255 only fit RTA_TABLE / FRA_TABLE; the header then says "unspecified".
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn route_message(obj: &KObject, protocol: u8) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.protocol = RouteProtocol::from(protocol);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    match *obj {
        KObject::EncapRoute {
            dst,
            src,
            tunnel_dst,
            oif,
            table,
        } => {
            m.header.destination_prefix_length = dst.prefix();
            m.header.table = header_table(table);
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet6(
                    dst.network(),
                )));
            if let Some(src) = src {
                m.header.source_prefix_length = src.prefix();
                m.attributes
                    .push(RouteAttribute::Source(RouteAddress::Inet6(src.network())));
            }
            m.attributes.push(RouteAttribute::Table(table));
            m.attributes.push(RouteAttribute::Oif(oif));
            let mut seg6 = Seg6Header::default();
            seg6.mode = Seg6Mode::Other(SEG6_MODE_ENCAP_RED);
            seg6.segments = vec![tunnel_dst];
            m.attributes
                .push(RouteAttribute::EncapType(RouteLwEnCapType::Seg6));
            m.attributes
                .push(RouteAttribute::Encap(vec![RouteLwTunnelEncap::Seg6(
                    RouteSeg6IpTunnel::Seg6(seg6),
                )]));
        }
        KObject::DecapRoute {
            local,
            oif,
            table,
            inner_table,
        } => {
            m.header.destination_prefix_length = 128;
            m.header.table = header_table(table);
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet6(local)));
            m.attributes.push(RouteAttribute::Table(table));
            m.attributes.push(RouteAttribute::Oif(oif));
            m.attributes
                .push(RouteAttribute::EncapType(RouteLwEnCapType::Seg6Local));
            m.attributes.push(RouteAttribute::Encap(vec![
                RouteLwTunnelEncap::Seg6Local(RouteSeg6LocalTunnel::Action(
                    Seg6LocalAction::EndDt6,
                )),
                RouteLwTunnelEncap::Seg6Local(RouteSeg6LocalTunnel::Table(inner_table)),
            ]));
        }
        KObject::GatewayRoute {
            dst,
            gateway,
            oif,
            table,
        } => {
            m.header.destination_prefix_length = dst.prefix();
            m.header.table = header_table(table);
            if dst.prefix() > 0 {
                m.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet6(
                        dst.network(),
                    )));
            }
            m.attributes.push(RouteAttribute::Table(table));
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet6(gateway)));
            m.attributes.push(RouteAttribute::Oif(oif));
        }
        KObject::Rule { .. } | KObject::ProxyNeigh { .. } | KObject::Address { .. } => {}
    }
    m
}

fn address_message(obj: &KObject, protocol: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet6;
    if let KObject::Address {
        addr,
        prefix_len,
        ifindex,
    } = *obj
    {
        m.header.index = ifindex;
        m.header.prefix_len = prefix_len;
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        m.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(protocol)));
    }
    m
}

fn rule_message(obj: &KObject, protocol: u8) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = AddressFamily::Inet6;
    if let KObject::Rule {
        pref,
        from,
        to,
        ipproto,
        table,
    } = *obj
    {
        m.header.table = header_table(table);
        // Without FR_ACT_TO_TABLE the kernel stores action 0, which drops matching traffic.
        m.header.action = RuleAction::ToTable;
        m.attributes.push(RuleAttribute::Priority(pref));
        m.attributes.push(RuleAttribute::Table(table));
        if let Some(from) = from {
            m.header.src_len = from.prefix();
            m.attributes
                .push(RuleAttribute::Source(IpAddr::V6(from.network())));
        }
        if let Some(to) = to {
            m.header.dst_len = to.prefix();
            m.attributes
                .push(RuleAttribute::Destination(IpAddr::V6(to.network())));
        }
        if let Some(p) = ipproto {
            m.attributes
                .push(RuleAttribute::IpProtocol(IpProtocol::from(i32::from(p))));
        }
        m.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::from(protocol)));
    }
    m
}

fn neigh_message(obj: &KObject, protocol: u8) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    if let KObject::ProxyNeigh { addr, ifindex } = *obj {
        m.header.ifindex = ifindex;
        m.header.flags = NeighbourFlags::Proxy;
        m.header.state = NeighbourState::Permanent;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                addr,
            )));
        m.attributes
            .push(NeighbourAttribute::Protocol(RouteProtocol::from(protocol)));
    }
    m
}

/// RTM_GETNEIGH for the one proxy entry `obj` (NTF_PROXY, address and interface only: the
/// kernel refuses any other attribute or header field in a get).
pub(crate) fn proxy_get_message(obj: &KObject) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    if let KObject::ProxyNeigh { addr, ifindex } = *obj {
        m.header.ifindex = ifindex;
        m.header.flags = NeighbourFlags::Proxy;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                addr,
            )));
    }
    m
}

/// A dumped object: its protocol tag, and the [`KObject`] it is when it has a shape we install.
pub(crate) struct Dumped {
    pub protocol: u8,
    pub object: Option<KObject>,
    /// The message that deletes exactly this object, also when `object` is None.
    pub delete: RouteNetlinkMessage,
    /// For messages about an object `object` cannot describe.
    pub describe: String,
}

fn net(addr: Ipv6Addr, prefix: u8) -> Option<Ipv6Network> {
    Ipv6Network::new_checked(addr, prefix).map(masked)
}

pub(crate) fn parse_route(m: &RouteMessage) -> Option<Dumped> {
    if m.header.address_family != AddressFamily::Inet6 {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let (mut dst, mut src, mut oif) = (Ipv6Addr::UNSPECIFIED, None, None);
    let (mut encap_type, mut encap, mut extra) = (None, None, false);
    let mut gateway = None;
    let mut priority = None;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = *a,
            RouteAttribute::Source(RouteAddress::Inet6(a)) => src = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::EncapType(t) => encap_type = Some(*t),
            RouteAttribute::Encap(e) => encap = Some(e),
            RouteAttribute::Priority(p) => priority = Some(*p),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) if gateway.is_none() => {
                gateway = Some(*g)
            }
            RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_) | RouteAttribute::Via(_) => {
                extra = true
            }
            _ => {}
        }
    }
    let dst_net = net(dst, m.header.destination_prefix_length)?;
    let src_net = match src {
        Some(a) => Some(net(a, m.header.source_prefix_length)?),
        None => None,
    };
    // An encapsulating route through a gateway is no shape we install.
    extra |= gateway.is_some() && encap_type.is_some();
    let object = match (m.header.kind, encap_type, encap, oif, extra) {
        (RouteType::Unicast, None, None, Some(oif), false) if src_net.is_none() => {
            gateway.map(|gateway| KObject::GatewayRoute {
                dst: dst_net,
                gateway,
                oif,
                table,
            })
        }
        (RouteType::Unicast, Some(RouteLwEnCapType::Seg6), Some(encap), Some(oif), false) => {
            seg6_destination(encap).map(|tunnel_dst| KObject::EncapRoute {
                dst: dst_net,
                src: src_net,
                tunnel_dst,
                oif,
                table,
            })
        }
        (RouteType::Unicast, Some(RouteLwEnCapType::Seg6Local), Some(encap), Some(oif), false)
            if dst_net.prefix() == 128 && src_net.is_none() =>
        {
            end_dt6_table(encap).map(|inner_table| KObject::DecapRoute {
                local: dst,
                oif,
                table,
                inner_table,
            })
        }
        _ => None,
    };
    // A minimal delete: the kernel matches on what is given, so leave out the encapsulation
    // (and keep the metric so the right one of several same-prefix routes goes).
    let mut del = RouteMessage::default();
    del.header = m.header.clone();
    del.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
    if let Some(a) = src {
        del.attributes
            .push(RouteAttribute::Source(RouteAddress::Inet6(a)));
    }
    del.attributes.push(RouteAttribute::Table(table));
    if let Some(p) = priority {
        del.attributes.push(RouteAttribute::Priority(p));
    }
    if let Some(i) = oif {
        del.attributes.push(RouteAttribute::Oif(i));
    }
    Some(Dumped {
        protocol: u8::from(m.header.protocol),
        object,
        delete: RouteNetlinkMessage::DelRoute(del),
        describe: format!("route {dst_net} table {table} (a shape mipcast does not install)"),
    })
}

fn seg6_destination(encap: &[RouteLwTunnelEncap]) -> Option<Ipv6Addr> {
    let mut found = None;
    for e in encap {
        match e {
            RouteLwTunnelEncap::Seg6(RouteSeg6IpTunnel::Seg6(h))
                if h.mode == Seg6Mode::Other(SEG6_MODE_ENCAP_RED) && h.hmac.is_none() =>
            {
                match h.segments.as_slice() {
                    [one] => found = Some(*one),
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    found
}

fn end_dt6_table(encap: &[RouteLwTunnelEncap]) -> Option<u32> {
    let (mut action_ok, mut table) = (false, None);
    for e in encap {
        match e {
            RouteLwTunnelEncap::Seg6Local(RouteSeg6LocalTunnel::Action(
                Seg6LocalAction::EndDt6,
            )) => action_ok = true,
            RouteLwTunnelEncap::Seg6Local(RouteSeg6LocalTunnel::Table(t)) => table = Some(*t),
            // The kernel reports the (empty) counters attribute of every seg6local route.
            RouteLwTunnelEncap::Seg6Local(RouteSeg6LocalTunnel::Other(_)) => {}
            _ => return None,
        }
    }
    table.filter(|_| action_ok)
}

pub(crate) fn parse_rule(m: &RuleMessage) -> Option<Dumped> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let (mut pref, mut src, mut dst, mut ipproto) = (0, None, None, None);
    let mut protocol = 0u8;
    let mut extra =
        m.header.action != RuleAction::ToTable || m.header.flags.bits() & FIB_RULE_INVERT != 0;
    for attr in &m.attributes {
        match attr {
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => pref = *p,
            RuleAttribute::Source(IpAddr::V6(a)) => src = Some(*a),
            RuleAttribute::Destination(IpAddr::V6(a)) => dst = Some(*a),
            RuleAttribute::IpProtocol(p) => ipproto = u8::try_from(i32::from(*p)).ok(),
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            RuleAttribute::SuppressPrefixLen(v) | RuleAttribute::SuppressIfGroup(v) => {
                extra |= *v != u32::MAX
            }
            RuleAttribute::FwMark(v) | RuleAttribute::Goto(v) => extra |= *v != 0,
            RuleAttribute::TunId(v) => extra |= *v != 0,
            RuleAttribute::L3MDev(v) => extra |= *v,
            RuleAttribute::Iifname(_)
            | RuleAttribute::Oifname(_)
            | RuleAttribute::UidRange(_)
            | RuleAttribute::SourcePortRange(_)
            | RuleAttribute::DestinationPortRange(_)
            | RuleAttribute::Realm(_) => extra = true,
            _ => {}
        }
    }
    let from = match src {
        Some(a) => Some(net(a, m.header.src_len)?),
        None => None,
    };
    let to = match dst {
        Some(a) => Some(net(a, m.header.dst_len)?),
        None => None,
    };
    let object = (!extra).then_some(KObject::Rule {
        pref,
        from,
        to,
        ipproto,
        table,
    });
    Some(Dumped {
        protocol,
        object,
        // Sending a dumped rule back as RTM_DELRULE is how `ip rule flush` deletes exactly it.
        delete: RouteNetlinkMessage::DelRule(m.clone()),
        describe: format!("rule pref {pref} lookup {table} (a shape mipcast does not install)"),
    })
}

pub(crate) fn parse_address(m: &AddressMessage) -> Option<Dumped> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut addr = None;
    // No IFA_PROTO: an address added without one (by hand, by older software).
    let mut protocol = 0u8;
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Address(IpAddr::V6(a)) => addr = Some(*a),
            AddressAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    let object = KObject::Address {
        addr: addr?,
        prefix_len: m.header.prefix_len,
        ifindex: m.header.index,
    };
    Some(Dumped {
        protocol,
        object: Some(object),
        delete: RouteNetlinkMessage::DelAddress(address_message(&object, protocol)),
        describe: object.to_string(),
    })
}

pub(crate) fn parse_proxy(m: &NeighbourMessage) -> Option<Dumped> {
    if m.header.family != AddressFamily::Inet6 || !m.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    let mut addr = None;
    let mut protocol = 0u8;
    for attr in &m.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => addr = Some(*a),
            NeighbourAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    let object = KObject::ProxyNeigh {
        addr: addr?,
        ifindex: m.header.ifindex,
    };
    Some(Dumped {
        protocol,
        object: Some(object),
        delete: RouteNetlinkMessage::DelNeighbour(neigh_message(&object, protocol)),
        describe: object.to_string(),
    })
}

/// True for `lookup local` with no selectors: the rule [`ensure_local_rule_moved`] manages.
///
/// [`ensure_local_rule_moved`]: super::Kernel::ensure_local_rule_moved
pub(crate) fn is_local_lookup(obj: &KObject) -> Option<u32> {
    match *obj {
        KObject::Rule {
            pref,
            from: None,
            to: None,
            ipproto: None,
            table: RT_TABLE_LOCAL,
        } => Some(pref),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Vec<KObject> {
        vec![
            KObject::EncapRoute {
                dst: "2001:db8::1/128".parse().unwrap(),
                src: None,
                tunnel_dst: "ff35::1".parse().unwrap(),
                oif: 3,
                table: 254,
            },
            KObject::EncapRoute {
                dst: "::/0".parse().unwrap(),
                src: Some("2001:db8:5::1/128".parse().unwrap()),
                tunnel_dst: "2001:db8::2".parse().unwrap(),
                oif: 4,
                table: 70000,
            },
            KObject::DecapRoute {
                local: "2001:db8::2".parse().unwrap(),
                oif: 2,
                table: 100,
                inner_table: 254,
            },
            KObject::Rule {
                pref: 10,
                from: Some("2001:db8::9/128".parse().unwrap()),
                to: Some("2001:db8::2/128".parse().unwrap()),
                ipproto: Some(41),
                table: 100,
            },
            KObject::ProxyNeigh {
                addr: "2001:db8::77".parse().unwrap(),
                ifindex: 5,
            },
            KObject::Address {
                addr: "2001:db8:7::5".parse().unwrap(),
                prefix_len: 64,
                ifindex: 6,
            },
            KObject::GatewayRoute {
                dst: "::/0".parse().unwrap(),
                gateway: "fe80::1".parse().unwrap(),
                oif: 6,
                table: 254,
            },
            KObject::GatewayRoute {
                dst: "2001:db8:9::/48".parse().unwrap(),
                gateway: "2001:db8:7::1".parse().unwrap(),
                oif: 6,
                table: 70000,
            },
        ]
    }

    /// Through the wire format: emit with netlink-packet-route, parse back, same object.
    #[test]
    fn objects_survive_emit_and_parse() {
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload::InnerMessage};
        for obj in objects() {
            let mut msg = NetlinkMessage::from(new_message(&obj, 158));
            msg.finalize();
            let mut buf = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut buf);
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
            let back = match parsed.payload {
                InnerMessage(RouteNetlinkMessage::NewRoute(m)) => parse_route(&m),
                InnerMessage(RouteNetlinkMessage::NewRule(m)) => parse_rule(&m),
                InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => parse_proxy(&m),
                InnerMessage(RouteNetlinkMessage::NewAddress(m)) => parse_address(&m),
                other => panic!("unexpected {other:?}"),
            }
            .unwrap();
            assert_eq!(back.protocol, 158);
            assert_eq!(back.object, Some(obj), "{obj}");
        }
    }

    #[test]
    fn encap_red_mode_is_three_on_the_wire() {
        let obj = objects()[0];
        let mut msg = netlink_packet_core::NetlinkMessage::from(new_message(&obj, 158));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        // SEG6_IPTUNNEL_SRH value: u32 mode, then an 8-byte SRH and the segment (ff35::1).
        let seg = "ff35::1".parse::<Ipv6Addr>().unwrap().octets();
        let at = buf
            .windows(16)
            .position(|w| w == seg)
            .expect("segment in message");
        assert_eq!(&buf[at - 12..at - 8], &3u32.to_ne_bytes());
    }
}
