//! The one contract of the protocol cores.
use serde::Serialize;

use crate::{Millis, Now};

/// What the kernel made of one change, classified once for every daemon (by errno, in
/// `mipcast_kernel::route::outcome`), so that a core decides on meaning, not on text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Done as asked.
    Applied,
    /// An add found the object already there (EEXIST): the kernel holds what was wanted only
    /// if it is ours; a core that cannot tell treats it as refused.
    AlreadyPresent,
    /// A delete found nothing to delete (ENOENT, ESRCH, EADDRNOTAVAIL): the goal is reached.
    AlreadyGone,
    /// Refused: `errno` when the kernel answered, `reason` its words, for logs.
    Refused { errno: Option<i32>, reason: String },
}

impl Outcome {
    /// True when the kernel now holds what the change wanted (or, for a delete, does not hold
    /// what it removed).
    pub fn reached(&self, is_delete: bool) -> bool {
        match self {
            Outcome::Applied => true,
            Outcome::AlreadyGone => is_delete,
            Outcome::AlreadyPresent | Outcome::Refused { .. } => false,
        }
    }
}

/// One thing a core wants done, in the order it wants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Output<S, C, E> {
    /// A packet to send.
    Send(S),
    /// A kernel change; its outcome comes back through [`Machine::kernel_result`].
    Kernel(C),
    /// Something that happened, for logs, metrics and recorded runs.
    Event(E),
}

/// A protocol core: a pure state machine, no sockets, no clock reads, no kernel calls.
///
/// A driver (the daemon's, or the simulation harness) feeds inputs and expired timers, then
/// drains [`poll_output`](Machine::poll_output) until it returns `None`, applies the kernel
/// changes and reports each outcome with [`kernel_result`](Machine::kernel_result) before it
/// sends the packets that followed them. A core therefore learns what the kernel refused and
/// decides: retry, revoke, or report.
pub trait Machine {
    /// A received message, a link or kernel event, a configuration change (may borrow the
    /// receive buffer).
    type Input<'a>;
    /// A packet to send.
    type Send;
    /// A change to the kernel (routes, rules, addresses, memberships, MFC entries).
    type Change;
    /// What happened, as data.
    type Event: Serialize;

    /// Handles one input at `now`.
    fn handle_input(&mut self, now: Now, input: Self::Input<'_>);

    /// Runs the timers due at `now` (a driver calls it when [`poll_timeout`] has passed).
    ///
    /// [`poll_timeout`]: Machine::poll_timeout
    fn handle_timeout(&mut self, now: Now);

    /// The earliest time at which [`handle_timeout`](Machine::handle_timeout) has work.
    fn poll_timeout(&self) -> Option<Millis>;

    /// The next thing to do, if any.
    fn poll_output(&mut self) -> Option<Output<Self::Send, Self::Change, Self::Event>>;

    /// What the kernel made of `change`, one of the core's own earlier outputs.
    fn kernel_result(&mut self, now: Now, change: &Self::Change, outcome: Outcome);
}

/// The [`Output`] of machine `M`.
pub type OutputOf<M> = Output<<M as Machine>::Send, <M as Machine>::Change, <M as Machine>::Event>;

/// One step of driving a core, as [`next_step`] decides it.
#[derive(Debug)]
pub enum Step<S, C, E> {
    /// Apply these kernel changes (in order, batched as the kernel allows), report each
    /// outcome with [`Machine::kernel_result`], then do `then`, if any.
    Apply {
        changes: Vec<C>,
        then: Option<Output<S, C, E>>,
    },
    /// Send or report this.
    Output(Output<S, C, E>),
    /// Nothing to do until the next input or timeout.
    Idle,
}

/// The one burst-driving rule, for the daemons' drivers and the simulation alike: consecutive
/// kernel changes are handed out together (one netlink batch), and whatever the core wants
/// after them waits until they are applied.
pub fn next_step<M: Machine>(core: &mut M) -> Step<M::Send, M::Change, M::Event> {
    let mut changes = Vec::new();
    loop {
        match core.poll_output() {
            Some(Output::Kernel(change)) => changes.push(change),
            Some(other) if changes.is_empty() => return Step::Output(other),
            then if changes.is_empty() => {
                debug_assert!(then.is_none());
                return Step::Idle;
            }
            then => return Step::Apply { changes, then },
        }
    }
}

/// Drives `core` until it is idle, applying kernel changes with `kernel` (one call per
/// change), and returns everything it output in order. For tests and the simulation harness,
/// whose kernel is a value.
pub fn settle<M: Machine>(
    core: &mut M,
    now: Now,
    mut kernel: impl FnMut(&M::Change) -> Outcome,
) -> Vec<OutputOf<M>>
where
    M::Change: Clone,
{
    let mut out = Vec::new();
    loop {
        match next_step(core) {
            Step::Idle => return out,
            Step::Output(o) => out.push(o),
            Step::Apply { changes, then } => {
                for change in changes {
                    let outcome = kernel(&change);
                    core.kernel_result(now, &change, outcome);
                    out.push(Output::Kernel(change));
                }
                out.extend(then);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_say_whether_the_goal_is_reached() {
        assert!(Outcome::Applied.reached(false));
        assert!(Outcome::AlreadyGone.reached(true));
        assert!(!Outcome::AlreadyGone.reached(false));
        assert!(!Outcome::AlreadyPresent.reached(false));
        let refused = Outcome::Refused {
            errno: Some(22),
            reason: "Invalid argument".into(),
        };
        assert!(!refused.reached(true));
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"outcome":"refused","errno":22,"reason":"Invalid argument"}"#
        );
    }
}
