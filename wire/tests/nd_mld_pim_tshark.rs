//! Every ND, MLD and PIM message our encoder produces must decode cleanly in Wireshark's
//! dissectors (checksums verified, no expert warnings), and show the values we put in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

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

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const ROUTER: &str = "fe80::1";
const HOST: &str = "fe80::2";
const MMA: &str = "2001:db8:ff::77";
const GROUP: &str = "ff35::3656:78ff:fe9a:bcde";
const SOURCE2: &str = "2001:db8:ff::88";

type Emit<'a> = dyn Fn(&mut [u8]) -> mipcast_wire::Result<usize> + 'a;
type Fill = fn(&mut [u8], &Ipv6Addr, &Ipv6Addr) -> mipcast_wire::Result<()>;

fn encode(len: usize, emit: &Emit<'_>, fill: Fill, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0; len];
    let n = emit(&mut buf).unwrap();
    buf.truncate(n);
    fill(&mut buf, &src, &dst).unwrap();
    buf
}

fn nd_packet(repr: &NdRepr, src: &str, dst: &str) -> Vec<u8> {
    let (src, dst) = (a(src), a(dst));
    let msg = encode(
        repr.buffer_len(),
        &|b| repr.emit(b),
        nd::fill_checksum,
        src,
        dst,
    );
    common::ipv6(src, dst, nd::IPPROTO_ICMPV6, 255, &msg)
}

/// A Neighbor Solicitation or Advertisement (their emit has the same shape as NdRepr's).
fn neighbor_packet(len: usize, emit: &Emit<'_>, src: &str, dst: &str) -> Vec<u8> {
    let (src, dst) = (a(src), a(dst));
    let msg = encode(len, emit, nd::fill_checksum, src, dst);
    common::ipv6(src, dst, nd::IPPROTO_ICMPV6, 255, &msg)
}

fn mld_packet(repr: &MldRepr, src: &str, dst: &str) -> Vec<u8> {
    let (src, dst) = (a(src), a(dst));
    let msg = encode(
        repr.buffer_len(),
        &|b| repr.emit(b),
        mld::fill_checksum,
        src,
        dst,
    );
    common::ipv6_router_alert(src, dst, nd::IPPROTO_ICMPV6, &msg)
}

fn pim_packet(repr: &PimRepr) -> Vec<u8> {
    let (src, dst) = (a(ROUTER), pim::ALL_PIM_ROUTERS);
    let msg = encode(
        repr.buffer_len(),
        &|b| repr.emit(b),
        pim::fill_checksum,
        src,
        dst,
    );
    common::ipv6(src, dst, pim::IPPROTO_PIM, 1, &msg)
}

fn all_messages() -> Vec<Vec<u8>> {
    let ra = NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: true,
        other: false,
        router_lifetime: 900,
        reachable_time: 0,
        retrans_timer: 0,
        options: vec![
            NdOption::SourceLinkLayerAddress([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
            NdOption::PrefixInformation(PrefixInformation {
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                valid_lifetime: 7200,
                preferred_lifetime: 3600,
                prefix: a("2001:db8:7::"),
            }),
            NdOption::Mtu(1400),
            NdOption::Map(MapOption {
                distance: 2,
                preference: 9,
                rcoa: true,
                valid_lifetime: 1234,
                address: a(MMA),
            }),
        ],
    });
    let rs = NdRepr::RouterSolicit {
        options: vec![NdOption::SourceLinkLayerAddress([0x02, 0, 0, 0, 0, 0x66])],
    };
    let general = MldRepr::QueryV2(QueryV2 {
        max_response_code: mld::encode_max_response_code(10_000),
        multicast_address: Ipv6Addr::UNSPECIFIED,
        suppress_router_side: false,
        qrv: 2,
        qqic: mld::encode_qqic(125),
        sources: vec![],
    });
    let specific = MldRepr::QueryV2(QueryV2 {
        max_response_code: mld::encode_max_response_code(1000),
        multicast_address: a(GROUP),
        suppress_router_side: true,
        qrv: 2,
        qqic: mld::encode_qqic(125),
        sources: vec![a(MMA)],
    });
    let report = MldRepr::ReportV2 {
        records: RecordType::ALL
            .iter()
            .map(|&t| GroupRecord {
                record_type: t,
                multicast_address: a(GROUP),
                sources: vec![a(MMA)],
            })
            .collect(),
    };
    let hello = PimRepr::Hello {
        options: vec![
            HelloOption::Holdtime(105),
            HelloOption::LanPruneDelay(LanPruneDelay {
                tracking_support: true,
                propagation_delay_ms: 500,
                override_interval_ms: 2500,
            }),
            HelloOption::DrPriority(7),
            HelloOption::GenerationId(0xdead_beef),
            HelloOption::AddressList(vec![a("2001:db8:7::1")]),
        ],
    };
    let join_prune = PimRepr::JoinPrune(JoinPrune {
        upstream_neighbor: a(HOST),
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::new(a(GROUP)),
            joins: vec![EncodedSource::new(a(MMA))],
            prunes: vec![EncodedSource::new(a(SOURCE2))],
        }],
    });
    let assert = PimRepr::Assert(Assert {
        group: EncodedGroup::new(a(GROUP)),
        source: a(MMA),
        rpt: false,
        metric_preference: 110,
        metric: 3,
    });
    let ns = NeighborSolicit {
        target: a("2001:db8:7::12:3456"),
        source_lladdr: Some([2, 0, 0, 0, 0, 0x22]),
    };
    let na = NeighborAdvert {
        router: false,
        solicited: true,
        override_flag: true,
        target: a("2001:db8:7::12:3456"),
        target_lladdr: Some([2, 0, 0, 0, 0, 0x11]),
    };
    vec![
        nd_packet(&rs, HOST, "ff02::2"),
        nd_packet(&ra, ROUTER, "ff02::1"),
        neighbor_packet(ns.buffer_len(), &|b| ns.emit(b), HOST, "ff02::1:ff12:3456"),
        neighbor_packet(na.buffer_len(), &|b| na.emit(b), "2001:db8:7::1", HOST),
        mld_packet(&general, ROUTER, "ff02::1"),
        mld_packet(&specific, ROUTER, GROUP),
        mld_packet(&report, HOST, "ff02::16"),
        mld_packet(
            &MldRepr::QueryV1 {
                max_response_delay_ms: 10000,
                multicast_address: Ipv6Addr::UNSPECIFIED,
            },
            ROUTER,
            "ff02::1",
        ),
        mld_packet(
            &MldRepr::ReportV1 {
                multicast_address: a("ff15::1234"),
            },
            HOST,
            "ff15::1234",
        ),
        mld_packet(
            &MldRepr::DoneV1 {
                multicast_address: a("ff15::1234"),
            },
            HOST,
            "ff02::2",
        ),
        pim_packet(&hello),
        pim_packet(&join_prune),
        pim_packet(&assert),
    ]
}

#[test]
#[ignore = "needs tshark (run-tests.sh runs it)"]
fn tshark_decodes_our_messages_cleanly() {
    common::require_tshark();
    let packets = all_messages();
    let pcap = common::write_pcap("nd_mld_pim_ours", &packets);
    let problems = common::tshark_problems(&pcap);
    assert!(
        problems.is_empty(),
        "tshark problems:\n{}",
        problems.join("\n")
    );

    // The checker must be able to fail: a flipped bit in an ICMPv6 and in a PIM message.
    let mut corrupted = packets.clone();
    let last = corrupted.len() - 1;
    for i in [0, last] {
        *corrupted[i].last_mut().unwrap() ^= 0x01;
    }
    let bad = common::tshark_problems(&common::write_pcap("nd_mld_pim_corrupted", &corrupted));
    assert_eq!(bad.len(), 2, "expected two bad checksums, got {bad:?}");

    let text = common::tshark_verbose(&pcap);
    let frames: Vec<&str> = text.split("\nFrame ").collect();
    assert_eq!(frames.len(), packets.len(), "one decoded frame per packet");
    // Every ICMPv6 and PIM checksum was checked, and found good, by tshark itself.
    assert_eq!(
        text.matches("[Checksum Status: Good]").count(),
        packets.len(),
        "{text}"
    );
    for needle in [
        // RS / RA
        "Type: Router Solicitation (133)",
        "Type: Router Advertisement (134)",
        "Cur hop limit: 64",
        "Router lifetime (s): 900",
        "Prefix: 2001:db8:7::",
        "MTU: 1400",
        // MAP option: type, distance, preference, R flag, lifetime, the MMA's address.
        "Type: MAP (23)",
        "= Distance: 2",
        "= Preference: 9",
        "RCoA Flag: True",
        "Valid Lifetime: 1234",
        "Global Address: 2001:db8:ff::77",
        // NS / NA
        "Type: Neighbor Solicitation (135)",
        "Type: Neighbor Advertisement (136)",
        "Target Address: 2001:db8:7::12:3456",
        "Flags: 0x60000000, Solicited, Override",
        "0... .... .... .... .... .... .... .... = Router: Not set",
        "Link-layer address: 02:00:00:00:00:22",
        "Link-layer address: 02:00:00:00:00:11",
        // MLD
        "Multicast Listener Query (130)",
        "Multicast Address: ff35::3656:78ff:fe9a:bcde",
        "Source Address: 2001:db8:ff::77",
        "Multicast Listener Report Message v2 (143)",
        "Record Type: Include (1)",
        "Record Type: Exclude (2)",
        "Record Type: Changed to include (3)",
        "Record Type: Changed to exclude (4)",
        "Record Type: Allow new sources (5)",
        "Record Type: Block old sources (6)",
        "Multicast Listener Report (131)",
        "Multicast Listener Done (132)",
        // PIM
        "Type: Hello (0)",
        "Holdtime: 105",
        "DR Priority: 7",
        "Generation ID: 3735928559",
        "Address: 2001:db8:7::1",
        "Type: Join/Prune (3)",
        "Upstream-neighbor: fe80::2",
        "Group 0: ff35::3656:78ff:fe9a:bcde/128",
        "Num Joins: 1",
        "Num Prunes: 1",
        "IP address: 2001:db8:ff::77/128 (S)",
        "IP address: 2001:db8:ff::88/128 (S)",
        "Type: Assert (5)",
        "Metric Preference: 110",
        "Metric: 3",
        "QRV (Querier's Robustness Variable): 2",
        "QQIC (Querier's Query Interval Code): 125",
    ] {
        assert!(text.contains(needle), "tshark -V lacks {needle:?}:\n{text}");
    }
}

/// The scapy fixtures must satisfy tshark too: otherwise the golden test would pin bytes that
/// a second independent decoder disagrees with.
#[test]
#[ignore = "needs tshark (run-tests.sh runs it)"]
fn tshark_accepts_scapy_fixtures() {
    common::require_tshark();
    let dir = format!("{}/tests/fixtures/icmp_pim", env!("CARGO_MANIFEST_DIR"));
    let frame = |name: &str, src: &str, dst: &str| {
        let msg = std::fs::read(format!("{dir}/{name}.bin")).unwrap();
        let (src, dst) = (a(src), a(dst));
        match name.split('_').next().unwrap() {
            "rs" | "ra" | "ns" | "na" => common::ipv6(src, dst, nd::IPPROTO_ICMPV6, 255, &msg),
            "pim" => common::ipv6(src, dst, pim::IPPROTO_PIM, 1, &msg),
            _ => common::ipv6_router_alert(src, dst, nd::IPPROTO_ICMPV6, &msg),
        }
    };
    let g = "ff35::3656:78ff:fe9a:bcde";
    let packets = vec![
        frame("rs", HOST, "ff02::2"),
        frame("ra", ROUTER, "ff02::1"),
        frame("ns", HOST, "ff02::1:ff00:100"),
        frame("ns_dad", "::", "ff02::1:ff00:100"),
        frame("na", "2001:db8:1::1", HOST),
        frame("na_unsolicited", "2001:db8:1::1", "ff02::1"),
        frame("mldv2_query_general", ROUTER, "ff02::1"),
        frame("mldv2_query_group_source", ROUTER, g),
        frame("mldv2_report", HOST, "ff02::16"),
        frame("mldv2_report_auxdata", HOST, "ff02::16"),
        frame("mldv1_query", ROUTER, "ff02::1"),
        frame("mldv1_report", HOST, "ff15::1234"),
        frame("mldv1_done", HOST, "ff02::2"),
        frame("pim_hello", ROUTER, "ff02::d"),
        frame("pim_hello_foreign", ROUTER, "ff02::d"),
        frame("pim_join_prune", ROUTER, "ff02::d"),
        frame("pim_assert", ROUTER, "ff02::d"),
    ];
    let pcap = common::write_pcap("nd_mld_pim_scapy", &packets);
    let problems = common::tshark_problems(&pcap);
    assert!(
        problems.is_empty(),
        "tshark problems with scapy fixtures:\n{}",
        problems.join("\n")
    );
}
