//! Context transfer between MMAs (wire/src/context.rs): golden bytes from scapy
//! (tests/gen_mh_fixtures.py), the encoded sizes the issue targets, authentication and
//! tampering, and tshark's decode.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;

use mipcast_wire::auth::{Algorithm, AuthError, Credentials};
use mipcast_wire::context::{
    self, context_flags, ContextReply, ContextRequest, CorrespondentEntry, TerminalContext,
    TerminalContextView, MAX_CORRESPONDENTS,
};
use mipcast_wire::mh::{
    bu_flags, fill_checksum, BindingUpdate, Experimental, Message, MhPacket, MhRepr,
    MobilityOption, IPPROTO_MH,
};

// The same constants as the python script.
const SRC: &str = "2001:db8:100::10";
const DST: &str = "2001:db8:1::1";
const HOA: &str = "2001:db8:1::100";
const GROUP: &str = "ff35::211:22ff:fe33:4455";
const ASSIGNED_COA: &str = "2001:db8:300::1";
const AUTH_SPI: u32 = 0x100;
const REPLAY_TS: u64 = 0xE8D4_A510_0000_0000;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn key() -> Vec<u8> {
    (1..=20).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/mh/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (run /usr/bin/python3 wire/tests/gen_mh_fixtures.py)")
    })
}

fn creds(algorithm: Algorithm, key: &[u8]) -> Credentials<'_> {
    Credentials {
        spi: AUTH_SPI,
        algorithm,
        key,
    }
}

fn two_correspondents() -> TerminalContext {
    TerminalContext {
        flags: context_flags::FORWARDING,
        group: a(GROUP),
        lifetime_left_s: 300,
        correspondents: vec![
            CorrespondentEntry {
                address: a("2001:db8:c::1"),
                lifetime_left_s: 100,
                sequence: 7,
            },
            CorrespondentEntry {
                address: a("2001:db8:c::2"),
                lifetime_left_s: 101,
                sequence: 8,
            },
        ],
    }
}

fn request() -> ContextRequest {
    ContextRequest {
        sequence: 0x0102,
        hoa: a(HOA),
        timestamp: REPLAY_TS,
    }
}

fn reply(status: u8, context: Option<TerminalContext>) -> ContextReply {
    ContextReply {
        status,
        sequence: 0x0102,
        hoa: a(HOA),
        context,
    }
}

/// Our bytes with the checksum the fixture has (scapy's, for SRC -> DST).
fn with_checksum(mut mh: Vec<u8>) -> Vec<u8> {
    fill_checksum(&mut mh, &a(SRC), &a(DST)).unwrap();
    mh
}

#[test]
fn request_matches_scapy_and_parses_back() {
    let k = key();
    for (name, algorithm) in [
        ("context_request_sha256", Algorithm::HmacSha256_128),
        ("context_request_sha1", Algorithm::HmacSha1_96),
    ] {
        let ours = request()
            .emit_authenticated(&creds(algorithm, &k), &a(SRC))
            .unwrap();
        let golden = fixture(name);
        assert_eq!(with_checksum(ours.clone()), golden, "{name}");
        assert!(context::is_context_request(&golden));
        let repr = MhRepr::parse(&golden).unwrap();
        assert_eq!(ContextRequest::from_repr(&repr), Some(request()));
        let spi = context::verify(&golden, &a(SRC), &a(HOA), |spi| {
            (spi == AUTH_SPI).then_some((algorithm, k.as_slice()))
        });
        assert_eq!(spi, Ok(AUTH_SPI));
    }
}

#[test]
fn reply_matches_scapy_and_parses_back() {
    let k = key();
    for (name, algorithm, status, ctx) in [
        (
            "context_reply_sha1",
            Algorithm::HmacSha1_96,
            0,
            Some(two_correspondents()),
        ),
        (
            "context_reply_sha256",
            Algorithm::HmacSha256_128,
            0,
            Some(two_correspondents()),
        ),
        ("context_reply_133", Algorithm::HmacSha1_96, 133, None),
    ] {
        let r = reply(status, ctx);
        let ours = r
            .emit_authenticated(&creds(algorithm, &k), &a(SRC))
            .unwrap();
        let golden = fixture(name);
        assert_eq!(with_checksum(ours), golden, "{name}");
        assert!(!context::is_context_request(&golden));
        let repr = MhRepr::parse(&golden).unwrap();
        assert_eq!(ContextReply::from_repr(&repr), Some(r), "{name}");
        assert_eq!(
            context::verify(&golden, &a(SRC), &a(HOA), |_| Some((
                algorithm,
                k.as_slice()
            ))),
            Ok(AUTH_SPI)
        );
    }
}

#[test]
fn previous_mma_option_matches_scapy() {
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: 9,
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime: 300,
        }),
        options: vec![
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: a(HOA),
            },
            MobilityOption::Experimental(Experimental::TerminalGroup(a(GROUP))),
            MobilityOption::Experimental(Experimental::PreviousMma(a(ASSIGNED_COA))),
        ],
    };
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    let golden = fixture("bu_previous_mma");
    assert_eq!(with_checksum(buf), golden);
    assert_eq!(MhRepr::parse(&golden).unwrap(), repr);
    // A terminal's BU is not a Context Request, and not one for our parser either.
    assert!(!context::is_context_request(&golden));
    assert_eq!(ContextRequest::from_repr(&repr), None);
}

/// The target: at most 128 bytes on the wire per terminal with two correspondents,
/// in one round trip. Measured: request 72 bytes, reply 120 bytes (Mobility Header; the
/// IPv6 header adds 40 to each), with either algorithm.
#[test]
fn encoded_sizes_meet_the_target() {
    let k = key();
    for algorithm in [Algorithm::HmacSha1_96, Algorithm::HmacSha256_128] {
        let c = creds(algorithm, &k);
        let req = request().emit_authenticated(&c, &a(SRC)).unwrap();
        let rep = reply(0, Some(two_correspondents()))
            .emit_authenticated(&c, &a(SRC))
            .unwrap();
        eprintln!(
            "{algorithm:?}: context request {} bytes, reply with two correspondents {} bytes",
            req.len(),
            rep.len()
        );
        assert_eq!(req.len(), 72);
        assert_eq!(rep.len(), 120);
        assert!(rep.len() <= 128);
        // Each further correspondent costs 20 bytes (before the 8-byte alignment).
        let mut eleven = two_correspondents();
        eleven.correspondents = (0..MAX_CORRESPONDENTS)
            .map(|i| CorrespondentEntry {
                address: Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i as u16),
                lifetime_left_s: 1,
                sequence: 1,
            })
            .collect();
        let full = reply(0, Some(eleven))
            .emit_authenticated(&c, &a(SRC))
            .unwrap();
        assert!(full.len() <= 120 + 9 * 20 + 8, "{}", full.len());
    }
}

#[test]
fn a_reply_signed_for_another_requester_or_terminal_does_not_verify() {
    let k = key();
    let c = creds(Algorithm::HmacSha256_128, &k);
    let bytes = reply(0, Some(two_correspondents()))
        .emit_authenticated(&c, &a(SRC))
        .unwrap();
    let lookup = |_| Some((Algorithm::HmacSha256_128, k.as_slice()));
    assert_eq!(
        context::verify(&bytes, &a("2001:db8:100::11"), &a(HOA), lookup),
        Err(AuthError::Mismatch)
    );
    assert_eq!(
        context::verify(&bytes, &a(SRC), &a("2001:db8:1::101"), lookup),
        Err(AuthError::Mismatch)
    );
    // Any flipped bit of the context breaks the authenticator.
    for i in 12..bytes.len() - 16 {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(
            context::verify(&t, &a(SRC), &a(HOA), lookup).is_err(),
            "bit flip at {i} verified"
        );
    }
}

#[test]
fn malformed_terminal_context_options_are_refused() {
    let golden = fixture("context_reply_sha1");
    // The Terminal Context option starts at 32: | 18 | 62 | 7 | ...; shorten its length byte
    // by one correspondent's share plus one byte, which leaves a partial entry.
    let mut bad = golden.clone();
    bad[33] = 62 - 1;
    assert!(MhRepr::parse(&bad).is_err());
    // The zero-copy view on the option data agrees with the owned parse.
    let packet = MhPacket::new_checked(&golden[..]).unwrap();
    let raw = packet
        .options()
        .unwrap()
        .map(Result::unwrap)
        .find(|o| o.data.first() == Some(&7))
        .unwrap();
    let view = TerminalContextView::new_checked(raw.data).unwrap();
    assert_eq!(view.group(), a(GROUP));
    assert_eq!(view.lifetime_left_s(), 300);
    assert_eq!(view.flags(), context_flags::FORWARDING);
    assert_eq!(
        view.correspondents().collect::<Vec<_>>(),
        two_correspondents().correspondents
    );
}

#[test]
#[ignore = "needs tshark (run-tests.sh runs it)"]
fn tshark_decodes_the_context_messages() {
    common::require_tshark();
    let (mma2, mma1) = (a("2001:db8:ff::2"), a("2001:db8:ff::1"));
    let k = key();
    let c = creds(Algorithm::HmacSha256_128, &k);
    let frame = |src: Ipv6Addr, dst: Ipv6Addr, mut mh: Vec<u8>| {
        fill_checksum(&mut mh, &src, &dst).unwrap();
        common::ipv6(src, dst, IPPROTO_MH, 64, &mh)
    };
    let packets = vec![
        frame(mma2, mma1, request().emit_authenticated(&c, &mma2).unwrap()),
        frame(
            mma1,
            mma2,
            reply(0, Some(two_correspondents()))
                .emit_authenticated(&c, &mma2)
                .unwrap(),
        ),
        frame(
            mma1,
            mma2,
            reply(133, None).emit_authenticated(&c, &mma2).unwrap(),
        ),
        frame(a(SRC), mma2, fixture("bu_previous_mma")),
    ];
    let pcap = common::write_pcap("mh_context", &packets);
    let problems = common::tshark_problems(&pcap);
    assert!(problems.is_empty(), "tshark problems: {problems:#?}");
    let text = common::tshark_verbose(&pcap);
    if std::env::var_os("MH_TSHARK_DUMP").is_some() {
        eprintln!("{text}");
    }
    for needle in [
        "Mobility Header Type: Binding Update (5)",
        "Sequence number: 258",
        "MIPv6 Option - Home Network Prefix: 2001:db8:1::100/128",
        "Timestamp: Oct 13, 2093 05:26:40.000000000 UTC",
        "MIPv6 Option - Experimental",
        "Mobility SPI: 256",
        "Mobility Header Type: Binding Acknowledgement (6)",
        "Status: Binding Update accepted (0)",
        "Status: Not home agent for this mobile node (133)",
        "MAP Registration Compatibility (M) flag: MAP Registration Compatibility",
    ] {
        assert!(text.contains(needle), "tshark -V lacks {needle:?}:\n{text}");
    }
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary option data: the view and the owned parse agree, and never panic.
        #[test]
        fn terminal_context_view_agrees_with_parse(mut data in proptest::collection::vec(any::<u8>(), 0..260)) {
            if let Some(first) = data.first_mut() {
                *first = 7;
            }
            match (TerminalContextView::new_checked(&data[..]), TerminalContext::parse(&data)) {
                (Ok(view), Ok(owned)) => {
                    prop_assert_eq!(view.correspondent_count(), owned.correspondents.len());
                    prop_assert_eq!(view.correspondents().collect::<Vec<_>>(), owned.correspondents);
                }
                (Err(_), Err(_)) => {}
                (v, o) => prop_assert!(false, "view {:?} vs parse {:?}", v.is_ok(), o.is_ok()),
            }
        }

        /// A golden reply with bytes changed: parsing never panics, what parses re-emits to
        /// itself, and nothing changed verifies.
        #[test]
        fn mutated_replies_parse_safely(flips in proptest::collection::vec((0usize..120, any::<u8>()), 1..4)) {
            let k = key();
            let golden = fixture("context_reply_sha256");
            let mut bytes = golden.clone();
            for (at, x) in flips {
                bytes[at] ^= x;
            }
            if let Ok(repr) = MhRepr::parse(&bytes) {
                if let Some(reply) = ContextReply::from_repr(&repr) {
                    let again = reply
                        .emit_authenticated(&creds(Algorithm::HmacSha256_128, &k), &a(SRC))
                        .unwrap();
                    prop_assert_eq!(
                        ContextReply::from_repr(&MhRepr::parse(&again).unwrap()),
                        Some(reply.clone())
                    );
                    // The checksum is not covered by the authenticator (RFC 4285 §5.2).
                    let only_checksum = bytes[..4] == golden[..4] && bytes[6..] == golden[6..];
                    if !only_checksum {
                        let verdict = context::verify(&bytes, &a(SRC), &reply.hoa, |_| {
                            Some((Algorithm::HmacSha256_128, k.as_slice()))
                        });
                        prop_assert!(verdict.is_err(), "a changed reply verified");
                    }
                }
            }
        }
    }
}
