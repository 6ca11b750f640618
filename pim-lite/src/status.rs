//! The `/status` JSON document, and its rendering as a table for `pim-lite status`.
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub interfaces: Vec<IfaceStatus>,
    /// Every (S,G) with downstream interest.
    pub sg: Vec<SgStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfaceStatus {
    pub name: String,
    pub ifindex: u32,
    pub role: String,
    pub link_local: Option<Ipv6Addr>,
    /// Access interfaces: who is the MLD querier.
    pub querier: Option<QuerierStatus>,
    /// Core interfaces: PIM neighbours.
    pub neighbors: Vec<NeighborStatus>,
    /// Access interfaces: MLD listener state.
    pub listeners: Vec<ListenerStatus>,
    /// Core interfaces: downstream PIM join state.
    pub downstream: Vec<DownstreamStatus>,
    /// PIM-enabled interfaces: the elected Designated Router's address.
    #[serde(default)]
    pub dr: Option<Ipv6Addr>,
    /// (S,G) Assert state on this link.
    #[serde(default)]
    pub asserts: Vec<AssertStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertStatus {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
    /// The router that forwards the (S,G) onto the link.
    pub winner: Option<Ipv6Addr>,
    pub we_won: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerierStatus {
    pub we_are_querier: bool,
    /// The querier's address (ours when we query).
    pub address: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighborStatus {
    pub address: Ipv6Addr,
    pub gen_id: Option<u32>,
    pub dr_priority: Option<u32>,
    pub addresses: Vec<Ipv6Addr>,
    /// None: the neighbour announced an infinite holdtime.
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub group: Ipv6Addr,
    pub sources: Vec<SourceTimer>,
    /// Any-source (MLDv1 / EXCLUDE) listeners outside the SSM range: tracked, not forwarded.
    pub any_source_expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTimer {
    pub source: Ipv6Addr,
    pub expires_in_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownstreamStatus {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
    /// `join` or `prune_pending`.
    pub state: String,
    pub expires_in_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgStatus {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
    /// Incoming interface (toward S), once the route to S is known.
    pub iif: Option<String>,
    pub rpf_gateway: Option<Ipv6Addr>,
    /// The PIM neighbour we send Joins to; none when S is directly connected.
    pub upstream_neighbor: Option<Ipv6Addr>,
    pub oifs: Vec<String>,
    pub mfc_installed: bool,
    /// Kernel counters of the MFC entry (reset when the entry is re-installed).
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub wrong_if: Option<u64>,
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(
        || "never".to_owned(),
        |ms| format!("{:.1}s", ms as f64 / 1000.0),
    )
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Status {
    /// A human-readable rendering for `pim-lite status`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "INTERFACES");
        for i in &self.interfaces {
            let _ = writeln!(
                out,
                "  {:<12} ifindex {:<4} {:<7} {}",
                i.name,
                i.ifindex,
                i.role,
                or_dash(i.link_local)
            );
            if let Some(q) = &i.querier {
                let who = if q.we_are_querier { "us" } else { "other" };
                let _ = writeln!(out, "    MLD querier: {who} ({})", or_dash(q.address));
            }
            if let Some(dr) = i.dr {
                let us = if i.link_local == Some(dr) {
                    " (us)"
                } else {
                    ""
                };
                let _ = writeln!(out, "    PIM DR: {dr}{us}");
            }
            for a in &i.asserts {
                let _ = writeln!(
                    out,
                    "    assert ({}, {}) winner {}{}",
                    a.source,
                    a.group,
                    or_dash(a.winner),
                    if a.we_won { " (us)" } else { "" }
                );
            }
            for n in &i.neighbors {
                let _ = writeln!(
                    out,
                    "    neighbour {} gen-id {} dr-priority {} expires {} addresses {:?}",
                    n.address,
                    or_dash(n.gen_id),
                    or_dash(n.dr_priority),
                    ms(n.expires_in_ms),
                    n.addresses
                );
            }
            for l in &i.listeners {
                for s in &l.sources {
                    let _ = writeln!(
                        out,
                        "    listener ({}, {}) expires {}",
                        s.source,
                        l.group,
                        ms(Some(s.expires_in_ms))
                    );
                }
                if l.any_source_expires_in_ms.is_some() {
                    let _ = writeln!(
                        out,
                        "    listener (*, {}) expires {} (not forwarded: no ASM)",
                        l.group,
                        ms(l.any_source_expires_in_ms)
                    );
                }
            }
            for d in &i.downstream {
                let _ = writeln!(
                    out,
                    "    downstream ({}, {}) {} expires {}",
                    d.source,
                    d.group,
                    d.state,
                    ms(Some(d.expires_in_ms))
                );
            }
        }
        let _ = writeln!(out, "(S,G) STATE");
        let _ = writeln!(
            out,
            "  {:<28} {:<28} {:<10} {:<20} {:>10} {:>12} OIFS",
            "SOURCE", "GROUP", "IIF", "UPSTREAM", "PACKETS", "BYTES"
        );
        for sg in &self.sg {
            let _ = writeln!(
                out,
                "  {:<28} {:<28} {:<10} {:<20} {:>10} {:>12} {}{}",
                sg.source,
                sg.group,
                sg.iif.as_deref().unwrap_or("-"),
                or_dash(sg.upstream_neighbor),
                or_dash(sg.packets),
                or_dash(sg.bytes),
                sg.oifs.join(","),
                if sg.mfc_installed {
                    ""
                } else {
                    " (no MFC entry)"
                }
            );
        }
        out
    }
}
