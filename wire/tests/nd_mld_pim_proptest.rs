//! parse(emit(x)) == x for every ND, MLD and PIM representation, over bounded strategies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;

use mipcast_wire::group;
use mipcast_wire::mld::{self, GroupRecord, MldRepr, QueryV2, RecordType};
use mipcast_wire::nd::{self, MapOption, NdOption, NdRepr, PrefixInformation, RouterAdvert};
use mipcast_wire::pim::{
    self, Assert, EncodedGroup, EncodedSource, HelloOption, JoinPrune, JoinPruneGroup,
    LanPruneDelay, PimRepr,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn nd_option() -> impl Strategy<Value = NdOption> {
    prop_oneof![
        any::<[u8; 6]>().prop_map(NdOption::SourceLinkLayerAddress),
        (
            0u8..=128,
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            addr()
        )
            .prop_map(
                |(prefix_len, on_link, autonomous, valid_lifetime, preferred_lifetime, prefix)| {
                    NdOption::PrefixInformation(PrefixInformation {
                        prefix_len,
                        on_link,
                        autonomous,
                        valid_lifetime,
                        preferred_lifetime,
                        prefix,
                    })
                }
            ),
        any::<u32>().prop_map(NdOption::Mtu),
        (0u8..16, 0u8..16, any::<bool>(), any::<u32>(), addr()).prop_map(
            |(distance, preference, rcoa, valid_lifetime, address)| {
                NdOption::Map(MapOption {
                    distance,
                    preference,
                    rcoa,
                    valid_lifetime,
                    address,
                })
            }
        ),
        (
            any::<u8>().prop_filter("known type", |t| ![1, 3, 5, 23].contains(t)),
            (0usize..4).prop_flat_map(|k| vec(any::<u8>(), k * 8 + 6)),
        )
            .prop_map(|(ty, data)| NdOption::Unknown { ty, data }),
    ]
}

fn nd_repr() -> impl Strategy<Value = NdRepr> {
    prop_oneof![
        vec(nd_option(), 0..5).prop_map(|options| NdRepr::RouterSolicit { options }),
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            vec(nd_option(), 0..5)
        )
            .prop_map(
                |(
                    cur_hop_limit,
                    managed,
                    other,
                    router_lifetime,
                    reachable_time,
                    retrans_timer,
                    options,
                )| {
                    NdRepr::RouterAdvert(RouterAdvert {
                        cur_hop_limit,
                        managed,
                        other,
                        router_lifetime,
                        reachable_time,
                        retrans_timer,
                        options,
                    })
                }
            ),
    ]
}

fn mld_repr() -> impl Strategy<Value = MldRepr> {
    let record = (
        proptest::sample::select(RecordType::ALL.to_vec()),
        addr(),
        vec(addr(), 0..4),
    )
        .prop_map(|(record_type, multicast_address, sources)| GroupRecord {
            record_type,
            multicast_address,
            sources,
        });
    prop_oneof![
        (any::<u16>(), addr()).prop_map(|(max_response_delay_ms, multicast_address)| {
            MldRepr::QueryV1 {
                max_response_delay_ms,
                multicast_address,
            }
        }),
        (
            any::<u16>(),
            addr(),
            any::<bool>(),
            0u8..8,
            any::<u8>(),
            vec(addr(), 0..4)
        )
            .prop_map(
                |(
                    max_response_code,
                    multicast_address,
                    suppress_router_side,
                    qrv,
                    qqic,
                    sources,
                )| {
                    MldRepr::QueryV2(QueryV2 {
                        max_response_code,
                        multicast_address,
                        suppress_router_side,
                        qrv,
                        qqic,
                        sources,
                    })
                }
            ),
        addr().prop_map(|multicast_address| MldRepr::ReportV1 { multicast_address }),
        addr().prop_map(|multicast_address| MldRepr::DoneV1 { multicast_address }),
        vec(record, 0..5).prop_map(|records| MldRepr::ReportV2 { records }),
    ]
}

fn encoded_group() -> impl Strategy<Value = EncodedGroup> {
    (any::<bool>(), any::<bool>(), 0u8..=128, addr()).prop_map(
        |(bidir, admin_scope, mask_len, addr)| EncodedGroup {
            bidir,
            admin_scope,
            mask_len,
            addr,
        },
    )
}

fn encoded_source() -> impl Strategy<Value = EncodedSource> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..=128,
        addr(),
    )
        .prop_map(|(sparse, wildcard, rpt, mask_len, addr)| EncodedSource {
            sparse,
            wildcard,
            rpt,
            mask_len,
            addr,
        })
}

fn hello_option() -> impl Strategy<Value = HelloOption> {
    prop_oneof![
        any::<u16>().prop_map(HelloOption::Holdtime),
        (any::<bool>(), 0u16..0x8000, any::<u16>()).prop_map(
            |(tracking_support, propagation_delay_ms, override_interval_ms)| {
                HelloOption::LanPruneDelay(LanPruneDelay {
                    tracking_support,
                    propagation_delay_ms,
                    override_interval_ms,
                })
            }
        ),
        any::<u32>().prop_map(HelloOption::DrPriority),
        any::<u32>().prop_map(HelloOption::GenerationId),
        vec(addr(), 0..4).prop_map(HelloOption::AddressList),
        (
            any::<u16>().prop_filter("known type", |t| ![1, 2, 19, 20, 24].contains(t)),
            vec(any::<u8>(), 0..12)
        )
            .prop_map(|(ty, data)| HelloOption::Unknown { ty, data }),
    ]
}

fn pim_repr() -> impl Strategy<Value = PimRepr> {
    let group = (
        encoded_group(),
        vec(encoded_source(), 0..3),
        vec(encoded_source(), 0..3),
    )
        .prop_map(|(group, joins, prunes)| JoinPruneGroup {
            group,
            joins,
            prunes,
        });
    prop_oneof![
        vec(hello_option(), 0..6).prop_map(|options| PimRepr::Hello { options }),
        (addr(), any::<u16>(), vec(group, 0..4)).prop_map(
            |(upstream_neighbor, holdtime, groups)| {
                PimRepr::JoinPrune(JoinPrune {
                    upstream_neighbor,
                    holdtime,
                    groups,
                })
            }
        ),
        (
            encoded_group(),
            addr(),
            any::<bool>(),
            0u32..0x8000_0000,
            any::<u32>()
        )
            .prop_map(|(group, source, rpt, metric_preference, metric)| {
                PimRepr::Assert(Assert {
                    group,
                    source,
                    rpt,
                    metric_preference,
                    metric,
                })
            }),
    ]
}

/// Emits into a buffer with slack, checks the length against `buffer_len`, fills and verifies
/// the checksum for arbitrary addresses, and returns the message bytes.
fn emit_checked(
    len: usize,
    emit: impl Fn(&mut [u8]) -> mipcast_wire::Result<usize>,
    fill: fn(&mut [u8], &Ipv6Addr, &Ipv6Addr) -> mipcast_wire::Result<()>,
    verify: fn(&[u8], &Ipv6Addr, &Ipv6Addr) -> mipcast_wire::Result<()>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Vec<u8> {
    let mut buf = vec![0x5a; len + 16];
    let n = emit(&mut buf).unwrap();
    assert_eq!(n, len);
    buf.truncate(n);
    fill(&mut buf, &src, &dst).unwrap();
    verify(&buf, &src, &dst).unwrap();
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn nd_round_trips(repr in nd_repr(), src in addr(), dst in addr()) {
        let bytes = emit_checked(repr.buffer_len(), |b| repr.emit(b), nd::fill_checksum, nd::verify_checksum, src, dst);
        prop_assert_eq!(NdRepr::parse(&bytes).unwrap(), repr);
    }

    #[test]
    fn mld_round_trips(repr in mld_repr(), src in addr(), dst in addr()) {
        let bytes = emit_checked(repr.buffer_len(), |b| repr.emit(b), mld::fill_checksum, mld::verify_checksum, src, dst);
        prop_assert_eq!(MldRepr::parse(&bytes).unwrap(), repr);
    }

    #[test]
    fn pim_round_trips(repr in pim_repr(), src in addr(), dst in addr()) {
        let bytes = emit_checked(repr.buffer_len(), |b| repr.emit(b), pim::fill_checksum, pim::verify_checksum, src, dst);
        prop_assert_eq!(PimRepr::parse(&bytes).unwrap(), repr);
    }

    /// Any Hello body: parse_hello never fails, keeps only options that re-emit and
    /// re-parse unchanged, and whatever it keeps or skips accounts for every option TLV.
    #[test]
    fn hello_parsing_is_tolerant(options in vec(hello_option(), 0..5), junk in vec(any::<u8>(), 0..40), family in any::<u8>()) {
        let mut body = Vec::new();
        for opt in &options {
            let mut b = vec![0; opt.buffer_len()];
            opt.emit(&mut b).unwrap();
            body.extend_from_slice(&b);
        }
        // An Address List with an IPv4 entry and one of a random family, then junk.
        body.extend_from_slice(&[0, 24, 0, 12, 1, 0, 192, 0, 2, 1, family, 0, 1, 2, 3, 4]);
        body.extend_from_slice(&junk);
        let hello = pim::parse_hello(&body);
        prop_assert!(hello.options.len() > options.len());
        prop_assert_eq!(&hello.options[..options.len()], &options[..]);
        for opt in &hello.options {
            let mut b = vec![0; opt.buffer_len()];
            let n = opt.emit(&mut b).unwrap();
            let reparsed = pim::parse_hello(&b[..n]);
            prop_assert_eq!(&reparsed.options, &vec![opt.clone()]);
        }
        prop_assert!(hello.skipped.contains(&pim::HelloSkip::ForeignAddresses(1)) || family == 1);
    }

    #[test]
    fn encoded_addresses_round_trip(g in encoded_group(), s in encoded_source(), u in addr()) {
        let mut buf = [0u8; 20];
        prop_assert_eq!(g.emit(&mut buf).unwrap(), EncodedGroup::LEN);
        prop_assert_eq!(EncodedGroup::parse(&buf).unwrap(), g);
        prop_assert_eq!(s.emit(&mut buf).unwrap(), EncodedSource::LEN);
        prop_assert_eq!(EncodedSource::parse(&buf).unwrap(), s);
        let e = pim::EncodedUnicast { addr: u };
        prop_assert_eq!(e.emit(&mut buf).unwrap(), pim::EncodedUnicast::LEN);
        prop_assert_eq!(pim::EncodedUnicast::parse(&buf).unwrap(), e);
    }

    #[test]
    fn mld_codes_round_down_within_one_step(ms in 0u32..=mld::MAX_RESPONSE_DELAY_MS_MAX, s in 0u32..=mld::QQI_SECS_MAX) {
        let back = mld::decode_max_response_code(mld::encode_max_response_code(ms));
        prop_assert!(back <= ms && ms - back < (ms >> 12).max(1));
        let back = mld::decode_qqic(mld::encode_qqic(s));
        prop_assert!(back <= s && s - back < (s >> 4).max(1));
    }

    #[test]
    fn terminal_group_keeps_prefix_and_iid(prefix in any::<u64>(), mac in any::<[u8; 6]>()) {
        let prefix = Ipv6Addr::from((u128::from(prefix | 0xff00_0000_0000_0000)) << 64);
        let iid = group::eui64_from_mac(mac);
        let g = group::terminal_group(prefix, 64, iid).unwrap();
        prop_assert!(group::group_in_prefix(g, prefix, 64));
        prop_assert_eq!(group::iid_of(g), iid);
        prop_assert!(g.is_multicast());
    }
}
