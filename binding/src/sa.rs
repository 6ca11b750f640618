//! RFC 4285 MN-HA security associations, looked up by SPI.
//!
//! The table is immutable once built; a configuration reload builds a new one and swaps it into
//! the registrar whole ([`crate::Registrar::replace_sas`]), leaving the bindings alone: a binding
//! whose SA disappeared stays until it expires or its MN fails to re-authenticate.
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;

pub use mipcast_wire::auth::Algorithm;

/// One MN-HA security association.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityAssociation {
    pub spi: u32,
    pub algorithm: Algorithm,
    pub key: Vec<u8>,
    /// Home address prefixes (address, length) this SA may register; a BU authenticated with
    /// this SPI for a home address outside all of them is refused with status 129.
    pub allowed: Vec<(Ipv6Addr, u8)>,
}

impl SecurityAssociation {
    /// Whether this SA may register `hoa`.
    pub fn authorises(&self, hoa: Ipv6Addr) -> bool {
        self.allowed
            .iter()
            .any(|&(prefix, len)| prefix_contains(prefix, len, hoa))
    }
}

// Keys must never reach logs, so Debug shows only their length.
impl fmt::Debug for SecurityAssociation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityAssociation")
            .field("spi", &self.spi)
            .field("algorithm", &self.algorithm)
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .field("allowed", &self.allowed)
            .finish()
    }
}

pub use mipcast_wire::prefix::prefix_contains;

/// Why a set of security associations was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    #[error("SPI {0} is configured twice")]
    DuplicateSpi(u32),
    #[error("SPI {0}: SPIs 0-255 are reserved (RFC 4285 §5)")]
    ReservedSpi(u32),
    #[error("SPI {0}: the key is empty")]
    EmptyKey(u32),
    #[error("SPI {spi}: prefix length {len} is longer than 128")]
    BadPrefixLength { spi: u32, len: u8 },
    #[error("SPI {0}: no allowed home address prefix")]
    NoAllowedPrefix(u32),
}

/// The security associations, by SPI.
#[derive(Debug, Clone, Default)]
pub struct SaTable {
    by_spi: HashMap<u32, SecurityAssociation>,
}

impl SaTable {
    /// Builds a table, refusing duplicate or reserved SPIs, empty keys and bad prefixes.
    pub fn new(sas: impl IntoIterator<Item = SecurityAssociation>) -> Result<Self, SaError> {
        let mut by_spi = HashMap::new();
        for sa in sas {
            let spi = sa.spi;
            if spi < 256 {
                return Err(SaError::ReservedSpi(spi));
            }
            if sa.key.is_empty() {
                return Err(SaError::EmptyKey(spi));
            }
            if sa.allowed.is_empty() {
                return Err(SaError::NoAllowedPrefix(spi));
            }
            if let Some(&(_, len)) = sa.allowed.iter().find(|&&(_, len)| len > 128) {
                return Err(SaError::BadPrefixLength { spi, len });
            }
            if by_spi.insert(spi, sa).is_some() {
                return Err(SaError::DuplicateSpi(spi));
            }
        }
        Ok(SaTable { by_spi })
    }

    pub fn get(&self, spi: u32) -> Option<&SecurityAssociation> {
        self.by_spi.get(&spi)
    }

    /// Whether SPI `spi` exists and may register `hoa`.
    pub fn authorises(&self, spi: u32, hoa: Ipv6Addr) -> bool {
        self.get(spi).is_some_and(|sa| sa.authorises(hoa))
    }

    pub fn len(&self) -> usize {
        self.by_spi.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_spi.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(spi: u32, allowed: Vec<(Ipv6Addr, u8)>) -> SecurityAssociation {
        SecurityAssociation {
            spi,
            algorithm: Algorithm::HmacSha256_128,
            key: vec![7; 32],
            allowed,
        }
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn authorises_by_prefix() {
        let t = SaTable::new([sa(
            1000,
            vec![(a("2001:db8:1::"), 64), (a("2001:db8:2::5"), 128)],
        )])
        .unwrap();
        assert!(t.authorises(1000, a("2001:db8:1::77")));
        assert!(t.authorises(1000, a("2001:db8:2::5")));
        assert!(!t.authorises(1000, a("2001:db8:2::6")));
        assert!(!t.authorises(1000, a("2001:db8:3::1")));
        assert!(!t.authorises(1001, a("2001:db8:1::77")));
    }

    #[test]
    fn zero_length_prefix_matches_everything() {
        assert!(prefix_contains(a("::"), 0, a("2001:db8::1")));
        assert!(!prefix_contains(a("::"), 129, a("::")));
    }

    #[test]
    fn rejects_bad_tables() {
        let p = vec![(a("2001:db8::"), 64)];
        assert_eq!(
            SaTable::new([sa(1000, p.clone()), sa(1000, p.clone())]).unwrap_err(),
            SaError::DuplicateSpi(1000)
        );
        assert_eq!(
            SaTable::new([sa(255, p.clone())]).unwrap_err(),
            SaError::ReservedSpi(255)
        );
        let mut empty = sa(1000, p.clone());
        empty.key.clear();
        assert_eq!(SaTable::new([empty]).unwrap_err(), SaError::EmptyKey(1000));
        assert_eq!(
            SaTable::new([sa(1000, vec![(a("::"), 129)])]).unwrap_err(),
            SaError::BadPrefixLength {
                spi: 1000,
                len: 129
            }
        );
        assert_eq!(
            SaTable::new([sa(1000, vec![])]).unwrap_err(),
            SaError::NoAllowedPrefix(1000)
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let mut s = sa(1000, vec![]);
        s.key = b"supersecretkey".to_vec();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("supersecret"), "{dbg}");
        assert!(!dbg.contains("115"), "{dbg}"); // b's' as a decimal byte
        assert!(dbg.contains("14 bytes redacted"), "{dbg}");
    }
}
