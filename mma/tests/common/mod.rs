//! Shared fixture: the reference topology's addresses and a Binding Update builder that signs
//! with the wire crate, as a terminal would.
#![allow(dead_code)] // each test binary uses a different part

use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use mipcast_netns_tests::mh_client::Bu;
use mipcast_wire::auth::Algorithm;
use mipcast_wire::mh::{bu_flags, Message, MhRepr, MobilityOption};

pub(crate) const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub(crate) const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
pub(crate) const MMA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
pub(crate) const ON_LINK: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 2);
pub(crate) const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x100);
pub(crate) const GROUP: Ipv6Addr = Ipv6Addr::new(0xff35, 0, 0, 0, 0x200, 0xff, 0xfe00, 0x100);
pub(crate) const NEW_COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 2);
pub(crate) const SPI: u32 = 1000;
pub(crate) const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A terminal's Binding Update to the MMA, from its on-link address.
pub(crate) fn terminal_bu(sequence: u16, hoa: Ipv6Addr, group: Ipv6Addr, timestamp: u64) -> Bu {
    Bu {
        flags: bu_flags::ACK | bu_flags::MAP,
        lifetime: 10,
        group: Some(group),
        timestamp,
        ..Bu::new(sequence, hoa, ON_LINK, SPI, KEY)
    }
}

/// A parsed acknowledgement: status, options, and whether its authenticator verifies.
#[derive(Debug)]
pub(crate) struct Ack {
    pub status: u8,
    pub sequence: u16,
    pub options: Vec<MobilityOption>,
    pub authentic: bool,
}

pub(crate) fn parse_ack(bytes: &[u8], coa: Ipv6Addr, hoa: Ipv6Addr) -> Ack {
    let repr = MhRepr::parse(bytes).expect("parse BAck");
    let Message::BindingAck(back) = repr.message else {
        panic!("not a BAck: {repr:?}")
    };
    let authentic = mipcast_wire::auth::verify(bytes, &coa, &hoa, |spi| {
        (spi == SPI).then_some((Algorithm::HmacSha256_128, KEY))
    })
    .is_ok();
    Ack {
        status: back.status,
        sequence: back.sequence,
        options: repr.options,
        authentic,
    }
}

/// The NTP timestamp of the wall clock now (what a terminal puts in Replay Protection).
pub(crate) fn ntp_now() -> u64 {
    mipcast_wire::ntp::ntp_timestamp(SystemTime::now())
}

pub(crate) fn ntp_at(unix_ms: u64) -> u64 {
    mipcast_wire::ntp::ntp_timestamp(UNIX_EPOCH + Duration::from_millis(unix_ms))
}
