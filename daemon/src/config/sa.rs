//! The `security_associations` section shared by the home agent and the MMA: RFC 4285 MN-HA
//! associations, each a key file, an algorithm and the home prefixes it may register.
//!
//! ```yaml
//! security_associations:
//!   - spi: 1000                   # 256 or more (RFC 4285 §5 reserves 0-255)
//!     algorithm: hmac-sha256-128  # or hmac-sha1-96 (RFC 4285's own, for interoperability)
//!     key_file: keys/mn1.key     # make it with `home-agent keygen /etc/mipcast/keys/mn1.key`
//!     home_prefixes: [2001:db8:99::/64]
//! ```
use serde::Deserialize;

use mipcast_binding::sa::Algorithm;
use mipcast_binding::{SaError, SaTable, SecurityAssociation};

use super::{Ipv6Prefix, SecretKey, Validator};

/// The MAC algorithm as written in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum SaAlgorithm {
    /// HMAC-SHA1 truncated to 96 bits (RFC 4285's own; 20-byte keys).
    #[serde(rename = "hmac-sha1-96")]
    #[value(name = "hmac-sha1-96")]
    HmacSha1_96,
    /// HMAC-SHA256 truncated to 128 bits (32-byte keys).
    #[serde(rename = "hmac-sha256-128")]
    #[value(name = "hmac-sha256-128")]
    HmacSha256_128,
}

impl From<SaAlgorithm> for Algorithm {
    fn from(a: SaAlgorithm) -> Algorithm {
        match a {
            SaAlgorithm::HmacSha1_96 => Algorithm::HmacSha1_96,
            SaAlgorithm::HmacSha256_128 => Algorithm::HmacSha256_128,
        }
    }
}

/// One `security_associations` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaConfig {
    pub spi: u32,
    pub algorithm: SaAlgorithm,
    /// Read (and permission-checked) while the config loads.
    pub key_file: SecretKey,
    /// Home addresses this SA may register.
    pub home_prefixes: Vec<Ipv6Prefix>,
}

impl SaConfig {
    pub fn to_association(&self) -> SecurityAssociation {
        SecurityAssociation {
            spi: self.spi,
            algorithm: self.algorithm.into(),
            key: self.key_file.expose().to_vec(),
            allowed: self
                .home_prefixes
                .iter()
                .map(|p| (p.addr(), p.prefix_len()))
                .collect(),
        }
    }
}

/// Builds the registrar's table from the config section.
pub fn sa_table(sas: &[SaConfig]) -> Result<SaTable, SaError> {
    SaTable::new(sas.iter().map(SaConfig::to_association))
}

/// Reports every problem of the section at its field path (`<path>[i].spi`, ...), so an
/// operator sees all of them at once rather than [`sa_table`]'s first.
pub fn validate_sas(path: &str, sas: &[SaConfig], v: &mut Validator) {
    for (i, sa) in sas.iter().enumerate() {
        if sa.spi < 256 {
            v.error(
                format!("{path}[{i}].spi"),
                format!("SPI {} is reserved (RFC 4285 §5): use 256 or more", sa.spi),
            );
        }
        if sas.iter().take(i).any(|earlier| earlier.spi == sa.spi) {
            v.error(
                format!("{path}[{i}].spi"),
                format!("SPI {} is configured twice", sa.spi),
            );
        }
        if sa.home_prefixes.is_empty() {
            v.error(
                format!("{path}[{i}].home_prefixes"),
                "at least one home prefix is needed",
            );
        }
        for (j, prefix) in sa.home_prefixes.iter().enumerate() {
            super::limits::check_not_everything(
                &format!("{path}[{i}].home_prefixes[{j}]"),
                prefix,
                v,
            );
        }
        check_key_len(
            &format!("{path}[{i}].key_file"),
            sa.algorithm,
            sa.key_file.expose().len(),
            v,
        );
    }
}

/// Refuses a key shorter than its algorithm's hash output (RFC 2104 §3: shorter keys weaken
/// the MAC, so a deployment must not be able to run with one). Every daemon that loads keys
/// (home agent, MMA, mobile node) calls this for each key it reads.
pub fn check_key_len(field: &str, algorithm: SaAlgorithm, len: usize, v: &mut Validator) {
    let name = match algorithm {
        SaAlgorithm::HmacSha1_96 => "hmac-sha1-96",
        SaAlgorithm::HmacSha256_128 => "hmac-sha256-128",
    };
    let needed = min_key_len(algorithm);
    if len < needed {
        v.error(
            field,
            format!(
                "the key is {len} bytes: {name} needs at least {needed} (its hash's output \
                 size, RFC 2104 §3); make one with `keygen PATH --algorithm {name}`"
            ),
        );
    }
}

/// The shortest key accepted for `algorithm`: the output size of its hash (RFC 2104 §3 calls
/// shorter keys "strongly discouraged"; they weaken the MAC).
pub fn min_key_len(algorithm: SaAlgorithm) -> usize {
    match algorithm {
        SaAlgorithm::HmacSha1_96 => 20,
        SaAlgorithm::HmacSha256_128 => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        security_associations: Vec<SaConfig>,
    }

    impl super::super::Validate for Doc {
        fn validate(&self, v: &mut Validator) {
            validate_sas("security_associations", &self.security_associations, v);
        }
    }

    #[test]
    fn loads_a_table_and_locates_bad_entries() {
        let dir = std::env::temp_dir().join(format!("mipcast-sa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        std::fs::write(&key, "00112233445566778899aabbccddeeff00112233\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "security_associations:\n  - spi: 1000\n    algorithm: hmac-sha1-96\n    key_file: {k}\n    home_prefixes: [2001:db8:99::/64]\n",
            k = key.display()
        );
        let doc: Doc = super::super::load_str(std::path::Path::new("t.yaml"), &text).unwrap();
        let table = sa_table(&doc.security_associations).unwrap();
        let sa = table.get(1000).unwrap();
        assert_eq!(sa.algorithm, Algorithm::HmacSha1_96);
        assert_eq!(sa.key.len(), 20);
        assert!(sa.authorises("2001:db8:99::7".parse().unwrap()));

        let bad = format!(
            "security_associations:\n  - spi: 7\n    algorithm: hmac-sha256-128\n    key_file: {k}\n    home_prefixes: []\n",
            k = key.display()
        );
        let err = super::super::load_str::<Doc>(std::path::Path::new("t.yaml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.yaml:2:")
                && err.contains("security_associations[0].spi: SPI 7 is reserved"),
            "{err}"
        );
        assert!(
            err.contains("security_associations[0].home_prefixes: at least one"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A key shorter than the hash output is an error, not a warning: 20 bytes pass for
    /// HMAC-SHA1 but not for HMAC-SHA256; 31 bytes fail and 32 pass for HMAC-SHA256.
    #[test]
    fn keys_shorter_than_the_hash_output_are_refused() {
        let dir = std::env::temp_dir().join(format!("mipcast-sa-len-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |bytes: usize, algorithm: &str| {
            let key = dir.join(format!("k{bytes}"));
            std::fs::write(&key, "ab".repeat(bytes)).unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            let text = format!(
                "security_associations:\n  - spi: 1000\n    algorithm: {algorithm}\n    key_file: {k}\n    home_prefixes: [2001:db8:99::/64]\n",
                k = key.display()
            );
            super::super::load_str::<Doc>(std::path::Path::new("t.yaml"), &text)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(load(20, "hmac-sha1-96"), Ok(()));
        assert_eq!(load(32, "hmac-sha256-128"), Ok(()));
        for (bytes, algorithm, needed) in [
            (16, "hmac-sha256-128", 32),
            (31, "hmac-sha256-128", 32),
            (20, "hmac-sha256-128", 32),
            (16, "hmac-sha1-96", 20),
        ] {
            let err = load(bytes, algorithm).unwrap_err();
            assert!(
                err.contains(&format!(
                    "security_associations[0].key_file: the key is {bytes} bytes: {algorithm} needs at least {needed}"
                )),
                "{bytes} {algorithm}: {err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
