//! After a reload: bindings the new configuration would refuse (their SA removed or no
//! longer authorising the home address, a home prefix removed, a lifetime over a lower cap)
//! leave at once, as a restore would refuse them, rather than living on until they expire.
use mipcast_binding::{Now, RestoreRefusal};

use super::Core;

impl Core {
    /// Drops every binding the configuration now in force refuses and puts the withdrawal of
    /// its kernel state (route, rule, proxy entry) in the open round, which the driver
    /// programs at its next settle. Returns what was dropped and why (for one summary log
    /// line, a counter, and the state journal's deletes).
    pub fn revalidate(&mut self, now: Now) -> Vec<RestoreRefusal> {
        let mut round = std::mem::take(&mut self.burst.round);
        let mut dropped = Vec::new();
        for (binding, reason) in self.registrar.revalidate(now) {
            self.plan.set(&mut round, binding.hoa, None);
            dropped.push(RestoreRefusal {
                hoa: binding.hoa,
                reason,
            });
        }
        self.burst.round = round;
        dropped
    }
}
