//! The home agent's protocol core, a pure state machine speaking the cores' one contract
//! ([`Machine`]): the binding registrar (RFC 6275 §10.3 + RFC 4285, from `mipcast-binding`),
//! the mapping from bindings to kernel objects ([`plan`]) and the reply rate limit. Messages
//! and timer expiries go in with the time as a value; kernel changes, packets to send and
//! log-worthy [`Event`]s come out.
//!
//! Work is done in rounds: every message the driver feeds before it polls is one round. Its
//! net kernel changes come out first (a binding removed and re-added within the round costs
//! nothing); once every outcome is back, the bindings whose objects the kernel refused are
//! rolled back (their objects withdrawn), and only then do the replies and events leave. So a
//! BAck(0) leaves only once its binding is in the kernel; a binding the kernel refused is
//! answered with status 130. Care-of addresses new to the plan need their outgoing interface
//! looked up first ([`Core::unresolved`], [`Core::resolve`]): the shell does that between
//! feeding a round and driving it.
//!
//! Kernel failure policy: a binding whose programming failed is revoked from the registrar
//! (`Registrar::revoke`) and everything of it is taken out of the kernel, including the route
//! to a previous CoA a refused move left behind, so the cache, the kernel and the MN (told 130)
//! agree that nothing is bound. The MN retries with a new sequence number. Only bindings
//! restored from the state file that reconciliation could not install stay in the cache,
//! marked *unprogrammed* (shown by `status`): there is no BU to answer for them.
pub mod neighbour;
pub mod plan;
pub mod replies;
pub mod revalidate;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::Ipv6Addr;

use mipcast_binding::{
    Action, BindingRecord, HomeAgentPolicy, Policy, Registrar, RemoveReason, RestoreRefusal,
    SaTable,
};
use mipcast_proto::{KObject, Machine, Millis, Outcome, ReplyBudgets, ReplyKind};
use serde::Serialize;

pub use mipcast_binding::Now;
use plan::{Changes, Plan, Round};

/// A received Mobility Header message from `src` to our address `dst`.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub bytes: &'a [u8],
}

/// One kernel change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    Add(KObject),
    /// Atomically takes the place of the route with the same identity.
    Replace(KObject),
    Delete(KObject),
}

impl Change {
    fn all(changes: Changes) -> impl Iterator<Item = Change> {
        let Changes {
            add,
            replace,
            delete,
        } = changes;
        add.into_iter()
            .map(Change::Add)
            .chain(replace.into_iter().map(Change::Replace))
            .chain(delete.into_iter().map(Change::Delete))
    }
}

/// What the driver must do, or log.
pub type Output = mipcast_proto::Output<Send, Change, Event>;

/// Where the current round is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Collecting inputs.
    #[default]
    Open,
    /// The round's changes are out; waiting for their outcomes.
    Programming,
    /// Rolling back refused bindings; replies and events go out after.
    RollingBack,
}

/// A Mobility Header message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Send {
    pub dst: Ipv6Addr,
    pub src: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// Something worth a log line and a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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
    /// The kernel refused a change (`rollback`: while undoing a refused binding).
    KernelRefused {
        change: Change,
        reason: String,
        rollback: bool,
    },
    /// The binding cache changed in the round just finished (the state file needs writing).
    BindingsChanged { bindings: usize },
}

/// Whether a message was refused before anyone proved holding a key (a wrong MAC, a
/// malformed or unknown message): what a keyless flood produces.
fn failed<P>(actions: &[Action<P>]) -> bool {
    actions.iter().any(|a| match a {
        Action::Rejected { authenticated, .. } => !authenticated,
        Action::Drop(_) => true,
        _ => false,
    }) || (actions.len() == 1 && matches!(actions.first(), Some(Action::Send { .. })))
}

/// A reply that waits for the burst's kernel changes.
#[derive(Debug)]
struct Pending {
    send: Send,
    /// The registration this BAck(0) announces: replaced by BAck 130 if it fails.
    confirms: Option<mipcast_binding::Binding<()>>,
}

/// One round of work; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    round: Round,
    pending: Vec<Pending>,
    events: Vec<Event>,
}

impl Burst {
    /// True when nothing was touched (no kernel changes, nothing to send).
    pub(crate) fn is_idle(&self) -> bool {
        self.round.is_empty() && self.pending.is_empty()
    }
}

/// What is left to do to finish a round.
#[derive(Debug, Default)]
pub(crate) struct Finish {
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

///
/// Generic over the registrar's [`Policy`] so the correspondent agent (which binds home
/// addresses to MMAs with the same objects: an encap route per binding, a decap rule per
/// peer) runs this very core with its own policy.
pub struct Core<P: Policy<Payload = ()> = HomeAgentPolicy> {
    registrar: Registrar<P>,
    /// A copy of the registrar's SAs, to name the cause of authentication failures.
    sas: SaTable,
    plan: Plan,
    limiter: ReplyBudgets,
    unprogrammed: HashSet<Ipv6Addr>,
    /// The round being collected or driven.
    burst: Burst,
    phase: Phase,
    /// Outputs not yet handed to the driver.
    queue: VecDeque<Output>,
    /// Kernel changes handed out whose outcome has not come back.
    outstanding: usize,
    /// Objects whose add or replace the kernel refused in this round.
    refused: Vec<KObject>,
    /// Replies and events waiting for the rollback.
    after: Vec<Output>,
    /// The time of the last input (the round is finished at it).
    last_now: Option<Now>,
    /// Objects whose delete the kernel refused: no binding owns them, so they are deleted
    /// again (at `stale_retry`) until the kernel lets them go or a binding wants them back.
    stale: BTreeSet<KObject>,
    stale_retry: Option<Millis>,
}

impl<P: Policy<Payload = ()>> Core<P> {
    pub fn new(
        registrar: Registrar<P>,
        sas: SaTable,
        plan: Plan,
        limiter: impl Into<ReplyBudgets>,
    ) -> Self {
        Core {
            registrar,
            sas,
            plan,
            limiter: limiter.into(),
            unprogrammed: HashSet::new(),
            burst: Burst::default(),
            phase: Phase::Open,
            queue: VecDeque::new(),
            outstanding: 0,
            refused: Vec::new(),
            after: Vec::new(),
            last_now: None,
            stale: BTreeSet::new(),
            stale_retry: None,
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
    pub fn reload(&mut self, sas: SaTable, policy: P, limiter: impl Into<ReplyBudgets>) {
        self.registrar.replace_sas(sas.clone());
        self.sas = sas;
        *self.registrar.policy_mut() = policy;
        self.limiter = limiter.into();
    }

    /// One received Mobility Header message from `src` to our address `dst`.
    pub(crate) fn on_message(
        &mut self,
        burst: &mut Burst,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: &[u8],
        now: Now,
    ) {
        if !self.limiter.admits(src, now.mono) {
            burst.events.push(Event::Dropped {
                peer: src,
                reason: "source_over_failure_budget",
                detail: String::new(),
            });
            return;
        }
        let actions = self.registrar.handle_bu(src, dst, bytes, now);
        if failed(&actions) {
            self.limiter.note_failure(src, now.mono);
        }
        // Replies that announce no binding change answer something we refused: rate-limited.
        let refusal = !actions
            .iter()
            .any(|a| matches!(a, Action::Install { .. } | Action::Remove { .. }));
        let rejected = actions.iter().any(|a| matches!(a, Action::Rejected { .. }));
        // Signed refusals (135, 144, ...) draw on the budget kept for real terminals.
        let kind = if actions.iter().any(|a| {
            matches!(
                a,
                Action::Rejected {
                    authenticated: true,
                    ..
                }
            )
        }) {
            ReplyKind::Authenticated
        } else {
            ReplyKind::Unauthenticated
        };
        let mut confirms = None;
        for action in actions {
            match action {
                Action::Install { binding, replaced } => {
                    self.plan
                        .set(&mut burst.round, binding.hoa, Some(binding.coa));
                    // A move: the terminal's packets through its previous CoA are still on
                    // their way (see `plan`'s previous-CoA window).
                    if let Some(previous) = replaced.as_ref().map(|r| r.coa) {
                        if previous != binding.coa {
                            self.plan
                                .linger(&mut burst.round, binding.hoa, previous, now.mono);
                        }
                    }
                    burst.events.push(Event::Registered {
                        hoa: binding.hoa,
                        coa: binding.coa,
                        previous: replaced.map(|r| r.coa),
                        lifetime_s: binding.lifetime_s,
                        sequence: binding.sequence,
                    });
                    confirms = Some(binding);
                }
                Action::Remove { binding, reason } => self.remove(burst, &binding, reason, now),
                Action::Send { dst, src, bytes } => {
                    if refusal {
                        if !rejected {
                            burst.events.push(Event::BindingError { peer: dst });
                        }
                        if !self.limiter.allow(kind, dst, now.mono) {
                            burst.events.push(Event::ReplySuppressed { peer: dst });
                            continue;
                        }
                    }
                    burst.pending.push(Pending {
                        send: Send { dst, src, bytes },
                        confirms: confirms.clone(),
                    });
                }
                Action::Rejected {
                    peer,
                    hoa,
                    status,
                    auth_error,
                    ..
                } => burst.events.push(Event::Rejected {
                    peer,
                    hoa,
                    status,
                    // The registrar names a MAC failure itself; verifying again here would
                    // double the cost of every forged BU.
                    auth_reason: match auth_error {
                        Some(label) => Some(label),
                        None => replies::auth_failure_reason(status, src, bytes, &self.sas),
                    },
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
    pub(crate) fn on_timers(&mut self, burst: &mut Burst, now: Now) {
        // Logged by the shell as the rule's delete; no event of its own.
        self.plan.expire_lingers(&mut burst.round, now.mono);
        for action in self.registrar.poll_timers(now) {
            match action {
                Action::Remove { binding, reason } => self.remove(burst, &binding, reason, now),
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

    /// Bindings from the state file; returns how many were restored (unexpired). Nothing is
    /// queued: the driver reconciles the kernel with [`Self::desired`] (after resolving
    /// [`Self::all_unresolved`]).
    pub fn restore(&mut self, records: Vec<BindingRecord<()>>, now: Now) -> usize {
        self.restore_checked(records, now).0
    }

    /// [`Self::restore`], with the records refused: each is re-checked against the current
    /// configuration (`Registrar::restore_checked`), and what fails is neither cached nor
    /// programmed.
    pub fn restore_checked(
        &mut self,
        records: Vec<BindingRecord<()>>,
        now: Now,
    ) -> (usize, Vec<RestoreRefusal>) {
        let mut round = plan::Round::default();
        let mut n = 0;
        let (actions, refused) = self.registrar.restore_checked(records, now);
        for action in actions {
            if let Action::Install { binding, .. } = action {
                self.plan.set(&mut round, binding.hoa, Some(binding.coa));
                n += 1;
            }
        }
        self.plan.end_round(round);
        (n, refused)
    }

    fn remove(
        &mut self,
        burst: &mut Burst,
        binding: &mipcast_binding::Binding<()>,
        reason: RemoveReason,
        now: Now,
    ) {
        self.plan.set(&mut burst.round, binding.hoa, None);
        if reason == RemoveReason::Deregistered {
            // Coming home: what the terminal sent up through its care-of address before it
            // deregistered is still on its way, as after a move (an earlier window ends here).
            self.plan
                .linger(&mut burst.round, binding.hoa, binding.coa, now.mono);
        } else {
            self.plan.unlinger(&mut burst.round, binding.hoa);
        }
        burst.events.push(Event::Removed {
            hoa: binding.hoa,
            coa: binding.coa,
            reason,
        });
    }

    /// Care-of addresses of the round being collected whose outgoing interface the shell
    /// must look up before it drives the round.
    pub fn unresolved(&self) -> Vec<Ipv6Addr> {
        self.plan.unresolved(&self.burst.round)
    }

    pub fn resolve(&mut self, coa: Ipv6Addr, oif: u32) {
        self.plan.resolve(coa, oif);
    }

    /// The burst's net kernel changes.
    pub(crate) fn changes(&self, burst: &Burst) -> Changes {
        self.plan.changes(&burst.round)
    }

    /// Ends the burst given the objects whose add or replace the kernel refused: their
    /// bindings are revoked and withdrawn from the kernel (see the module documentation).
    pub(crate) fn finish(&mut self, burst: Burst, failed: &[KObject], now: Now) -> Finish {
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
        let cache_changed = round.touches_bindings();
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

    /// The answer to a Neighbor Solicitation frame taken off the home link (see
    /// [`neighbour`]): one lookup in the binding table. `Ok(None)`: not a registered home
    /// address, nothing to send.
    pub fn answer_solicitation(
        &self,
        frame: &[u8],
        me: &neighbour::LinkIdentity,
    ) -> Result<Option<Vec<u8>>, neighbour::NotSolicitation> {
        let sol = neighbour::parse_frame(frame)?;
        let registered = self.plan.tunnel(&sol.ns.target).is_some();
        Ok(neighbour::answer(&sol, registered, me))
    }

    /// Everything that should be in the kernel (reconciliation at start).
    pub fn desired(&self) -> HashSet<KObject> {
        self.plan.desired()
    }

    /// Objects the kernel refused to delete, no binding's any more: deleted again until they
    /// go.
    pub fn stale(&self) -> impl Iterator<Item = &KObject> {
        self.stale.iter()
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

    /// The state-file record of `hoa`'s binding, None when it has none (a journal entry).
    pub fn record(&self, hoa: &Ipv6Addr, now: Now) -> Option<BindingRecord<()>> {
        self.registrar.cache().record(hoa, now)
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

/// Between attempts to delete an object the kernel refused to delete.
const STALE_RETRY_MS: u64 = 1000;

impl<P: Policy<Payload = ()>> Core<P> {
    /// Whether a binding wants `object` now (so a stale delete of it must not go out).
    fn wanted(&self, object: &KObject) -> bool {
        match *object {
            KObject::EncapRoute {
                dst, tunnel_dst, ..
            } => self.plan.tunnel(&dst.ip()) == Some(tunnel_dst),
            KObject::ProxyNeigh { addr, .. } => self.plan.tunnel(&addr).is_some(),
            KObject::Rule {
                from: Some(from), ..
            } => self.plan.accepts(&from.ip()),
            _ => true,
        }
    }
}

impl<P: Policy<Payload = ()>> Machine for Core<P> {
    type Input<'a> = Input<'a>;
    type Send = Send;
    type Change = Change;
    type Event = Event;

    fn handle_input(&mut self, now: Now, input: Input<'_>) {
        self.last_now = Some(now);
        let mut burst = std::mem::take(&mut self.burst);
        self.on_message(&mut burst, input.src, input.dst, input.bytes, now);
        self.burst = burst;
    }

    fn handle_timeout(&mut self, now: Now) {
        self.last_now = Some(now);
        if self.stale_retry.is_some_and(|at| at <= now.mono) {
            self.stale_retry = None;
            let stale: Vec<KObject> = std::mem::take(&mut self.stale)
                .into_iter()
                .filter(|o| !self.wanted(o))
                .collect();
            self.queue
                .extend(stale.into_iter().map(|o| Output::Kernel(Change::Delete(o))));
        }
        let mut burst = std::mem::take(&mut self.burst);
        self.on_timers(&mut burst, now);
        self.burst = burst;
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.registrar
            .next_deadline()
            .into_iter()
            .chain(self.stale_retry)
            .chain(self.plan.next_linger_deadline())
            .min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(output) = self.queue.pop_front() {
                if matches!(output, Output::Kernel(_)) {
                    self.outstanding += 1;
                }
                return Some(output);
            }
            if self.outstanding > 0 {
                return None;
            }
            match self.phase {
                Phase::Open => {
                    if self.burst.is_idle() && self.burst.events.is_empty() {
                        return None;
                    }
                    let changes = self.changes(&self.burst);
                    self.queue.extend(Change::all(changes).map(Output::Kernel));
                    self.phase = Phase::Programming;
                }
                Phase::Programming => {
                    let burst = std::mem::take(&mut self.burst);
                    let refused = std::mem::take(&mut self.refused);
                    let now = self.last_now.unwrap_or(Now {
                        mono: Millis(0),
                        wall_ntp: 0,
                    });
                    let fin = self.finish(burst, &refused, now);
                    self.queue
                        .extend(Change::all(fin.rollback).map(Output::Kernel));
                    // A registration revoked in this round was not accepted after all.
                    let revoked: HashSet<Ipv6Addr> = fin
                        .events
                        .iter()
                        .filter_map(|e| match e {
                            Event::ProgrammingFailed { hoa, .. } => Some(*hoa),
                            _ => None,
                        })
                        .collect();
                    self.after.extend(
                        fin.events
                            .into_iter()
                            .filter(|e| {
                                !matches!(e, Event::Registered { hoa, .. } if revoked.contains(hoa))
                            })
                            .map(Output::Event),
                    );
                    self.after.extend(fin.sends.into_iter().map(Output::Send));
                    if fin.cache_changed {
                        self.after.push(Output::Event(Event::BindingsChanged {
                            bindings: self.len(),
                        }));
                    }
                    self.phase = Phase::RollingBack;
                }
                Phase::RollingBack => {
                    self.queue.extend(self.after.drain(..));
                    self.phase = Phase::Open;
                    if self.queue.is_empty() {
                        return None;
                    }
                }
            }
        }
    }

    fn kernel_result(&mut self, now: Now, change: &Change, outcome: Outcome) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let rollback = self.phase == Phase::RollingBack;
        let held = match (change, &outcome) {
            (Change::Delete(_), o) => o.reached(true),
            // Undoing: an object already there is what the rollback wanted.
            (Change::Add(_), Outcome::AlreadyPresent) if rollback => true,
            (_, o) => o.reached(false),
        };
        if held {
            return;
        }
        match (change, rollback) {
            (Change::Add(o) | Change::Replace(o), false) => self.refused.push(*o),
            (Change::Delete(o), _) => {
                self.stale.insert(*o);
                self.stale_retry
                    .get_or_insert(now.mono.plus_ms(STALE_RETRY_MS));
            }
            _ => {}
        }
        let event = Event::KernelRefused {
            change: *change,
            reason: match outcome {
                Outcome::Refused { reason, .. } => reason,
                other => format!("{other:?}"),
            },
            rollback,
        };
        if self.phase == Phase::Programming {
            self.after.push(Output::Event(event));
        } else {
            self.queue.push_back(Output::Event(event));
        }
    }
}
