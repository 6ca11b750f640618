//! The one driver of the protocol cores' outputs in the daemons: the async twin of
//! [`mipcast_proto::settle`], on the same step rule ([`mipcast_proto::next_step`]).
//!
//! A shell feeds its core inputs and timeouts, then calls [`settle`]: kernel changes are
//! applied in batches by the shell's [`Effects`], every outcome is reported back to the core
//! (which decides whether to retry, revoke or report), and only then are the packets that
//! followed them sent.
//!
//! [`run`] is the daemons' one event loop around a [`Shell`]: signals (SIGHUP reloads read off
//! the loop through [`BackgroundLoad`], compared section by section and reported alike;
//! SIGTERM/SIGINT stop), `/status` requests, the core's timers, received bursts (one round
//! each), and the ordered shutdown.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use mipcast_proto::{next_step, Machine, Now, Outcome, Output, Step};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::clock::sleep_until;
use crate::config::background::BackgroundLoad;
use crate::config::ConfigError;
use crate::signals::{Signal, Signals};
use crate::status::{Snapshot, StatusRequests};

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

    /// Whether a settled round's packets wait for [`Effects::commit`]: a daemon that
    /// acknowledges what it journals sends no acknowledgement before the record is on disk.
    const COMMIT_BEFORE_SEND: bool = false;
    /// The round's state writer, once its kernel changes are applied and before its packets
    /// leave (with [`Effects::COMMIT_BEFORE_SEND`]); nothing by default.
    async fn commit(&mut self) {}
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

/// Drives `core` until it has nothing more to do, then commits the round
/// ([`Effects::commit`]) and, with [`Effects::COMMIT_BEFORE_SEND`], lets its packets go.
pub async fn settle<M: Machine, E: Effects<M>>(mut core: impl CoreCell<M>, effects: &mut E) {
    let mut held = Vec::new();
    loop {
        let step = core.with(next_step);
        match step {
            Step::Idle => break,
            Step::Output(output) => perform(effects, output, &mut held).await,
            Step::Apply { changes, then } => {
                let outcomes = effects.apply(&changes).await;
                let now = effects.now();
                core.with(|core| {
                    for (change, outcome) in changes.iter().zip(outcomes) {
                        core.kernel_result(now, change, outcome);
                    }
                });
                if let Some(output) = then {
                    perform(effects, output, &mut held).await;
                }
            }
        }
    }
    effects.commit().await;
    for send in held {
        effects.send(send).await;
    }
}

async fn perform<M: Machine, E: Effects<M>>(
    effects: &mut E,
    output: Output<M::Send, M::Change, M::Event>,
    held: &mut Vec<M::Send>,
) {
    match output {
        Output::Send(send) if E::COMMIT_BEFORE_SEND => held.push(send),
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
    /// The work each turn of the loop does before it waits (a poll, a refresh that is due);
    /// nothing by default.
    async fn before_wait(&mut self) {}
    /// When [`Shell::on_timer`] is due: the core's `poll_timeout`, or the shell's own timers.
    fn deadline(&mut self) -> Option<Instant>;
    /// `input` and whatever is queued behind it, as one round (handled, then settled).
    async fn on_input(&mut self, input: Self::Input);
    /// The deadline came: the core's `handle_timeout`, then settle.
    async fn on_timer(&mut self);
    /// What `new` changes against the running configuration, section by section.
    fn reload_diff(&self, new: &Self::Config) -> ReloadDiff;
    /// SIGHUP, once the file is read and compared: applies what changes in place; sections
    /// that need a restart keep their running values. An error refuses `new` as a whole and
    /// must leave the running configuration as it was.
    async fn reload(&mut self, new: Self::Config) -> Result<(), String>;
    /// The status document, now (served as `/status`, see [`crate::status`]).
    fn status(&mut self) -> Snapshot;
    /// SIGTERM/SIGINT, first: the state is written and what works beside the loop stops
    /// (tasks, goodbyes to neighbours).
    async fn stop(&mut self);
    /// Then, unless `--keep-kernel-state`: what the daemon installed in the kernel and the
    /// namespace is removed, and what it changed (rules, sysctls) is put back.
    async fn remove_installed(&mut self) -> Removal;
    /// Last: what [`run`] returns.
    fn exit(self) -> Self::Exit;
}

/// What [`Shell::remove_installed`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// Kernel objects (routes, rules, neighbour proxies, MFC entries, interfaces) removed.
    pub removed: usize,
    /// Steps that failed (each logged where it failed).
    pub failed: usize,
}

/// What a reloaded configuration changes, by section: applied in place, or only at the next
/// start. A shell lists every section it compares; [`run`] reports the result the same way for
/// every daemon.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadDiff {
    live: Vec<&'static str>,
    restart: Vec<&'static str>,
}

impl ReloadDiff {
    /// `section` changes in place.
    #[must_use]
    pub fn live(mut self, section: &'static str, changed: bool) -> ReloadDiff {
        if changed {
            self.live.push(section);
        }
        self
    }

    /// `section` changes only at the next start; its running value stays until then.
    #[must_use]
    pub fn restart(mut self, section: &'static str, changed: bool) -> ReloadDiff {
        if changed {
            self.restart.push(section);
        }
        self
    }

    /// Adds `other`'s sections.
    #[must_use]
    pub fn merge(mut self, other: ReloadDiff) -> ReloadDiff {
        self.live.extend(other.live);
        self.restart.extend(other.restart);
        self
    }

    /// The sections that change in place.
    pub fn changed(&self) -> &[&'static str] {
        &self.live
    }

    /// The sections that wait for a restart.
    pub fn needs_restart(&self) -> &[&'static str] {
        &self.restart
    }
}

/// The loop's own metrics (the daemons' are theirs).
#[derive(Clone, Default)]
pub struct LoopMetrics {
    reloads: Family<OutcomeLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

impl LoopMetrics {
    pub fn register(registry: &mut Registry) -> LoopMetrics {
        let metrics = LoopMetrics::default();
        registry.register(
            "config_reloads",
            "SIGHUP reloads: applied (sections that need a restart keep their running values, see the log), or refused (unreadable or invalid; the running configuration stays)",
            metrics.reloads.clone(),
        );
        metrics
    }

    fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

/// What [`run`] needs besides the shell, made by the setup.
pub struct Loop {
    /// Created as early as the setup can: from then on a stop request waits for the loop
    /// instead of killing the process without its cleanup.
    pub signals: Signals,
    /// `/status` requests from the metrics server ([`crate::status::status_channel`]).
    pub status: StatusRequests,
    pub metrics: LoopMetrics,
    /// Re-read on SIGHUP.
    pub config_path: PathBuf,
    pub keep_kernel_state: bool,
}

/// Runs `shell` until SIGTERM or SIGINT, then shuts it down. Readiness is announced to
/// systemd here.
pub async fn run<S: Shell>(mut shell: S, parts: Loop) -> S::Exit {
    let Loop {
        mut signals,
        mut status,
        metrics,
        config_path,
        keep_kernel_state,
    } = parts;
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
            loaded = reloading.finished() => {
                let outcome = reload(&mut shell, loaded).await;
                metrics.reload(outcome);
            }
            request = status.next() => {
                // The requester gave up if this fails: nothing to do.
                let _ = request.send(shell.status());
            }
            input = shell.next_input() => shell.on_input(input).await,
            _ = sleep_until(deadline) => shell.on_timer().await,
        }
    }
    stop(shell, keep_kernel_state).await
}

/// The ordered shutdown, logged the same way for every daemon.
async fn stop<S: Shell>(mut shell: S, keep_kernel_state: bool) -> S::Exit {
    info!("stopping");
    shell.stop().await;
    if keep_kernel_state {
        info!("stopped; kernel state kept (--keep-kernel-state)");
    } else {
        let Removal { removed, failed } = shell.remove_installed().await;
        if failed == 0 {
            info!(removed, "stopped; kernel state removed");
        } else {
            warn!(
                removed,
                failed, "stopped; kernel state removed, with failures"
            );
        }
    }
    shell.exit()
}

/// One SIGHUP's outcome, logged the same way for every daemon.
async fn reload<S: Shell>(
    shell: &mut S,
    loaded: Option<Result<S::Config, ConfigError>>,
) -> &'static str {
    let new = match loaded {
        Some(Ok(new)) => new,
        Some(Err(e)) => {
            error!("reload refused, the running configuration stays:\n{e}");
            return "refused";
        }
        None => {
            error!("reload: reading the configuration failed; the running one stays");
            return "refused";
        }
    };
    let diff = shell.reload_diff(&new);
    if let Err(e) = shell.reload(new).await {
        error!(error = %e, "reload refused, the running configuration stays");
        return "refused";
    }
    if !diff.needs_restart().is_empty() {
        warn!(
            sections = ?diff.needs_restart(),
            "reload: these settings change only at restart; their running values stay"
        );
    }
    info!(changed = ?diff.changed(), "configuration reloaded");
    "applied"
}

/// Awaits `f` when there is one; never completes otherwise. For `select!` branches whose
/// source is optional (a poll that is off, a channel that has closed, a task not running).
pub async fn or_never<F: std::future::Future>(f: Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
