//! The MMA core as a pure state machine: BUs and timer ticks in, kernel changes and messages
//! out, with a hand-driven clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use ipnetwork::Ipv6Network;
use mipcast_binding::sa::Algorithm;
use mipcast_binding::{
    BindingRecord, Now, RegistrarConfig, RemoveReason, SaTable, SecurityAssociation,
};
use mipcast_proto::{settle, KObject, Machine, Outcome, TokenBucket};
use mipcast_wire::mh::{bu_flags, Experimental, MobilityOption};
use mma::core::{Change, Core, Event, Input, Output, Plan, PolicyConfig, Received, Send};

const WAN: u32 = 2;
const SITE: u32 = 3;
const WALL0: u64 = 1_800_000_000_000;

struct Clock {
    mono: u64,
}

impl Clock {
    fn now(&self) -> Now {
        Now::from_unix(self.mono, Duration::from_millis(WALL0 + self.mono))
    }
    fn ntp(&self) -> u64 {
        ntp_at(WALL0 + self.mono)
    }
    fn advance(&mut self, ms: u64) {
        self.mono += ms;
    }
}

fn p(a: &str, l: u8) -> (Ipv6Addr, u8) {
    (a.parse().unwrap(), l)
}

fn plan() -> Plan {
    Plan {
        mma: MMA,
        wan_ifindex: WAN,
        site_ifindex: SITE,
        site_prefixes: vec![p("2001:db8:4::", 64)],
        home_agents: vec![HA],
        ha_decap_table: 100,
        site_decap_table: 101,
        uplink_table: 102,
        ha_rule_pref: 10,
        site_rule_pref: 20,
    }
}

fn core() -> Core {
    let sas = SaTable::new([SecurityAssociation {
        spi: SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: KEY.to_vec(),
        // Wider than the home agent's prefix, so the "no home agent" check is reachable.
        allowed: vec![p("2001:db8::", 32)],
    }])
    .unwrap();
    let policy = PolicyConfig {
        site_prefixes: vec![p("2001:db8:4::", 64)],
        group_prefix: p("ff35::", 64),
        home_agents: vec![(HA, vec![p("2001:db8:99::", 64)])],
        default_grace_s: 10,
        max_grace_s: 60,
    };
    let reg = RegistrarConfig {
        max_lifetime_s: 3600,
        replay_window_ms: 7000,
        refresh_percent: 80,
    };
    Core::new(reg, sas, policy, plan(), TokenBucket::new(1000, 1000)).unwrap()
}

fn host(a: Ipv6Addr) -> Ipv6Network {
    Ipv6Network::from(a)
}

fn downlink(hoa: Ipv6Addr, group: Ipv6Addr) -> KObject {
    KObject::EncapRoute {
        dst: host(hoa),
        src: None,
        tunnel_dst: group,
        oif: SITE,
        table: 254,
    }
}

fn uplink(hoa: Ipv6Addr) -> KObject {
    KObject::EncapRoute {
        dst: "::/0".parse().unwrap(),
        src: Some(host(hoa)),
        tunnel_dst: HA,
        oif: WAN,
        table: 102,
    }
}

fn kernel(out: &[Output]) -> Vec<Change> {
    out.iter()
        .filter_map(|o| match o {
            Output::Kernel(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn ack(out: &[Output], hoa: Ipv6Addr) -> Ack {
    let sends: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(Send { src, dst, bytes }) => Some((*src, *dst, bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "{out:?}");
    let (src, dst, bytes) = &sends[0];
    assert_eq!((*src, *dst), (MMA, ON_LINK));
    parse_ack(bytes, ON_LINK, hoa)
}

/// Hands `bytes` from `src` to the core and runs it to completion against a kernel that
/// accepts everything.
fn mh(c: &mut Core, src: Ipv6Addr, bytes: &[u8], clock: &Clock) -> Vec<Output> {
    mh_with(c, src, bytes, clock, |_| Outcome::Applied)
}

/// The same against a kernel that answers with `kernel`.
fn mh_with(
    c: &mut Core,
    src: Ipv6Addr,
    bytes: &[u8],
    clock: &Clock,
    kernel: impl FnMut(&Change) -> Outcome,
) -> Vec<Output> {
    c.handle_input(
        clock.now(),
        Input::Mobility(Received {
            src,
            dst: MMA,
            bytes,
        }),
    );
    settle(c, clock.now(), kernel)
}

/// Runs the timers due now.
fn tick(c: &mut Core, clock: &Clock) -> Vec<Output> {
    c.handle_timeout(clock.now());
    settle(c, clock.now(), |_| Outcome::Applied)
}

fn send(c: &mut Core, bu: &Bu, clock: &Clock) -> Vec<Output> {
    mh(c, ON_LINK, &bu.bytes(), clock)
}

fn register(c: &mut Core, clock: &Clock) -> Vec<Output> {
    send(c, &terminal_bu(1, HOA, GROUP, clock.ntp()), clock)
}

#[test]
fn registration_installs_route_uplink_and_mfc_then_acks_with_the_care_of_address() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    let out = register(&mut c, &clock);
    assert_eq!(
        kernel(&out),
        vec![
            Change::AddMfc {
                source: MMA,
                group: GROUP
            },
            Change::Add(downlink(HOA, GROUP)),
            Change::Add(uplink(HOA)),
        ]
    );
    // Kernel changes come before the acknowledgement.
    let last_kernel = out
        .iter()
        .rposition(|o| matches!(o, Output::Kernel(_)))
        .unwrap();
    let send = out
        .iter()
        .position(|o| matches!(o, Output::Send { .. }))
        .unwrap();
    assert!(last_kernel < send);
    let a = ack(&out, HOA);
    assert_eq!((a.status, a.sequence, a.authentic), (0, 1, true));
    assert!(a
        .options
        .contains(&MobilityOption::Experimental(Experimental::AssignedCoa(
            MMA
        ))));
    assert_eq!(c.group_owner(GROUP), Some(HOA));
    assert_eq!(c.counts(), (1, 0));
}

#[test]
fn refresh_with_the_same_group_changes_nothing_in_the_kernel() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(100);
    let out = send(&mut c, &terminal_bu(2, HOA, GROUP, clock.ntp()), &clock);
    assert_eq!(kernel(&out), vec![]);
    assert_eq!(ack(&out, HOA).status, 0);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Registered { refresh: true, .. }))));
}

#[test]
fn group_of_another_terminal_is_refused_with_130_and_installs_nothing() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let other: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    let out = send(&mut c, &terminal_bu(1, other, GROUP, clock.ntp()), &clock);
    assert_eq!(kernel(&out), vec![]);
    let a = ack(&out, other);
    assert_eq!((a.status, a.authentic), (130, true));
    assert_eq!(c.group_owner(GROUP), Some(HOA));
    assert_eq!(c.counts(), (1, 0));
}

#[test]
fn refusals_install_nothing_and_carry_the_documented_status() {
    let clock = Clock { mono: 1000 };
    let outside: Ipv6Addr = "ff35:0:0:1::1".parse().unwrap();
    let cases: Vec<(&str, Bu, Ipv6Addr, u8)> = vec![
        (
            "group outside the prefix",
            terminal_bu(1, HOA, outside, clock.ntp()),
            ON_LINK,
            129,
        ),
        (
            "no M flag",
            Bu {
                flags: bu_flags::ACK,
                ..terminal_bu(1, HOA, GROUP, clock.ntp())
            },
            ON_LINK,
            129,
        ),
        (
            "home registration",
            Bu {
                flags: bu_flags::ACK | bu_flags::MAP | bu_flags::HOME,
                ..terminal_bu(1, HOA, GROUP, clock.ntp())
            },
            ON_LINK,
            131,
        ),
        (
            "no group option",
            Bu {
                group: None,
                ..terminal_bu(1, HOA, GROUP, clock.ntp())
            },
            ON_LINK,
            128,
        ),
        (
            "home address no home agent serves",
            terminal_bu(1, "2001:db8:55::1".parse().unwrap(), GROUP, clock.ntp()),
            ON_LINK,
            132,
        ),
        (
            "wrong key",
            Bu {
                key: Some(b"not the key".to_vec()),
                ..terminal_bu(1, HOA, GROUP, clock.ntp())
            },
            ON_LINK,
            146,
        ),
    ];
    for (what, bu, src, status) in cases {
        let mut c = core();
        let out = mh(&mut c, src, &bu.bytes(), &clock);
        assert_eq!(kernel(&out), vec![], "{what}");
        assert_eq!(ack(&out, bu.hoa).status, status, "{what}");
        assert_eq!(c.counts(), (0, 0), "{what}");
    }
    // A BU from outside the site prefixes.
    let mut c = core();
    let bu = Bu {
        coa: "2001:db8:5::9".parse().unwrap(),
        ..terminal_bu(1, HOA, GROUP, clock.ntp())
    };
    let out = mh(&mut c, bu.coa, &bu.bytes(), &clock);
    assert_eq!(kernel(&out), vec![]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Rejected { status: 129, .. }))));
}

#[test]
fn forwarding_window_of_the_max_grace_redirects_to_the_new_coa_and_ends() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(500);
    let dereg = terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 60)));
    let out = send(&mut c, &dereg, &clock);
    let forward = KObject::EncapRoute {
        dst: host(HOA),
        src: None,
        tunnel_dst: NEW_COA,
        oif: WAN,
        table: 254,
    };
    assert_eq!(
        kernel(&out),
        vec![
            Change::Replace(forward),
            Change::Delete(uplink(HOA)),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ]
    );
    let a = ack(&out, HOA);
    assert_eq!(a.status, 0);
    assert!(a.options.contains(&MobilityOption::Experimental(
        Experimental::ForwardingRequest {
            new_coa: NEW_COA,
            grace_secs: 60
        }
    )));
    assert_eq!(c.counts(), (0, 1));
    assert_eq!(
        c.group_owner(GROUP),
        None,
        "the group is free while forwarding"
    );

    clock.advance(59_999);
    assert_eq!(kernel(&tick(&mut c, &clock)), vec![]);
    clock.advance(1);
    let out = tick(&mut c, &clock);
    assert_eq!(kernel(&out), vec![Change::Delete(forward)]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::Removed {
            reason: RemoveReason::GraceEnded,
            ..
        })
    )));
    assert_eq!(c.counts(), (0, 0));
    assert!(c
        .desired_objects()
        .iter()
        .all(|o| !matches!(o, KObject::EncapRoute { .. })));
}

#[test]
fn forwarding_request_for_zero_seconds_gets_the_default_grace() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 0))),
        &clock,
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::ForwardingStarted { grace_s: 10, .. })
    )));
    clock.advance(10_000);
    assert_eq!(
        tick(&mut c, &clock).len(),
        2,
        "removal kernel change and event"
    );
}

#[test]
fn deregistration_without_forwarding_removes_everything_at_once() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(None),
        &clock,
    );
    assert_eq!(
        kernel(&out),
        vec![
            Change::Delete(downlink(HOA, GROUP)),
            Change::Delete(uplink(HOA)),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ]
    );
    assert_eq!(ack(&out, HOA).status, 0);
    assert_eq!(c.counts(), (0, 0));
    // Another terminal may now take the group.
    clock.advance(10);
    let other: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    let out = send(&mut c, &terminal_bu(1, other, GROUP, clock.ntp()), &clock);
    assert_eq!(ack(&out, other).status, 0);
}

#[test]
fn expiry_removes_routes_and_mfc() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock); // 40 s lifetime
    clock.advance(39_999);
    let out = tick(&mut c, &clock);
    // Only the Binding Refresh Request (due at 80 %) so far.
    assert_eq!(kernel(&out), vec![]);
    clock.advance(1);
    let out = tick(&mut c, &clock);
    assert_eq!(
        kernel(&out),
        vec![
            Change::Delete(downlink(HOA, GROUP)),
            Change::Delete(uplink(HOA)),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ]
    );
    assert_eq!(c.group_owner(GROUP), None);
}

#[test]
fn desired_state_maps_each_terminal_and_the_constant_objects() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let want = c.desired_objects();
    let rule = |pref, from: &str, table| KObject::Rule {
        pref,
        from: Some(from.parse().unwrap()),
        to: Some(host(MMA)),
        ipproto: Some(41),
        table,
    };
    for o in [
        downlink(HOA, GROUP),
        uplink(HOA),
        rule(10, "2001:db8:2::1/128", 100),
        rule(20, "2001:db8:4::/64", 101),
        KObject::DecapRoute {
            local: MMA,
            oif: WAN,
            table: 100,
            inner_table: 254,
        },
        KObject::DecapRoute {
            local: MMA,
            oif: SITE,
            table: 101,
            inner_table: 102,
        },
    ] {
        assert!(want.contains(&o), "missing {o}");
    }
    assert_eq!(want.len(), 6);
    assert_eq!(c.desired_groups(), vec![GROUP]);
}

#[test]
fn restored_terminals_program_the_same_state_and_keep_their_groups() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let records = c.records(clock.now());
    let json = serde_json::to_string(&records).unwrap();

    clock.advance(5000);
    let mut restarted = core();
    let restored = restarted.restore(serde_json::from_str(&json).unwrap(), clock.now());
    assert_eq!(restored, 1);
    // The driver reconciles the kernel with what the restored terminals want.
    assert_eq!(restarted.desired_objects(), c.desired_objects());
    assert_eq!(restarted.desired_groups(), vec![GROUP]);
    assert!(restarted.poll_output().is_none(), "restore queues nothing");
    assert_eq!(restarted.group_owner(GROUP), Some(HOA));
    // The replayed BU is refused: replay state came back with the binding.
    let out = send(
        &mut restarted,
        &terminal_bu(1, HOA, GROUP, clock.ntp()),
        &clock,
    );
    assert_eq!(kernel(&out), vec![]);
    assert_ne!(ack(&out, HOA).status, 0);
}

/// A restored terminal whose MFC entry the kernel refuses at start is rolled back whole:
/// no group, no routes wanted, not counted, and it can register again from scratch.
#[test]
fn a_restored_terminal_whose_mfc_entry_fails_is_rolled_back_whole() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let records = c.records(clock.now());
    clock.advance(5000);
    let mut restarted = core();
    assert_eq!(restarted.restore(records, clock.now()), 1);
    assert_eq!(restarted.desired_groups(), vec![GROUP]);

    let refusal = restarted
        .rollback_restored(GROUP, clock.now())
        .expect("the group's terminal is rolled back");
    assert_eq!(
        (refusal.hoa, refusal.reason),
        (HOA, mma::core::revalidate::MFC_ADD_FAILED)
    );
    assert_eq!(restarted.desired_groups(), Vec::<Ipv6Addr>::new());
    assert_eq!(restarted.desired_objects(), core().desired_objects());
    assert_eq!(restarted.group_owner(GROUP), None);
    assert_eq!(restarted.counts(), (0, 0));
    assert_eq!(restarted.records_len(), 0);
    assert!(
        restarted.poll_output().is_none(),
        "the start's reconcile cleans up"
    );
    assert!(restarted.rollback_restored(GROUP, clock.now()).is_none());

    // Its next BU registers it afresh, MFC entry first.
    clock.advance(100);
    let out = send(
        &mut restarted,
        &terminal_bu(2, HOA, GROUP, clock.ntp()),
        &clock,
    );
    assert_eq!(ack(&out, HOA).status, 0);
    assert_eq!(
        kernel(&out).first(),
        Some(&Change::AddMfc {
            source: MMA,
            group: GROUP
        })
    );
    assert_eq!(restarted.counts(), (1, 0));
}

/// A reload whose configuration no longer allows a terminal (its home agent's prefix
/// narrowed, or its SA removed) drops it and withdraws its routes and MFC entry at once; a
/// reload that still allows it changes nothing.
#[test]
fn a_reload_that_no_longer_allows_a_terminal_withdraws_it() {
    let sas = |spi: u32| {
        SaTable::new([SecurityAssociation {
            spi,
            algorithm: Algorithm::HmacSha256_128,
            key: KEY.to_vec(),
            allowed: vec![p("2001:db8::", 32)],
        }])
        .unwrap()
    };
    let policy = |home: (Ipv6Addr, u8)| PolicyConfig {
        site_prefixes: vec![p("2001:db8:4::", 64)],
        group_prefix: p("ff35::", 64),
        home_agents: vec![(HA, vec![home])],
        default_grace_s: 10,
        max_grace_s: 60,
    };
    let limiter = || TokenBucket::new(1000, 1000);
    let home = p("2001:db8:99::", 64);
    for (sa, prefix, reason) in [
        (SPI, p("2001:db8:98::", 64), "home_agent_mismatch"),
        (SPI + 1, home, "unknown_spi"),
    ] {
        let mut c = core();
        let clock = Clock { mono: 1000 };
        register(&mut c, &clock);
        let wanted = c.desired_objects();

        // The same configuration again: nothing leaves, nothing is queued.
        c.reload(sas(SPI), policy(home), plan(), limiter());
        assert!(c.revalidate(clock.now()).is_empty());
        assert!(c.poll_output().is_none());
        assert_eq!(c.desired_objects(), wanted);

        c.reload(sas(sa), policy(prefix), plan(), limiter());
        let dropped = c.revalidate(clock.now());
        let got: Vec<_> = dropped.iter().map(|d| (d.hoa, d.reason)).collect();
        assert_eq!(got, vec![(HOA, reason)]);
        let out = settle(&mut c, clock.now(), |_| Outcome::Applied);
        let changes = kernel(&out);
        assert!(
            changes.contains(&Change::DelMfc {
                source: MMA,
                group: GROUP
            }),
            "{changes:?}"
        );
        assert!(
            changes.contains(&Change::Delete(anywhere(downlink(HOA, GROUP)))),
            "{changes:?}"
        );
        assert!(
            changes.contains(&Change::Delete(anywhere(uplink(HOA)))),
            "{changes:?}"
        );
        assert!(!out.iter().any(|o| matches!(o, Output::Send(_))), "{out:?}");
        assert_eq!(c.desired_groups(), Vec::<Ipv6Addr>::new());
        assert_eq!(c.counts(), (0, 0));
        assert_eq!(c.group_owner(GROUP), None);
    }
}

/// `route` on any device: how a withdrawal deletes it (whatever device a refused replace
/// left the previous route on).
fn anywhere(route: KObject) -> KObject {
    match route {
        KObject::EncapRoute {
            dst,
            src,
            tunnel_dst,
            table,
            ..
        } => KObject::EncapRoute {
            dst,
            src,
            tunnel_dst,
            oif: 0,
            table,
        },
        other => other,
    }
}

#[test]
fn refused_kernel_change_revokes_the_terminal_and_answers_130() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    // The core attributes the uplink route and the MFC entry to the terminal; the constant
    // objects belong to nobody.
    register(&mut c, &clock);
    assert_eq!(c.owner(&Change::Add(uplink(HOA))), Some(HOA));
    assert_eq!(c.owner(&Change::Add(downlink(HOA, GROUP))), Some(HOA));
    assert_eq!(
        c.owner(&Change::AddMfc {
            source: MMA,
            group: GROUP
        }),
        Some(HOA)
    );
    for constant in plan().constant_objects() {
        assert_eq!(c.owner(&Change::Add(constant)), None, "{constant:?}");
    }

    // A second terminal whose uplink route the kernel refuses.
    let other: Ipv6Addr = "2001:db8:99::300".parse().unwrap();
    let other_group: Ipv6Addr = "ff35::200:ff:fe00:300".parse().unwrap();
    let refused = Change::Add(uplink(other));
    clock.advance(10);
    let out = mh_with(
        &mut c,
        ON_LINK,
        &terminal_bu(1, other, other_group, clock.ntp()).bytes(),
        &clock,
        |ch| {
            if *ch == refused {
                Outcome::Refused {
                    errno: Some(22),
                    reason: "Invalid argument".into(),
                }
            } else {
                Outcome::Applied
            }
        },
    );
    // Its three changes, then everything of it withdrawn.
    assert_eq!(
        kernel(&out),
        vec![
            Change::AddMfc {
                source: MMA,
                group: other_group
            },
            Change::Add(downlink(other, other_group)),
            refused,
            Change::Delete(anywhere(downlink(other, other_group))),
            Change::Delete(anywhere(uplink(other))),
            Change::DelMfc {
                source: MMA,
                group: other_group
            },
        ]
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Event(Event::ProgrammingFailed { hoa, group }) if (*hoa, *group) == (other, other_group))));
    // The BAck(0) and the registration event never leave: only the signed 130, for the BU's
    // sequence number, after the kernel changes.
    let a = ack(&out, other);
    assert_eq!((a.status, a.sequence, a.authentic), (130, 1, true));
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Registered { hoa, .. }) if *hoa == other)));
    let last_kernel = out.iter().rposition(|o| matches!(o, Output::Kernel(_)));
    let first_send = out.iter().position(|o| matches!(o, Output::Send(_)));
    assert!(last_kernel < first_send);
    // Nothing is left that claims the terminal is served; the first one is untouched.
    assert_eq!(c.counts(), (1, 0));
    assert_eq!(c.group_owner(other_group), None);
    assert_eq!(c.desired_groups(), vec![GROUP]);
    assert_eq!(c.owner(&refused), None);

    // The terminal's retry registers from scratch.
    clock.advance(50);
    let out = mh(
        &mut c,
        ON_LINK,
        &terminal_bu(2, other, other_group, clock.ntp()).bytes(),
        &clock,
    );
    assert_eq!(kernel(&out).len(), 3, "{out:?}");
    assert_eq!(ack(&out, other).status, 0);
    assert_eq!(c.group_owner(other_group), Some(other));
}

#[test]
fn route_left_by_a_predecessor_is_replaced_not_refused() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    let present = Change::Add(uplink(HOA));
    let out = mh_with(
        &mut c,
        ON_LINK,
        &terminal_bu(1, HOA, GROUP, clock.ntp()).bytes(),
        &clock,
        |ch| {
            if *ch == present {
                Outcome::AlreadyPresent
            } else {
                Outcome::Applied
            }
        },
    );
    assert_eq!(
        kernel(&out).last(),
        Some(&Change::Replace(uplink(HOA))),
        "{out:?}"
    );
    assert_eq!(ack(&out, HOA).status, 0);
    assert_eq!(c.group_owner(GROUP), Some(HOA));
}

#[test]
fn refused_forwarding_change_withdraws_both_route_shapes() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(100);
    let bu = terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 20)));
    let out = mh_with(&mut c, ON_LINK, &bu.bytes(), &clock, |ch| {
        if matches!(ch, Change::Replace(_)) {
            Outcome::Refused {
                errno: Some(19),
                reason: "No such device".into(),
            }
        } else {
            Outcome::Applied
        }
    });
    // The refused replace left the downlink to the group: deleted by identity, any device;
    // the uplink the forwarding state no longer has is deleted too (tolerated if gone).
    // (The rest of the forwarding change's batch is applied first, then the withdrawal.)
    let changes = kernel(&out);
    assert!(
        changes.iter().any(|ch| matches!(ch, Change::Replace(_))),
        "forwarding replaces the downlink"
    );
    assert_eq!(
        changes
            .get(changes.len().saturating_sub(3)..)
            .map(<[Change]>::to_vec),
        Some(vec![
            Change::Delete(anywhere(downlink(HOA, GROUP))),
            Change::Delete(anywhere(uplink(HOA))),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ])
    );
    assert_eq!(ack(&out, HOA).sequence, 2);
    assert_eq!(ack(&out, HOA).status, 130);
    assert_eq!(c.counts(), (0, 0));
}

#[test]
fn replies_to_refused_messages_are_rate_limited() {
    let sas = SaTable::new([SecurityAssociation {
        spi: SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: KEY.to_vec(),
        allowed: vec![p("2001:db8::", 32)],
    }])
    .unwrap();
    let policy = PolicyConfig {
        site_prefixes: vec![p("2001:db8:4::", 64)],
        group_prefix: p("ff35::", 64),
        home_agents: vec![(HA, vec![p("2001:db8:99::", 64)])],
        default_grace_s: 10,
        max_grace_s: 60,
    };
    let reg = RegistrarConfig {
        max_lifetime_s: 3600,
        replay_window_ms: 7000,
        refresh_percent: 80,
    };
    let mut c = Core::new(reg, sas, policy, plan(), TokenBucket::new(1, 3)).unwrap();
    let clock = Clock { mono: 1000 };
    // Ten BUs from outside the site prefixes: refused (129); three answers, seven suppressed.
    let outside: Ipv6Addr = "2001:db8:77::1".parse().unwrap();
    let mut answered = 0;
    let mut suppressed = 0;
    for seq in 1..=10 {
        let out = mh(
            &mut c,
            outside,
            &terminal_bu(seq, HOA, GROUP, clock.ntp()).bytes(),
            &clock,
        );
        answered += out.iter().filter(|o| matches!(o, Output::Send(_))).count();
        suppressed += out
            .iter()
            .filter(|o| matches!(o, Output::Event(Event::ReplySuppressed { .. })))
            .count();
    }
    assert_eq!((answered, suppressed), (3, 7));
    // An accepted registration is never suppressed.
    let out = send(&mut c, &terminal_bu(11, HOA, GROUP, clock.ntp()), &clock);
    assert_eq!(ack(&out, HOA).status, 0);
}

#[test]
fn a_delete_the_kernel_refused_is_tried_again_until_it_goes() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let mfc = Change::DelMfc {
        source: MMA,
        group: GROUP,
    };
    let refuse_mfc = move |ch: &Change| {
        if *ch == mfc {
            Outcome::Refused {
                errno: Some(16), // EBUSY
                reason: "Device or resource busy".into(),
            }
        } else {
            Outcome::Applied
        }
    };
    let out = mh_with(
        &mut c,
        ON_LINK,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(None).bytes(),
        &clock,
        refuse_mfc,
    );
    assert_eq!(ack(&out, HOA).status, 0, "the terminal is gone either way");
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::KernelRefused { .. }))));
    // A second later the delete goes out again; still refused, then accepted.
    let retry = c.poll_timeout().expect("a retry is scheduled");
    assert_eq!(retry.0, clock.mono + 1000);
    clock.mono = retry.0;
    c.handle_timeout(clock.now());
    assert_eq!(kernel(&settle(&mut c, clock.now(), refuse_mfc)), vec![mfc]);
    clock.mono = c.poll_timeout().expect("retried again").0;
    assert_eq!(kernel(&tick(&mut c, &clock)), vec![mfc]);
    assert_eq!(c.poll_timeout(), None, "nothing left to retry");
    // A terminal that takes the group meanwhile is never hit by a late retry.
    let mut c = core();
    register(&mut c, &clock);
    mh_with(
        &mut c,
        ON_LINK,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(None).bytes(),
        &clock,
        refuse_mfc,
    );
    clock.advance(100);
    let out = send(&mut c, &terminal_bu(3, HOA, GROUP, clock.ntp()), &clock);
    assert_eq!(ack(&out, HOA).status, 0);
    clock.advance(1000);
    assert!(kernel(&tick(&mut c, &clock)).is_empty());
}

#[test]
fn forwarding_to_the_home_address_withdraws_instead_of_tunnelling_to_itself() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    // The terminal came home: its new "care-of address" is its home address.
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((HOA, 20))),
        &clock,
    );
    assert_eq!(
        kernel(&out),
        vec![
            Change::Delete(downlink(HOA, GROUP)),
            Change::Delete(uplink(HOA)),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ],
        "nothing tunnels the home address to itself"
    );
    assert_eq!(ack(&out, HOA).status, 0);
    // The forwarding window is kept (and shown) for its grace period, with nothing in the
    // kernel, then ends.
    assert_eq!(c.counts(), (0, 1));
    assert!(c
        .desired_objects()
        .iter()
        .all(|o| mma::core::plan::terminal_of(o).is_none()));
    clock.advance(20_000);
    assert_eq!(kernel(&tick(&mut c, &clock)), vec![]);
    assert_eq!(c.counts(), (0, 0));
}

// Issue 14: handoff advice and admission.

fn advice_sends(out: &[Output]) -> Vec<(Ipv6Addr, Ipv6Addr, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(Send { src, dst, bytes }) => {
                let repr = mipcast_wire::mh::MhRepr::parse(bytes).unwrap();
                let advice = repr
                    .experimental()
                    .any(|e| matches!(e, Experimental::HandoffAdvice { .. }));
                advice.then(|| (*src, *dst, bytes.clone()))
            }
            _ => None,
        })
        .collect()
}

fn advise(c: &mut Core, clock: &Clock, prefix: (Ipv6Addr, u8), reason: u8) -> Vec<Output> {
    c.handle_input(
        clock.now(),
        Input::Advise(mma::core::Advise {
            prefix,
            reason,
            avoid_secs: Some(45),
        }),
    );
    settle(c, clock.now(), |_| Outcome::Applied)
}

#[test]
fn operator_advice_goes_signed_to_each_terminal_on_the_link() {
    use mipcast_wire::mh::{advice_reason, Message, MhRepr};
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(100);
    let out = advise(
        &mut c,
        &clock,
        p("2001:db8:4::", 64),
        advice_reason::MAINTENANCE,
    );
    let sends = advice_sends(&out);
    assert_eq!(sends.len(), 1, "{out:?}");
    let (src, dst, bytes) = &sends[0];
    assert_eq!((*src, *dst), (MMA, ON_LINK));
    // Signed with the terminal's SA over its on-link address and home address.
    let spi = mipcast_wire::auth::verify(bytes, &ON_LINK, &HOA, |spi| {
        (spi == SPI).then_some((Algorithm::HmacSha256_128, KEY))
    })
    .unwrap();
    assert_eq!(spi, SPI);
    let repr = MhRepr::parse(bytes).unwrap();
    assert_eq!(repr.message, Message::BindingRefreshRequest);
    assert_eq!(repr.home_address(), Some(HOA));
    assert_eq!(repr.replay_timestamp(), Some(clock.ntp()));
    assert_eq!(
        repr.experimental().next(),
        Some(&Experimental::HandoffAdvice {
            reason: advice_reason::MAINTENANCE,
            avoid_secs: 45,
            link_address: ON_LINK,
        })
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::Advised {
            trigger: "operator",
            ..
        })
    )));
    // Another link's prefix: nobody to advise.
    let out = advise(
        &mut c,
        &clock,
        p("2001:db8:5::", 64),
        advice_reason::MAINTENANCE,
    );
    assert!(advice_sends(&out).is_empty());
}

#[test]
fn a_link_loaded_above_its_threshold_advises_the_newcomer() {
    let mut c = core();
    c.set_advice(mma::core::AdviceConfig {
        links: vec![mma::core::SiteLink {
            name: "acc1".into(),
            prefix: p("2001:db8:4::", 64),
            advise_above: Some(1),
            advise_above_bps: None,
        }],
        avoid_secs: 20,
    });
    let mut clock = Clock { mono: 1000 };
    let out = register(&mut c, &clock);
    assert!(advice_sends(&out).is_empty(), "one terminal: not loaded");
    clock.advance(10);
    let other: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    let other_group: Ipv6Addr = "ff35::2".parse().unwrap();
    let out = send(
        &mut c,
        &terminal_bu(1, other, other_group, clock.ntp()),
        &clock,
    );
    // Admitted (BAck 0), then advised: the advice follows the acknowledgement.
    let sends: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Send(_)))
        .collect();
    assert_eq!(sends.len(), 2, "{out:?}");
    let Output::Send(first) = sends[0] else {
        unreachable!()
    };
    assert_eq!(parse_ack(&first.bytes, ON_LINK, other).status, 0);
    assert_eq!(
        advice_sends(&out[out.iter().position(|o| o == sends[1]).unwrap()..]).len(),
        1
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::Advised {
            hoa,
            trigger: "load",
            avoid_s: 20,
            ..
        }) if *hoa == other
    )));
    // A refresh of a terminal already served is not advised again.
    clock.advance(10);
    let out = send(
        &mut c,
        &terminal_bu(2, other, other_group, clock.ntp()),
        &clock,
    );
    assert!(advice_sends(&out).is_empty());
}

#[test]
fn a_full_site_refuses_new_terminals_with_130_but_keeps_its_own() {
    let mut c = core();
    c.set_capacity(Some(1));
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let other: Ipv6Addr = "2001:db8:99::200".parse().unwrap();
    let out = send(
        &mut c,
        &terminal_bu(1, other, "ff35::2".parse().unwrap(), clock.ntp()),
        &clock,
    );
    assert_eq!(ack(&out, other).status, 130);
    assert_eq!(kernel(&out), vec![]);
    clock.advance(10);
    let out = send(&mut c, &terminal_bu(2, HOA, GROUP, clock.ntp()), &clock);
    assert_eq!(
        ack(&out, HOA).status,
        0,
        "the terminal served here refreshes"
    );
}

#[test]
fn a_link_whose_measured_traffic_passes_its_threshold_advises_the_heaviest_terminal() {
    let mut c = core();
    c.set_advice(mma::core::AdviceConfig {
        links: vec![mma::core::SiteLink {
            name: "acc1".into(),
            prefix: p("2001:db8:4::", 64),
            advise_above: None,
            advise_above_bps: Some(1000),
        }],
        avoid_secs: 20,
    });
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let counters = |c: &mut Core, clock: &Clock, bytes: u64| {
        c.handle_input(clock.now(), Input::GroupCounters(&[(GROUP, bytes)]));
        settle(c, clock.now(), |_| Outcome::Applied)
    };
    // First reading: no rate yet. Then 500 B/s: under the threshold.
    assert!(advice_sends(&counters(&mut c, &clock, 0)).is_empty());
    clock.advance(10_000);
    assert!(advice_sends(&counters(&mut c, &clock, 5_000)).is_empty());
    // 5000 B/s: over it; the terminal (the heaviest, the only one) is advised, once.
    clock.advance(10_000);
    let out = counters(&mut c, &clock, 55_000);
    assert_eq!(advice_sends(&out).len(), 1, "{out:?}");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::Advised {
            trigger: "load",
            reason: 1,
            ..
        })
    )));
    clock.advance(10_000);
    assert!(
        advice_sends(&counters(&mut c, &clock, 105_000)).is_empty(),
        "held for the avoid time"
    );
    // After the avoid time, still loaded: advised again.
    clock.advance(10_000);
    assert_eq!(advice_sends(&counters(&mut c, &clock, 155_000)).len(), 1);
}

#[test]
fn restore_drops_records_the_configuration_no_longer_allows() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let good = c.records(clock.now()).remove(0);
    let mut records = vec![good.clone()];
    let forged = |f: &dyn Fn(&mut BindingRecord<mma::core::Terminal>)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    let other = |i: u16| Ipv6Addr::new(0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0x200 + i);
    records.extend([
        // A second terminal on the same group.
        forged(&|r| r.hoa = other(1)),
        // A group outside the terminal prefix, and a unicast "group".
        forged(&|r| {
            r.hoa = other(2);
            r.payload.group = "ff35:0:0:1::9".parse().unwrap();
        }),
        forged(&|r| {
            r.hoa = other(3);
            r.payload.group = "2001:db8::9".parse().unwrap();
        }),
        // A home agent that does not serve the home address, an unknown SPI, a lifetime
        // beyond the maximum.
        forged(&|r| {
            r.hoa = other(4);
            r.payload.group = "ff35::4".parse().unwrap();
            r.payload.home_agent = "2001:db8:2::77".parse().unwrap();
        }),
        forged(&|r| {
            r.hoa = other(5);
            r.payload.group = "ff35::5".parse().unwrap();
            r.spi = 4242;
        }),
        forged(&|r| {
            r.hoa = other(6);
            r.payload.group = "ff35::6".parse().unwrap();
            r.expires_unix_ms = u64::MAX;
        }),
    ]);
    let mut restarted = core();
    let (restored, refused) = restarted.restore_checked(records, clock.now());
    assert_eq!(restored, 1);
    let reasons: Vec<&str> = refused.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        vec![
            "group_taken",
            "group_outside_prefix",
            "group_outside_prefix",
            "home_agent_mismatch",
            "unknown_spi",
            "lifetime_over_max"
        ]
    );
    assert_eq!(restarted.desired_groups(), vec![GROUP]);
    assert_eq!(restarted.desired_objects(), c.desired_objects());
}

/// The forwarding-refusal events of `out` (reason labels).
fn forwarding_refusals(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::ForwardingRefused { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Issue 11, "Bad input": a forwarding request for a terminal that is not registered here is
/// refused with 133 (not the terminal's MMA, RFC 6275 §6.1.8) and installs nothing. (A plain
/// deregistration of an unknown terminal is still acknowledged: a retransmission must not look
/// like a failure; see the next test.)
#[test]
fn forwarding_request_for_an_unregistered_terminal_is_refused_with_133_and_installs_nothing() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 10))),
        &clock,
    );
    assert_eq!(kernel(&out), vec![]);
    let a = ack(&out, HOA);
    assert_eq!((a.status, a.authentic), (133, true));
    assert!(
        !a.options.iter().any(|o| matches!(
            o,
            MobilityOption::Experimental(Experimental::ForwardingRequest { .. })
        )),
        "no forwarding granted: {:?}",
        a.options
    );
    assert_eq!(forwarding_refusals(&out), vec!["not_registered"]);
    assert_eq!(c.counts(), (0, 0));
    assert!(c
        .desired_objects()
        .iter()
        .all(|o| !matches!(o, KObject::EncapRoute { .. })));
}

#[test]
fn plain_deregistration_of_an_unregistered_terminal_is_acknowledged() {
    let mut c = core();
    let clock = Clock { mono: 1000 };
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(None),
        &clock,
    );
    assert_eq!(kernel(&out), vec![]);
    assert_eq!(ack(&out, HOA).status, 0);
    assert_eq!(forwarding_refusals(&out), Vec::<&str>::new());
}

/// Issue 11, "Bad input": a grace period beyond `max_grace_s` (60 here) is refused with 130,
/// not cut: nothing changes, the terminal is still served here and its group still flows.
#[test]
fn forwarding_request_beyond_the_max_grace_is_refused_with_130_and_changes_nothing() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let before = c.desired_objects();
    clock.advance(10);
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 61))),
        &clock,
    );
    assert_eq!(kernel(&out), vec![], "nothing installed or removed");
    let a = ack(&out, HOA);
    assert_eq!((a.status, a.authentic), (130, true));
    assert_eq!(forwarding_refusals(&out), vec!["grace_over_max"]);
    assert_eq!(c.counts(), (1, 0), "still served here, not forwarding");
    assert_eq!(c.desired_objects(), before);
    assert_eq!(c.group_owner(GROUP), Some(HOA));
}

/// Issue 11, "Bad input": a forwarding request signed with the right key but sent from an
/// address that is neither in the site (where the registered terminal can be) nor the new
/// care-of address it names is refused with 129 and changes nothing; from another address of
/// the site (the terminal moved within the site, which re-registers nothing) or from the new
/// care-of address (the terminal already on its new link) it is granted.
#[test]
fn forwarding_request_from_another_source_is_refused_with_129_from_the_new_coa_granted() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    let before = c.desired_objects();
    clock.advance(10);
    let stranger: Ipv6Addr = "2001:db8:5::9".parse().unwrap();
    let bu = Bu {
        coa: stranger,
        ..terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 10)))
    };
    let out = mh(&mut c, stranger, &bu.bytes(), &clock);
    assert_eq!(kernel(&out), vec![], "nothing installed or removed");
    let Some(Output::Send(reply)) = out.iter().find(|o| matches!(o, Output::Send(_))) else {
        panic!("no reply: {out:?}");
    };
    assert_eq!(reply.dst, stranger);
    let a = parse_ack(&reply.bytes, stranger, HOA);
    assert_eq!((a.status, a.authentic), (129, true));
    assert_eq!(forwarding_refusals(&out), vec!["source_not_terminal"]);
    assert_eq!(c.counts(), (1, 0));
    assert_eq!(c.desired_objects(), before);

    for (seq, src) in [(3, "2001:db8:4::3".parse().unwrap()), (4, NEW_COA)] {
        let mut c = core();
        register(&mut c, &clock);
        clock.advance(10);
        let bu = Bu {
            coa: src,
            ..terminal_bu(seq, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 10)))
        };
        let out = mh(&mut c, src, &bu.bytes(), &clock);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Event(Event::ForwardingStarted {
                    new_coa: NEW_COA,
                    grace_s: 10,
                    ..
                })
            )),
            "from {src}: {out:?}"
        );
        assert_eq!(c.counts(), (0, 1));
    }
}

/// Issue 11, "Bad input": a forwarding request that is not the registered terminal's (signed
/// with a key that is not the terminal's SA) is refused with 146 and changes nothing: the
/// terminal keeps its binding and its traffic keeps going to its group.
#[test]
fn forwarding_request_not_from_the_registered_terminal_is_refused_and_changes_nothing() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(10);
    let forged = Bu {
        flags: bu_flags::ACK | bu_flags::MAP,
        lifetime: 0,
        timestamp: clock.ntp(),
        forward: Some((NEW_COA, 10)),
        ..Bu::new(2, HOA, ON_LINK, SPI, b"another terminal's key, not ours")
    };
    let out = send(&mut c, &forged, &clock);
    assert_eq!(kernel(&out), vec![], "nothing installed or removed");
    assert_eq!(ack(&out, HOA).status, 146);
    assert_eq!(c.counts(), (1, 0), "still served here, not forwarding");
    assert!(c.desired_objects().contains(&downlink(HOA, GROUP)));
}
