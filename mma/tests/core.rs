//! The MMA core as a pure state machine: BUs and timer ticks in, kernel changes and messages
//! out, with a hand-driven clock.
mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use ipnetwork::Ipv6Network;
use mipcast_binding::sa::Algorithm;
use mipcast_binding::{Now, RegistrarConfig, RemoveReason, SaTable, SecurityAssociation};
use mipcast_kernel::route::KObject;
use mipcast_wire::mh::{bu_flags, Experimental, MobilityOption};
use mma::core::{Change, Core, Event, Output, Plan, PolicyConfig};

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
    Core::new(reg, sas, policy, plan()).unwrap()
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
            Output::Send {
                src, dst, bytes, ..
            } => Some((*src, *dst, bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "{out:?}");
    let (src, dst, bytes) = &sends[0];
    assert_eq!((*src, *dst), (MMA, ON_LINK));
    parse_ack(bytes, ON_LINK, hoa)
}

fn send(c: &mut Core, bu: &Bu, clock: &Clock) -> Vec<Output> {
    c.handle_mh(ON_LINK, MMA, &bu.bytes(), clock.now())
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
        let out = c.handle_mh(src, MMA, &bu.bytes(), clock.now());
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
    let out = c.handle_mh(bu.coa, MMA, &bu.bytes(), clock.now());
    assert_eq!(kernel(&out), vec![]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Rejected { status: 129, .. }))));
}

#[test]
fn forwarding_window_is_capped_redirects_to_the_new_coa_and_ends() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(500);
    let dereg = terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 500)));
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
    assert_eq!(kernel(&c.poll(clock.now())), vec![]);
    clock.advance(1);
    let out = c.poll(clock.now());
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
        c.poll(clock.now()).len(),
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
    let out = c.poll(clock.now());
    // Only the Binding Refresh Request (due at 80 %) so far.
    assert_eq!(kernel(&out), vec![]);
    clock.advance(1);
    let out = c.poll(clock.now());
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
    let out = restarted.restore(serde_json::from_str(&json).unwrap(), clock.now());
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
    let out = register(&mut c, &clock);
    // The BAck(0) names what it confirms, so the shell can hold it back on failure.
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send { confirms: Some(h), .. } if *h == HOA)));
    // The shell attributes the refused uplink route and the MFC entry to the terminal; the
    // constant objects belong to nobody.
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

    let out = c.revoke(HOA, clock.now());
    assert_eq!(
        kernel(&out),
        vec![
            Change::Delete(anywhere(downlink(HOA, GROUP))),
            Change::Delete(anywhere(uplink(HOA))),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ]
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Event(Event::ProgrammingFailed { hoa, group }) if (*hoa, *group) == (HOA, GROUP))));
    // Signed 130 to the BU's sender, for the BU's sequence number, never "confirming" anything.
    let a = ack(&out, HOA);
    assert_eq!((a.status, a.sequence, a.authentic), (130, 1, true));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            confirms: Some(_),
            ..
        }
    )));
    // Nothing is left that claims the terminal is served.
    assert_eq!(c.counts(), (0, 0));
    assert_eq!(c.group_owner(GROUP), None);
    assert!(c.desired_groups().is_empty());
    assert_eq!(c.desired_objects().len(), plan().constant_objects().len());
    assert_eq!(c.next_deadline(), None);
    assert_eq!(c.owner(&Change::Add(uplink(HOA))), None);
    assert!(c.revoke(HOA, clock.now()).is_empty(), "revoked once");

    // The terminal's retry registers from scratch.
    clock.advance(50);
    let out = send(&mut c, &terminal_bu(2, HOA, GROUP, clock.ntp()), &clock);
    assert_eq!(kernel(&out).len(), 3, "{out:?}");
    assert_eq!(ack(&out, HOA).status, 0);
    assert_eq!(c.group_owner(GROUP), Some(HOA));
}

#[test]
fn refused_forwarding_change_withdraws_both_route_shapes() {
    let mut c = core();
    let mut clock = Clock { mono: 1000 };
    register(&mut c, &clock);
    clock.advance(100);
    let out = send(
        &mut c,
        &terminal_bu(2, HOA, GROUP, clock.ntp()).dereg(Some((NEW_COA, 20))),
        &clock,
    );
    let replace = kernel(&out)
        .into_iter()
        .find(|ch| matches!(ch, Change::Replace(_)))
        .expect("forwarding replaces the downlink");
    assert_eq!(c.owner(&replace), Some(HOA));
    let out = c.revoke(HOA, clock.now());
    // The refused replace left the downlink to the group: deleted by identity, any device;
    // the uplink the forwarding state no longer has is deleted too (tolerated if gone).
    assert_eq!(
        kernel(&out),
        vec![
            Change::Delete(anywhere(downlink(HOA, GROUP))),
            Change::Delete(anywhere(uplink(HOA))),
            Change::DelMfc {
                source: MMA,
                group: GROUP
            },
        ]
    );
    assert_eq!(ack(&out, HOA).sequence, 2);
    assert_eq!(c.counts(), (0, 0));
}
