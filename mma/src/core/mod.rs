//! The MMA's protocol core: a pure state machine around the shared registrar, speaking the
//! cores' one contract ([`Machine`]).
//!
//! Mobility Header messages ([`Input`]) and timer expiries go in with a [`Now`]; kernel changes
//! come out first, then, once the driver has reported every change's [`Outcome`], the events
//! and acknowledgements of the round: no acknowledgement announces state the kernel refused.
//! No sockets, no clock reads, no kernel calls here, so tests drive it with a fake clock.
//!
//! Kernel failure policy (decided here, from outcomes classified by errno in the kernel crate):
//! an add that finds its route already there (left by a crashed predecessor) is retried as a
//! replace; any other refused add, replace or MFC entry of a terminal revokes it: the
//! registration is taken back from the registrar, everything of the terminal is deleted from
//! the kernel, and its BU is answered with a signed BAck 130 instead of the BAck(0) that
//! confirmed it. A refused delete is reported and tried again every second until the kernel
//! lets the state go (or a terminal owns that state again).
//!
//! Replies that refuse a message (no binding changed) are rate-limited per source prefix and
//! globally, signed replies to authenticated messages from a budget of their own
//! ([`ReplyBudgets`]), as the home agent's are.
pub mod advice;
pub mod context;
pub mod plan;
pub mod policy;
pub mod revalidate;
pub mod ro;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::Ipv6Addr;

use serde::Serialize;

use mipcast_binding::{
    Action, Binding, BindingRecord, BindingState, ConfigError, Now, Registrar, RegistrarConfig,
    RemoveReason, RestoreRefusal, SaTable,
};
use mipcast_proto::{KObject, Machine, Millis, Outcome, ReplyBudgets, ReplyKind};

pub use advice::{AdviceConfig, Advise, SiteLink};
pub use context::{ContextConfig, ContextEvent, ContextStatus, CorrespondentContext};
pub use plan::{Change, Plan, TerminalState};
pub use policy::{MmaPolicy, PolicyConfig, Terminal};

/// A received Mobility Header message from `src` to our address `dst`.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub bytes: &'a [u8],
}

/// What goes into the core.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Mobility(Received<'a>),
    /// The operator advises the terminals on a site link to leave it (`mma advise`).
    Advise(Advise),
    /// Cumulative byte counters of the (MMA, G) forwarding entries, as the shell reads them:
    /// the measured load of each site link (the load trigger of handoff advice).
    GroupCounters(&'a [(Ipv6Addr, u64)]),
}

impl<'a> From<Received<'a>> for Input<'a> {
    fn from(r: Received<'a>) -> Input<'a> {
        Input::Mobility(r)
    }
}

/// A Mobility Header message to send from `src` to `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Send {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// What the driver must do, or log.
pub type Output = mipcast_proto::Output<Send, Change, Event>;

/// An event or message waiting for the round's kernel outcomes.
#[derive(Debug)]
struct Held {
    output: Output,
    /// The terminal whose registration this announces: dropped if that registration is
    /// revoked in the same round.
    confirms: Option<Ipv6Addr>,
}

/// A protocol decision, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A terminal registered (or refreshed: `refresh` when it was already served here).
    Registered {
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        group: Ipv6Addr,
        home_agent: Ipv6Addr,
        lifetime_s: u32,
        refresh: bool,
    },
    /// A terminal left with a forwarding request.
    ForwardingStarted {
        hoa: Ipv6Addr,
        new_coa: Ipv6Addr,
        grace_s: u32,
    },
    Removed {
        hoa: Ipv6Addr,
        group: Ipv6Addr,
        reason: RemoveReason,
    },
    Rejected {
        peer: Ipv6Addr,
        hoa: Option<Ipv6Addr>,
        status: u8,
    },
    /// A forwarding request refused (after its `Rejected`); `reason` is a stable metrics label
    /// (`policy::forwarding_refusal`).
    ForwardingRefused {
        peer: Ipv6Addr,
        hoa: Option<Ipv6Addr>,
        reason: &'static str,
    },
    /// A message dropped without reply; `reason` is a stable metrics label.
    Dropped {
        reason: &'static str,
        detail: String,
    },
    /// The kernel refused a change of the terminal: its registration was revoked, its kernel
    /// state withdrawn, its BU answered with 130.
    ProgrammingFailed { hoa: Ipv6Addr, group: Ipv6Addr },
    /// The kernel refused a change that no terminal owns (a constant rule, or a delete).
    KernelRefused { change: String, reason: String },
    /// A reply to a refused message was not sent: over the rate limit.
    ReplySuppressed { peer: Ipv6Addr },
    /// Handoff advice sent to a terminal; `trigger` is "operator" or "load".
    Advised {
        hoa: Ipv6Addr,
        on_link: Ipv6Addr,
        reason: u8,
        avoid_s: u16,
        trigger: &'static str,
    },
    /// Context transfer between MMAs (issue 12 §3), see [`context`].
    Context(ContextEvent),
}

/// The MMA's state: registered terminals and the kernel plan they map to.
#[derive(Debug)]
pub struct Core {
    registrar: Registrar<MmaPolicy>,
    plan: Plan,
    limiter: ReplyBudgets,
    /// Kernel changes not yet handed out, and revocations' withdrawals.
    queue: VecDeque<Output>,
    /// Events and messages of the round, released once no kernel outcome is outstanding.
    held: Vec<Held>,
    /// Kernel changes handed out whose outcome has not come back.
    outstanding: usize,
    /// Terminals revoked in this round: what confirmed them is not sent.
    revoked: BTreeSet<Ipv6Addr>,
    /// Deletes the kernel refused, of state no terminal owns: tried again (at `stale_retry`)
    /// until the kernel lets the state go or a terminal owns it again.
    stale: Vec<Change>,
    stale_retry: Option<Millis>,
    /// The terminals' security associations: handoff advice is signed with them.
    sas: SaTable,
    advice: AdviceConfig,
    /// Last counter reading per group, for rates.
    group_bytes: std::collections::HashMap<Ipv6Addr, (u64, Millis)>,
    /// Per link prefix: no load advice before this time (one advice per avoid period).
    load_hold: std::collections::HashMap<(Ipv6Addr, u8), Millis>,
    /// Context transfer with peer MMAs.
    context: context::ContextState,
}

impl Core {
    pub fn new(
        registrar: RegistrarConfig,
        sas: SaTable,
        policy: PolicyConfig,
        plan: Plan,
        limiter: impl Into<ReplyBudgets>,
    ) -> Result<Core, ConfigError> {
        let policy = MmaPolicy::new(plan.mma, policy);
        Ok(Core {
            sas: sas.clone(),
            advice: AdviceConfig::default(),
            group_bytes: std::collections::HashMap::new(),
            load_hold: std::collections::HashMap::new(),
            registrar: Registrar::new(registrar, sas, policy)?,
            plan,
            limiter: limiter.into(),
            queue: VecDeque::new(),
            held: Vec::new(),
            outstanding: 0,
            revoked: BTreeSet::new(),
            stale: Vec::new(),
            stale_retry: None,
            context: context::ContextState::default(),
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Applies a reloaded configuration (security associations, site and home agent
    /// prefixes, forwarding limits, decapsulation rules). Terminals stay registered; the
    /// caller reconciles the kernel with [`Self::desired_objects`] afterwards.
    pub fn reload(
        &mut self,
        sas: SaTable,
        policy: PolicyConfig,
        plan: Plan,
        limiter: impl Into<ReplyBudgets>,
    ) {
        self.sas = sas.clone();
        self.registrar.replace_sas(sas);
        self.registrar.policy_mut().set_config(policy);
        self.plan = plan;
        self.limiter = limiter.into();
    }

    /// State-file records of every terminal.
    pub fn records(&self, now: Now) -> Vec<BindingRecord<Terminal>> {
        self.registrar.records(now)
    }

    /// The state-file record of `hoa`'s registration, None when it has none (a journal
    /// entry).
    pub fn record(&self, hoa: &Ipv6Addr, now: Now) -> Option<BindingRecord<Terminal>> {
        self.registrar.cache().record(hoa, now)
    }

    /// Registrations held (served and lingering).
    pub fn records_len(&self) -> usize {
        self.registrar.cache().len()
    }

    /// Restores state-file records; returns how many terminals came back. Their kernel state
    /// is not queued: the driver reconciles the kernel with [`Self::desired_objects`].
    pub fn restore(&mut self, records: Vec<BindingRecord<Terminal>>, now: Now) -> usize {
        self.restore_checked(records, now).0
    }

    /// [`Self::restore`], with the records refused: each is re-checked against the current
    /// configuration (SAs, prefixes, group uniqueness and kind, lifetimes), and what fails is
    /// neither cached nor programmed.
    pub fn restore_checked(
        &mut self,
        records: Vec<BindingRecord<Terminal>>,
        now: Now,
    ) -> (usize, Vec<RestoreRefusal>) {
        let mut restored = 0;
        let (actions, refused) = self.registrar.restore_checked(records, now);
        for action in actions {
            if let Action::Install { binding, replaced } = action {
                self.registrar
                    .policy_mut()
                    .note_install(&binding, replaced.as_ref());
                restored += 1;
            }
        }
        (restored, refused)
    }

    /// Every route and rule the MMA wants now: the constant ones and each terminal's.
    pub fn desired_objects(&self) -> HashSet<KObject> {
        let mut set: HashSet<KObject> = self.plan.constant_objects().into_iter().collect();
        for b in self.registrar.cache().iter() {
            set.extend(self.plan.terminal(b.hoa, &b.payload).routes);
        }
        set
    }

    /// The (MMA, G) MFC entries wanted now.
    pub fn desired_groups(&self) -> Vec<Ipv6Addr> {
        self.registrar
            .cache()
            .iter()
            .filter_map(|b| self.plan.terminal(b.hoa, &b.payload).mfc_group)
            .collect()
    }

    pub fn terminals(&self) -> impl Iterator<Item = &Binding<Terminal>> {
        self.registrar.cache().iter()
    }

    /// (served terminals, terminals in a forwarding window).
    /// O(1): the shell reads it after every burst.
    pub fn counts(&self) -> (usize, usize) {
        let served = self.registrar.policy().served();
        (served, self.registrar.cache().len().saturating_sub(served))
    }

    /// The terminal holding `group`, if any.
    pub fn group_owner(&self, group: Ipv6Addr) -> Option<Ipv6Addr> {
        self.registrar.policy().group_owner(group)
    }

    /// The registered terminal a kernel change serves, if any (constant objects serve none).
    pub fn owner(&self, change: &Change) -> Option<Ipv6Addr> {
        let hoa = match *change {
            Change::Add(o) | Change::Replace(o) | Change::Delete(o) => plan::terminal_of(&o)?,
            Change::AddMfc { group, .. } | Change::DelMfc { group, .. } => {
                self.group_owner(group)?
            }
        };
        self.registrar.cache().get(&hoa).map(|b| b.hoa)
    }

    /// Takes back the registration of `hoa` after its kernel changes failed: the changes that
    /// delete whatever of it the kernel may hold, the event, and the signed BAck 130 to its
    /// last BU (sent whatever its A flag said: a refusal is always answered).
    fn revoke(&mut self, hoa: Ipv6Addr, now: Now) {
        let Some(binding) = self.registrar.revoke(&hoa, now) else {
            return;
        };
        self.revoked.insert(hoa);
        self.registrar.policy_mut().note_remove(&binding);
        for change in self.plan.withdraw(hoa, &binding.payload) {
            self.queue.push_back(Output::Kernel(change));
        }
        self.hold(Output::Event(Event::ProgrammingFailed {
            hoa,
            group: binding.payload.group,
        }));
        match self.registrar.revoked_ack(&binding) {
            Ok(bytes) => self.hold(Output::Send(Send {
                src: binding.local,
                dst: binding.peer,
                bytes,
            })),
            Err(e) => self.hold(Output::Event(Event::Dropped {
                reason: "emit_failed",
                detail: e.to_string(),
            })),
        }
    }

    fn hold(&mut self, output: Output) {
        self.held.push(Held {
            output,
            confirms: None,
        });
    }

    fn translate(&mut self, actions: Vec<Action<Terminal>>, now: Now) {
        // Replies that announce no binding change answer something we refused.
        let refusal = !actions
            .iter()
            .any(|a| matches!(a, Action::Install { .. } | Action::Remove { .. }));
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
        // The registrar puts an install before the acknowledgement that announces it.
        let mut installed = None;
        // Terminals new here: checked against their link's load once acknowledged.
        let mut newcomers = Vec::new();
        for action in actions {
            match action {
                Action::Send { dst, src, bytes } => {
                    if refusal && !self.limiter.allow(kind, dst, now.mono) {
                        self.hold(Output::Event(Event::ReplySuppressed { peer: dst }));
                        continue;
                    }
                    self.held.push(Held {
                        output: Output::Send(Send { src, dst, bytes }),
                        confirms: installed,
                    });
                }
                Action::Install { binding, replaced } => {
                    installed = Some(binding.hoa);
                    let new_here = replaced.is_none() && binding.payload.forward_to.is_none();
                    self.registrar
                        .policy_mut()
                        .note_install(&binding, replaced.as_ref());
                    let old = replaced
                        .as_ref()
                        .map(|b| self.plan.terminal(b.hoa, &b.payload));
                    let new = self.plan.terminal(binding.hoa, &binding.payload);
                    for change in self.plan.diff(old.as_ref(), Some(&new)) {
                        self.queue.push_back(Output::Kernel(change));
                    }
                    let event = match binding.payload.forward_to {
                        Some(new_coa) => Event::ForwardingStarted {
                            hoa: binding.hoa,
                            new_coa,
                            grace_s: binding.lifetime_s,
                        },
                        None => Event::Registered {
                            hoa: binding.hoa,
                            coa: binding.coa,
                            group: binding.payload.group,
                            home_agent: binding.payload.home_agent,
                            lifetime_s: binding.lifetime_s,
                            refresh: replaced
                                .as_ref()
                                .is_some_and(|b| b.payload.forward_to.is_none()),
                        },
                    };
                    self.held.push(Held {
                        output: Output::Event(event),
                        confirms: installed,
                    });
                    if new_here {
                        newcomers.push(binding);
                    }
                }
                Action::Remove { binding, reason } => {
                    self.registrar.policy_mut().note_remove(&binding);
                    let old = self.plan.terminal(binding.hoa, &binding.payload);
                    for change in self.plan.diff(Some(&old), None) {
                        self.queue.push_back(Output::Kernel(change));
                    }
                    self.hold(Output::Event(Event::Removed {
                        hoa: binding.hoa,
                        group: binding.payload.group,
                        reason,
                    }));
                }
                Action::Rejected {
                    peer, hoa, status, ..
                } => {
                    self.hold(Output::Event(Event::Rejected { peer, hoa, status }));
                    if let Some(reason) = self.registrar.policy_mut().take_forwarding_refusal() {
                        self.hold(Output::Event(Event::ForwardingRefused {
                            peer,
                            hoa,
                            reason,
                        }));
                    }
                }
                Action::Drop(reason) => self.hold(Output::Event(Event::Dropped {
                    reason: reason.label(),
                    detail: reason.to_string(),
                })),
            }
        }
        for binding in newcomers {
            self.advise_if_loaded(&binding, now);
        }
    }
}

impl Machine for Core {
    type Input<'a> = Input<'a>;
    type Send = Send;
    type Change = Change;
    type Event = Event;

    fn handle_input(&mut self, now: Now, input: Input<'_>) {
        match input {
            Input::Mobility(m) => {
                if !self.limiter.admits(m.src, now.mono) {
                    self.hold(Output::Event(Event::Dropped {
                        reason: "source_over_failure_budget",
                        detail: String::new(),
                    }));
                    return;
                }
                if self.is_context_message(&m) {
                    return self.on_context_message(m, now);
                }
                let actions = self.registrar.handle_bu(m.src, m.dst, m.bytes, now);
                // A terminal newly served here (first registration, or back from a forwarding
                // window): its BU may name a previous MMA to ask for its context.
                let fresh = actions.iter().find_map(|a| match a {
                    Action::Install { binding, replaced }
                        if binding.payload.forward_to.is_none()
                            && replaced
                                .as_ref()
                                .is_none_or(|r| r.payload.forward_to.is_some()) =>
                    {
                        Some(binding.hoa)
                    }
                    _ => None,
                });
                // Refused before anyone proved holding a key (a wrong MAC, a malformed or
                // unknown message): what a keyless flood produces, counted against its source.
                let failed = actions.iter().any(|a| match a {
                    Action::Rejected { authenticated, .. } => !authenticated,
                    Action::Drop(_) => true,
                    _ => false,
                }) || (actions.len() == 1
                    && matches!(actions.first(), Some(Action::Send { .. })));
                if failed {
                    self.limiter.note_failure(m.src, now.mono);
                }
                self.translate(actions, now);
                if let Some(hoa) = fresh {
                    self.request_context(hoa, m.bytes, now);
                }
            }
            Input::Advise(a) => self.advise(&a, now),
            Input::GroupCounters(c) => self.on_counters(c, now),
        }
    }

    /// Expiries, ends of forwarding windows and Binding Refresh Requests due at `now`.
    fn handle_timeout(&mut self, now: Now) {
        if self.stale_retry.is_some_and(|at| at <= now.mono) {
            self.stale_retry = None;
            let stale: Vec<Change> = std::mem::take(&mut self.stale)
                .into_iter()
                .filter(|c| self.owner(c).is_none())
                .collect();
            self.queue.extend(stale.into_iter().map(Output::Kernel));
        }
        let actions = self.registrar.poll_timers(now);
        self.translate(actions, now);
        self.context_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.registrar
            .next_deadline()
            .into_iter()
            .chain(self.stale_retry)
            .chain(self.context_deadline())
            .min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.queue.pop_front() {
            if matches!(output, Output::Kernel(_)) {
                self.outstanding += 1;
            }
            return Some(output);
        }
        if self.outstanding > 0 || self.held.is_empty() {
            return None;
        }
        // Every kernel outcome of the round is in: release its events and messages, less
        // what announced a registration the kernel refused.
        let revoked = std::mem::take(&mut self.revoked);
        let held = std::mem::take(&mut self.held);
        self.queue.extend(
            held.into_iter()
                .filter(|h| !h.confirms.is_some_and(|hoa| revoked.contains(&hoa)))
                .map(|h| h.output),
        );
        self.queue.pop_front()
    }

    fn kernel_result(&mut self, now: Now, change: &Change, outcome: Outcome) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if outcome.reached(change.is_delete()) {
            return;
        }
        match (change, &outcome) {
            // A route left by a crashed predecessor: take its place.
            (Change::Add(object), Outcome::AlreadyPresent) => {
                self.queue
                    .push_back(Output::Kernel(Change::Replace(*object)));
            }
            _ => match self.owner(change) {
                Some(hoa) if !change.is_delete() => self.revoke(hoa, now),
                owner => {
                    if change.is_delete() && owner.is_none() {
                        self.stale.push(*change);
                        self.stale_retry
                            .get_or_insert(now.mono.plus_ms(STALE_RETRY_MS));
                    }
                    self.hold(Output::Event(Event::KernelRefused {
                        change: format!("{change:?}"),
                        reason: match outcome {
                            Outcome::Refused { reason, .. } => reason,
                            other => format!("{other:?}"),
                        },
                    }));
                }
            },
        }
    }
}

/// Between attempts to delete state the kernel refused to delete.
const STALE_RETRY_MS: u64 = 1000;

/// One terminal as `mma status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalStatus {
    pub hoa: Ipv6Addr,
    pub group: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    /// The terminal's on-link address (source of its last BU).
    pub on_link: Ipv6Addr,
    pub state: &'static str,
    pub forward_to: Option<Ipv6Addr>,
    pub sequence: u16,
    pub expires_in_s: u64,
}

impl Core {
    pub fn terminal_status(&self, now: Millis) -> Vec<TerminalStatus> {
        self.terminals()
            .map(|b| TerminalStatus {
                hoa: b.hoa,
                group: b.payload.group,
                home_agent: b.payload.home_agent,
                on_link: b.peer,
                state: match b.state {
                    BindingState::Active => "registered",
                    BindingState::Lingering => "forwarding",
                },
                forward_to: b.payload.forward_to,
                sequence: b.sequence,
                expires_in_s: b.expires_at_ms.saturating_sub(now.0) / 1000,
            })
            .collect()
    }
}
