//! The Mobility Header (RFC 6275 §6.1) and its options.
//!
//! Messages: Binding Refresh Request (0), Binding Update (5), Binding Acknowledgement (6),
//! Binding Error (7). Options: Pad1/PadN, Binding Refresh Advice (2), Alternate Care-of Address
//! (3), Mobility Message Authentication (9, RFC 4285), Mobility Message Replay Protection (10,
//! RFC 4285), Experimental (18, RFC 5096) carrying mipcast's sub-types, Home Network Prefix
//! (22, RFC 5213).
//!
//! mipcast never uses the Home Address destination option or the type 2 routing header (the
//! kernels it runs on drop them, see the design file): the home address travels in a Home
//! Network Prefix option with prefix length 128.
//!
//! # Layout rules
//!
//! The whole header is a multiple of 8 octets; Header Len counts the 8-octet units after the
//! first 8. [`MhRepr::emit`] places options in the order given, each preceded by the Pad1/PadN
//! its alignment needs (RFC 6275 §6.2: Binding Refresh Advice 2n, Alternate Care-of Address
//! 8n+6, Home Network Prefix 8n+4, Replay Protection 8n+2, Experimental none), and pads the end.
//! The Authentication option is special, see [`crate::auth`]: it is placed so that its last byte
//! is the last byte of the header.
//!
//! # mipcast's Experimental option sub-types (type 18, no alignment)
//!
//! ```text
//! | 18 | len | sub-type | fields ...
//! sub-type 1 terminal group     len 17: group address (16)
//! sub-type 2 assigned CoA       len 17: care-of address (16)
//! sub-type 3 forwarding request len 21: new care-of address (16), grace seconds (u32, big endian)
//! sub-type 4 handoff advice      len 21: reason (1), reserved (1), avoid seconds (u16, big endian),
//!                                        the terminal's on-link address the advice is about (16)
//! sub-type 5 previous MMA       len 17: the MMA the terminal was registered with before (16)
//! sub-type 6 context request    len 2:  reserved (1)
//! sub-type 7 terminal context   len 22 + 20 N: see [`crate::context`]
//! ```
//! Handoff advice travels in a Binding Refresh Request from the MMA, with the terminal's Home
//! Network Prefix option, a Replay Protection option and the Authentication option of the
//! terminal's security association (see the README's "Wire formats").
//! A type 18 option with another sub-type parses as [`MobilityOption::Unknown`] (RFC 6275 §6.2.1:
//! unknown options are skipped, so we keep but do not interpret them).
use std::net::Ipv6Addr;

use crate::checksum;
use crate::{Error, Result};

/// IP protocol number of the Mobility Header.
pub const IPPROTO_MH: u8 = 135;
/// Offset of the MH checksum, for the IPV6_CHECKSUM socket option.
pub const CHECKSUM_OFFSET: usize = 4;

/// Binding Update flags (RFC 6275 §6.1.7, RFC 4140 for M).
pub mod bu_flags {
    pub const ACK: u16 = 0x8000;
    pub const HOME: u16 = 0x4000;
    pub const LINK_LOCAL: u16 = 0x2000;
    pub const KEY_MGMT: u16 = 0x1000;
    /// Registration with a mobility anchor (RFC 4140's MAP registration; here: with an MMA).
    pub const MAP: u16 = 0x0800;
}

/// Binding Acknowledgement status values used by mipcast (RFC 6275 §6.1.8, RFC 4285 §7).
pub mod back_status {
    pub const ACCEPTED: u8 = 0;
    pub const UNSPECIFIED: u8 = 128;
    pub const ADMIN_PROHIBITED: u8 = 129;
    pub const INSUFFICIENT_RESOURCES: u8 = 130;
    pub const HOME_REG_NOT_SUPPORTED: u8 = 131;
    pub const NOT_HOME_SUBNET: u8 = 132;
    pub const NOT_HOME_AGENT: u8 = 133;
    pub const SEQUENCE_OUT_OF_WINDOW: u8 = 135;
    pub const MIPV6_ID_MISMATCH: u8 = 144;
    pub const MIPV6_MESG_ID_REQD: u8 = 145;
    pub const MIPV6_AUTH_FAIL: u8 = 146;
}

/// Binding Error status values (RFC 6275 §6.1.9).
pub mod be_status {
    pub const UNKNOWN_BINDING: u8 = 1;
    pub const UNRECOGNIZED_MH_TYPE: u8 = 2;
}

/// Sub-types of the Experimental Mobility Option (type 18) that mipcast defines. The option
/// body is one sub-type byte followed by the sub-type's fields (layouts in the README).
pub mod exp_subtype {
    /// 16 bytes: the terminal's multicast group (BU to an MMA).
    pub const TERMINAL_GROUP: u8 = 1;
    /// 16 bytes: the care-of address the MMA assigned (BAck from an MMA).
    pub const ASSIGNED_COA: u8 = 2;
    /// 16 bytes new care-of address + 4 bytes grace period in seconds, big endian
    /// (deregistration BU to the previous MMA).
    pub const FORWARDING_REQUEST: u8 = 3;
    /// reason (1) + reserved (1) + avoid seconds (u16, big endian) + the on-link address the
    /// advice is about (16): the MMA advises the terminal to leave that link (Binding Refresh
    /// Request from the MMA, signed with the terminal's SA).
    pub const HANDOFF_ADVICE: u8 = 4;
    /// 16 bytes: the MMA the terminal was registered with before an inter-site move (BU to the
    /// new MMA): the new MMA asks it for the terminal's context ([`crate::context`]).
    pub const PREVIOUS_MMA: u8 = 5;
    /// reserved (1): the option that makes a BU between MMAs a Context Request.
    pub const CONTEXT_REQUEST: u8 = 6;
    /// The terminal's context in a Context Reply ([`crate::context::TerminalContext`]).
    pub const TERMINAL_CONTEXT: u8 = 7;
}

/// Why an MMA advises a terminal to leave a link (the handoff advice's reason byte).
pub mod advice_reason {
    /// The link is loaded beyond its configured threshold.
    pub const CONGESTION: u8 = 1;
    /// The operator takes the link down.
    pub const MAINTENANCE: u8 = 2;
    /// The site cannot admit (more) terminals on this link.
    pub const ADMISSION_REFUSED: u8 = 3;
}

/// The Mobility Message Authentication option's subtype for MN-HA (RFC 4285 §5).
pub const AUTH_SUBTYPE_MN_HA: u8 = 1;

/// Body of a Mobility Header message (the part after the 6 fixed header bytes, before options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Type 0: Binding Refresh Request (2 reserved bytes).
    BindingRefreshRequest,
    /// Type 5.
    BindingUpdate(BindingUpdate),
    /// Type 6.
    BindingAck(BindingAck),
    /// Type 7.
    BindingError(BindingError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingUpdate {
    pub sequence: u16,
    /// The 16-bit flags word as on the wire (see [`bu_flags`]); reserved bits are kept.
    pub flags: u16,
    /// In units of 4 seconds (RFC 6275 §6.1.7).
    pub lifetime: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingAck {
    pub status: u8,
    /// The K flag (0x80 of the flags byte); other flag bits are kept as read.
    pub flags: u8,
    pub sequence: u16,
    /// In units of 4 seconds.
    pub lifetime: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingError {
    pub status: u8,
    pub home_address: Ipv6Addr,
}

/// mipcast's sub-types of the Experimental Mobility Option (type 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Experimental {
    TerminalGroup(Ipv6Addr),
    AssignedCoa(Ipv6Addr),
    ForwardingRequest {
        new_coa: Ipv6Addr,
        grace_secs: u32,
    },
    /// Leave the link of `link_address` and avoid it for `avoid_secs` (see [`advice_reason`];
    /// other reason values are kept as read).
    HandoffAdvice {
        reason: u8,
        avoid_secs: u16,
        link_address: Ipv6Addr,
    },
    /// The MMA the terminal comes from (inter-site move).
    PreviousMma(Ipv6Addr),
    /// Marks a BU between MMAs as a Context Request.
    ContextRequest,
}

/// A mobility option other than padding (padding is computed on emit, skipped on parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MobilityOption {
    /// Type 2: refresh interval in units of 4 seconds.
    BindingRefreshAdvice { interval: u16 },
    /// Type 3.
    AlternateCareOf(Ipv6Addr),
    /// Type 22 (RFC 5213 §8.3).
    HomeNetworkPrefix { prefix_len: u8, prefix: Ipv6Addr },
    /// Type 9 (RFC 4285 §5): must be the last option of the message.
    Authentication {
        subtype: u8,
        spi: u32,
        authenticator: Vec<u8>,
    },
    /// Type 10 (RFC 4285 §6): 64-bit NTP-format timestamp.
    ReplayProtection { timestamp: u64 },
    /// Type 18 with one of our sub-types.
    Experimental(Experimental),
    /// Type 18, sub-type 7: a terminal's context (variable length, so not in [`Experimental`]).
    TerminalContext(crate::context::TerminalContext),
    /// Any other type, or type 18 with an unknown sub-type (data excludes type and length).
    Unknown { ty: u8, data: Vec<u8> },
}

/// A whole Mobility Header message: the payload-proto byte is always 59 (no next header) on
/// emit, as RFC 6275 §6.1.1 requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhRepr {
    pub message: Message,
    pub options: Vec<MobilityOption>,
}

/// The "no next header" protocol number, the only payload proto we emit (RFC 6275 §6.1.1).
pub const IPPROTO_NONE: u8 = 59;

/// MH Type values this module decodes.
pub mod mh_type {
    pub const BINDING_REFRESH_REQUEST: u8 = 0;
    pub const BINDING_UPDATE: u8 = 5;
    pub const BINDING_ACK: u8 = 6;
    pub const BINDING_ERROR: u8 = 7;
}

/// Mobility option type values this module decodes.
pub mod option_type {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const BINDING_REFRESH_ADVICE: u8 = 2;
    pub const ALTERNATE_COA: u8 = 3;
    pub const AUTHENTICATION: u8 = 9;
    pub const REPLAY_PROTECTION: u8 = 10;
    pub const EXPERIMENTAL: u8 = 18;
    pub const HOME_NETWORK_PREFIX: u8 = 22;
}

/// The fixed part every Mobility Header starts with: payload proto, header len, type,
/// reserved, checksum.
const FIXED_LEN: usize = 6;
/// The smallest Mobility Header: Header Len 0 means 8 octets.
const MIN_LEN: usize = 8;
/// Header Len is one byte of 8-octet units beyond the first 8.
const MAX_LEN: usize = (u8::MAX as usize + 1) * 8;

/// Length of the type-specific message fields that precede the options, or `None` for an MH
/// type we do not implement.
fn message_fields_len(ty: u8) -> Option<usize> {
    match ty {
        mh_type::BINDING_REFRESH_REQUEST => Some(2),
        mh_type::BINDING_UPDATE | mh_type::BINDING_ACK => Some(6),
        mh_type::BINDING_ERROR => Some(18),
        _ => None,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// A read-only, bounds-checked view of a Mobility Header.
///
/// Bytes after the length given by Header Len are ignored: a raw socket may hand us more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MhPacket<T> {
    /// Wraps `buffer` after checking that it holds the fixed header and the whole length that
    /// Header Len announces (`Truncated` below 8 bytes, `BadLength` when Header Len exceeds it).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let len = buffer.as_ref().len();
        if len < MIN_LEN {
            return Err(Error::Truncated);
        }
        let packet = MhPacket { buffer };
        if packet.total_len() > len {
            return Err(Error::BadLength);
        }
        Ok(packet)
    }

    /// The Payload Proto field; 59 for every conforming sender, but any value is exposed.
    pub fn payload_proto(&self) -> u8 {
        self.byte(0)
    }

    /// The raw Header Len field: 8-octet units excluding the first 8.
    pub fn header_len(&self) -> u8 {
        self.byte(1)
    }

    /// The header's length in bytes, from Header Len.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    pub fn mh_type(&self) -> u8 {
        self.byte(2)
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 4).unwrap_or(0)
    }

    /// Everything after the checksum up to the end of the header: message fields and options.
    pub fn message_data(&self) -> &[u8] {
        self.mh().get(FIXED_LEN..).unwrap_or(&[])
    }

    /// The header, exactly `total_len()` bytes.
    pub fn mh(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(..self.total_len()).unwrap_or(b)
    }

    /// The options, padding included, in wire order. Fails for an MH type this module does not
    /// know (its options cannot be located: `Unsupported("mobility header type")`) or a header
    /// too short for its type's fields (`BadLength`).
    pub fn options(&self) -> Result<RawOptions<'_>> {
        let start = self.options_offset()?;
        Ok(RawOptions {
            mh: self.mh(),
            pos: start,
            done: false,
        })
    }

    /// Offset of the first option: after the type's fixed fields.
    fn options_offset(&self) -> Result<usize> {
        let fields =
            message_fields_len(self.mh_type()).ok_or(Error::Unsupported("mobility header type"))?;
        let start = FIXED_LEN + fields;
        if start > self.total_len() {
            return Err(Error::BadLength);
        }
        Ok(start)
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// One option as found on the wire (Pad1 and PadN included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub ty: u8,
    /// Offset of the option's type byte from the start of the Mobility Header.
    pub offset: usize,
    /// The option data, without type and length bytes (empty for Pad1).
    pub data: &'a [u8],
}

impl RawOption<'_> {
    /// Offset just past the option's last byte, from the start of the Mobility Header.
    pub fn end(&self) -> usize {
        if self.ty == option_type::PAD1 {
            self.offset + 1
        } else {
            self.offset + 2 + self.data.len()
        }
    }
}

/// Iterator over the options of an [`MhPacket`]; yields one `Err(BadLength)` and stops when an
/// option runs past the end of the header.
#[derive(Debug, Clone)]
pub struct RawOptions<'a> {
    mh: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<RawOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.pos;
        let ty = *self.mh.get(offset)?;
        if ty == option_type::PAD1 {
            self.pos += 1;
            return Some(Ok(RawOption {
                ty,
                offset,
                data: &[],
            }));
        }
        let data = self
            .mh
            .get(offset + 1)
            .and_then(|len| self.mh.get(offset + 2..offset + 2 + usize::from(*len)));
        match data {
            Some(data) => {
                self.pos = offset + 2 + data.len();
                Some(Ok(RawOption { ty, offset, data }))
            }
            None => {
                self.done = true;
                Some(Err(Error::BadLength))
            }
        }
    }
}

impl Message {
    /// The MH Type value of this message.
    pub fn mh_type(&self) -> u8 {
        match self {
            Message::BindingRefreshRequest => mh_type::BINDING_REFRESH_REQUEST,
            Message::BindingUpdate(_) => mh_type::BINDING_UPDATE,
            Message::BindingAck(_) => mh_type::BINDING_ACK,
            Message::BindingError(_) => mh_type::BINDING_ERROR,
        }
    }

    /// Parses the type-specific fields; `fields` holds at least `message_fields_len(ty)` bytes.
    fn parse(ty: u8, fields: &[u8]) -> Result<Message> {
        let short = Error::BadLength;
        Ok(match ty {
            mh_type::BINDING_REFRESH_REQUEST => Message::BindingRefreshRequest,
            mh_type::BINDING_UPDATE => Message::BindingUpdate(BindingUpdate {
                sequence: be16(fields, 0).ok_or(short)?,
                flags: be16(fields, 2).ok_or(short)?,
                lifetime: be16(fields, 4).ok_or(short)?,
            }),
            mh_type::BINDING_ACK => Message::BindingAck(BindingAck {
                status: *fields.first().ok_or(short)?,
                flags: *fields.get(1).ok_or(short)?,
                sequence: be16(fields, 2).ok_or(short)?,
                lifetime: be16(fields, 4).ok_or(short)?,
            }),
            mh_type::BINDING_ERROR => Message::BindingError(BindingError {
                status: *fields.first().ok_or(short)?,
                home_address: addr(fields, 2).ok_or(short)?,
            }),
            _ => return Err(Error::Unsupported("mobility header type")),
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Message::BindingRefreshRequest => w.put(&[0, 0]),
            Message::BindingUpdate(bu) => {
                w.put(&bu.sequence.to_be_bytes())?;
                w.put(&bu.flags.to_be_bytes())?;
                w.put(&bu.lifetime.to_be_bytes())
            }
            Message::BindingAck(ba) => {
                w.put(&[ba.status, ba.flags])?;
                w.put(&ba.sequence.to_be_bytes())?;
                w.put(&ba.lifetime.to_be_bytes())
            }
            Message::BindingError(be) => {
                w.put(&[be.status, 0])?;
                w.put(&be.home_address.octets())
            }
        }
    }
}

impl Experimental {
    fn subtype(&self) -> u8 {
        match self {
            Experimental::TerminalGroup(_) => exp_subtype::TERMINAL_GROUP,
            Experimental::AssignedCoa(_) => exp_subtype::ASSIGNED_COA,
            Experimental::ForwardingRequest { .. } => exp_subtype::FORWARDING_REQUEST,
            Experimental::HandoffAdvice { .. } => exp_subtype::HANDOFF_ADVICE,
            Experimental::PreviousMma(_) => exp_subtype::PREVIOUS_MMA,
            Experimental::ContextRequest => exp_subtype::CONTEXT_REQUEST,
        }
    }

    fn is_ours(subtype: u8) -> bool {
        matches!(
            subtype,
            exp_subtype::TERMINAL_GROUP
                | exp_subtype::ASSIGNED_COA
                | exp_subtype::FORWARDING_REQUEST
                | exp_subtype::HANDOFF_ADVICE
                | exp_subtype::PREVIOUS_MMA
                | exp_subtype::CONTEXT_REQUEST
                | exp_subtype::TERMINAL_CONTEXT
        )
    }

    /// Parses option data (sub-type byte first); `None` for a sub-type that is not ours.
    fn parse(data: &[u8]) -> Result<Option<Experimental>> {
        let bad = Error::Malformed("experimental option length");
        let (subtype, fields) = match data.split_first() {
            Some((s, f)) if Self::is_ours(*s) => (*s, f),
            _ => return Ok(None),
        };
        let exp = match (subtype, fields.len()) {
            (exp_subtype::TERMINAL_GROUP, 16) => {
                Experimental::TerminalGroup(addr(fields, 0).ok_or(bad)?)
            }
            (exp_subtype::ASSIGNED_COA, 16) => {
                Experimental::AssignedCoa(addr(fields, 0).ok_or(bad)?)
            }
            (exp_subtype::FORWARDING_REQUEST, 20) => Experimental::ForwardingRequest {
                new_coa: addr(fields, 0).ok_or(bad)?,
                grace_secs: be32(fields, 16).ok_or(bad)?,
            },
            (exp_subtype::HANDOFF_ADVICE, 20) => Experimental::HandoffAdvice {
                reason: *fields.first().ok_or(bad)?,
                avoid_secs: be16(fields, 2).ok_or(bad)?,
                link_address: addr(fields, 4).ok_or(bad)?,
            },
            (exp_subtype::PREVIOUS_MMA, 16) => {
                Experimental::PreviousMma(addr(fields, 0).ok_or(bad)?)
            }
            (exp_subtype::CONTEXT_REQUEST, _) => {
                crate::context::parse_request_option(fields)?;
                Experimental::ContextRequest
            }
            _ => return Err(bad),
        };
        Ok(Some(exp))
    }
}

impl MobilityOption {
    /// Decodes one option; `None` for padding. A known type with the wrong length is
    /// `Malformed`.
    fn parse(raw: &RawOption<'_>) -> Result<Option<MobilityOption>> {
        let data = raw.data;
        let len_is = |n: usize, what: &'static str| {
            if data.len() == n {
                Ok(())
            } else {
                Err(Error::Malformed(what))
            }
        };
        let opt = match raw.ty {
            option_type::PAD1 | option_type::PADN => return Ok(None),
            option_type::BINDING_REFRESH_ADVICE => {
                len_is(2, "binding refresh advice length")?;
                MobilityOption::BindingRefreshAdvice {
                    interval: be16(data, 0).ok_or(Error::Truncated)?,
                }
            }
            option_type::ALTERNATE_COA => {
                len_is(16, "alternate care-of address length")?;
                MobilityOption::AlternateCareOf(addr(data, 0).ok_or(Error::Truncated)?)
            }
            option_type::HOME_NETWORK_PREFIX => {
                len_is(18, "home network prefix length")?;
                let prefix_len = *data.get(1).ok_or(Error::Truncated)?;
                if prefix_len > 128 {
                    return Err(Error::Malformed("home network prefix length"));
                }
                MobilityOption::HomeNetworkPrefix {
                    prefix_len,
                    prefix: addr(data, 2).ok_or(Error::Truncated)?,
                }
            }
            option_type::REPLAY_PROTECTION => {
                len_is(8, "replay protection length")?;
                MobilityOption::ReplayProtection {
                    timestamp: be64(data, 0).ok_or(Error::Truncated)?,
                }
            }
            option_type::AUTHENTICATION => {
                let (subtype, rest) = data
                    .split_first()
                    .ok_or(Error::Malformed("authentication option length"))?;
                let spi = be32(rest, 0).ok_or(Error::Malformed("authentication option length"))?;
                MobilityOption::Authentication {
                    subtype: *subtype,
                    spi,
                    authenticator: rest.get(4..).unwrap_or(&[]).to_vec(),
                }
            }
            option_type::EXPERIMENTAL if data.first() == Some(&exp_subtype::TERMINAL_CONTEXT) => {
                MobilityOption::TerminalContext(crate::context::TerminalContext::parse(data)?)
            }
            option_type::EXPERIMENTAL => match Experimental::parse(data)? {
                Some(exp) => MobilityOption::Experimental(exp),
                None => MobilityOption::Unknown {
                    ty: raw.ty,
                    data: data.to_vec(),
                },
            },
            ty => MobilityOption::Unknown {
                ty,
                data: data.to_vec(),
            },
        };
        Ok(Some(opt))
    }

    fn option_type(&self) -> u8 {
        match self {
            MobilityOption::BindingRefreshAdvice { .. } => option_type::BINDING_REFRESH_ADVICE,
            MobilityOption::AlternateCareOf(_) => option_type::ALTERNATE_COA,
            MobilityOption::HomeNetworkPrefix { .. } => option_type::HOME_NETWORK_PREFIX,
            MobilityOption::Authentication { .. } => option_type::AUTHENTICATION,
            MobilityOption::ReplayProtection { .. } => option_type::REPLAY_PROTECTION,
            MobilityOption::Experimental(_) | MobilityOption::TerminalContext(_) => {
                option_type::EXPERIMENTAL
            }
            MobilityOption::Unknown { ty, .. } => *ty,
        }
    }

    /// Length of the option data (the Option Length field's value).
    fn data_len(&self) -> usize {
        match self {
            MobilityOption::BindingRefreshAdvice { .. } => 2,
            MobilityOption::AlternateCareOf(_) => 16,
            MobilityOption::HomeNetworkPrefix { .. } => 18,
            MobilityOption::Authentication { authenticator, .. } => 5 + authenticator.len(),
            MobilityOption::ReplayProtection { .. } => 8,
            MobilityOption::Experimental(
                Experimental::ForwardingRequest { .. } | Experimental::HandoffAdvice { .. },
            ) => 21,
            MobilityOption::Experimental(Experimental::ContextRequest) => 2,
            MobilityOption::Experimental(_) => 17,
            MobilityOption::TerminalContext(c) => c.data_len(),
            MobilityOption::Unknown { data, .. } => data.len(),
        }
    }

    /// Padding to put before this option when it would start at `pos` (offset in the MH).
    fn padding_at(&self, pos: usize) -> usize {
        // Alignment xn+y of the option's type byte (RFC 6275 §6.2, RFC 5213 §8.3, RFC 4285 §6).
        let (x, y) = match self {
            MobilityOption::BindingRefreshAdvice { .. } => (2, 0),
            MobilityOption::AlternateCareOf(_) => (8, 6),
            MobilityOption::HomeNetworkPrefix { .. } => (8, 4),
            MobilityOption::ReplayProtection { .. } => (8, 2),
            // End-aligned instead, see crate::auth: the option is last and ends the header.
            MobilityOption::Authentication { .. } => {
                return (8 - (pos + 2 + self.data_len()) % 8) % 8
            }
            MobilityOption::Experimental(_)
            | MobilityOption::TerminalContext(_)
            | MobilityOption::Unknown { .. } => return 0,
        };
        (x + y - pos % x) % x
    }

    /// Rejects what we could emit but would not read back as the same value.
    fn check_encodable(&self) -> Result<()> {
        match self {
            MobilityOption::HomeNetworkPrefix { prefix_len, .. } if *prefix_len > 128 => {
                Err(Error::Malformed("home network prefix length"))
            }
            MobilityOption::Authentication { authenticator, .. }
                if authenticator.len() > usize::from(u8::MAX) - 5 =>
            {
                Err(Error::Malformed("authentication option length"))
            }
            MobilityOption::TerminalContext(c) => c.check_encodable(),
            MobilityOption::Unknown { data, .. } if data.len() > usize::from(u8::MAX) => {
                Err(Error::Malformed("option length"))
            }
            MobilityOption::Unknown { ty, data } => {
                let decoded = match *ty {
                    option_type::EXPERIMENTAL => {
                        data.first().is_some_and(|s| Experimental::is_ours(*s))
                    }
                    option_type::PAD1
                    | option_type::PADN
                    | option_type::BINDING_REFRESH_ADVICE
                    | option_type::ALTERNATE_COA
                    | option_type::AUTHENTICATION
                    | option_type::REPLAY_PROTECTION
                    | option_type::HOME_NETWORK_PREFIX => true,
                    _ => false,
                };
                if decoded {
                    Err(Error::Malformed("unknown option with a decoded type"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let len = u8::try_from(self.data_len()).map_err(|_| Error::Malformed("option length"))?;
        w.put(&[self.option_type(), len])?;
        match self {
            MobilityOption::BindingRefreshAdvice { interval } => w.put(&interval.to_be_bytes()),
            MobilityOption::AlternateCareOf(a) => w.put(&a.octets()),
            MobilityOption::HomeNetworkPrefix { prefix_len, prefix } => {
                w.put(&[0, *prefix_len])?;
                w.put(&prefix.octets())
            }
            MobilityOption::Authentication {
                subtype,
                spi,
                authenticator,
            } => {
                w.put(&[*subtype])?;
                w.put(&spi.to_be_bytes())?;
                w.put(authenticator)
            }
            MobilityOption::ReplayProtection { timestamp } => w.put(&timestamp.to_be_bytes()),
            MobilityOption::Experimental(exp) => {
                w.put(&[exp.subtype()])?;
                match exp {
                    Experimental::TerminalGroup(a)
                    | Experimental::AssignedCoa(a)
                    | Experimental::PreviousMma(a) => w.put(&a.octets()),
                    Experimental::ContextRequest => w.put(&[0]),
                    Experimental::ForwardingRequest {
                        new_coa,
                        grace_secs,
                    } => {
                        w.put(&new_coa.octets())?;
                        w.put(&grace_secs.to_be_bytes())
                    }
                    Experimental::HandoffAdvice {
                        reason,
                        avoid_secs,
                        link_address,
                    } => {
                        w.put(&[*reason, 0])?;
                        w.put(&avoid_secs.to_be_bytes())?;
                        w.put(&link_address.octets())
                    }
                }
            }
            MobilityOption::TerminalContext(c) => w.put(&c.to_bytes()?),
            MobilityOption::Unknown { data, .. } => w.put(data),
        }
    }
}

/// Bounds-checked sequential writer for `emit`.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos + bytes.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Pad1 for one byte, PadN with zero data otherwise (RFC 6275 §6.2.2, §6.2.3).
    fn pad(&mut self, n: usize) -> Result<()> {
        match n {
            0 => Ok(()),
            1 => self.put(&[option_type::PAD1]),
            _ => {
                let data_len =
                    u8::try_from(n - 2).map_err(|_| Error::Malformed("padding length"))?;
                self.put(&[option_type::PADN, data_len])?;
                for _ in 0..data_len {
                    self.put(&[0])?;
                }
                Ok(())
            }
        }
    }
}

impl MhRepr {
    /// Parses a whole Mobility Header (checksum not verified: see [`verify_checksum`]).
    ///
    /// An MH type other than BRR, BU, BAck and BE is `Error::Unsupported("mobility header
    /// type")`: RFC 6275 §9.2 asks the receiver to answer it with a Binding Error, status 2
    /// ([`be_status::UNRECOGNIZED_MH_TYPE`]), which is the caller's job.
    pub fn parse(buf: &[u8]) -> Result<MhRepr> {
        let packet = MhPacket::new_checked(buf)?;
        let start = packet.options_offset()?;
        let fields = packet.mh().get(FIXED_LEN..start).ok_or(Error::BadLength)?;
        let message = Message::parse(packet.mh_type(), fields)?;
        let mut options = Vec::new();
        for raw in packet.options()? {
            if let Some(opt) = MobilityOption::parse(&raw?)? {
                options.push(opt);
            }
        }
        Ok(MhRepr { message, options })
    }

    /// The number of bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        layout_len(&self.message, self.options.iter())
    }

    /// Writes the header into `buf` with a zero checksum (the kernel fills it on an
    /// IPV6_CHECKSUM socket; otherwise call [`fill_checksum`]) and returns its length.
    ///
    /// Fails with `Malformed` when an option cannot be represented or would not parse back as
    /// itself (an Authentication option that is not last, an `Unknown` option whose type this
    /// module decodes, a prefix length above 128, data above 255 bytes, a header above 2048
    /// bytes), and with `BufferTooSmall` when `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        emit_parts(&self.message, &self.options, None, buf)
    }

    /// The home address: the prefix of a Home Network Prefix option of length 128.
    pub fn home_address(&self) -> Option<Ipv6Addr> {
        self.options.iter().find_map(|o| match o {
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix,
            } => Some(*prefix),
            _ => None,
        })
    }

    /// The address of the first Alternate Care-of Address option.
    pub fn alternate_care_of(&self) -> Option<Ipv6Addr> {
        self.options.iter().find_map(|o| match o {
            MobilityOption::AlternateCareOf(a) => Some(*a),
            _ => None,
        })
    }

    /// The timestamp of the first Replay Protection option.
    pub fn replay_timestamp(&self) -> Option<u64> {
        self.options.iter().find_map(|o| match o {
            MobilityOption::ReplayProtection { timestamp } => Some(*timestamp),
            _ => None,
        })
    }

    /// mipcast's Experimental options, in order.
    pub fn experimental(&self) -> impl Iterator<Item = &Experimental> {
        self.options.iter().filter_map(|o| match o {
            MobilityOption::Experimental(e) => Some(e),
            _ => None,
        })
    }
}

/// Length of a header with `message` and `options`, padding included.
fn layout_len<'a>(message: &Message, options: impl Iterator<Item = &'a MobilityOption>) -> usize {
    let fields = message_fields_len(message.mh_type()).unwrap_or(0);
    let end = options.fold(FIXED_LEN + fields, |pos, opt| {
        pos + opt.padding_at(pos) + 2 + opt.data_len()
    });
    end.div_ceil(8) * 8
}

/// Emits `message` with `options` followed by `last` (how [`crate::auth`] appends its option
/// without cloning the representation).
pub(crate) fn emit_parts(
    message: &Message,
    options: &[MobilityOption],
    last: Option<&MobilityOption>,
    buf: &mut [u8],
) -> Result<usize> {
    let all = || options.iter().chain(last);
    let count = all().count();
    for (i, opt) in all().enumerate() {
        opt.check_encodable()?;
        if matches!(opt, MobilityOption::Authentication { .. }) && i + 1 != count {
            return Err(Error::Malformed("authentication option not last"));
        }
    }
    let total = layout_len(message, all());
    if total > MAX_LEN {
        return Err(Error::Malformed("mobility header length"));
    }
    let header_len =
        u8::try_from(total / 8 - 1).map_err(|_| Error::Malformed("mobility header length"))?;
    let region = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let mut w = Writer {
        buf: region,
        pos: 0,
    };
    w.put(&[IPPROTO_NONE, header_len, message.mh_type(), 0, 0, 0])?;
    message.emit(&mut w)?;
    for opt in all() {
        w.pad(opt.padding_at(w.pos))?;
        opt.emit(&mut w)?;
    }
    w.pad(total - w.pos)?;
    Ok(total)
}

/// Writes the MH checksum (IPv6 pseudo-header, next header 135, over the `Header Len` bytes).
pub fn fill_checksum(mh: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    let total = MhPacket::new_checked(&*mh)?.total_len();
    let region = mh.get_mut(..total).ok_or(Error::BadLength)?;
    checksum::fill(region, CHECKSUM_OFFSET, src, dst, IPPROTO_MH)
}

/// Checks the MH checksum; `Err(BadChecksum)` when it does not verify.
pub fn verify_checksum(mh: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    let packet = MhPacket::new_checked(mh)?;
    checksum::verify(packet.mh(), CHECKSUM_OFFSET, src, dst, IPPROTO_MH)
}
