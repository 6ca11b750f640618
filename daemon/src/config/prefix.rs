//! A strict IPv6 prefix for configuration files.
//!
//! `ipnetwork::Ipv6Network` alone accepts `2001:db8::1/64` (host bits set) and a bare address
//! as `/128`; in a config either is almost always a typo, so this type refuses both and says
//! what was probably meant. It converts to `Ipv6Network` for the kernel crate.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use ipnetwork::Ipv6Network;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv6 prefix written `ADDRESS/LENGTH` with no bits set after the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(Ipv6Network);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("`{0}` has no prefix length; write it as ADDRESS/LENGTH")]
    MissingLength(String),
    #[error("`{0}` is not an IPv6 address")]
    BadAddress(String),
    #[error("`{0}` is not an IPv6 prefix length (0 to 128)")]
    BadLength(String),
    #[error("{given} has bits set after the prefix length (did you mean {network}?)")]
    HostBits { given: String, network: String },
}

impl Ipv6Prefix {
    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Result<Self, PrefixError> {
        let network = Ipv6Network::new(addr, prefix_len)
            .map_err(|_| PrefixError::BadLength(prefix_len.to_string()))?;
        if network.network() != addr {
            return Err(PrefixError::HostBits {
                given: format!("{addr}/{prefix_len}"),
                network: format!("{}/{prefix_len}", network.network()),
            });
        }
        Ok(Self(network))
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.0.network()
    }

    pub fn prefix_len(&self) -> u8 {
        self.0.prefix()
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        self.0.contains(addr)
    }

    pub fn network(&self) -> Ipv6Network {
        self.0
    }
}

impl From<Ipv6Prefix> for Ipv6Network {
    fn from(prefix: Ipv6Prefix) -> Self {
        prefix.0
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    fn from_str(text: &str) -> Result<Self, PrefixError> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| PrefixError::MissingLength(text.to_owned()))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| PrefixError::BadAddress(addr.to_owned()))?;
        let len: u8 = len
            .parse()
            .map_err(|_| PrefixError::BadLength(len.to_owned()))?;
        Self::new(addr, len)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix_len())
    }
}

impl Serialize for Ipv6Prefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Ipv6Prefix = "ff35::/64".parse().expect("valid");
        assert_eq!(p.addr(), Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, 0, 0));
        assert_eq!(p.prefix_len(), 64);
        assert_eq!(p.to_string(), "ff35::/64");
        assert!(p.contains("ff35::1".parse().expect("addr")));
        assert!(!p.contains("ff35:0:0:1::1".parse().expect("addr")));
        assert!("::/0".parse::<Ipv6Prefix>().is_ok());
        assert!("2001:db8::1/128".parse::<Ipv6Prefix>().is_ok());
    }

    #[test]
    fn refuses_typos_with_a_useful_message() {
        let err = |s: &str| s.parse::<Ipv6Prefix>().expect_err(s).to_string();
        assert_eq!(
            err("2001:db8::/129"),
            "`129` is not an IPv6 prefix length (0 to 128)"
        );
        assert_eq!(
            err("2001:db8::1/64"),
            "2001:db8::1/64 has bits set after the prefix length (did you mean 2001:db8::/64?)"
        );
        assert_eq!(
            err("2001:db8::"),
            "`2001:db8::` has no prefix length; write it as ADDRESS/LENGTH"
        );
        assert_eq!(err("10.0.0.0/8"), "`10.0.0.0` is not an IPv6 address");
        assert_eq!(err("::/x"), "`x` is not an IPv6 prefix length (0 to 128)");
    }
}
