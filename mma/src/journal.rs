//! A terminal's record in the MMA's state journal ([`mipcast_daemon::state::Journal`]): the
//! binding's own fields ([`BindingEntry`]) followed by the terminal's, with what the
//! configuration or the home address determine left out, so that a record of a terminal
//! served here is 98 bytes with the journal's framing (was 114).
//!
//! ```text
//! tflags (1) | group[0..8] (8) | [group[8..16] (8)] | [home_agent (16)] | [forward_to (16)]
//! ```
//! - `group[8..16]`, the group's interface identifier, is left out (tflags `GROUP_IID_HOA`)
//!   when it is the home address's own (a terminal whose home address and group come from the
//!   same EUI-64).
//! - `home_agent` is left out (tflags `HOME_AGENT_DERIVED`) when it is the one the
//!   configuration gives the home address: the only one `on_register` ever assigns. It is
//!   derived again at restore from the configuration in force then, so a home agent mapping
//!   changed while the MMA was down moves the terminal's reverse tunnel to the new home agent,
//!   as its next Binding Update would. A terminal kept from before a reload that changed the
//!   mapping keeps its home agent written out.
//! - `forward_to` is there while the terminal is in a forwarding window (tflags `FORWARD`).
//!
//! Records of the previous format (`group (16) | home_agent (16) | 0 or 1 | [forward_to]`)
//! are still read: they begin with the group's first byte, 0xff (a terminal group is
//! multicast), which is never a valid tflags byte. Compaction at start rewrites them in the
//! new format.
use std::net::Ipv6Addr;

use mipcast_binding::BindingRecord;
use mipcast_daemon::state::{take, BindingEntry, PayloadCodec};

use crate::core::{PolicyConfig, Terminal};

const FORWARD: u8 = 0x01;
const GROUP_IID_HOA: u8 = 0x02;
const HOME_AGENT_DERIVED: u8 = 0x04;
const KNOWN: u8 = FORWARD | GROUP_IID_HOA | HOME_AGENT_DERIVED;
/// The first byte of a record of the previous format: a multicast group's.
const LEGACY_FIRST: u8 = 0xff;

/// A terminal as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTerminal {
    /// `home_agent` is unspecified after decoding a record that left it out, until
    /// [`restored`] derives it.
    pub terminal: Terminal,
    /// The home agent is the one the configuration gave the home address when written.
    pub home_agent_derived: bool,
}

pub type MmaRecord = BindingEntry<StoredTerminal>;

/// The journal record of `record` (`me`: the MMA's address, `policy`: the configuration in
/// force, which decides whether the home agent can be left out).
pub fn entry(record: BindingRecord<Terminal>, me: Ipv6Addr, policy: &PolicyConfig) -> MmaRecord {
    let home_agent_derived = policy.home_agent_of(record.hoa) == Some(record.payload.home_agent);
    let (record, terminal) = split_payload(record);
    BindingEntry {
        record: with_payload(
            record,
            StoredTerminal {
                terminal,
                home_agent_derived,
            },
        ),
        me,
    }
}

/// The binding record of a decoded journal record: `local` and a left-out home agent filled
/// in (the latter from `policy`; a home address no configured home agent serves keeps it
/// unspecified, which the policy's restore check refuses).
pub fn restored(entry: MmaRecord, me: Ipv6Addr, policy: &PolicyConfig) -> BindingRecord<Terminal> {
    let (r, stored) = split_payload(entry.with_local(me));
    let mut terminal = stored.terminal;
    if stored.home_agent_derived {
        terminal.home_agent = policy.home_agent_of(r.hoa).unwrap_or(Ipv6Addr::UNSPECIFIED);
    }
    with_payload(r, terminal)
}

/// The record without its payload, and the payload.
fn split_payload<P>(r: BindingRecord<P>) -> (BindingRecord<()>, P) {
    let BindingRecord {
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
        state,
        payload,
    } = r;
    (
        BindingRecord {
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
            state,
            payload: (),
        },
        payload,
    )
}

fn with_payload<P>(r: BindingRecord<()>, payload: P) -> BindingRecord<P> {
    BindingRecord {
        hoa: r.hoa,
        coa: r.coa,
        peer: r.peer,
        local: r.local,
        sequence: r.sequence,
        lifetime_s: r.lifetime_s,
        registered_unix_ms: r.registered_unix_ms,
        expires_unix_ms: r.expires_unix_ms,
        refresh_unix_ms: r.refresh_unix_ms,
        last_timestamp: r.last_timestamp,
        spi: r.spi,
        state: r.state,
        payload,
    }
}

fn halves(a: Ipv6Addr) -> ([u8; 8], [u8; 8]) {
    let o = a.octets();
    let (hi, lo) = o.split_at(8);
    let mut h = [0; 8];
    let mut l = [0; 8];
    h.copy_from_slice(hi);
    l.copy_from_slice(lo);
    (h, l)
}

fn join(hi: [u8; 8], lo: [u8; 8]) -> Ipv6Addr {
    let mut o = [0; 16];
    let (h, l) = o.split_at_mut(8);
    h.copy_from_slice(&hi);
    l.copy_from_slice(&lo);
    Ipv6Addr::from(o)
}

impl PayloadCodec for StoredTerminal {
    fn encode(&self, hoa: &Ipv6Addr, out: &mut Vec<u8>) {
        let t = &self.terminal;
        let (group_hi, group_iid) = halves(t.group);
        let (_, hoa_iid) = halves(*hoa);
        let mut flags = 0;
        if t.forward_to.is_some() {
            flags |= FORWARD;
        }
        if group_iid == hoa_iid {
            flags |= GROUP_IID_HOA;
        }
        if self.home_agent_derived {
            flags |= HOME_AGENT_DERIVED;
        }
        out.push(flags);
        out.extend_from_slice(&group_hi);
        if flags & GROUP_IID_HOA == 0 {
            out.extend_from_slice(&group_iid);
        }
        if flags & HOME_AGENT_DERIVED == 0 {
            out.extend_from_slice(&t.home_agent.octets());
        }
        if let Some(to) = t.forward_to {
            out.extend_from_slice(&to.octets());
        }
    }

    fn decode(hoa: &Ipv6Addr, bytes: &mut &[u8]) -> Option<Self> {
        if bytes.first() == Some(&LEGACY_FIRST) {
            return decode_legacy(bytes);
        }
        let [flags] = take::<1>(bytes)?;
        if flags & !KNOWN != 0 {
            return None;
        }
        let group_hi = take::<8>(bytes)?;
        let group_iid = if flags & GROUP_IID_HOA != 0 {
            halves(*hoa).1
        } else {
            take::<8>(bytes)?
        };
        let home_agent_derived = flags & HOME_AGENT_DERIVED != 0;
        let home_agent = if home_agent_derived {
            Ipv6Addr::UNSPECIFIED
        } else {
            Ipv6Addr::from(take::<16>(bytes)?)
        };
        let forward_to = if flags & FORWARD != 0 {
            Some(Ipv6Addr::from(take::<16>(bytes)?))
        } else {
            None
        };
        Some(StoredTerminal {
            terminal: Terminal {
                group: join(group_hi, group_iid),
                home_agent,
                forward_to,
            },
            home_agent_derived,
        })
    }
}

/// `group (16) | home_agent (16) | has forward_to (1) | [forward_to (16)]`: the format before
/// the compact one.
fn decode_legacy(bytes: &mut &[u8]) -> Option<StoredTerminal> {
    let group = Ipv6Addr::from(take::<16>(bytes)?);
    let home_agent = Ipv6Addr::from(take::<16>(bytes)?);
    let forward_to = match take::<1>(bytes)? {
        [0] => None,
        [1] => Some(Ipv6Addr::from(take::<16>(bytes)?)),
        _ => return None,
    };
    Some(StoredTerminal {
        terminal: Terminal {
            group,
            home_agent,
            forward_to,
        },
        home_agent_derived: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)] // a test fails by panicking
    use super::*;
    use mipcast_binding::BindingState;
    use mipcast_daemon::state::{Journal, JournalEntry, JournalRecord};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn policy() -> PolicyConfig {
        PolicyConfig {
            site_prefixes: vec![(a("2001:db8:4::"), 48)],
            group_prefix: (a("ff35::"), 64),
            home_agents: vec![(a("2001:db8:1::1"), vec![(a("2001:db8:99::"), 48)])],
            default_grace_s: 5,
            max_grace_s: 30,
        }
    }

    fn record(i: u16, group: &str, forward_to: Option<&str>) -> BindingRecord<Terminal> {
        let hoa = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, i);
        BindingRecord {
            hoa,
            coa: a("2001:db8:4::2"),
            peer: a("2001:db8:4::2"),
            local: a("2001:db8:4::1"),
            sequence: 7,
            lifetime_s: 400,
            registered_unix_ms: 1_700_000_000_000,
            expires_unix_ms: 1_700_000_400_000,
            refresh_unix_ms: Some(1_700_000_300_000),
            last_timestamp: 0xdead_beef_0000_0001,
            spi: 1000,
            state: if forward_to.is_some() {
                BindingState::Lingering
            } else {
                BindingState::Active
            },
            payload: Terminal {
                group: a(group),
                home_agent: a("2001:db8:1::1"),
                forward_to: forward_to.map(a),
            },
        }
    }

    fn encoded(r: &MmaRecord) -> Vec<u8> {
        let mut out = Vec::new();
        r.encode(&mut out);
        out
    }

    /// The previous format's payload encoding, as the MMA wrote it before.
    fn legacy_payload(t: &Terminal, out: &mut Vec<u8>) {
        out.extend_from_slice(&t.group.octets());
        out.extend_from_slice(&t.home_agent.octets());
        match t.forward_to {
            Some(to) => {
                out.push(1);
                out.extend_from_slice(&to.octets());
            }
            None => out.push(0),
        }
    }

    /// A record of the previous format: the binding fields with `()` as payload, then the
    /// old payload.
    fn legacy_record(r: &BindingRecord<Terminal>, me: Ipv6Addr) -> Vec<u8> {
        let unit = BindingEntry {
            record: split_payload(r.clone()).0,
            me,
        };
        let mut out = Vec::new();
        unit.encode(&mut out);
        legacy_payload(&r.payload, &mut out);
        out
    }

    #[test]
    fn a_served_terminal_takes_at_most_100_bytes_and_round_trips() {
        let me = a("2001:db8:4::1");
        let p = policy();
        // An arbitrary group; one sharing the home address's interface identifier; one in a
        // forwarding window (temporary, and longer).
        for (r, body) in [
            (record(5, "ff35::200:0:0:5", None), 92),
            (record(5, "ff35::5", None), 84),
            (record(5, "ff35::200:0:0:5", Some("2001:db8:5::9")), 108),
        ] {
            let e = entry(r.clone(), me, &p);
            let bytes = encoded(&e);
            assert_eq!(bytes.len(), body, "{:?}", r.payload);
            // The journal adds 6 bytes of framing.
            if r.payload.forward_to.is_none() {
                assert!(bytes.len() + 6 <= 100);
            }
            let back = MmaRecord::decode(&bytes).unwrap();
            assert_eq!(
                back.record.payload.terminal.home_agent,
                Ipv6Addr::UNSPECIFIED
            );
            assert_eq!(restored(back, me, &p), r);
            assert_eq!(MmaRecord::decode(&bytes[..body - 1]), None, "truncated");
        }
    }

    #[test]
    fn a_home_agent_the_configuration_does_not_give_is_written_out() {
        let me = a("2001:db8:4::1");
        let mut r = record(5, "ff35::200:0:0:5", None);
        r.payload.home_agent = a("2001:db8:1::2");
        let bytes = encoded(&entry(r.clone(), me, &policy()));
        assert_eq!(bytes.len(), 92 + 16);
        let back = restored(MmaRecord::decode(&bytes).unwrap(), me, &policy());
        assert_eq!(back, r);
    }

    #[test]
    fn a_left_out_home_agent_nobody_serves_any_more_stays_unspecified() {
        let me = a("2001:db8:4::1");
        let r = record(5, "ff35::200:0:0:5", None);
        let bytes = encoded(&entry(r, me, &policy()));
        let mut now = policy();
        now.home_agents.clear();
        let back = restored(MmaRecord::decode(&bytes).unwrap(), me, &now);
        assert_eq!(back.payload.home_agent, Ipv6Addr::UNSPECIFIED);
    }

    #[test]
    fn records_of_the_previous_format_are_read() {
        let me = a("2001:db8:4::1");
        for r in [
            record(5, "ff35::200:0:0:5", None),
            record(6, "ff35::6", Some("2001:db8:5::9")),
        ] {
            let bytes = legacy_record(&r, me);
            assert_eq!(
                bytes.len() + 6,
                if r.payload.forward_to.is_some() {
                    130
                } else {
                    114
                }
            );
            let back = MmaRecord::decode(&bytes).unwrap();
            assert!(!back.record.payload.home_agent_derived);
            assert_eq!(restored(back, me, &policy()), r);
        }
        // A damaged old record (forwarding tag 2) is refused, not misread.
        let mut bytes = legacy_record(&record(5, "ff35::5", None), me);
        *bytes.last_mut().unwrap() = 2;
        assert_eq!(MmaRecord::decode(&bytes), None);
        // So is an unknown flag in the new format.
        let mut bytes = encoded(&entry(record(5, "ff35::5", None), me, &policy()));
        let at = bytes.len() - 9;
        bytes[at] |= 0x40;
        assert_eq!(MmaRecord::decode(&bytes), None);
    }

    /// A journal file written by the previous version (old-format records) opens, and after
    /// a compaction holds the same terminals in the compact format.
    #[test]
    fn a_journal_of_the_previous_format_migrates_by_compaction() {
        let dir = std::env::temp_dir().join(format!("mma-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        let me = a("2001:db8:4::1");
        let p = policy();
        let old: Vec<BindingRecord<Terminal>> = (1..=50)
            .map(|i| record(i, &format!("ff35::200:0:0:{i:x}"), None))
            .collect();
        // The old version's journal: the same framing, old payloads. A `Rec` that carries
        // raw bytes writes them as they are.
        #[derive(Debug, Clone, PartialEq, Eq)]
        struct Raw(Ipv6Addr, Vec<u8>);
        impl JournalRecord for Raw {
            type Key = Ipv6Addr;
            fn key(&self) -> Ipv6Addr {
                self.0
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.1);
            }
            fn decode(_: &[u8]) -> Option<Raw> {
                None
            }
            fn encode_key(k: &Ipv6Addr, out: &mut Vec<u8>) {
                out.extend_from_slice(&k.octets());
            }
            fn decode_key(_: &[u8]) -> Option<Ipv6Addr> {
                None
            }
        }
        {
            let (mut j, _) = Journal::<Raw>::open(&path).unwrap();
            let entries: Vec<JournalEntry<Raw>> = old
                .iter()
                .map(|r| JournalEntry::Put(Raw(r.hoa, legacy_record(r, me))))
                .collect();
            j.append(&entries).unwrap();
        }
        let old_len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(old_len, 8 + 50 * 114);

        let (mut j, st) = Journal::<MmaRecord>::open(&path).unwrap();
        assert!(!st.foreign && st.torn_bytes == 0);
        let mut back: Vec<_> = st
            .records
            .into_values()
            .map(|e| restored(e, me, &p))
            .collect();
        back.sort_by_key(|r| r.hoa);
        assert_eq!(back, old);

        let compact: Vec<MmaRecord> = back.iter().map(|r| entry(r.clone(), me, &p)).collect();
        j.compact(compact.iter(), None).unwrap();
        drop(j);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 + 50 * 98);
        let (_, st) = Journal::<MmaRecord>::open(&path).unwrap();
        let mut again: Vec<_> = st
            .records
            .into_values()
            .map(|e| restored(e, me, &p))
            .collect();
        again.sort_by_key(|r| r.hoa);
        assert_eq!(again, old);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
