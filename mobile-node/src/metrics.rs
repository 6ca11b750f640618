//! Prometheus metrics of the mobile node.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use mipcast_daemon::metrics::signalling::{Direction, Signalling, NODE_MH};

use crate::core::MetricEvent;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegLabels {
    pub peer: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    pub link: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CurrentLabels {
    pub attachment: String,
    pub link: String,
    pub mma: String,
    pub coa: String,
}

fn phase_histogram() -> Histogram {
    // 1 ms to ~32 s: BAck round trips up to the RFC 6275 maximum back-off.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 16,
    ))
}

#[derive(Clone)]
pub struct Metrics {
    pub handovers: Family<KindLabel, Counter>,
    pub registrations: Family<RegLabels, Counter>,
    pub dropped: Family<ReasonLabel, Counter>,
    pub decisions: Family<OutcomeLabel, Counter>,
    /// Mobility Header and ND messages by direction and type (`signalling_messages_total`).
    pub signalling: Signalling,
    pub kernel_refused: Counter,
    pub phase_seconds: Family<PhaseLabel, Histogram, fn() -> Histogram>,
    /// Last tunnelled packet on the old path to the first on the new (see `interruption`).
    pub handover_interruption: Histogram,
    pub current: Family<CurrentLabels, Gauge>,
    pub handover_causes: Family<CauseLabel, Counter>,
    pub advice_received: Family<ReasonLabel, Counter>,
    pub advice_rejected: Family<ReasonLabel, Counter>,
    pub advice_obeyed: Counter,
    pub advice_unheeded: Counter,
    pub link_quality: Family<LinkLabel, FloatGauge>,
    pub link_probe_rtt: Family<LinkLabel, FloatGauge>,
    pub link_probe_loss: Family<LinkLabel, FloatGauge>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            handovers: Family::default(),
            registrations: Family::default(),
            dropped: Family::default(),
            decisions: Family::default(),
            signalling: Signalling::default(),
            kernel_refused: Counter::default(),
            phase_seconds: Family::new_with_constructor(phase_histogram),
            handover_interruption: phase_histogram(),
            current: Family::default(),
            handover_causes: Family::default(),
            advice_received: Family::default(),
            advice_rejected: Family::default(),
            advice_obeyed: Counter::default(),
            advice_unheeded: Counter::default(),
            link_quality: Family::default(),
            link_probe_rtt: Family::default(),
            link_probe_loss: Family::default(),
        };
        // One prefix per daemon, as the other daemons' sub-registries give theirs.
        let registry = registry.sub_registry_with_prefix("mobile_node");
        registry.register(
            "link_quality",
            "Smoothed quality of each link (0-100; absent without a quality source)",
            m.link_quality.clone(),
        );
        registry.register(
            "link_probe_rtt_seconds",
            "Moving average of the RS/RA probe round trip of each link's router",
            m.link_probe_rtt.clone(),
        );
        registry.register(
            "link_probe_loss_ratio",
            "Moving average of the share of RS/RA probes left unanswered, per link",
            m.link_probe_loss.clone(),
        );
        for cause in ["quality", "advice", "link_down", "preference"] {
            m.handover_causes.get_or_create_owned(&CauseLabel {
                cause: cause.to_owned(),
            });
        }
        registry.register(
            "handover_causes",
            "Handovers between two links by cause (quality, advice, link_down, preference)",
            m.handover_causes.clone(),
        );
        registry.register(
            "advice_received",
            "Authentic handoff advice received, by reason",
            m.advice_received.clone(),
        );
        registry.register(
            "advice_rejected",
            "Handoff advice ignored: bad authenticator, replay, unknown link, wrong MMA",
            m.advice_rejected.clone(),
        );
        registry.register(
            "advice_obeyed",
            "Handoff advice that moved the terminal to another link",
            m.advice_obeyed.clone(),
        );
        registry.register(
            "advice_unheeded",
            "Handoff advice the terminal could not follow: no other usable link",
            m.advice_unheeded.clone(),
        );
        // Known label values at 0, so the series exist before their first event.
        for kind in ["intra_site", "inter_site", "home", "mipv6", "detach"] {
            m.handovers.get_or_create_owned(&KindLabel {
                kind: kind.to_owned(),
            });
        }
        registry.register("handovers", "Handovers by kind", m.handovers.clone());
        registry.register(
            "registrations",
            "Binding registrations by peer and outcome",
            m.registrations.clone(),
        );
        registry.register("dropped", "Packets dropped by reason", m.dropped.clone());
        registry.register(
            "link_decisions",
            "Link selection decisions by outcome",
            m.decisions.clone(),
        );
        let mut known = NODE_MH.to_vec();
        known.extend([
            (Direction::Sent, "router_solicitation"),
            (Direction::Sent, "neighbor_advertisement"),
            (Direction::Received, "router_advertisement"),
        ]);
        m.signalling.register(registry, &known);
        registry.register(
            "kernel_changes_refused",
            "Kernel changes the kernel refused (each is retried until it holds)",
            m.kernel_refused.clone(),
        );
        registry.register(
            "handover_interruption_seconds",
            "Handover interruption measured at the terminal: from the last tunnelled packet on the old link to the first on the new one (per-link nftables counters read every 5 ms around a move; 0 when both links delivered at once)",
            m.handover_interruption.clone(),
        );
        registry.register(
            "handover_phase_seconds",
            "Time from first BU to accepted BAck, by phase",
            m.phase_seconds.clone(),
        );
        registry.register(
            "current",
            "Current attachment (value 1; labels say where)",
            m.current.clone(),
        );
        m
    }

    pub fn record(&self, e: &MetricEvent) {
        match e {
            MetricEvent::RaReceived => {
                self.signalling.received("router_advertisement");
            }
            MetricEvent::Dropped(reason) => {
                self.dropped
                    .get_or_create(&ReasonLabel {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            MetricEvent::Decision(outcome) => {
                self.decisions
                    .get_or_create(&OutcomeLabel {
                        outcome: (*outcome).to_owned(),
                    })
                    .inc();
            }
            MetricEvent::Handover(kind) => {
                self.handovers
                    .get_or_create(&KindLabel {
                        kind: kind.label().to_owned(),
                    })
                    .inc();
            }
            MetricEvent::Registration { peer, outcome } => {
                self.registrations
                    .get_or_create(&RegLabels {
                        peer: peer.label().to_owned(),
                        outcome: outcome.clone(),
                    })
                    .inc();
            }
            MetricEvent::Phase { phase, ms } => {
                #[allow(clippy::cast_precision_loss)] // milliseconds well below 2^52
                let secs = *ms as f64 / 1000.0;
                self.phase_seconds
                    .get_or_create(&PhaseLabel {
                        phase: (*phase).to_owned(),
                    })
                    .observe(secs);
            }
            MetricEvent::KernelRefused { .. } => {
                self.kernel_refused.inc();
            }
            MetricEvent::HandoverCause(cause) => {
                self.handover_causes
                    .get_or_create(&CauseLabel {
                        cause: cause.label().to_owned(),
                    })
                    .inc();
            }
            MetricEvent::AdviceReceived(reason) => {
                self.advice_received
                    .get_or_create(&ReasonLabel {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            MetricEvent::AdviceRejected(reason) => {
                self.advice_rejected
                    .get_or_create(&ReasonLabel {
                        reason: (*reason).to_owned(),
                    })
                    .inc();
            }
            MetricEvent::AdviceObeyed => {
                self.advice_obeyed.inc();
            }
            MetricEvent::AdviceNoAlternative => {
                self.advice_unheeded.inc();
            }
        }
    }

    /// The per-link measurements of a status snapshot.
    pub fn set_links(&self, links: &[crate::core::LinkStatus]) {
        for l in links {
            let label = LinkLabel {
                link: l.name.clone(),
            };
            match l.smoothed_quality {
                Some(q) => {
                    self.link_quality.get_or_create(&label).set(q);
                }
                None => {
                    self.link_quality.remove(&label);
                }
            }
            match l.probe_rtt_ms {
                Some(ms) => {
                    self.link_probe_rtt.get_or_create(&label).set(ms / 1000.0);
                    self.link_probe_loss
                        .get_or_create(&label)
                        .set(l.probe_loss_percent / 100.0);
                }
                None => {
                    self.link_probe_rtt.remove(&label);
                    self.link_probe_loss.remove(&label);
                }
            }
        }
    }

    /// Replaces the info series with the current attachment.
    pub fn set_current(&self, labels: CurrentLabels) {
        self.current.clear();
        self.current.get_or_create(&labels).set(1);
    }
}
