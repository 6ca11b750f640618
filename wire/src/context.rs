//! Context transfer between MMAs (issue 12 §3): the Context Request / Context Reply pair and
//! the Terminal Context option.
//!
//! After an inter-site move the new MMA asks the terminal's previous MMA for its context in one
//! round trip: home address, group, remaining lifetime and the correspondents the old MMA had
//! bound with their binding state, so the new MMA can bind them at once.
//!
//! # Why a Binding Update / Binding Acknowledgement pair, not MH type 253
//!
//! RFC 5096 reserves MH type 253 for experiments, but tshark 4.0 shows such a message as
//! "Mobility Header Type: Unknown (253)" followed by one opaque "Message Data" blob, and scapy
//! as `MIP6MH_Generic` with raw bytes. A BU/BAck pair decodes field by field in both: sequence
//! number, status, the Home Network Prefix, the Replay Protection timestamp and the RFC 4285
//! option's SPI; only our Experimental option's body stays opaque. It also reuses the option
//! parser, the RFC 4285 authenticator and the BAck status space as they are, and matches a
//! reply to its request by sequence number as RFC 6275 does. A node that does not know
//! sub-type 6 sees a BU signed with an SPI it has no association for and refuses it: nothing
//! is bound by mistake.
//!
//! # Layout
//!
//! ```text
//! Context Request (new MMA -> previous MMA): a Binding Update
//!   BU           sequence = request id, flags A only (no H, no M), lifetime 0
//!   type 22      Home Network Prefix /128: the terminal's home address
//!   type 10      Replay Protection: the requester's clock (RFC 4285 §6)
//!   type 18      | 18 | 2 | 6 (Context Request) | reserved 0 |
//!   type 9       Authentication, MN-HA subtype, SPI of the MMA-MMA association
//! Context Reply (previous MMA -> new MMA): a Binding Acknowledgement
//!   BAck         status, sequence = the request's, lifetime 0
//!   type 22      Home Network Prefix /128: the terminal's home address
//!   type 18      Terminal Context (status 0 only, below)
//!   type 9       Authentication, same association
//! Terminal Context option (sub-type 7, no alignment):
//!   | 18 | 22 + 20 N | 7 | flags | group (16) | lifetime left, s (u32) | N x correspondent |
//!   flags 0x80 F: the terminal is in its forwarding window at the sender
//!         0x40 T: the terminal had more than 11 correspondents; the rest are not listed
//!   correspondent | address (16) | lifetime left, s (u16, saturating) | sequence (u16) |
//! ```
//!
//! Both authenticators cover `requester address | home address | Mobility Header` (RFC 4285
//! §5.2 with the requesting MMA in the care-of address's place): a reply cannot be passed off
//! to another requester or for another terminal. The request's timestamp protects it against
//! replay; the reply needs none, because it is only accepted for an outstanding request with
//! its sequence number and home address, and a request is forgotten once answered.
//!
//! Sizes (the Mobility Header, 40 bytes of IPv6 header on top): request 72 bytes; reply with
//! two correspondents 120 bytes with either algorithm (tested in `tests/context.rs`).
use std::net::Ipv6Addr;

use crate::auth::{self, AuthError, Credentials};
use crate::cursor::{Reader, Writer};
use crate::mh::{
    bu_flags, exp_subtype, option_type, BindingAck, BindingUpdate, Experimental, Message, MhPacket,
    MhRepr, MobilityOption,
};
use crate::{Error, Result};

/// Correspondents one Terminal Context option holds at most (its length is one byte).
pub const MAX_CORRESPONDENTS: usize = 11;
/// Terminal Context data before the correspondents: sub-type, flags, group, lifetime.
const CONTEXT_FIXED: usize = 1 + 1 + 16 + 4;
/// One correspondent entry.
const CORRESPONDENT_LEN: usize = 16 + 2 + 2;

/// Terminal Context flags.
pub mod context_flags {
    /// The terminal is in its forwarding window at the sender (it deregistered there).
    pub const FORWARDING: u8 = 0x80;
    /// More correspondents than [`super::MAX_CORRESPONDENTS`]: the list is not complete.
    pub const TRUNCATED: u8 = 0x40;
}

/// Room for the authentication option and its alignment (the longest authenticator).
const AUTH_ROOM: usize = 2 + 1 + 4 + 16 + 8;

/// One correspondent's binding state as the old MMA had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrespondentEntry {
    pub address: Ipv6Addr,
    /// Seconds left of the correspondent's binding (saturates at 65535).
    pub lifetime_left_s: u16,
    /// Sequence number of the last Binding Update sent to the correspondent.
    pub sequence: u16,
}

/// The Terminal Context option (Experimental sub-type 7), owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalContext {
    /// See [`context_flags`]; unknown bits are kept as read.
    pub flags: u8,
    pub group: Ipv6Addr,
    /// Seconds left of the terminal's registration (or forwarding window) at the sender.
    pub lifetime_left_s: u32,
    pub correspondents: Vec<CorrespondentEntry>,
}

/// A zero-copy, bounds-checked view of a Terminal Context option's data (sub-type byte
/// first, as [`crate::mh::RawOption::data`] gives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalContextView<'a> {
    data: &'a [u8],
}

impl<'a> TerminalContextView<'a> {
    /// Checks the sub-type and that the length is the fixed part plus whole correspondents,
    /// at most [`MAX_CORRESPONDENTS`] of them.
    pub fn new_checked(data: &'a [u8]) -> Result<Self> {
        if data.first() != Some(&exp_subtype::TERMINAL_CONTEXT) {
            return Err(Error::Malformed("terminal context sub-type"));
        }
        let rest = data
            .len()
            .checked_sub(CONTEXT_FIXED)
            .ok_or(Error::Malformed("terminal context length"))?;
        if rest % CORRESPONDENT_LEN != 0 || rest / CORRESPONDENT_LEN > MAX_CORRESPONDENTS {
            return Err(Error::Malformed("terminal context length"));
        }
        Ok(TerminalContextView { data })
    }

    pub fn flags(&self) -> u8 {
        self.data.get(1).copied().unwrap_or(0)
    }

    pub fn group(&self) -> Ipv6Addr {
        crate::cursor::addr_at(self.data, 2)
    }

    pub fn lifetime_left_s(&self) -> u32 {
        crate::cursor::be_u32(self.data, 18)
    }

    pub fn correspondent_count(&self) -> usize {
        self.data.len().saturating_sub(CONTEXT_FIXED) / CORRESPONDENT_LEN
    }

    /// The correspondents, in wire order.
    pub fn correspondents(&self) -> impl Iterator<Item = CorrespondentEntry> + 'a {
        let list = self.data.get(CONTEXT_FIXED..).unwrap_or(&[]);
        list.chunks_exact(CORRESPONDENT_LEN)
            .map(|c| CorrespondentEntry {
                address: crate::cursor::addr_at(c, 0),
                lifetime_left_s: crate::cursor::be_u16(c, 16),
                sequence: crate::cursor::be_u16(c, 18),
            })
    }
}

impl TerminalContext {
    /// Parses the option data (sub-type byte first).
    pub fn parse(data: &[u8]) -> Result<TerminalContext> {
        let view = TerminalContextView::new_checked(data)?;
        Ok(TerminalContext {
            flags: view.flags(),
            group: view.group(),
            lifetime_left_s: view.lifetime_left_s(),
            correspondents: view.correspondents().collect(),
        })
    }

    /// The option data's length (the Option Length field).
    pub(crate) fn data_len(&self) -> usize {
        CONTEXT_FIXED + CORRESPONDENT_LEN * self.correspondents.len()
    }

    pub(crate) fn check_encodable(&self) -> Result<()> {
        if self.correspondents.len() > MAX_CORRESPONDENTS {
            return Err(Error::Malformed(
                "terminal context: too many correspondents",
            ));
        }
        Ok(())
    }

    /// The option data (sub-type byte first).
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check_encodable()?;
        let mut buf = vec![0; self.data_len()];
        let mut w = Writer::new(&mut buf);
        w.u8(exp_subtype::TERMINAL_CONTEXT)?;
        w.u8(self.flags)?;
        w.addr(&self.group)?;
        w.u32(self.lifetime_left_s)?;
        for c in &self.correspondents {
            w.addr(&c.address)?;
            w.u16(c.lifetime_left_s)?;
            w.u16(c.sequence)?;
        }
        Ok(buf)
    }
}

/// A Context Request: the new MMA asks for the context of `hoa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextRequest {
    pub sequence: u16,
    pub hoa: Ipv6Addr,
    /// RFC 4285 timestamp (NTP format) of the requester's clock.
    pub timestamp: u64,
}

/// A Context Reply: `status` is a BAck status (0: `context` follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextReply {
    pub status: u8,
    pub sequence: u16,
    pub hoa: Ipv6Addr,
    pub context: Option<TerminalContext>,
}

fn home_prefix(hoa: Ipv6Addr) -> MobilityOption {
    MobilityOption::HomeNetworkPrefix {
        prefix_len: 128,
        prefix: hoa,
    }
}

/// Emits `repr` signed with `creds` over `requester | hoa | MH`.
fn emit_signed(
    repr: &MhRepr,
    creds: &Credentials<'_>,
    requester: &Ipv6Addr,
    hoa: &Ipv6Addr,
) -> Result<Vec<u8>> {
    let mut buf = vec![0; repr.buffer_len() + AUTH_ROOM];
    let n = repr.emit_authenticated(&mut buf, creds, requester, hoa)?;
    buf.truncate(n);
    Ok(buf)
}

impl ContextRequest {
    pub fn to_repr(&self) -> MhRepr {
        MhRepr {
            message: Message::BindingUpdate(BindingUpdate {
                sequence: self.sequence,
                flags: bu_flags::ACK,
                lifetime: 0,
            }),
            options: vec![
                home_prefix(self.hoa),
                MobilityOption::ReplayProtection {
                    timestamp: self.timestamp,
                },
                MobilityOption::Experimental(Experimental::ContextRequest),
            ],
        }
    }

    /// The signed message; `requester` is the sending MMA's address (its source).
    pub fn emit_authenticated(
        &self,
        creds: &Credentials<'_>,
        requester: &Ipv6Addr,
    ) -> Result<Vec<u8>> {
        emit_signed(&self.to_repr(), creds, requester, &self.hoa)
    }

    /// The request in a parsed message; `None` when it is not one (not a BU, H or M set, no
    /// Context Request option, no home address or no timestamp).
    pub fn from_repr(repr: &MhRepr) -> Option<ContextRequest> {
        let Message::BindingUpdate(bu) = repr.message else {
            return None;
        };
        if bu.flags & (bu_flags::HOME | bu_flags::MAP) != 0 {
            return None;
        }
        repr.experimental()
            .any(|e| *e == Experimental::ContextRequest)
            .then_some(())?;
        Some(ContextRequest {
            sequence: bu.sequence,
            hoa: repr.home_address()?,
            timestamp: repr.replay_timestamp()?,
        })
    }
}

impl ContextReply {
    pub fn to_repr(&self) -> MhRepr {
        let mut options = vec![home_prefix(self.hoa)];
        if let Some(c) = &self.context {
            options.push(MobilityOption::TerminalContext(c.clone()));
        }
        MhRepr {
            message: Message::BindingAck(BindingAck {
                status: self.status,
                flags: 0,
                sequence: self.sequence,
                lifetime: 0,
            }),
            options,
        }
    }

    /// The signed message; `requester` is the address of the MMA that asked (its
    /// destination).
    pub fn emit_authenticated(
        &self,
        creds: &Credentials<'_>,
        requester: &Ipv6Addr,
    ) -> Result<Vec<u8>> {
        emit_signed(&self.to_repr(), creds, requester, &self.hoa)
    }

    /// The reply in a parsed message; `None` when it is not a BAck with a home address.
    pub fn from_repr(repr: &MhRepr) -> Option<ContextReply> {
        let Message::BindingAck(ba) = repr.message else {
            return None;
        };
        let context = repr.options.iter().find_map(|o| match o {
            MobilityOption::TerminalContext(c) => Some(c.clone()),
            _ => None,
        });
        Some(ContextReply {
            status: ba.status,
            sequence: ba.sequence,
            hoa: repr.home_address()?,
            context,
        })
    }
}

/// Verifies a context message's authenticator (`requester | hoa | MH`) and returns its SPI.
pub fn verify<'k>(
    mh: &[u8],
    requester: &Ipv6Addr,
    hoa: &Ipv6Addr,
    lookup: impl Fn(u32) -> Option<(auth::Algorithm, &'k [u8])>,
) -> core::result::Result<u32, AuthError> {
    auth::verify(mh, requester, hoa, lookup)
}

/// Whether `mh` is a Binding Update carrying a Context Request option, without allocating:
/// how a receiver tells a Context Request from a terminal's Binding Update before handing
/// the message to its registrar.
pub fn is_context_request(mh: &[u8]) -> bool {
    let Ok(packet) = MhPacket::new_checked(mh) else {
        return false;
    };
    if packet.mh_type() != crate::mh::mh_type::BINDING_UPDATE {
        return false;
    }
    let Ok(options) = packet.options() else {
        return false;
    };
    options.flatten().any(|o| {
        o.ty == option_type::EXPERIMENTAL && o.data.first() == Some(&exp_subtype::CONTEXT_REQUEST)
    })
}

/// Reads the option data of a Context Request option (sub-type byte first).
pub(crate) fn parse_request_option(fields: &[u8]) -> Result<()> {
    let mut r = Reader::new(fields);
    let _reserved = r.u8()?;
    if r.rest().is_empty() {
        Ok(())
    } else {
        Err(Error::Malformed("context request length"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ctx(n: usize) -> TerminalContext {
        TerminalContext {
            flags: context_flags::FORWARDING,
            group: "ff35::1".parse().unwrap(),
            lifetime_left_s: 300,
            correspondents: (0..n)
                .map(|i| CorrespondentEntry {
                    address: Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i as u16 + 1),
                    lifetime_left_s: 100 + i as u16,
                    sequence: 7 + i as u16,
                })
                .collect(),
        }
    }

    #[test]
    fn context_round_trips_through_bytes_and_view() {
        for n in [0, 1, 2, MAX_CORRESPONDENTS] {
            let c = ctx(n);
            let bytes = c.to_bytes().unwrap();
            assert_eq!(bytes.len(), 22 + 20 * n);
            let view = TerminalContextView::new_checked(&bytes).unwrap();
            assert_eq!(view.correspondent_count(), n);
            assert_eq!(TerminalContext::parse(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn view_refuses_bad_lengths_and_sub_types() {
        let good = ctx(2).to_bytes().unwrap();
        for cut in [0, 1, 21, 23, 41, 61] {
            assert!(
                TerminalContextView::new_checked(&good[..cut]).is_err(),
                "{cut}"
            );
        }
        let mut other = good.clone();
        other[0] = exp_subtype::CONTEXT_REQUEST;
        assert!(TerminalContextView::new_checked(&other).is_err());
        assert!(ctx(MAX_CORRESPONDENTS + 1).to_bytes().is_err());
    }
}
