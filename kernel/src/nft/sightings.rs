//! Route-optimisation detection with the fast path in the kernel: one rule, in a table of its
//! own, that copies the first packet of each new (correspondent, home address) pair the MMA
//! forwards to its site to user space through NFLOG, then stays silent for that pair for
//! `interval_s` (a dynamic set with element timeouts).
//!
//! Where: the MMA decapsulates the home agent's (or a correspondent's) tunnel and the home
//! address's route encapsulates the packet again toward the terminal's group *on the input
//! path* (seg6 lightweight tunnels redirect input), so the forward hook already sees the
//! outer packet `MMA -> G`, IPv6-in-IPv6 without a routing header (encap.red, one segment),
//! with the correspondent's packet right behind it: its source and destination are at network
//! header + 48 and + 64. `nft --debug=netlink` shows the rule
//!
//! ```text
//! table ip6 <table> {
//!   set seen { type ipv6_addr . ipv6_addr; flags dynamic,timeout; timeout <interval>s; size <n>; }
//!   chain sightings { type filter hook forward priority 0; policy accept;
//!     oif <site> ip6 nexthdr ipv6 @nh,384,128 . @nh,512,128 != @seen
//!       add @seen { @nh,384,128 . @nh,512,128 } log group <group> snaplen 80 } }
//!
//!   [ meta load oif => reg 1 ]            [ cmp eq reg 1 <site> ]
//!   [ payload load 1b @ network header + 6 => reg 1 ]   [ cmp eq reg 1 0x29 ]
//!   [ payload load 16b @ network header + 48 => reg 1 ]
//!   [ payload load 16b @ network header + 64 => reg 2 ]
//!   [ lookup reg 1 set seen 0x1 ]         (0x1: inverted)
//!   [ payload load 16b ... + 48 => reg 1 ] [ payload load 16b ... + 64 => reg 2 ]
//!   [ dynset add reg_key 1 set seen ]
//!   [ log group <group> snaplen 80 qthreshold 0 ]
//! ```
//!
//! which is what [`SightingRule::install`] writes. Any incoming interface: the home agents'
//! tunnels and the correspondents' (once optimised, so that a live flow keeps being seen) may
//! arrive on different ones. The accept policy never changes a packet's
//! fate. Per packet the kernel does one set lookup; user space sees one packet per pair per
//! interval (the NFLOG socket reads the inner addresses).
use super::conn;
use super::wire::{attr, Attrs, Batch, MsgType, NFPROTO_IPV6};
use super::{NftError, POLICY_ACCEPT};
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE};

const CHAIN: &str = "sightings";
const SET: &str = "seen";
/// `NF_INET_FORWARD`.
const HOOK_FORWARD: u32 = 2;
/// `NFT_SET_TIMEOUT | NFT_SET_EVAL` (dynamic).
const SET_FLAGS: u32 = 0x10 | 0x20;
/// nft's type of `ipv6_addr . ipv6_addr` (TYPE_IP6ADDR = 8, concatenated 6 bits apart); only
/// `nft list` reads it.
const KEY_TYPE: u32 = (8 << 6) | 8;
const KEY_LEN: u32 = 32;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NETWORK_HEADER: u32 = 1;
/// The inner header's source and destination, behind the 40-byte outer header.
const INNER_SADDR: u32 = 40 + 8;
const INNER_DADDR: u32 = 40 + 24;
const IP6_NEXTHDR: u32 = 6;
/// `IPPROTO_IPV6`.
const IPPROTO_IPV6: u8 = 41;
/// `NFT_META_OIF`.
const META_OIF: u32 = 5;
/// `NFT_LOOKUP_F_INV`, `NFT_DYNSET_OP_ADD`.
const LOOKUP_INV: u32 = 1;
const DYNSET_ADD: u32 = 0;
/// The outer and inner IPv6 headers: all user space needs of the packet.
const SNAPLEN: u32 = 80;

// Attribute numbers from linux/netfilter/nf_tables.h.
const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS_ATTR: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_DESC: u16 = 9;
const SET_DESC_SIZE: u16 = 1;
const SET_ID: u16 = 10;
const SET_TIMEOUT: u16 = 11;
const LOOKUP_SET: u16 = 1;
const LOOKUP_SREG: u16 = 2;
const LOOKUP_FLAGS: u16 = 5;
const DYNSET_SET_NAME: u16 = 1;
const DYNSET_OP: u16 = 3;
const DYNSET_SREG_KEY: u16 = 4;
const LOG_GROUP: u16 = 1;
const LOG_SNAPLEN: u16 = 3;
const LOG_QTHRESHOLD: u16 = 4;
const CMP_EQ: u32 = 0;

/// What the rule matches and where it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SightingSpec {
    /// Where packets to terminals leave.
    pub site_ifindex: u32,
    /// The NFLOG group user space listens on.
    pub group: u16,
    /// A pair is reported at most once per interval (the set's element timeout).
    pub interval_s: u32,
    /// Pairs remembered at once; beyond, new pairs are not reported until some time out.
    pub max_pairs: u32,
}

/// The sighting rule in table `ip6 <table>` (ours alone: removing it is deleting the table).
#[derive(Debug, Clone)]
pub struct SightingRule {
    table: String,
}

impl SightingRule {
    pub fn new(table: &str) -> Result<SightingRule, NftError> {
        // Same name rules as the marker's table.
        super::NftMarker::new(table)?;
        Ok(SightingRule {
            table: table.to_owned(),
        })
    }

    /// Creates the table, set, chain and rule, replacing whatever the table held (a previous
    /// run's rule, maybe with other interfaces).
    pub fn install(&self, spec: &SightingSpec) -> Result<(), NftError> {
        self.remove()?;
        let mut batch = Batch::new();
        batch.push(
            MsgType::NewTable,
            NLM_F_CREATE,
            NFPROTO_IPV6,
            "table",
            |a| {
                a.string(attr::TABLE_NAME, &self.table);
            },
        );
        batch.push(MsgType::NewSet, NLM_F_CREATE, NFPROTO_IPV6, "set", |a| {
            a.string(SET_TABLE, &self.table);
            a.string(SET_NAME, SET);
            a.u32_be(SET_FLAGS_ATTR, SET_FLAGS);
            a.u32_be(SET_KEY_TYPE, KEY_TYPE);
            a.u32_be(SET_KEY_LEN, KEY_LEN);
            a.u32_be(SET_ID, 1);
            a.u64_be(SET_TIMEOUT, u64::from(spec.interval_s.max(1)) * 1000);
            a.nested(SET_DESC, |a| a.u32_be(SET_DESC_SIZE, spec.max_pairs.max(1)));
        });
        batch.push(
            MsgType::NewChain,
            NLM_F_CREATE,
            NFPROTO_IPV6,
            "chain sightings, type filter hook forward priority 0",
            |a| {
                a.string(attr::CHAIN_TABLE, &self.table);
                a.string(attr::CHAIN_NAME, CHAIN);
                a.string(attr::CHAIN_TYPE, "filter");
                a.u32_be(attr::CHAIN_POLICY, POLICY_ACCEPT);
                a.nested(attr::CHAIN_HOOK, |a| {
                    a.u32_be(attr::HOOK_HOOKNUM, HOOK_FORWARD);
                    a.bytes(attr::HOOK_PRIORITY, &0i32.to_be_bytes());
                });
            },
        );
        batch.push(
            MsgType::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_IPV6,
            "rule",
            |a| {
                a.string(attr::RULE_TABLE, &self.table);
                a.string(attr::RULE_CHAIN, CHAIN);
                a.nested(attr::RULE_EXPRESSIONS, |a| rule(spec, a));
            },
        );
        conn::transact(batch).map_err(|f| NftError::new(self.op("install sightings in"), f))
    }

    /// Deletes the table; a no-op when absent.
    pub fn remove(&self) -> Result<(), NftError> {
        super::NftMarker::new(&self.table)?.remove_table()
    }

    fn op(&self, verb: &str) -> String {
        format!("nftables: {verb} table ip6 {}", self.table)
    }
}

fn expr(a: &mut Attrs<'_>, name: &str, data: impl FnOnce(&mut Attrs<'_>)) {
    a.nested(attr::LIST_ELEM, |a| {
        a.string(attr::EXPR_NAME, name);
        a.nested(attr::EXPR_DATA, data);
    });
}

fn meta_eq(a: &mut Attrs<'_>, key: u32, ifindex: u32) {
    expr(a, "meta", |a| {
        a.u32_be(attr::META_KEY, key);
        a.u32_be(attr::META_DREG, NFT_REG_1);
    });
    expr(a, "cmp", |a| {
        a.u32_be(attr::CMP_SREG, NFT_REG_1);
        a.u32_be(attr::CMP_OP, CMP_EQ);
        // Interface indexes are compared in host byte order, as the kernel stores them.
        a.nested(attr::CMP_DATA, |a| {
            a.bytes(attr::DATA_VALUE, &ifindex.to_ne_bytes())
        });
    });
}

fn load_pair(a: &mut Attrs<'_>) {
    for (offset, reg) in [(INNER_SADDR, NFT_REG_1), (INNER_DADDR, NFT_REG_2)] {
        expr(a, "payload", |a| {
            a.u32_be(attr::PAYLOAD_DREG, reg);
            a.u32_be(attr::PAYLOAD_BASE, NETWORK_HEADER);
            a.u32_be(attr::PAYLOAD_OFFSET, offset);
            a.u32_be(attr::PAYLOAD_LEN, 16);
        });
    }
}

fn rule(spec: &SightingSpec, a: &mut Attrs<'_>) {
    meta_eq(a, META_OIF, spec.site_ifindex);
    expr(a, "payload", |a| {
        a.u32_be(attr::PAYLOAD_DREG, NFT_REG_1);
        a.u32_be(attr::PAYLOAD_BASE, NETWORK_HEADER);
        a.u32_be(attr::PAYLOAD_OFFSET, IP6_NEXTHDR);
        a.u32_be(attr::PAYLOAD_LEN, 1);
    });
    expr(a, "cmp", |a| {
        a.u32_be(attr::CMP_SREG, NFT_REG_1);
        a.u32_be(attr::CMP_OP, CMP_EQ);
        a.nested(attr::CMP_DATA, |a| {
            a.bytes(attr::DATA_VALUE, &[IPPROTO_IPV6])
        });
    });
    load_pair(a);
    expr(a, "lookup", |a| {
        a.string(LOOKUP_SET, SET);
        a.u32_be(LOOKUP_SREG, NFT_REG_1);
        a.u32_be(LOOKUP_FLAGS, LOOKUP_INV);
    });
    load_pair(a);
    expr(a, "dynset", |a| {
        a.string(DYNSET_SET_NAME, SET);
        a.u32_be(DYNSET_OP, DYNSET_ADD);
        a.u32_be(DYNSET_SREG_KEY, NFT_REG_1);
    });
    expr(a, "log", |a| {
        a.bytes(LOG_GROUP, &spec.group.to_be_bytes());
        a.u32_be(LOG_SNAPLEN, SNAPLEN);
        a.bytes(LOG_QTHRESHOLD, &0u16.to_be_bytes());
    });
}
