//! Prometheus metrics of the correspondent agent, and the mapping from core events to them
//! (the events are the home agent core's, so the series mirror the home agent's).
use std::collections::HashSet;

use mipcast_binding::RemoveReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use mipcast_wire::mh::mh_type;

use home_agent::core::replies::back_status_of;

use crate::core::Event;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub bindings: Gauge,
    pub bu_received: Family<OutcomeLabel, Counter>,
    pub back_sent: Family<StatusLabel, Counter>,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub dropped: Family<ReasonLabel, Counter>,
    pub bindings_removed: Family<ReasonLabel, Counter>,
    pub replies_suppressed: Counter,
    pub refresh_requests: Counter,
    pub binding_errors_sent: Counter,
    pub kernel_errors: Family<OpLabel, Counter>,
    pub kernel_changes: Family<OpLabel, Counter>,
    /// Registrar processing of one message (validation, authentication, cache update).
    pub cache_op_seconds: Histogram,
    /// One burst end to end: registrar, kernel programming, replies.
    pub burst_seconds: Histogram,
    pub state_writes: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            bindings: Gauge::default(),
            bu_received: Family::default(),
            back_sent: Family::default(),
            auth_failures: Family::default(),
            dropped: Family::default(),
            bindings_removed: Family::default(),
            replies_suppressed: Counter::default(),
            refresh_requests: Counter::default(),
            binding_errors_sent: Counter::default(),
            kernel_errors: Family::default(),
            kernel_changes: Family::default(),
            // 1 µs to ~4 s.
            cache_op_seconds: Histogram::new(exponential_buckets(1e-6, 4.0, 12)),
            burst_seconds: Histogram::new(exponential_buckets(1e-5, 4.0, 12)),
            state_writes: Family::default(),
        };
        m.zero_known_series();
        let r = registry.sub_registry_with_prefix("correspondent");
        r.register(
            "bindings",
            "Route-optimisation bindings (home address -> MMA) in the binding cache",
            m.bindings.clone(),
        );
        r.register(
            "binding_updates_received",
            "Mobility Header messages received, by outcome",
            m.bu_received.clone(),
        );
        r.register(
            "binding_acks_sent",
            "Binding Acknowledgements sent, by status",
            m.back_sent.clone(),
        );
        r.register(
            "authentication_failures",
            "Binding Updates refused by RFC 4285 authentication or replay checks, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "messages_dropped",
            "Messages dropped without reply, by reason",
            m.dropped.clone(),
        );
        r.register(
            "bindings_removed",
            "Bindings removed, by reason",
            m.bindings_removed.clone(),
        );
        r.register(
            "replies_suppressed",
            "Replies to refused messages not sent because of the rate limit",
            m.replies_suppressed.clone(),
        );
        r.register(
            "binding_refresh_requests_sent",
            "Binding Refresh Requests sent",
            m.refresh_requests.clone(),
        );
        r.register(
            "binding_errors_sent",
            "Binding Errors sent",
            m.binding_errors_sent.clone(),
        );
        r.register(
            "kernel_errors",
            "Kernel programming failures, by operation",
            m.kernel_errors.clone(),
        );
        r.register(
            "kernel_changes",
            "Kernel changes (routes, rules) asked of the kernel, by operation; the refused ones are also in kernel_errors",
            m.kernel_changes.clone(),
        );
        r.register(
            "binding_cache_operation_seconds",
            "Time to process one Mobility Header message in the binding cache",
            m.cache_op_seconds.clone(),
        );
        r.register(
            "burst_seconds",
            "Time to process a burst of messages including kernel programming",
            m.burst_seconds.clone(),
        );
        r.register(
            "state_writes",
            "State file writes, by outcome",
            m.state_writes.clone(),
        );
        m
    }

    /// Creates the series whose label values are known in advance at 0, so they exist before
    /// their first event: rates and alerts over them work from the start (a family without
    /// any series is not exposed at all).
    fn zero_known_series(&self) {
        for op in ["add", "replace", "delete"] {
            self.kernel_changes.get_or_create_owned(&OpLabel { op });
            self.kernel_errors.get_or_create_owned(&OpLabel { op });
        }
        for reason in [
            "replay_timestamp",
            "replay_option_missing",
            "auth_missing",
            "auth_unknown_spi",
            "auth_mismatch",
        ] {
            self.auth_failures
                .get_or_create_owned(&ReasonLabel { reason });
        }
        for reason in ["deregistered", "expired", "grace_ended"] {
            self.bindings_removed
                .get_or_create_owned(&ReasonLabel { reason });
        }
        for outcome in ["ok", "error"] {
            self.state_writes
                .get_or_create_owned(&OutcomeLabel { outcome });
        }
        for outcome in ["accepted", "rejected"] {
            self.bu_received
                .get_or_create_owned(&OutcomeLabel { outcome });
        }
        self.back_sent
            .get_or_create_owned(&StatusLabel { status: 0 });
    }

    pub fn count_events(&self, events: &[Event]) {
        let failed: HashSet<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::ProgrammingFailed { hoa, .. } => Some(*hoa),
                _ => None,
            })
            .collect();
        let outcome = |o| {
            self.bu_received
                .get_or_create(&OutcomeLabel { outcome: o })
                .inc();
        };
        for e in events {
            match e {
                Event::Registered { hoa, .. } if !failed.contains(hoa) => outcome("accepted"),
                Event::Registered { .. } => {}
                Event::Removed { reason, .. } => {
                    let reason = match reason {
                        RemoveReason::Deregistered => {
                            outcome("deregistered");
                            "deregistered"
                        }
                        RemoveReason::Expired => "expired",
                        RemoveReason::GraceEnded => "grace_ended",
                    };
                    self.bindings_removed
                        .get_or_create(&ReasonLabel { reason })
                        .inc();
                }
                Event::Rejected { auth_reason, .. } => {
                    outcome("rejected");
                    if let Some(reason) = auth_reason {
                        self.auth_failures
                            .get_or_create(&ReasonLabel { reason })
                            .inc();
                    }
                }
                Event::BindingError { .. } => outcome("binding_error"),
                Event::Dropped { reason, .. } => {
                    outcome("dropped");
                    self.dropped.get_or_create(&ReasonLabel { reason }).inc();
                }
                Event::ReplySuppressed { .. } => {
                    self.replies_suppressed.inc();
                }
                Event::ProgrammingFailed { .. } => outcome("kernel_failed"),
                // Counted by the driver when applied (kernel_errors), and by the gauge.
                Event::RefreshRequested { .. }
                | Event::KernelRefused { .. }
                | Event::BindingsChanged { .. } => {}
            }
        }
    }

    /// Counts a message that was sent, by its MH type.
    pub fn count_sent(&self, bytes: &[u8]) {
        match bytes.get(2) {
            Some(&mh_type::BINDING_ACK) => {
                if let Some(status) = back_status_of(bytes) {
                    self.back_sent.get_or_create(&StatusLabel { status }).inc();
                }
            }
            Some(&mh_type::BINDING_ERROR) => {
                self.binding_errors_sent.inc();
            }
            Some(&mh_type::BINDING_REFRESH_REQUEST) => {
                self.refresh_requests.inc();
            }
            _ => {}
        }
    }

    /// Counts the changes of one batch before it goes to the kernel.
    /// `n` kernel changes of kind `op` attempted.
    pub fn kernel_changes(&self, op: &'static str, n: usize) {
        self.kernel_changes
            .get_or_create(&OpLabel { op })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub fn kernel_error(&self, op: &'static str) {
        self.kernel_errors.get_or_create(&OpLabel { op }).inc();
    }
}
