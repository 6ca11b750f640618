//! Context transfer between two MMA cores (old and new site), driven by hand with a virtual
//! clock: happy path, retransmission, bad security association, replay, unknown terminal,
//! unknown peer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_binding::sa::Algorithm;
use mipcast_binding::{Now, RegistrarConfig, SaTable, SecurityAssociation};
use mipcast_proto::{settle, Machine, Outcome, TokenBucket};
use mipcast_wire::auth::Credentials;
use mipcast_wire::context::{ContextReply, ContextRequest};
use mipcast_wire::mh::{bu_flags, BindingUpdate, Experimental, Message, MhRepr, MobilityOption};
use mipcast_wire::ntp::ms_to_ntp_units;

use super::*;
use crate::core::{Core, Event, Input, Output, Plan, PolicyConfig, Received};

const WALL0: u64 = 1_800_000_000_000;
const TERMINAL_SPI: u32 = 1000;
const PEER_SPI: u32 = 5000;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn mma1() -> Ipv6Addr {
    a("2001:db8:10::1")
}
fn mma2() -> Ipv6Addr {
    a("2001:db8:20::1")
}
fn stranger() -> Ipv6Addr {
    a("2001:db8:30::1")
}
fn ha() -> Ipv6Addr {
    a("2001:db8:99::1")
}
fn hoa() -> Ipv6Addr {
    a("2001:db8:99::100")
}
fn group() -> Ipv6Addr {
    a("ff35::1:100")
}
fn site_prefix(mma: Ipv6Addr) -> Ipv6Addr {
    if mma == mma1() {
        a("2001:db8:10:1::")
    } else {
        a("2001:db8:20:1::")
    }
}
fn on_link(mma: Ipv6Addr) -> Ipv6Addr {
    let p = site_prefix(mma).segments();
    Ipv6Addr::new(p[0], p[1], p[2], p[3], 0, 0, 0, 0x100)
}

fn peer(address: Ipv6Addr, key: u8) -> Peer {
    Peer {
        address,
        spi: PEER_SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: vec![key; 32],
    }
}

/// An MMA core at `me` with `peers`.
fn mma(me: Ipv6Addr, peers: Vec<Peer>) -> Core {
    let sas = SaTable::new([SecurityAssociation {
        spi: TERMINAL_SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: vec![7; 32],
        allowed: vec![(a("2001:db8:99::"), 64)],
    }])
    .unwrap();
    let site = (site_prefix(me), 64);
    let policy = PolicyConfig {
        site_prefixes: vec![site],
        group_prefix: (a("ff35::"), 64),
        home_agents: vec![(ha(), vec![(a("2001:db8:99::"), 64)])],
        default_grace_s: 10,
        max_grace_s: 60,
    };
    let plan = Plan {
        mma: me,
        wan_ifindex: 2,
        site_ifindex: 3,
        site_prefixes: vec![site],
        home_agents: vec![ha()],
        ha_decap_table: 100,
        site_decap_table: 101,
        uplink_table: 102,
        ha_rule_pref: 10,
        site_rule_pref: 20,
    };
    let reg = RegistrarConfig {
        max_lifetime_s: 3600,
        replay_window_ms: 7000,
        refresh_percent: 80,
    };
    let mut c = Core::new(reg, sas, policy, plan, TokenBucket::new(1000, 1000)).unwrap();
    c.set_context(ContextConfig {
        peers,
        replay_window_ms: 7000,
    });
    c
}

struct World {
    old: Core,
    new: Core,
    mono: u64,
}

impl World {
    fn new() -> World {
        World {
            old: mma(mma1(), vec![peer(mma2(), 9)]),
            new: mma(mma2(), vec![peer(mma1(), 9)]),
            mono: 1000,
        }
    }
    fn now(&self) -> Now {
        Now::from_unix(self.mono, Duration::from_millis(WALL0 + self.mono))
    }
    fn advance(&mut self, ms: u64) {
        self.mono += ms;
    }
}

/// A terminal's registration BU to `mma` from its on-link address there.
fn terminal_bu(mma: Ipv6Addr, seq: u16, previous: Option<Ipv6Addr>, now: Now) -> Vec<u8> {
    let mut options = vec![
        MobilityOption::HomeNetworkPrefix {
            prefix_len: 128,
            prefix: hoa(),
        },
        MobilityOption::Experimental(Experimental::TerminalGroup(group())),
    ];
    options.extend(previous.map(|p| MobilityOption::Experimental(Experimental::PreviousMma(p))));
    options.push(MobilityOption::ReplayProtection {
        timestamp: now.wall_ntp,
    });
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: seq,
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime: 75,
        }),
        options,
    };
    let key = [7u8; 32];
    let creds = Credentials {
        spi: TERMINAL_SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: &key,
    };
    let mut buf = vec![0; 256];
    let n = repr
        .emit_authenticated(&mut buf, &creds, &on_link(mma), &hoa())
        .unwrap();
    buf.truncate(n);
    buf
}

fn feed(c: &mut Core, src: Ipv6Addr, dst: Ipv6Addr, bytes: &[u8], now: Now) -> Vec<Output> {
    c.handle_input(now, Input::Mobility(Received { src, dst, bytes }));
    settle(c, now, |_| Outcome::Applied)
}

fn tick(c: &mut Core, now: Now) -> Vec<Output> {
    c.handle_timeout(now);
    settle(c, now, |_| Outcome::Applied)
}

/// Messages sent to `dst`.
fn sent_to(out: &[Output], dst: Ipv6Addr) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(s) if s.dst == dst => Some(s.bytes.clone()),
            _ => None,
        })
        .collect()
}

fn context_events(out: &[Output]) -> Vec<ContextEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Context(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn two_correspondents() -> Vec<CorrespondentContext> {
    vec![
        CorrespondentContext {
            addr: a("2001:db8:c::1"),
            lifetime_left_s: 200,
            seq: 7,
        },
        CorrespondentContext {
            addr: a("2001:db8:c::2"),
            lifetime_left_s: 100,
            seq: 9,
        },
    ]
}

impl World {
    /// The terminal registered at the old MMA (with two correspondents bound there), then at
    /// the new one naming the old: returns the new MMA's output.
    fn move_terminal(&mut self) -> Vec<Output> {
        let now = self.now();
        let out = feed(
            &mut self.old,
            on_link(mma1()),
            mma1(),
            &terminal_bu(mma1(), 1, None, now),
            now,
        );
        assert_eq!(
            sent_to(&out, on_link(mma1())).len(),
            1,
            "registered at the old MMA"
        );
        assert!(
            context_events(&out).is_empty(),
            "no previous MMA, no request"
        );
        let now = self.now();
        self.old
            .set_correspondents(hoa(), now, two_correspondents());
        self.advance(5000);
        let now = self.now();
        let bu = terminal_bu(mma2(), 2, Some(mma1()), now);
        feed(&mut self.new, on_link(mma2()), mma2(), &bu, now)
    }

    fn deliver_old(&mut self, bytes: &[u8]) -> Vec<Output> {
        let now = self.now();
        feed(&mut self.old, mma2(), mma1(), bytes, now)
    }

    fn deliver_new(&mut self, bytes: &[u8]) -> Vec<Output> {
        let now = self.now();
        feed(&mut self.new, mma1(), mma2(), bytes, now)
    }
}

#[test]
fn an_inter_site_move_transfers_the_context_in_one_round_trip() {
    let mut w = World::new();
    let out = w.move_terminal();
    // The terminal's BAck and the request leave in the same round.
    assert_eq!(sent_to(&out, on_link(mma2())).len(), 1);
    let requests = sent_to(&out, mma1());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].len(), 72, "request size");
    assert!(matches!(
        context_events(&out)[..],
        [ContextEvent::RequestSent {
            retransmission: false,
            ..
        }]
    ));
    assert_eq!(w.new.context_status()[0].state, "requested");

    w.advance(20); // one WAN crossing
    let out = w.deliver_old(&requests[0]);
    let replies = sent_to(&out, mma2());
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].len(), 120, "reply size with two correspondents");
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Served {
            hoa: hoa(),
            peer: mma2(),
            status: 0,
            correspondents: 2
        }]
    );
    // The old MMA's binding is untouched: it still serves the terminal until the
    // deregistration with forwarding arrives.
    assert!(out.iter().all(|o| !matches!(o, Output::Kernel(_))));
    assert_eq!(w.old.terminal_status(w.now().mono)[0].state, "registered");

    w.advance(20);
    let out = w.deliver_new(&replies[0]);
    let events = context_events(&out);
    let [ContextEvent::Received {
        hoa: h,
        peer: p,
        group: g,
        forwarding,
        correspondents,
        rtt_ms,
        ..
    }, ContextEvent::BindCorrespondents {
        correspondents: bind,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!((*h, *p, *g, *forwarding), (hoa(), mma1(), group(), false));
    // What route optimisation reported at setup, 5.02 s older (whole seconds left, rounded down).
    let aged: Vec<_> = two_correspondents()
        .into_iter()
        .map(|c| CorrespondentContext {
            lifetime_left_s: c.lifetime_left_s - 6,
            ..c
        })
        .collect();
    assert_eq!(*correspondents, aged);
    assert_eq!(*bind, aged, "bind these correspondents now");
    assert_eq!(*rtt_ms, 40, "one round trip");
    let status = w.new.context_status();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (status[0].state, status[0].from, status[0].transmissions),
        ("received", mma1(), 1)
    );
    assert_eq!(status[0].correspondents, aged);
    // Nothing left to retransmit.
    assert_eq!(w.new.poll_timeout().filter(|t| t.0 < w.mono + 60_000), None);
}

#[test]
fn a_lost_request_is_retransmitted_with_backoff_then_given_up() {
    let mut w = World::new();
    let out = w.move_terminal();
    let first = sent_to(&out, mma1()).remove(0);
    let seq_of = |b: &[u8]| ContextRequest::from_repr(&MhRepr::parse(b).unwrap()).unwrap();
    let mut sends = vec![(w.mono, first.clone())];
    let start = w.mono;
    // Lost, and so is every retransmission: at 1 s and 3 s, then it gives up at 7 s.
    while w.mono < start + 10_000 {
        let Some(at) = w.new.poll_timeout().filter(|t| t.0 <= start + 10_000) else {
            break;
        };
        w.mono = at.0;
        let now = w.now();
        let out = tick(&mut w.new, now);
        for b in sent_to(&out, mma1()) {
            sends.push((w.mono, b));
        }
        if context_events(&out)
            .iter()
            .any(|e| matches!(e, ContextEvent::GaveUp { .. }))
        {
            break;
        }
    }
    let times: Vec<u64> = sends.iter().map(|(t, _)| t - start).collect();
    assert_eq!(times, vec![0, 1000, 3000]);
    assert_eq!(w.mono - start, 7000, "given up after the last timeout");
    let reqs: Vec<ContextRequest> = sends.iter().map(|(_, b)| seq_of(b)).collect();
    assert!(reqs.iter().all(|r| r.sequence == reqs[0].sequence));
    assert!(reqs.windows(2).all(|p| p[1].timestamp > p[0].timestamp));
    assert!(w.new.context_status().is_empty());
    assert_eq!(w.new.poll_timeout().filter(|t| t.0 < w.mono + 60_000), None);
    // A late answer to the first copy no longer matches anything.
    let out = w.deliver_old(&first);
    let reply = sent_to(&out, mma2()).remove(0);
    let out = w.deliver_new(&reply);
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Dropped {
            reason: "unexpected_reply",
            peer: mma1()
        }]
    );
}

#[test]
fn a_retransmission_is_answered_and_a_late_reply_to_the_first_copy_counts() {
    let mut w = World::new();
    let first = sent_to(&w.move_terminal(), mma1()).remove(0);
    w.advance(1000);
    let now = w.now();
    let retx = sent_to(&tick(&mut w.new, now), mma1()).remove(0);
    // Both copies reach the old MMA (the first one late); both are fresh, both answered.
    let r1 = sent_to(&w.deliver_old(&first), mma2()).remove(0);
    let r2 = sent_to(&w.deliver_old(&retx), mma2()).remove(0);
    let out = w.deliver_new(&r1);
    assert!(matches!(
        context_events(&out)[0],
        ContextEvent::Received { .. }
    ));
    // The second answer is a duplicate now.
    let out = w.deliver_new(&r2);
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Dropped {
            reason: "unexpected_reply",
            peer: mma1()
        }]
    );
}

#[test]
fn a_wrong_security_association_changes_nothing() {
    let mut w = World::new();
    // The old MMA has another key for the new one.
    w.old.set_context(ContextConfig {
        peers: vec![peer(mma2(), 8)],
        replay_window_ms: 7000,
    });
    let request = sent_to(&w.move_terminal(), mma1()).remove(0);
    let out = w.deliver_old(&request);
    assert!(
        sent_to(&out, mma2()).is_empty(),
        "no reply to an unauthenticated request"
    );
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Dropped {
            reason: "auth_failed",
            peer: mma2()
        }]
    );
    // A reply forged with the wrong key does not end the exchange: the genuine one still
    // counts.
    let forged = ContextReply {
        status: 0,
        sequence: ContextRequest::from_repr(&MhRepr::parse(&request).unwrap())
            .unwrap()
            .sequence,
        hoa: hoa(),
        context: None,
    }
    .emit_authenticated(&peer(mma2(), 8).credentials(), &mma2())
    .unwrap();
    let out = w.deliver_new(&forged);
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Dropped {
            reason: "auth_failed",
            peer: mma1()
        }]
    );
    assert_eq!(w.new.context_status()[0].state, "requested");
    w.old.set_context(ContextConfig {
        peers: vec![peer(mma2(), 9)],
        replay_window_ms: 7000,
    });
    let reply = sent_to(&w.deliver_old(&request), mma2()).remove(0);
    assert!(matches!(
        context_events(&w.deliver_new(&reply))[0],
        ContextEvent::Received { .. }
    ));
}

#[test]
fn a_replayed_request_gets_144_and_a_replayed_reply_is_dropped() {
    let mut w = World::new();
    let request = sent_to(&w.move_terminal(), mma1()).remove(0);
    let reply = sent_to(&w.deliver_old(&request), mma2()).remove(0);
    // The same request again: not newer than the last accepted timestamp.
    let out = w.deliver_old(&request);
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Served {
            hoa: hoa(),
            peer: mma2(),
            status: 144,
            correspondents: 0
        }]
    );
    let refusal = ContextReply::from_repr(&MhRepr::parse(&sent_to(&out, mma2())[0]).unwrap());
    assert_eq!(refusal.map(|r| (r.status, r.context)), Some((144, None)));
    // A request outside the replay window (an old capture) too.
    let mut old_req = ContextRequest::from_repr(&MhRepr::parse(&request).unwrap()).unwrap();
    old_req.timestamp = w.now().wall_ntp - ms_to_ntp_units(8000);
    let bytes = old_req
        .emit_authenticated(&peer(mma1(), 9).credentials(), &mma2())
        .unwrap();
    let mut fresh = World::new();
    fresh.move_terminal();
    fresh.mono = w.mono;
    let out = fresh.deliver_old(&bytes);
    assert!(matches!(
        context_events(&out)[..],
        [ContextEvent::Served { status: 144, .. }]
    ));
    // The genuine reply is taken once; its replay is dropped.
    assert!(matches!(
        context_events(&w.deliver_new(&reply))[0],
        ContextEvent::Received { .. }
    ));
    assert_eq!(
        context_events(&w.deliver_new(&reply)),
        vec![ContextEvent::Dropped {
            reason: "unexpected_reply",
            peer: mma1()
        }]
    );
}

#[test]
fn a_terminal_unknown_at_the_old_mma_is_answered_133() {
    let mut w = World::new();
    let now = w.now();
    // Registered only at the new MMA (the old one never saw it, or its window ended).
    let bu = terminal_bu(mma2(), 2, Some(mma1()), now);
    let request = sent_to(&feed(&mut w.new, on_link(mma2()), mma2(), &bu, now), mma1()).remove(0);
    let out = w.deliver_old(&request);
    assert!(matches!(
        context_events(&out)[..],
        [ContextEvent::Served {
            status: 133,
            correspondents: 0,
            ..
        }]
    ));
    let out = w.deliver_new(&sent_to(&out, mma2())[0]);
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Refused {
            hoa: hoa(),
            peer: mma1(),
            status: 133
        }]
    );
    assert!(w.new.context_status().is_empty());
}

#[test]
fn an_unknown_peer_gets_nothing_and_is_asked_nothing() {
    let mut w = World::new();
    let now = w.now();
    // The terminal names an MMA that is not a configured peer: no request, counted.
    let bu = terminal_bu(mma2(), 2, Some(stranger()), now);
    let out = feed(&mut w.new, on_link(mma2()), mma2(), &bu, now);
    assert_eq!(sent_to(&out, on_link(mma2())).len(), 1, "registered anyway");
    assert!(sent_to(&out, stranger()).is_empty());
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::UnknownPreviousMma {
            hoa: hoa(),
            previous: stranger()
        }]
    );
    // A request from a stranger (even validly signed with a peer's key) is dropped.
    let req = ContextRequest {
        sequence: 1,
        hoa: hoa(),
        timestamp: now.wall_ntp,
    }
    .emit_authenticated(&peer(mma1(), 9).credentials(), &stranger())
    .unwrap();
    let out = feed(&mut w.old, stranger(), mma1(), &req, now);
    assert!(sent_to(&out, stranger()).is_empty());
    assert_eq!(
        context_events(&out),
        vec![ContextEvent::Dropped {
            reason: "unknown_peer",
            peer: stranger()
        }]
    );
}

#[test]
fn a_refresh_naming_the_previous_mma_asks_nothing_again() {
    let mut w = World::new();
    let request = sent_to(&w.move_terminal(), mma1()).remove(0);
    let reply = sent_to(&w.deliver_old(&request), mma2()).remove(0);
    w.deliver_new(&reply);
    w.advance(1000);
    let now = w.now();
    let bu = terminal_bu(mma2(), 3, Some(mma1()), now);
    let out = feed(&mut w.new, on_link(mma2()), mma2(), &bu, now);
    assert_eq!(sent_to(&out, on_link(mma2())).len(), 1);
    assert!(sent_to(&out, mma1()).is_empty());
    assert_eq!(w.new.context_status()[0].state, "received");
}

#[test]
fn more_correspondents_than_fit_keep_the_longest_lived() {
    let mut w = World::new();
    let request = sent_to(&w.move_terminal(), mma1()).remove(0);
    let many: Vec<CorrespondentContext> = (0..14u16)
        .map(|i| CorrespondentContext {
            addr: Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i + 1),
            lifetime_left_s: u32::from(i) * 10,
            seq: i,
        })
        .collect();
    let now = w.now();
    w.old.set_correspondents(hoa(), now, many);
    let reply = sent_to(&w.deliver_old(&request), mma2()).remove(0);
    let events = context_events(&w.deliver_new(&reply));
    let ContextEvent::Received {
        truncated,
        correspondents,
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert!(*truncated);
    assert_eq!(correspondents.len(), 11);
    assert!(correspondents.iter().all(|c| c.lifetime_left_s >= 30));
}

#[test]
fn a_registration_the_kernel_refuses_asks_nothing() {
    let mut w = World::new();
    let now = w.now();
    feed(
        &mut w.old,
        on_link(mma1()),
        mma1(),
        &terminal_bu(mma1(), 1, None, now),
        now,
    );
    w.advance(5000);
    let now = w.now();
    let bu = terminal_bu(mma2(), 2, Some(mma1()), now);
    w.new.handle_input(
        now,
        Input::Mobility(Received {
            src: on_link(mma2()),
            dst: mma2(),
            bytes: &bu,
        }),
    );
    // The new MMA's kernel refuses the terminal's routes: registration revoked, answered 130.
    let out = settle(&mut w.new, now, |c| {
        if c.is_delete() {
            Outcome::Applied
        } else {
            Outcome::Refused {
                errno: Some(22),
                reason: "refused".into(),
            }
        }
    });
    assert!(sent_to(&out, mma1()).is_empty(), "{out:?}");
    assert!(context_events(&out).is_empty(), "{out:?}");
    // Its timer finds the terminal gone and drops the request quietly.
    w.advance(1000);
    let now = w.now();
    let out = tick(&mut w.new, now);
    assert!(sent_to(&out, mma1()).is_empty());
    assert!(w.new.context_status().is_empty());
}
