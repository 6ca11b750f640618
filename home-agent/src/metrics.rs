//! Prometheus metrics of the agents that run the home agent's core (the home agent and the
//! correspondent agent), and the mapping from core events to them. Each agent registers the
//! families of its [`Profile`] under its own prefix.
use std::collections::HashSet;

use mipcast_binding::RemoveReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use mipcast_daemon::metrics::signalling::{Direction, Signalling, AGENT_MH};

use mipcast_wire::mh::mh_type;

use crate::core::replies::back_status_of;
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
pub struct InvalidatedLabels {
    /// start (restored from the state file) or reload (after a SIGHUP).
    pub when: &'static str,
    /// The failed check (unknown_spi, spi_not_authorised, hoa_not_home, ...).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

/// Which families an agent exposes, under which prefix. Families a profile leaves out are
/// still counted into (the code paths are shared) but never exposed.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The registry sub-prefix: the daemon's name in snake case.
    pub prefix: &'static str,
    pub bindings_help: &'static str,
    pub kernel_changes_help: &'static str,
    /// `signalling_messages`, `bindings_invalidated`, `neighbour_solicitations`.
    pub home_link: bool,
    /// `binding_refresh_requests_sent`, `binding_errors_sent`.
    pub sent_by_type: bool,
}

impl Profile {
    pub const HOME_AGENT: Profile = Profile {
        prefix: "home_agent",
        bindings_help: "Bindings in the binding cache",
        kernel_changes_help: "Kernel changes (routes, rules, proxy-ND entries) asked of the kernel, by operation; the refused ones are also in kernel_errors",
        home_link: true,
        sent_by_type: false,
    };
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
    /// Mobility Header messages by direction and type (`signalling_messages_total`).
    pub signalling: Signalling,
    /// Bindings dropped because they no longer validate, at start or after a reload.
    pub invalidated: Family<InvalidatedLabels, Counter>,
    pub kernel_errors: Family<OpLabel, Counter>,
    pub kernel_changes: Family<OpLabel, Counter>,
    /// Registrar processing of one message (validation, authentication, cache update).
    pub cache_op_seconds: Histogram,
    /// One burst end to end: registrar, kernel programming, replies.
    pub burst_seconds: Histogram,
    pub state_writes: Family<OutcomeLabel, Counter>,
    /// Neighbor Solicitations seen by the user-space proxy, by outcome.
    pub solicitations: Family<OutcomeLabel, Counter>,
    pub refresh_requests: Counter,
    pub binding_errors_sent: Counter,
}

impl Metrics {
    pub fn solicitation(&self, outcome: &'static str) {
        self.solicitations
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn new(registry: &mut Registry, profile: &Profile) -> Metrics {
        let m = Metrics {
            bindings: Gauge::default(),
            bu_received: Family::default(),
            back_sent: Family::default(),
            auth_failures: Family::default(),
            dropped: Family::default(),
            bindings_removed: Family::default(),
            replies_suppressed: Counter::default(),
            signalling: Signalling::default(),
            invalidated: Family::default(),
            kernel_errors: Family::default(),
            kernel_changes: Family::default(),
            // 1 µs to ~4 s.
            cache_op_seconds: Histogram::new(exponential_buckets(1e-6, 4.0, 12)),
            burst_seconds: Histogram::new(exponential_buckets(1e-5, 4.0, 12)),
            state_writes: Family::default(),
            solicitations: Family::default(),
            refresh_requests: Counter::default(),
            binding_errors_sent: Counter::default(),
        };
        m.zero_known_series();
        let r = registry.sub_registry_with_prefix(profile.prefix);
        if profile.home_link {
            m.signalling.register(r, AGENT_MH);
            r.register(
                "bindings_invalidated",
                "Bindings dropped because they no longer validate against the configuration: state-file records refused at start, and bindings a reloaded configuration refuses",
                m.invalidated.clone(),
            );
        }
        r.register("bindings", profile.bindings_help, m.bindings.clone());
        if profile.home_link {
            r.register(
                "neighbour_solicitations",
                "Neighbor Solicitations seen on the home link by the user-space proxy (home_link.proxy: user), by outcome: answered, not_registered, or why ignored",
                m.solicitations.clone(),
            );
        }
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
        if profile.sent_by_type {
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
        }
        r.register(
            "kernel_errors",
            "Kernel programming failures, by operation",
            m.kernel_errors.clone(),
        );
        r.register(
            "kernel_changes",
            profile.kernel_changes_help,
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
        self.signalling.mobility(Direction::Sent, bytes);
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

    /// Counts bindings dropped by a restore or a reload's re-check.
    pub fn invalidated(&self, when: &'static str, dropped: &[mipcast_binding::RestoreRefusal]) {
        for d in dropped {
            self.invalidated
                .get_or_create(&InvalidatedLabels {
                    when,
                    reason: d.reason,
                })
                .inc();
        }
    }

    /// One kernel change of kind `op` and the kernel's answer.
    pub fn kernel_change(&self, op: &'static str, outcome: &mipcast_proto::Outcome) {
        self.kernel_changes.get_or_create(&OpLabel { op }).inc();
        if matches!(outcome, mipcast_proto::Outcome::Refused { .. }) {
            self.kernel_error(op);
        }
    }

    pub fn kernel_error(&self, op: &'static str) {
        self.kernel_errors.get_or_create(&OpLabel { op }).inc();
    }
}
