//! What differs between the home agent and the MMA: whether to accept a registration, what to
//! attach to the binding, and what happens on deregistration.
use std::net::Ipv6Addr;

use mipcast_wire::mh::{back_status, bu_flags, MobilityOption};

use crate::cache::{BindingCache, BindingRecord};
use crate::sa::prefix_contains;

/// A Binding Update that passed parsing, authentication, replay and sequence checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Source address of the BU (where the acknowledgement goes).
    pub src: Ipv6Addr,
    /// Our address the BU was sent to.
    pub dst: Ipv6Addr,
    /// From the Home Network Prefix option (prefix length 128).
    pub hoa: Ipv6Addr,
    /// The Alternate Care-of Address option if present, else `src`.
    pub coa: Ipv6Addr,
    pub sequence: u16,
    /// The BU flags word (see `mipcast_wire::mh::bu_flags`).
    pub flags: u16,
    /// Lifetime the MN asked for, in seconds.
    pub requested_lifetime_s: u32,
    /// Lifetime after the configured cap, in seconds (a multiple of 4); 0 for deregistration.
    pub lifetime_s: u32,
    /// The RFC 4285 timestamp (already checked).
    pub timestamp: u64,
    /// The SPI that authenticated the BU.
    pub spi: u32,
    /// Lifetime 0 or CoA == HoA (RFC 6275 §9.5.1).
    pub deregistration: bool,
    /// All options of the BU, for policy-specific ones (e.g. mipcast's experimental options).
    pub options: Vec<MobilityOption>,
}

impl Request {
    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// A policy's answer to a registration (non-deregistration) BU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<P> {
    /// Install the binding with `payload`; `ack_options` go into the acknowledgement.
    Accept {
        payload: P,
        ack_options: Vec<MobilityOption>,
    },
    /// Refuse with this BAck status (≥ 128); the existing binding, if any, is kept.
    Reject { status: u8 },
}

/// A policy's answer to a deregistration BU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeregVerdict<P> {
    /// Remove the binding now.
    Remove { ack_options: Vec<MobilityOption> },
    /// Keep the binding for `grace_s` more seconds with a new payload (the MMA forwarding to a
    /// new care-of address), then remove it with [`crate::RemoveReason::GraceEnded`]. A grace
    /// of 0 removes at once.
    Linger {
        payload: P,
        grace_s: u32,
        ack_options: Vec<MobilityOption>,
    },
    /// Refuse with this BAck status (≥ 128); the binding, if any, is kept.
    Reject { status: u8 },
}

/// Role-specific decisions of a [`crate::Registrar`]. Called only for BUs that passed every
/// protocol check; `cache` holds the current bindings (`cache.get(&req.hoa)` is the one the
/// request would replace), so cross-binding rules such as "one terminal per group" can be
/// checked.
pub trait Policy {
    /// Per-binding data the daemon needs to program the kernel.
    type Payload: Clone;

    fn on_register(
        &mut self,
        req: &Request,
        cache: &BindingCache<Self::Payload>,
    ) -> Verdict<Self::Payload>;

    fn on_deregister(
        &mut self,
        req: &Request,
        cache: &BindingCache<Self::Payload>,
    ) -> DeregVerdict<Self::Payload>;

    /// Whether a binding read back from the state file is one this policy, as configured
    /// now, would hold; `cache` has the records restored before it. Err names the failed
    /// check (a short label for the summary log). Called last, after the registrar's own
    /// checks, so a policy may note the record as restored when it says Ok.
    fn check_restored(
        &mut self,
        _record: &BindingRecord<Self::Payload>,
        _cache: &BindingCache<Self::Payload>,
    ) -> Result<(), &'static str> {
        Ok(())
    }
}

/// Why a policy configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no home prefix configured")]
    NoHomePrefix,
    #[error("home prefix {prefix}/{len}: length longer than 128")]
    BadPrefixLength { prefix: Ipv6Addr, len: u8 },
}

/// The home agent: home registrations for addresses on its home prefixes, HoA → CoA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAgentPolicy {
    home_prefixes: Vec<(Ipv6Addr, u8)>,
}

impl HomeAgentPolicy {
    pub fn new(home_prefixes: Vec<(Ipv6Addr, u8)>) -> Result<Self, PolicyError> {
        if home_prefixes.is_empty() {
            return Err(PolicyError::NoHomePrefix);
        }
        if let Some(&(prefix, len)) = home_prefixes.iter().find(|&&(_, len)| len > 128) {
            return Err(PolicyError::BadPrefixLength { prefix, len });
        }
        Ok(HomeAgentPolicy { home_prefixes })
    }

    pub fn is_home(&self, hoa: Ipv6Addr) -> bool {
        self.home_prefixes
            .iter()
            .any(|&(p, len)| prefix_contains(p, len, hoa))
    }
}

impl Policy for HomeAgentPolicy {
    type Payload = ();

    fn check_restored(
        &mut self,
        record: &BindingRecord<()>,
        _cache: &BindingCache<()>,
    ) -> Result<(), &'static str> {
        if self.is_home(record.hoa) {
            Ok(())
        } else {
            Err("hoa_not_home")
        }
    }

    fn on_register(&mut self, req: &Request, _cache: &BindingCache<()>) -> Verdict<()> {
        // Without H the BU asks for a correspondent binding, which needs return routability
        // (RFC 6275 §9.5.1); this home agent offers home registrations only.
        if !req.has_flag(bu_flags::HOME) {
            return Verdict::Reject {
                status: back_status::ADMIN_PROHIBITED,
            };
        }
        if !self.is_home(req.hoa) {
            return Verdict::Reject {
                status: back_status::NOT_HOME_SUBNET,
            };
        }
        Verdict::Accept {
            payload: (),
            ack_options: Vec::new(),
        }
    }

    fn on_deregister(&mut self, req: &Request, cache: &BindingCache<()>) -> DeregVerdict<()> {
        // RFC 6275 §10.3.2: deregistering an address we hold no binding for gets 133.
        if cache.get(&req.hoa).is_none() {
            return DeregVerdict::Reject {
                status: back_status::NOT_HOME_AGENT,
            };
        }
        DeregVerdict::Remove {
            ack_options: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Binding, BindingState};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn req(hoa: &str, flags: u16) -> Request {
        Request {
            src: a("2001:db8:f::1"),
            dst: a("2001:db8:1::1"),
            hoa: a(hoa),
            coa: a("2001:db8:f::1"),
            sequence: 1,
            flags,
            requested_lifetime_s: 40,
            lifetime_s: 40,
            timestamp: 0,
            spi: 300,
            deregistration: false,
            options: Vec::new(),
        }
    }

    fn ha() -> HomeAgentPolicy {
        HomeAgentPolicy::new(vec![(a("2001:db8:1::"), 64)]).unwrap()
    }

    #[test]
    fn home_registration_on_home_prefix_accepted() {
        let v = ha().on_register(
            &req("2001:db8:1::99", bu_flags::HOME | bu_flags::ACK),
            &BindingCache::new(),
        );
        assert_eq!(
            v,
            Verdict::Accept {
                payload: (),
                ack_options: vec![]
            }
        );
    }

    #[test]
    fn foreign_prefix_is_132_and_missing_h_is_129() {
        let c = BindingCache::new();
        assert_eq!(
            ha().on_register(&req("2001:db8:2::99", bu_flags::HOME), &c),
            Verdict::Reject { status: 132 }
        );
        assert_eq!(
            ha().on_register(&req("2001:db8:1::99", 0), &c),
            Verdict::Reject { status: 129 }
        );
    }

    #[test]
    fn deregistration_needs_a_binding() {
        let mut c = BindingCache::new();
        let r = req("2001:db8:1::99", bu_flags::HOME);
        assert_eq!(
            ha().on_deregister(&r, &c),
            DeregVerdict::Reject { status: 133 }
        );
        c.insert(Binding {
            hoa: r.hoa,
            coa: r.coa,
            peer: r.src,
            local: r.dst,
            sequence: 0,
            lifetime_s: 40,
            registered_at_ms: 0,
            expires_at_ms: 40_000,
            refresh_at_ms: None,
            last_timestamp: 0,
            spi: 300,
            state: BindingState::Active,
            payload: (),
        });
        assert_eq!(
            ha().on_deregister(&r, &c),
            DeregVerdict::Remove {
                ack_options: vec![]
            }
        );
    }

    #[test]
    fn config_checked() {
        assert_eq!(
            HomeAgentPolicy::new(vec![]).unwrap_err(),
            PolicyError::NoHomePrefix
        );
        assert!(HomeAgentPolicy::new(vec![(a("::"), 200)]).is_err());
    }
}
