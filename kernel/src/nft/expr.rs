//! The marking rule as nf_tables expressions, written for NEWRULE and recognised in rule dumps.
//!
//! `nft --debug=netlink` shows the rule `ip6 daddr G ip6 nexthdr ipv6 meta pkttype set host` as
//!
//! ```text
//! [ payload load 16b @ network header + 24 => reg 1 ]
//! [ cmp eq reg 1 <G> ]
//! [ payload load 1b @ network header + 6 => reg 1 ]
//! [ cmp eq reg 1 0x00000029 ]
//! [ immediate reg 1 0x00000000 ]
//! [ meta set pkttype with reg 1 ]
//! ```
//!
//! and we build exactly that list. A dumped rule is ours for group G only if it decodes to the
//! very list we would write for G, so a rule someone else put in our table is never mistaken
//! for a group.
use std::net::Ipv6Addr;

use super::wire::{attr, be_u32, find, Attrs};

/// `NFT_REG_1`: the first 16-byte register.
const NFT_REG_1: u32 = 1;
/// `NFT_PAYLOAD_NETWORK_HEADER`.
const NETWORK_HEADER: u32 = 1;
/// Offsets of the IPv6 header fields we match.
const IP6_DADDR_OFFSET: u32 = 24;
const IP6_NEXTHDR_OFFSET: u32 = 6;
/// `IPPROTO_IPV6`: the outer packet is IPv6-in-IPv6 (seg6 encap.red carries no SRH).
const IPPROTO_IPV6: u8 = 41;
/// `NFT_CMP_EQ`.
const CMP_EQ: u32 = 0;
/// `NFT_META_PKTTYPE`.
const META_PKTTYPE: u32 = 19;
/// `PACKET_HOST` from `linux/if_packet.h`.
const PACKET_HOST: u8 = 0;

/// `NFT_META_IIF`: the input interface's index (4 bytes, host byte order).
const META_IIF: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Expr {
    PayloadLoad {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    MetaSet {
        key: u32,
        sreg: u32,
    },
    MetaLoad {
        key: u32,
        dreg: u32,
    },
    /// Written at 0; a dump carries the kernel's counts.
    Counter {
        bytes: u64,
        packets: u64,
    },
}

/// The expressions of `meta iif <ifindex> ip6 nexthdr ipv6 counter`: counts the tunnelled
/// (IPv6-in-IPv6) packets arriving on one interface, before decapsulation. The mobile node
/// reads them around a move to measure the interruption on its own side.
pub(super) fn link_counter_rule(ifindex: u32) -> Vec<Expr> {
    vec![
        Expr::MetaLoad {
            key: META_IIF,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CMP_EQ,
            data: ifindex.to_ne_bytes().to_vec(),
        },
        Expr::PayloadLoad {
            base: NETWORK_HEADER,
            offset: IP6_NEXTHDR_OFFSET,
            len: 1,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CMP_EQ,
            data: vec![IPPROTO_IPV6],
        },
        Expr::Counter {
            bytes: 0,
            packets: 0,
        },
    ]
}

/// (interface index, packets counted) of a dumped rule, if it is exactly a
/// [`link_counter_rule`].
pub(super) fn link_count_of(exprs: &[Expr]) -> Option<(u32, u64)> {
    let Some(Expr::Cmp { data, .. }) = exprs.get(1) else {
        return None;
    };
    let ifindex = u32::from_ne_bytes(data.as_slice().try_into().ok()?);
    let (Some(Expr::Counter { packets, .. }), Some(head)) = (exprs.get(4), exprs.get(..4)) else {
        return None;
    };
    let wanted = link_counter_rule(ifindex);
    (exprs.len() == wanted.len() && wanted.get(..4) == Some(head)).then_some((ifindex, *packets))
}

/// The expressions that mark IPv6-in-IPv6 packets to `group` as addressed to this host.
pub(super) fn marking_rule(group: Ipv6Addr) -> Vec<Expr> {
    vec![
        Expr::PayloadLoad {
            base: NETWORK_HEADER,
            offset: IP6_DADDR_OFFSET,
            len: 16,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CMP_EQ,
            data: group.octets().to_vec(),
        },
        Expr::PayloadLoad {
            base: NETWORK_HEADER,
            offset: IP6_NEXTHDR_OFFSET,
            len: 1,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: CMP_EQ,
            data: vec![IPPROTO_IPV6],
        },
        Expr::Immediate {
            dreg: NFT_REG_1,
            data: vec![PACKET_HOST],
        },
        Expr::MetaSet {
            key: META_PKTTYPE,
            sreg: NFT_REG_1,
        },
    ]
}

/// Writes the value of `NFTA_RULE_EXPRESSIONS`.
pub(super) fn encode(exprs: &[Expr], a: &mut Attrs<'_>) {
    for e in exprs {
        a.nested(attr::LIST_ELEM, |a| match e {
            Expr::PayloadLoad {
                base,
                offset,
                len,
                dreg,
            } => {
                a.string(attr::EXPR_NAME, "payload");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u32_be(attr::PAYLOAD_DREG, *dreg);
                    a.u32_be(attr::PAYLOAD_BASE, *base);
                    a.u32_be(attr::PAYLOAD_OFFSET, *offset);
                    a.u32_be(attr::PAYLOAD_LEN, *len);
                });
            }
            Expr::Cmp { sreg, op, data } => {
                a.string(attr::EXPR_NAME, "cmp");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u32_be(attr::CMP_SREG, *sreg);
                    a.u32_be(attr::CMP_OP, *op);
                    a.nested(attr::CMP_DATA, |a| a.bytes(attr::DATA_VALUE, data));
                });
            }
            Expr::Immediate { dreg, data } => {
                a.string(attr::EXPR_NAME, "immediate");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u32_be(attr::IMMEDIATE_DREG, *dreg);
                    a.nested(attr::IMMEDIATE_DATA, |a| a.bytes(attr::DATA_VALUE, data));
                });
            }
            Expr::MetaSet { key, sreg } => {
                a.string(attr::EXPR_NAME, "meta");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u32_be(attr::META_KEY, *key);
                    a.u32_be(attr::META_SREG, *sreg);
                });
            }
            Expr::MetaLoad { key, dreg } => {
                a.string(attr::EXPR_NAME, "meta");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u32_be(attr::META_DREG, *dreg);
                    a.u32_be(attr::META_KEY, *key);
                });
            }
            Expr::Counter { bytes, packets } => {
                a.string(attr::EXPR_NAME, "counter");
                a.nested(attr::EXPR_DATA, |a| {
                    a.u64_be(attr::COUNTER_BYTES, *bytes);
                    a.u64_be(attr::COUNTER_PACKETS, *packets);
                });
            }
        });
    }
}

/// Decodes the value of a dumped `NFTA_RULE_EXPRESSIONS`; `None` if any expression is one we
/// never write (so the rule cannot be ours).
pub(super) fn decode(list: &[u8]) -> Option<Vec<Expr>> {
    super::wire::attributes(list)
        .map(|(kind, elem)| {
            if kind == attr::LIST_ELEM {
                decode_one(elem)
            } else {
                None
            }
        })
        .collect()
}

fn decode_one(elem: &[u8]) -> Option<Expr> {
    let name = find(elem, attr::EXPR_NAME)?;
    let data = find(elem, attr::EXPR_DATA)?;
    let u32_attr = |kind| find(data, kind).and_then(be_u32);
    let value = |kind| {
        find(data, kind)
            .and_then(|d| find(d, attr::DATA_VALUE))
            .map(<[u8]>::to_vec)
    };
    match name.strip_suffix(&[0]).unwrap_or(name) {
        b"payload" => Some(Expr::PayloadLoad {
            base: u32_attr(attr::PAYLOAD_BASE)?,
            offset: u32_attr(attr::PAYLOAD_OFFSET)?,
            len: u32_attr(attr::PAYLOAD_LEN)?,
            dreg: u32_attr(attr::PAYLOAD_DREG)?,
        }),
        b"cmp" => Some(Expr::Cmp {
            sreg: u32_attr(attr::CMP_SREG)?,
            op: u32_attr(attr::CMP_OP)?,
            data: value(attr::CMP_DATA)?,
        }),
        b"immediate" => Some(Expr::Immediate {
            dreg: u32_attr(attr::IMMEDIATE_DREG)?,
            data: value(attr::IMMEDIATE_DATA)?,
        }),
        // A meta *load* has a DREG instead of an SREG.
        b"meta" if find(data, attr::META_DREG).is_none() => Some(Expr::MetaSet {
            key: u32_attr(attr::META_KEY)?,
            sreg: u32_attr(attr::META_SREG)?,
        }),
        b"meta" => Some(Expr::MetaLoad {
            key: u32_attr(attr::META_KEY)?,
            dreg: u32_attr(attr::META_DREG)?,
        }),
        b"counter" => Some(Expr::Counter {
            bytes: find(data, attr::COUNTER_BYTES).and_then(super::wire::be_u64)?,
            packets: find(data, attr::COUNTER_PACKETS).and_then(super::wire::be_u64)?,
        }),
        _ => None,
    }
}

/// The group a dumped rule marks, if the rule is exactly our marking rule.
pub(super) fn group_of(exprs: &[Expr]) -> Option<Ipv6Addr> {
    let Some(Expr::Cmp { data, .. }) = exprs.get(1) else {
        return None;
    };
    let octets: [u8; 16] = data.as_slice().try_into().ok()?;
    let group = Ipv6Addr::from(octets);
    (exprs == marking_rule(group).as_slice()).then_some(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s = s.trim();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const G: &str = "ff35::200:ff:fe00:100";

    /// `NFTA_RULE_EXPRESSIONS` as `nft` 1.0.6 sent it for the rule with this G (strace).
    #[test]
    fn encoding_matches_what_nft_sends() {
        let nft = hex(include_str!("testdata/nft-1.0.6-newrule-exprs.hex"));
        let mut ours = Vec::new();
        let mut a = super::super::wire::Attrs(&mut ours);
        encode(&marking_rule(G.parse().unwrap()), &mut a);
        assert_eq!(ours, nft);
    }

    /// The same expressions as kernel 6.18 dumped them (no NLA_F_NESTED flags in dumps).
    #[test]
    fn kernel_dump_decodes_to_the_group() {
        let dumped = hex(include_str!("testdata/kernel-6.18-dump-exprs.hex"));
        let exprs = decode(&dumped).expect("all expressions known");
        assert_eq!(group_of(&exprs), Some(G.parse().unwrap()));
        let sent = hex(include_str!("testdata/nft-1.0.6-newrule-exprs.hex"));
        assert_eq!(decode(&sent), Some(exprs));
    }

    #[test]
    fn link_counter_rules_round_trip_and_are_told_apart() {
        let mut bytes = Vec::new();
        encode(
            &link_counter_rule(7),
            &mut super::super::wire::Attrs(&mut bytes),
        );
        let mut exprs = decode(&bytes).expect("all expressions known");
        assert_eq!(link_count_of(&exprs), Some((7, 0)));
        assert_eq!(group_of(&exprs), None);
        exprs[4] = Expr::Counter {
            bytes: 1200,
            packets: 12,
        };
        assert_eq!(link_count_of(&exprs), Some((7, 12)));
        assert_eq!(link_count_of(&exprs[..4]), None);
        assert_eq!(link_count_of(&marking_rule(G.parse().unwrap())), None);
        exprs[3] = Expr::Cmp {
            sreg: 1,
            op: 0,
            data: vec![17],
        };
        assert_eq!(link_count_of(&exprs), None);
    }

    #[test]
    fn other_rules_are_not_ours() {
        let g: Ipv6Addr = G.parse().unwrap();
        let mut exprs = marking_rule(g);
        exprs[3] = Expr::Cmp {
            sreg: 1,
            op: 0,
            data: vec![17],
        };
        assert_eq!(group_of(&exprs), None);
        assert_eq!(group_of(&marking_rule(g)[..5]), None);
        assert_eq!(group_of(&[]), None);
        // A truncated list stops decoding rather than inventing expressions.
        let dumped = hex(include_str!("testdata/kernel-6.18-dump-exprs.hex"));
        for cut in 0..dumped.len() {
            if let Some(e) = decode(&dumped[..cut]) {
                assert_eq!(group_of(&e), None, "cut at {cut}");
            }
        }
    }
}
