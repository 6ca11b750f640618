//! The MMA's Prometheus metrics.
//!
//! The kernel's counters of the (MMA, G) MFC entries, one per terminal, are exported summed
//! over all entries (`mma_mfc_forwarded_*_total`) and per (S,G) only for the first
//! [`SG_SERIES_MAX`] entries: at 100,000 terminals three series per terminal took about
//! 450 bytes of memory each and formatted 200,000 addresses per poll.
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use mipcast_kernel::mrt6::SgCounters;
use mipcast_wire::mh::back_status;

use crate::core::Event;
use mipcast_daemon::metrics::signalling::{Signalling, AGENT_MH};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuLabels {
    /// registered, refreshed, forwarding, removed, rejected, dropped, kernel_failed.
    pub outcome: String,
    /// The BAck status for rejections, the drop reason, the removal reason; empty otherwise.
    pub detail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// not_registered, source_not_terminal, grace_over_max, new_coa_not_unicast.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// ok or error.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SgLabels {
    pub source: String,
    pub group: String,
}

/// Metric handles; clones share the values.
#[derive(Clone, Default)]
pub struct Metrics {
    pub terminals: Gauge,
    pub forwarding_windows_active: Gauge,
    pub forwarding_windows: Counter,
    pub forwarding_refused: Family<RefusalLabels, Counter>,
    pub binding_updates: Family<BuLabels, Counter>,
    pub auth_failures: Counter,
    pub kernel_errors: Family<OpLabels, Counter>,
    pub kernel_changes: Family<OpLabels, Counter>,
    pub state_writes: Family<OutcomeLabels, Counter>,
    pub mfc_packets: Family<SgLabels, Counter>,
    pub mfc_bytes: Family<SgLabels, Counter>,
    pub mfc_wrong_if: Family<SgLabels, Counter>,
    /// Sums over every (MMA, G) entry: packets, bytes, wrong-interface packets.
    pub mfc_forwarded: [Counter; 3],
    /// The last counts read per group, and which groups have series of their own.
    sg_seen: Arc<Mutex<SgSeen>>,
    pub advice_sent: Family<AdviceLabels, Counter>,
    pub context: ContextMetrics,
    pub bindings_invalidated: Family<InvalidatedLabels, Counter>,
    /// Mobility Header messages by direction and type (`signalling_messages_total`).
    pub signalling: Signalling,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvalidatedLabels {
    /// start (restored from the state file) or reload (after a SIGHUP).
    pub when: String,
    /// The failed check (e.g. unknown_spi, spi_not_authorised, mfc_add_failed).
    pub reason: String,
}

/// (S,G) entries with series of their own in `mma_mfc_packets` and its siblings.
pub const SG_SERIES_MAX: usize = 100;

#[derive(Default)]
struct SgSeen {
    /// Per group: the kernel's packets, bytes and wrong-interface packets when last read, and
    /// whether it has per-(S,G) series.
    last: HashMap<Ipv6Addr, ([u64; 3], bool)>,
    with_series: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdviceLabels {
    /// congestion, maintenance, admission_refused, other.
    pub reason: String,
    /// operator or load.
    pub trigger: String,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        self.zero_known_series();
        let r = registry.sub_registry_with_prefix("mma");
        self.signalling.register(r, AGENT_MH);
        r.register(
            "advice_sent",
            "Handoff advice sent to terminals, by reason and trigger (operator or load)",
            self.advice_sent.clone(),
        );
        self.context.register(r);
        r.register(
            "bindings_invalidated",
            "Terminals dropped because they no longer validate: state-file records refused at start (or rolled back when their MFC entry could not be re-added), and terminals a reloaded configuration refuses",
            self.bindings_invalidated.clone(),
        );
        r.register(
            "terminals",
            "Terminals registered and served here",
            self.terminals.clone(),
        );
        r.register(
            "forwarding_windows_active",
            "Deregistered terminals whose traffic is being forwarded to their new care-of address",
            self.forwarding_windows_active.clone(),
        );
        r.register(
            "forwarding_windows",
            "Forwarding windows opened (the kernel counts no packets per route, so windows are counted)",
            self.forwarding_windows.clone(),
        );
        r.register(
            "forwarding_requests_refused",
            "Forwarding requests refused, installing nothing, by reason (BAck status: not_registered 133, source_not_terminal 129, grace_over_max 130, new_coa_not_unicast 128)",
            self.forwarding_refused.clone(),
        );
        r.register(
            "binding_updates",
            "Binding Updates and binding removals by outcome",
            self.binding_updates.clone(),
        );
        r.register(
            "auth_failures",
            "Binding Updates refused by RFC 4285 checks (status 144, 145, 146)",
            self.auth_failures.clone(),
        );
        r.register(
            "kernel_errors",
            "Failed kernel changes by operation",
            self.kernel_errors.clone(),
        );
        r.register(
            "kernel_changes",
            "Kernel changes (routes, rules, MFC entries) asked of the kernel, by operation; the refused ones are also in kernel_errors",
            self.kernel_changes.clone(),
        );
        r.register(
            "state_writes",
            "State file writes, by outcome",
            self.state_writes.clone(),
        );
        r.register(
            "mfc_packets",
            "Packets forwarded by the (MMA, G) MFC entry (the first 100 entries; all of them in mfc_forwarded_packets)",
            self.mfc_packets.clone(),
        );
        r.register(
            "mfc_bytes",
            "Bytes forwarded by the (MMA, G) MFC entry (the first 100 entries; all of them in mfc_forwarded_bytes)",
            self.mfc_bytes.clone(),
        );
        r.register(
            "mfc_wrong_interface_packets",
            "Packets for an (MMA, G) entry that arrived on another interface than the WAN one (the first 100 entries; all of them in mfc_forwarded_wrong_interface_packets)",
            self.mfc_wrong_if.clone(),
        );
        let [packets, bytes, wrong_if] = &self.mfc_forwarded;
        r.register(
            "mfc_forwarded_packets",
            "Packets forwarded by all (MMA, G) MFC entries",
            packets.clone(),
        );
        r.register(
            "mfc_forwarded_bytes",
            "Bytes forwarded by all (MMA, G) MFC entries",
            bytes.clone(),
        );
        r.register(
            "mfc_forwarded_wrong_interface_packets",
            "Packets for any (MMA, G) entry that arrived on another interface than the WAN one",
            wrong_if.clone(),
        );
    }

    /// Creates the series whose label values are known in advance at 0, so they exist before
    /// their first event (a family without any series is not exposed at all).
    fn zero_known_series(&self) {
        for (reason, _) in crate::core::policy::forwarding_refusal::ALL {
            self.forwarding_refused.get_or_create_owned(&RefusalLabels {
                reason: reason.to_owned(),
            });
        }
        for op in ["add", "replace", "delete", "add_mfc", "del_mfc"] {
            let labels = OpLabels { op: op.to_owned() };
            self.kernel_changes.get_or_create_owned(&labels);
            self.kernel_errors.get_or_create_owned(&labels);
        }
        for outcome in ["ok", "error"] {
            self.state_writes.get_or_create_owned(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        for outcome in ["registered", "refreshed", "forwarding"] {
            self.binding_updates.get_or_create_owned(&BuLabels {
                outcome: outcome.to_owned(),
                detail: String::new(),
            });
        }
    }

    fn bu(&self, outcome: &str, detail: impl Into<String>) {
        self.binding_updates
            .get_or_create(&BuLabels {
                outcome: outcome.to_owned(),
                detail: detail.into(),
            })
            .inc();
    }

    pub fn record(&self, event: &Event, source: Ipv6Addr) {
        match event {
            Event::Registered { refresh, .. } => {
                self.bu(if *refresh { "refreshed" } else { "registered" }, "")
            }
            Event::ForwardingStarted { .. } => {
                self.forwarding_windows.inc();
                self.bu("forwarding", "");
            }
            Event::Removed { reason, group, .. } => {
                self.bu("removed", format!("{reason:?}").to_lowercase());
                let seen = self
                    .sg_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forget(group);
                if seen {
                    let labels = sg(source, *group);
                    self.mfc_packets.remove(&labels);
                    self.mfc_bytes.remove(&labels);
                    self.mfc_wrong_if.remove(&labels);
                }
            }
            Event::Rejected { status, .. } => {
                if matches!(
                    *status,
                    back_status::MIPV6_ID_MISMATCH
                        | back_status::MIPV6_MESG_ID_REQD
                        | back_status::MIPV6_AUTH_FAIL
                ) {
                    self.auth_failures.inc();
                }
                self.bu("rejected", status.to_string());
            }
            Event::ForwardingRefused { reason, .. } => {
                self.forwarding_refused
                    .get_or_create(&RefusalLabels {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            Event::Dropped { reason, .. } => self.bu("dropped", *reason),
            Event::ProgrammingFailed { .. } => self.bu("kernel_failed", "130"),
            Event::ReplySuppressed { .. } => self.bu("reply_suppressed", ""),
            // Counted by the driver as a kernel error when it happened.
            Event::KernelRefused { .. } => {}
            Event::Advised {
                reason, trigger, ..
            } => {
                self.advice_sent
                    .get_or_create(&AdviceLabels {
                        reason: reason_label(*reason).to_owned(),
                        trigger: (*trigger).to_owned(),
                    })
                    .inc();
            }
            Event::Context(e) => self.context.record(e),
        }
    }

    /// Counts terminals dropped by a restore or a reload's re-check (`when`: start, reload).
    pub fn invalidated(&self, when: &str, dropped: &[mipcast_binding::RestoreRefusal]) {
        for d in dropped {
            self.bindings_invalidated
                .get_or_create(&InvalidatedLabels {
                    when: when.to_owned(),
                    reason: d.reason.to_owned(),
                })
                .inc();
        }
    }

    pub fn state_write(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.state_writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// One kernel change of kind `op` and the kernel's answer.
    pub fn kernel_change(&self, op: &str, outcome: &mipcast_proto::Outcome) {
        self.kernel_changes
            .get_or_create(&OpLabels { op: op.to_owned() })
            .inc();
        if matches!(outcome, mipcast_proto::Outcome::Refused { .. }) {
            self.kernel_error(op);
        }
    }

    pub fn kernel_error(&self, op: &str) {
        self.kernel_errors
            .get_or_create(&OpLabels { op: op.to_owned() })
            .inc();
    }

    pub fn set_counts(&self, terminals: usize, forwarding: usize) {
        self.terminals
            .set(i64::try_from(terminals).unwrap_or(i64::MAX));
        self.forwarding_windows_active
            .set(i64::try_from(forwarding).unwrap_or(i64::MAX));
    }

    /// Brings the (source, group) counters up to the kernel's values, and the sums by what
    /// they grew. The kernel's counts restart when an entry is re-created: a per-(S,G) series
    /// then waits until they pass its value, the sums take the new counts as growth.
    pub fn set_sg(&self, source: Ipv6Addr, group: Ipv6Addr, c: SgCounters) {
        let now = [c.packets, c.bytes, c.wrong_if];
        let has_series = {
            let mut seen = self.sg_seen.lock().unwrap_or_else(|p| p.into_inner());
            let with_room = seen.with_series < SG_SERIES_MAX;
            let (last, has_series) = match seen.last.get(&group) {
                Some(&(last, has)) => (last, has),
                None => ([0; 3], with_room),
            };
            if has_series && !seen.last.contains_key(&group) {
                seen.with_series += 1;
            }
            seen.last.insert(group, (now, has_series));
            for ((sum, value), before) in self.mfc_forwarded.iter().zip(now).zip(last) {
                sum.inc_by(if value >= before {
                    value - before
                } else {
                    value
                });
            }
            has_series
        };
        if !has_series {
            return;
        }
        let labels = sg(source, group);
        for (family, value) in [
            (&self.mfc_packets, c.packets),
            (&self.mfc_bytes, c.bytes),
            (&self.mfc_wrong_if, c.wrong_if),
        ] {
            let counter = family.get_or_create(&labels);
            let have = counter.get();
            if value > have {
                counter.inc_by(value - have);
            }
        }
    }
}

/// The advice reason byte as a label.
pub fn reason_label(reason: u8) -> &'static str {
    match reason {
        mipcast_wire::mh::advice_reason::CONGESTION => "congestion",
        mipcast_wire::mh::advice_reason::MAINTENANCE => "maintenance",
        mipcast_wire::mh::advice_reason::ADMISSION_REFUSED => "admission_refused",
        _ => "other",
    }
}

impl SgSeen {
    /// The group's entry is gone; whether it had series of its own.
    fn forget(&mut self, group: &Ipv6Addr) -> bool {
        match self.last.remove(group) {
            Some((_, true)) => {
                self.with_series = self.with_series.saturating_sub(1);
                true
            }
            _ => false,
        }
    }
}

fn sg(source: Ipv6Addr, group: Ipv6Addr) -> SgLabels {
    SgLabels {
        source: source.to_string(),
        group: group.to_string(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContextLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Context transfer between MMAs (`mma_context_*`, issue 12 §3).
#[derive(Clone, Default)]
pub struct ContextMetrics {
    /// New side: sent, retransmitted, gave_up, unknown_peer (previous MMA not a peer).
    pub requests: Family<ContextLabels, Counter>,
    /// New side: replies accepted from peers, by status.
    pub replies: Family<StatusLabels, Counter>,
    /// Old side: replies sent to peers, by status.
    pub served: Family<StatusLabels, Counter>,
    pub dropped: Family<ReasonLabels, Counter>,
    /// Correspondents received in contexts (handed to route optimisation).
    pub correspondents: Counter,
    /// Sum of the request-to-reply times of received contexts in seconds (with
    /// `replies{status="0"}`, the mean round trip).
    pub round_trip: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl ContextMetrics {
    fn register(&self, r: &mut Registry) {
        for outcome in ["sent", "retransmitted", "gave_up", "unknown_peer"] {
            self.requests.get_or_create_owned(&ContextLabels {
                outcome: outcome.to_owned(),
            });
        }
        self.replies.get_or_create_owned(&StatusLabels {
            status: "0".to_owned(),
        });
        self.served.get_or_create_owned(&StatusLabels {
            status: "0".to_owned(),
        });
        r.register(
            "context_requests",
            "Context Requests to peer MMAs by outcome (sent, retransmitted, gave_up; unknown_peer: the previous MMA named in a registration is not a configured peer)",
            self.requests.clone(),
        );
        r.register(
            "context_replies",
            "Authenticated Context Replies received from peer MMAs, by status (0: context received)",
            self.replies.clone(),
        );
        r.register(
            "context_served",
            "Context Replies sent to peer MMAs, by status (0 context, 133 unknown terminal, 144 replay window)",
            self.served.clone(),
        );
        r.register(
            "context_dropped",
            "Context messages dropped without reply, by reason",
            self.dropped.clone(),
        );
        r.register(
            "context_correspondents",
            "Correspondents received in contexts and handed to route optimisation",
            self.correspondents.clone(),
        );
        r.register(
            "context_round_trip_seconds",
            "Sum of request-to-reply times of the contexts received",
            self.round_trip.clone(),
        );
    }

    fn record(&self, e: &crate::core::ContextEvent) {
        use crate::core::ContextEvent as E;
        let request = |outcome: &str| {
            self.requests
                .get_or_create(&ContextLabels {
                    outcome: outcome.to_owned(),
                })
                .inc();
        };
        match e {
            E::RequestSent { retransmission, .. } => request(if *retransmission {
                "retransmitted"
            } else {
                "sent"
            }),
            E::UnknownPreviousMma { .. } => request("unknown_peer"),
            E::GaveUp { .. } => request("gave_up"),
            E::Received {
                correspondents,
                rtt_ms,
                ..
            } => {
                self.replies
                    .get_or_create(&StatusLabels {
                        status: "0".to_owned(),
                    })
                    .inc();
                self.correspondents.inc_by(correspondents.len() as u64);
                self.round_trip.inc_by(*rtt_ms as f64 / 1000.0);
            }
            E::Refused { status, .. } => {
                self.replies
                    .get_or_create(&StatusLabels {
                        status: status.to_string(),
                    })
                    .inc();
            }
            E::Served { status, .. } => {
                self.served
                    .get_or_create(&StatusLabels {
                        status: status.to_string(),
                    })
                    .inc();
            }
            E::Dropped { reason, .. } => {
                self.dropped
                    .get_or_create(&ReasonLabels {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            E::BindCorrespondents { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test fails by panicking
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    fn group(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xff35, 0, 0, 0, 0x200, 0, 0, i)
    }

    fn counts(packets: u64) -> SgCounters {
        SgCounters {
            packets,
            bytes: packets * 100,
            wrong_if: 0,
        }
    }

    fn series(out: &str, name: &str) -> usize {
        out.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .count()
    }

    #[test]
    fn per_sg_series_are_bounded_and_the_sums_count_every_entry() {
        let mma: Ipv6Addr = "2001:db8:2::2".parse().unwrap();
        let m = Metrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        for i in 1..=150 {
            m.set_sg(mma, group(i), counts(2));
        }
        let out = text(&registry);
        assert_eq!(series(&out, "mma_mfc_packets_total"), SG_SERIES_MAX);
        assert!(
            out.contains("\nmma_mfc_forwarded_packets_total 300\n"),
            "{out}"
        );
        assert!(
            out.contains("\nmma_mfc_forwarded_bytes_total 30000\n"),
            "{out}"
        );

        // Growth is counted once; an entry re-created (its counts restarted) adds its new
        // counts; a removed terminal's series goes and frees a place.
        m.set_sg(mma, group(1), counts(5));
        m.set_sg(mma, group(150), counts(1));
        m.record(
            &Event::Removed {
                hoa: "2001:db8:99::1".parse().unwrap(),
                group: group(1),
                reason: mipcast_binding::RemoveReason::Expired,
            },
            mma,
        );
        m.set_sg(mma, group(151), counts(4));
        let out = text(&registry);
        assert!(
            out.contains("\nmma_mfc_forwarded_packets_total 308\n"),
            "{out}"
        );
        assert_eq!(series(&out, "mma_mfc_packets_total"), SG_SERIES_MAX);
        assert!(!out.contains(&format!("group=\"{}\"", group(1))), "{out}");
        assert!(out.contains(&format!("group=\"{}\"", group(151))), "{out}");
    }
}
