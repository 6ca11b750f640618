//! The kernel counters of the installed MFC entries, read on a thread of their own at the
//! lowest CPU priority.
//!
//! A read is one `SIOCGETSGCNT_IN6` per entry: 8-15 ms of CPU at 10,000 entries. Off the event
//! loop it no longer delays a Join directly, but on a 2-vCPU router it still competes with the
//! loop for a CPU (in pim-bench on a loaded machine, an experimental build without the reads
//! had fewer Joins over 2 ms to their first forwarded packet). At nice 19 the loop preempts it
//! as soon as it wakes up; the counters are for metrics and can wait.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mipcast_kernel::mrt6::Mrt6;

use crate::core::Sg;
use crate::metrics::Metrics;

/// What the loop tells the counter thread.
enum Msg {
    Installed(Sg),
    Removed(Sg),
    Read,
}

/// The (S,G) entries we installed in the kernel, mirrored to the thread that reads their
/// counters: the loop sends each change (O(1)), never the whole list, so a refresh costs the
/// loop the same at 10 or 10,000 entries.
pub(crate) struct Installed {
    entries: BTreeSet<Sg>,
    thread: Option<(Sender<Msg>, JoinHandle<()>)>,
    busy: Arc<AtomicBool>,
    /// How long the last read took, µs.
    cost_us: Arc<AtomicU64>,
}

impl Installed {
    /// Starts the counter thread; it holds the MRT6 socket until [`Installed::stop`].
    pub(crate) fn start(mrt: Arc<Mrt6>, metrics: Arc<Metrics>) -> std::io::Result<Installed> {
        let (tx, rx) = channel::<Msg>();
        let busy = Arc::new(AtomicBool::new(false));
        let cost_us = Arc::new(AtomicU64::new(0));
        let (thread_busy, thread_cost) = (Arc::clone(&busy), Arc::clone(&cost_us));
        let thread = std::thread::Builder::new()
            .name("mfc-counters".into())
            .spawn(move || {
                lower_priority();
                let mut entries = BTreeSet::new();
                for msg in rx {
                    match msg {
                        Msg::Installed(sg) => {
                            entries.insert(sg);
                        }
                        Msg::Removed(sg) => {
                            entries.remove(&sg);
                        }
                        Msg::Read => {
                            let started = Instant::now();
                            // In (source, group) order, as the set is.
                            let counters: Vec<_> = entries
                                .iter()
                                .filter_map(|sg| match mrt.sg_counters(sg.source, sg.group) {
                                    Ok(c) => Some((*sg, c.packets, c.bytes)),
                                    Err(e) => {
                                        tracing::debug!("{e}");
                                        None
                                    }
                                })
                                .collect();
                            metrics.set_mfc_counters(counters);
                            let us =
                                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                            thread_cost.store(us, Ordering::Relaxed);
                            thread_busy.store(false, Ordering::Release);
                        }
                    }
                }
            })?;
        Ok(Installed {
            entries: BTreeSet::new(),
            thread: Some((tx, thread)),
            busy,
            cost_us,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn insert(&mut self, sg: Sg) {
        if self.entries.insert(sg) {
            self.send(Msg::Installed(sg));
        }
    }

    pub(crate) fn remove(&mut self, sg: &Sg) {
        if self.entries.remove(sg) {
            self.send(Msg::Removed(*sg));
        }
    }

    /// Whether the last read is still running.
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// How long the last finished read took.
    pub(crate) fn last_cost(&self) -> Duration {
        Duration::from_micros(self.cost_us.load(Ordering::Relaxed))
    }

    /// Reads the counters of every installed entry into the metrics; false when a read is
    /// still running (nothing is queued then).
    pub(crate) fn read_counters(&self) -> bool {
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        if !self.send(Msg::Read) {
            self.busy.store(false, Ordering::Release);
            return false;
        }
        true
    }

    fn send(&self, msg: Msg) -> bool {
        match &self.thread {
            Some((tx, _)) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    /// Ends the thread once its read is done, so that it lets the MRT6 socket go.
    pub(crate) fn stop(&mut self) {
        if let Some((tx, thread)) = self.thread.take() {
            drop(tx);
            if thread.join().is_err() {
                tracing::warn!("the MFC counter thread panicked");
            }
        }
    }
}

/// Nice 19 for the calling thread (Linux nice values are per thread). Not fatal: the counters
/// are then read at the normal priority.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let done = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    if done != 0 {
        tracing::debug!(
            "cannot lower the MFC counter thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}
