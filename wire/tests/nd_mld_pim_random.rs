//! Random and mutated inputs: every ND, MLD and PIM parser must return (Ok or Err) without
//! panicking, and whatever parses must re-emit to something that parses to the same value.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;

use mipcast_wire::mld::{self, MldPacket, MldRepr};
use mipcast_wire::nd::{self, NdOption, NdPacket, NdRepr, NeighborAdvert, NeighborSolicit};
use mipcast_wire::pim::{
    self, EncodedGroup, EncodedSource, EncodedUnicast, HelloOption, PimPacket, PimRepr,
};

/// xorshift64*: deterministic, so a failure reproduces from the printed case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const DST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xd);

/// Runs every parser and view over `buf`; re-emits whatever parses. Returns which of the
/// ND, MLD and PIM parsers accepted it.
fn exercise(buf: &[u8]) -> [bool; 3] {
    let mut accepted = [false; 3];
    if let Ok(p) = NdPacket::new_checked(buf) {
        let _ = (
            p.cur_hop_limit(),
            p.managed(),
            p.router_lifetime(),
            p.reachable_time(),
            p.retrans_timer(),
        );
        for raw in p.options().flatten() {
            let _ = NdOption::parse(raw);
        }
    }
    if let Ok(repr) = NdRepr::parse(buf) {
        let mut out = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(NdRepr::parse(out.get(..n).unwrap()).unwrap(), repr);
        accepted[0] = true;
    }
    if let Ok(ns) = NeighborSolicit::parse(buf) {
        let mut out = vec![0; ns.buffer_len()];
        let n = ns.emit(&mut out).unwrap();
        assert_eq!(NeighborSolicit::parse(out.get(..n).unwrap()).unwrap(), ns);
        accepted[0] = true;
    }
    if let Ok(na) = NeighborAdvert::parse(buf) {
        let mut out = vec![0; na.buffer_len()];
        let n = na.emit(&mut out).unwrap();
        assert_eq!(NeighborAdvert::parse(out.get(..n).unwrap()).unwrap(), na);
        accepted[0] = true;
    }
    if let Ok(p) = MldPacket::new_checked(buf) {
        let _ = (
            p.max_response_code(),
            p.multicast_address(),
            p.qrv(),
            p.qqic(),
            p.suppress_router_side(),
        );
        let _ = p.query_sources().count();
        for rec in p.records().flatten() {
            let _ = rec.sources().count();
        }
    }
    if let Ok(repr) = MldRepr::parse(buf) {
        let mut out = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(MldRepr::parse(out.get(..n).unwrap()).unwrap(), repr);
        accepted[1] = true;
    }
    if let Ok(p) = PimPacket::new_checked(buf) {
        let _ = (p.version(), p.msg_type(), p.checksum(), p.payload().len());
        for raw in p.hello_options().flatten() {
            let _ = HelloOption::parse(raw);
        }
        // The tolerant Hello parse keeps only options that re-emit to themselves.
        for opt in pim::parse_hello(p.payload()).options {
            let mut out = vec![0; opt.buffer_len()];
            let n = opt.emit(&mut out).unwrap();
            assert_eq!(pim::parse_hello(out.get(..n).unwrap()).options, vec![opt]);
        }
    }
    if let Ok(repr) = PimRepr::parse(buf) {
        let mut out = vec![0; repr.buffer_len()];
        let n = repr.emit(&mut out).unwrap();
        assert_eq!(PimRepr::parse(out.get(..n).unwrap()).unwrap(), repr);
        accepted[2] = true;
    }
    let _ = EncodedUnicast::parse(buf);
    let _ = EncodedGroup::parse(buf);
    let _ = EncodedSource::parse(buf);
    let _ = nd::verify_checksum(buf, &SRC, &DST);
    let _ = mld::verify_checksum(buf, &SRC, &DST);
    let _ = pim::verify_checksum(buf, &SRC, &DST);
    accepted
}

fn encoded(rng: &mut Rng, b: &mut Vec<u8>, with_flags: bool) {
    b.extend([2, 0]);
    if with_flags {
        b.push(rng.byte());
        b.push(if rng.below(4) == 0 { rng.byte() } else { 128 });
    }
    b.extend((0..16).map(|_| rng.byte()));
}

/// A well-formed-looking ND, PIM Hello or PIM Join/Prune message with random contents, so the
/// option and group walkers get exercised (random bytes rarely get that far for these).
fn structured(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    match rng.below(3) {
        0 => {
            let ra = rng.below(2) == 0;
            b.extend([if ra { 134 } else { 133 }, 0, 0, 0]);
            b.extend((0..if ra { 12 } else { 4 }).map(|_| rng.byte()));
            for _ in 0..rng.below(5) {
                let other = (rng.byte(), 1 + rng.below(3));
                let (ty, units) = [(1, 1), (3, 4), (5, 1), (23, 3), other][rng.below(5)];
                b.extend([ty, units as u8]);
                b.extend((0..units * 8 - 2).map(|_| rng.byte()));
            }
        }
        1 => {
            b.extend([0x20, 0, 0, 0]);
            for _ in 0..rng.below(5) {
                // Address List entries: IPv6, or IPv4 as dual-stack routers send them.
                let mut list = Vec::new();
                for _ in 0..rng.below(3) {
                    if rng.below(3) == 0 {
                        list.extend([1, 0]);
                        list.extend((0..4).map(|_| rng.byte()));
                    } else {
                        encoded(rng, &mut list, false);
                    }
                }
                let other = (u16::from(rng.byte()), rng.below(9));
                let (ty, len) =
                    [(1u16, 2), (2, 4), (19, 4), (20, 4), (24, list.len()), other][rng.below(6)];
                b.extend(ty.to_be_bytes());
                b.extend((len as u16).to_be_bytes());
                if ty == 24 {
                    b.extend_from_slice(&list);
                } else {
                    b.extend((0..len).map(|_| rng.byte()));
                }
            }
        }
        _ => {
            b.extend([0x23, 0, 0, 0]);
            encoded(rng, &mut b, false);
            let groups = rng.below(3);
            b.extend([0, groups as u8, 0, 210]);
            for _ in 0..groups {
                encoded(rng, &mut b, true);
                let (joins, prunes) = (rng.below(3), rng.below(3));
                b.extend((joins as u16).to_be_bytes());
                b.extend((prunes as u16).to_be_bytes());
                (0..joins + prunes).for_each(|_| encoded(rng, &mut b, true));
            }
        }
    }
    if rng.below(2) == 0 {
        let i = rng.below(b.len());
        b[i] = rng.byte();
    }
    b
}

/// First bytes that get past the type checks, so random bodies reach the deeper parsers.
const LEADS: [u8; 8] = [133, 134, 130, 131, 132, 143, 0x20, 0x23];

/// Random bytes of random length, mostly behind a type byte the parsers accept.
fn random_buffer(rng: &mut Rng, buf: &mut Vec<u8>) {
    let len = rng.below(160);
    buf.extend((0..len).map(|_| rng.byte()));
    if let Some(first) = buf.first_mut() {
        match rng.below(10) {
            0 => {}
            9 => *first = 0x25,
            _ => *first = LEADS[rng.below(LEADS.len())],
        }
    }
    // Small counts and lengths make it likelier that nested structures line up.
    if buf.len() > 8 && rng.below(2) == 0 {
        let i = 2 + rng.below(buf.len() - 2);
        buf[i] = rng.below(4) as u8;
    }
}

#[test]
fn random_buffers_never_panic() {
    let mut rng = Rng(0x6d69_7063_6173_7421);
    let mut buf = Vec::with_capacity(256);
    let mut accepted = [0u32; 3];
    for case in 0..200_000u32 {
        buf.clear();
        if case % 2 == 0 {
            buf.extend(structured(&mut rng));
        } else {
            random_buffer(&mut rng, &mut buf);
        }
        match std::panic::catch_unwind(|| exercise(&buf)) {
            Ok(ok) => ok
                .iter()
                .zip(&mut accepted)
                .for_each(|(ok, n)| *n += u32::from(*ok)),
            Err(_) => panic!("case {case} panicked on {buf:02x?}"),
        }
    }
    // Not vacuous: each parser accepted (and round-tripped) a good number of random inputs.
    assert!(
        accepted.iter().all(|&n| n > 1000),
        "accepted counts nd/mld/pim: {accepted:?}"
    );
}

#[test]
fn mutated_fixtures_never_panic() {
    let dir = format!("{}/tests/fixtures/icmp_pim", env!("CARGO_MANIFEST_DIR"));
    let mut fixtures: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 12, "fixtures missing in {dir}");
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for (f, original) in fixtures.iter().enumerate() {
        assert!(
            exercise(original).contains(&true),
            "fixture {f} does not parse"
        );
        for _ in 0..10_000 {
            let mut m = original.clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 => {
                        let i = rng.below(m.len());
                        m[i] = rng.byte();
                    }
                    1 => {
                        let i = rng.below(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                    2 => m.truncate(rng.below(m.len() + 1)),
                    _ => m.extend((0..rng.below(24)).map(|_| rng.byte())),
                }
                if m.is_empty() {
                    break;
                }
            }
            let result = std::panic::catch_unwind(|| exercise(&m));
            assert!(result.is_ok(), "fixture {f} mutation panicked on {m:02x?}");
        }
    }
}
