//! The one driver of the protocol cores' outputs in the daemons: the async twin of
//! [`mipcast_proto::settle`], on the same step rule ([`mipcast_proto::next_step`]).
//!
//! A shell feeds its core inputs and timeouts, then calls [`settle`]: kernel changes are
//! applied in batches by the shell's [`Effects`], every outcome is reported back to the core
//! (which decides whether to retry, revoke or report), and only then are the packets that
//! followed them sent.
//!
//! [`run`] is the daemons' one event loop around a [`Shell`]: signals (SIGHUP reloads off the
//! loop through [`BackgroundLoad`], SIGTERM/SIGINT stop), the core's timers, received bursts
//! (one round each), the state writer after each round, and the ordered shutdown.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use mipcast_proto::{next_step, Machine, Now, Outcome, Output, Step};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::clock::sleep_until;
use crate::config::background::BackgroundLoad;
use crate::config::ConfigError;
use crate::signals::{Signal, Signals};

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

/// A daemon's I/O around its core, as [`run`] drives it. Setup (sockets, configuration
/// translation, restoring state, the metrics listener) happens before; what is specific to a
/// daemon (several sockets, upcalls, its own timers) lives behind these calls.
// Driven generically, never boxed: `async fn` is fine here too.
#[allow(async_fn_in_trait)]
pub trait Shell {
    /// The daemon's configuration, as re-read on SIGHUP.
    type Config: Send + 'static;
    /// The first item of a received burst, from whichever of the shell's sockets had one.
    type Input;
    /// What [`run`] returns once the shell has shut down.
    type Exit;

    /// Reads and validates the configuration file (on the blocking pool, off the loop).
    fn load(path: &Path) -> Result<Self::Config, ConfigError>;
    /// The next received item. Must be cancel-safe: it is raced against signals and timers.
    async fn next_input(&mut self) -> Self::Input;
    /// The work each turn of the loop does before it waits (a poll, a status refresh that
    /// is due); nothing by default.
    async fn before_wait(&mut self) {}
    /// When [`Shell::on_timer`] is due: the core's `poll_timeout`, or the shell's own timers.
    fn deadline(&mut self) -> Option<Instant>;
    /// `input` and whatever is queued behind it, as one round (handled, then settled).
    async fn on_input(&mut self, input: Self::Input);
    /// The deadline came: the core's `handle_timeout`, then settle.
    async fn on_timer(&mut self);
    /// SIGHUP, once the file has been read: apply what changes in place, report the rest.
    async fn on_reload(&mut self, loaded: Result<Self::Config, ConfigError>);
    /// After every round. Shells that must journal inside the round (before its replies
    /// leave) do it there and leave this empty.
    fn write_state(&mut self) {}
    /// SIGTERM/SIGINT: the state is written; unless `keep_kernel_state`, what was installed
    /// in the kernel and the namespace is removed.
    async fn shutdown(self, keep_kernel_state: bool) -> Self::Exit;
}

/// Runs `shell` until SIGTERM or SIGINT, then shuts it down. `signals` are created by the
/// setup as early as it can (from then on a stop request waits for the loop instead of
/// killing the process without its cleanup); readiness is announced to systemd here.
pub async fn run<S: Shell>(
    mut shell: S,
    mut signals: Signals,
    config_path: PathBuf,
    keep_kernel_state: bool,
) -> S::Exit {
    crate::notify::ready();
    let mut reloading = BackgroundLoad::default();
    loop {
        shell.before_wait().await;
        let deadline = shell.deadline();
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Shutdown => break,
                Signal::Reload => {
                    info!(file = %config_path.display(), "SIGHUP: reloading the configuration");
                    let path = config_path.clone();
                    if !reloading.start(move || S::load(&path)) {
                        warn!("reload: ignored, the previous one is still being read; send SIGHUP again once it is done");
                    }
                }
            },
            loaded = reloading.finished() => match loaded {
                Some(loaded) => {
                    shell.on_reload(loaded).await;
                    shell.write_state();
                }
                None => error!("reload: reading the configuration failed; keeping the running one"),
            },
            input = shell.next_input() => {
                shell.on_input(input).await;
                shell.write_state();
            }
            _ = sleep_until(deadline) => {
                shell.on_timer().await;
                shell.write_state();
            }
        }
    }
    shell.shutdown(keep_kernel_state).await
}

/// Awaits `f` when there is one; never completes otherwise. For `select!` branches whose
/// source is optional (a poll that is off, a channel that has closed, a task not running).
pub async fn or_never<F: std::future::Future>(f: Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
