//! Router Solicitation and Router Advertisement (RFC 4861 §4.1, §4.2) with the options mipcast
//! uses, including the RFC 5380 MAP option (§4) through which access routers announce the
//! site's multicast mobility anchor (MMA); Neighbor Solicitation and Advertisement (§4.3,
//! §4.4), with which the home agent defends registered home addresses (RFC 6275 §10.4.1).
//!
//! Only the ICMPv6 message is handled here (the bytes after the IPv6 header). The hop limit 255
//! check of RFC 4861 §6.1 belongs to the socket layer, which sees the IPv6 header.
use std::net::Ipv6Addr;

use crate::cursor::{be_u16, be_u32, Reader, Writer};
use crate::{checksum, Error, Result};

/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// Offset of the ICMPv6 checksum, for the IPV6_CHECKSUM socket option.
pub const CHECKSUM_OFFSET: usize = 2;
/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// ICMPv6 type of a Neighbor Solicitation.
pub const NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;

/// ND option types decoded by [`NdOption`].
pub mod option_type {
    pub const SOURCE_LINK_LAYER_ADDRESS: u8 = 1;
    /// Neighbor Advertisements only (RFC 4861 §4.6.1); carried by [`super::NeighborAdvert`].
    pub const TARGET_LINK_LAYER_ADDRESS: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const MTU: u8 = 5;
    /// RFC 5380 §4 (the IANA registry still names it after RFC 4140).
    pub const MAP: u8 = 23;
}

const RS_HEADER_LEN: usize = 8;
const RA_HEADER_LEN: usize = 16;
const RA_FLAG_MANAGED: u8 = 0x80;
const RA_FLAG_OTHER: u8 = 0x40;
const PI_FLAG_ON_LINK: u8 = 0x80;
const PI_FLAG_AUTONOMOUS: u8 = 0x40;
const MAP_FLAG_R: u8 = 0x80;

/// Writes the ICMPv6 checksum into `buf`, which holds exactly one ICMPv6 message (as returned
/// by an `emit`) addressed from `src` to `dst`.
pub fn fill_checksum(buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    checksum::fill(buf, CHECKSUM_OFFSET, src, dst, IPPROTO_ICMPV6)
}

/// Checks the ICMPv6 checksum of the whole message in `buf`.
pub fn verify_checksum(buf: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    checksum::verify(buf, CHECKSUM_OFFSET, src, dst, IPPROTO_ICMPV6)
}

/// A read-only view of a Router Solicitation or Router Advertisement.
#[derive(Debug, Clone)]
pub struct NdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdPacket<T> {
    /// Wraps `buffer` after checking the type, the code and the fixed header length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        let header_len = match buf.first() {
            None => return Err(Error::Truncated),
            Some(&ROUTER_SOLICITATION) => RS_HEADER_LEN,
            Some(&ROUTER_ADVERTISEMENT) => RA_HEADER_LEN,
            Some(_) => return Err(Error::Unsupported("icmpv6 type for nd")),
        };
        if buf.len() < header_len {
            return Err(Error::Truncated);
        }
        // RFC 4861 §6.1.1/§6.1.2: a non-zero code means the message must be discarded.
        if buf.get(1) != Some(&0) {
            return Err(Error::Malformed("nd code"));
        }
        Ok(NdPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }

    fn is_ra(&self) -> bool {
        self.msg_type() == ROUTER_ADVERTISEMENT
    }

    fn ra_byte(&self, offset: usize) -> u8 {
        if self.is_ra() {
            self.buffer.as_ref().get(offset).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Router Advertisement only (0 for a solicitation).
    pub fn cur_hop_limit(&self) -> u8 {
        self.ra_byte(4)
    }

    /// Router Advertisement only: the M flag.
    pub fn managed(&self) -> bool {
        self.ra_byte(5) & RA_FLAG_MANAGED != 0
    }

    /// Router Advertisement only: the O flag.
    pub fn other(&self) -> bool {
        self.ra_byte(5) & RA_FLAG_OTHER != 0
    }

    /// Router Advertisement only, seconds.
    pub fn router_lifetime(&self) -> u16 {
        if self.is_ra() {
            be_u16(self.buffer.as_ref(), 6)
        } else {
            0
        }
    }

    /// Router Advertisement only, milliseconds.
    pub fn reachable_time(&self) -> u32 {
        if self.is_ra() {
            be_u32(self.buffer.as_ref(), 8)
        } else {
            0
        }
    }

    /// Router Advertisement only, milliseconds.
    pub fn retrans_timer(&self) -> u32 {
        if self.is_ra() {
            be_u32(self.buffer.as_ref(), 12)
        } else {
            0
        }
    }

    /// The options after the fixed header, undecoded.
    pub fn options(&self) -> NdOptions<'_> {
        let header_len = if self.is_ra() {
            RA_HEADER_LEN
        } else {
            RS_HEADER_LEN
        };
        NdOptions {
            rest: self.buffer.as_ref().get(header_len..).unwrap_or(&[]),
        }
    }
}

/// One ND option as it sits in the buffer: its type and the bytes after the type and length
/// octets (`length * 8 - 2` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawNdOption<'a> {
    pub ty: u8,
    pub data: &'a [u8],
}

/// Iterator over the options of an ND message. Yields one error and stops on a malformed
/// option length.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<RawNdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = split_option(self.rest);
        match item {
            Ok((opt, rest)) => {
                self.rest = rest;
                Some(Ok(opt))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn split_option(buf: &[u8]) -> Result<(RawNdOption<'_>, &[u8])> {
    let [ty, units, ..] = *buf else {
        return Err(Error::Truncated);
    };
    // RFC 4861 §4.6: a zero length would loop forever, so the whole packet is discarded.
    if units == 0 {
        return Err(Error::BadLength);
    }
    let (opt, rest) = buf
        .split_at_checked(usize::from(units) * 8)
        .ok_or(Error::Truncated)?;
    Ok((
        RawNdOption {
            ty,
            data: opt.get(2..).unwrap_or(&[]),
        },
        rest,
    ))
}

/// Prefix Information option body (RFC 4861 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixInformation {
    pub prefix_len: u8,
    /// The L flag.
    pub on_link: bool,
    /// The A flag.
    pub autonomous: bool,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// MAP option body (RFC 5380 §4): announces a mobility anchor point, for mipcast the MMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapOption {
    /// Dist, 4 bits: 1 when the MAP is on the receiver's link.
    pub distance: u8,
    /// Pref, 4 bits: 15 is most preferred, 0 means "do not use this MAP".
    pub preference: u8,
    /// The R flag: the mobile node must form its regional CoA from the MAP's prefix.
    pub rcoa: bool,
    /// Seconds.
    pub valid_lifetime: u32,
    /// Global address of the MAP (the MMA address mobile nodes register with).
    pub address: Ipv6Addr,
}

/// A decoded ND option. Known types with a length other than their fixed one are rejected
/// rather than kept, so [`NdOption::Unknown`] never carries a type listed in [`option_type`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NdOption {
    /// Type 1 on an Ethernet-like link: a 6-byte MAC.
    SourceLinkLayerAddress([u8; 6]),
    PrefixInformation(PrefixInformation),
    Mtu(u32),
    Map(MapOption),
    /// Any other option; `data` is everything after the type and length octets, so its length
    /// plus 2 is a multiple of 8.
    Unknown {
        ty: u8,
        data: Vec<u8>,
    },
}

impl NdOption {
    /// Decodes one option from its raw form.
    pub fn parse(raw: RawNdOption<'_>) -> Result<Self> {
        let mut r = Reader::new(raw.data);
        let opt = match raw.ty {
            option_type::SOURCE_LINK_LAYER_ADDRESS => {
                NdOption::SourceLinkLayerAddress(exact::<6>(raw.data)?)
            }
            option_type::PREFIX_INFORMATION => {
                if raw.data.len() != 30 {
                    return Err(Error::BadLength);
                }
                let prefix_len = r.u8()?;
                if prefix_len > 128 {
                    return Err(Error::Malformed("prefix information prefix length"));
                }
                let flags = r.u8()?;
                let valid_lifetime = r.u32()?;
                let preferred_lifetime = r.u32()?;
                r.take(4)?;
                NdOption::PrefixInformation(PrefixInformation {
                    prefix_len,
                    on_link: flags & PI_FLAG_ON_LINK != 0,
                    autonomous: flags & PI_FLAG_AUTONOMOUS != 0,
                    valid_lifetime,
                    preferred_lifetime,
                    prefix: r.addr()?,
                })
            }
            option_type::MTU => {
                if raw.data.len() != 6 {
                    return Err(Error::BadLength);
                }
                r.take(2)?;
                NdOption::Mtu(r.u32()?)
            }
            option_type::MAP => {
                if raw.data.len() != 22 {
                    return Err(Error::BadLength);
                }
                let dist_pref = r.u8()?;
                let flags = r.u8()?;
                NdOption::Map(MapOption {
                    distance: dist_pref >> 4,
                    preference: dist_pref & 0x0f,
                    rcoa: flags & MAP_FLAG_R != 0,
                    valid_lifetime: r.u32()?,
                    address: r.addr()?,
                })
            }
            ty => NdOption::Unknown {
                ty,
                data: raw.data.to_vec(),
            },
        };
        Ok(opt)
    }

    /// Bytes this option takes on the wire, type and length included.
    pub fn buffer_len(&self) -> usize {
        match self {
            NdOption::SourceLinkLayerAddress(_) | NdOption::Mtu(_) => 8,
            NdOption::PrefixInformation(_) => 32,
            NdOption::Map(_) => 24,
            NdOption::Unknown { data, .. } => data.len() + 2,
        }
    }

    /// Writes the option at the start of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        // Only an Unknown option can have a bad length; `units * 8 == len` rejects the rest.
        let units = u8::try_from(len / 8).map_err(|_| Error::BadLength)?;
        if usize::from(units) * 8 != len {
            return Err(Error::BadLength);
        }
        let mut w = Writer::new(buf);
        match self {
            NdOption::SourceLinkLayerAddress(mac) => {
                w.u8(option_type::SOURCE_LINK_LAYER_ADDRESS)?;
                w.u8(units)?;
                w.bytes(mac)?;
            }
            NdOption::PrefixInformation(pi) => {
                if pi.prefix_len > 128 {
                    return Err(Error::Malformed("prefix information prefix length"));
                }
                w.u8(option_type::PREFIX_INFORMATION)?;
                w.u8(units)?;
                w.u8(pi.prefix_len)?;
                let mut flags = 0;
                if pi.on_link {
                    flags |= PI_FLAG_ON_LINK;
                }
                if pi.autonomous {
                    flags |= PI_FLAG_AUTONOMOUS;
                }
                w.u8(flags)?;
                w.u32(pi.valid_lifetime)?;
                w.u32(pi.preferred_lifetime)?;
                w.zeros(4)?;
                w.addr(&pi.prefix)?;
            }
            NdOption::Mtu(mtu) => {
                w.u8(option_type::MTU)?;
                w.u8(units)?;
                w.zeros(2)?;
                w.u32(*mtu)?;
            }
            NdOption::Map(map) => {
                if map.distance > 0x0f || map.preference > 0x0f {
                    return Err(Error::Malformed("map option distance/preference"));
                }
                w.u8(option_type::MAP)?;
                w.u8(units)?;
                w.u8(map.distance << 4 | map.preference)?;
                w.u8(if map.rcoa { MAP_FLAG_R } else { 0 })?;
                w.u32(map.valid_lifetime)?;
                w.addr(&map.address)?;
            }
            NdOption::Unknown { ty, data } => {
                w.u8(*ty)?;
                w.u8(units)?;
                w.bytes(data)?;
            }
        }
        Ok(w.pos())
    }
}

fn exact<const N: usize>(data: &[u8]) -> Result<[u8; N]> {
    data.try_into().map_err(|_| Error::BadLength)
}

/// Router Advertisement fields (RFC 4861 §4.2). Flags other than M and O are ignored on parse
/// and sent as zero (so the router preference of RFC 4191 is "medium").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouterAdvert {
    pub cur_hop_limit: u8,
    pub managed: bool,
    pub other: bool,
    /// Seconds; 0 = not a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0 = unspecified.
    pub reachable_time: u32,
    /// Milliseconds; 0 = unspecified.
    pub retrans_timer: u32,
    pub options: Vec<NdOption>,
}

impl RouterAdvert {
    /// The first MAP option, i.e. the MMA this router announces.
    pub fn map(&self) -> Option<&MapOption> {
        self.options.iter().find_map(|o| match o {
            NdOption::Map(m) => Some(m),
            _ => None,
        })
    }
}

/// A decoded Router Solicitation or Router Advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NdRepr {
    RouterSolicit { options: Vec<NdOption> },
    RouterAdvert(RouterAdvert),
}

impl NdRepr {
    /// Decodes an ICMPv6 message. The checksum is not checked (see [`verify_checksum`]).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let packet = NdPacket::new_checked(buf)?;
        let options = packet
            .options()
            .map(|raw| raw.and_then(NdOption::parse))
            .collect::<Result<Vec<_>>>()?;
        Ok(if packet.is_ra() {
            NdRepr::RouterAdvert(RouterAdvert {
                cur_hop_limit: packet.cur_hop_limit(),
                managed: packet.managed(),
                other: packet.other(),
                router_lifetime: packet.router_lifetime(),
                reachable_time: packet.reachable_time(),
                retrans_timer: packet.retrans_timer(),
                options,
            })
        } else {
            NdRepr::RouterSolicit { options }
        })
    }

    fn options(&self) -> &[NdOption] {
        match self {
            NdRepr::RouterSolicit { options } => options,
            NdRepr::RouterAdvert(ra) => &ra.options,
        }
    }

    pub fn buffer_len(&self) -> usize {
        let header = match self {
            NdRepr::RouterSolicit { .. } => RS_HEADER_LEN,
            NdRepr::RouterAdvert(_) => RA_HEADER_LEN,
        };
        header
            + self
                .options()
                .iter()
                .map(NdOption::buffer_len)
                .sum::<usize>()
    }

    /// Writes the message with a zero checksum (see [`fill_checksum`]) and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        match self {
            NdRepr::RouterSolicit { .. } => {
                w.u8(ROUTER_SOLICITATION)?;
                w.zeros(7)?;
            }
            NdRepr::RouterAdvert(ra) => {
                w.u8(ROUTER_ADVERTISEMENT)?;
                w.zeros(3)?;
                w.u8(ra.cur_hop_limit)?;
                let mut flags = 0;
                if ra.managed {
                    flags |= RA_FLAG_MANAGED;
                }
                if ra.other {
                    flags |= RA_FLAG_OTHER;
                }
                w.u8(flags)?;
                w.u16(ra.router_lifetime)?;
                w.u32(ra.reachable_time)?;
                w.u32(ra.retrans_timer)?;
            }
        }
        for opt in self.options() {
            let n = opt.emit(w.remaining())?;
            w.advance(n);
        }
        Ok(w.pos())
    }
}

/// Fixed part of a Neighbor Solicitation or Advertisement: type, code, checksum, 4 bytes of
/// flags/reserved, the target address.
const NS_NA_HEADER_LEN: usize = 24;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// A Neighbor Solicitation (RFC 4861 §4.3). Options other than the source link-layer address
/// are skipped (§4.3: "receivers MUST silently ignore" unknown options); a link-layer address
/// that is not 6 bytes long (not Ethernet) is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborSolicit {
    pub target: Ipv6Addr,
    pub source_lladdr: Option<[u8; 6]>,
}

impl NeighborSolicit {
    /// Decodes an ICMPv6 message with the checks of RFC 4861 §7.1.1 that need only the
    /// message: code 0, at least 24 bytes, a unicast target, well-formed options. The hop
    /// limit, checksum and the unspecified-source rules need the IPv6 header: the caller's.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let target = parse_ns_na_header(buf, NEIGHBOR_SOLICITATION)?;
        let mut source_lladdr = None;
        for raw in (NdOptions {
            rest: buf.get(NS_NA_HEADER_LEN..).unwrap_or(&[]),
        }) {
            let raw = raw?;
            if raw.ty == option_type::SOURCE_LINK_LAYER_ADDRESS {
                source_lladdr = raw.data.try_into().ok();
            }
        }
        Ok(NeighborSolicit {
            target,
            source_lladdr,
        })
    }

    pub fn buffer_len(&self) -> usize {
        NS_NA_HEADER_LEN + if self.source_lladdr.is_some() { 8 } else { 0 }
    }

    /// Writes the message with a zero checksum (see [`fill_checksum`]) and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u8(NEIGHBOR_SOLICITATION)?;
        w.zeros(7)?;
        w.addr(&self.target)?;
        if let Some(mac) = self.source_lladdr {
            w.u8(option_type::SOURCE_LINK_LAYER_ADDRESS)?;
            w.u8(1)?;
            w.bytes(&mac)?;
        }
        Ok(w.pos())
    }
}

/// A Neighbor Advertisement (RFC 4861 §4.4) with its target link-layer address option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighborAdvert {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation (never set in an advertisement to all-nodes).
    pub solicited: bool,
    /// O: the receiver replaces a cached link-layer address with this one.
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub target_lladdr: Option<[u8; 6]>,
}

impl NeighborAdvert {
    /// Decodes an ICMPv6 message (RFC 4861 §7.1.2 checks that need only the message).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let target = parse_ns_na_header(buf, NEIGHBOR_ADVERTISEMENT)?;
        let flags = buf.get(4).copied().unwrap_or(0);
        let mut target_lladdr = None;
        for raw in (NdOptions {
            rest: buf.get(NS_NA_HEADER_LEN..).unwrap_or(&[]),
        }) {
            let raw = raw?;
            if raw.ty == option_type::TARGET_LINK_LAYER_ADDRESS {
                target_lladdr = raw.data.try_into().ok();
            }
        }
        Ok(NeighborAdvert {
            router: flags & NA_FLAG_ROUTER != 0,
            solicited: flags & NA_FLAG_SOLICITED != 0,
            override_flag: flags & NA_FLAG_OVERRIDE != 0,
            target,
            target_lladdr,
        })
    }

    pub fn buffer_len(&self) -> usize {
        NS_NA_HEADER_LEN + if self.target_lladdr.is_some() { 8 } else { 0 }
    }

    /// Writes the message with a zero checksum (see [`fill_checksum`]) and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u8(NEIGHBOR_ADVERTISEMENT)?;
        w.zeros(3)?;
        let mut flags = 0;
        if self.router {
            flags |= NA_FLAG_ROUTER;
        }
        if self.solicited {
            flags |= NA_FLAG_SOLICITED;
        }
        if self.override_flag {
            flags |= NA_FLAG_OVERRIDE;
        }
        w.u8(flags)?;
        w.zeros(3)?;
        w.addr(&self.target)?;
        if let Some(mac) = self.target_lladdr {
            w.u8(option_type::TARGET_LINK_LAYER_ADDRESS)?;
            w.u8(1)?;
            w.bytes(&mac)?;
        }
        Ok(w.pos())
    }
}

/// Type, code and length checks shared by NS and NA; returns the target address.
fn parse_ns_na_header(buf: &[u8], ty: u8) -> Result<Ipv6Addr> {
    match buf.first() {
        None => return Err(Error::Truncated),
        Some(&t) if t == ty => {}
        Some(_) => return Err(Error::Unsupported("icmpv6 type for nd")),
    }
    if buf.len() < NS_NA_HEADER_LEN {
        return Err(Error::Truncated);
    }
    if buf.get(1) != Some(&0) {
        return Err(Error::Malformed("nd code"));
    }
    let target = crate::cursor::addr_at(buf, 8);
    if target.is_multicast() {
        return Err(Error::Malformed("multicast nd target"));
    }
    Ok(target)
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX with
/// the low 24 bits of `addr`.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(a),
        u16::from_be_bytes([b, c]),
    )
}
