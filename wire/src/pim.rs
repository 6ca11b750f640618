//! PIMv2 over IPv6 (RFC 7761 §4.9): the Hello, Join/Prune and Assert messages a PIM-SSM
//! router needs, with the encoded address formats of §4.9.1 for the IPv6 family only.
//!
//! The checksum covers the whole PIM message plus the IPv6 pseudo-header with next header
//! 103 (§4.9); see [`fill_checksum`] and [`verify_checksum`].
//!
//! Hello parsing is tolerant (§4.9.2: unknown options are ignored): an option that cannot be
//! decoded, or an Address List entry of another address family, is skipped and reported by
//! [`parse_hello`] instead of failing the whole Hello, so one odd option from a standard
//! router never prevents an adjacency.
use std::net::Ipv6Addr;

use crate::cursor::{be_u16, Reader, Writer};
use crate::{checksum, Error, Result};

/// IP protocol number of PIM.
pub const IPPROTO_PIM: u8 = 103;
/// Offset of the PIM checksum, for the IPV6_CHECKSUM socket option.
pub const CHECKSUM_OFFSET: usize = 2;
/// ALL-PIM-ROUTERS (RFC 7761 §4.9): destination of Hello, Join/Prune and Assert.
pub const ALL_PIM_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xd);
/// The PIM version this module speaks.
pub const VERSION: u8 = 2;

/// PIM message types handled here.
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const JOIN_PRUNE: u8 = 3;
    pub const ASSERT: u8 = 5;
}

/// Hello option types decoded by [`HelloOption`].
pub mod hello_option {
    pub const HOLDTIME: u16 = 1;
    pub const LAN_PRUNE_DELAY: u16 = 2;
    pub const DR_PRIORITY: u16 = 19;
    pub const GENERATION_ID: u16 = 20;
    pub const ADDRESS_LIST: u16 = 24;
}

/// IANA address family number of IPv6, used in every encoded address.
pub const ADDR_FAMILY_IPV6: u8 = 2;
/// IANA address family number of IPv4: a dual-stack router may list its IPv4 addresses in
/// the Address List option of its IPv6 Hellos.
pub const ADDR_FAMILY_IPV4: u8 = 1;
/// The only encoding type defined: native.
const ENCODING_NATIVE: u8 = 0;
const HEADER_LEN: usize = 4;
const GROUP_FLAG_BIDIR: u8 = 0x80;
const GROUP_FLAG_ADMIN_SCOPE: u8 = 0x01;
const SOURCE_FLAG_SPARSE: u8 = 0x04;
const SOURCE_FLAG_WILDCARD: u8 = 0x02;
const SOURCE_FLAG_RPT: u8 = 0x01;
const ASSERT_FLAG_RPT: u32 = 0x8000_0000;

/// Writes the PIM checksum into `buf`, which holds exactly one PIM message.
pub fn fill_checksum(buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    checksum::fill(buf, CHECKSUM_OFFSET, src, dst, IPPROTO_PIM)
}

/// Checks the checksum of the whole PIM message in `buf`.
pub fn verify_checksum(buf: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
    checksum::verify(buf, CHECKSUM_OFFSET, src, dst, IPPROTO_PIM)
}

fn check_family(r: &mut Reader<'_>) -> Result<()> {
    if r.u8()? != ADDR_FAMILY_IPV6 {
        return Err(Error::Unsupported("pim address family"));
    }
    if r.u8()? != ENCODING_NATIVE {
        return Err(Error::Unsupported("pim address encoding"));
    }
    Ok(())
}

fn check_mask_len(mask_len: u8) -> Result<u8> {
    if mask_len > 128 {
        Err(Error::Malformed("pim mask length"))
    } else {
        Ok(mask_len)
    }
}

/// The layout Encoded-Group and Encoded-Source share: family, encoding, a flags byte, the
/// mask length and the address; returns (flags, mask length, address).
fn read_masked(r: &mut Reader<'_>) -> Result<(u8, u8, Ipv6Addr)> {
    check_family(r)?;
    let flags = r.u8()?;
    let mask_len = check_mask_len(r.u8()?)?;
    Ok((flags, mask_len, r.addr()?))
}

fn write_masked(w: &mut Writer<'_>, flags: u8, mask_len: u8, addr: &Ipv6Addr) -> Result<()> {
    w.u8(ADDR_FAMILY_IPV6)?;
    w.u8(ENCODING_NATIVE)?;
    w.u8(flags)?;
    w.u8(check_mask_len(mask_len)?)?;
    w.addr(addr)
}

/// Encoded-Unicast address (RFC 7761 §4.9.1), IPv6 family, 18 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedUnicast {
    pub addr: Ipv6Addr,
}

impl EncodedUnicast {
    pub const LEN: usize = 18;

    /// Decodes the first [`Self::LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Self::read(&mut Reader::new(buf))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        check_family(r)?;
        Ok(EncodedUnicast { addr: r.addr()? })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        self.write(&mut w)?;
        Ok(w.pos())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(ADDR_FAMILY_IPV6)?;
        w.u8(ENCODING_NATIVE)?;
        w.addr(&self.addr)
    }
}

/// Encoded-Group address (RFC 7761 §4.9.1), IPv6 family, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedGroup {
    /// The B bit (bidirectional PIM).
    pub bidir: bool,
    /// The Z bit (admin scope zone).
    pub admin_scope: bool,
    pub mask_len: u8,
    pub addr: Ipv6Addr,
}

impl EncodedGroup {
    pub const LEN: usize = 20;

    /// A single group (mask length 128, no flags), as PIM-SSM uses.
    pub fn new(addr: Ipv6Addr) -> Self {
        EncodedGroup {
            bidir: false,
            admin_scope: false,
            mask_len: 128,
            addr,
        }
    }

    /// Decodes the first [`Self::LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Self::read(&mut Reader::new(buf))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let (flags, mask_len, addr) = read_masked(r)?;
        Ok(EncodedGroup {
            bidir: flags & GROUP_FLAG_BIDIR != 0,
            admin_scope: flags & GROUP_FLAG_ADMIN_SCOPE != 0,
            mask_len,
            addr,
        })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        self.write(&mut w)?;
        Ok(w.pos())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let mut flags = 0;
        if self.bidir {
            flags |= GROUP_FLAG_BIDIR;
        }
        if self.admin_scope {
            flags |= GROUP_FLAG_ADMIN_SCOPE;
        }
        write_masked(w, flags, self.mask_len, &self.addr)
    }
}

/// Encoded-Source address (RFC 7761 §4.9.1), IPv6 family, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedSource {
    /// The S bit; RFC 7761 requires it set.
    pub sparse: bool,
    /// The W bit: wildcard, (*,G) entries.
    pub wildcard: bool,
    /// The R bit: the join/prune goes up the RP tree.
    pub rpt: bool,
    pub mask_len: u8,
    pub addr: Ipv6Addr,
}

impl EncodedSource {
    pub const LEN: usize = 20;

    /// A source of an (S,G) join or prune: S bit set, W and R clear, mask length 128.
    pub fn new(addr: Ipv6Addr) -> Self {
        EncodedSource {
            sparse: true,
            wildcard: false,
            rpt: false,
            mask_len: 128,
            addr,
        }
    }

    /// Decodes the first [`Self::LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Self::read(&mut Reader::new(buf))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let (flags, mask_len, addr) = read_masked(r)?;
        Ok(EncodedSource {
            sparse: flags & SOURCE_FLAG_SPARSE != 0,
            wildcard: flags & SOURCE_FLAG_WILDCARD != 0,
            rpt: flags & SOURCE_FLAG_RPT != 0,
            mask_len,
            addr,
        })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        self.write(&mut w)?;
        Ok(w.pos())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let mut flags = 0;
        if self.sparse {
            flags |= SOURCE_FLAG_SPARSE;
        }
        if self.wildcard {
            flags |= SOURCE_FLAG_WILDCARD;
        }
        if self.rpt {
            flags |= SOURCE_FLAG_RPT;
        }
        write_masked(w, flags, self.mask_len, &self.addr)
    }
}

/// A read-only view of a PIM message.
#[derive(Debug, Clone)]
pub struct PimPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PimPacket<T> {
    /// Wraps `buffer` after checking the header: length, version 2, a handled type.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let first = *buffer.as_ref().first().ok_or(Error::Truncated)?;
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if first >> 4 != VERSION {
            return Err(Error::Unsupported("pim version"));
        }
        match first & 0x0f {
            msg_type::HELLO | msg_type::JOIN_PRUNE | msg_type::ASSERT => Ok(PimPacket { buffer }),
            _ => Err(Error::Unsupported("pim message type")),
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref().first().map_or(0, |b| b >> 4)
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().first().map_or(0, |b| b & 0x0f)
    }

    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), CHECKSUM_OFFSET)
    }

    /// The message body after the 4-byte header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Hello only: the option TLVs, undecoded (empty for other types).
    pub fn hello_options(&self) -> HelloOptions<'_> {
        let rest = if self.msg_type() == msg_type::HELLO {
            self.payload()
        } else {
            &[]
        };
        HelloOptions { rest }
    }
}

/// One Hello option as it sits in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHelloOption<'a> {
    pub ty: u16,
    pub data: &'a [u8],
}

/// Iterator over Hello options; yields one error and stops when an option runs past the end.
#[derive(Debug, Clone)]
pub struct HelloOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HelloOptions<'a> {
    type Item = Result<RawHelloOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut r = Reader::new(self.rest);
        let item = (|| {
            let ty = r.u16()?;
            let len = r.u16()?;
            Ok(RawHelloOption {
                ty,
                data: r.take(usize::from(len))?,
            })
        })();
        self.rest = if item.is_ok() { r.rest() } else { &[] };
        Some(item)
    }
}

/// The LAN Prune Delay option value (RFC 7761 §4.9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LanPruneDelay {
    /// The T bit: join suppression can be disabled.
    pub tracking_support: bool,
    /// Milliseconds, 15 bits.
    pub propagation_delay_ms: u16,
    /// Milliseconds.
    pub override_interval_ms: u16,
}

/// A Hello option. Known types with a length other than theirs are rejected, so
/// [`HelloOption::Unknown`] never carries a type listed in [`hello_option`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HelloOption {
    /// Seconds; 0xffff = never time out, 0 = forget this neighbour now.
    Holdtime(u16),
    LanPruneDelay(LanPruneDelay),
    DrPriority(u32),
    GenerationId(u32),
    /// Secondary addresses of the interface (RFC 7761 §4.9.2, option 24).
    AddressList(Vec<Ipv6Addr>),
    Unknown {
        ty: u16,
        data: Vec<u8>,
    },
}

impl HelloOption {
    pub fn parse(raw: RawHelloOption<'_>) -> Result<Self> {
        let mut r = Reader::new(raw.data);
        let fixed = |n: usize| {
            if raw.data.len() == n {
                Ok(())
            } else {
                Err(Error::BadLength)
            }
        };
        Ok(match raw.ty {
            hello_option::HOLDTIME => {
                fixed(2)?;
                HelloOption::Holdtime(r.u16()?)
            }
            hello_option::LAN_PRUNE_DELAY => {
                fixed(4)?;
                let delay = r.u16()?;
                HelloOption::LanPruneDelay(LanPruneDelay {
                    tracking_support: delay & 0x8000 != 0,
                    propagation_delay_ms: delay & 0x7fff,
                    override_interval_ms: r.u16()?,
                })
            }
            hello_option::DR_PRIORITY => {
                fixed(4)?;
                HelloOption::DrPriority(r.u32()?)
            }
            hello_option::GENERATION_ID => {
                fixed(4)?;
                HelloOption::GenerationId(r.u32()?)
            }
            hello_option::ADDRESS_LIST => {
                let list = AddressList::parse(raw.data);
                if let Some(e) = list.error {
                    return Err(e);
                }
                HelloOption::AddressList(list.addrs)
            }
            ty => HelloOption::Unknown {
                ty,
                data: raw.data.to_vec(),
            },
        })
    }

    fn value_len(&self) -> usize {
        match self {
            HelloOption::Holdtime(_) => 2,
            HelloOption::LanPruneDelay(_)
            | HelloOption::DrPriority(_)
            | HelloOption::GenerationId(_) => 4,
            HelloOption::AddressList(a) => a.len() * EncodedUnicast::LEN,
            HelloOption::Unknown { data, .. } => data.len(),
        }
    }

    /// Bytes on the wire, type and length included.
    pub fn buffer_len(&self) -> usize {
        4 + self.value_len()
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = u16::try_from(self.value_len()).map_err(|_| Error::BadLength)?;
        let mut w = Writer::new(buf);
        let ty = match self {
            HelloOption::Holdtime(_) => hello_option::HOLDTIME,
            HelloOption::LanPruneDelay(_) => hello_option::LAN_PRUNE_DELAY,
            HelloOption::DrPriority(_) => hello_option::DR_PRIORITY,
            HelloOption::GenerationId(_) => hello_option::GENERATION_ID,
            HelloOption::AddressList(_) => hello_option::ADDRESS_LIST,
            HelloOption::Unknown { ty, .. } => *ty,
        };
        w.u16(ty)?;
        w.u16(len)?;
        match self {
            HelloOption::Holdtime(t) => w.u16(*t)?,
            HelloOption::LanPruneDelay(d) => {
                if d.propagation_delay_ms > 0x7fff {
                    return Err(Error::Malformed("lan prune delay propagation delay"));
                }
                let t = if d.tracking_support { 0x8000 } else { 0 };
                w.u16(t | d.propagation_delay_ms)?;
                w.u16(d.override_interval_ms)?;
            }
            HelloOption::DrPriority(v) | HelloOption::GenerationId(v) => w.u32(*v)?,
            HelloOption::AddressList(addrs) => {
                for addr in addrs {
                    EncodedUnicast { addr: *addr }.write(&mut w)?;
                }
            }
            HelloOption::Unknown { data, .. } => w.bytes(data)?,
        }
        Ok(w.pos())
    }
}

/// The entries of an Address List option (§4.9.2, type 24), decoded tolerantly: IPv6
/// entries are kept, IPv4 entries skipped and counted; an entry of an unknown family or
/// encoding (whose length is therefore unknown) or a truncated one ends the walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressList {
    pub addrs: Vec<Ipv6Addr>,
    /// Entries of another known family (IPv4), skipped.
    pub foreign: usize,
    /// Why the walk stopped early, when it did: the rest of the option was skipped.
    pub error: Option<Error>,
}

impl AddressList {
    pub fn parse(data: &[u8]) -> AddressList {
        let mut list = AddressList::default();
        let mut r = Reader::new(data);
        while !r.rest().is_empty() {
            let entry = (|| -> Result<Option<Ipv6Addr>> {
                let family = r.u8()?;
                if r.u8()? != ENCODING_NATIVE {
                    return Err(Error::Unsupported("pim address encoding"));
                }
                match family {
                    ADDR_FAMILY_IPV6 => Ok(Some(r.addr()?)),
                    ADDR_FAMILY_IPV4 => {
                        r.take(4)?;
                        Ok(None)
                    }
                    _ => Err(Error::Unsupported("pim address family")),
                }
            })();
            match entry {
                Ok(Some(a)) => list.addrs.push(a),
                Ok(None) => list.foreign += 1,
                Err(e) => {
                    list.error = Some(e);
                    break;
                }
            }
        }
        list
    }
}

/// What [`parse_hello`] left out of a Hello, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloSkip {
    /// An option of a known type whose value could not be decoded (wrong length, bad
    /// encoding); the option was dropped.
    BadOption { ty: u16, error: Error },
    /// An option's length runs past the end of the message: it and anything after it
    /// were dropped.
    Truncated,
    /// Address List entries of another address family (IPv4), skipped.
    ForeignAddresses(usize),
    /// The Address List held an entry of an unknown family or encoding, or a truncated
    /// one: the entries from there on were dropped, the ones before it kept.
    AddressListTail(Error),
}

impl HelloSkip {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            HelloSkip::BadOption { .. } => "bad_option",
            HelloSkip::Truncated => "truncated_option",
            HelloSkip::ForeignAddresses(_) => "foreign_address_family",
            HelloSkip::AddressListTail(_) => "address_list_tail",
        }
    }

    /// How many things were skipped (addresses for [`HelloSkip::ForeignAddresses`]).
    pub fn count(&self) -> usize {
        match self {
            HelloSkip::ForeignAddresses(n) => *n,
            _ => 1,
        }
    }
}

/// A decoded Hello: the options that parsed (unknown types included, as
/// [`HelloOption::Unknown`]) and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    pub options: Vec<HelloOption>,
    pub skipped: Vec<HelloSkip>,
}

/// Decodes the options of a Hello body (the bytes after the 4-byte header). Never fails:
/// RFC 7761 §4.9.2 has unknown options ignored, and a neighbour's odd option must not cost
/// the adjacency; what could not be used is listed in [`Hello::skipped`].
pub fn parse_hello(body: &[u8]) -> Hello {
    let mut hello = Hello::default();
    let raws = HelloOptions { rest: body };
    for raw in raws {
        let Ok(raw) = raw else {
            hello.skipped.push(HelloSkip::Truncated);
            break;
        };
        if raw.ty == hello_option::ADDRESS_LIST {
            let list = AddressList::parse(raw.data);
            if list.foreign > 0 {
                hello
                    .skipped
                    .push(HelloSkip::ForeignAddresses(list.foreign));
            }
            if let Some(e) = list.error {
                hello.skipped.push(HelloSkip::AddressListTail(e));
            }
            hello.options.push(HelloOption::AddressList(list.addrs));
            continue;
        }
        match HelloOption::parse(raw) {
            Ok(opt) => hello.options.push(opt),
            Err(error) => hello
                .skipped
                .push(HelloSkip::BadOption { ty: raw.ty, error }),
        }
    }
    hello
}

/// One group of a Join/Prune message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinPruneGroup {
    pub group: EncodedGroup,
    pub joins: Vec<EncodedSource>,
    pub prunes: Vec<EncodedSource>,
}

impl JoinPruneGroup {
    fn buffer_len(&self) -> usize {
        EncodedGroup::LEN + 4 + EncodedSource::LEN * (self.joins.len() + self.prunes.len())
    }
}

/// Join/Prune message body (RFC 7761 §4.9.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinPrune {
    /// The neighbour the message is for (all routers on the link receive it).
    pub upstream_neighbor: Ipv6Addr,
    /// Seconds the receiver keeps the join state.
    pub holdtime: u16,
    pub groups: Vec<JoinPruneGroup>,
}

/// Assert message body (RFC 7761 §4.9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assert {
    pub group: EncodedGroup,
    pub source: Ipv6Addr,
    /// The R bit (RPT-bit).
    pub rpt: bool,
    /// 31 bits.
    pub metric_preference: u32,
    pub metric: u32,
}

/// A PIM message handled by mipcast.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PimRepr {
    Hello { options: Vec<HelloOption> },
    JoinPrune(JoinPrune),
    Assert(Assert),
}

impl PimRepr {
    /// Decodes a PIM message. The checksum is not checked (see [`verify_checksum`]); bytes
    /// after a Join/Prune's last group or after an Assert are ignored. A Hello never fails
    /// past its header: options that cannot be decoded are left out (see [`parse_hello`]
    /// for what was left out).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let packet = PimPacket::new_checked(buf)?;
        let mut r = Reader::new(packet.payload());
        Ok(match packet.msg_type() {
            msg_type::HELLO => PimRepr::Hello {
                options: parse_hello(packet.payload()).options,
            },
            msg_type::JOIN_PRUNE => {
                let upstream_neighbor = EncodedUnicast::read(&mut r)?.addr;
                r.u8()?;
                let n_groups = r.u8()?;
                let holdtime = r.u16()?;
                let mut groups = Vec::new();
                for _ in 0..n_groups {
                    let group = EncodedGroup::read(&mut r)?;
                    let n_joins = r.u16()?;
                    let n_prunes = r.u16()?;
                    let joins = read_sources(&mut r, n_joins)?;
                    let prunes = read_sources(&mut r, n_prunes)?;
                    groups.push(JoinPruneGroup {
                        group,
                        joins,
                        prunes,
                    });
                }
                PimRepr::JoinPrune(JoinPrune {
                    upstream_neighbor,
                    holdtime,
                    groups,
                })
            }
            _ => {
                let group = EncodedGroup::read(&mut r)?;
                let source = EncodedUnicast::read(&mut r)?.addr;
                let pref = r.u32()?;
                PimRepr::Assert(Assert {
                    group,
                    source,
                    rpt: pref & ASSERT_FLAG_RPT != 0,
                    metric_preference: pref & !ASSERT_FLAG_RPT,
                    metric: r.u32()?,
                })
            }
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                PimRepr::Hello { options } => options.iter().map(HelloOption::buffer_len).sum(),
                PimRepr::JoinPrune(jp) => {
                    EncodedUnicast::LEN
                        + 4
                        + jp.groups
                            .iter()
                            .map(JoinPruneGroup::buffer_len)
                            .sum::<usize>()
                }
                PimRepr::Assert(_) => EncodedGroup::LEN + EncodedUnicast::LEN + 8,
            }
    }

    /// Writes the message with a zero checksum (see [`fill_checksum`]) and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        let ty = match self {
            PimRepr::Hello { .. } => msg_type::HELLO,
            PimRepr::JoinPrune(_) => msg_type::JOIN_PRUNE,
            PimRepr::Assert(_) => msg_type::ASSERT,
        };
        w.u8(VERSION << 4 | ty)?;
        w.zeros(3)?;
        match self {
            PimRepr::Hello { options } => {
                for opt in options {
                    let n = opt.emit(w.remaining())?;
                    w.advance(n);
                }
            }
            PimRepr::JoinPrune(jp) => {
                let n_groups = u8::try_from(jp.groups.len())
                    .map_err(|_| Error::Malformed("join/prune group count"))?;
                EncodedUnicast {
                    addr: jp.upstream_neighbor,
                }
                .write(&mut w)?;
                w.u8(0)?;
                w.u8(n_groups)?;
                w.u16(jp.holdtime)?;
                for g in &jp.groups {
                    let count = |v: &Vec<EncodedSource>| {
                        u16::try_from(v.len())
                            .map_err(|_| Error::Malformed("join/prune source count"))
                    };
                    g.group.write(&mut w)?;
                    w.u16(count(&g.joins)?)?;
                    w.u16(count(&g.prunes)?)?;
                    for s in g.joins.iter().chain(&g.prunes) {
                        s.write(&mut w)?;
                    }
                }
            }
            PimRepr::Assert(a) => {
                if a.metric_preference & ASSERT_FLAG_RPT != 0 {
                    return Err(Error::Malformed("assert metric preference"));
                }
                a.group.write(&mut w)?;
                EncodedUnicast { addr: a.source }.write(&mut w)?;
                w.u32(if a.rpt { ASSERT_FLAG_RPT } else { 0 } | a.metric_preference)?;
                w.u32(a.metric)?;
            }
        }
        Ok(w.pos())
    }
}

fn read_sources(r: &mut Reader<'_>, n: u16) -> Result<Vec<EncodedSource>> {
    // Each source takes 20 bytes, so a count beyond what remains is truncation; checking first
    // keeps a hostile count from reserving memory.
    if usize::from(n) * EncodedSource::LEN > r.rest().len() {
        return Err(Error::Truncated);
    }
    (0..n).map(|_| EncodedSource::read(r)).collect()
}
