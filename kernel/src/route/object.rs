//! How the kernel identifies and orders the [`KObject`]s it is given (the objects themselves
//! are plain values of the I/O-free `mipcast-proto` crate).
use ipnetwork::Ipv6Network;
use std::net::Ipv6Addr;

pub use mipcast_proto::KObject;
pub(crate) use mipcast_proto::{host_net, masked};

/// What identifies an object in the kernel: two objects with the same key cannot coexist, so
/// one replaces the other (routes: table + destination + source; proxy entries: address +
/// interface). Rules and addresses are keyed by every field: rules have no replace, and a
/// replace of an address keeps its old prefix length (seen on 6.18), so a different prefix
/// length must be a delete and an add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Route {
        table: u32,
        dst: Ipv6Network,
        src: Option<Ipv6Network>,
    },
    Whole(KObject),
    Proxy {
        addr: Ipv6Addr,
        ifindex: u32,
    },
}

/// The kernel identity of an (already normalized) object.
pub(crate) fn key(object: &KObject) -> Key {
    match *object {
        KObject::EncapRoute {
            dst, src, table, ..
        } => Key::Route { table, dst, src },
        KObject::DecapRoute { local, table, .. } => Key::Route {
            table,
            dst: host_net(local),
            src: None,
        },
        KObject::GatewayRoute { dst, table, .. } => Key::Route {
            table,
            dst,
            src: None,
        },
        whole @ (KObject::Rule { .. } | KObject::Address { .. }) => Key::Whole(whole),
        KObject::ProxyNeigh { addr, ifindex } => Key::Proxy { addr, ifindex },
    }
}

/// Rank used to order a batch: addresses, then routes, proxy entries and rules when
/// adding, so a route never lacks its source address and a rule never points at a table
/// that is still being filled; the reverse when removing.
pub(crate) fn install_rank(object: &KObject) -> u8 {
    match object {
        KObject::Address { .. } => 0,
        KObject::EncapRoute { .. } | KObject::DecapRoute { .. } | KObject::GatewayRoute { .. } => 1,
        KObject::ProxyNeigh { .. } => 2,
        KObject::Rule { .. } => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_keyed_by_table_destination_and_source() {
        let a = KObject::EncapRoute {
            dst: "2001:db8::1/64".parse().unwrap(),
            src: Some("2001:db8:1::7/48".parse().unwrap()),
            tunnel_dst: "2001:db8::9".parse().unwrap(),
            oif: 1,
            table: 7,
        }
        .normalized();
        let b = match a {
            KObject::EncapRoute {
                dst,
                src,
                oif,
                table,
                ..
            } => KObject::EncapRoute {
                dst,
                src,
                tunnel_dst: "ff35::2".parse().unwrap(),
                oif,
                table,
            },
            other => other,
        };
        assert_ne!(a, b);
        assert_eq!(key(&a), key(&b));
    }
}
