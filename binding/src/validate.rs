//! The Binding Update validation pipeline (RFC 6275 §9.2, §9.5.1, §10.3.1; RFC 4285 §5-6).
//!
//! Order and outcomes:
//! 0. The source must be unicast → else silent drop (there is nobody to answer).
//! 1. Fixed header and Header Len must match the buffer → else silent drop (§9.2).
//! 2. MH type must be one we implement (0, 5, 6, 7) → else Binding Error status 2 (§9.2).
//! 3. Full parse → else silent drop.
//! 4. Must be a Binding Update → else silent drop (we are the responder, not the MN).
//! 5. Home address: exactly one Home Network Prefix option, length 128, unicast → else
//!    BAck 128. (RFC 5213's PMIPv6 statuses are for proxy registrations, which an MIPv6 MN does
//!    not interpret; "reason unspecified" is the MIPv6 status for a malformed request.)
//!    Care-of address: the Alternate Care-of Address option (at most one) if present, else the
//!    source; must be unicast → else BAck 128.
//! 6. Authentication option (last, known SPI, matching authenticator) → else BAck 146,
//!    unsigned since we share no verified key with the sender.
//! 7. The SPI must authorise the HoA → else BAck 129: the sender proved it holds the key, so
//!    146 would wrongly tell a legitimate MN its credentials are broken; it is simply not
//!    allowed this home address.
//! 8. Replay Protection option present → else 145; timestamp within the window of our clock
//!    and newer than the last accepted for the HoA → else 144. Both carry our current time.
//! 9. Sequence number newer than the binding's → else 135 with the last accepted number.
//! 10. Lifetime capped; deregistration iff lifetime 0 or CoA == HoA.
//!
//! From step 7 on the MN is authenticated, so every reply is signed with its SA and carries a
//! Replay Protection option: the BU's timestamp once it was accepted, otherwise our clock so
//! the MN can resynchronise (RFC 4285 §6).
use std::net::Ipv6Addr;

use mipcast_wire::auth;
use mipcast_wire::mh::{back_status, be_status, Message, MhRepr, MobilityOption};

use crate::policy::Request;
use crate::registrar::DropReason;
use crate::sa::SaTable;
use crate::{replay, seq};

/// MH types we parse: BRR, BU, BAck, BE.
const KNOWN_MH_TYPES: [u8; 4] = [0, 5, 6, 7];
/// Payload Proto, Header Len, MH Type, Reserved, Checksum, and the shortest message data.
const MIN_MH_LEN: usize = 8;

/// What the registrar knows of a home address from before this BU.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct History {
    /// Sequence number of the current binding, if one exists.
    pub sequence: Option<u16>,
    /// Last accepted timestamp, kept a while even after the binding is gone.
    pub timestamp: Option<u64>,
}

/// Fixed inputs of one validation.
pub(crate) struct Limits {
    pub window_ntp: u64,
    pub max_lifetime_units: u16,
    pub now_ntp: u64,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Drop(DropReason),
    BindingError { status: u8 },
    Reject(Rejection),
    Valid(Request),
}

/// A refused BU and how to acknowledge it.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub status: u8,
    /// Sequence number for the BAck: the BU's, or the last accepted one for status 135.
    pub sequence: u16,
    pub hoa: Option<Ipv6Addr>,
    /// Present once the BU authenticated: sign the reply and add Replay Protection.
    pub signed: Option<SignedReply>,
    /// For status 146, what exactly failed (`AuthError::label`), so nobody verifies again
    /// to find out (a forged message costs one MAC computation, not two).
    pub auth_error: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedReply {
    pub spi: u32,
    pub coa: Ipv6Addr,
    pub hoa: Ipv6Addr,
    pub timestamp: u64,
}

pub(crate) fn validate(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    bytes: &[u8],
    sas: &SaTable,
    limits: &Limits,
    history: impl Fn(Ipv6Addr) -> History,
) -> Outcome {
    if !is_unicast(src) {
        return Outcome::Drop(DropReason::BadSource);
    }
    let (Some(&header_len), Some(&mh_type)) = (bytes.get(1), bytes.get(2)) else {
        return Outcome::Drop(DropReason::BadLength);
    };
    if bytes.len() < MIN_MH_LEN || (usize::from(header_len) + 1) * 8 != bytes.len() {
        return Outcome::Drop(DropReason::BadLength);
    }
    if !KNOWN_MH_TYPES.contains(&mh_type) {
        return Outcome::BindingError {
            status: be_status::UNRECOGNIZED_MH_TYPE,
        };
    }
    let repr = match MhRepr::parse(bytes) {
        Ok(r) => r,
        Err(e) => return Outcome::Drop(DropReason::Malformed(e)),
    };
    let Message::BindingUpdate(bu) = repr.message else {
        return Outcome::Drop(DropReason::NotBindingUpdate(mh_type));
    };
    let reject = |status, hoa, signed| {
        Outcome::Reject(Rejection {
            status,
            sequence: bu.sequence,
            hoa,
            signed,
            auth_error: None,
        })
    };

    let Some(hoa) = home_address(&repr.options) else {
        return reject(back_status::UNSPECIFIED, None, None);
    };
    let Some(coa) = care_of_address(&repr.options, src) else {
        return reject(back_status::UNSPECIFIED, Some(hoa), None);
    };

    let lookup = |spi| sas.get(spi).map(|sa| (sa.algorithm, sa.key.as_slice()));
    let spi = match auth::verify(bytes, &coa, &hoa, lookup) {
        Ok(spi) => spi,
        Err(e) => {
            return Outcome::Reject(Rejection {
                status: back_status::MIPV6_AUTH_FAIL,
                sequence: bu.sequence,
                hoa: Some(hoa),
                signed: None,
                auth_error: Some(e.label()),
            })
        }
    };
    let signed_now = Some(SignedReply {
        spi,
        coa,
        hoa,
        timestamp: limits.now_ntp,
    });
    if !sas.authorises(spi, hoa) {
        return reject(back_status::ADMIN_PROHIBITED, Some(hoa), signed_now);
    }

    let Some(timestamp) = repr.options.iter().find_map(|o| match o {
        MobilityOption::ReplayProtection { timestamp } => Some(*timestamp),
        _ => None,
    }) else {
        return reject(back_status::MIPV6_MESG_ID_REQD, Some(hoa), signed_now);
    };
    let past = history(hoa);
    if replay::check(timestamp, limits.now_ntp, limits.window_ntp, past.timestamp).is_err() {
        return reject(back_status::MIPV6_ID_MISMATCH, Some(hoa), signed_now);
    }
    let signed = Some(SignedReply {
        spi,
        coa,
        hoa,
        timestamp,
    });

    if let Some(last) = past.sequence {
        if !seq::is_newer(bu.sequence, last) {
            return Outcome::Reject(Rejection {
                status: back_status::SEQUENCE_OUT_OF_WINDOW,
                sequence: last,
                hoa: Some(hoa),
                signed,
                auth_error: None,
            });
        }
    }

    let granted_units = bu.lifetime.min(limits.max_lifetime_units);
    let deregistration = bu.lifetime == 0 || coa == hoa;
    Outcome::Valid(Request {
        src,
        dst,
        hoa,
        coa,
        sequence: bu.sequence,
        flags: bu.flags,
        requested_lifetime_s: u32::from(bu.lifetime) * 4,
        lifetime_s: if deregistration {
            0
        } else {
            u32::from(granted_units) * 4
        },
        timestamp,
        spi,
        deregistration,
        options: repr.options,
    })
}

/// The home address: the single Home Network Prefix option, with prefix length 128.
fn home_address(options: &[MobilityOption]) -> Option<Ipv6Addr> {
    let mut hnps = options.iter().filter_map(|o| match o {
        MobilityOption::HomeNetworkPrefix { prefix_len, prefix } => Some((*prefix_len, *prefix)),
        _ => None,
    });
    match (hnps.next(), hnps.next()) {
        (Some((128, hoa)), None) if is_unicast(hoa) => Some(hoa),
        _ => None,
    }
}

/// The care-of address: the Alternate Care-of Address option if there is one, else `src`.
fn care_of_address(options: &[MobilityOption], src: Ipv6Addr) -> Option<Ipv6Addr> {
    let mut alts = options.iter().filter_map(|o| match o {
        MobilityOption::AlternateCareOf(a) => Some(*a),
        _ => None,
    });
    let coa = match (alts.next(), alts.next()) {
        (None, _) => src,
        (Some(a), None) => a,
        (Some(_), Some(_)) => return None,
    };
    is_unicast(coa).then_some(coa)
}

fn is_unicast(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn home_address_needs_exactly_one_host_prefix() {
        let hnp = |len, p: &str| MobilityOption::HomeNetworkPrefix {
            prefix_len: len,
            prefix: a(p),
        };
        assert_eq!(
            home_address(&[hnp(128, "2001:db8::1")]),
            Some(a("2001:db8::1"))
        );
        assert_eq!(home_address(&[]), None);
        assert_eq!(home_address(&[hnp(64, "2001:db8::")]), None);
        assert_eq!(
            home_address(&[hnp(128, "2001:db8::1"), hnp(128, "2001:db8::2")]),
            None
        );
        assert_eq!(home_address(&[hnp(128, "ff35::1")]), None);
        assert_eq!(home_address(&[hnp(128, "::")]), None);
    }

    #[test]
    fn care_of_defaults_to_source() {
        let src = a("2001:db8:f::1");
        let alt = MobilityOption::AlternateCareOf(a("2001:db8:e::1"));
        assert_eq!(care_of_address(&[], src), Some(src));
        assert_eq!(
            care_of_address(std::slice::from_ref(&alt), src),
            Some(a("2001:db8:e::1"))
        );
        assert_eq!(care_of_address(&[alt.clone(), alt], src), None);
        assert_eq!(
            care_of_address(&[MobilityOption::AlternateCareOf(a("ff02::1"))], src),
            None
        );
    }

    #[test]
    fn unanswerable_sources_are_dropped_first() {
        let sas = SaTable::default();
        let limits = Limits {
            window_ntp: 7 << 32,
            max_lifetime_units: 100,
            now_ntp: 0,
        };
        for src in ["::", "ff02::1", "::1"] {
            let out = validate(
                a(src),
                a("fe80::2"),
                &[59, 0, 42, 0, 0, 0, 0, 0],
                &sas,
                &limits,
                |_| History::default(),
            );
            assert!(
                matches!(out, Outcome::Drop(DropReason::BadSource)),
                "{src}: {out:?}"
            );
        }
    }

    #[test]
    fn structural_checks_come_first() {
        let sas = SaTable::default();
        let limits = Limits {
            window_ntp: 7 << 32,
            max_lifetime_units: 100,
            now_ntp: 0,
        };
        let v = |b: &[u8]| {
            validate(a("fe80::1"), a("fe80::2"), b, &sas, &limits, |_| {
                History::default()
            })
        };
        // Too short for the fixed header.
        assert!(matches!(
            v(&[59, 0, 5]),
            Outcome::Drop(DropReason::BadLength)
        ));
        // Header Len says 16 bytes, buffer holds 8.
        assert!(matches!(
            v(&[59, 1, 5, 0, 0, 0, 0, 0]),
            Outcome::Drop(DropReason::BadLength)
        ));
        // Well-framed unknown type 42.
        assert!(matches!(
            v(&[59, 0, 42, 0, 0, 0, 0, 0]),
            Outcome::BindingError { status: 2 }
        ));
        // Type 1 (HoTI) is not implemented either.
        assert!(matches!(
            v(&[59, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Outcome::BindingError { status: 2 }
        ));
    }
}
