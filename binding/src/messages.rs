//! Builders for the messages a registrar sends: Binding Acknowledgement, Binding Refresh
//! Request and Binding Error. Each returns the Mobility Header bytes for a raw IPPROTO_MH
//! socket (the kernel fills in the checksum).
use std::net::Ipv6Addr;

use mipcast_wire::auth::Credentials;
use mipcast_wire::mh::{BindingAck, BindingError, Message, MhRepr, MobilityOption};
use mipcast_wire::Error;

use crate::sa::SecurityAssociation;

/// Signing parameters for an acknowledgement to an authenticated MN (RFC 4285 §5: the
/// authenticator covers CoA | HoA | MH).
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub sa: &'a SecurityAssociation,
    pub coa: Ipv6Addr,
    pub hoa: Ipv6Addr,
}

/// A Binding Acknowledgement. `lifetime_units` is in 4-second units; `options` go before the
/// authentication option, which `signer` appends last when present.
pub fn binding_ack(
    status: u8,
    sequence: u16,
    lifetime_units: u16,
    options: Vec<MobilityOption>,
    signer: Option<Signer<'_>>,
) -> Result<Vec<u8>, Error> {
    let repr = MhRepr {
        message: Message::BindingAck(BindingAck {
            status,
            flags: 0,
            sequence,
            lifetime: lifetime_units,
        }),
        options,
    };
    match signer {
        Some(s) => emit_signed(&repr, &s),
        None => emit(&repr),
    }
}

/// A Binding Refresh Request (RFC 6275 §6.1.2). Sent unsigned: RFC 4285 defines the
/// authentication option for BU and BAck only, and a forged request can at worst make the MN
/// send an authenticated BU early.
pub fn binding_refresh_request() -> Result<Vec<u8>, Error> {
    emit(&MhRepr {
        message: Message::BindingRefreshRequest,
        options: Vec::new(),
    })
}

/// A Binding Error (RFC 6275 §6.1.9). `home_address` is the unspecified address when the
/// offending message carried none, as RFC 6275 §9.2 asks.
pub fn binding_error(status: u8, home_address: Ipv6Addr) -> Result<Vec<u8>, Error> {
    emit(&MhRepr {
        message: Message::BindingError(BindingError {
            status,
            home_address,
        }),
        options: Vec::new(),
    })
}

fn emit(repr: &MhRepr) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0; repr.buffer_len()];
    let len = repr.emit(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

/// Room for the authentication option: type, length, subtype, SPI, the longest authenticator
/// (16 bytes) and alignment padding.
const AUTH_OPTION_ROOM: usize = 2 + 1 + 4 + 16 + 8;

fn emit_signed(repr: &MhRepr, s: &Signer<'_>) -> Result<Vec<u8>, Error> {
    let creds = Credentials {
        spi: s.sa.spi,
        algorithm: s.sa.algorithm,
        key: &s.sa.key,
    };
    let mut buf = vec![0; repr.buffer_len() + AUTH_OPTION_ROOM];
    let len = repr.emit_authenticated(&mut buf, &creds, &s.coa, &s.hoa)?;
    buf.truncate(len);
    Ok(buf)
}
