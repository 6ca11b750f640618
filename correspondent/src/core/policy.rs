//! Who may bind what at a correspondent: a BU must come from the MMA its SPI belongs to, name
//! that MMA as the care-of address, and (checked by the registrar against the SA's
//! `home_prefixes`) a home address the MMA may bind.
use std::collections::HashMap;
use std::net::Ipv6Addr;

use mipcast_binding::cache::BindingRecord;
use mipcast_binding::sa::prefix_contains;
use mipcast_binding::{BindingCache, DeregVerdict, Policy, Request, Verdict};
use mipcast_wire::mh::{back_status, bu_flags};

/// Which source addresses may use an SPI: the MMA's address or prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmaSource {
    pub spi: u32,
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
}

/// Why a policy configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    NoMma,
    DuplicateSpi(u32),
    BadPrefixLength { spi: u32, len: u8 },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::NoMma => write!(f, "no MMA configured"),
            PolicyError::DuplicateSpi(spi) => write!(f, "SPI {spi} belongs to two MMAs"),
            PolicyError::BadPrefixLength { spi, len } => {
                write!(f, "SPI {spi}: MMA prefix length {len} is longer than 128")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// The correspondent's registration policy (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrespondentPolicy {
    sources: HashMap<u32, (Ipv6Addr, u8)>,
}

impl CorrespondentPolicy {
    pub fn new(mmas: impl IntoIterator<Item = MmaSource>) -> Result<Self, PolicyError> {
        let mut sources = HashMap::new();
        for m in mmas {
            if m.prefix_len > 128 {
                return Err(PolicyError::BadPrefixLength {
                    spi: m.spi,
                    len: m.prefix_len,
                });
            }
            if sources.insert(m.spi, (m.prefix, m.prefix_len)).is_some() {
                return Err(PolicyError::DuplicateSpi(m.spi));
            }
        }
        if sources.is_empty() {
            return Err(PolicyError::NoMma);
        }
        Ok(CorrespondentPolicy { sources })
    }

    /// Whether `src` is an address of the MMA that owns `spi`.
    pub fn source_allowed(&self, spi: u32, src: Ipv6Addr) -> bool {
        self.sources
            .get(&spi)
            .is_some_and(|&(p, len)| prefix_contains(p, len, src))
    }

    /// A BU's sender is the MMA of its SPI and names itself as care-of address: traffic is
    /// only ever redirected to the party that proved the key, never to a third address.
    fn sender_refusal(&self, req: &Request) -> Option<u8> {
        (req.coa != req.src || !self.source_allowed(req.spi, req.src))
            .then_some(back_status::ADMIN_PROHIBITED)
    }
}

impl Policy for CorrespondentPolicy {
    type Payload = ();

    fn on_register(&mut self, req: &Request, _cache: &BindingCache<()>) -> Verdict<()> {
        // A correspondent keeps correspondent bindings only (RFC 6275 §9.5.1: 131).
        if req.has_flag(bu_flags::HOME) {
            return Verdict::Reject {
                status: back_status::HOME_REG_NOT_SUPPORTED,
            };
        }
        if let Some(status) = self.sender_refusal(req) {
            return Verdict::Reject { status };
        }
        Verdict::Accept {
            payload: (),
            ack_options: Vec::new(),
        }
    }

    fn on_deregister(&mut self, req: &Request, cache: &BindingCache<()>) -> DeregVerdict<()> {
        if req.has_flag(bu_flags::HOME) {
            return DeregVerdict::Reject {
                status: back_status::HOME_REG_NOT_SUPPORTED,
            };
        }
        if let Some(status) = self.sender_refusal(req) {
            return DeregVerdict::Reject { status };
        }
        // Only the MMA holding the binding removes it: after a move, the old MMA's late
        // deregistration must not undo the new MMA's binding.
        if cache.get(&req.hoa).is_some_and(|b| b.coa != req.src) {
            return DeregVerdict::Reject {
                status: back_status::ADMIN_PROHIBITED,
            };
        }
        // RFC 6275 §9.5.1: a correspondent deletes any binding and acknowledges, bound or not.
        DeregVerdict::Remove {
            ack_options: Vec::new(),
        }
    }

    fn check_restored(
        &mut self,
        record: &BindingRecord<()>,
        _cache: &BindingCache<()>,
    ) -> Result<(), &'static str> {
        if record.coa == record.peer && self.source_allowed(record.spi, record.peer) {
            Ok(())
        } else {
            Err("mma_not_authorised")
        }
    }
}
