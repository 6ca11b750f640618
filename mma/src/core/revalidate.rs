//! Taking back bindings that no longer hold: a restored terminal whose MFC entry the kernel
//! refused at start, and, after a reload, terminals the new configuration would not accept
//! (an SA removed, a home agent's prefix narrowed, a lower lifetime cap...). Either way the
//! terminal leaves the registrar whole, so it is never served with half its state.
use std::net::Ipv6Addr;

use mipcast_binding::{Now, RestoreRefusal};
use mipcast_proto::Output;

use super::Core;

/// The refusal label of a restored terminal whose MFC entry could not be re-added.
pub const MFC_ADD_FAILED: &str = "mfc_add_failed";

impl Core {
    /// Rolls back the restored terminal owning `group` after the kernel refused to re-add its
    /// MFC entry at start. Nothing is queued: the start's reconcile (which follows) removes
    /// whatever routes of it a previous run left. None when no terminal owns `group`.
    pub fn rollback_restored(&mut self, group: Ipv6Addr, now: Now) -> Option<RestoreRefusal> {
        let hoa = self.group_owner(group)?;
        let binding = self.registrar.revoke(&hoa, now)?;
        self.registrar.policy_mut().note_remove(&binding);
        Some(RestoreRefusal {
            hoa,
            reason: MFC_ADD_FAILED,
        })
    }

    /// After [`Core::reload`]: drops every terminal the new configuration would refuse, as a
    /// restore would, and queues the withdrawal of its kernel state (routes and MFC entry),
    /// which the driver applies at its next settle. Returns what was dropped and why.
    pub fn revalidate(&mut self, now: Now) -> Vec<RestoreRefusal> {
        let mut dropped = Vec::new();
        for (binding, reason) in self.registrar.revalidate(now) {
            self.registrar.policy_mut().note_remove(&binding);
            for change in self.plan.withdraw(binding.hoa, &binding.payload) {
                self.queue.push_back(Output::Kernel(change));
            }
            dropped.push(RestoreRefusal {
                hoa: binding.hoa,
                reason,
            });
        }
        dropped
    }
}
