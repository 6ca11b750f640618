//! The MMA's registration rules, plugged into the shared [`Registrar`](mipcast_binding::Registrar).
//!
//! BAck status codes the policy uses (the registrar adds 135 and 144-146 itself):
//!
//! | status | name (RFC 6275 §6.1.8)        | when                                                       |
//! |--------|-------------------------------|------------------------------------------------------------|
//! | 128    | reason unspecified            | no Terminal Group option; forwarding to a non-unicast CoA  |
//! | 129    | administratively prohibited   | M flag missing; source outside the site prefixes; group    |
//! |        |                               | outside the terminal multicast prefix                      |
//! | 130    | insufficient resources        | the group is in use by another terminal; the site is full  |
//! |        |                               | (`admission.max_terminals`: the answer to a terminal's     |
//! |        |                               | "request handoff", issue 14)                               |
//! | 131    | home registration not supported | H flag set: the MMA is not a home agent                  |
//! | 132    | not home subnet               | no configured home agent serves the home address           |
//! | 133    | not home agent for this MN    | forwarding request for a terminal not registered here      |
//!
//! A forwarding request (deregistration with a new care-of address) is also refused, and
//! installs nothing, when its source is neither in the site's prefixes (where the registered
//! terminal can be: an intra-site move re-registers nothing) nor the new care-of address it
//! names (129): only the terminal in this site, or where it now is, may redirect its traffic
//! to an address; and when it asks for a grace period beyond `max_grace_s` (130: the MMA
//! will not hold forwarding state that long; the terminal asks again within the limit, or for 0
//! to get the default). Each refusal's reason is kept for the core's metrics
//! ([`MmaPolicy::take_forwarding_refusal`]).
use std::collections::HashMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use mipcast_binding::{
    Binding, BindingCache, BindingRecord, DeregVerdict, Policy, Request, Verdict,
};
use mipcast_wire::group::group_in_prefix;
use mipcast_wire::mh::{back_status, bu_flags, Experimental, MobilityOption};
use mipcast_wire::prefix::prefix_contains;

/// What the MMA attaches to a terminal's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminal {
    /// The terminal's multicast group: downlink tunnels go to (MMA, group).
    pub group: Ipv6Addr,
    /// The home agent its reverse tunnel goes to.
    pub home_agent: Ipv6Addr,
    /// Set after a deregistration with a forwarding request: the new care-of address its
    /// traffic is tunnelled to until the grace period ends.
    pub forward_to: Option<Ipv6Addr>,
}

/// Configuration of the policy (the parts a SIGHUP may change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub site_prefixes: Vec<(Ipv6Addr, u8)>,
    pub group_prefix: (Ipv6Addr, u8),
    /// Home agent address and the home prefixes it serves.
    pub home_agents: Vec<(Ipv6Addr, Vec<(Ipv6Addr, u8)>)>,
    pub default_grace_s: u32,
    pub max_grace_s: u32,
}

impl PolicyConfig {
    /// The home agent serving `hoa`, by the configured home prefixes.
    pub fn home_agent_of(&self, hoa: Ipv6Addr) -> Option<Ipv6Addr> {
        self.home_agents
            .iter()
            .find(|(_, prefixes)| prefixes.iter().any(|&(p, l)| prefix_contains(p, l, hoa)))
            .map(|&(ha, _)| ha)
    }

    fn on_site(&self, addr: Ipv6Addr) -> bool {
        self.site_prefixes
            .iter()
            .any(|&(p, l)| prefix_contains(p, l, addr))
    }
}

/// [`Policy`] of the MMA. Keeps a group → home address index of the active terminals so the
/// "one terminal per group" check is O(1); the core feeds it every install and removal.
#[derive(Debug, Clone)]
pub struct MmaPolicy {
    config: PolicyConfig,
    mma: Ipv6Addr,
    groups: HashMap<Ipv6Addr, Ipv6Addr>,
    /// Terminals the site admits at most (None: no limit).
    max_terminals: Option<usize>,
    /// Why the last forwarding request was refused (a metrics label), until the core takes it.
    forwarding_refusal: Option<&'static str>,
}

/// Why a forwarding request was refused: a stable metrics label and the BAck status.
pub mod forwarding_refusal {
    use mipcast_wire::mh::back_status;

    /// The terminal is not registered here (nothing to forward).
    pub const NOT_REGISTERED: (&str, u8) = ("not_registered", back_status::NOT_HOME_AGENT);
    /// The source is neither in the site nor the new care-of address.
    pub const NOT_THE_TERMINAL: (&str, u8) = ("source_not_terminal", back_status::ADMIN_PROHIBITED);
    /// The grace period asked is beyond the configured maximum.
    pub const GRACE_OVER_MAX: (&str, u8) = ("grace_over_max", back_status::INSUFFICIENT_RESOURCES);
    /// The new care-of address is not a unicast address other than ours.
    pub const NOT_UNICAST: (&str, u8) = ("new_coa_not_unicast", back_status::UNSPECIFIED);
    /// Every reason, for metrics that start at zero.
    pub const ALL: [(&str, u8); 4] = [
        NOT_REGISTERED,
        NOT_THE_TERMINAL,
        GRACE_OVER_MAX,
        NOT_UNICAST,
    ];
}

impl MmaPolicy {
    pub fn new(mma: Ipv6Addr, config: PolicyConfig) -> Self {
        MmaPolicy {
            config,
            mma,
            groups: HashMap::new(),
            max_terminals: None,
            forwarding_refusal: None,
        }
    }

    /// Why the last refused deregistration's forwarding request was refused, once.
    pub fn take_forwarding_refusal(&mut self) -> Option<&'static str> {
        self.forwarding_refusal.take()
    }

    fn refuse_forwarding(
        &mut self,
        (reason, status): (&'static str, u8),
    ) -> DeregVerdict<Terminal> {
        self.forwarding_refusal = Some(reason);
        DeregVerdict::Reject { status }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Takes a reloaded configuration; registered terminals are kept as they are.
    pub fn set_config(&mut self, config: PolicyConfig) {
        self.config = config;
    }

    /// The site's capacity: new terminals beyond it are refused with 130.
    pub fn set_capacity(&mut self, max_terminals: Option<usize>) {
        self.max_terminals = max_terminals;
    }

    /// The terminal holding `group`, if any.
    pub fn group_owner(&self, group: Ipv6Addr) -> Option<Ipv6Addr> {
        self.groups.get(&group).copied()
    }

    /// Terminals served here (not forwarding): each holds exactly one group.
    pub fn served(&self) -> usize {
        self.groups.len()
    }

    /// Records that `binding` was installed in place of `replaced`.
    pub fn note_install(
        &mut self,
        binding: &Binding<Terminal>,
        replaced: Option<&Binding<Terminal>>,
    ) {
        if let Some(old) = replaced {
            self.note_remove(old);
        }
        if binding.payload.forward_to.is_none() {
            self.groups.insert(binding.payload.group, binding.hoa);
        }
    }

    /// Records that `binding` left (or stopped holding its group).
    pub fn note_remove(&mut self, binding: &Binding<Terminal>) {
        if self.groups.get(&binding.payload.group) == Some(&binding.hoa) {
            self.groups.remove(&binding.payload.group);
        }
    }

    fn reject(status: u8) -> Verdict<Terminal> {
        Verdict::Reject { status }
    }
}

fn terminal_group(options: &[MobilityOption]) -> Option<Ipv6Addr> {
    options.iter().find_map(|o| match o {
        MobilityOption::Experimental(Experimental::TerminalGroup(g)) => Some(*g),
        _ => None,
    })
}

fn forwarding_request(options: &[MobilityOption]) -> Option<(Ipv6Addr, u32)> {
    options.iter().find_map(|o| match o {
        MobilityOption::Experimental(Experimental::ForwardingRequest {
            new_coa,
            grace_secs,
        }) => Some((*new_coa, *grace_secs)),
        _ => None,
    })
}

fn is_unicast(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback())
}

impl Policy for MmaPolicy {
    type Payload = Terminal;

    /// A restored terminal must be one `on_register` would accept now (group in the prefix
    /// and free, a home agent serving its home address, a site source), and a forwarding
    /// window must go to a unicast address within the configured grace. Accepted groups are
    /// noted, so two records for one group cannot both come back.
    fn check_restored(
        &mut self,
        r: &BindingRecord<Terminal>,
        _cache: &BindingCache<Terminal>,
    ) -> Result<(), &'static str> {
        let t = &r.payload;
        let (prefix, len) = self.config.group_prefix;
        if !t.group.is_multicast() || !group_in_prefix(t.group, prefix, len) {
            return Err("group_outside_prefix");
        }
        if self.config.home_agent_of(r.hoa) != Some(t.home_agent) {
            return Err("home_agent_mismatch");
        }
        match t.forward_to {
            None => {
                if !self.config.on_site(r.peer) {
                    return Err("source_off_site");
                }
                if matches!(self.groups.get(&t.group), Some(owner) if *owner != r.hoa) {
                    return Err("group_taken");
                }
                self.groups.insert(t.group, r.hoa);
            }
            Some(new_coa) => {
                if !is_unicast(new_coa) || new_coa == self.mma {
                    return Err("forward_to_not_unicast");
                }
                if r.lifetime_s > self.config.max_grace_s {
                    return Err("grace_over_max");
                }
            }
        }
        Ok(())
    }

    fn on_register(&mut self, req: &Request, cache: &BindingCache<Terminal>) -> Verdict<Terminal> {
        self.forwarding_refusal = None;
        if req.has_flag(bu_flags::HOME) {
            return Self::reject(back_status::HOME_REG_NOT_SUPPORTED);
        }
        if !req.has_flag(bu_flags::MAP) || !self.config.on_site(req.src) {
            return Self::reject(back_status::ADMIN_PROHIBITED);
        }
        let Some(group) = terminal_group(&req.options) else {
            return Self::reject(back_status::UNSPECIFIED);
        };
        let (prefix, len) = self.config.group_prefix;
        if !group_in_prefix(group, prefix, len) {
            return Self::reject(back_status::ADMIN_PROHIBITED);
        }
        if matches!(self.groups.get(&group), Some(owner) if *owner != req.hoa) {
            return Self::reject(back_status::INSUFFICIENT_RESOURCES);
        }
        // Admission: a terminal served here already keeps its place; a new one (or one
        // returning from a forwarding window) needs a free one.
        let served_here = cache
            .get(&req.hoa)
            .is_some_and(|b| b.payload.forward_to.is_none());
        if !served_here && self.max_terminals.is_some_and(|max| self.served() >= max) {
            return Self::reject(back_status::INSUFFICIENT_RESOURCES);
        }
        let Some(home_agent) = self.config.home_agent_of(req.hoa) else {
            return Self::reject(back_status::NOT_HOME_SUBNET);
        };
        Verdict::Accept {
            payload: Terminal {
                group,
                home_agent,
                forward_to: None,
            },
            ack_options: vec![MobilityOption::Experimental(Experimental::AssignedCoa(
                self.mma,
            ))],
        }
    }

    fn on_deregister(
        &mut self,
        req: &Request,
        cache: &BindingCache<Terminal>,
    ) -> DeregVerdict<Terminal> {
        self.forwarding_refusal = None;
        let Some((new_coa, asked)) = forwarding_request(&req.options) else {
            // Deregistering an unknown terminal is acknowledged too: a retransmitted
            // deregistration must not look like a failure.
            return DeregVerdict::Remove {
                ack_options: Vec::new(),
            };
        };
        if !is_unicast(new_coa) || new_coa == self.mma {
            return self.refuse_forwarding(forwarding_refusal::NOT_UNICAST);
        }
        // A forwarding request asks for state (a tunnel to `new_coa`): there must be a
        // terminal to forward for, it must come from where that terminal can be (this site:
        // intra-site moves re-register nothing, so the registered address may be stale; or
        // the address it wants its traffic at), and within the configured grace.
        let Some(current) = cache.get(&req.hoa) else {
            return self.refuse_forwarding(forwarding_refusal::NOT_REGISTERED);
        };
        if req.src != current.peer && req.src != new_coa && !self.config.on_site(req.src) {
            return self.refuse_forwarding(forwarding_refusal::NOT_THE_TERMINAL);
        }
        if asked > self.config.max_grace_s {
            return self.refuse_forwarding(forwarding_refusal::GRACE_OVER_MAX);
        }
        let grace_s = if asked == 0 {
            self.config.default_grace_s
        } else {
            asked
        };
        DeregVerdict::Linger {
            payload: Terminal {
                forward_to: Some(new_coa),
                ..current.payload
            },
            grace_s,
            // Echoes the granted grace period so the terminal knows how long it is covered.
            ack_options: vec![MobilityOption::Experimental(
                Experimental::ForwardingRequest {
                    new_coa,
                    grace_secs: grace_s,
                },
            )],
        }
    }
}
