//! The home agent's binding record in the state journal ([`mipcast_daemon::state::Journal`]):
//! a fixed binary layout of 67 bytes (73 with the journal's framing) when the BU came from
//! its care-of address to the configured home agent address and no refresh is due; 91 (97
//! framed) with a separate peer and a refresh time; 107 only for a BU sent to another address
//! of the home agent.
//!
//! ```text
//! flags (1) | hoa (16) | coa (16) | [peer (16)] | [local (16)] | sequence (2) | lifetime_s (4)
//! | registered_unix_ms (8) | expires_unix_ms (8) | [refresh_unix_ms (8)] | last_timestamp (8)
//! | spi (4)
//! ```
//! Absent fields are the common case: peer equal to the care-of address, local equal to the
//! home agent's configured address, no refresh due.
use std::net::Ipv6Addr;

use mipcast_binding::{BindingRecord, BindingState};
use mipcast_daemon::state::JournalRecord;

const PEER: u8 = 0x01;
const LOCAL: u8 = 0x02;
const REFRESH: u8 = 0x04;
const LINGERING: u8 = 0x08;

/// A binding record with the home agent's address, against which `local` is elided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaRecord {
    pub record: BindingRecord<()>,
    /// The home agent's address; unspecified in a decoded record whose `local` was elided
    /// (see [`HaRecord::with_home_agent`]).
    pub ha: Ipv6Addr,
}

impl HaRecord {
    /// The decoded record with an elided `local` filled in.
    pub fn with_home_agent(mut self, ha: Ipv6Addr) -> BindingRecord<()> {
        if self.record.local.is_unspecified() {
            self.record.local = ha;
        }
        self.ha = ha;
        self.record
    }
}

impl JournalRecord for HaRecord {
    type Key = Ipv6Addr;

    fn key(&self) -> Ipv6Addr {
        self.record.hoa
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let r = &self.record;
        let mut flags = 0;
        if r.peer != r.coa {
            flags |= PEER;
        }
        if r.local != self.ha {
            flags |= LOCAL;
        }
        if r.refresh_unix_ms.is_some() {
            flags |= REFRESH;
        }
        if r.state == BindingState::Lingering {
            flags |= LINGERING;
        }
        out.push(flags);
        out.extend_from_slice(&r.hoa.octets());
        out.extend_from_slice(&r.coa.octets());
        if flags & PEER != 0 {
            out.extend_from_slice(&r.peer.octets());
        }
        if flags & LOCAL != 0 {
            out.extend_from_slice(&r.local.octets());
        }
        out.extend_from_slice(&r.sequence.to_be_bytes());
        out.extend_from_slice(&r.lifetime_s.to_be_bytes());
        out.extend_from_slice(&r.registered_unix_ms.to_be_bytes());
        out.extend_from_slice(&r.expires_unix_ms.to_be_bytes());
        if let Some(at) = r.refresh_unix_ms {
            out.extend_from_slice(&at.to_be_bytes());
        }
        out.extend_from_slice(&r.last_timestamp.to_be_bytes());
        out.extend_from_slice(&r.spi.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<HaRecord> {
        let mut r = Reader(bytes);
        let [flags] = r.take::<1>()?;
        let hoa = Ipv6Addr::from(r.take::<16>()?);
        let coa = Ipv6Addr::from(r.take::<16>()?);
        let peer = if flags & PEER != 0 {
            Ipv6Addr::from(r.take::<16>()?)
        } else {
            coa
        };
        let local = if flags & LOCAL != 0 {
            Ipv6Addr::from(r.take::<16>()?)
        } else {
            Ipv6Addr::UNSPECIFIED
        };
        let sequence = u16::from_be_bytes(r.take()?);
        let lifetime_s = u32::from_be_bytes(r.take()?);
        let registered_unix_ms = u64::from_be_bytes(r.take()?);
        let expires_unix_ms = u64::from_be_bytes(r.take()?);
        let refresh_unix_ms = if flags & REFRESH != 0 {
            Some(u64::from_be_bytes(r.take()?))
        } else {
            None
        };
        let last_timestamp = u64::from_be_bytes(r.take()?);
        let spi = u32::from_be_bytes(r.take()?);
        if !r.0.is_empty() {
            return None;
        }
        Some(HaRecord {
            record: BindingRecord {
                hoa,
                coa,
                peer,
                local,
                sequence,
                lifetime_s,
                registered_unix_ms,
                expires_unix_ms,
                refresh_unix_ms,
                last_timestamp,
                spi,
                state: if flags & LINGERING != 0 {
                    BindingState::Lingering
                } else {
                    BindingState::Active
                },
                payload: (),
            },
            ha: Ipv6Addr::UNSPECIFIED,
        })
    }

    fn encode_key(key: &Ipv6Addr, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.octets());
    }

    fn decode_key(bytes: &[u8]) -> Option<Ipv6Addr> {
        <[u8; 16]>::try_from(bytes).ok().map(Ipv6Addr::from)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn record(peer: &str, local: &str, refresh: Option<u64>) -> BindingRecord<()> {
        BindingRecord {
            hoa: a("2001:db8:1::100"),
            coa: a("2001:db8:2::9"),
            peer: a(peer),
            local: a(local),
            sequence: 7,
            lifetime_s: 400,
            registered_unix_ms: 1_700_000_000_000,
            expires_unix_ms: 1_700_000_400_000,
            refresh_unix_ms: refresh,
            last_timestamp: 0xdead_beef_0000_0001,
            spi: 1000,
            state: BindingState::Active,
            payload: (),
        }
    }

    #[test]
    fn round_trips_within_100_bytes_framed() {
        let ha = a("2001:db8:1::1");
        for (r, len) in [
            (record("2001:db8:2::9", "2001:db8:1::1", None), 67),
            (record("2001:db8:2::8", "2001:db8:1::1", Some(1)), 91),
            (record("2001:db8:2::8", "2001:db8:1::5", Some(1)), 107),
        ] {
            let mut out = Vec::new();
            HaRecord {
                record: r.clone(),
                ha,
            }
            .encode(&mut out);
            assert_eq!(out.len(), len);
            let back = HaRecord::decode(&out).unwrap().with_home_agent(ha);
            assert_eq!(back, r);
            assert_eq!(HaRecord::decode(&out[..len - 1]), None, "truncated");
        }
    }
}
