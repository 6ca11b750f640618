//! Every Mobility Header message we emit, authenticated BU included, decodes in tshark without
//! warnings, and tshark reads the fields we meant to write.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;

use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{
    advice_reason, back_status, be_status, bu_flags, fill_checksum, BindingAck, BindingError,
    BindingUpdate, Experimental, Message, MhRepr, MobilityOption, IPPROTO_MH,
};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An IPv6 packet from `src` to `dst` around the MH, checksum filled for those addresses.
fn frame(src: Ipv6Addr, dst: Ipv6Addr, mut mh: Vec<u8>) -> Vec<u8> {
    fill_checksum(&mut mh, &src, &dst).unwrap();
    common::ipv6(src, dst, IPPROTO_MH, 64, &mh)
}

fn emit(repr: &MhRepr) -> Vec<u8> {
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf
}

#[test]
#[ignore = "needs tshark (run-tests.sh runs it)"]
fn tshark_decodes_every_message() {
    common::require_tshark();
    let (mn, ha, mma) = (
        a("2001:db8:100::10"),
        a("2001:db8:1::1"),
        a("2001:db8:300::1"),
    );
    let hoa = a("2001:db8:1::100");
    let hnp = MobilityOption::HomeNetworkPrefix {
        prefix_len: 128,
        prefix: hoa,
    };
    let bu_ha = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: 4660,
            flags: bu_flags::ACK | bu_flags::HOME,
            lifetime: 150,
        }),
        options: vec![
            hnp.clone(),
            MobilityOption::AlternateCareOf(a("2001:db8:200::20")),
            MobilityOption::ReplayProtection {
                timestamp: 0xE8D4_A510_0000_0000,
            },
        ],
    };
    let bu_mma = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: 7,
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime: 300,
        }),
        options: vec![
            hnp.clone(),
            MobilityOption::Experimental(Experimental::TerminalGroup(a(
                "ff35::211:22ff:fe33:4455",
            ))),
        ],
    };
    let bu_fwd = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: 8,
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime: 0,
        }),
        options: vec![
            hnp.clone(),
            MobilityOption::Experimental(Experimental::ForwardingRequest {
                new_coa: a("2001:db8:400::1"),
                grace_secs: 10,
            }),
        ],
    };
    let back_ok = MhRepr {
        message: Message::BindingAck(BindingAck {
            status: back_status::ACCEPTED,
            flags: 0,
            sequence: 7,
            lifetime: 300,
        }),
        options: vec![
            MobilityOption::BindingRefreshAdvice { interval: 60 },
            MobilityOption::Experimental(Experimental::AssignedCoa(mma)),
        ],
    };
    let back_fail = MhRepr {
        message: Message::BindingAck(BindingAck {
            status: back_status::NOT_HOME_SUBNET,
            flags: 0x80,
            sequence: 9,
            lifetime: 0,
        }),
        options: vec![],
    };
    let brr = MhRepr {
        message: Message::BindingRefreshRequest,
        options: vec![],
    };
    let advice = MhRepr {
        message: Message::BindingRefreshRequest,
        options: vec![
            hnp.clone(),
            MobilityOption::ReplayProtection {
                timestamp: 0xE8D4_A510_0000_0000,
            },
            MobilityOption::Experimental(Experimental::HandoffAdvice {
                reason: advice_reason::MAINTENANCE,
                avoid_secs: 30,
                link_address: mn,
            }),
        ],
    };
    let be = MhRepr {
        message: Message::BindingError(BindingError {
            status: be_status::UNRECOGNIZED_MH_TYPE,
            home_address: hoa,
        }),
        options: vec![],
    };

    let key: Vec<u8> = (1..=20).collect();
    let mut packets = vec![];
    for (spi, algorithm) in [
        (0x0102_0304, Algorithm::HmacSha1_96),
        (0x0506_0708, Algorithm::HmacSha256_128),
    ] {
        let mut buf = vec![0; 256];
        let n = bu_ha
            .emit_authenticated(
                &mut buf,
                &Credentials {
                    spi,
                    algorithm,
                    key: &key,
                },
                &mn,
                &hoa,
            )
            .unwrap();
        buf.truncate(n);
        packets.push(frame(mn, ha, buf));
    }
    packets.push(frame(mn, mma, emit(&bu_mma)));
    packets.push(frame(mn, mma, emit(&bu_fwd)));
    packets.push(frame(mma, mn, emit(&back_ok)));
    packets.push(frame(ha, mn, emit(&back_fail)));
    packets.push(frame(ha, mn, emit(&brr)));
    packets.push(frame(ha, mn, emit(&be)));
    let mut buf = vec![0; 256];
    let n = advice
        .emit_authenticated(
            &mut buf,
            &Credentials {
                spi: 0x0a0b_0c0d,
                algorithm: Algorithm::HmacSha1_96,
                key: &key,
            },
            &mn,
            &hoa,
        )
        .unwrap();
    buf.truncate(n);
    packets.push(frame(mma, mn, buf));

    let pcap = common::write_pcap("mh_all", &packets);
    let problems = common::tshark_problems(&pcap);
    assert!(problems.is_empty(), "tshark problems: {problems:#?}");

    let text = common::tshark_verbose(&pcap);
    if std::env::var_os("MH_TSHARK_DUMP").is_some() {
        eprintln!("{text}");
    }
    for needle in EXPECTED {
        assert!(text.contains(needle), "tshark -V lacks {needle:?}:\n{text}");
    }
}

/// Lines of tshark 4.0's verbose decode for the packets above. (tshark 4.0 shows the
/// Authentication and Experimental option data two bytes short of their Option Length and
/// names subtype 1 "Unknown"; scapy and RFC 4285 §5 agree with our layout, so we do not assert
/// on those lines.)
const EXPECTED: &[&str] = &[
    "Mobility Header Type: Binding Update (5)",
    "Acknowledge (A) flag: Binding Acknowledgement requested",
    "Home Registration (H) flag: Home Registration",
    "MAP Registration Compatibility (M) flag: MAP Registration Compatibility",
    "Lifetime: 150 (600 seconds)",
    "MIPv6 Option - Home Network Prefix: 2001:db8:1::100/128",
    "Alternate care-of address: 2001:db8:200::20",
    "Timestamp: Oct 13, 2093 05:26:40.000000000 UTC",
    "MIPv6 Option - AUTH-OPTION-TYPE",
    "Mobility SPI: 16909060",
    "Mobility SPI: 84281096",
    "MIPv6 Option - Experimental",
    "Status: Binding Update accepted (0)",
    "Refresh interval: 60 (240 seconds)",
    "Status: Not home subnet (132)",
    "Key Management Compatibility (K) flag: Key Management Mobility Compatibility",
    "Mobility Header Type: Binding Refresh Request (0)",
    "Status: Unrecognized MH type value (2)",
    "Home Address: 2001:db8:1::100",
    // The signed handoff advice (BRR + HNP + Replay Protection + sub-type 4 + Authentication).
    "Mobility SPI: 168496141",
];
