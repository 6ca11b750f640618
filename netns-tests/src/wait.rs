//! Bounded, interruptible polling. The demo binary sets [`interrupt`] from its SIGINT handler
//! so that a wait in progress returns at once and the topology is torn down.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes every current and future [`wait_for`] return [`WaitError::Interrupted`].
/// Async-signal-safe (one atomic store), so a signal handler may call it.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    Timeout { what: String, after: Duration },
    Interrupted,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Timeout { what, after } => {
                write!(f, "timed out after {after:?} waiting for {what}")
            }
            WaitError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for WaitError {}

/// Polls `f` every `step` until it returns Some, for at most `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let step = Duration::from_millis(50);
    let deadline = Instant::now() + timeout;
    loop {
        if interrupted() {
            return Err(WaitError::Interrupted);
        }
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(WaitError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(step);
    }
}

/// Sleeps `d`, returning early with `Interrupted` if [`interrupt`] is called.
pub fn pause(d: Duration) -> Result<(), WaitError> {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if interrupted() {
            return Err(WaitError::Interrupted);
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Ok(())
}
