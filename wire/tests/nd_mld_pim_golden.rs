//! Our ND, MLD and PIM encoders and parsers against bytes produced by scapy
//! (tests/gen_icmp_pim_fixtures.py; the addresses below mirror its ADDRS table).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;

use mipcast_wire::mld::{self, GroupRecord, MldRepr, QueryV2, RecordType};
use mipcast_wire::nd::{
    self, MapOption, NdOption, NdRepr, NeighborAdvert, NeighborSolicit, PrefixInformation,
    RouterAdvert,
};
use mipcast_wire::pim::{
    self, Assert, EncodedGroup, EncodedSource, HelloOption, JoinPrune, JoinPruneGroup,
    LanPruneDelay, PimRepr,
};

const ROUTER: &str = "fe80::1";
const HOST: &str = "fe80::2";
const MMA: &str = "2001:db8:ff::1";
const MMA2: &str = "2001:db8:ff::2";
const GROUP: &str = "ff35::3656:78ff:fe9a:bcde";
const V1_GROUP: &str = "ff15::1234";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/icmp_pim/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run gen_icmp_pim_fixtures.py)"))
}

fn expected_ra() -> NdRepr {
    NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: false,
        other: true,
        router_lifetime: 1800,
        reachable_time: 30000,
        retrans_timer: 1000,
        options: vec![
            NdOption::SourceLinkLayerAddress([2, 0, 0, 0, 0, 1]),
            NdOption::PrefixInformation(PrefixInformation {
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                valid_lifetime: 86400,
                preferred_lifetime: 14400,
                prefix: a("2001:db8:1::"),
            }),
            NdOption::Mtu(1500),
            NdOption::Map(MapOption {
                distance: 1,
                preference: 15,
                rcoa: true,
                valid_lifetime: 3600,
                address: a(MMA),
            }),
            // RDNSS (RFC 8106): reserved, lifetime 600, one server.
            NdOption::Unknown {
                ty: 25,
                data: [&[0, 0, 0, 0, 0x02, 0x58][..], &a("2001:db8:1::53").octets()].concat(),
            },
        ],
    })
}

fn expected_report() -> MldRepr {
    let sources = [a(MMA), a(MMA2)];
    MldRepr::ReportV2 {
        records: RecordType::ALL
            .iter()
            .map(|&t| GroupRecord {
                record_type: t,
                multicast_address: a(GROUP),
                sources: sources.get(..(t as usize % 3)).unwrap().to_vec(),
            })
            .collect(),
    }
}

fn expected_hello() -> PimRepr {
    PimRepr::Hello {
        options: vec![
            HelloOption::Holdtime(105),
            HelloOption::LanPruneDelay(LanPruneDelay {
                tracking_support: false,
                propagation_delay_ms: 500,
                override_interval_ms: 2500,
            }),
            HelloOption::DrPriority(1),
            HelloOption::GenerationId(0x1234_5678),
            HelloOption::AddressList(vec![a("2001:db8:1::1"), a("2001:db8:2::1")]),
        ],
    }
}

fn expected_join_prune() -> PimRepr {
    PimRepr::JoinPrune(JoinPrune {
        upstream_neighbor: a(HOST),
        holdtime: 210,
        groups: vec![
            JoinPruneGroup {
                group: EncodedGroup::new(a(GROUP)),
                joins: vec![EncodedSource::new(a(MMA))],
                prunes: vec![],
            },
            JoinPruneGroup {
                group: EncodedGroup::new(a("ff35::1")),
                joins: vec![],
                prunes: vec![EncodedSource::new(a(MMA2))],
            },
        ],
    })
}

fn expected_assert() -> PimRepr {
    PimRepr::Assert(Assert {
        group: EncodedGroup::new(a(GROUP)),
        source: a(MMA),
        rpt: false,
        metric_preference: 101,
        metric: 20,
    })
}

/// Emits with `emit`, fills the checksum with `fill` and compares with the fixture; then
/// checks the fixture's own checksum with `verify` and that a flipped byte fails it.
#[allow(clippy::type_complexity)]
fn check_bytes(
    name: &str,
    src: &str,
    dst: &str,
    len: usize,
    emit: &dyn Fn(&mut [u8]) -> mipcast_wire::Result<usize>,
    fill: fn(&mut [u8], &Ipv6Addr, &Ipv6Addr) -> mipcast_wire::Result<()>,
    verify: fn(&[u8], &Ipv6Addr, &Ipv6Addr) -> mipcast_wire::Result<()>,
) {
    let want = fixture(name);
    let mut buf = vec![0xaa; len + 7];
    let n = emit(&mut buf).unwrap();
    assert_eq!(n, len, "{name}: emit length vs buffer_len");
    buf.truncate(n);
    fill(&mut buf, &a(src), &a(dst)).unwrap();
    assert_eq!(
        hex(&buf),
        hex(&want),
        "{name}: emitted bytes differ from scapy's"
    );
    verify(&want, &a(src), &a(dst)).unwrap();
    let mut bad = want.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        verify(&bad, &a(src), &a(dst)),
        Err(mipcast_wire::Error::BadChecksum),
        "{name}"
    );
    // Too small an output buffer is an error, never a panic or a short write.
    let mut small = vec![0; len - 1];
    assert!(
        emit(&mut small).is_err(),
        "{name}: emit into a short buffer"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn nd_matches_scapy() {
    let rs = NdRepr::RouterSolicit {
        options: vec![NdOption::SourceLinkLayerAddress([2, 0, 0, 0, 0, 2])],
    };
    let ra = expected_ra();
    for (name, src, dst, repr) in [("rs", HOST, "ff02::2", rs), ("ra", ROUTER, "ff02::1", ra)] {
        assert_eq!(NdRepr::parse(&fixture(name)).unwrap(), repr, "{name}");
        check_bytes(
            name,
            src,
            dst,
            repr.buffer_len(),
            &|b| repr.emit(b),
            nd::fill_checksum,
            nd::verify_checksum,
        );
    }
}

const HA: &str = "2001:db8:1::1";
const HOA: &str = "2001:db8:1::100";

#[test]
fn neighbor_solicitation_matches_scapy() {
    let ns = NeighborSolicit {
        target: a(HOA),
        source_lladdr: Some([2, 0, 0, 0, 0, 2]),
    };
    let dad = NeighborSolicit {
        target: a(HOA),
        source_lladdr: None,
    };
    let group = nd::solicited_node(&a(HOA));
    assert_eq!(group, a("ff02::1:ff00:100"));
    for (name, src, repr) in [("ns", HOST, ns), ("ns_dad", "::", dad)] {
        assert_eq!(
            NeighborSolicit::parse(&fixture(name)).unwrap(),
            repr,
            "{name}"
        );
        check_bytes(
            name,
            src,
            "ff02::1:ff00:100",
            repr.buffer_len(),
            &|b| repr.emit(b),
            nd::fill_checksum,
            nd::verify_checksum,
        );
    }
}

#[test]
fn neighbor_advertisement_matches_scapy() {
    let na = |solicited| NeighborAdvert {
        router: false,
        solicited,
        override_flag: true,
        target: a(HOA),
        target_lladdr: Some([2, 0, 0, 0, 0, 1]),
    };
    for (name, dst, repr) in [
        ("na", HOST, na(true)),
        ("na_unsolicited", "ff02::1", na(false)),
    ] {
        assert_eq!(
            NeighborAdvert::parse(&fixture(name)).unwrap(),
            repr,
            "{name}"
        );
        check_bytes(
            name,
            HA,
            dst,
            repr.buffer_len(),
            &|b| repr.emit(b),
            nd::fill_checksum,
            nd::verify_checksum,
        );
    }
}

#[test]
fn neighbor_messages_refuse_what_rfc_4861_discards() {
    let ns = fixture("ns");
    // Multicast target (§7.1.1).
    let mut bad = ns.clone();
    bad[8] = 0xff;
    assert_eq!(
        NeighborSolicit::parse(&bad),
        Err(mipcast_wire::Error::Malformed("multicast nd target"))
    );
    // Non-zero code.
    let mut bad = ns.clone();
    bad[1] = 1;
    assert!(NeighborSolicit::parse(&bad).is_err());
    // Shorter than 24 bytes, and an option of length zero.
    assert_eq!(
        NeighborSolicit::parse(&ns[..23]),
        Err(mipcast_wire::Error::Truncated)
    );
    let mut bad = ns.clone();
    bad[25] = 0;
    assert_eq!(
        NeighborSolicit::parse(&bad),
        Err(mipcast_wire::Error::BadLength)
    );
    // An NA is not an NS, and the other way round.
    assert!(NeighborSolicit::parse(&fixture("na")).is_err());
    assert!(NeighborAdvert::parse(&ns).is_err());
    // Unknown options are skipped (§4.3), a non-Ethernet link-layer address is not kept.
    let mut with_unknown = ns[..24].to_vec();
    with_unknown.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
    with_unknown.extend_from_slice(&[1, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        NeighborSolicit::parse(&with_unknown).unwrap(),
        NeighborSolicit {
            target: a(HOA),
            source_lladdr: None
        }
    );
}

#[test]
fn ra_view_and_map_option() {
    let bytes = fixture("ra");
    let view = nd::NdPacket::new_checked(&bytes[..]).unwrap();
    assert_eq!(view.msg_type(), nd::ROUTER_ADVERTISEMENT);
    assert_eq!(
        (view.cur_hop_limit(), view.managed(), view.other()),
        (64, false, true)
    );
    assert_eq!(
        (
            view.router_lifetime(),
            view.reachable_time(),
            view.retrans_timer()
        ),
        (1800, 30000, 1000)
    );
    let types: Vec<u8> = view.options().map(|o| o.unwrap().ty).collect();
    assert_eq!(types, [1, 3, 5, 23, 25]);
    let NdRepr::RouterAdvert(ra) = NdRepr::parse(&bytes).unwrap() else {
        panic!("not an RA")
    };
    assert_eq!(ra.map().unwrap().address, a(MMA));
}

#[test]
fn mld_matches_scapy() {
    let cases = [
        (
            "mldv2_query_general",
            ROUTER,
            "ff02::1",
            MldRepr::QueryV2(QueryV2 {
                max_response_code: 10000,
                multicast_address: Ipv6Addr::UNSPECIFIED,
                suppress_router_side: false,
                qrv: 2,
                qqic: 125,
                sources: vec![],
            }),
        ),
        (
            "mldv2_query_group_source",
            ROUTER,
            GROUP,
            MldRepr::QueryV2(QueryV2 {
                max_response_code: 0x8400,
                multicast_address: a(GROUP),
                suppress_router_side: true,
                qrv: 2,
                qqic: 0x88,
                sources: vec![a(MMA), a(MMA2)],
            }),
        ),
        ("mldv2_report", HOST, "ff02::16", expected_report()),
        (
            "mldv1_query",
            ROUTER,
            "ff02::1",
            MldRepr::QueryV1 {
                max_response_delay_ms: 10000,
                multicast_address: Ipv6Addr::UNSPECIFIED,
            },
        ),
        (
            "mldv1_report",
            HOST,
            V1_GROUP,
            MldRepr::ReportV1 {
                multicast_address: a(V1_GROUP),
            },
        ),
        (
            "mldv1_done",
            HOST,
            "ff02::2",
            MldRepr::DoneV1 {
                multicast_address: a(V1_GROUP),
            },
        ),
    ];
    for (name, src, dst, repr) in cases {
        assert_eq!(MldRepr::parse(&fixture(name)).unwrap(), repr, "{name}");
        check_bytes(
            name,
            src,
            dst,
            repr.buffer_len(),
            &|b| repr.emit(b),
            mld::fill_checksum,
            mld::verify_checksum,
        );
    }
}

#[test]
fn mld_query_codes_decode_as_rfc3810_says() {
    let MldRepr::QueryV2(q) = MldRepr::parse(&fixture("mldv2_query_group_source")).unwrap() else {
        panic!("not a v2 query")
    };
    // 0x8400: exp 0, mant 0x400 -> (0x1000 | 0x400) << 3; 0x88: exp 0, mant 8 -> 0x18 << 3.
    assert_eq!(q.max_response_delay_ms(), 40960);
    assert_eq!(q.query_interval_secs(), 192);
}

#[test]
fn mld_report_aux_data_is_skipped() {
    // One record carries a 1-word aux data block; the record after it must still be found.
    let want = MldRepr::ReportV2 {
        records: vec![
            GroupRecord {
                record_type: RecordType::ModeIsInclude,
                multicast_address: a(GROUP),
                sources: vec![a(MMA)],
            },
            GroupRecord {
                record_type: RecordType::AllowNewSources,
                multicast_address: a(V1_GROUP),
                sources: vec![a(MMA2)],
            },
        ],
    };
    let bytes = fixture("mldv2_report_auxdata");
    mld::verify_checksum(&bytes, &a(HOST), &a("ff02::16")).unwrap();
    assert_eq!(MldRepr::parse(&bytes).unwrap(), want);
    // Claiming more aux data than the buffer holds is an error, not an over-read.
    let mut bad = bytes.clone();
    bad[9] = 200;
    assert_eq!(MldRepr::parse(&bad), Err(mipcast_wire::Error::Truncated));
}

#[test]
fn pim_matches_scapy() {
    let cases = [
        ("pim_hello", expected_hello()),
        ("pim_join_prune", expected_join_prune()),
        ("pim_assert", expected_assert()),
    ];
    for (name, repr) in cases {
        assert_eq!(PimRepr::parse(&fixture(name)).unwrap(), repr, "{name}");
        check_bytes(
            name,
            ROUTER,
            "ff02::d",
            repr.buffer_len(),
            &|b| repr.emit(b),
            pim::fill_checksum,
            pim::verify_checksum,
        );
    }
}

#[test]
fn pim_checksum_includes_pseudo_header() {
    // Same bytes, different source: the checksum must no longer verify (IPv4-style PIM
    // checksums, without the pseudo-header, would).
    let bytes = fixture("pim_hello");
    pim::verify_checksum(&bytes, &a(ROUTER), &pim::ALL_PIM_ROUTERS).unwrap();
    assert!(pim::verify_checksum(&bytes, &a(HOST), &pim::ALL_PIM_ROUTERS).is_err());
}

/// A Hello as a dual-stack standard router sends it: every RFC 7761 option, an Address List
/// holding only an IPv4 entry (issue 10's bytes), one mixing both families, and options of
/// other PIM variants. The IPv6 entries and every known option survive; the IPv4 entries
/// and nothing else are skipped; the unknown options are kept as such.
#[test]
fn hello_with_foreign_addresses_and_unknown_options_keeps_the_rest() {
    let bytes = fixture("pim_hello_foreign");
    let ipv4_only = [0x00, 0x18, 0x00, 0x06, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x02];
    assert!(
        bytes.windows(ipv4_only.len()).any(|w| w == ipv4_only),
        "fixture holds the IPv4-only Address List bytes"
    );
    pim::verify_checksum(&bytes, &a(ROUTER), &pim::ALL_PIM_ROUTERS).unwrap();
    let want = vec![
        HelloOption::Holdtime(105),
        HelloOption::LanPruneDelay(LanPruneDelay {
            tracking_support: true,
            propagation_delay_ms: 400,
            override_interval_ms: 2000,
        }),
        HelloOption::DrPriority(42),
        HelloOption::GenerationId(0xcafe_f00d),
        HelloOption::AddressList(vec![]),
        HelloOption::AddressList(vec![a("2001:db8:1::1"), a("2001:db8:2::1")]),
        HelloOption::Unknown {
            ty: 21,
            data: vec![0x01, 0x3c, 0x00, 0x00],
        },
        HelloOption::Unknown {
            ty: 22,
            data: vec![],
        },
    ];
    let hello = pim::parse_hello(&bytes[4..]);
    assert_eq!(hello.options, want);
    assert_eq!(
        hello.skipped,
        vec![
            pim::HelloSkip::ForeignAddresses(1),
            pim::HelloSkip::ForeignAddresses(1)
        ]
    );
    assert_eq!(
        PimRepr::parse(&bytes).unwrap(),
        PimRepr::Hello { options: want }
    );
}

/// Options that cannot be decoded are dropped one by one; the Hello itself never fails.
#[test]
fn hello_skips_bad_truncated_and_unknown_family_options() {
    let v6 = a("2001:db8::7").octets();
    let mut body = Vec::new();
    // Holdtime with a 3-byte value: bad length, dropped.
    body.extend_from_slice(&[0, 1, 0, 3, 0, 105, 0]);
    // Generation ID, fine.
    body.extend_from_slice(&[0, 20, 0, 4, 1, 2, 3, 4]);
    // Address List: an IPv6 entry, then one of family 99 (unknown length): the tail goes.
    body.extend_from_slice(&[0, 24, 0, 18 + 6]);
    body.extend_from_slice(&[2, 0]);
    body.extend_from_slice(&v6);
    body.extend_from_slice(&[99, 0, 1, 2, 3, 4]);
    // Address List with an IPv6 entry cut short.
    body.extend_from_slice(&[0, 24, 0, 10, 2, 0, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0]);
    // DR Priority, fine.
    body.extend_from_slice(&[0, 19, 0, 4, 0, 0, 0, 9]);
    // An option claiming 200 bytes at the end: truncated, dropped.
    body.extend_from_slice(&[0, 20, 0, 200, 1]);
    let hello = pim::parse_hello(&body);
    assert_eq!(
        hello.options,
        vec![
            HelloOption::GenerationId(0x0102_0304),
            HelloOption::AddressList(vec![a("2001:db8::7")]),
            HelloOption::AddressList(vec![]),
            HelloOption::DrPriority(9),
        ]
    );
    assert_eq!(
        hello.skipped,
        vec![
            pim::HelloSkip::BadOption {
                ty: 1,
                error: mipcast_wire::Error::BadLength
            },
            pim::HelloSkip::AddressListTail(mipcast_wire::Error::Unsupported("pim address family")),
            pim::HelloSkip::AddressListTail(mipcast_wire::Error::Truncated),
            pim::HelloSkip::Truncated,
        ]
    );
    let mut msg = vec![0x20, 0, 0, 0];
    msg.extend_from_slice(&body);
    assert!(matches!(PimRepr::parse(&msg), Ok(PimRepr::Hello { options }) if options.len() == 4));
}

/// Join/Prune messages that claim more than they hold, or use an address family other than
/// IPv6, are rejected whole (their lengths cannot be trusted), never half-read.
#[test]
fn join_prune_with_missing_sources_or_foreign_families_is_rejected() {
    let good = fixture("pim_join_prune");
    assert!(PimRepr::parse(&good).is_ok());
    // First group's join count (offset 4 + 18 + 4 + 20 = 46) raised to 4: 80 bytes of
    // sources where 64 bytes remain.
    let mut more = good.clone();
    more[47] = 4;
    assert_eq!(PimRepr::parse(&more), Err(mipcast_wire::Error::Truncated));
    // A hostile count of 65535 sources does not allocate or panic either.
    let mut huge = good.clone();
    huge[46] = 0xff;
    huge[47] = 0xff;
    assert_eq!(PimRepr::parse(&huge), Err(mipcast_wire::Error::Truncated));
    // Upstream neighbour encoded as IPv4 (family 1).
    let mut v4 = good.clone();
    v4[4] = 1;
    assert!(matches!(
        PimRepr::parse(&v4),
        Err(mipcast_wire::Error::Unsupported(_))
    ));
    // A source of an unknown family.
    let mut src = good.clone();
    src[50] = 7;
    assert!(matches!(
        PimRepr::parse(&src),
        Err(mipcast_wire::Error::Unsupported(_))
    ));
    // More groups than the packet holds.
    let mut groups = good;
    groups[23] = 5;
    assert_eq!(PimRepr::parse(&groups), Err(mipcast_wire::Error::Truncated));
}
