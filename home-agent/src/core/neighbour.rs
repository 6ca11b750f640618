//! Neighbour Discovery on behalf of registered home addresses (RFC 6275 §10.4.1), in user
//! space: the decision whether a Neighbor Solicitation seen on the home link is answered,
//! and the Ethernet frame of the answer. Pure: the shell owns the packet socket.
//!
//! Why not the kernel's proxy ND: one proxy entry per home address costs O(n) to insert
//! (the kernel keeps them in a 16-bucket hash and joins one solicited-node group per entry),
//! so 100,000 home addresses took many minutes of kernel time. Here one binding-cache lookup
//! answers a solicitation, whatever the number of bindings.
//!
//! What is answered (RFC 4861 §7.1.1 validity, then §7.2.3/§7.2.4 with RFC 6275 §10.4.1):
//! - an address resolution or unreachability probe (NS from a unicast source) for a
//!   registered home address: a unicast NA to the solicitor, S and O set, R clear, with the
//!   home agent's link-layer address as the target link-layer address;
//! - Duplicate Address Detection (NS from `::`) for a registered home address: the address
//!   is in use (by the mobile node, away), so it is defended with an NA to all-nodes, S clear
//!   and O set, which makes the other host's DAD fail.
//!
//! And on a new registration, an unsolicited NA to all-nodes (O set) so that neighbours
//! holding the mobile node's own link-layer address for the home address switch to ours
//! (RFC 6275 §10.4.1: "multicast onto the home link ... a Neighbor Advertisement").
use std::net::Ipv6Addr;

use mipcast_wire::nd::{self, NeighborAdvert, NeighborSolicit};

const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETH_HEADER_LEN: usize = 14;
const IPV6_HEADER_LEN: usize = 40;
/// RFC 4861 §6.1: ND messages are sent, and accepted, only with hop limit 255.
const ND_HOP_LIMIT: u8 = 255;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Who the home agent is on the home link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkIdentity {
    /// The home interface's MAC: the link-layer address advertised for every home address.
    pub mac: [u8; 6],
    /// The source of our advertisements: an address of the home interface, its link-local
    /// one when it has one (RFC 4861 §7.2.4 allows any; the kernel, and clients such as
    /// ndisc6 that check the reply's scope, use link-local).
    pub address: Ipv6Addr,
}

/// A valid Neighbor Solicitation taken off the home link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// Ethernet source of the frame.
    pub eth_src: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub ns: NeighborSolicit,
}

impl Solicitation {
    /// Duplicate Address Detection (unspecified source, RFC 4862 §5.4.2).
    pub fn is_dad(&self) -> bool {
        self.src.is_unspecified()
    }
}

/// Why a frame is not a Neighbor Solicitation we may act on (a counter label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSolicitation {
    /// Not IPv6/ICMPv6 type 135 at all (the socket filter lets few of these through).
    NotNs,
    Truncated,
    /// Hop limit other than 255: sent from off-link (RFC 4861 §7.1.1).
    HopLimit,
    Checksum,
    /// Bad code, length or options, or a multicast target.
    Malformed,
    /// Unspecified source with a destination other than a solicited-node group, or with a
    /// source link-layer address option (RFC 4861 §7.1.1).
    BadDad,
}

impl NotSolicitation {
    pub fn label(self) -> &'static str {
        match self {
            NotSolicitation::NotNs => "not_ns",
            NotSolicitation::Truncated => "truncated",
            NotSolicitation::HopLimit => "hop_limit",
            NotSolicitation::Checksum => "checksum",
            NotSolicitation::Malformed => "malformed",
            NotSolicitation::BadDad => "bad_dad",
        }
    }
}

/// Parses an Ethernet frame carrying IPv6 with ICMPv6 right after the fixed header (an NS
/// with extension headers is not parsed: hosts do not send them).
pub fn parse_frame(frame: &[u8]) -> Result<Solicitation, NotSolicitation> {
    let (eth, rest) = frame
        .split_first_chunk::<ETH_HEADER_LEN>()
        .ok_or(NotSolicitation::Truncated)?;
    let (_, eth_tail) = eth.split_at(6);
    let (eth_src, ethertype) = eth_tail.split_at(6);
    let eth_src: [u8; 6] = eth_src.try_into().map_err(|_| NotSolicitation::Truncated)?;
    if ethertype != ETHERTYPE_IPV6.to_be_bytes() {
        return Err(NotSolicitation::NotNs);
    }
    let (ip, payload) = rest
        .split_first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(NotSolicitation::Truncated)?;
    let [ver_tc, _, _, _, len_hi, len_lo, next_header, hop_limit, addrs @ ..] = *ip;
    if ver_tc >> 4 != 6 || next_header != nd::IPPROTO_ICMPV6 {
        return Err(NotSolicitation::NotNs);
    }
    if payload.first() != Some(&nd::NEIGHBOR_SOLICITATION) {
        return Err(NotSolicitation::NotNs);
    }
    let (src, dst) = addrs.split_at(16);
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).map_err(|_| NotSolicitation::Truncated)?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).map_err(|_| NotSolicitation::Truncated)?);
    // Ethernet pads short frames: the IPv6 payload length says where the message ends.
    let icmp = payload
        .get(..usize::from(u16::from_be_bytes([len_hi, len_lo])))
        .ok_or(NotSolicitation::Truncated)?;
    if hop_limit != ND_HOP_LIMIT {
        return Err(NotSolicitation::HopLimit);
    }
    nd::verify_checksum(icmp, &src, &dst).map_err(|_| NotSolicitation::Checksum)?;
    let ns = NeighborSolicit::parse(icmp).map_err(|_| NotSolicitation::Malformed)?;
    if src.is_unspecified() && (dst != nd::solicited_node(&ns.target) || ns.source_lladdr.is_some())
    {
        return Err(NotSolicitation::BadDad);
    }
    Ok(Solicitation {
        eth_src,
        src,
        dst,
        ns,
    })
}

/// The answer to `sol` when its target is a registered home address (`registered`), as an
/// Ethernet frame; None when it is not ours to answer.
pub fn answer(sol: &Solicitation, registered: bool, me: &LinkIdentity) -> Option<Vec<u8>> {
    if !registered {
        return None;
    }
    let advert = NeighborAdvert {
        router: false,
        solicited: !sol.is_dad(),
        override_flag: true,
        target: sol.ns.target,
        target_lladdr: Some(me.mac),
    };
    if sol.is_dad() {
        frame(me, multicast_mac(&ALL_NODES), ALL_NODES, &advert)
    } else {
        // RFC 4861 §7.2.4: to the solicitation's source, at its link-layer address (from the
        // option when there is one, else the frame's source).
        let mac = sol.ns.source_lladdr.unwrap_or(sol.eth_src);
        frame(me, mac, sol.src, &advert)
    }
}

/// The unsolicited advertisement for a newly registered home address.
pub fn announce(hoa: Ipv6Addr, me: &LinkIdentity) -> Option<Vec<u8>> {
    let advert = NeighborAdvert {
        router: false,
        solicited: false,
        override_flag: true,
        target: hoa,
        target_lladdr: Some(me.mac),
    };
    frame(me, multicast_mac(&ALL_NODES), ALL_NODES, &advert)
}

/// Ethernet + IPv6 + the advertisement, checksum filled in.
fn frame(
    me: &LinkIdentity,
    eth_dst: [u8; 6],
    dst: Ipv6Addr,
    advert: &NeighborAdvert,
) -> Option<Vec<u8>> {
    let len = advert.buffer_len();
    let mut icmp = vec![0u8; len];
    let n = advert.emit(&mut icmp).ok()?;
    icmp.truncate(n);
    nd::fill_checksum(&mut icmp, &me.address, &dst).ok()?;
    let mut out = Vec::with_capacity(ETH_HEADER_LEN + IPV6_HEADER_LEN + n);
    out.extend_from_slice(&eth_dst);
    out.extend_from_slice(&me.mac);
    out.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&u16::try_from(n).ok()?.to_be_bytes());
    out.extend_from_slice(&[nd::IPPROTO_ICMPV6, ND_HOP_LIMIT]);
    out.extend_from_slice(&me.address.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&icmp);
    Some(out)
}

/// RFC 2464 §7: 33:33 followed by the low 32 bits of the group.
fn multicast_mac(group: &Ipv6Addr) -> [u8; 6] {
    let [.., a, b, c, d] = group.octets();
    [0x33, 0x33, a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HA_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn me() -> LinkIdentity {
        LinkIdentity {
            mac: HA_MAC,
            address: a("2001:db8:1::1"),
        }
    }

    /// A solicitation frame as a host's kernel sends it.
    fn ns_frame(src: &str, dst: &str, target: &str, slla: bool, hop_limit: u8) -> Vec<u8> {
        let ns = NeighborSolicit {
            target: a(target),
            source_lladdr: slla.then_some(HOST_MAC),
        };
        let mut icmp = vec![0; ns.buffer_len()];
        ns.emit(&mut icmp).unwrap();
        nd::fill_checksum(&mut icmp, &a(src), &a(dst)).unwrap();
        let mut f = vec![0x33, 0x33, 0xff, 0, 1, 0];
        f.extend_from_slice(&HOST_MAC);
        f.extend_from_slice(&[
            0x86,
            0xdd,
            0x60,
            0,
            0,
            0,
            0,
            icmp.len() as u8,
            58,
            hop_limit,
        ]);
        f.extend_from_slice(&a(src).octets());
        f.extend_from_slice(&a(dst).octets());
        f.extend_from_slice(&icmp);
        f
    }

    fn parse_na(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, NeighborAdvert) {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
        assert_eq!(frame[21], 255, "hop limit");
        nd::verify_checksum(&frame[54..], &src, &dst).unwrap();
        (src, dst, NeighborAdvert::parse(&frame[54..]).unwrap())
    }

    #[test]
    fn resolution_of_a_registered_address_is_answered_unicast_with_our_mac() {
        let f = ns_frame(
            "2001:db8:1::2",
            "ff02::1:ff00:100",
            "2001:db8:1::100",
            true,
            255,
        );
        let sol = parse_frame(&f).unwrap();
        assert!(!sol.is_dad());
        assert_eq!(answer(&sol, false, &me()), None, "unregistered: silence");
        let na = answer(&sol, true, &me()).unwrap();
        assert_eq!(&na[..6], &HOST_MAC, "to the solicitor");
        assert_eq!(&na[6..12], &HA_MAC);
        let (src, dst, adv) = parse_na(&na);
        assert_eq!((src, dst), (a("2001:db8:1::1"), a("2001:db8:1::2")));
        assert_eq!(
            adv,
            NeighborAdvert {
                router: false,
                solicited: true,
                override_flag: true,
                target: a("2001:db8:1::100"),
                target_lladdr: Some(HA_MAC),
            }
        );
    }

    #[test]
    fn dad_for_a_registered_address_is_defended_to_all_nodes() {
        let f = ns_frame("::", "ff02::1:ff00:100", "2001:db8:1::100", false, 255);
        let sol = parse_frame(&f).unwrap();
        assert!(sol.is_dad());
        let na = answer(&sol, true, &me()).unwrap();
        assert_eq!(&na[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let (_, dst, adv) = parse_na(&na);
        assert_eq!(dst, a("ff02::1"));
        assert!(!adv.solicited && adv.override_flag && !adv.router);
        assert_eq!(adv.target_lladdr, Some(HA_MAC));
    }

    #[test]
    fn invalid_solicitations_are_refused_with_a_reason() {
        let ok = ns_frame(
            "2001:db8:1::2",
            "ff02::1:ff00:100",
            "2001:db8:1::100",
            true,
            255,
        );
        let hop = ns_frame(
            "2001:db8:1::2",
            "ff02::1:ff00:100",
            "2001:db8:1::100",
            true,
            64,
        );
        assert_eq!(parse_frame(&hop), Err(NotSolicitation::HopLimit));
        let mut bad_sum = ok.clone();
        *bad_sum.last_mut().unwrap() ^= 1;
        assert_eq!(parse_frame(&bad_sum), Err(NotSolicitation::Checksum));
        // DAD must go to the target's solicited-node group and carry no SLLA.
        let dad_slla = ns_frame("::", "ff02::1:ff00:100", "2001:db8:1::100", true, 255);
        assert_eq!(parse_frame(&dad_slla), Err(NotSolicitation::BadDad));
        let dad_wrong_group = ns_frame("::", "ff02::1:ff00:101", "2001:db8:1::100", false, 255);
        assert_eq!(parse_frame(&dad_wrong_group), Err(NotSolicitation::BadDad));
        assert_eq!(parse_frame(&ok[..50]), Err(NotSolicitation::Truncated));
        // Ethernet padding after the message is not part of it.
        let mut padded = ok.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(parse_frame(&padded), parse_frame(&ok));
        let mut not_ns = ok;
        not_ns[54] = nd::NEIGHBOR_ADVERTISEMENT;
        assert_eq!(parse_frame(&not_ns), Err(NotSolicitation::NotNs));
    }

    #[test]
    fn announcement_is_unsolicited_with_override() {
        let na = announce(a("2001:db8:1::100"), &me()).unwrap();
        let (_, dst, adv) = parse_na(&na);
        assert_eq!(dst, a("ff02::1"));
        assert!(!adv.solicited && adv.override_flag);
        assert_eq!(adv.target, a("2001:db8:1::100"));
    }
}
