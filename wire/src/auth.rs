//! RFC 4285 Mobility Message Authentication (MN-HA).
//!
//! Authenticator = first N bytes of HMAC(key, CoA | HoA | MH data), where MH data is the
//! Mobility Header from its first byte up to and including the option's SPI field, with the
//! MH checksum treated as zero (RFC 4285 §5.2). HMAC-SHA1-96 is the RFC's algorithm (interop);
//! HMAC-SHA256-128 is selectable per SPI. CoA and HoA are the mobile node's addresses in both
//! directions (Binding Update and Binding Acknowledgement alike).
//!
//! # Layout
//!
//! The option must be the last one (RFC 4285 §5) and the header a multiple of 8 octets, so any
//! padding after it would be unauthenticated bytes the receiver must still accept. We avoid
//! that: the option is placed so that the authenticator ends exactly at the end of the header,
//! and [`verify`] rejects anything after it (`NotLast`). The option is 7 + N bytes (type, length,
//! subtype, SPI, authenticator), so its type byte sits at 8n + (1 - N) mod 8:
//!
//! ```text
//! HMAC-SHA1-96    N = 12: option at 8n+5 (19 bytes), Pad1/PadN before it as needed
//! HMAC-SHA256-128 N = 16: option at 8n+1 (23 bytes)
//! ```
//! Both satisfy the option's 4n+1 alignment requirement, and the SPI lands 4-byte aligned. For
//! example a BU with Home Network Prefix and Replay Protection options and SHA1-96:
//! `0..12` header and BU fields, `12..32` HNP, `32..34` PadN, `34..44` Replay Protection,
//! `44` Pad1, `45..64` Authentication (authenticator `52..64`), Header Len 7.
//!
//! API:
//! - `enum Algorithm { HmacSha1_96, HmacSha256_128 }` with `authenticator_len()`.
//! - `struct Credentials<'a> { spi: u32, algorithm: Algorithm, key: &'a [u8] }`.
//! - `MhRepr::emit_authenticated(&self, buf, &Credentials, coa, hoa) -> Result<usize>`:
//!   emits the message with the authentication option appended last (correctly aligned) and
//!   its authenticator filled in.
//! - `verify(mh: &[u8], coa, hoa, lookup: impl Fn(u32) -> Option<(Algorithm, &[u8])>)
//!   -> Result<u32 /* spi */, AuthError>` with `AuthError::{Missing, NotLast, UnknownSpi(u32),
//!   BadLength, Mismatch, Malformed(crate::Error)}`, constant-time compare.
use core::fmt;
use std::net::Ipv6Addr;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::mh::{
    self, option_type, MhPacket, MhRepr, MobilityOption, AUTH_SUBTYPE_MN_HA, CHECKSUM_OFFSET,
};
use crate::{Error, Result};

/// Bytes between the option's type byte and its authenticator: type, length, subtype, SPI.
const AUTH_HEADER_LEN: usize = 7;

/// The MAC algorithm of a mobility security association.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA1 truncated to 96 bits: RFC 4285's algorithm.
    HmacSha1_96,
    /// HMAC-SHA256 truncated to 128 bits.
    HmacSha256_128,
}

impl Algorithm {
    /// Length of the authenticator on the wire, in bytes.
    pub const fn authenticator_len(self) -> usize {
        match self {
            Algorithm::HmacSha1_96 => 12,
            Algorithm::HmacSha256_128 => 16,
        }
    }

    /// The truncated HMAC of the concatenation of `parts`.
    fn mac(
        self,
        key: &[u8],
        parts: &[&[u8]],
    ) -> core::result::Result<Vec<u8>, hmac::digest::InvalidLength> {
        let mut full = match self {
            Algorithm::HmacSha1_96 => mac_of::<Hmac<Sha1>>(key, parts)?,
            Algorithm::HmacSha256_128 => mac_of::<Hmac<Sha256>>(key, parts)?,
        };
        full.truncate(self.authenticator_len());
        Ok(full)
    }
}

fn mac_of<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    parts: &[&[u8]],
) -> core::result::Result<Vec<u8>, hmac::digest::InvalidLength> {
    let mut m = <M as Mac>::new_from_slice(key)?;
    for p in parts {
        m.update(p);
    }
    Ok(m.finalize().into_bytes().to_vec())
}

/// A mobility security association as the sender uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub spi: u32,
    pub algorithm: Algorithm,
    pub key: &'a [u8],
}

/// Why [`verify`] rejected a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No Mobility Message Authentication option.
    Missing,
    /// The option is not the last bytes of the header.
    NotLast,
    /// `lookup` knows no key for this SPI.
    UnknownSpi(u32),
    /// The authenticator's length does not match the SPI's algorithm.
    BadLength,
    /// The authenticator does not match.
    Mismatch,
    /// The header or option does not parse (or has a subtype other than MN-HA).
    Malformed(Error),
}

impl AuthError {
    /// A short stable label, used as a metrics label value for counted drops.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::NotLast => "auth_not_last",
            AuthError::UnknownSpi(_) => "auth_unknown_spi",
            AuthError::BadLength => "auth_bad_length",
            AuthError::Mismatch => "auth_mismatch",
            AuthError::Malformed(_) => "auth_malformed",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no mobility message authentication option"),
            AuthError::NotLast => f.write_str("authentication option is not last"),
            AuthError::UnknownSpi(spi) => write!(f, "unknown mobility SPI {spi}"),
            AuthError::BadLength => {
                f.write_str("authenticator length does not match the SPI's algorithm")
            }
            AuthError::Mismatch => f.write_str("authenticator mismatch"),
            AuthError::Malformed(e) => write!(f, "authentication: {e}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The Mobility Data the authenticator covers, as slices: CoA, HoA and the header up to the
/// SPI with the checksum field replaced by zeros. `auth_start` is the offset of the
/// authenticator's first byte.
fn mobility_data<'a>(
    coa: &'a [u8; 16],
    hoa: &'a [u8; 16],
    mh: &'a [u8],
    auth_start: usize,
) -> Option<[&'a [u8]; 5]> {
    const ZERO: [u8; 2] = [0, 0];
    Some([
        coa,
        hoa,
        mh.get(..CHECKSUM_OFFSET)?,
        &ZERO,
        mh.get(CHECKSUM_OFFSET + 2..auth_start)?,
    ])
}

impl MhRepr {
    /// Emits the message with an MN-HA Mobility Message Authentication option appended last
    /// and its authenticator computed (layout in the module documentation). The checksum is
    /// left zero, as [`emit`](MhRepr::emit) does; the authenticator does not cover it.
    ///
    /// Fails like `emit`, and with `Malformed` when `self` already carries an Authentication
    /// option.
    pub fn emit_authenticated(
        &self,
        buf: &mut [u8],
        creds: &Credentials<'_>,
        coa: &Ipv6Addr,
        hoa: &Ipv6Addr,
    ) -> Result<usize> {
        let n = creds.algorithm.authenticator_len();
        let option = MobilityOption::Authentication {
            subtype: AUTH_SUBTYPE_MN_HA,
            spi: creds.spi,
            authenticator: vec![0; n],
        };
        let total = mh::emit_parts(&self.message, &self.options, Some(&option), buf)?;
        let auth_start = total - n;
        let (coa, hoa) = (coa.octets(), hoa.octets());
        let emitted = buf.get(..total).ok_or(Error::BufferTooSmall)?;
        let parts = mobility_data(&coa, &hoa, emitted, auth_start).ok_or(Error::BufferTooSmall)?;
        let mac = creds
            .algorithm
            .mac(creds.key, &parts)
            .map_err(|_| Error::Malformed("hmac key"))?;
        buf.get_mut(auth_start..total)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(&mac);
        Ok(total)
    }
}

/// Verifies the MN-HA authenticator of the Mobility Header `mh` and returns its SPI.
///
/// `lookup` maps an SPI to its algorithm and key. The option must be the header's last bytes
/// (nothing, not even padding, after it) and have subtype MN-HA. Only the header is checked
/// here; parse it with [`MhRepr::parse`] for its content.
pub fn verify<'k>(
    mh: &[u8],
    coa: &Ipv6Addr,
    hoa: &Ipv6Addr,
    lookup: impl Fn(u32) -> Option<(Algorithm, &'k [u8])>,
) -> core::result::Result<u32, AuthError> {
    let packet = MhPacket::new_checked(mh).map_err(AuthError::Malformed)?;
    let mut found = None;
    for raw in packet.options().map_err(AuthError::Malformed)? {
        let raw = raw.map_err(AuthError::Malformed)?;
        if raw.ty == option_type::AUTHENTICATION && found.is_none() {
            found = Some(raw);
        }
    }
    let raw = found.ok_or(AuthError::Missing)?;
    if raw.end() != packet.total_len() {
        return Err(AuthError::NotLast);
    }
    let bad_len = AuthError::Malformed(Error::Malformed("authentication option length"));
    let (subtype, rest) = raw.data.split_first().ok_or(bad_len)?;
    if *subtype != AUTH_SUBTYPE_MN_HA {
        return Err(AuthError::Malformed(Error::Unsupported(
            "authentication subtype",
        )));
    }
    let spi_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(bad_len)?;
    let spi = u32::from_be_bytes(spi_bytes);
    let received = rest.get(4..).ok_or(bad_len)?;
    let (algorithm, key) = lookup(spi).ok_or(AuthError::UnknownSpi(spi))?;
    if received.len() != algorithm.authenticator_len() {
        return Err(AuthError::BadLength);
    }
    let (coa, hoa) = (coa.octets(), hoa.octets());
    let parts =
        mobility_data(&coa, &hoa, packet.mh(), raw.offset + AUTH_HEADER_LEN).ok_or(bad_len)?;
    let expected = algorithm
        .mac(key, &parts)
        .map_err(|_| AuthError::Malformed(Error::Malformed("hmac key")))?;
    if bool::from(expected.ct_eq(received)) {
        Ok(spi)
    } else {
        Err(AuthError::Mismatch)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 2202 §3 (HMAC-SHA1) and RFC 4231 §4 (HMAC-SHA256): test cases 1, 2 and 5 (the
    // truncation case), each compared on the first 96 / 128 bits we put on the wire.
    #[test]
    fn rfc2202_hmac_sha1_96() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                &[0x0c; 20],
                b"Test With Truncation",
                "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
            ),
        ];
        for (key, data, digest) in cases {
            let mac = Algorithm::HmacSha1_96.mac(key, &[data]).unwrap();
            assert_eq!(mac, hex(digest)[..12]);
        }
    }

    #[test]
    fn rfc4231_hmac_sha256_128() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0x0c; 20],
                b"Test With Truncation",
                "a3b6167473100ee06e0c796c2955552b",
            ),
        ];
        for (key, data, digest) in cases {
            let mac = Algorithm::HmacSha256_128.mac(key, &[data]).unwrap();
            assert_eq!(mac, hex(digest)[..16]);
        }
    }

    #[test]
    fn split_input_equals_contiguous_input() {
        let whole = Algorithm::HmacSha1_96.mac(b"k", &[b"abcdef"]).unwrap();
        let split = Algorithm::HmacSha1_96
            .mac(b"k", &[b"ab", b"", b"cdef"])
            .unwrap();
        assert_eq!(whole, split);
    }
}
