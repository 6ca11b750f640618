//! Log lines an attacker can cause (one per refused packet) are rate-limited per kind: a few
//! lines per interval, then nothing but a count, reported as "suppressed N similar" with the
//! next line of that kind or by [`LogSummary::flush`]. A flood of forged messages then costs
//! a bounded number of log bytes per minute, and an operator still sees that it happens.
//!
//! Time is a value (monotonic [`Millis`]), so protocol cores can hold one as well as shells
//! (it lives here, in the I/O-free crate, for that reason).
//! The owner asks it before every per-packet line:
//!
//! ```text
//! if let Some(suppressed) = self.log_limit.admit("bu_refused", clock.now()) {
//!     info!(%peer, status, suppressed, "binding update refused");
//! }
//! ```
use std::collections::HashMap;
use std::time::Duration;

use crate::Millis;

/// Lines of one kind written per interval before the rest are only counted.
pub const DEFAULT_LINES_PER_INTERVAL: u32 = 5;
/// The interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Kind {
    window_start: Millis,
    written: u32,
    /// Lines not written since the last one that was.
    suppressed: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct LogSummary {
    interval: Duration,
    lines: u32,
    kinds: HashMap<&'static str, Kind>,
}

impl Default for LogSummary {
    fn default() -> Self {
        LogSummary::new(DEFAULT_LINES_PER_INTERVAL, DEFAULT_INTERVAL)
    }
}

impl LogSummary {
    /// `lines` lines of each kind per `interval`.
    pub fn new(lines: u32, interval: Duration) -> LogSummary {
        LogSummary {
            interval,
            lines: lines.max(1),
            kinds: HashMap::new(),
        }
    }

    /// Whether a line of `kind` may be written at `now`: `Some(n)` with the number of lines of
    /// that kind suppressed since the last one written (put it in the line), None to skip it.
    pub fn admit(&mut self, kind: &'static str, now: Millis) -> Option<u64> {
        let interval = self.interval;
        let entry = self.kinds.entry(kind).or_insert(Kind {
            window_start: now,
            written: 0,
            suppressed: 0,
        });
        if now.saturating_since(entry.window_start) >= interval {
            entry.window_start = now;
            entry.written = 0;
        }
        if entry.written < self.lines {
            entry.written += 1;
            Some(std::mem::take(&mut entry.suppressed))
        } else {
            entry.suppressed = entry.suppressed.saturating_add(1);
            None
        }
    }

    /// Kinds whose window is over with lines still only counted, and their counts (which are
    /// reset): the caller logs them, so a flood that stops is still reported.
    pub fn due(&mut self, now: Millis) -> Vec<(&'static str, u64)> {
        let interval = self.interval;
        self.kinds
            .iter_mut()
            .filter(|(_, k)| k.suppressed > 0 && now.saturating_since(k.window_start) >= interval)
            .map(|(name, k)| {
                k.window_start = now;
                k.written = 0;
                (*name, std::mem::take(&mut k.suppressed))
            })
            .collect()
    }

    /// Writes one line through `line` (given the count of lines of its kind suppressed
    /// before it): limited when it has a `kind` (something a stranger can cause once per
    /// packet), always otherwise. Then flushes the summaries that are due.
    pub fn log(&mut self, kind: Option<&'static str>, now: Millis, line: impl FnOnce(u64)) {
        match kind {
            Some(kind) => {
                if let Some(suppressed) = self.admit(kind, now) {
                    line(suppressed);
                }
            }
            None => line(0),
        }
        self.flush(now);
    }

    /// Logs what [`Self::due`] returns, one INFO line per kind.
    pub fn flush(&mut self, now: Millis) {
        for (kind, suppressed) in self.due(now) {
            tracing::info!(
                kind,
                suppressed,
                "suppressed {suppressed} similar log lines"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limits_lines_of_a_kind_only() {
        let t0 = Millis(1000);
        let mut s = LogSummary::new(1, Duration::from_secs(1));
        let mut written = Vec::new();
        for _ in 0..3 {
            s.log(Some("refused"), t0, |n| written.push(("refused", n)));
            s.log(None, t0, |n| written.push(("always", n)));
        }
        let later = Millis(2000);
        s.log(Some("refused"), later, |n| written.push(("refused", n)));
        assert_eq!(
            written,
            [
                ("refused", 0),
                ("always", 0),
                ("always", 0),
                ("always", 0),
                // The next window's first line carries the two suppressed before it.
                ("refused", 2),
            ]
        );
    }

    #[test]
    fn a_few_lines_then_a_count() {
        let t0 = Millis(1000);
        let mut s = LogSummary::new(2, Duration::from_secs(1));
        assert_eq!(s.admit("refused", t0), Some(0));
        assert_eq!(s.admit("refused", t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(s.admit("refused", t0), None);
        }
        assert_eq!(s.admit("other", t0), Some(0), "kinds are apart");
        assert!(s.due(t0).is_empty(), "the window is not over");
        let t1 = t0.plus_ms(1500);
        assert_eq!(
            s.admit("refused", t1),
            Some(1000),
            "the next line says how many"
        );
        assert_eq!(s.admit("refused", t1), Some(0));
        assert_eq!(s.admit("refused", t1), None);
        let t2 = t1.plus_ms(1000);
        assert_eq!(s.due(t2), vec![("refused", 1)]);
        assert!(s.due(t2.plus_ms(5000)).is_empty(), "reported once");
    }
}
