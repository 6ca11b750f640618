//! The nftables rule that marks multicast-tunnelled packets as addressed to this host.
//!
//! A terminal receives its traffic as IPv6-in-IPv6 packets sent to its multicast group G. The
//! outer packet arrived as link-layer multicast, so after seg6local End.DT6 decapsulation the
//! inner packet still has `pkt_type` MULTICAST, and TCP silently discards such segments (ping
//! and UDP do not). Before decapsulation we therefore rewrite `pkt_type` to HOST, in our own
//! table, with the equivalent of
//!
//! ```text
//! table ip6 <name> {
//!   chain decap_pkttype {
//!     type filter hook prerouting priority -300; policy accept;
//!     ip6 daddr <G> ip6 nexthdr ipv6 meta pkttype set host
//!   }
//! }
//! ```
//!
//! one rule per group. Priority -300 (raw) runs before anything else on prerouting, so the mark
//! is set before any other chain or the input route lookup sees the packet.
//!
//! The nf_tables netlink messages are written by hand (modules `wire`, `expr`): the Rust binding
//! `rustables` is GPL-3 (incompatible with our Apache-2.0 licence) and `nftnl` wraps the
//! libnftnl C library, a run-time dependency we do not want; we need only six expressions and
//! no `nft` binary at run time.
//!
//! Calls block the calling thread for one netlink round trip (well under a millisecond, at most
//! 2 s); async callers may run them in place or via `spawn_blocking`.
//! Nothing is cached: every call asks the kernel, so a restarted daemon sees the groups the
//! previous run left ([`NftMarker::groups`]) and can reconcile or remove them.
use std::io;
use std::net::Ipv6Addr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP};

mod conn;
mod expr;
mod sightings;
mod wire;

pub use sightings::{SightingRule, SightingSpec};

use conn::Failure;
use wire::{attr, Batch, MsgType, NFPROTO_IPV6};

/// The chain, inside our table, that holds the marking rules.
pub const CHAIN: &str = "decap_pkttype";
/// `NF_INET_PRE_ROUTING`.
const HOOK_PREROUTING: u32 = 0;
/// Before conntrack (-200) and everything else: the "raw" priority.
const PRIORITY: i32 = -300;
/// `NF_ACCEPT`: the chain only marks, it never drops.
const POLICY_ACCEPT: u32 = 1;
/// Names the chain in errors: the kernel refuses (EOPNOTSUPP) to reuse a same-named chain that
/// hooks elsewhere, and the errno alone would not say why.
const CHAIN_SPEC: &str = "chain decap_pkttype, type filter hook prerouting priority -300";
/// `NFT_NAME_MAXLEN` counts the terminating NUL.
const NAME_MAX_LEN: usize = 255;
/// How often a dump interrupted by concurrent ruleset changes is repeated.
const DUMP_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nftables table name {name:?} is unusable: {why}")]
    BadTableName { name: String, why: &'static str },
    #[error(
        "{op}: the kernel has no nf_tables ({source}); without it TCP to a terminal behind a \
         multicast tunnel is silently dropped, so enable CONFIG_NF_TABLES (module nf_tables)"
    )]
    NoNfTables { op: String, source: io::Error },
    #[error("{op}: {source}")]
    Kernel { op: String, source: io::Error },
    #[error(
        "{op}: no complete answer from the kernel within {:?}",
        conn::REPLY_TIMEOUT
    )]
    Timeout { op: String },
    #[error("{op}: unexpected answer from the kernel: {what}")]
    Malformed { op: String, what: String },
}

impl NftError {
    /// The kernel's errno, when it answered (for `route::outcome_of`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::NoNfTables { source, .. } | NftError::Kernel { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    fn new(op: String, failure: Failure) -> NftError {
        match failure {
            Failure::Socket(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => {
                NftError::NoNfTables { op, source: e }
            }
            Failure::Socket(e) | Failure::Io(e) => NftError::Kernel { op, source: e },
            // The batch itself is refused with EOPNOTSUPP when the subsystem is not registered.
            Failure::Errno {
                errno: libc::EOPNOTSUPP,
                message: None,
            } => NftError::NoNfTables {
                op,
                source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            },
            Failure::Errno { errno, message } => NftError::Kernel {
                op: match message {
                    Some(what) => format!("{op} ({what})"),
                    None => op,
                },
                source: io::Error::from_raw_os_error(errno),
            },
            Failure::DumpInterrupted => NftError::Malformed {
                op,
                what: format!("rule dump interrupted by ruleset changes {DUMP_ATTEMPTS} times"),
            },
            Failure::Timeout => NftError::Timeout { op },
            Failure::Malformed(what) => NftError::Malformed { op, what },
        }
    }
}

/// Programs and removes the pkttype marking rules in one `ip6` table of our own.
#[derive(Clone, Debug)]
pub struct NftMarker {
    table: String,
}

impl NftMarker {
    /// A marker for table `ip6 <table_name>`; nothing is sent to the kernel yet.
    pub fn new(table_name: &str) -> Result<NftMarker, NftError> {
        let why = if table_name.is_empty() {
            Some("empty")
        } else if table_name.len() > NAME_MAX_LEN {
            Some("longer than 255 bytes")
        } else if table_name.contains('\0') {
            Some("contains a NUL byte")
        } else {
            None
        };
        match why {
            Some(why) => Err(NftError::BadTableName {
                name: table_name.to_owned(),
                why,
            }),
            None => Ok(NftMarker {
                table: table_name.to_owned(),
            }),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table and its prerouting chain if missing; a no-op when they exist.
    pub fn ensure_table(&self) -> Result<(), NftError> {
        let mut batch = Batch::new();
        self.push_table_and_chain(&mut batch);
        conn::transact(batch).map_err(|f| NftError::new(self.op("create"), f))
    }

    /// Marks tunnel packets to `group` (creating table and chain if needed); a no-op when the
    /// rule for `group` is already installed.
    pub fn add_group(&self, group: Ipv6Addr) -> Result<(), NftError> {
        let op = || self.op(&format!("add group {group} to"));
        let rules = self.rules().map_err(|f| NftError::new(op(), f))?;
        if rules.iter().any(|(_, g)| *g == Some(group)) {
            return Ok(());
        }
        let mut batch = Batch::new();
        self.push_table_and_chain(&mut batch);
        batch.push(
            MsgType::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_IPV6,
            "rule",
            |a| {
                a.string(attr::RULE_TABLE, &self.table);
                a.string(attr::RULE_CHAIN, CHAIN);
                a.nested(attr::RULE_EXPRESSIONS, |a| {
                    expr::encode(&expr::marking_rule(group), a)
                });
            },
        );
        conn::transact(batch).map_err(|f| NftError::new(op(), f))?;
        tracing::debug!(table = %self.table, %group, "nftables pkttype marking installed");
        Ok(())
    }

    /// Removes the rule(s) for `group`; a no-op when there are none (or no table).
    pub fn remove_group(&self, group: Ipv6Addr) -> Result<(), NftError> {
        let op = || self.op(&format!("remove group {group} from"));
        let rules = self.rules().map_err(|f| NftError::new(op(), f))?;
        let mut batch = Batch::new();
        for (handle, _) in rules.iter().filter(|(_, g)| *g == Some(group)) {
            batch.push(MsgType::DelRule, 0, NFPROTO_IPV6, "rule", |a| {
                a.string(attr::RULE_TABLE, &self.table);
                a.string(attr::RULE_CHAIN, CHAIN);
                a.u64_be(attr::RULE_HANDLE, *handle);
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        conn::transact(batch).map_err(|f| NftError::new(op(), f))?;
        tracing::debug!(table = %self.table, %group, "nftables pkttype marking removed");
        Ok(())
    }

    /// The groups whose marking rule is installed, in rule order, each once; empty when the
    /// table does not exist. Rules of any other shape in our chain are ignored.
    pub fn groups(&self) -> Result<Vec<Ipv6Addr>, NftError> {
        let rules = self
            .rules()
            .map_err(|f| NftError::new(self.op("list groups of"), f))?;
        let mut groups: Vec<Ipv6Addr> = Vec::new();
        for group in rules.into_iter().filter_map(|(_, g)| g) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Ok(groups)
    }

    /// Deletes the table with its chain and every rule in it (shutdown); a no-op when absent.
    pub fn remove_table(&self) -> Result<(), NftError> {
        let mut batch = Batch::new();
        batch.push(MsgType::DelTable, 0, NFPROTO_IPV6, "table", |a| {
            a.string(attr::TABLE_NAME, &self.table);
        });
        match conn::transact(batch) {
            Ok(())
            | Err(Failure::Errno {
                errno: libc::ENOENT,
                ..
            }) => Ok(()),
            Err(f) => Err(NftError::new(self.op("delete"), f)),
        }
    }

    fn op(&self, verb: &str) -> String {
        format!("nftables: {verb} table ip6 {}", self.table)
    }

    /// NEWTABLE and NEWCHAIN without NLM_F_EXCL: the kernel leaves existing ones as they are
    /// (and refuses a same-named chain on another hook or priority).
    fn push_table_and_chain(&self, batch: &mut Batch) {
        batch.push(
            MsgType::NewTable,
            NLM_F_CREATE,
            NFPROTO_IPV6,
            "table",
            |a| {
                a.string(attr::TABLE_NAME, &self.table);
            },
        );
        batch.push(
            MsgType::NewChain,
            NLM_F_CREATE,
            NFPROTO_IPV6,
            CHAIN_SPEC,
            |a| {
                a.string(attr::CHAIN_TABLE, &self.table);
                a.string(attr::CHAIN_NAME, CHAIN);
                a.string(attr::CHAIN_TYPE, "filter");
                a.u32_be(attr::CHAIN_POLICY, POLICY_ACCEPT);
                a.nested(attr::CHAIN_HOOK, |a| {
                    a.u32_be(attr::HOOK_HOOKNUM, HOOK_PREROUTING);
                    a.bytes(attr::HOOK_PRIORITY, &PRIORITY.to_be_bytes());
                });
            },
        );
    }

    /// Counts the tunnelled packets arriving on `ifindex` (a rule `meta iif <ifindex> ip6
    /// nexthdr ipv6 counter` in our chain, creating table and chain if needed); a no-op when
    /// the counter is there. Removed with the table.
    pub fn add_link_counter(&self, ifindex: u32) -> Result<(), NftError> {
        let op = || self.op(&format!("add a packet counter for interface {ifindex} to"));
        let present = self.link_counters()?.iter().any(|(i, _)| *i == ifindex);
        if present {
            return Ok(());
        }
        let mut batch = Batch::new();
        self.push_table_and_chain(&mut batch);
        batch.push(
            MsgType::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            NFPROTO_IPV6,
            "rule",
            |a| {
                a.string(attr::RULE_TABLE, &self.table);
                a.string(attr::RULE_CHAIN, CHAIN);
                a.nested(attr::RULE_EXPRESSIONS, |a| {
                    expr::encode(&expr::link_counter_rule(ifindex), a)
                });
            },
        );
        conn::transact(batch).map_err(|f| NftError::new(op(), f))
    }

    /// (interface index, tunnelled packets counted) of every [`Self::add_link_counter`]
    /// rule: one dump of our chain.
    pub fn link_counters(&self) -> Result<Vec<(u32, u64)>, NftError> {
        let rules = self
            .dump()
            .map_err(|f| NftError::new(self.op("read the packet counters of"), f))?;
        Ok(rules
            .iter()
            .filter_map(|rule| {
                wire::find(rule, attr::RULE_EXPRESSIONS)
                    .and_then(expr::decode)
                    .and_then(|exprs| expr::link_count_of(&exprs))
            })
            .collect())
    }

    /// Every rule of our chain as (handle, the group it marks if it is our marking rule).
    fn rules(&self) -> Result<Vec<(u64, Option<Ipv6Addr>)>, Failure> {
        self.dump()?
            .iter()
            .map(|rule| {
                let handle = wire::find(rule, attr::RULE_HANDLE)
                    .and_then(wire::be_u64)
                    .ok_or_else(|| Failure::Malformed("dumped rule without a handle".into()))?;
                let group = wire::find(rule, attr::RULE_EXPRESSIONS)
                    .and_then(expr::decode)
                    .and_then(|exprs| expr::group_of(&exprs));
                Ok((handle, group))
            })
            .collect()
    }

    /// The rules of our chain as the kernel dumps them (empty when table or chain is missing).
    fn dump(&self) -> Result<Vec<Vec<u8>>, Failure> {
        let request = wire::request(MsgType::GetRule, NLM_F_DUMP, 1, NFPROTO_IPV6, |a| {
            a.string(attr::RULE_TABLE, &self.table);
            a.string(attr::RULE_CHAIN, CHAIN);
        });
        let mut attempt = 0;
        let rules = loop {
            attempt += 1;
            match conn::dump(&request, MsgType::NewRule) {
                Err(Failure::DumpInterrupted) if attempt < DUMP_ATTEMPTS => continue,
                // A missing table or chain is simply no rules.
                Err(Failure::Errno {
                    errno: libc::ENOENT,
                    ..
                }) => return Ok(Vec::new()),
                other => break other?,
            }
        };
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(NftMarker::new("mipcast").is_ok());
        assert!(NftMarker::new(&"x".repeat(255)).is_ok());
        for bad in ["", "a\0b", &"x".repeat(256)] {
            let err = NftMarker::new(bad).unwrap_err();
            assert!(
                matches!(err, NftError::BadTableName { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn missing_subsystem_reads_as_such() {
        let e = NftError::new(
            "op".into(),
            Failure::Errno {
                errno: libc::EOPNOTSUPP,
                message: None,
            },
        );
        assert!(matches!(e, NftError::NoNfTables { .. }), "{e}");
        let e = NftError::new(
            "op".into(),
            Failure::Socket(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
        );
        assert!(e.to_string().contains("CONFIG_NF_TABLES"), "{e}");
        let e = NftError::new(
            "op".into(),
            Failure::Errno {
                errno: libc::EEXIST,
                message: Some("chain"),
            },
        );
        assert_eq!(
            e.to_string(),
            format!("op (chain): {}", io::Error::from_raw_os_error(libc::EEXIST))
        );
    }
}
