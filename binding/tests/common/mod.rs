//! Shared fixture for the registrar tests: a home agent on 2001:db8:1::1 serving the home
//! prefix 2001:db8:1::/64, a mobile node with home address 2001:db8:1::100 away at
//! 2001:db8:f::100, and a fake clock.
#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_binding::sa::Algorithm;
use mipcast_binding::{
    Action, HomeAgentPolicy, Now, Policy, Registrar, RegistrarConfig, SaTable, SecurityAssociation,
};
use mipcast_wire::auth::{self, Credentials};
use mipcast_wire::mh::{bu_flags, BindingAck, BindingUpdate, Message, MhRepr, MobilityOption};

pub(crate) const HA: Ipv6Addr = addr(0x0001, 1);
pub(crate) const HOA: Ipv6Addr = addr(0x0001, 0x100);
pub(crate) const COA: Ipv6Addr = addr(0x000f, 0x100);
/// A home address outside the home agent's prefix that SA `FOREIGN_SPI` may register.
pub(crate) const FOREIGN_HOA: Ipv6Addr = addr(0x0002, 0x100);

pub(crate) const SPI: u32 = 1000;
pub(crate) const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
/// A valid SA whose allowed prefix is 2001:db8:2::/64, not the home prefix.
pub(crate) const FOREIGN_SPI: u32 = 2000;
pub(crate) const FOREIGN_KEY: &[u8] = b"another key of twenty bytes";

/// 2027-01-15T08:00:00Z, an arbitrary wall clock origin.
pub(crate) const WALL_ORIGIN_MS: u64 = 1_800_000_000_000;
pub(crate) const SECOND_NTP: u64 = 1 << 32;

pub(crate) const fn addr(net: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, host)
}

/// Both clocks, advanced together; the monotonic origin is unrelated to the wall clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            mono_ms: 1_000,
            wall_ms: WALL_ORIGIN_MS,
        }
    }

    pub(crate) fn advance_ms(&mut self, ms: u64) {
        self.mono_ms += ms;
        self.wall_ms += ms;
    }

    pub(crate) fn now(&self) -> Now {
        Now::from_unix(self.mono_ms, Duration::from_millis(self.wall_ms))
    }

    /// The NTP timestamp of our wall clock shifted by `offset_ms`.
    pub(crate) fn ntp(&self, offset_ms: i64) -> u64 {
        let ms = self.wall_ms.checked_add_signed(offset_ms).unwrap();
        Now::from_unix(0, Duration::from_millis(ms)).wall_ntp
    }
}

pub(crate) fn sas() -> SaTable {
    SaTable::new([
        SecurityAssociation {
            spi: SPI,
            algorithm: Algorithm::HmacSha256_128,
            key: KEY.to_vec(),
            allowed: vec![(addr(1, 0), 64)],
        },
        SecurityAssociation {
            spi: FOREIGN_SPI,
            algorithm: Algorithm::HmacSha1_96,
            key: FOREIGN_KEY.to_vec(),
            allowed: vec![(addr(2, 0), 64)],
        },
    ])
    .unwrap()
}

pub(crate) fn config() -> RegistrarConfig {
    RegistrarConfig {
        max_lifetime_s: 3600,
        replay_window_ms: 7000,
        refresh_percent: 80,
    }
}

pub(crate) fn home_agent() -> Registrar<HomeAgentPolicy> {
    let policy = HomeAgentPolicy::new(vec![(addr(1, 0), 64)]).unwrap();
    Registrar::new(config(), sas(), policy).unwrap()
}

/// A Binding Update under construction; `bytes()` signs it.
#[derive(Debug, Clone)]
pub(crate) struct Bu {
    pub sequence: u16,
    pub flags: u16,
    /// In 4-second units.
    pub lifetime: u16,
    pub hoa: Option<(u8, Ipv6Addr)>,
    pub alt_coa: Option<Ipv6Addr>,
    pub timestamp: Option<u64>,
    pub extra: Vec<MobilityOption>,
    /// `None` leaves the authentication option out.
    pub signer: Option<(u32, Algorithm, Vec<u8>)>,
}

impl Bu {
    /// A home registration for `HOA` from `COA`, A and H set, 40 s, signed with `SPI`.
    pub(crate) fn new(sequence: u16, timestamp: u64) -> Self {
        Bu {
            sequence,
            flags: bu_flags::ACK | bu_flags::HOME,
            lifetime: 10,
            hoa: Some((128, HOA)),
            alt_coa: None,
            timestamp: Some(timestamp),
            extra: Vec::new(),
            signer: Some((SPI, Algorithm::HmacSha256_128, KEY.to_vec())),
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut options = Vec::new();
        if let Some((prefix_len, prefix)) = self.hoa {
            options.push(MobilityOption::HomeNetworkPrefix { prefix_len, prefix });
        }
        if let Some(a) = self.alt_coa {
            options.push(MobilityOption::AlternateCareOf(a));
        }
        if let Some(timestamp) = self.timestamp {
            options.push(MobilityOption::ReplayProtection { timestamp });
        }
        options.extend(self.extra.iter().cloned());
        let repr = MhRepr {
            message: Message::BindingUpdate(BindingUpdate {
                sequence: self.sequence,
                flags: self.flags,
                lifetime: self.lifetime,
            }),
            options,
        };
        let mut buf = vec![0; repr.buffer_len() + 64];
        let len = match &self.signer {
            Some((spi, algorithm, key)) => {
                let creds = Credentials {
                    spi: *spi,
                    algorithm: *algorithm,
                    key,
                };
                let hoa = self.hoa.map_or(Ipv6Addr::UNSPECIFIED, |(_, a)| a);
                let coa = self.alt_coa.unwrap_or(COA);
                repr.emit_authenticated(&mut buf, &creds, &coa, &hoa)
                    .unwrap()
            }
            None => repr.emit(&mut buf).unwrap(),
        };
        buf.truncate(len);
        buf
    }
}

/// Feeds `bu` as sent from `COA` to `HA`.
pub(crate) fn send<P: Policy>(
    r: &mut Registrar<P>,
    bu: &Bu,
    clock: &Clock,
) -> Vec<Action<P::Payload>> {
    r.handle_bu(COA, HA, &bu.bytes(), clock.now())
}

/// The `Send` actions, as (dst, src, bytes).
pub(crate) fn sends<P>(actions: &[Action<P>]) -> Vec<(Ipv6Addr, Ipv6Addr, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { dst, src, bytes } => Some((*dst, *src, bytes.clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn installs<P>(actions: &[Action<P>]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Install { .. }))
        .count()
}

/// A received acknowledgement, decoded from the bytes the registrar emitted.
#[derive(Debug)]
pub(crate) struct Ack {
    pub back: BindingAck,
    pub options: Vec<MobilityOption>,
    /// Result of verifying the authenticator for (coa, hoa) with the SA's key.
    pub auth: Result<u32, auth::AuthError>,
}

impl Ack {
    pub(crate) fn replay_timestamp(&self) -> Option<u64> {
        self.options.iter().find_map(|o| match o {
            MobilityOption::ReplayProtection { timestamp } => Some(*timestamp),
            _ => None,
        })
    }
}

/// Decodes the single BAck among `actions`, sent from `HA` to `COA`, verifying its
/// authenticator against both test SAs for (`coa`, `hoa`).
pub(crate) fn the_ack<P: std::fmt::Debug>(
    actions: &[Action<P>],
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
) -> Ack {
    let s = sends(actions);
    assert_eq!(s.len(), 1, "expected exactly one Send: {actions:?}");
    let (dst, src, bytes) = &s[0];
    assert_eq!((*dst, *src), (COA, HA), "BAck addressing");
    assert_eq!(bytes.len() % 8, 0, "MH length must be a multiple of 8");
    let repr = MhRepr::parse(bytes).unwrap();
    let Message::BindingAck(back) = repr.message else {
        panic!("not a BAck: {repr:?}")
    };
    let auth = auth::verify(bytes, &coa, &hoa, |spi| match spi {
        SPI => Some((Algorithm::HmacSha256_128, KEY)),
        FOREIGN_SPI => Some((Algorithm::HmacSha1_96, FOREIGN_KEY)),
        _ => None,
    });
    Ack {
        back,
        options: repr.options,
        auth,
    }
}

/// The status of the rejection reported in `actions`, checking the `Rejected` action agrees.
pub(crate) fn rejected_status<P: std::fmt::Debug>(actions: &[Action<P>]) -> u8 {
    let statuses: Vec<u8> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Rejected { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.len(), 1, "{actions:?}");
    statuses[0]
}
