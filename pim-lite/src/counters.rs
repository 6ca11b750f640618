//! The kernel counters of the installed MFC entries, read on a thread of their own at the
//! lowest CPU priority.
//!
//! A read is one `SIOCGETSGCNT_IN6` per entry: 8-15 ms of CPU at 10,000 entries. Off the event
//! loop it no longer delays a Join directly, but on a 2-vCPU router it still competed with the
//! loop for a CPU: in pim-bench, runs with the reads took a Join to its first forwarded packet
//! in up to 3-20 ms where runs without them stayed under 2 ms. At nice 19 the loop preempts it
//! as soon as it wakes up; the counters are for metrics and can wait.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mipcast_kernel::mrt6::Mrt6;

use crate::core::Sg;
use crate::metrics::Metrics;

/// The reader thread and what it reports.
pub(crate) struct CounterReader {
    jobs: Option<SyncSender<Vec<Sg>>>,
    thread: Option<JoinHandle<()>>,
    busy: Arc<AtomicBool>,
    /// How long the last read took, µs.
    cost_us: Arc<AtomicU64>,
}

impl CounterReader {
    /// Starts the thread; it holds the MRT6 socket until [`CounterReader::stop`].
    pub(crate) fn start(mrt: Arc<Mrt6>, metrics: Arc<Metrics>) -> std::io::Result<CounterReader> {
        // One read at a time: a refresh asks only when the reader is idle.
        let (jobs, queue) = sync_channel::<Vec<Sg>>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let cost_us = Arc::new(AtomicU64::new(0));
        let (thread_busy, thread_cost) = (Arc::clone(&busy), Arc::clone(&cost_us));
        let thread = std::thread::Builder::new()
            .name("mfc-counters".into())
            .spawn(move || {
                lower_priority();
                for installed in queue {
                    let started = Instant::now();
                    // In (source, group) order, as the refresh's set is.
                    let counters: Vec<_> = installed
                        .into_iter()
                        .filter_map(|sg| match mrt.sg_counters(sg.source, sg.group) {
                            Ok(c) => Some((sg, c.packets, c.bytes)),
                            Err(e) => {
                                tracing::debug!("{e}");
                                None
                            }
                        })
                        .collect();
                    metrics.set_mfc_counters(counters);
                    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    thread_cost.store(us, Ordering::Relaxed);
                    thread_busy.store(false, Ordering::Release);
                }
            })?;
        Ok(CounterReader {
            jobs: Some(jobs),
            thread: Some(thread),
            busy,
            cost_us,
        })
    }

    /// Whether the last read is still running.
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// How long the last finished read took.
    pub(crate) fn last_cost(&self) -> Duration {
        Duration::from_micros(self.cost_us.load(Ordering::Relaxed))
    }

    /// Reads the counters of `installed` (in (source, group) order) into the metrics; false
    /// when a read is still running (nothing is queued then).
    pub(crate) fn read(&self, installed: Vec<Sg>) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        match jobs.try_send(installed) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.busy.store(false, Ordering::Release);
                false
            }
        }
    }

    /// Ends the thread once its read is done, so that it lets the MRT6 socket go.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
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
