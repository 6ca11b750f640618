//! Prometheus metrics: state gauges set by the shell, event counters mirrored from the core's
//! [`Stats`], kernel (S,G) counters, and the join → MFC latency histogram.
//!
//! The kernel's per-entry counters are exported summed over all MFC entries
//! (`pim_lite_mfc_packets`, `pim_lite_mfc_bytes`) and per (S,G) only for the first
//! [`SG_SERIES_MAX`] entries: a router with 10,000 channels would otherwise export 20,000
//! series and format 20,000 label sets per refresh. `/status` has every entry's counters.
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use mipcast_daemon::metrics::signalling::{Direction, Signalling};
use mipcast_wire::{mld, nd, pim};

use crate::core::stats::{Counter as Event, Stats};
use crate::core::Proto;
use crate::core::Sg;

type Labels = Vec<(&'static str, String)>;
type U64Gauge = Gauge<u64, AtomicU64>;

/// (S,G) entries with series of their own (`pim_lite_sg_packets`, `pim_lite_sg_bytes`): the
/// first ones in (source, group) order.
pub const SG_SERIES_MAX: usize = 100;

pub struct Metrics {
    neighbors: Family<Labels, Gauge>,
    querier: Family<Labels, Gauge>,
    dr: Family<Labels, Gauge>,
    mld_listener_groups: Family<Labels, Gauge>,
    downstream_joins: Family<Labels, Gauge>,
    sg_states: Gauge,
    mfc_entries: Gauge,
    sg_packets: Family<Labels, U64Gauge>,
    sg_bytes: Family<Labels, U64Gauge>,
    /// The (S,G) entries that have series in `sg_packets` and `sg_bytes`.
    sg_series: Mutex<BTreeSet<Sg>>,
    mfc_packets: U64Gauge,
    mfc_bytes: U64Gauge,
    join_prune: Family<Labels, Counter>,
    mld_records: Family<Labels, Counter>,
    mld_queries: Family<Labels, Counter>,
    ignored: Family<Labels, Counter>,
    malformed: Family<Labels, Counter>,
    upcalls: Family<Labels, Counter>,
    router_adverts: Family<Labels, Counter>,
    hello_skipped: Family<Labels, Counter>,
    dr_changes: Counter,
    neighbor_restarts: Counter,
    joins_suppressed: Counter,
    prune_overrides: Counter,
    mfc_refused: Counter,
    asserts: Family<Labels, Counter>,
    send_errors: Family<Labels, Counter>,
    join_to_mfc: Histogram,
    /// MLD, ND and PIM messages by direction and type (`signalling_messages_total`).
    signalling: Signalling,
}

fn sg_labels(sg: Sg) -> Labels {
    vec![
        ("source", sg.source.to_string()),
        ("group", sg.group.to_string()),
    ]
}

fn one(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_owned())]
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            neighbors: Family::default(),
            querier: Family::default(),
            dr: Family::default(),
            mld_listener_groups: Family::default(),
            downstream_joins: Family::default(),
            sg_states: Gauge::default(),
            mfc_entries: Gauge::default(),
            sg_packets: Family::default(),
            sg_bytes: Family::default(),
            sg_series: Mutex::new(BTreeSet::new()),
            mfc_packets: U64Gauge::default(),
            mfc_bytes: U64Gauge::default(),
            join_prune: Family::default(),
            mld_records: Family::default(),
            mld_queries: Family::default(),
            ignored: Family::default(),
            malformed: Family::default(),
            upcalls: Family::default(),
            router_adverts: Family::default(),
            hello_skipped: Family::default(),
            dr_changes: Counter::default(),
            neighbor_restarts: Counter::default(),
            joins_suppressed: Counter::default(),
            prune_overrides: Counter::default(),
            mfc_refused: Counter::default(),
            asserts: Family::default(),
            send_errors: Family::default(),
            // 0.5 ms .. ~8 s
            join_to_mfc: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            signalling: Signalling::default(),
        };
        // Known label values at 0, so the series exist before their first event.
        for protocol in ["mld", "nd", "pim"] {
            m.send_errors
                .get_or_create_owned(&one("protocol", protocol));
        }
        for direction in ["sent", "received"] {
            for kind in ["join", "prune"] {
                m.join_prune.get_or_create_owned(&vec![
                    ("direction", direction.to_owned()),
                    ("kind", kind.to_owned()),
                ]);
            }
        }
        let r = registry.sub_registry_with_prefix("pim_lite");
        m.signalling.register(r, KNOWN_SIGNALLING);
        r.register(
            "pim_neighbors",
            "PIM neighbours per interface",
            m.neighbors.clone(),
        );
        r.register(
            "mld_querier",
            "1 when we are the MLD querier of the access interface",
            m.querier.clone(),
        );
        r.register(
            "pim_dr",
            "1 when we are the PIM Designated Router of the interface (PIM-enabled interfaces)",
            m.dr.clone(),
        );
        r.register(
            "mld_listener_groups",
            "Multicast groups with MLD listeners per access interface",
            m.mld_listener_groups.clone(),
        );
        r.register(
            "pim_downstream_joins",
            "(S,G) entries joined by a downstream PIM neighbour per core interface",
            m.downstream_joins.clone(),
        );
        r.register(
            "sg_states",
            "(S,G) channels with downstream interest",
            m.sg_states.clone(),
        );
        r.register(
            "mfc_entries",
            "MFC entries installed in the kernel",
            m.mfc_entries.clone(),
        );
        r.register("sg_packets", "Packets forwarded by the (S,G) MFC entry (kernel counter, restarts when the entry is re-installed; only the first 100 entries in address order, all are in pim_lite_mfc_packets)", m.sg_packets.clone());
        r.register("sg_bytes", "Bytes forwarded by the (S,G) MFC entry (kernel counter, restarts when the entry is re-installed; only the first 100 entries in address order, all are in pim_lite_mfc_bytes)", m.sg_bytes.clone());
        r.register(
            "mfc_packets",
            "Packets forwarded by all installed MFC entries (sum of the kernel's per-entry counters: falls when entries go)",
            m.mfc_packets.clone(),
        );
        r.register(
            "mfc_bytes",
            "Bytes forwarded by all installed MFC entries (sum of the kernel's per-entry counters: falls when entries go)",
            m.mfc_bytes.clone(),
        );
        r.register(
            "join_prune_entries",
            "(S,G) entries in PIM Join/Prune messages by direction and kind",
            m.join_prune.clone(),
        );
        r.register(
            "mld_records",
            "MLD records received by record type (v1_report/v1_done for MLDv1)",
            m.mld_records.clone(),
        );
        r.register(
            "mld_queries_sent",
            "MLD queries sent by kind",
            m.mld_queries.clone(),
        );
        r.register(
            "ignored",
            "Protocol input deliberately not acted on, by protocol and reason",
            m.ignored.clone(),
        );
        r.register(
            "malformed_packets",
            "Invalid packets by protocol and reason",
            m.malformed.clone(),
        );
        r.register(
            "mrt6_upcalls",
            "Kernel multicast routing upcalls by kind and outcome",
            m.upcalls.clone(),
        );
        r.register(
            "router_advertisements_sent",
            "Router advertisements sent",
            m.router_adverts.clone(),
        );
        // Router Solicitations received and PIM Hellos sent are in signalling_messages_total
        // (type router_solicitation, pim_hello).
        r.register(
            "pim_hello_options_skipped",
            "Hello options or Address List entries left out of otherwise usable Hellos, by reason",
            m.hello_skipped.clone(),
        );
        r.register(
            "pim_dr_changes",
            "Times our Designated Router status changed on a link",
            m.dr_changes.clone(),
        );
        r.register(
            "pim_neighbor_restarts",
            "PIM neighbours seen restarting (new generation id)",
            m.neighbor_restarts.clone(),
        );
        r.register(
            "pim_joins_suppressed",
            "Periodic Joins delayed because another router sent the same Join",
            m.joins_suppressed.clone(),
        );
        r.register(
            "pim_prune_overrides",
            "Other routers' Prunes we overrode with a Join",
            m.prune_overrides.clone(),
        );
        r.register(
            "mfc_entries_refused",
            "MFC entries the kernel refused (each is tried again at the next RPF check)",
            m.mfc_refused.clone(),
        );
        r.register(
            "pim_asserts",
            "PIM Asserts by direction and kind (sent: assert/cancel; received: what came of it)",
            m.asserts.clone(),
        );
        r.register(
            "send_errors",
            "Packets the kernel refused to send, by protocol",
            m.send_errors.clone(),
        );
        r.register(
            "join_to_mfc_seconds",
            "Time from the first downstream interest in an (S,G) (MLD report or PIM Join) to its MFC entry",
            m.join_to_mfc.clone(),
        );
        m
    }

    /// Mirrors the core's event counters (they only grow).
    pub fn sync(&self, stats: &Stats) {
        for (&event, &value) in &stats.counters {
            let counter = match event {
                Event::JoinPrune { sent, join } => self.join_prune.get_or_create_owned(&vec![
                    (
                        "direction",
                        if sent { "sent" } else { "received" }.to_owned(),
                    ),
                    ("kind", if join { "join" } else { "prune" }.to_owned()),
                ]),
                Event::MldRecord(t) => self.mld_records.get_or_create_owned(&one("record_type", t)),
                Event::MldIgnored(r) => self.ignored.get_or_create_owned(&vec![
                    ("protocol", "mld".to_owned()),
                    ("reason", r.to_owned()),
                ]),
                Event::PimIgnored(r) => self.ignored.get_or_create_owned(&vec![
                    ("protocol", "pim".to_owned()),
                    ("reason", r.to_owned()),
                ]),
                Event::Malformed { protocol, reason } => self.malformed.get_or_create_owned(&vec![
                    ("protocol", protocol.to_owned()),
                    ("reason", reason.to_owned()),
                ]),
                Event::Upcall { kind, outcome } => self.upcalls.get_or_create_owned(&vec![
                    ("kind", kind.to_owned()),
                    ("outcome", outcome.to_owned()),
                ]),
                Event::RaSent(kind) => self.router_adverts.get_or_create_owned(&one("kind", kind)),
                Event::MldQueriesSent(kind) => {
                    self.mld_queries.get_or_create_owned(&one("kind", kind))
                }
                // Counted where they are received and sent (signalling_messages_total).
                Event::RsReceived | Event::HellosSent => continue,
                Event::HelloSkipped(r) => self.hello_skipped.get_or_create_owned(&one("reason", r)),
                Event::DrChanges => self.dr_changes.clone(),
                Event::NeighborRestarts => self.neighbor_restarts.clone(),
                Event::JoinsSuppressed => self.joins_suppressed.clone(),
                Event::PruneOverrides => self.prune_overrides.clone(),
                Event::AssertsSent(k) => self.asserts.get_or_create_owned(&vec![
                    ("direction", "sent".to_owned()),
                    ("kind", k.to_owned()),
                ]),
                Event::AssertsReceived(k) => self.asserts.get_or_create_owned(&vec![
                    ("direction", "received".to_owned()),
                    ("kind", k.to_owned()),
                ]),
                Event::MfcRefused => self.mfc_refused.clone(),
            };
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    pub fn set_neighbors(&self, interface: &str, n: usize) {
        self.neighbors
            .get_or_create(&one("interface", interface))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_dr(&self, interface: &str, dr: bool) {
        self.dr
            .get_or_create(&one("interface", interface))
            .set(i64::from(dr));
    }

    pub fn set_querier(&self, interface: &str, querier: bool) {
        self.querier
            .get_or_create(&one("interface", interface))
            .set(i64::from(querier));
    }

    /// Listener and downstream-join gauges from the `/status` document of the same instant.
    /// Access interfaces: groups with listeners.
    pub fn set_listener_groups(&self, interface: &str, n: usize) {
        self.mld_listener_groups
            .get_or_create(&one("interface", interface))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Core interfaces: (S,G) joined by downstream routers.
    pub fn set_downstream_joins(&self, interface: &str, n: usize) {
        self.downstream_joins
            .get_or_create(&one("interface", interface))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_counts(&self, sg_states: usize, mfc_entries: usize) {
        self.sg_states
            .set(i64::try_from(sg_states).unwrap_or(i64::MAX));
        self.mfc_entries
            .set(i64::try_from(mfc_entries).unwrap_or(i64::MAX));
    }

    /// The kernel counters of every installed entry, `(sg, packets, bytes)` in (source,
    /// group) order: summed, and per (S,G) for the first [`SG_SERIES_MAX`].
    pub fn set_mfc_counters(&self, counters: impl IntoIterator<Item = (Sg, u64, u64)>) {
        let (mut packets, mut bytes) = (0u64, 0u64);
        let mut series = self.sg_series.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = BTreeSet::new();
        for (sg, p, b) in counters {
            packets = packets.saturating_add(p);
            bytes = bytes.saturating_add(b);
            if kept.len() < SG_SERIES_MAX {
                let labels = sg_labels(sg);
                self.sg_packets.get_or_create(&labels).set(p);
                self.sg_bytes.get_or_create(&labels).set(b);
                kept.insert(sg);
            }
        }
        for gone in series.difference(&kept) {
            let labels = sg_labels(*gone);
            self.sg_packets.remove(&labels);
            self.sg_bytes.remove(&labels);
        }
        *series = kept;
        self.mfc_packets.set(packets);
        self.mfc_bytes.set(bytes);
    }

    /// The entry is gone from the kernel: its series too, if it had one.
    pub fn remove_sg(&self, sg: Sg) {
        let mut series = self.sg_series.lock().unwrap_or_else(|p| p.into_inner());
        if series.remove(&sg) {
            let labels = sg_labels(sg);
            self.sg_packets.remove(&labels);
            self.sg_bytes.remove(&labels);
        }
    }

    pub fn send_error(&self, protocol: &str) {
        self.send_errors
            .get_or_create(&one("protocol", protocol))
            .inc();
    }

    /// Counts one MLD, ND or PIM message sent or received (`bytes` from the ICMPv6 or PIM
    /// header on, as the raw sockets hand them over).
    pub fn signalling(&self, direction: Direction, proto: Proto, bytes: &[u8]) {
        self.signalling.count(direction, message_type(proto, bytes));
    }

    pub fn observe_join_to_mfc(&self, seconds: f64) {
        self.join_to_mfc.observe(seconds);
    }
}

/// The series of `signalling_messages_total` that exist from the start.
const KNOWN_SIGNALLING: &[(Direction, &str)] = &[
    (Direction::Sent, "pim_hello"),
    (Direction::Received, "pim_hello"),
    (Direction::Sent, "pim_join_prune"),
    (Direction::Received, "pim_join_prune"),
    (Direction::Sent, "mld_query"),
    (Direction::Received, "mld_report"),
    (Direction::Received, "router_solicitation"),
    (Direction::Sent, "router_advertisement"),
];

/// The `type` label of a message of `proto`: the ICMPv6 type of MLD and ND messages, the PIM
/// message type (RFC 7761 §4.9) of PIM ones.
fn message_type(proto: Proto, bytes: &[u8]) -> &'static str {
    let Some(&first) = bytes.first() else {
        return "malformed";
    };
    match proto {
        Proto::Mld | Proto::Nd => match first {
            mld::QUERY => "mld_query",
            mld::REPORT_V1 | mld::REPORT_V2 => "mld_report",
            mld::DONE_V1 => "mld_done",
            nd::ROUTER_SOLICITATION => "router_solicitation",
            nd::ROUTER_ADVERTISEMENT => "router_advertisement",
            nd::NEIGHBOR_SOLICITATION => "neighbor_solicitation",
            nd::NEIGHBOR_ADVERTISEMENT => "neighbor_advertisement",
            _ => "other_icmpv6",
        },
        Proto::Pim => match first & 0x0f {
            pim::msg_type::HELLO => "pim_hello",
            pim::msg_type::JOIN_PRUNE => "pim_join_prune",
            pim::msg_type::ASSERT => "pim_assert",
            _ => "other_pim",
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test fails by panicking
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn message_types_by_protocol() {
        assert_eq!(message_type(Proto::Mld, &[143, 0]), "mld_report");
        assert_eq!(message_type(Proto::Mld, &[130, 0]), "mld_query");
        assert_eq!(message_type(Proto::Nd, &[133, 0]), "router_solicitation");
        assert_eq!(message_type(Proto::Nd, &[134, 0]), "router_advertisement");
        assert_eq!(message_type(Proto::Pim, &[0x20, 0]), "pim_hello");
        assert_eq!(message_type(Proto::Pim, &[0x23, 0]), "pim_join_prune");
        assert_eq!(message_type(Proto::Pim, &[0x25, 0]), "pim_assert");
        assert_eq!(message_type(Proto::Pim, &[]), "malformed");
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    fn sg(i: u16) -> Sg {
        Sg {
            source: Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10),
            group: Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, i),
        }
    }

    fn series(out: &str, name: &str) -> usize {
        out.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .count()
    }

    #[test]
    fn per_sg_series_are_bounded_and_the_sums_cover_every_entry() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.set_mfc_counters((1..=150).map(|i| (sg(i), 2, 100)));
        let out = text(&registry);
        assert_eq!(series(&out, "pim_lite_sg_packets"), SG_SERIES_MAX);
        assert_eq!(series(&out, "pim_lite_sg_bytes"), SG_SERIES_MAX);
        assert!(out.contains("pim_lite_sg_packets{source=\"2001:db8:5::10\",group=\"ff35::1\"} 2"));
        assert!(!out.contains("group=\"ff35::96\""), "the 150th has none");
        assert!(out.contains("\npim_lite_mfc_packets 300\n"), "{out}");
        assert!(out.contains("\npim_lite_mfc_bytes 15000\n"), "{out}");

        // Entries gone: their series go, at the next refresh or at once.
        m.set_mfc_counters((101..=103).map(|i| (sg(i), 1, 10)));
        m.remove_sg(sg(103));
        let out = text(&registry);
        assert_eq!(series(&out, "pim_lite_sg_packets"), 2);
        assert!(out.contains("group=\"ff35::65\""), "the 101st has one now");
        assert!(out.contains("\npim_lite_mfc_packets 3\n"), "{out}");
    }
}
