//! Terminal multicast groups: each mobile terminal has its own group, a configured /64
//! multicast prefix followed by the EUI-64 interface identifier of the terminal's interface.
//! The MMA tunnels a terminal's traffic to (S = MMA, G = its group), and the terminal joins
//! that (S,G) wherever it attaches inside the site.
//!
//! Default prefix `ff35::/64`:
//! - `ff` multicast; flags `3` = P and T set with a zero network prefix, which together with
//!   the flags makes `ff3x::/32` the source-specific multicast range (RFC 3306 §6, RFC 4607 §1).
//!   Routers and hosts then treat the group as SSM: no RP, no shared tree, only (S,G) joins,
//!   and a listener only receives from the sources it named (the MMA).
//! - scope `5` = site-local (RFC 4291 §2.7): the tunnel packets never leave the site, which is
//!   exactly the MMA's domain.
//!
//! RFC 3306 assigns SSM group IDs only in the low 32 bits (`ff3x::/96`); mipcast deliberately
//! uses the low 64 bits for the EUI-64 so a group is derived from the terminal without any
//! allocation protocol. The addresses stay inside `ff3x::/32`, which is what SSM routers check.
use std::net::Ipv6Addr;

use crate::{Error, Result};

/// Default terminal group prefix: `ff35::/64` (see the module documentation for why).
pub const DEFAULT_GROUP_PREFIX: Ipv6Addr = Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, 0);
/// Length of every terminal group prefix: the interface identifier fills the other 64 bits.
pub const GROUP_PREFIX_LEN: u8 = 64;

/// The modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 Appendix A): `ff:fe`
/// inserted in the middle and the universal/local bit inverted.
pub fn eui64_from_mac(mac: [u8; 6]) -> [u8; 8] {
    let [a, b, c, d, e, f] = mac;
    [a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]
}

/// The terminal group for interface identifier `iid` under `prefix`/`prefix_len`. The prefix
/// must be multicast and exactly /64; only its first 64 bits are used.
pub fn terminal_group(prefix: Ipv6Addr, prefix_len: u8, iid: [u8; 8]) -> Result<Ipv6Addr> {
    if !prefix.is_multicast() {
        return Err(Error::Malformed("terminal group prefix is not multicast"));
    }
    if prefix_len != GROUP_PREFIX_LEN {
        return Err(Error::Malformed("terminal group prefix length is not 64"));
    }
    let p = prefix.octets();
    let [p0, p1, p2, p3, p4, p5, p6, p7, ..] = p;
    let [i0, i1, i2, i3, i4, i5, i6, i7] = iid;
    Ok(Ipv6Addr::from([
        p0, p1, p2, p3, p4, p5, p6, p7, i0, i1, i2, i3, i4, i5, i6, i7,
    ]))
}

/// True when the first `prefix_len` bits of `group` equal those of `prefix`. A `prefix_len`
/// above 128 matches nothing.
pub fn group_in_prefix(group: Ipv6Addr, prefix: Ipv6Addr, prefix_len: u8) -> bool {
    crate::prefix::prefix_contains(prefix, prefix_len, group)
}

/// The low 64 bits of `addr`: the interface identifier of a terminal group.
pub fn iid_of(addr: Ipv6Addr) -> [u8; 8] {
    let [_, _, _, _, _, _, _, _, i0, i1, i2, i3, i4, i5, i6, i7] = addr.octets();
    [i0, i1, i2, i3, i4, i5, i6, i7]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_matches_rfc4291() {
        // RFC 4291 Appendix A example: 34-56-78-9A-BC-DE -> 3656:78ff:fe9a:bcde.
        assert_eq!(
            eui64_from_mac([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]),
            [0x36, 0x56, 0x78, 0xff, 0xfe, 0x9a, 0xbc, 0xde]
        );
        // A locally administered MAC (as veth gets) has the bit cleared instead.
        assert_eq!(
            eui64_from_mac([0x02, 0, 0, 0, 0, 1]),
            [0, 0, 0, 0xff, 0xfe, 0, 0, 1]
        );
    }

    #[test]
    fn group_from_default_prefix() {
        let iid = eui64_from_mac([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]);
        let g = terminal_group(DEFAULT_GROUP_PREFIX, 64, iid).unwrap();
        assert_eq!(g, "ff35::3656:78ff:fe9a:bcde".parse::<Ipv6Addr>().unwrap());
        assert!(group_in_prefix(g, DEFAULT_GROUP_PREFIX, 64));
        assert!(group_in_prefix(g, "ff30::".parse().unwrap(), 12));
        assert!(!group_in_prefix(g, "ff3e::".parse().unwrap(), 16));
        assert!(group_in_prefix(g, Ipv6Addr::UNSPECIFIED, 0));
        assert!(group_in_prefix(g, g, 128));
        assert!(!group_in_prefix(g, g, 129));
        assert_eq!(iid_of(g), iid);
    }

    #[test]
    fn rejects_bad_prefixes() {
        let iid = [1; 8];
        assert!(terminal_group("2001:db8::".parse().unwrap(), 64, iid).is_err());
        assert!(terminal_group(DEFAULT_GROUP_PREFIX, 48, iid).is_err());
        assert!(terminal_group(DEFAULT_GROUP_PREFIX, 96, iid).is_err());
    }
}
