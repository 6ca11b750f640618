//! The one driver of the protocol cores' outputs in the daemons: the async twin of
//! [`mipcast_proto::settle`], on the same step rule ([`mipcast_proto::next_step`]).
//!
//! A shell feeds its core inputs and timeouts, then calls [`settle`]: kernel changes are
//! applied in batches by the shell's [`Effects`], every outcome is reported back to the core
//! (which decides whether to retry, revoke or report), and only then are the packets that
//! followed them sent.
use std::sync::{Mutex, MutexGuard};

use mipcast_proto::{next_step, Machine, Now, Outcome, Output, Step};

/// What a shell does for its core: the I/O.
// Drivers are generic over their shell, never boxed, so `async fn` here is fine.
#[allow(async_fn_in_trait)]
pub trait Effects<M: Machine> {
    /// Applies `changes` in order, batching what the kernel allows; one outcome per change,
    /// classified by `mipcast_kernel::route::outcome_of`.
    async fn apply(&mut self, changes: &[M::Change]) -> Vec<Outcome>;
    /// Sends a packet.
    async fn send(&mut self, send: M::Send);
    /// Logs and counts an event.
    fn event(&mut self, event: M::Event);
    /// The time outcomes are reported at.
    fn now(&self) -> Now;
}

/// Locks a core; a panic elsewhere cannot poison data we only read and write whole.
pub fn lock<M>(core: &Mutex<M>) -> MutexGuard<'_, M> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a driver finds its core: a plain `&mut` or a mutex shared with the status page
/// (locked for each step only, never across an await).
pub trait CoreCell<M> {
    fn with<R>(&mut self, f: impl FnOnce(&mut M) -> R) -> R;
}

impl<M> CoreCell<M> for &Mutex<M> {
    fn with<R>(&mut self, f: impl FnOnce(&mut M) -> R) -> R {
        f(&mut lock(self))
    }
}

impl<M> CoreCell<M> for &mut M {
    fn with<R>(&mut self, f: impl FnOnce(&mut M) -> R) -> R {
        f(self)
    }
}

/// Drives `core` until it has nothing more to do.
pub async fn settle<M: Machine, E: Effects<M>>(mut core: impl CoreCell<M>, effects: &mut E) {
    loop {
        let step = core.with(next_step);
        match step {
            Step::Idle => return,
            Step::Output(output) => perform(effects, output).await,
            Step::Apply { changes, then } => {
                let outcomes = effects.apply(&changes).await;
                let now = effects.now();
                core.with(|core| {
                    for (change, outcome) in changes.iter().zip(outcomes) {
                        core.kernel_result(now, change, outcome);
                    }
                });
                if let Some(output) = then {
                    perform(effects, output).await;
                }
            }
        }
    }
}

async fn perform<M: Machine, E: Effects<M>>(
    effects: &mut E,
    output: Output<M::Send, M::Change, M::Event>,
) {
    match output {
        Output::Send(send) => effects.send(send).await,
        Output::Event(event) => effects.event(event),
        // next_step hands kernel changes out as Step::Apply only.
        Output::Kernel(_) => {}
    }
}
