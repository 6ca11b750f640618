//! A Wi-Fi link's signal strength from the kernel's nl80211 generic-netlink family, as a
//! 0-100 link quality.
//!
//! On a managed (client) interface the station dump of that interface holds one station: the
//! access point it is associated with; its average signal (NL80211_STA_INFO_SIGNAL_AVG, else the
//! last frame's NL80211_STA_INFO_SIGNAL: a u8 carrying an s8 dBm) is the reading.
//!
//! Hand-written over our own generic-netlink framing ([`crate::route::genl`], shared with the
//! seg6 tunnel source) rather than a crate: the maintained one, wl-nl80211 (rust-netlink), brings
//! its own genetlink/netlink-proto connection stack (a second netlink-proto major next to
//! rtnetlink's) and a full nl80211 model, for the four attribute numbers below; the others on
//! crates.io (nl80211, nl80211-rs, nl80211-ng) are unmaintained experiments or bring neli.
//!
//! Kernels without a wireless stack (no cfg80211) have no "nl80211" family: [`Nl80211::probe`]
//! says so once, as a value, and the caller reads the link's quality some other way.
use std::fmt;

use crate::route::genl::{Genl, GENL_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST};
use crate::route::NlFailure;

const FAMILY: &str = "nl80211";
const NL80211_GENL_VERSION: u8 = 1;
const NL80211_CMD_GET_STATION: u8 = 17;
/// The kernel answers a station request (and each entry of a dump) with this command.
const NL80211_CMD_NEW_STATION: u8 = 19;
const NL80211_ATTR_IFINDEX: u16 = 3;
const NL80211_ATTR_STA_INFO: u16 = 21;
const NL80211_STA_INFO_SIGNAL: u16 = 7;
const NL80211_STA_INFO_SIGNAL_AVG: u16 = 13;

/// Signal strength mapped to quality 0 (and below).
pub const DBM_UNUSABLE: i8 = -90;
/// Signal strength mapped to quality 100 (and above).
pub const DBM_EXCELLENT: i8 = -30;

/// The result of looking for the nl80211 family once at start.
pub enum Probe {
    Available(Nl80211),
    /// Why not (e.g. the kernel has no wireless stack), as a sentence for the log.
    NotAvailable(String),
}

impl Probe {
    pub fn is_available(&self) -> bool {
        matches!(self, Probe::Available(_))
    }
}

/// A generic-netlink socket with the resolved nl80211 family.
pub struct Nl80211 {
    genl: Genl,
    family: u16,
}

/// A station query the kernel refused or answered with something unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nl80211Error {
    pub errno: Option<i32>,
    pub text: String,
}

impl fmt::Display for Nl80211Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Nl80211Error {}

impl From<NlFailure> for Nl80211Error {
    fn from(e: NlFailure) -> Self {
        Nl80211Error {
            errno: e.errno,
            text: e.text,
        }
    }
}

impl Nl80211 {
    /// Opens a generic-netlink socket in the caller's namespace and resolves the nl80211
    /// family; "not available" (not an error) when the kernel has none.
    pub async fn probe() -> Probe {
        let genl = match Genl::open() {
            Ok(g) => g,
            Err(e) => return Probe::NotAvailable(format!("no generic-netlink socket: {e}")),
        };
        match genl.family(FAMILY).await {
            Ok(family) => Probe::Available(Nl80211 { genl, family }),
            Err(e) if e.errno == Some(libc::ENOENT) => Probe::NotAvailable(
                "the kernel has no nl80211 generic-netlink family (no cfg80211 wireless stack)"
                    .to_owned(),
            ),
            Err(e) => Probe::NotAvailable(format!(
                "resolving the nl80211 generic-netlink family: {}",
                e.text
            )),
        }
    }

    /// The signal (dBm) of the station the interface is associated with; None when it has
    /// none (not associated) or the driver reports no signal.
    pub async fn station_signal(&self, ifindex: u32) -> Result<Option<i8>, Nl80211Error> {
        let replies = self
            .genl
            .exchange(
                self.family,
                NL80211_GENL_VERSION,
                NL80211_CMD_GET_STATION,
                NLM_F_REQUEST | NLM_F_DUMP,
                &[(NL80211_ATTR_IFINDEX, &ifindex.to_ne_bytes())],
            )
            .await?;
        for payload in &replies {
            let signal = parse_station(payload).map_err(|e| Nl80211Error {
                errno: None,
                text: format!("the kernel's station entry: {e}"),
            })?;
            if signal.is_some() {
                return Ok(signal);
            }
        }
        Ok(None)
    }
}

/// Why a station entry could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 4-byte generic-netlink header.
    Truncated,
    /// Not an NL80211_CMD_NEW_STATION message (the command byte).
    Command(u8),
    /// An attribute whose length runs past its container or below its header.
    AttributeLength,
    /// A signal attribute that is not one byte.
    SignalLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("shorter than a generic-netlink header"),
            ParseError::Command(c) => write!(f, "command {c}, not NL80211_CMD_NEW_STATION"),
            ParseError::AttributeLength => f.write_str("an attribute length is malformed"),
            ParseError::SignalLength => f.write_str("the signal attribute is not one byte"),
        }
    }
}

/// The signal (dBm) in one station entry: the generic-netlink payload of an
/// NL80211_CMD_NEW_STATION message (header, then attributes with a nested
/// NL80211_ATTR_STA_INFO). SIGNAL_AVG is preferred over the last frame's SIGNAL; Ok(None) when
/// the entry has neither.
pub fn parse_station(payload: &[u8]) -> Result<Option<i8>, ParseError> {
    let header = payload.get(..GENL_HDRLEN).ok_or(ParseError::Truncated)?;
    let cmd = header.first().copied().ok_or(ParseError::Truncated)?;
    if cmd != NL80211_CMD_NEW_STATION {
        return Err(ParseError::Command(cmd));
    }
    let attrs = payload.get(GENL_HDRLEN..).ok_or(ParseError::Truncated)?;
    let Some(info) = find(attrs, NL80211_ATTR_STA_INFO)? else {
        return Ok(None);
    };
    let value = match find(info, NL80211_STA_INFO_SIGNAL_AVG)? {
        Some(v) => v,
        None => match find(info, NL80211_STA_INFO_SIGNAL)? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    match value {
        // The kernel puts an s8 dBm value as a u8 attribute.
        &[b] => Ok(Some(b as i8)),
        _ => Err(ParseError::SignalLength),
    }
}

/// The value of the first attribute of type `kind` in an attribute area, checking every
/// length up to it.
fn find(mut area: &[u8], kind: u16) -> Result<Option<&[u8]>, ParseError> {
    while !area.is_empty() {
        let &[l0, l1, k0, k1] = area.get(..4).ok_or(ParseError::AttributeLength)? else {
            return Err(ParseError::AttributeLength);
        };
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let value = area.get(4..len).ok_or(ParseError::AttributeLength)?;
        // The top two bits of the type are the nested and byte-order flags.
        if u16::from_ne_bytes([k0, k1]) & 0x3fff == kind {
            return Ok(Some(value));
        }
        // The last attribute of an area may come without its alignment padding.
        area = area.get(((len + 3) & !3).min(area.len())..).unwrap_or(&[]);
    }
    Ok(None)
}

/// Link quality (0-100) from a signal strength: linear from [`DBM_UNUSABLE`] (-90 dBm: 0,
/// about where 802.11 loses even its lowest rate) to [`DBM_EXCELLENT`] (-30 dBm: 100, a
/// station next to its access point), rounded to the nearest integer and clamped outside.
pub fn quality_from_dbm(dbm: i8) -> u8 {
    let span = i32::from(DBM_EXCELLENT) - i32::from(DBM_UNUSABLE);
    let above = (i32::from(dbm) - i32::from(DBM_UNUSABLE)).clamp(0, span);
    u8::try_from((above * 100 + span / 2) / span).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute as the kernel lays it out: length (header included, padding excluded),
    /// type, value, padding to 4 bytes.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(value);
        b.resize((b.len() + 3) & !3, 0);
        b
    }

    const NLA_F_NESTED: u16 = 0x8000;

    /// A station entry like the kernel's dump reply: generic header, IFINDEX, MAC,
    /// GENERATION, then STA_INFO nesting INACTIVE_TIME, the given signal attributes and
    /// RX_BYTES.
    fn station(signals: &[(u16, u8)]) -> Vec<u8> {
        let mut info = nla(1, &1234u32.to_ne_bytes()); // INACTIVE_TIME
        for &(kind, v) in signals {
            info.extend(nla(kind, &[v]));
        }
        info.extend(nla(2, &99u32.to_ne_bytes())); // RX_BYTES
        let mut p = vec![NL80211_CMD_NEW_STATION, 1, 0, 0];
        p.extend(nla(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()));
        p.extend(nla(6, &[0x02, 0, 0, 0, 0, 1])); // MAC (6 bytes, padded to 8)
        p.extend(nla(46, &7u32.to_ne_bytes())); // GENERATION
        p.extend(nla(NL80211_ATTR_STA_INFO | NLA_F_NESTED, &info));
        p
    }

    #[test]
    fn station_dump_request_layout() {
        let family = 0x22;
        let req = crate::route::genl::encode(
            family,
            9,
            NLM_F_REQUEST | NLM_F_DUMP,
            NL80211_GENL_VERSION,
            NL80211_CMD_GET_STATION,
            &[(NL80211_ATTR_IFINDEX, &5u32.to_ne_bytes())],
        );
        let mut expect = Vec::new();
        expect.extend_from_slice(&28u32.to_ne_bytes()); // nlmsg_len
        expect.extend_from_slice(&0x22u16.to_ne_bytes()); // the resolved family id
        expect.extend_from_slice(&0x0301u16.to_ne_bytes()); // REQUEST | ROOT | MATCH
        expect.extend_from_slice(&9u32.to_ne_bytes()); // seq
        expect.extend_from_slice(&0u32.to_ne_bytes()); // port id
        expect.extend_from_slice(&[17, 1, 0, 0]); // GET_STATION, version 1
        expect.extend_from_slice(&[8, 0, 3, 0]); // IFINDEX attribute header
        expect.extend_from_slice(&5u32.to_ne_bytes());
        assert_eq!(req, expect);
    }

    #[test]
    fn golden_station_entry_layout() {
        let p = station(&[(NL80211_STA_INFO_SIGNAL, 0xc4)]);
        // By hand: genl header, then IFINDEX (8), MAC (12), GENERATION (8), STA_INFO header.
        let head: [u8; 36] = [
            19, 1, 0, 0, // NL80211_CMD_NEW_STATION, version 1
            8, 0, 3, 0, 3, 0, 0, 0, // IFINDEX 3
            10, 0, 6, 0, 2, 0, 0, 0, 0, 1, 0, 0, // MAC 02:00:00:00:00:01 + 2 padding
            8, 0, 46, 0, 7, 0, 0, 0, // GENERATION 7
            28, 0, 21, 0x80, // STA_INFO, nested: 4 + INACTIVE_TIME 8 + SIGNAL 8 + RX_BYTES 8
        ];
        assert_eq!(p[..36], head);
        assert_eq!(p[36 + 8..36 + 16], [5, 0, 7, 0, 0xc4, 0, 0, 0]);
        assert_eq!(parse_station(&p), Ok(Some(-60)));
    }

    #[test]
    fn average_preferred_over_last_frame() {
        let p = station(&[
            (NL80211_STA_INFO_SIGNAL, (-40i8) as u8),
            (NL80211_STA_INFO_SIGNAL_AVG, (-71i8) as u8),
        ]);
        assert_eq!(parse_station(&p), Ok(Some(-71)));
        let p = station(&[(NL80211_STA_INFO_SIGNAL, (-40i8) as u8)]);
        assert_eq!(parse_station(&p), Ok(Some(-40)));
    }

    #[test]
    fn no_signal_or_no_station_info_is_no_reading() {
        assert_eq!(parse_station(&station(&[])), Ok(None));
        let mut p = vec![NL80211_CMD_NEW_STATION, 1, 0, 0];
        p.extend(nla(NL80211_ATTR_IFINDEX, &3u32.to_ne_bytes()));
        assert_eq!(parse_station(&p), Ok(None));
        assert_eq!(parse_station(&p[..4]), Ok(None));
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert_eq!(parse_station(&[19, 1, 0]), Err(ParseError::Truncated));
        let mut p = station(&[(NL80211_STA_INFO_SIGNAL, 0xc4)]);
        p[0] = 5;
        assert_eq!(parse_station(&p), Err(ParseError::Command(5)));
        // IFINDEX claiming 200 bytes.
        let mut p = station(&[(NL80211_STA_INFO_SIGNAL, 0xc4)]);
        p[4] = 200;
        assert_eq!(parse_station(&p), Err(ParseError::AttributeLength));
        // An attribute length below its own header.
        let mut p = station(&[(NL80211_STA_INFO_SIGNAL, 0xc4)]);
        p[4] = 2;
        assert_eq!(parse_station(&p), Err(ParseError::AttributeLength));
        // A two-byte signal.
        let mut info = nla(NL80211_STA_INFO_SIGNAL, &[0xc4, 0]);
        info.extend(nla(2, &[0; 4]));
        let mut p = vec![NL80211_CMD_NEW_STATION, 1, 0, 0];
        p.extend(nla(NL80211_ATTR_STA_INFO | NLA_F_NESTED, &info));
        assert_eq!(parse_station(&p), Err(ParseError::SignalLength));
    }

    #[test]
    fn truncation_at_every_byte_never_panics() {
        let p = station(&[
            (NL80211_STA_INFO_SIGNAL, 0xc4),
            (NL80211_STA_INFO_SIGNAL_AVG, 0xc0),
        ]);
        let mut errors = 0;
        for cut in 0..p.len() {
            if parse_station(&p[..cut]).is_err() {
                errors += 1;
            }
        }
        // Cuts inside the header or an attribute are errors; only cuts on an attribute
        // boundary before STA_INFO read as "no signal".
        assert!(errors > p.len() - 8, "{errors} of {}", p.len());
        assert_eq!(parse_station(&p), Ok(Some(-64)));
        // Arbitrary bytes after a valid header.
        for seed in 0u8..=255 {
            let mut q = vec![NL80211_CMD_NEW_STATION, 1, 0, 0];
            q.extend((0..40u8).map(|i| i.wrapping_mul(seed).wrapping_add(seed)));
            let _ = parse_station(&q);
        }
    }

    #[test]
    fn dbm_maps_linearly_and_clamps() {
        assert_eq!(quality_from_dbm(-90), 0);
        assert_eq!(quality_from_dbm(-30), 100);
        assert_eq!(quality_from_dbm(-60), 50);
        assert_eq!(quality_from_dbm(-75), 25);
        assert_eq!(quality_from_dbm(-89), 2);
        assert_eq!(quality_from_dbm(-128), 0);
        assert_eq!(quality_from_dbm(-91), 0);
        assert_eq!(quality_from_dbm(-29), 100);
        assert_eq!(quality_from_dbm(127), 100);
        let mut last = 0;
        for dbm in i8::MIN..=i8::MAX {
            let q = quality_from_dbm(dbm);
            assert!(q >= last && q <= 100);
            last = q;
        }
    }
}
