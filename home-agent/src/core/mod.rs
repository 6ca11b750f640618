//! The home agent's protocol core, a pure state machine: the binding registrar (RFC 6275
//! §10.3 + RFC 4285, from `mipcast-binding`), the mapping from bindings to kernel objects
//! ([`plan`]) and the reply rate limit. Messages and timer ticks go in with the time as a
//! value; kernel changes, packets to send and log-worthy [`Event`]s come out.
//!
//! Work is done in bursts ([`Burst`]): the shell feeds every message it can read at once,
//! applies the burst's net kernel [`Changes`] in batches, reports which objects failed, and
//! only then gets the packets to send. So a BAck(0) leaves only once its binding is in the
//! kernel; a binding the kernel refused is rolled back there and answered with status 130.
//!
//! Kernel failure policy: a binding whose programming failed is revoked from the registrar
//! (`Registrar::revoke`) and everything of it is taken out of the kernel, including the route
//! to a previous CoA a refused move left behind, so the cache, the kernel and the MN (told 130)
//! agree that nothing is bound. The MN retries with a new sequence number. Only bindings
//! restored from the state file that reconciliation could not install stay in the cache,
//! marked *unprogrammed* (shown by `status`): there is no BU to answer for them.
pub mod plan;
pub mod replies;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::Ipv6Addr;

use mipcast_binding::{Action, BindingRecord, HomeAgentPolicy, Registrar, RemoveReason, SaTable};
use mipcast_proto::{KObject, Millis, TokenBucket};
use serde::Serialize;

pub use mipcast_binding::Now;
use plan::{Changes, Plan, Round};

/// A Mobility Header message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub dst: Ipv6Addr,
    pub src: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// Something worth a log line and a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Registered {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        /// The CoA of the binding this one replaced (a refresh or a move).
        previous: Option<Ipv6Addr>,
        lifetime_s: u32,
        sequence: u16,
    },
    Removed {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        reason: RemoveReason,
    },
    Rejected {
        peer: Ipv6Addr,
        hoa: Option<Ipv6Addr>,
        status: u8,
        /// For authentication and replay failures, what exactly failed.
        auth_reason: Option<&'static str>,
    },
    /// Refused with a Binding Error (unknown MH type); the error itself may be rate-limited.
    BindingError { peer: Ipv6Addr },
    Dropped {
        peer: Ipv6Addr,
        reason: &'static str,
        detail: String,
    },
    /// A reply to a refused message was not sent: over the rate limit.
    ReplySuppressed { peer: Ipv6Addr },
    /// The kernel refused to program a registration: it was revoked and withdrawn from the
    /// kernel, and its BU (if it asked for an acknowledgement) answered with BAck 130.
    ProgrammingFailed { hoa: Ipv6Addr, coa: Ipv6Addr },
    /// A Binding Refresh Request went to `peer`.
    RefreshRequested { peer: Ipv6Addr },
}

/// A reply that waits for the burst's kernel changes.
#[derive(Debug)]
struct Pending {
    send: Send,
    /// The registration this BAck(0) announces: replaced by BAck 130 if it fails.
    confirms: Option<mipcast_binding::Binding<()>>,
}

/// One burst of work; see the module documentation.
#[derive(Debug, Default)]
pub struct Burst {
    round: Round,
    pending: Vec<Pending>,
    events: Vec<Event>,
}

impl Burst {
    /// True when nothing was touched (no kernel changes, nothing to send).
    pub fn is_idle(&self) -> bool {
        self.round.is_empty() && self.pending.is_empty()
    }
}

/// What the shell must do to finish a burst.
#[derive(Debug, Default)]
pub struct Finish {
    /// Undo of the failed bindings' changes (apply tolerating "exists"/"not found").
    pub rollback: Changes,
    pub sends: Vec<Send>,
    pub events: Vec<Event>,
    /// Whether the binding cache changed (the state file needs writing).
    pub cache_changed: bool,
}

/// One binding as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BindingStatus {
    pub hoa: Ipv6Addr,
    pub coa: Ipv6Addr,
    pub sequence: u16,
    pub lifetime_s: u32,
    pub lifetime_left_s: u64,
    pub spi: u32,
    /// False when the kernel refused it (see the module documentation).
    pub programmed: bool,
}

pub struct Core {
    registrar: Registrar<HomeAgentPolicy>,
    /// A copy of the registrar's SAs, to name the cause of authentication failures.
    sas: SaTable,
    plan: Plan,
    limiter: TokenBucket,
    unprogrammed: HashSet<Ipv6Addr>,
}

impl Core {
    pub fn new(
        registrar: Registrar<HomeAgentPolicy>,
        sas: SaTable,
        plan: Plan,
        limiter: TokenBucket,
    ) -> Core {
        Core {
            registrar,
            sas,
            plan,
            limiter,
            unprogrammed: HashSet::new(),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn len(&self) -> usize {
        self.registrar.cache().len()
    }

    pub fn is_empty(&self) -> bool {
        self.registrar.cache().is_empty()
    }

    /// Reloaded configuration: new SAs, home prefixes and rate limit; bindings are kept.
    pub fn reload(&mut self, sas: SaTable, policy: HomeAgentPolicy, limiter: TokenBucket) {
        self.registrar.replace_sas(sas.clone());
        self.sas = sas;
        *self.registrar.policy_mut() = policy;
        self.limiter = limiter;
    }

    /// When [`Self::on_timers`] has work.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.registrar.next_deadline()
    }

    /// One received Mobility Header message from `src` to our address `dst`.
    pub fn on_message(
        &mut self,
        burst: &mut Burst,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: &[u8],
        now: Now,
    ) {
        let actions = self.registrar.handle_bu(src, dst, bytes, now);
        // Replies that announce no binding change answer something we refused: rate-limited.
        let refusal = !actions
            .iter()
            .any(|a| matches!(a, Action::Install { .. } | Action::Remove { .. }));
        let rejected = actions.iter().any(|a| matches!(a, Action::Rejected { .. }));
        let mut confirms = None;
        for action in actions {
            match action {
                Action::Install { binding, replaced } => {
                    self.plan
                        .set(&mut burst.round, binding.hoa, Some(binding.coa));
                    burst.events.push(Event::Registered {
                        hoa: binding.hoa,
                        coa: binding.coa,
                        previous: replaced.map(|r| r.coa),
                        lifetime_s: binding.lifetime_s,
                        sequence: binding.sequence,
                    });
                    confirms = Some(binding);
                }
                Action::Remove { binding, reason } => self.remove(burst, &binding, reason),
                Action::Send { dst, src, bytes } => {
                    if refusal {
                        if !rejected {
                            burst.events.push(Event::BindingError { peer: dst });
                        }
                        if !self.limiter.allow(now.mono) {
                            burst.events.push(Event::ReplySuppressed { peer: dst });
                            continue;
                        }
                    }
                    burst.pending.push(Pending {
                        send: Send { dst, src, bytes },
                        confirms: confirms.clone(),
                    });
                }
                Action::Rejected { peer, hoa, status } => burst.events.push(Event::Rejected {
                    peer,
                    hoa,
                    status,
                    auth_reason: replies::auth_failure_reason(status, src, bytes, &self.sas),
                }),
                Action::Drop(reason) => burst.events.push(Event::Dropped {
                    peer: src,
                    reason: reason.label(),
                    detail: reason.to_string(),
                }),
            }
        }
    }

    /// Expiries and Binding Refresh Requests due at `now`.
    pub fn on_timers(&mut self, burst: &mut Burst, now: Now) {
        for action in self.registrar.poll_timers(now) {
            match action {
                Action::Remove { binding, reason } => self.remove(burst, &binding, reason),
                Action::Send { dst, src, bytes } => {
                    burst.events.push(Event::RefreshRequested { peer: dst });
                    burst.pending.push(Pending {
                        send: Send { dst, src, bytes },
                        confirms: None,
                    });
                }
                Action::Drop(reason) => burst.events.push(Event::Dropped {
                    peer: Ipv6Addr::UNSPECIFIED,
                    reason: reason.label(),
                    detail: reason.to_string(),
                }),
                Action::Install { .. } | Action::Rejected { .. } => {}
            }
        }
    }

    /// Bindings from the state file; returns how many were restored (unexpired).
    pub fn restore(
        &mut self,
        burst: &mut Burst,
        records: Vec<BindingRecord<()>>,
        now: Now,
    ) -> usize {
        let mut n = 0;
        for action in self.registrar.restore(records, now) {
            if let Action::Install { binding, .. } = action {
                self.plan
                    .set(&mut burst.round, binding.hoa, Some(binding.coa));
                n += 1;
            }
        }
        n
    }

    fn remove(
        &mut self,
        burst: &mut Burst,
        binding: &mipcast_binding::Binding<()>,
        reason: RemoveReason,
    ) {
        self.plan.set(&mut burst.round, binding.hoa, None);
        burst.events.push(Event::Removed {
            hoa: binding.hoa,
            coa: binding.coa,
            reason,
        });
    }

    /// Care-of addresses of this burst whose outgoing interface the shell must look up.
    pub fn unresolved(&self, burst: &Burst) -> Vec<Ipv6Addr> {
        self.plan.unresolved(&burst.round)
    }

    pub fn resolve(&mut self, coa: Ipv6Addr, oif: u32) {
        self.plan.resolve(coa, oif);
    }

    /// The burst's net kernel changes.
    pub fn changes(&self, burst: &Burst) -> Changes {
        self.plan.changes(&burst.round)
    }

    /// Ends the burst given the objects whose add or replace the kernel refused: their
    /// bindings are revoked and withdrawn from the kernel (see the module documentation).
    pub fn finish(&mut self, burst: Burst, failed: &[KObject], now: Now) -> Finish {
        let Burst {
            round,
            pending,
            mut events,
        } = burst;
        let failed_hoas: HashSet<Ipv6Addr> = failed
            .iter()
            .flat_map(|o| self.plan.dependents(&round, o))
            .collect();
        let (undo, rollback) = self.plan.withdraw(&round, &failed_hoas);
        let cache_changed = !round.is_empty();
        for hoa in round.hoas() {
            self.unprogrammed.remove(hoa);
        }
        let mut failed_hoas: Vec<Ipv6Addr> = failed_hoas.into_iter().collect();
        failed_hoas.sort();
        for hoa in &failed_hoas {
            if let Some(b) = self.registrar.revoke(hoa, now) {
                events.push(Event::ProgrammingFailed {
                    hoa: b.hoa,
                    coa: b.coa,
                });
            }
        }
        self.plan.end_round(round);
        self.plan.end_round(undo);

        let mut sends = Vec::with_capacity(pending.len());
        for p in pending {
            match p.confirms {
                Some(b) if failed_hoas.binary_search(&b.hoa).is_ok() => {
                    match self.registrar.revoked_ack(&b) {
                        Ok(bytes) => sends.push(Send { bytes, ..p.send }),
                        Err(e) => events.push(Event::Dropped {
                            peer: p.send.dst,
                            reason: "emit_failed",
                            detail: e.to_string(),
                        }),
                    }
                }
                _ => sends.push(p.send),
            }
        }
        Finish {
            rollback,
            sends,
            events,
            cache_changed,
        }
    }

    /// Everything that should be in the kernel (reconciliation at start).
    pub fn desired(&self) -> HashSet<KObject> {
        self.plan.desired()
    }

    /// Care-of addresses whose interface is unknown (after a restore).
    pub fn all_unresolved(&self) -> Vec<Ipv6Addr> {
        self.plan.all_unresolved()
    }

    /// Marks home addresses whose objects reconciliation could not install.
    pub fn mark_unprogrammed(&mut self, hoas: impl IntoIterator<Item = Ipv6Addr>) {
        self.unprogrammed.extend(hoas);
    }

    pub fn records(&self, now: Now) -> Vec<BindingRecord<()>> {
        self.registrar.records(now)
    }

    pub fn status(&self, now: Now) -> Vec<BindingStatus> {
        self.registrar
            .cache()
            .iter()
            .map(|b| BindingStatus {
                hoa: b.hoa,
                coa: b.coa,
                sequence: b.sequence,
                lifetime_s: b.lifetime_s,
                lifetime_left_s: b.expires_at_ms.saturating_sub(now.mono_ms()) / 1000,
                spi: b.spi,
                programmed: !self.unprogrammed.contains(&b.hoa),
            })
            .collect()
    }
}
