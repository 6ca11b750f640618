//! The MMA's protocol core: a pure state machine around the shared registrar.
//!
//! Mobility Header messages and timer ticks go in with a [`Now`]; [`Output`]s come out in the
//! order to apply them: kernel changes before the acknowledgement that announces them. No
//! sockets, no clock reads, no kernel calls here, so tests drive it with a fake clock.
//!
//! Kernel failure policy: when a change of a terminal is refused, the shell asks
//! [`Core::owner`] whose it was and calls [`Core::revoke`]: the registration is taken back
//! from the registrar, everything of the terminal is deleted from the kernel, and its BU is
//! answered with a signed BAck 130 instead of the BAck(0) that confirmed it (a Send whose
//! `confirms` names the terminal, which the shell drops).
pub mod plan;
pub mod policy;

use std::collections::HashSet;
use std::net::Ipv6Addr;

use serde::Serialize;

use mipcast_binding::{
    Action, Binding, BindingRecord, BindingState, ConfigError, Now, Registrar, RegistrarConfig,
    RemoveReason, SaTable,
};
use mipcast_kernel::route::KObject;

pub use plan::{Change, Plan, TerminalState};
pub use policy::{MmaPolicy, PolicyConfig, Terminal};

/// What the shell must do, or log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send Mobility Header `bytes` from `src` to `dst`.
    Send {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: Vec<u8>,
        /// The home address whose registration this acknowledgement announces: not to be
        /// sent if that registration's kernel changes fail (see [`Core::revoke`]).
        confirms: Option<Ipv6Addr>,
    },
    Kernel(Change),
    Event(Event),
}

/// A protocol decision, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A message dropped without reply; `reason` is a stable metrics label.
    Dropped {
        reason: &'static str,
        detail: String,
    },
    /// The kernel refused a change of the terminal: its registration was revoked, its kernel
    /// state withdrawn, its BU answered with 130.
    ProgrammingFailed { hoa: Ipv6Addr, group: Ipv6Addr },
}

/// The MMA's state: registered terminals and the kernel plan they map to.
#[derive(Debug)]
pub struct Core {
    registrar: Registrar<MmaPolicy>,
    plan: Plan,
}

impl Core {
    pub fn new(
        registrar: RegistrarConfig,
        sas: SaTable,
        policy: PolicyConfig,
        plan: Plan,
    ) -> Result<Core, ConfigError> {
        let policy = MmaPolicy::new(plan.mma, policy);
        Ok(Core {
            registrar: Registrar::new(registrar, sas, policy)?,
            plan,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Applies a reloaded configuration (security associations, site and home agent
    /// prefixes, forwarding limits, decapsulation rules). Terminals stay registered; the
    /// caller reconciles the kernel with [`Self::desired_objects`] afterwards.
    pub fn reload(&mut self, sas: SaTable, policy: PolicyConfig, plan: Plan) {
        self.registrar.replace_sas(sas);
        self.registrar.policy_mut().set_config(policy);
        self.plan = plan;
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.registrar.next_deadline()
    }

    /// A Mobility Header message from `src` to our address `dst`.
    pub fn handle_mh(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: &[u8],
        now: Now,
    ) -> Vec<Output> {
        let actions = self.registrar.handle_bu(src, dst, bytes, now);
        self.translate(actions)
    }

    /// Expiries, ends of forwarding windows and Binding Refresh Requests due at `now`.
    pub fn poll(&mut self, now: Now) -> Vec<Output> {
        let actions = self.registrar.poll_timers(now);
        self.translate(actions)
    }

    /// State-file records of every terminal.
    pub fn records(&self, now: Now) -> Vec<BindingRecord<Terminal>> {
        self.registrar.records(now)
    }

    /// Restores state-file records; returns the changes that program them from scratch.
    pub fn restore(&mut self, records: Vec<BindingRecord<Terminal>>, now: Now) -> Vec<Output> {
        let actions = self.registrar.restore(records, now);
        self.translate(actions)
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
    /// last BU (sent whatever its A flag said: a refusal is always answered). Empty when `hoa`
    /// is not registered.
    pub fn revoke(&mut self, hoa: Ipv6Addr, now: Now) -> Vec<Output> {
        let Some(binding) = self.registrar.revoke(&hoa, now) else {
            return Vec::new();
        };
        self.registrar.policy_mut().note_remove(&binding);
        let mut out: Vec<Output> = self
            .plan
            .withdraw(hoa, &binding.payload)
            .into_iter()
            .map(Output::Kernel)
            .collect();
        out.push(Output::Event(Event::ProgrammingFailed {
            hoa,
            group: binding.payload.group,
        }));
        match self.registrar.revoked_ack(&binding) {
            Ok(bytes) => out.push(Output::Send {
                src: binding.local,
                dst: binding.peer,
                bytes,
                confirms: None,
            }),
            Err(e) => out.push(Output::Event(Event::Dropped {
                reason: "emit_failed",
                detail: e.to_string(),
            })),
        }
        out
    }

    fn translate(&mut self, actions: Vec<Action<Terminal>>) -> Vec<Output> {
        let mut out = Vec::new();
        // The registrar puts an install before the acknowledgement that announces it.
        let mut installed = None;
        for action in actions {
            match action {
                Action::Send { dst, src, bytes } => out.push(Output::Send {
                    src,
                    dst,
                    bytes,
                    confirms: installed,
                }),
                Action::Install { binding, replaced } => {
                    installed = Some(binding.hoa);
                    self.registrar
                        .policy_mut()
                        .note_install(&binding, replaced.as_ref());
                    let old = replaced
                        .as_ref()
                        .map(|b| self.plan.terminal(b.hoa, &b.payload));
                    let new = self.plan.terminal(binding.hoa, &binding.payload);
                    out.extend(
                        self.plan
                            .diff(old.as_ref(), Some(&new))
                            .into_iter()
                            .map(Output::Kernel),
                    );
                    out.push(Output::Event(match binding.payload.forward_to {
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
                    }));
                }
                Action::Remove { binding, reason } => {
                    self.registrar.policy_mut().note_remove(&binding);
                    let old = self.plan.terminal(binding.hoa, &binding.payload);
                    out.extend(
                        self.plan
                            .diff(Some(&old), None)
                            .into_iter()
                            .map(Output::Kernel),
                    );
                    out.push(Output::Event(Event::Removed {
                        hoa: binding.hoa,
                        group: binding.payload.group,
                        reason,
                    }));
                }
                Action::Rejected { peer, hoa, status } => {
                    out.push(Output::Event(Event::Rejected { peer, hoa, status }))
                }
                Action::Drop(reason) => out.push(Output::Event(Event::Dropped {
                    reason: reason.label(),
                    detail: reason.to_string(),
                })),
            }
        }
        out
    }
}

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
    pub fn terminal_status(&self, now_ms: u64) -> Vec<TerminalStatus> {
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
                expires_in_s: b.expires_at_ms.saturating_sub(now_ms) / 1000,
            })
            .collect()
    }
}
