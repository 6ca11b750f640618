//! Multicast Listener Discovery: MLDv2 (RFC 3810) queries and reports, and the MLDv1
//! (RFC 2710) messages an MLDv2 router must still understand (RFC 3810 §8).
//!
//! Only the ICMPv6 message is handled here; the Router Alert hop-by-hop option and the hop
//! limit 1 are the socket layer's business. Checksums are ICMPv6 checksums, see
//! [`fill_checksum`] and [`verify_checksum`].
use std::net::Ipv6Addr;

use crate::cursor::{addr_at, be_u16, Reader, Writer};
pub use crate::nd::{fill_checksum, verify_checksum};
use crate::{Error, Result};

/// ICMPv6 type of every Multicast Listener Query (v1 and v2, told apart by length).
pub const QUERY: u8 = 130;
/// ICMPv6 type of an MLDv1 Multicast Listener Report.
pub const REPORT_V1: u8 = 131;
/// ICMPv6 type of an MLDv1 Multicast Listener Done.
pub const DONE_V1: u8 = 132;
/// ICMPv6 type of an MLDv2 Multicast Listener Report.
pub const REPORT_V2: u8 = 143;
/// Destination of MLDv2 reports (RFC 3810 §5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

const V1_LEN: usize = 24;
const V2_QUERY_MIN_LEN: usize = 28;
const V2_REPORT_HEADER_LEN: usize = 8;
const RECORD_HEADER_LEN: usize = 20;
const QUERY_FLAG_S: u8 = 0x08;
const QRV_MASK: u8 = 0x07;

/// Largest delay the Maximum Response Code can express (RFC 3810 §5.1.3): mantissa 0xfff,
/// exponent 7.
pub const MAX_RESPONSE_DELAY_MS_MAX: u32 = 0x1fff << 10;
/// Largest interval QQIC can express (RFC 3810 §5.1.9): mantissa 0xf, exponent 7.
pub const QQI_SECS_MAX: u32 = 0x1f << 10;

/// Maximum Response Delay in milliseconds for a Maximum Response Code (RFC 3810 §5.1.3).
pub fn decode_max_response_code(code: u16) -> u32 {
    if code < 0x8000 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 12) & 0x7);
        let mant = u32::from(code & 0x0fff);
        (mant | 0x1000) << (exp + 3)
    }
}

/// The Maximum Response Code for a delay in milliseconds, rounding down to the nearest
/// representable delay (a listener then answers a little early, never late) and saturating at
/// [`MAX_RESPONSE_DELAY_MS_MAX`].
pub fn encode_max_response_code(ms: u32) -> u16 {
    if ms < 0x8000 {
        return u16::try_from(ms).unwrap_or(0x7fff);
    }
    let ms = ms.min(MAX_RESPONSE_DELAY_MS_MAX);
    // ms >= 2^15 has its top bit at position 15..=22; the 13-bit mantissa (hidden bit
    // included) starts there, so the exponent is that position minus 15.
    let top = 31 - ms.leading_zeros();
    let exp = top - 15;
    let mant = (ms >> (exp + 3)) & 0x0fff;
    u16::try_from(0x8000 | (exp << 12) | mant).unwrap_or(u16::MAX)
}

/// Querier's Query Interval in seconds for a QQIC (RFC 3810 §5.1.9).
pub fn decode_qqic(code: u8) -> u32 {
    if code < 0x80 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 4) & 0x7);
        let mant = u32::from(code & 0x0f);
        (mant | 0x10) << (exp + 3)
    }
}

/// The QQIC for an interval in seconds, rounding down and saturating at [`QQI_SECS_MAX`].
pub fn encode_qqic(secs: u32) -> u8 {
    if secs < 0x80 {
        return u8::try_from(secs).unwrap_or(0x7f);
    }
    let secs = secs.min(QQI_SECS_MAX);
    let top = 31 - secs.leading_zeros();
    let exp = top - 7;
    let mant = (secs >> (exp + 3)) & 0x0f;
    u8::try_from(0x80 | (exp << 4) | mant).unwrap_or(u8::MAX)
}

/// A read-only view of any MLD message.
#[derive(Debug, Clone)]
pub struct MldPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MldPacket<T> {
    /// Wraps `buffer` after checking the type and every length the fixed fields imply (for an
    /// MLDv2 query that includes the source list; report records are checked as iterated).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        let ty = *buf.first().ok_or(Error::Truncated)?;
        match ty {
            QUERY => {
                // RFC 3810 §8.1: 24 bytes is v1, 28 or more is v2, anything else is ignored.
                if buf.len() < V1_LEN {
                    return Err(Error::Truncated);
                }
                if buf.len() != V1_LEN {
                    if buf.len() < V2_QUERY_MIN_LEN {
                        return Err(Error::BadLength);
                    }
                    let n = usize::from(be_u16(buf, 26));
                    if buf.len() < V2_QUERY_MIN_LEN + 16 * n {
                        return Err(Error::Truncated);
                    }
                }
            }
            REPORT_V1 | DONE_V1 => {
                if buf.len() < V1_LEN {
                    return Err(Error::Truncated);
                }
            }
            REPORT_V2 => {
                if buf.len() < V2_REPORT_HEADER_LEN {
                    return Err(Error::Truncated);
                }
            }
            _ => return Err(Error::Unsupported("icmpv6 type for mld")),
        }
        Ok(MldPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 2)
    }

    /// True for an MLDv2 query (a query longer than 24 bytes).
    pub fn is_v2_query(&self) -> bool {
        self.msg_type() == QUERY && self.buffer.as_ref().len() >= V2_QUERY_MIN_LEN
    }

    /// Queries: the Maximum Response Code (MLDv1: the delay in milliseconds).
    pub fn max_response_code(&self) -> u16 {
        if self.msg_type() == REPORT_V2 {
            0
        } else {
            be_u16(self.buffer.as_ref(), 4)
        }
    }

    /// Queries and MLDv1 messages: the multicast address (`::` in a general query).
    pub fn multicast_address(&self) -> Ipv6Addr {
        if self.msg_type() == REPORT_V2 {
            Ipv6Addr::UNSPECIFIED
        } else {
            addr_at(self.buffer.as_ref(), 8)
        }
    }

    fn v2_query_byte(&self, offset: usize) -> u8 {
        if self.is_v2_query() {
            self.buffer.as_ref().get(offset).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// MLDv2 query: the S flag (suppress router-side processing).
    pub fn suppress_router_side(&self) -> bool {
        self.v2_query_byte(24) & QUERY_FLAG_S != 0
    }

    /// MLDv2 query: the Querier's Robustness Variable.
    pub fn qrv(&self) -> u8 {
        self.v2_query_byte(24) & QRV_MASK
    }

    /// MLDv2 query: the Querier's Query Interval Code.
    pub fn qqic(&self) -> u8 {
        self.v2_query_byte(25)
    }

    /// MLDv2 query: the source addresses.
    pub fn query_sources(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        let n = if self.is_v2_query() {
            usize::from(be_u16(self.buffer.as_ref(), 26))
        } else {
            0
        };
        let list = self.buffer.as_ref().get(V2_QUERY_MIN_LEN..).unwrap_or(&[]);
        addresses(list).take(n)
    }

    /// MLDv2 report: the multicast address records. Yields one error and stops when a record
    /// runs past the buffer.
    pub fn records(&self) -> Records<'_> {
        let (count, rest) = if self.msg_type() == REPORT_V2 {
            let buf = self.buffer.as_ref();
            (
                be_u16(buf, 6),
                buf.get(V2_REPORT_HEADER_LEN..).unwrap_or(&[]),
            )
        } else {
            (0, &[][..])
        };
        Records {
            remaining: count,
            rest,
        }
    }
}

fn addresses(list: &[u8]) -> impl Iterator<Item = Ipv6Addr> + '_ {
    list.chunks_exact(16).map(|c| addr_at(c, 0))
}

/// One multicast address record of an MLDv2 report, as it sits in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub record_type: u8,
    pub multicast_address: Ipv6Addr,
    /// `16 * number of sources` bytes.
    sources: &'a [u8],
}

impl<'a> RawRecord<'a> {
    pub fn sources(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        addresses(self.sources)
    }
}

/// Iterator over the records of an MLDv2 report.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    remaining: u16,
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RawRecord<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match split_record(self.rest) {
            Ok((record, rest)) => {
                self.rest = rest;
                Some(Ok(record))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}

fn split_record(buf: &[u8]) -> Result<(RawRecord<'_>, &[u8])> {
    let mut r = Reader::new(buf);
    let record_type = r.u8()?;
    // Aux data length counts 32-bit words. MLDv2 defines no aux data: skip it, but only
    // within the buffer.
    let aux_len = usize::from(r.u8()?) * 4;
    let n_sources = usize::from(r.u16()?);
    let multicast_address = r.addr()?;
    let sources = r.take(16 * n_sources)?;
    r.take(aux_len)?;
    Ok((
        RawRecord {
            record_type,
            multicast_address,
            sources,
        },
        r.rest(),
    ))
}

/// Multicast address record types (RFC 3810 §5.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    ModeIsInclude = 1,
    ModeIsExclude = 2,
    ChangeToInclude = 3,
    ChangeToExclude = 4,
    AllowNewSources = 5,
    BlockOldSources = 6,
}

impl RecordType {
    pub const ALL: [RecordType; 6] = [
        RecordType::ModeIsInclude,
        RecordType::ModeIsExclude,
        RecordType::ChangeToInclude,
        RecordType::ChangeToExclude,
        RecordType::AllowNewSources,
        RecordType::BlockOldSources,
    ];
}

impl TryFrom<u8> for RecordType {
    type Error = Error;

    fn try_from(v: u8) -> Result<Self> {
        RecordType::ALL
            .into_iter()
            .find(|t| *t as u8 == v)
            .ok_or(Error::Unsupported("mldv2 record type"))
    }
}

/// One multicast address record of an MLDv2 report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupRecord {
    pub record_type: RecordType,
    pub multicast_address: Ipv6Addr,
    pub sources: Vec<Ipv6Addr>,
}

impl GroupRecord {
    fn buffer_len(&self) -> usize {
        RECORD_HEADER_LEN + 16 * self.sources.len()
    }
}

/// MLDv2 query fields (RFC 3810 §5.1). The codes are kept as sent; use the accessors or the
/// `encode_*`/`decode_*` functions to convert them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryV2 {
    pub max_response_code: u16,
    /// `::` for a general query.
    pub multicast_address: Ipv6Addr,
    /// The S flag.
    pub suppress_router_side: bool,
    /// Querier's Robustness Variable, 3 bits.
    pub qrv: u8,
    pub qqic: u8,
    pub sources: Vec<Ipv6Addr>,
}

impl QueryV2 {
    pub fn max_response_delay_ms(&self) -> u32 {
        decode_max_response_code(self.max_response_code)
    }

    pub fn query_interval_secs(&self) -> u32 {
        decode_qqic(self.qqic)
    }
}

/// Any MLD message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MldRepr {
    /// MLDv1 query (exactly 24 bytes). `multicast_address` is `::` for a general query.
    QueryV1 {
        max_response_delay_ms: u16,
        multicast_address: Ipv6Addr,
    },
    QueryV2(QueryV2),
    ReportV1 {
        multicast_address: Ipv6Addr,
    },
    DoneV1 {
        multicast_address: Ipv6Addr,
    },
    /// Records of unknown types are dropped on parse, so one record type added by a future
    /// revision does not hide the records we understand.
    ReportV2 {
        records: Vec<GroupRecord>,
    },
}

impl MldRepr {
    /// Decodes an ICMPv6 message. The checksum is not checked (see [`verify_checksum`]).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let packet = MldPacket::new_checked(buf)?;
        let multicast_address = packet.multicast_address();
        Ok(match packet.msg_type() {
            QUERY if packet.is_v2_query() => MldRepr::QueryV2(QueryV2 {
                max_response_code: packet.max_response_code(),
                multicast_address,
                suppress_router_side: packet.suppress_router_side(),
                qrv: packet.qrv(),
                qqic: packet.qqic(),
                sources: packet.query_sources().collect(),
            }),
            QUERY => MldRepr::QueryV1 {
                max_response_delay_ms: packet.max_response_code(),
                multicast_address,
            },
            REPORT_V1 => MldRepr::ReportV1 { multicast_address },
            DONE_V1 => MldRepr::DoneV1 { multicast_address },
            _ => {
                let mut records = Vec::new();
                for raw in packet.records() {
                    let raw = raw?;
                    if let Ok(record_type) = RecordType::try_from(raw.record_type) {
                        records.push(GroupRecord {
                            record_type,
                            multicast_address: raw.multicast_address,
                            sources: raw.sources().collect(),
                        });
                    }
                }
                MldRepr::ReportV2 { records }
            }
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            MldRepr::QueryV1 { .. } | MldRepr::ReportV1 { .. } | MldRepr::DoneV1 { .. } => V1_LEN,
            MldRepr::QueryV2(q) => V2_QUERY_MIN_LEN + 16 * q.sources.len(),
            MldRepr::ReportV2 { records } => {
                V2_REPORT_HEADER_LEN + records.iter().map(GroupRecord::buffer_len).sum::<usize>()
            }
        }
    }

    /// Writes the message with a zero checksum (see [`fill_checksum`]) and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        match self {
            MldRepr::QueryV1 {
                max_response_delay_ms,
                multicast_address,
            } => {
                emit_v1(&mut w, QUERY, *max_response_delay_ms, multicast_address)?;
            }
            MldRepr::ReportV1 { multicast_address } => {
                emit_v1(&mut w, REPORT_V1, 0, multicast_address)?
            }
            MldRepr::DoneV1 { multicast_address } => {
                emit_v1(&mut w, DONE_V1, 0, multicast_address)?
            }
            MldRepr::QueryV2(q) => {
                if q.qrv > QRV_MASK {
                    return Err(Error::Malformed("mldv2 query qrv"));
                }
                let n = u16::try_from(q.sources.len())
                    .map_err(|_| Error::Malformed("mldv2 query source count"))?;
                w.u8(QUERY)?;
                w.zeros(3)?;
                w.u16(q.max_response_code)?;
                w.zeros(2)?;
                w.addr(&q.multicast_address)?;
                w.u8(if q.suppress_router_side {
                    QUERY_FLAG_S
                } else {
                    0
                } | q.qrv)?;
                w.u8(q.qqic)?;
                w.u16(n)?;
                for s in &q.sources {
                    w.addr(s)?;
                }
            }
            MldRepr::ReportV2 { records } => {
                let n = u16::try_from(records.len())
                    .map_err(|_| Error::Malformed("mldv2 record count"))?;
                w.u8(REPORT_V2)?;
                w.zeros(5)?;
                w.u16(n)?;
                for rec in records {
                    let n = u16::try_from(rec.sources.len())
                        .map_err(|_| Error::Malformed("mldv2 record source count"))?;
                    w.u8(rec.record_type as u8)?;
                    w.u8(0)?;
                    w.u16(n)?;
                    w.addr(&rec.multicast_address)?;
                    for s in &rec.sources {
                        w.addr(s)?;
                    }
                }
            }
        }
        Ok(w.pos())
    }
}

fn emit_v1(w: &mut Writer<'_>, ty: u8, delay: u16, addr: &Ipv6Addr) -> Result<()> {
    w.u8(ty)?;
    w.zeros(3)?;
    w.u16(delay)?;
    w.zeros(2)?;
    w.addr(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_response_code_examples() {
        // Exact values from the RFC 3810 §5.1.3 formula worked by hand: code 0x8000 is
        // mant 0, exp 0 -> 0x1000 << 3 = 32768 ms; 0xffff -> 0x1fff << 10.
        assert_eq!(decode_max_response_code(0x7fff), 32767);
        assert_eq!(decode_max_response_code(0x8000), 32768);
        assert_eq!(decode_max_response_code(0xffff), 8_387_584);
        assert_eq!(encode_max_response_code(10_000), 10_000);
        assert_eq!(encode_max_response_code(32768), 0x8000);
        assert_eq!(encode_max_response_code(u32::MAX), 0xffff);
        // 0x9123: exp 1, mant 0x123 -> 0x1123 << 4 = 70192.
        assert_eq!(decode_max_response_code(0x9123), 70192);
        assert_eq!(encode_max_response_code(70192), 0x9123);
        assert_eq!(encode_max_response_code(70192 + 15), 0x9123);
    }

    #[test]
    fn max_response_code_round_trips_every_code() {
        for code in 0..=u16::MAX {
            assert_eq!(
                encode_max_response_code(decode_max_response_code(code)),
                code,
                "{code:#x}"
            );
        }
        for ms in (0..MAX_RESPONSE_DELAY_MS_MAX).step_by(997) {
            let back = decode_max_response_code(encode_max_response_code(ms));
            assert!(
                back <= ms && ms - back < (ms >> 12).max(1),
                "{ms} -> {back}"
            );
        }
    }

    #[test]
    fn qqic_examples() {
        assert_eq!(decode_qqic(125), 125);
        // 0x80: exp 0, mant 0 -> 0x10 << 3 = 128 s; 0xff -> 0x1f << 10.
        assert_eq!(decode_qqic(0x80), 128);
        assert_eq!(decode_qqic(0xff), 31744);
        for code in 0..=u8::MAX {
            assert_eq!(encode_qqic(decode_qqic(code)), code, "{code:#x}");
        }
        assert_eq!(encode_qqic(u32::MAX), 0xff);
    }
}
