//! Reading and writing the home agent's own replies, beyond what the registrar builds.
use std::net::Ipv6Addr;

use mipcast_binding::SaTable;
use mipcast_wire::auth;
use mipcast_wire::mh::{back_status, mh_type, MhPacket, MhRepr};

/// The status of a Binding Acknowledgement, None for any other message.
pub fn back_status_of(bytes: &[u8]) -> Option<u8> {
    let packet = MhPacket::new_checked(bytes).ok()?;
    if packet.mh_type() != mh_type::BINDING_ACK {
        return None;
    }
    packet.message_data().first().copied()
}

/// A metrics label for why a BU from `src` was refused with `status`, for the
/// authentication-failure counter; None for statuses that are not about authentication.
pub fn auth_failure_reason(
    status: u8,
    src: Ipv6Addr,
    bytes: &[u8],
    sas: &SaTable,
) -> Option<&'static str> {
    match status {
        back_status::MIPV6_ID_MISMATCH => Some("replay_timestamp"),
        back_status::MIPV6_MESG_ID_REQD => Some("replay_option_missing"),
        back_status::MIPV6_AUTH_FAIL => {
            // The registrar says only "146"; verifying once more names the cause. Rejections
            // are rate-limited upstream of the sender, not here, but this runs only for them.
            let repr = MhRepr::parse(bytes).ok()?;
            let hoa = repr.home_address()?;
            let coa = repr.alternate_care_of().unwrap_or(src);
            let lookup = |spi| sas.get(spi).map(|sa| (sa.algorithm, sa.key.as_slice()));
            Some(match auth::verify(bytes, &coa, &hoa, lookup) {
                Err(e) => e.label(),
                Ok(_) => "auth_other",
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mipcast_binding::SecurityAssociation;
    use mipcast_wire::auth::{Algorithm, Credentials};
    use mipcast_wire::mh::MobilityOption;
    use mipcast_wire::mh::{BindingUpdate, Message};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn sas() -> SaTable {
        SaTable::new([SecurityAssociation {
            spi: 1000,
            algorithm: Algorithm::HmacSha256_128,
            key: b"0123456789abcdef".to_vec(),
            allowed: vec![(a("2001:db8:1::"), 64)],
        }])
        .unwrap()
    }

    fn bu(key: &[u8], spi: u32) -> Vec<u8> {
        let repr = MhRepr {
            message: Message::BindingUpdate(BindingUpdate {
                sequence: 7,
                flags: 0xc000,
                lifetime: 10,
            }),
            options: vec![
                MobilityOption::HomeNetworkPrefix {
                    prefix_len: 128,
                    prefix: a("2001:db8:1::100"),
                },
                MobilityOption::ReplayProtection { timestamp: 1 },
            ],
        };
        let mut buf = vec![0; 256];
        let creds = Credentials {
            spi,
            algorithm: Algorithm::HmacSha256_128,
            key,
        };
        let n = repr
            .emit_authenticated(&mut buf, &creds, &a("2001:db8:2::9"), &a("2001:db8:1::100"))
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn auth_failures_are_named() {
        let src = a("2001:db8:2::9");
        let good = bu(b"0123456789abcdef", 1000);
        assert_eq!(
            auth_failure_reason(146, src, &good, &sas()),
            Some("auth_other")
        );
        let wrong_key = bu(b"not-the-key-0000", 1000);
        assert_eq!(
            auth_failure_reason(146, src, &wrong_key, &sas()),
            Some("auth_mismatch")
        );
        let unknown = bu(b"0123456789abcdef", 4242);
        assert_eq!(
            auth_failure_reason(146, src, &unknown, &sas()),
            Some("auth_unknown_spi")
        );
        // Signed for a different CoA than the source: the authenticator does not match.
        assert_eq!(
            auth_failure_reason(146, a("2001:db8:2::8"), &good, &sas()),
            Some("auth_mismatch")
        );
        assert_eq!(
            auth_failure_reason(144, src, &good, &sas()),
            Some("replay_timestamp")
        );
        assert_eq!(auth_failure_reason(135, src, &good, &sas()), None);
        assert_eq!(auth_failure_reason(146, src, &[1, 2, 3], &sas()), None);
    }
}
