//! The route-optimisation state machine with real BU/BAck bytes and a hand-moved clock.
use std::time::Duration;

use mipcast_binding::messages::{binding_ack, binding_error, Signer};
use mipcast_binding::SecurityAssociation;
use mipcast_proto::settle;

use super::*;

const KEY: &[u8] = b"cn-mma-key-0123456789abcdef012345";
const WALL0: u64 = 1_700_000_000_000;
const UPLINK: u32 = 3601;
const WAN: u32 = 2;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn mma() -> Ipv6Addr {
    a("2001:db8:1::1")
}
fn hoa() -> Ipv6Addr {
    a("2001:db8:99::100")
}
fn cn() -> Ipv6Addr {
    a("2001:db8:f0::2")
}
/// A correspondent with no association.
fn plain() -> Ipv6Addr {
    a("2001:db8:77::7")
}

fn now(ms: u64) -> Now {
    Now::from_unix(ms, Duration::from_millis(WALL0 + ms))
}

fn ro() -> Ro {
    let mut r = Ro::new(
        RoConfig {
            mma: mma(),
            correspondents: vec![CorrespondentSa {
                prefix: a("2001:db8:f0::"),
                prefix_len: 64,
                agent: None,
                spi: 2001,
                algorithm: Algorithm::HmacSha256_128,
                key: KEY.to_vec(),
            }],
            lifetime_s: 40,
            refresh_percent: 80,
            max_attempts: 3,
            retransmit_ms: 1000,
            hold_s: 60,
            max_hold_s: 3600,
            uplink_table: UPLINK,
            wan_ifindex: WAN,
        },
        100,
    );
    r.handle_input(now(0), Input::TerminalUp { hoa: hoa() });
    r
}

#[derive(Debug, Default)]
struct Out {
    sends: Vec<Send>,
    kernel: Vec<Change>,
    events: Vec<Event>,
}

fn drain(r: &mut Ro, at: Now) -> Out {
    let mut o = Out::default();
    for x in settle(r, at, |_| Outcome::Applied) {
        match x {
            Output::Send(s) => o.sends.push(s),
            Output::Kernel(k) => o.kernel.push(k),
            Output::Event(e) => o.events.push(e),
        }
    }
    o
}

fn sight(r: &mut Ro, ms: u64, correspondent: Ipv6Addr) -> Out {
    r.handle_input(
        now(ms),
        Input::Sighting {
            correspondent,
            hoa: hoa(),
        },
    );
    drain(r, now(ms))
}

fn tick(r: &mut Ro, ms: u64) -> Out {
    r.handle_timeout(now(ms));
    drain(r, now(ms))
}

fn deliver(r: &mut Ro, ms: u64, src: Ipv6Addr, bytes: &[u8]) -> Out {
    r.handle_input(now(ms), Input::Mobility { src, bytes });
    drain(r, now(ms))
}

/// The BU's (sequence, lifetime in s, flags, HoA), after checking its authenticator.
fn bu_of(s: &Send) -> (u16, u32, u16, Ipv6Addr) {
    assert_eq!(s.src, mma());
    let lookup = |spi| (spi == 2001).then_some((Algorithm::HmacSha256_128, KEY));
    assert_eq!(auth::verify(&s.bytes, &mma(), &hoa(), lookup), Ok(2001));
    let repr = MhRepr::parse(&s.bytes).unwrap();
    let Message::BindingUpdate(bu) = repr.message else {
        panic!("not a BU")
    };
    let hnp = repr.options.iter().find_map(|o| match o {
        MobilityOption::HomeNetworkPrefix { prefix, .. } => Some(*prefix),
        _ => None,
    });
    assert!(repr
        .options
        .iter()
        .any(|o| matches!(o, MobilityOption::ReplayProtection { .. })));
    assert!(!repr
        .options
        .iter()
        .any(|o| matches!(o, MobilityOption::AlternateCareOf(_))));
    (
        bu.sequence,
        u32::from(bu.lifetime) * 4,
        bu.flags,
        hnp.unwrap(),
    )
}

fn sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 2001,
        algorithm: Algorithm::HmacSha256_128,
        key: KEY.to_vec(),
        allowed: vec![(hoa(), 128)],
    }
}

/// The agent's BAck, signed as the correspondent's registrar signs it.
fn back(status: u8, sequence: u16, lifetime_s: u32, signed: bool) -> Vec<u8> {
    let sa = sa();
    let signer = signed.then_some(Signer {
        sa: &sa,
        coa: mma(),
        hoa: hoa(),
    });
    let units = u16::try_from(lifetime_s / 4).unwrap();
    binding_ack(status, sequence, units, Vec::new(), signer).unwrap()
}

fn reverse() -> KObject {
    KObject::EncapRoute {
        dst: "2001:db8:f0::2/128".parse().unwrap(),
        src: Some("2001:db8:99::100/128".parse().unwrap()),
        tunnel_dst: cn(),
        oif: WAN,
        table: UPLINK,
    }
}

/// A sighting answered by BAck 0: bound at 0 ms with the BU's sequence.
fn bound() -> (Ro, u16) {
    let mut r = ro();
    let o = sight(&mut r, 0, cn());
    let (seq, ..) = bu_of(&o.sends[0]);
    let o = deliver(&mut r, 10, cn(), &back(0, seq, 40, true));
    assert_eq!(o.kernel, vec![Change::Add(reverse())]);
    (r, seq)
}

#[test]
fn sighting_sends_one_signed_correspondent_bu_to_the_agent() {
    let mut r = ro();
    let o = sight(&mut r, 0, cn());
    assert_eq!(o.sends.len(), 1);
    assert_eq!(o.sends[0].dst, cn());
    let (seq, lifetime, flags, bu_hoa) = bu_of(&o.sends[0]);
    assert_eq!((seq, lifetime, bu_hoa), (101, 40, hoa()));
    assert_eq!(flags, bu_flags::ACK, "A flag, no H");
    // The flow's next sightings while the BU is out send nothing more.
    assert!(sight(&mut r, 300, cn()).sends.is_empty());
}

#[test]
fn nothing_for_correspondents_without_association_or_terminals_not_served() {
    let mut r = ro();
    let o = sight(&mut r, 0, plain());
    assert!(o.sends.is_empty());
    assert!(o.events.contains(&Event::Ignored {
        peer: plain(),
        reason: "no_association"
    }));
    r.handle_input(
        now(0),
        Input::Sighting {
            correspondent: cn(),
            hoa: a("2001:db8:99::200"),
        },
    );
    assert!(drain(&mut r, now(0)).sends.is_empty());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn signed_back_binds_and_installs_the_reverse_route_once() {
    let (mut r, _) = bound();
    assert!(sight(&mut r, 1000, cn()).sends.is_empty());
    assert_eq!(r.counts(), (1, 0, 0));
}

#[test]
fn unsigned_acceptance_is_a_forgery_and_ignored() {
    let mut r = ro();
    let o = sight(&mut r, 0, cn());
    let (seq, ..) = bu_of(&o.sends[0]);
    let o = deliver(&mut r, 10, a("2001:db8:66::6"), &back(0, seq, 40, true));
    assert!(o.kernel.is_empty(), "from another source");
    let o = deliver(&mut r, 10, cn(), &back(0, seq, 40, false));
    assert!(o.kernel.is_empty());
    assert!(o.events.iter().any(|e| matches!(
        e,
        Event::Ignored {
            reason: "unsigned_ack",
            ..
        }
    )));
    assert_eq!(r.counts(), (0, 1, 0));
}

#[test]
fn silent_correspondent_backs_off_exponentially() {
    let mut r = ro();
    let mut bus = Vec::new();
    let mut holds = Vec::new();
    // A flow that lasts ten minutes, seen every 5 s; timers run every 100 ms.
    for t in (0..600_000).step_by(100) {
        let mut o = if t % 5000 == 0 {
            sight(&mut r, t, cn())
        } else {
            Out::default()
        };
        let more = tick(&mut r, t);
        o.sends.extend(more.sends);
        o.events.extend(more.events);
        bus.extend(o.sends.iter().map(|_| t));
        holds.extend(o.events.iter().filter_map(|e| match e {
            Event::OnHold {
                hold_s,
                status: None,
                ..
            } => Some(*hold_s),
            _ => None,
        }));
    }
    // Series of 3 BUs (0, 1, 3 s), given up at 7 s; holds of 60, 120, 240, 480 s.
    assert_eq!(&bus[..3], &[0, 1000, 3000]);
    assert_eq!(holds, vec![60, 120, 240, 480]);
    assert_eq!(bus.len(), 12, "{bus:?}");
}

#[test]
fn refusals_and_binding_errors_put_the_pair_on_hold() {
    for (status, signed) in [(129, true), (146, false), (131, true)] {
        let mut r = ro();
        let o = sight(&mut r, 0, cn());
        let (seq, ..) = bu_of(&o.sends[0]);
        let o = deliver(&mut r, 10, cn(), &back(status, seq, 0, signed));
        assert!(o.kernel.is_empty());
        assert!(o.events.contains(&Event::OnHold {
            hoa: hoa(),
            correspondent: cn(),
            status: Some(status),
            hold_s: 60
        }));
        assert!(sight(&mut r, 30_000, cn()).sends.is_empty(), "on hold");
        assert_eq!(sight(&mut r, 61_000, cn()).sends.len(), 1, "hold over");
    }
    let mut r = ro();
    sight(&mut r, 0, cn());
    let be = binding_error(2, Ipv6Addr::UNSPECIFIED).unwrap();
    let o = deliver(&mut r, 10, cn(), &be);
    assert!(o
        .events
        .iter()
        .any(|e| matches!(e, Event::OnHold { status: None, .. })));
}

#[test]
fn sequence_135_resynchronises_once() {
    let mut r = ro();
    let o = sight(&mut r, 0, cn());
    let (seq, ..) = bu_of(&o.sends[0]);
    let o = deliver(&mut r, 10, cn(), &back(135, 5000, 0, true));
    assert_eq!(o.sends.len(), 1);
    assert_eq!(bu_of(&o.sends[0]).0, 5001);
    assert_ne!(seq, 5001);
    let o = deliver(&mut r, 20, cn(), &back(135, 6000, 0, true));
    assert!(o.sends.is_empty());
    assert!(o.events.iter().any(|e| matches!(
        e,
        Event::OnHold {
            status: Some(135),
            ..
        }
    )));
}

#[test]
fn refreshed_while_seen_and_expired_when_the_flow_stops() {
    let (mut r, seq) = bound();
    // Seen after binding: refreshed at 80 % of 40 s.
    sight(&mut r, 20_000, cn());
    assert!(tick(&mut r, 31_000).sends.is_empty());
    let o = tick(&mut r, 32_010);
    assert_eq!(o.sends.len(), 1);
    assert_eq!(bu_of(&o.sends[0]).0, seq + 1);
    let o = deliver(&mut r, 32_050, cn(), &back(0, seq + 1, 40, true));
    assert!(o.kernel.is_empty(), "route already there");
    // Not seen again: no refresh, expiry at 72 s takes the route away.
    assert!(tick(&mut r, 70_000).sends.is_empty());
    let o = tick(&mut r, 72_100);
    assert!(o.sends.is_empty());
    assert_eq!(o.kernel, vec![Change::Delete(reverse())]);
    assert_eq!(r.counts(), (0, 0, 0));
}

#[test]
fn terminal_gone_deregisters_bound_correspondents_and_removes_routes() {
    let (mut r, seq) = bound();
    r.handle_input(now(5000), Input::TerminalGone { hoa: hoa() });
    let o = drain(&mut r, now(5000));
    assert_eq!(o.kernel, vec![Change::Delete(reverse())]);
    assert_eq!(o.sends.len(), 1);
    let (dseq, lifetime, ..) = bu_of(&o.sends[0]);
    assert_eq!((dseq, lifetime), (seq + 1, 0));
    assert_eq!(r.poll_timeout(), None);
    // Sightings after departure send nothing.
    assert!(sight(&mut r, 6000, cn()).sends.is_empty());
}

/// 002 FIG 6 and back: the terminal moves to another MMA and returns within its grace.
#[test]
fn terminal_left_removes_routes_without_deregistering_and_rebinds_on_return() {
    let (mut r, seq) = bound();
    sight(&mut r, 2000, cn());
    r.handle_input(now(5000), Input::TerminalLeft { hoa: hoa() });
    let o = drain(&mut r, now(5000));
    assert_eq!(o.kernel, vec![Change::Delete(reverse())]);
    assert!(o.sends.is_empty(), "no deregistration: {:?}", o.sends);
    // Still listed for the next MMA's context request.
    assert_eq!(r.correspondents_of(hoa(), now(5000)).count(), 1);
    // Neither sightings nor the refresh time bring a BU from here (it would take the
    // correspondent's binding back from the next MMA).
    assert!(sight(&mut r, 6000, cn()).sends.is_empty());
    assert!(tick(&mut r, 33_000).sends.is_empty());
    // Back within the grace: the context from the other MMA binds again, and the route
    // returns with the acknowledgement.
    r.handle_input(now(34_000), Input::TerminalUp { hoa: hoa() });
    r.bind_now(
        now(34_000),
        hoa(),
        CorrespondentBinding {
            correspondent: cn(),
            remaining_s: 30,
            sequence: seq + 5,
        },
    );
    let o = drain(&mut r, now(34_000));
    assert_eq!(o.sends.len(), 1);
    assert_eq!(bu_of(&o.sends[0]).0, seq + 6);
    let o = deliver(&mut r, 34_050, cn(), &back(0, seq + 6, 40, true));
    assert_eq!(o.kernel, vec![Change::Add(reverse())]);
}

/// A refresh acknowledged after the terminal left installs no route.
#[test]
fn late_acknowledgement_after_the_terminal_left_routes_nothing() {
    let (mut r, seq) = bound();
    sight(&mut r, 20_000, cn());
    assert_eq!(tick(&mut r, 32_010).sends.len(), 1);
    r.handle_input(now(32_020), Input::TerminalLeft { hoa: hoa() });
    assert_eq!(
        drain(&mut r, now(32_020)).kernel,
        vec![Change::Delete(reverse())]
    );
    let o = deliver(&mut r, 32_050, cn(), &back(0, seq + 1, 40, true));
    assert!(o.kernel.is_empty(), "{:?}", o.kernel);
}

#[test]
fn context_transfer_lists_bindings_and_binds_at_once() {
    let (r, seq) = bound();
    let list: Vec<_> = r.correspondents_of(hoa(), now(10_010)).collect();
    assert_eq!(
        list,
        vec![CorrespondentBinding {
            correspondent: cn(),
            remaining_s: 30,
            sequence: seq
        }]
    );
    // The new MMA: no sighting needed, continues the sequence numbers.
    let mut new = ro();
    new.bind_now(now(0), hoa(), list[0]);
    let o = drain(&mut new, now(0));
    assert_eq!(o.sends.len(), 1);
    assert_eq!(bu_of(&o.sends[0]).0, seq + 1);
}
