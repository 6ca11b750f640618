//! The correspondent's protocol core: the home agent's core ([`home_agent::core::Core`]: the
//! RFC 6275 + RFC 4285 registrar, the binding-to-kernel plan, reply rate limits, rounds with
//! rollback) run with the correspondent's [`policy`]. Per binding HoA -> MMA it asks for an
//! `HoA/128` seg6 encap route to the MMA; per MMA a rule `from MMA to <us> ipproto 41 lookup
//! <decap table>`; once, `<us>/128 End.DT6 table main` in the decap table (at reconciliation).
//! No proxy-ND entries: the home address is not on any of our links.
pub mod policy;
#[cfg(test)]
mod tests;

use std::net::Ipv6Addr;

pub use home_agent::core::plan::{Plan, PlanParams};
pub use home_agent::core::{BindingStatus, Change, Event, Input, Now, Output, Send};
pub use policy::{CorrespondentPolicy, MmaSource, PolicyError};

/// The core: [`home_agent::core::Core`] with [`CorrespondentPolicy`].
pub type Core = home_agent::core::Core<CorrespondentPolicy>;

/// The kernel plan of a correspondent at `address`, whose decapsulation route sits on
/// interface `ifindex` (the uplink) in `decap_table`, and looks decapsulated packets up in
/// `inner_table` (local on a correspondent host: they are addressed to it; main on a router
/// in front of correspondents).
pub fn plan(
    address: Ipv6Addr,
    ifindex: u32,
    decap_table: u32,
    decap_rule_pref: u32,
    inner_table: u32,
) -> Plan {
    Plan::new(PlanParams {
        home_ifindex: ifindex,
        ha_address: address,
        decap_table,
        decap_rule_pref,
    })
    .without_proxy_entries()
    .with_inner_table(inner_table)
}
