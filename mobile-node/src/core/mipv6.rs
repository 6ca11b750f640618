//! Plain Mobile IPv6 moves: the previous care-of address keeps decapsulating for a moment.
//!
//! Until the home agent has our binding update it tunnels to the previous care-of address, and
//! what it sent meanwhile is still on its way there after the move. While the link left still
//! works (make before break) those packets arrive at an address with no decapsulation any more:
//! the kernel, which has no tunnel protocol handler here, answered each with an ICMPv6
//! Parameter Problem (unrecognised next header) and dropped it (issue 11 item 6). They are
//! decapsulated instead, for a short bounded time, like a previous MMA's forwarded traffic.
use std::time::Duration;

use mipcast_proto::Millis;

use super::{Attach, Core, Forward};

/// How long the previous care-of address keeps decapsulating the home agent's tunnel: its
/// in-flight packets arrive within two WAN crossings; this also covers the first two
/// retransmissions of a lost binding update (1 s, then 2 s later).
pub(crate) const PREVIOUS_COA_DECAP_MS: u64 = 3000;

impl Core {
    /// Called on every attachment change: after a plain Mobile IPv6 move away from `old`'s
    /// care-of address, keep decapsulating the home agent's tunnel to it for
    /// [`PREVIOUS_COA_DECAP_MS`] (through [`Forward`], which `desired` and the timers already
    /// handle).
    pub(super) fn keep_previous_coa(&mut self, old: Attach, new: Attach, now: Millis) {
        let Attach::Mipv6 { coa: previous, .. } = old else {
            return;
        };
        if matches!(new, Attach::Mipv6 { coa, .. } if coa == previous) {
            return;
        }
        let home_agent = self.cfg.home_agent;
        self.forwards
            .retain(|f| !(f.from == home_agent && f.to == previous));
        self.forwards.push(Forward {
            from: home_agent,
            to: previous,
            until: now + Duration::from_millis(PREVIOUS_COA_DECAP_MS),
        });
    }
}
