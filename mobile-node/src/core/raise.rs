//! Bringing a prepared candidate up (issue 14). Document 003's "degrading" action prepares
//! the best other link; an interface that is administratively down (a radio kept off to save
//! power) can be neither solicited nor chosen, so with `Policy::prepare_link_up` preparation
//! brings the best such interface up when no other link is up. It is held up while it is
//! prepared or in use and put down again otherwise (and at shutdown): the node restores what
//! it found. An interface the kernel reports already up (only its carrier was missing) is not
//! ours: it is never put down, and not asked for again in this preparation.
use mipcast_proto::{Millis, Outcome};

use super::kernel::KernelChange;
use super::links::{Level, Link, Policy};
use super::Core;

/// The down interface worth bringing up while `current` degrades: not advised against, its
/// radio not reporting 0 nor its average unusable; the best by preference + smoothed quality
/// (100 without a quality source) - cost, the interface listed first on a tie.
pub fn link_to_raise(
    links: &[Link],
    current: u32,
    now: Millis,
    p: &Policy,
    excluded: impl Fn(u32) -> bool,
) -> Option<u32> {
    if !p.prepare_link_up {
        return None;
    }
    links
        .iter()
        .filter(|l| {
            !l.up
                && l.cfg.ifindex != current
                && !excluded(l.cfg.ifindex)
                && !l.avoided(now)
                && l.quality != Some(0)
                && l.level != Level::Unusable
        })
        .map(|l| {
            let quality = l
                .smoothed(now, p.levels.time_constant_ms)
                .map_or(100, |s| s.round().clamp(0.0, 100.0) as i64);
            let score = i64::from(l.cfg.preference) + quality - i64::from(l.cfg.cost);
            (l.cfg.ifindex, score)
        })
        .fold(None::<(u32, i64)>, |best, (i, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((i, s)),
        })
        .map(|(i, _)| i)
}

impl Core {
    /// While the current link degrades and no up link can be prepared: [`link_to_raise`]
    /// without the interfaces found up by someone else.
    pub(super) fn link_to_raise(&self, now: Millis) -> Option<u32> {
        let current = self.selected?;
        if self.link(current)?.level != Level::Degrading {
            return None;
        }
        link_to_raise(&self.links, current, now, &self.cfg.policy, |i| {
            self.declined.contains(&i)
        })
    }

    /// After preparation chose `prepared`: a down one is raised; raised interfaces neither
    /// prepared nor in use (nor still holding the old link's membership during a
    /// make-before-break overlap) go down again, through [`Core::desired`].
    pub(super) fn update_raised(&mut self, prepared: Option<u32>) {
        let degrading = self
            .selected
            .and_then(|c| self.link(c))
            .is_some_and(|l| l.level == Level::Degrading);
        if !degrading {
            // A new preparation asks the kernel again.
            self.declined.clear();
        }
        if let Some(p) = prepared {
            let down = self.link(p).is_some_and(|l| !l.up);
            if self.cfg.policy.prepare_link_up
                && down
                && !self.declined.contains(&p)
                && self.raised.insert(p)
            {
                tracing::info!(ifindex = p, "bringing the prepared candidate up");
            }
        }
        let keep = [
            prepared,
            self.selected,
            self.overlap.map(|(m, _)| m.ifindex),
        ];
        self.raised.retain(|i| {
            let kept = keep.contains(&Some(*i));
            if !kept {
                tracing::info!(
                    ifindex = *i,
                    "raised interface neither prepared nor used: down again"
                );
            }
            kept
        });
    }

    /// The kernel's answer to a raise, when it needs more than recording: an interface that
    /// was already up is someone else's. True when handled here.
    pub(super) fn raise_result(&mut self, change: &KernelChange, outcome: &Outcome) -> bool {
        match (change, outcome) {
            (KernelChange::SetLinkUp(i), Outcome::AlreadyPresent) => {
                tracing::info!(
                    ifindex = *i,
                    "candidate already administratively up: not ours to put down"
                );
                self.raised.remove(i);
                self.declined.insert(*i);
                true
            }
            _ => false,
        }
    }

    /// The interfaces the kernel holds up for us (put down at shutdown).
    pub fn raised_links(&self) -> Vec<u32> {
        self.applied.links_up.iter().copied().collect()
    }
}
