//! Route optimisation in the MMA daemon (issue 12 §2, §4): the `route_optimisation:` config
//! section and the I/O around [`crate::core::ro::Ro`]: the kernel sighting rule and its NFLOG
//! group, decapsulation rules for tunnels from correspondents' agents, BUs out of the
//! Mobility Header socket, BAcks from agents in, reverse routes in the kernel.
use std::net::Ipv6Addr;
use std::sync::Mutex;
use std::time::Duration;

use mipcast_daemon::config::sa::SaAlgorithm;
use mipcast_daemon::config::{secs, Ipv6Prefix, SecretKey, Validator};
use mipcast_daemon::driver::lock;
use mipcast_kernel::nft::{SightingRule, SightingSpec};
use mipcast_kernel::route::{Kernel, Op};
use mipcast_kernel::sockets::{MhSocket, NflogSocket, PacketInfo};
use mipcast_proto::{next_step, KObject, Machine, Millis, Now, Output, Step};
use mipcast_wire::mh::mh_type;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::core::context::{ContextEvent, CorrespondentContext};
use crate::core::ro::{self, CorrespondentBinding, CorrespondentSa, Ro, RoConfig};
use crate::core::Event;

/// `route_optimisation:` in mma.yaml; absent: off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoSettings {
    /// Correspondents BUs may go to, each with the MMA's association at its agent.
    pub correspondents: Vec<RoCorrespondent>,
    /// Lifetime asked of the correspondents (seconds, a multiple of 4).
    #[serde(with = "secs", default = "default_lifetime")]
    pub lifetime: Duration,
    /// A (correspondent, home address) pair is reported by the kernel at most this often,
    /// and is refreshed only if reported since the last BU.
    #[serde(with = "secs", default = "default_sighting_interval")]
    pub sighting_interval: Duration,
    #[serde(default = "default_refresh_percent")]
    pub refresh_percent: u8,
    /// BUs per attempt before a silent correspondent is put on hold.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u8,
    #[serde(with = "secs", default = "default_hold")]
    pub hold: Duration,
    #[serde(with = "secs", default = "default_max_hold")]
    pub max_hold: Duration,
    /// NFLOG group of the sighting rule (not shared with anything else).
    #[serde(default = "default_nflog_group")]
    pub nflog_group: u16,
    /// The nftables table of the sighting rule (ours alone).
    #[serde(default = "default_nft_table")]
    pub nft_table: String,
    /// Pairs the kernel remembers at once.
    #[serde(default = "default_max_pairs")]
    pub max_pairs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoCorrespondent {
    /// The correspondent's address or prefix.
    pub prefix: Ipv6Prefix,
    /// Where its agent is (BUs and tunnels); absent: the correspondent runs the agent itself.
    #[serde(default)]
    pub agent: Option<Ipv6Addr>,
    pub spi: u32,
    pub algorithm: SaAlgorithm,
    pub key_file: SecretKey,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(60)
}
fn default_sighting_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_refresh_percent() -> u8 {
    80
}
fn default_max_attempts() -> u8 {
    3
}
fn default_hold() -> Duration {
    Duration::from_secs(60)
}
fn default_max_hold() -> Duration {
    Duration::from_secs(3600)
}
fn default_nflog_group() -> u16 {
    1341
}
fn default_nft_table() -> String {
    "mipcast_ro".into()
}
fn default_max_pairs() -> u32 {
    65_536
}

impl RoSettings {
    pub fn validate(&self, path: &str, v: &mut Validator) {
        let l = self.lifetime.as_secs();
        if !(4..=262_140).contains(&l) || !l.is_multiple_of(4) {
            v.error(
                format!("{path}.lifetime"),
                "a multiple of 4 seconds, 4 to 262140",
            );
        }
        if self.sighting_interval.as_secs() == 0 || self.sighting_interval >= self.lifetime / 2 {
            v.error(
                format!("{path}.sighting_interval"),
                "at least 1 s and under half the lifetime (a live flow must be seen before each refresh)",
            );
        }
        if !(1..=99).contains(&self.refresh_percent) {
            v.error(format!("{path}.refresh_percent"), "must be 1 to 99");
        }
        if self.max_attempts == 0 || self.max_attempts > 10 {
            v.error(format!("{path}.max_attempts"), "must be 1 to 10");
        }
        if self.hold.as_secs() == 0 || self.hold > self.max_hold {
            v.error(format!("{path}.hold"), "at least 1 s and at most max_hold");
        }
        if self.nft_table.is_empty() || self.nft_table.len() > 255 {
            v.error(format!("{path}.nft_table"), "1 to 255 characters");
        }
        if self.correspondents.is_empty() {
            v.error(
                format!("{path}.correspondents"),
                "at least one (BUs go only to correspondents with an association)",
            );
        }
        for (i, c) in self.correspondents.iter().enumerate() {
            if c.spi < 256 {
                v.error(
                    format!("{path}.correspondents[{i}].spi"),
                    "SPIs 0-255 are reserved (RFC 4285)",
                );
            }
        }
    }

    /// The core's settings.
    pub fn ro_config(&self, mma: Ipv6Addr, uplink_table: u32, wan_ifindex: u32) -> RoConfig {
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        RoConfig {
            mma,
            correspondents: self
                .correspondents
                .iter()
                .map(|c| CorrespondentSa {
                    prefix: c.prefix.addr(),
                    prefix_len: c.prefix.prefix_len(),
                    agent: c.agent,
                    spi: c.spi,
                    algorithm: c.algorithm.into(),
                    key: c.key_file.expose().to_vec(),
                })
                .collect(),
            lifetime_s: secs(self.lifetime),
            refresh_percent: self.refresh_percent,
            max_attempts: self.max_attempts,
            retransmit_ms: 1000,
            hold_s: secs(self.hold),
            max_hold_s: secs(self.max_hold),
            uplink_table,
            wan_ifindex,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// `mma_route_optimisation_*`.
#[derive(Default)]
struct RoMetrics {
    sightings: Counter,
    /// Correspondents handed over in a peer MMA's context and bound from here at once.
    from_context: Counter,
    binding_updates: Counter,
    events: Family<EventLabel, Counter>,
    bound: Gauge,
}

impl RoMetrics {
    fn register(&self, registry: &mut Registry) {
        for event in ["bound", "on_hold", "unbound", "ignored", "kernel_refused"] {
            self.events.get_or_create_owned(&EventLabel { event });
        }
        let r = registry
            .sub_registry_with_prefix("mma")
            .sub_registry_with_prefix("route_optimisation");
        r.register(
            "sightings",
            "(correspondent, home address) pairs reported by the kernel's sighting rule",
            self.sightings.clone(),
        );
        r.register(
            "context_correspondents",
            "Correspondents received in a peer MMA's context after an inter-site move and bound from here at once (without waiting for their traffic)",
            self.from_context.clone(),
        );
        r.register(
            "binding_updates_sent",
            "Binding Updates sent to correspondents' agents (deregistrations included)",
            self.binding_updates.clone(),
        );
        r.register(
            "events",
            "Route-optimisation events: bound, on_hold (no answer, refusal or Binding Error), unbound (expired or deregistered), ignored, kernel_refused",
            self.events.clone(),
        );
        r.register(
            "correspondents_bound",
            "(correspondent, home address) pairs bound now",
            self.bound.clone(),
        );
    }
}

/// Route optimisation at run time.
pub struct RoShell {
    ro: Mutex<Ro>,
    metrics: RoMetrics,
    rule: SightingRule,
    /// Decapsulation rules for tunnels from correspondents' agents.
    decap: Vec<KObject>,
    agents: Vec<(Ipv6Addr, u8)>,
}

impl RoShell {
    /// Installs the sighting rule and binds its NFLOG group.
    pub async fn start(
        settings: &RoSettings,
        mma: Ipv6Addr,
        plan: &crate::core::Plan,
    ) -> Result<(RoShell, NflogSocket), String> {
        let rule = SightingRule::new(&settings.nft_table).map_err(|e| e.to_string())?;
        rule.install(&SightingSpec {
            site_ifindex: plan.site_ifindex,
            group: settings.nflog_group,
            interval_s: u32::try_from(settings.sighting_interval.as_secs()).unwrap_or(5),
            max_pairs: settings.max_pairs,
        })
        .map_err(|e| e.to_string())?;
        let nflog = NflogSocket::bind(settings.nflog_group)
            .await
            .map_err(|e| format!("NFLOG group {}: {e}", settings.nflog_group))?;
        let config = settings.ro_config(mma, plan.uplink_table, plan.wan_ifindex);
        let agents: Vec<(Ipv6Addr, u8)> = settings
            .correspondents
            .iter()
            .map(|c| match c.agent {
                Some(a) => (a, 128),
                None => (c.prefix.addr(), c.prefix.prefix_len()),
            })
            .collect();
        // Tunnels from an agent are decapsulated as the home agents' are: the inner packet is
        // routed by main, to the terminal's group.
        let decap = agents
            .iter()
            .filter_map(|&(a, l)| ipnetwork::Ipv6Network::new(a, l).ok())
            .map(|from| KObject::Rule {
                pref: plan.ha_rule_pref,
                from: Some(from),
                to: Some(ipnetwork::Ipv6Network::from(mma)),
                ipproto: Some(41),
                table: plan.ha_decap_table,
            })
            .collect();
        // A restarted MMA must not reuse its previous run's sequence numbers.
        let first = u16::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() % 30_000),
        )
        .unwrap_or(0);
        info!(
            correspondents = settings.correspondents.len(),
            nflog_group = settings.nflog_group,
            table = %settings.nft_table,
            "route optimisation on"
        );
        Ok((
            RoShell {
                ro: Mutex::new(Ro::new(config, first)),
                metrics: RoMetrics::default(),
                rule,
                decap,
                agents,
            },
            nflog,
        ))
    }

    /// Kernel objects that must exist (reconciliation keeps them).
    pub fn desired(&self) -> Vec<KObject> {
        self.decap.clone()
    }

    /// Whether a received Mobility Header message is for route optimisation: a BAck, Binding
    /// Error or Binding Refresh Request from a configured correspondent agent (terminals never
    /// send those; a refresh request is noted and ignored: refreshes follow the flow's
    /// sightings).
    pub fn wants(&self, src: Ipv6Addr, bytes: &[u8]) -> bool {
        matches!(
            bytes.get(2),
            Some(
                &mh_type::BINDING_ACK | &mh_type::BINDING_ERROR | &mh_type::BINDING_REFRESH_REQUEST
            )
        ) && self
            .agents
            .iter()
            .any(|&(p, l)| mipcast_wire::prefix::prefix_contains(p, l, src))
    }

    /// Registers `mma_route_optimisation_*` (before the registry is served).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    pub fn input(&self, now: Now, input: ro::Input<'_>) {
        if matches!(input, ro::Input::Sighting { .. }) {
            self.metrics.sightings.inc();
        }
        lock(&self.ro).handle_input(now, input);
    }

    /// The MMA core's events that start or end a terminal's service here.
    pub fn core_event(&self, now: Now, event: &Event) {
        let input = match *event {
            Event::Registered { hoa, .. } => ro::Input::TerminalUp { hoa },
            // Home (002 FIG 7): the correspondents are told at once.
            Event::ForwardingStarted { hoa, new_coa, .. } if new_coa == hoa => {
                ro::Input::TerminalGone { hoa }
            }
            // To another MMA (002 FIG 6): that MMA binds the correspondents now.
            Event::ForwardingStarted { hoa, .. } => ro::Input::TerminalLeft { hoa },
            Event::Removed { hoa, .. } | Event::ProgrammingFailed { hoa, .. } => {
                ro::Input::TerminalGone { hoa }
            }
            // After an inter-site move (002 FIG 6): the old MMA's correspondents are bound
            // from here at once, before any of their traffic arrives.
            Event::Context(ContextEvent::BindCorrespondents {
                hoa,
                ref correspondents,
            }) => {
                let mut core = lock(&self.ro);
                for c in correspondents {
                    self.metrics.from_context.inc();
                    core.bind_now(
                        now,
                        hoa,
                        CorrespondentBinding {
                            correspondent: c.addr,
                            remaining_s: c.lifetime_left_s,
                            sequence: c.seq,
                        },
                    );
                }
                return;
            }
            _ => return,
        };
        self.input(now, input);
    }

    /// The correspondents bound for `hoa`, as a context transfer carries them.
    pub fn correspondents_of(&self, hoa: Ipv6Addr, now: Now) -> Vec<CorrespondentContext> {
        lock(&self.ro)
            .correspondents_of(hoa, now)
            .map(|b| CorrespondentContext {
                addr: b.correspondent,
                lifetime_left_s: b.remaining_s,
                seq: b.sequence,
            })
            .collect()
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        lock(&self.ro).poll_timeout()
    }

    pub fn handle_timeout(&self, now: Now) {
        lock(&self.ro).handle_timeout(now);
    }

    /// Runs the core's outputs: BUs out, reverse routes into the kernel. Returns the terminals
    /// whose correspondent bindings changed (for the context a peer MMA may ask for).
    pub async fn drive(&self, kernel: &Kernel, mh: &MhSocket, now: Now) -> Vec<Ipv6Addr> {
        let mut changed = Vec::new();
        loop {
            let step = next_step(&mut *lock(&self.ro));
            match step {
                Step::Idle => {
                    let bound = lock(&self.ro).counts().0;
                    self.metrics
                        .bound
                        .set(i64::try_from(bound).unwrap_or(i64::MAX));
                    changed.sort_unstable();
                    changed.dedup();
                    return changed;
                }
                Step::Output(o) => {
                    changed.extend(bindings_changed(&o));
                    self.output(mh, o).await;
                }
                Step::Apply { changes, then } => {
                    for change in changes {
                        let (op, object) = match change {
                            ro::Change::Add(o) => (Op::Add, o),
                            ro::Change::Delete(o) => (Op::Delete, o),
                        };
                        let outcome = kernel
                            .apply(op, &[object])
                            .await
                            .into_iter()
                            .next()
                            .unwrap_or(mipcast_proto::Outcome::Applied);
                        lock(&self.ro).kernel_result(now, &change, outcome);
                    }
                    if let Some(o) = then {
                        changed.extend(bindings_changed(&o));
                        self.output(mh, o).await;
                    }
                }
            }
        }
    }

    async fn output(&self, mh: &MhSocket, output: ro::Output) {
        match output {
            Output::Send(s) => {
                if let Err(e) = mh
                    .send_to(&s.bytes, s.dst, PacketInfo::ANY.with_source(s.src))
                    .await
                {
                    debug!(dst = %s.dst, error = %e, "route optimisation: send failed");
                }
            }
            Output::Event(e) => {
                let label = match e {
                    ro::Event::BindingSent { .. } => {
                        self.metrics.binding_updates.inc();
                        None
                    }
                    ro::Event::Bound { .. } => Some("bound"),
                    ro::Event::OnHold { .. } => Some("on_hold"),
                    ro::Event::Unbound { .. } => Some("unbound"),
                    ro::Event::Ignored { .. } => Some("ignored"),
                    ro::Event::KernelRefused { .. } => Some("kernel_refused"),
                };
                if let Some(event) = label {
                    self.metrics
                        .events
                        .get_or_create(&EventLabel { event })
                        .inc();
                }
                log(&e);
            }
            Output::Kernel(_) => {}
        }
    }

    /// Deletes the sighting rule's table (routes and rules go with the daemon's own).
    pub fn shutdown(&self) {
        if let Err(e) = self.rule.remove() {
            warn!(error = %e, "route optimisation: removing the sighting rule");
        }
    }
}

fn log(e: &ro::Event) {
    match e {
        ro::Event::BindingSent {
            hoa,
            correspondent,
            sequence,
            lifetime_s,
            attempt,
        } => {
            debug!(%hoa, %correspondent, sequence, lifetime_s, attempt, "route optimisation: binding update sent")
        }
        ro::Event::Bound {
            hoa,
            correspondent,
            lifetime_s,
        } => info!(%hoa, %correspondent, lifetime_s, "route optimisation: correspondent bound"),
        ro::Event::OnHold {
            hoa,
            correspondent,
            status,
            hold_s,
        } => {
            info!(%hoa, %correspondent, ?status, hold_s, "route optimisation: correspondent on hold")
        }
        ro::Event::Unbound {
            hoa,
            correspondent,
            reason,
        } => info!(%hoa, %correspondent, reason, "route optimisation: correspondent unbound"),
        ro::Event::Ignored { peer, reason } => {
            debug!(%peer, reason, "route optimisation: ignored")
        }
        ro::Event::KernelRefused { change, reason } => {
            warn!(?change, reason, "route optimisation: kernel refused")
        }
    }
}

/// The terminal whose correspondent bindings `output` changes, if any.
fn bindings_changed(output: &ro::Output) -> Option<Ipv6Addr> {
    match output {
        Output::Event(ro::Event::Bound { hoa, .. } | ro::Event::Unbound { hoa, .. }) => Some(*hoa),
        _ => None,
    }
}
