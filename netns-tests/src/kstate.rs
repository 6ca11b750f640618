//! Snapshots of the kernel state a mipcast daemon may touch in a namespace, so a test can
//! take one before the daemons start and assert, after they stop, that nothing changed.
use std::net::Ipv6Addr;

use crate::Netns;

/// What is read, as (section name, shell command). Neighbour caches, counters and route
/// exceptions change with traffic and are not the daemons' state, so they are left out.
const SECTIONS: &[(&str, &str)] = &[
    // `cache` lines are PMTU/redirect exceptions the kernel creates on its own.
    (
        "routes",
        "ip -6 route show table all | grep -v ' cache' || true",
    ),
    ("rules", "ip -6 rule show"),
    ("mrules", "ip -6 mrule show 2>/dev/null || true"),
    ("proxy-nd", "ip -6 neigh show proxy"),
    ("addresses", "ip -6 -o addr show | sed 's/\\\\.*//'"),
    ("mfc", "tail -n +2 /proc/net/ip6_mr_cache"),
    ("mifs", "tail -n +2 /proc/net/ip6_mr_vif"),
    ("nftables", "nft list ruleset"),
    ("seg6-tunsrc", "ip sr tunsrc show"),
    ("proxy_ndp", "grep -H . /proc/sys/net/ipv6/conf/*/proxy_ndp"),
];

/// The state of one namespace: per section, its sorted lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    ns: String,
    sections: Vec<(&'static str, Vec<String>)>,
}

impl Snapshot {
    pub fn take(ns: &Netns) -> Result<Snapshot, String> {
        let mut sections = Vec::new();
        for (name, cmd) in SECTIONS {
            let out = ns.try_sh(cmd)?;
            let mut lines: Vec<String> = out
                .lines()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            lines.sort();
            sections.push((*name, lines));
        }
        Ok(Snapshot {
            ns: ns.name().to_owned(),
            sections,
        })
    }

    /// Lines present in `self` but not in `before` ("+") and the reverse ("-"), by section.
    pub fn diff(&self, before: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for ((name, now), (_, then)) in self.sections.iter().zip(&before.sections) {
            for l in now.iter().filter(|l| !then.contains(l)) {
                out.push(format!("{} {name}: + {l}", self.ns));
            }
            for l in then.iter().filter(|l| !now.contains(l)) {
                out.push(format!("{} {name}: - {l}", self.ns));
            }
        }
        out
    }

    /// The lines of one section (e.g. "routes"), for printing.
    pub fn section(&self, name: &str) -> &[String] {
        self.sections
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, l)| l.as_slice())
    }
}

/// A resolved (S,G) entry of a namespace's multicast forwarding cache, interfaces by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfcEntry {
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
    pub iif: String,
    pub oifs: Vec<String>,
    pub packets: u64,
}

/// Resolved entries of a namespace's default MRT6 table, with MIF numbers turned into
/// interface names (unresolved upcall entries are skipped, and so are negative entries, with
/// no outgoing interface: pim-lite holds one for a while after a prune so that late packets
/// are dropped, not queued; they forward nothing). The raw table is in [`Snapshot`]'s "mfc"
/// section.
pub fn mfc(ns: &Netns) -> Vec<MfcEntry> {
    let vifs = mifs(ns);
    let name = |mif: &str| {
        vifs.iter()
            .find(|(i, _)| i == mif)
            .map_or_else(|| format!("mif{mif}"), |(_, n)| n.clone())
    };
    ns.try_sh("cat /proc/net/ip6_mr_cache")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            // Group Origin Iif Pkts Bytes Wrong Oifs(mif:ttl ...)
            let w: Vec<&str> = l.split_whitespace().collect();
            let (group, origin, iif) = (w.first()?, w.get(1)?, w.get(2)?);
            if *iif == "65535" || *iif == "-1" {
                return None;
            }
            if w.len() <= 6 {
                return None;
            }
            Some(MfcEntry {
                group: group.parse().ok()?,
                source: origin.parse().ok()?,
                iif: name(iif),
                oifs: w
                    .iter()
                    .skip(6)
                    .filter_map(|o| o.split(':').next())
                    .map(name)
                    .collect(),
                packets: w.get(3).and_then(|p| p.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// (MIF number, interface name) pairs of a namespace's default MRT6 table.
pub fn mifs(ns: &Netns) -> Vec<(String, String)> {
    ns.try_sh("cat /proc/net/ip6_mr_vif")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}
