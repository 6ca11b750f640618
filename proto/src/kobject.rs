//! The kernel objects mipcast installs, as plain values a core can keep in a desired set and
//! the kernel crate can program.
use std::fmt;
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use serde::{Deserialize, Serialize};

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;
/// The local routing table.
pub const RT_TABLE_LOCAL: u32 = 255;

/// One route, rule, proxy-ND entry or address we install. Equality is field-wise; compare
/// [`KObject::normalized`] forms (host bits of prefixes cleared), which is what the kernel
/// crate's `list_ours` returns and what reconciliation compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KObject {
    /// `ip -6 route add <dst> [from <src>] encap seg6 mode encap.red segs <tunnel_dst> dev <oif>
    /// table <table>`: plain IPv6-in-IPv6 towards `tunnel_dst` (which may be a multicast group).
    EncapRoute {
        dst: Ipv6Network,
        /// Source prefix of a source-specific route (`from`), if any.
        src: Option<Ipv6Network>,
        tunnel_dst: Ipv6Addr,
        oif: u32,
        table: u32,
    },
    /// `ip -6 route add <local>/128 encap seg6local action End.DT6 table <inner_table> dev <oif>
    /// table <table>`: decapsulates IPv6-in-IPv6 sent to `local` and looks the inner packet up
    /// in `inner_table`.
    DecapRoute {
        local: Ipv6Addr,
        oif: u32,
        table: u32,
        inner_table: u32,
    },
    /// `ip -6 rule add pref <pref> [from <from>] [to <to>] [ipproto <p>] lookup <table>`.
    Rule {
        pref: u32,
        from: Option<Ipv6Network>,
        to: Option<Ipv6Network>,
        ipproto: Option<u8>,
        table: u32,
    },
    /// `ip -6 neigh add proxy <addr> dev <ifindex>`.
    ProxyNeigh { addr: Ipv6Addr, ifindex: u32 },
    /// `ip -6 addr add <addr>/<prefix_len> dev <ifindex> nodad`, tagged through IFA_PROTO.
    /// No DAD: we only add addresses we own by construction (a mobile node's care-of
    /// address), and a tentative address cannot be used as a source for seconds.
    Address {
        addr: Ipv6Addr,
        prefix_len: u8,
        ifindex: u32,
    },
    /// `ip -6 route add <dst> via <gateway> dev <oif> table <table>`: a plain route through a
    /// router (a mobile node's default route for native traffic).
    GatewayRoute {
        dst: Ipv6Network,
        gateway: Ipv6Addr,
        oif: u32,
        table: u32,
    },
}

impl KObject {
    /// The same object with host bits cleared in every prefix, as the kernel stores it.
    pub fn normalized(self) -> KObject {
        match self {
            KObject::EncapRoute {
                dst,
                src,
                tunnel_dst,
                oif,
                table,
            } => KObject::EncapRoute {
                dst: masked(dst),
                src: src.map(masked),
                tunnel_dst,
                oif,
                table,
            },
            KObject::Rule {
                pref,
                from,
                to,
                ipproto,
                table,
            } => KObject::Rule {
                pref,
                from: from.map(masked),
                to: to.map(masked),
                ipproto,
                table,
            },
            KObject::GatewayRoute {
                dst,
                gateway,
                oif,
                table,
            } => KObject::GatewayRoute {
                dst: masked(dst),
                gateway,
                oif,
                table,
            },
            other => other,
        }
    }
}

/// `addr/128`.
pub fn host_net(addr: Ipv6Addr) -> Ipv6Network {
    Ipv6Network::from(addr)
}

/// `net` with its host bits cleared.
pub fn masked(net: Ipv6Network) -> Ipv6Network {
    Ipv6Network::new_checked(net.network(), net.prefix()).unwrap_or(net)
}

fn table_suffix(f: &mut fmt::Formatter<'_>, table: u32) -> fmt::Result {
    write!(f, " table {table}")
}

impl fmt::Display for KObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KObject::EncapRoute {
                dst,
                src,
                tunnel_dst,
                oif,
                table,
            } => {
                write!(f, "encap route {dst}")?;
                if let Some(src) = src {
                    write!(f, " from {src}")?;
                }
                write!(f, " -> {tunnel_dst} dev {oif}")?;
                table_suffix(f, *table)
            }
            KObject::DecapRoute {
                local,
                oif,
                table,
                inner_table,
            } => {
                write!(
                    f,
                    "decap route {local}/128 End.DT6 into table {inner_table} dev {oif}"
                )?;
                table_suffix(f, *table)
            }
            KObject::Rule {
                pref,
                from,
                to,
                ipproto,
                table,
            } => {
                write!(f, "rule pref {pref}")?;
                if let Some(from) = from {
                    write!(f, " from {from}")?;
                }
                if let Some(to) = to {
                    write!(f, " to {to}")?;
                }
                if let Some(p) = ipproto {
                    write!(f, " ipproto {p}")?;
                }
                write!(f, " lookup {table}")
            }
            KObject::ProxyNeigh { addr, ifindex } => {
                write!(f, "proxy neighbour {addr} dev {ifindex}")
            }
            KObject::Address {
                addr,
                prefix_len,
                ifindex,
            } => write!(f, "address {addr}/{prefix_len} dev {ifindex}"),
            KObject::GatewayRoute {
                dst,
                gateway,
                oif,
                table,
            } => {
                write!(f, "route {dst} via {gateway} dev {oif}")?;
                table_suffix(f, *table)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_field() {
        let r = KObject::EncapRoute {
            dst: "2001:db8::1/128".parse().unwrap(),
            src: None,
            tunnel_dst: "ff35::1".parse().unwrap(),
            oif: 3,
            table: 254,
        };
        assert_eq!(
            r.to_string(),
            "encap route 2001:db8::1/128 -> ff35::1 dev 3 table 254"
        );
        let rule = KObject::Rule {
            pref: 10,
            from: Some("2001:db8::5/128".parse().unwrap()),
            to: None,
            ipproto: Some(41),
            table: 100,
        };
        assert_eq!(
            rule.to_string(),
            "rule pref 10 from 2001:db8::5/128 ipproto 41 lookup 100"
        );
    }

    #[test]
    fn normalization_clears_host_bits_and_keys_routes_by_prefix() {
        let a = KObject::EncapRoute {
            dst: "2001:db8::1/64".parse().unwrap(),
            src: Some("2001:db8:1::7/48".parse().unwrap()),
            tunnel_dst: "2001:db8::9".parse().unwrap(),
            oif: 1,
            table: 7,
        }
        .normalized();
        let KObject::EncapRoute { dst, src, .. } = a else {
            panic!("kind changed")
        };
        assert_eq!(dst.ip(), "2001:db8::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(src.map(|s| s.ip()), Some("2001:db8:1::".parse().unwrap()));
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
    }
}
