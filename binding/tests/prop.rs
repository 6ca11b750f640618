//! No sequence of Binding Updates, however forged, replayed or mangled, yields an `Install`
//! that was not caused by a BU the test itself signed with the right key for that home address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::collections::HashMap;

use common::*;
use mipcast_binding::sa::Algorithm;
use mipcast_binding::Action;
use mipcast_wire::mh::CHECKSUM_OFFSET;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A correctly signed BU (sequence, lifetime units, timestamp offset ms, home address index).
    Genuine {
        seq: u16,
        lifetime: u16,
        ts_offset_ms: i64,
        hoa: u8,
    },
    /// Signed with a wrong key under the real SPI.
    WrongKey {
        seq: u16,
        hoa: u8,
    },
    /// Correctly signed by the SA that may not register the home prefix.
    Unauthorised {
        seq: u16,
        hoa: u8,
    },
    /// A previously sent BU again, byte for byte.
    Replay(usize),
    /// A previously sent genuine BU with one byte changed.
    Flip {
        index: usize,
        at: usize,
        mask: u8,
    },
    /// Arbitrary bytes.
    Garbage(Vec<u8>),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u16>(), 0..40u16, -9000..9000i64, 0..3u8)
            .prop_map(|(seq, lifetime, ts_offset_ms, hoa)| Op::Genuine { seq, lifetime, ts_offset_ms, hoa }),
        1 => (any::<u16>(), 0..3u8).prop_map(|(seq, hoa)| Op::WrongKey { seq, hoa }),
        1 => (any::<u16>(), 0..3u8).prop_map(|(seq, hoa)| Op::Unauthorised { seq, hoa }),
        2 => any::<usize>().prop_map(Op::Replay),
        2 => (any::<usize>(), any::<usize>(), 1..=255u8).prop_map(|(index, at, mask)| Op::Flip { index, at, mask }),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Op::Garbage),
        2 => (0..30_000u32).prop_map(Op::Advance),
    ]
}

/// The checksum is not covered by the authenticator (the kernel checks it), so a genuine BU
/// with a different checksum is still genuine.
fn without_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if let Some(c) = b.get_mut(CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2) {
        c.fill(0);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn install_only_after_successful_verification(ops in proptest::collection::vec(op(), 1..40)) {
        let mut ha = home_agent();
        let mut clock = Clock::new();
        // Genuine BUs by their bytes (checksum zeroed) → (home address, sequence, timestamp).
        let mut genuine: HashMap<Vec<u8>, (std::net::Ipv6Addr, u16, u64)> = HashMap::new();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let hoa_of = |i: u8| addr(1, 0x100 + u16::from(i));

        for op in ops {
            let bytes = match op {
                Op::Genuine { seq, lifetime, ts_offset_ms, hoa } => {
                    let ts = clock.ntp(ts_offset_ms);
                    let mut bu = Bu::new(seq, ts);
                    bu.lifetime = lifetime;
                    bu.hoa = Some((128, hoa_of(hoa)));
                    let b = bu.bytes();
                    genuine.insert(without_checksum(&b), (hoa_of(hoa), seq, ts));
                    b
                }
                Op::WrongKey { seq, hoa } => {
                    let mut bu = Bu::new(seq, clock.ntp(0));
                    bu.hoa = Some((128, hoa_of(hoa)));
                    bu.signer = Some((SPI, Algorithm::HmacSha256_128, b"wrong".to_vec()));
                    bu.bytes()
                }
                Op::Unauthorised { seq, hoa } => {
                    let mut bu = Bu::new(seq, clock.ntp(0));
                    bu.hoa = Some((128, hoa_of(hoa)));
                    bu.signer = Some((FOREIGN_SPI, Algorithm::HmacSha1_96, FOREIGN_KEY.to_vec()));
                    bu.bytes()
                }
                Op::Replay(i) if !sent.is_empty() => sent[i % sent.len()].clone(),
                Op::Flip { index, at, mask } if !sent.is_empty() => {
                    let mut b = sent[index % sent.len()].clone();
                    let at = at % b.len().max(1);
                    if let Some(byte) = b.get_mut(at) {
                        *byte ^= mask;
                    }
                    b
                }
                Op::Garbage(b) => b,
                Op::Advance(ms) => {
                    clock.advance_ms(u64::from(ms));
                    for a in ha.poll_timers(clock.now()) {
                        prop_assert!(!matches!(a, Action::Install { .. }), "timer installed: {a:?}");
                    }
                    continue;
                }
                Op::Replay(_) | Op::Flip { .. } => continue,
            };
            let actions = ha.handle_bu(COA, HA, &bytes, clock.now());
            for a in &actions {
                if let Action::Install { binding, .. } = a {
                    let origin = genuine.get(&without_checksum(&bytes));
                    prop_assert!(origin.is_some(), "install from a BU the test never signed: {a:?}");
                    let (hoa, seq, ts) = *origin.unwrap_or(&(HA, 0, 0));
                    prop_assert_eq!((binding.hoa, binding.coa, binding.sequence), (hoa, COA, seq));
                    prop_assert_eq!(binding.last_timestamp, ts);
                    prop_assert_eq!(binding.spi, SPI);
                }
            }
            sent.push(bytes);
        }
    }
}
