//! The core driven with real BU bytes and a hand-moved clock.
use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::time::Duration;

use mipcast_binding::{HomeAgentPolicy, Registrar, RegistrarConfig, SaTable, SecurityAssociation};
use mipcast_proto::KObject;
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{BindingUpdate, Message, MhRepr, MobilityOption};
use mipcast_wire::ntp::ntp_timestamp;

use super::plan::{Plan, PlanParams};
use super::replies::back_status_of;
use super::*;
use mipcast_proto::TokenBucket;

const KEY: &[u8] = b"0123456789abcdef";
const WALL0: u64 = 1_700_000_000_000;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ha() -> Ipv6Addr {
    a("2001:db8:1::1")
}

fn core() -> Core {
    core_window(0)
}

/// A core that accepts a previous care-of address for `ms` after a move.
fn core_window(ms: u64) -> Core {
    let sas = SaTable::new([SecurityAssociation {
        spi: 1000,
        algorithm: Algorithm::HmacSha256_128,
        key: KEY.to_vec(),
        allowed: vec![(a("2001:db8:1::"), 64)],
    }])
    .unwrap();
    let registrar = Registrar::new(
        RegistrarConfig::default(),
        sas.clone(),
        HomeAgentPolicy::new(vec![(a("2001:db8:1::"), 64)]).unwrap(),
    )
    .unwrap();
    let plan = Plan::new(PlanParams {
        home_ifindex: 2,
        ha_address: ha(),
        decap_table: 3600,
        decap_rule_pref: 10,
    })
    .with_previous_coa_window(ms);
    Core::new(registrar, sas, plan, TokenBucket::new(1, 2))
}

fn now(ms: u64) -> Now {
    Now::from_unix(ms, Duration::from_millis(WALL0 + ms))
}

/// A BU as an MN sends it: HNP with the HoA, Alternate CoA, Replay Protection, signed.
fn bu(hoa: &str, coa: &str, seq: u16, lifetime_units: u16, at_ms: u64, key: &[u8]) -> Vec<u8> {
    let ts = ntp_timestamp(std::time::UNIX_EPOCH + Duration::from_millis(WALL0 + at_ms));
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: seq,
            flags: 0xc000, // A | H
            lifetime: lifetime_units,
        }),
        options: vec![
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: a(hoa),
            },
            MobilityOption::AlternateCareOf(a(coa)),
            MobilityOption::ReplayProtection { timestamp: ts },
        ],
    };
    let mut buf = vec![0; 256];
    let creds = Credentials {
        spi: 1000,
        algorithm: Algorithm::HmacSha256_128,
        key,
    };
    let n = repr
        .emit_authenticated(&mut buf, &creds, &a(coa), &a(hoa))
        .unwrap();
    buf.truncate(n);
    buf
}

fn statuses(f: &Finish) -> Vec<Option<u8>> {
    f.sends.iter().map(|s| back_status_of(&s.bytes)).collect()
}

#[test]
fn accepted_bu_programs_then_acknowledges() {
    let mut c = core();
    let mut b = Burst::default();
    let msg = bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY);
    c.on_message(&mut b, a("2001:db8:2::9"), ha(), &msg, now(0));
    assert_eq!(c.plan.unresolved(&b.round), vec![a("2001:db8:2::9")]);
    c.resolve(a("2001:db8:2::9"), 7);
    let ch = c.changes(&b);
    assert_eq!(ch.add.len(), 3, "{ch:?}");
    assert!(ch.add.iter().any(|o| matches!(o,
        KObject::EncapRoute { tunnel_dst, oif: 7, .. } if *tunnel_dst == a("2001:db8:2::9"))));
    let f = c.finish(b, &[], now(0));
    assert_eq!(statuses(&f), vec![Some(0)]);
    assert_eq!(f.sends[0].dst, a("2001:db8:2::9"));
    assert_eq!(f.sends[0].src, ha());
    assert!(f.rollback.is_empty());
    assert!(f.cache_changed);
    let st = c.status(now(1000));
    assert_eq!(st.len(), 1);
    assert_eq!(
        (st[0].coa, st[0].sequence, st[0].lifetime_left_s),
        (a("2001:db8:2::9"), 1, 39)
    );
    assert!(st[0].programmed);
}

#[test]
fn kernel_failure_rolls_back_and_answers_130() {
    let mut c = core();
    let mut b = Burst::default();
    let msg = bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY);
    c.on_message(&mut b, a("2001:db8:2::9"), ha(), &msg, now(0));
    let ch = c.changes(&b);
    let route = *ch
        .add
        .iter()
        .find(|o| matches!(o, KObject::EncapRoute { .. }))
        .unwrap();
    let f = c.finish(b, &[route], now(0));
    assert_eq!(statuses(&f), vec![Some(130)]);
    // The 130 is signed with the BU's SA like any reply to an authenticated BU.
    let lookup = |spi| (spi == 1000).then_some((Algorithm::HmacSha256_128, KEY));
    assert_eq!(
        mipcast_wire::auth::verify(
            &f.sends[0].bytes,
            &a("2001:db8:2::9"),
            &a("2001:db8:1::100"),
            lookup
        ),
        Ok(1000)
    );
    // Undo the proxy entry and the rule that did get in (the route delete is tolerated).
    let mut undone = f.rollback.delete.clone();
    undone.sort();
    let mut expected = ch.add.clone();
    expected.sort();
    assert_eq!(undone, expected);
    assert!(f
        .events
        .iter()
        .any(|e| matches!(e, Event::ProgrammingFailed { .. })));
    assert_eq!(c.plan().len(), 0);
    // Revoked: the registrar no longer has it, so nothing claims the HoA is bound.
    assert!(c.status(now(0)).is_empty());
    assert_eq!(c.len(), 0);
    assert_eq!(c.poll_timeout(), None);
    assert!(f.cache_changed);

    // The MN retries with a new sequence number; this time the kernel takes it.
    let mut b = Burst::default();
    let msg = bu("2001:db8:1::100", "2001:db8:2::9", 2, 10, 10, KEY);
    c.on_message(&mut b, a("2001:db8:2::9"), ha(), &msg, now(10));
    assert_eq!(c.changes(&b).add.len(), 3);
    let f = c.finish(b, &[], now(0));
    assert_eq!(statuses(&f), vec![Some(0)]);
    assert!(c.status(now(10))[0].programmed);
}

#[test]
fn failed_move_withdraws_the_binding_and_the_old_tunnel() {
    let mut c = core();
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY),
        now(0),
    );
    c.finish(b, &[], now(0));
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:3::9"),
        ha(),
        &bu("2001:db8:1::100", "2001:db8:3::9", 2, 10, 5, KEY),
        now(5),
    );
    let ch = c.changes(&b);
    assert_eq!(ch.replace.len(), 1);
    let f = c.finish(b, &[ch.replace[0]], now(5));
    assert_eq!(statuses(&f), vec![Some(130)]);
    assert_eq!(c.plan().tunnel(&a("2001:db8:1::100")), None);
    assert_eq!(c.plan().refs(&a("2001:db8:3::9")), 0);
    assert!(c.status(now(5)).is_empty());
    // The refused replace left the route to the old CoA: the rollback deletes it, the proxy
    // entry and the new CoA's rule (the old one's went with the move).
    let kinds: Vec<String> = f.rollback.delete.iter().map(|o| o.to_string()).collect();
    assert!(
        f.rollback.delete.iter().any(|o| matches!(o,
        KObject::EncapRoute { tunnel_dst, .. } if *tunnel_dst == a("2001:db8:2::9"))),
        "{kinds:?}"
    );
    assert!(
        f.rollback
            .delete
            .iter()
            .any(|o| matches!(o, KObject::ProxyNeigh { .. })),
        "{kinds:?}"
    );
    assert!(
        f.rollback.delete.iter().any(|o| matches!(o,
        KObject::Rule { from: Some(from), .. } if from.ip() == a("2001:db8:3::9"))),
        "{kinds:?}"
    );
    assert!(ch.delete.iter().any(|o| matches!(o,
        KObject::Rule { from: Some(from), .. } if from.ip() == a("2001:db8:2::9"))));
    assert!(f
        .events
        .iter()
        .any(|e| matches!(e, Event::ProgrammingFailed { .. })));
}

#[test]
fn bad_messages_never_touch_the_kernel_and_replies_are_rate_limited() {
    let mut c = core();
    let mut b = Burst::default();
    let wrong_key = bu(
        "2001:db8:1::100",
        "2001:db8:2::9",
        1,
        10,
        0,
        b"wrong-key-000000",
    );
    for _ in 0..5 {
        c.on_message(&mut b, a("2001:db8:2::9"), ha(), &wrong_key, now(0));
    }
    // Truncated, garbage and an unknown MH type (42).
    c.on_message(&mut b, a("2001:db8:2::9"), ha(), &wrong_key[..20], now(0));
    c.on_message(&mut b, a("2001:db8:2::9"), ha(), &[0xff; 3], now(0));
    assert!(c.changes(&b).is_empty());
    let f = c.finish(b, &[], now(0));
    // Burst of 2 replies, the rest suppressed.
    assert_eq!(statuses(&f), vec![Some(146), Some(146)]);
    let suppressed = f
        .events
        .iter()
        .filter(|e| matches!(e, Event::ReplySuppressed { .. }))
        .count();
    assert_eq!(suppressed, 3);
    assert!(f.events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            status: 146,
            auth_reason: Some("auth_mismatch"),
            ..
        }
    )));
    assert_eq!(
        f.events
            .iter()
            .filter(|e| matches!(
                e,
                Event::Dropped {
                    reason: "bad_length",
                    ..
                }
            ))
            .count(),
        2
    );
    assert!(!f.cache_changed);
    assert!(c.is_empty());

    // A second later one token is back: an unknown MH type gets its Binding Error.
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &[59, 0, 42, 0, 0, 0, 0, 0],
        now(1000),
    );
    let f = c.finish(b, &[], now(0));
    assert_eq!(f.sends.len(), 1);
    assert_eq!(f.sends[0].bytes[2], 7, "a Binding Error");
    assert!(f
        .events
        .iter()
        .any(|e| matches!(e, Event::BindingError { .. })));
}

#[test]
fn expiry_removes_everything_and_restore_reprograms() {
    let mut c = core();
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY),
        now(0),
    );
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &bu("2001:db8:1::101", "2001:db8:2::9", 1, 20, 0, KEY),
        now(0),
    );
    let installed: HashSet<KObject> = c.changes(&b).add.into_iter().collect();
    c.finish(b, &[], now(0));
    let records = c.records(now(100));

    // Restart 1 s later: both restored, the kernel wants exactly what was installed.
    let mut fresh = core();
    let later = Now::from_unix(5, Duration::from_millis(WALL0 + 1100));
    assert_eq!(fresh.restore(records, later), 2);
    let mut want = installed.clone();
    want.insert(fresh.plan().decap_route());
    assert_eq!(fresh.desired(), want);

    // At 80 % of its 40 s lifetime the first gets a Binding Refresh Request, at 40 s it expires.
    let mut b = Burst::default();
    c.on_timers(&mut b, now(32_000));
    assert!(c.changes(&b).is_empty());
    let f = c.finish(b, &[], now(0));
    assert_eq!(f.sends.len(), 1);
    assert_eq!(f.sends[0].bytes[2], 0, "a Binding Refresh Request");
    assert!(f
        .events
        .iter()
        .any(|e| matches!(e, Event::RefreshRequested { .. })));
    let mut b = Burst::default();
    c.on_timers(&mut b, now(40_000));
    let ch = c.changes(&b);
    assert_eq!(
        ch.delete.len(),
        2,
        "proxy and route, the shared rule stays: {ch:?}"
    );
    let f = c.finish(b, &[], now(0));
    assert!(f.events.iter().any(|e| matches!(
        e,
        Event::Removed {
            reason: RemoveReason::Expired,
            ..
        }
    )));
    let mut b = Burst::default();
    c.on_timers(&mut b, now(80_000));
    assert_eq!(c.changes(&b).delete.len(), 3);
    c.finish(b, &[], now(0));
    assert_eq!(c.desired().len(), 1);
}

#[test]
fn deregistration_acknowledged_after_removal() {
    let mut c = core();
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY),
        now(0),
    );
    c.finish(b, &[], now(0));
    let mut b = Burst::default();
    c.on_message(
        &mut b,
        a("2001:db8:2::9"),
        ha(),
        &bu("2001:db8:1::100", "2001:db8:2::9", 2, 0, 10, KEY),
        now(10),
    );
    assert_eq!(c.changes(&b).delete.len(), 3);
    // Even a failed delete does not turn the deregistration into a failure.
    let f = c.finish(b, &[], now(0));
    assert_eq!(statuses(&f), vec![Some(0)]);
    assert!(c.is_empty());
}

/// Runs one round through the contract, as the driver does, against a kernel that answers
/// with `kernel`.
fn round(
    c: &mut Core,
    msgs: &[(Ipv6Addr, Vec<u8>)],
    at: u64,
    kernel: impl FnMut(&Change) -> Outcome,
) -> Vec<Output> {
    for (src, bytes) in msgs {
        c.handle_input(
            now(at),
            Input {
                src: *src,
                dst: ha(),
                bytes,
            },
        );
    }
    for coa in c.unresolved() {
        c.resolve(coa, 7);
    }
    mipcast_proto::settle(c, now(at), kernel)
}

fn acks(out: &[Output]) -> Vec<Option<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(back_status_of(&s.bytes)),
            _ => None,
        })
        .collect()
}

#[test]
fn through_the_contract_changes_precede_the_ack_and_a_refusal_is_rolled_back() {
    let mut c = core();
    let coa = a("2001:db8:2::9");
    let out = round(
        &mut c,
        &[(coa, bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY))],
        0,
        |_| Outcome::Applied,
    );
    let last_kernel = out.iter().rposition(|o| matches!(o, Output::Kernel(_)));
    let first_send = out.iter().position(|o| matches!(o, Output::Send(_)));
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Kernel(Change::Add(_))))
            .count(),
        3
    );
    assert!(last_kernel < first_send, "{out:?}");
    assert_eq!(acks(&out), vec![Some(0)]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::BindingsChanged { bindings: 1 }))));

    // A second home address whose route the kernel refuses: its proxy entry and rule are
    // withdrawn, its BU answered 130, and no "registered" event claims otherwise.
    let out = round(
        &mut c,
        &[(
            a("2001:db8:2::8"),
            bu("2001:db8:1::101", "2001:db8:2::8", 1, 10, 10, KEY),
        )],
        10,
        |ch| match ch {
            Change::Add(KObject::EncapRoute { .. }) => Outcome::Refused {
                errno: Some(22),
                reason: "Invalid argument".into(),
            },
            _ => Outcome::Applied,
        },
    );
    assert_eq!(acks(&out), vec![Some(130)]);
    let deletes = out
        .iter()
        .filter(|o| matches!(o, Output::Kernel(Change::Delete(_))))
        .count();
    assert_eq!(
        deletes, 3,
        "proxy, rule and the refused route (tolerated): {out:?}"
    );
    assert!(!out.iter().any(|o| matches!(o,
        Output::Event(Event::Registered { hoa, .. }) if *hoa == a("2001:db8:1::101"))));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::KernelRefused {
            rollback: false,
            ..
        })
    )));
    assert_eq!(c.len(), 1);
    assert!(c.poll_output().is_none());
}

/// A reload that removes the home prefix of a binding (or its SA) takes the binding back at
/// once: its route, rule and proxy entry are deleted in one round, nothing is sent, and a
/// reload that still allows it changes nothing.
#[test]
fn a_reload_that_no_longer_allows_a_binding_withdraws_it() {
    let sas = |prefix: &str| {
        SaTable::new([SecurityAssociation {
            spi: 1000,
            algorithm: Algorithm::HmacSha256_128,
            key: KEY.to_vec(),
            allowed: vec![(a(prefix), 64)],
        }])
        .unwrap()
    };
    let policy = |prefix: &str| HomeAgentPolicy::new(vec![(a(prefix), 64)]).unwrap();
    for (sa_prefix, home_prefix, reason) in [
        ("2001:db8:1::", "2001:db8:5::", "hoa_not_home"),
        ("2001:db8:5::", "2001:db8:1::", "spi_not_authorised"),
    ] {
        let mut c = core();
        let coa = a("2001:db8:2::9");
        let out = round(
            &mut c,
            &[(coa, bu("2001:db8:1::100", "2001:db8:2::9", 1, 10, 0, KEY))],
            0,
            |_| Outcome::Applied,
        );
        assert_eq!(acks(&out), vec![Some(0)]);

        c.reload(
            sas("2001:db8:1::"),
            policy("2001:db8:1::"),
            TokenBucket::new(1, 2),
        );
        assert!(c.revalidate(now(10)).is_empty());
        assert!(c.poll_output().is_none());
        assert_eq!(c.len(), 1);

        c.reload(sas(sa_prefix), policy(home_prefix), TokenBucket::new(1, 2));
        let dropped = c.revalidate(now(20));
        let got: Vec<_> = dropped.iter().map(|d| (d.hoa, d.reason)).collect();
        assert_eq!(got, vec![(a("2001:db8:1::100"), reason)]);
        let out = mipcast_proto::settle(&mut c, now(20), |_| Outcome::Applied);
        let deletes = out
            .iter()
            .filter(|o| matches!(o, Output::Kernel(Change::Delete(_))))
            .count();
        assert_eq!(deletes, 3, "route, rule and proxy entry: {out:?}");
        assert!(acks(&out).is_empty(), "{out:?}");
        assert_eq!(c.len(), 0);
        assert!(c.status(now(30)).is_empty());
    }
}

/// Budgets as the shell builds them: unauthenticated replies 2 per source prefix (100 in
/// all), signed replies to authenticated messages from a budget of their own.
fn core_with_budgets() -> Core {
    let mut c = core();
    let rate = |per_second, burst| mipcast_proto::Rate { per_second, burst };
    let limits = |global| mipcast_proto::SourceLimits {
        global,
        per_source: Some(rate(1, 2)),
        source_prefix_len: 64,
        max_sources: 1000,
    };
    c.limiter = mipcast_proto::ReplyBudgets::new(limits(rate(10, 10)), limits(rate(100, 100)));
    c
}

#[test]
fn a_flood_of_forged_bus_leaves_the_terminals_signed_replies_alone() {
    let mut c = core_with_budgets();
    let coa = "2001:db8:2::9";
    let mut b = Burst::default();
    let msg = bu("2001:db8:1::100", coa, 5, 10, 0, KEY);
    c.on_message(&mut b, a(coa), ha(), &msg, now(0));
    c.resolve(a(coa), 7);
    assert_eq!(statuses(&c.finish(b, &[], now(0))), vec![Some(0)]);

    // Forged BUs from elsewhere and from the terminal's own /64.
    let mut b = Burst::default();
    for i in 0..50u16 {
        for src in [
            format!("2001:db8:66::{i:x}"),
            format!("2001:db8:2::1:{i:x}"),
        ] {
            let forged = bu("2001:db8:1::100", &src, 6, 10, 5, b"wrong-key-000000");
            c.on_message(&mut b, a(&src), ha(), &forged, now(5));
        }
    }
    // The terminal resends an old sequence number: it needs the signed 135 to resync.
    let stale = bu("2001:db8:1::100", coa, 5, 10, 10, KEY);
    c.on_message(&mut b, a(coa), ha(), &stale, now(10));
    let f = c.finish(b, &[], now(10));
    let st = statuses(&f);
    assert_eq!(
        st.iter().filter(|s| **s == Some(146)).count(),
        4,
        "two replies per attacking /64: {st:?}"
    );
    assert_eq!(st.last(), Some(&Some(135)), "{st:?}");
    assert_eq!(f.sends.last().map(|s| s.dst), Some(a(coa)));
    let suppressed = f
        .events
        .iter()
        .filter(|e| matches!(e, Event::ReplySuppressed { .. }))
        .count();
    assert_eq!(suppressed, 96);
}

#[test]
fn a_source_over_its_failure_budget_is_dropped_unread_and_others_are_served() {
    let mut c = core_with_budgets();
    let failures = mipcast_proto::SourceLimits {
        global: mipcast_proto::Rate {
            per_second: 1,
            burst: 1,
        },
        per_source: Some(mipcast_proto::Rate {
            per_second: 1,
            burst: 3,
        }),
        source_prefix_len: 64,
        max_sources: 100,
    };
    c.limiter = c.limiter.clone().with_failure_budget(failures);
    let mut b = Burst::default();
    let attacker = "2001:db8:66::1";
    for i in 0..10u16 {
        let forged = bu(
            "2001:db8:1::100",
            attacker,
            i + 1,
            10,
            0,
            b"wrong-key-000000",
        );
        c.on_message(&mut b, a(attacker), ha(), &forged, now(0));
    }
    let coa = "2001:db8:2::9";
    c.on_message(
        &mut b,
        a(coa),
        ha(),
        &bu("2001:db8:1::101", coa, 1, 10, 0, KEY),
        now(0),
    );
    c.resolve(a(coa), 7);
    let f = c.finish(b, &[], now(0));
    let count = |pred: &dyn Fn(&Event) -> bool| f.events.iter().filter(|e| pred(e)).count();
    assert_eq!(
        count(&|e| matches!(e, Event::Rejected { status: 146, .. })),
        3
    );
    assert_eq!(
        count(&|e| matches!(
            e,
            Event::Dropped {
                reason: "source_over_failure_budget",
                ..
            }
        )),
        7
    );
    assert_eq!(count(&|e| matches!(e, Event::Registered { .. })), 1);
    assert_eq!(statuses(&f).last(), Some(&Some(0)));
}

// ---- The previous care-of address's window after a move (issue 11 §3) ----

const HOA: &str = "2001:db8:1::100";
const MMA1: &str = "2001:db8:2::9";
const MMA2: &str = "2001:db8:3::9";
const MMA3: &str = "2001:db8:4::9";

fn decap_rule(coa: &str) -> KObject {
    KObject::Rule {
        pref: 10,
        from: Some(format!("{coa}/128").parse().unwrap()),
        to: Some("2001:db8:1::1/128".parse().unwrap()),
        ipproto: Some(41),
        table: 3600,
    }
}

fn kernel_ok(_: &Change) -> Outcome {
    Outcome::Applied
}

fn changes_of(out: &[Output]) -> Vec<Change> {
    out.iter()
        .filter_map(|o| match o {
            Output::Kernel(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// A BU from the terminal for `coa` at `at` ms (lifetime 40 s), through the contract.
fn register(c: &mut Core, coa: &str, seq: u16, at: u64) -> Vec<Output> {
    round(
        c,
        &[(a(coa), bu(HOA, coa, seq, 10, at, KEY))],
        at,
        kernel_ok,
    )
}

/// Drives the timers due at `at`.
fn tick(c: &mut Core, at: u64) -> Vec<Output> {
    c.handle_timeout(now(at));
    mipcast_proto::settle(c, now(at), kernel_ok)
}

#[test]
fn after_a_move_the_previous_coa_is_accepted_for_the_window_then_its_rule_goes() {
    let mut c = core_window(1000);
    register(&mut c, MMA1, 1, 0);
    let out = register(&mut c, MMA2, 2, 100);
    assert_eq!(acks(&out), vec![Some(0)]);
    let ch = changes_of(&out);
    assert!(ch.contains(&Change::Add(decap_rule(MMA2))), "{ch:?}");
    assert!(
        !ch.contains(&Change::Delete(decap_rule(MMA1))),
        "the previous CoA's rule stays for the window: {ch:?}"
    );
    assert!(c.desired().contains(&decap_rule(MMA1)));
    assert_eq!(c.plan().lingering(&a(HOA)), Some((a(MMA1), Millis(1100))));
    // The window's end is the core's next deadline (the registrar's are later).
    assert_eq!(c.poll_timeout(), Some(Millis(1100)));
    assert!(changes_of(&tick(&mut c, 1099)).is_empty());
    let out = tick(&mut c, 1100);
    assert_eq!(changes_of(&out), vec![Change::Delete(decap_rule(MMA1))]);
    // No state-file write for the window's end: the binding cache did not change.
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Event(Event::BindingsChanged { .. }))));
    assert!(!c.desired().contains(&decap_rule(MMA1)));
    assert!(c.desired().contains(&decap_rule(MMA2)));
    assert_eq!(c.plan().lingering(&a(HOA)), None);
    assert!(c.poll_timeout().is_some_and(|t| t > Millis(1100)));
}

#[test]
fn without_a_window_the_previous_coa_is_refused_at_once() {
    let mut c = core_window(0);
    register(&mut c, MMA1, 1, 0);
    let ch = changes_of(&register(&mut c, MMA2, 2, 100));
    assert!(ch.contains(&Change::Delete(decap_rule(MMA1))), "{ch:?}");
    assert_eq!(c.plan().lingering(&a(HOA)), None);
}

#[test]
fn deregistration_opens_a_window_for_the_last_coa_and_ends_the_earlier_one() {
    let mut c = core_window(1000);
    register(&mut c, MMA1, 1, 0);
    register(&mut c, MMA2, 2, 100);
    // Coming home: what the terminal sent up through MMA2 before it deregistered is still on
    // its way, as after a move.
    let dereg = bu(HOA, MMA2, 3, 0, 200, KEY);
    let out = round(&mut c, &[(a(MMA2), dereg)], 200, kernel_ok);
    assert_eq!(acks(&out), vec![Some(0)]);
    let ch = changes_of(&out);
    assert!(ch.contains(&Change::Delete(decap_rule(MMA1))), "{ch:?}");
    assert!(!ch.contains(&Change::Delete(decap_rule(MMA2))), "{ch:?}");
    assert!(c.desired().contains(&decap_rule(MMA2)));
    assert_eq!(c.plan().lingering(&a(HOA)), Some((a(MMA2), Millis(1200))));
    assert_eq!(c.poll_timeout(), Some(Millis(1200)));
    let ch = changes_of(&tick(&mut c, 1200));
    assert!(ch.contains(&Change::Delete(decap_rule(MMA2))), "{ch:?}");
    assert_eq!(c.desired(), HashSet::from([c.plan().decap_route()]));
    assert_eq!(c.poll_timeout(), None, "nothing left to time");
}

#[test]
fn expiry_ends_the_window_with_the_binding() {
    let mut c = core_window(5000);
    // Lifetime 4 s (one unit): it expires inside the previous CoA's window.
    round(
        &mut c,
        &[(a(MMA1), bu(HOA, MMA1, 1, 10, 0, KEY))],
        0,
        kernel_ok,
    );
    round(
        &mut c,
        &[(a(MMA2), bu(HOA, MMA2, 2, 1, 100, KEY))],
        100,
        kernel_ok,
    );
    assert!(c.desired().contains(&decap_rule(MMA1)));
    let ch = changes_of(&tick(&mut c, 4100));
    assert!(ch.contains(&Change::Delete(decap_rule(MMA1))), "{ch:?}");
    assert!(ch.contains(&Change::Delete(decap_rule(MMA2))), "{ch:?}");
    assert_eq!(c.desired(), HashSet::from([c.plan().decap_route()]));
}

#[test]
fn a_second_move_within_the_window_keeps_only_the_latest_previous_coa() {
    let mut c = core_window(1000);
    register(&mut c, MMA1, 1, 0);
    register(&mut c, MMA2, 2, 100);
    let ch = changes_of(&register(&mut c, MMA3, 3, 200));
    assert!(ch.contains(&Change::Add(decap_rule(MMA3))), "{ch:?}");
    assert!(ch.contains(&Change::Delete(decap_rule(MMA1))), "{ch:?}");
    assert!(!ch.contains(&Change::Delete(decap_rule(MMA2))), "{ch:?}");
    assert_eq!(c.plan().lingering(&a(HOA)), Some((a(MMA2), Millis(1200))));
    // Back to the CoA still in its window: nothing to add, and the one just left lingers.
    let ch = changes_of(&register(&mut c, MMA2, 4, 300));
    assert!(!ch.contains(&Change::Add(decap_rule(MMA2))), "{ch:?}");
    assert!(
        !ch.iter()
            .any(|x| matches!(x, Change::Delete(KObject::Rule { .. }))),
        "{ch:?}"
    );
    assert_eq!(c.plan().lingering(&a(HOA)), Some((a(MMA3), Millis(1300))));
    assert_eq!(
        changes_of(&tick(&mut c, 1300)),
        vec![Change::Delete(decap_rule(MMA3))]
    );
    assert!(c.desired().contains(&decap_rule(MMA2)));
}

#[test]
fn a_previous_coa_another_binding_uses_keeps_its_rule_after_the_window() {
    let mut c = core_window(1000);
    register(&mut c, MMA1, 1, 0);
    let other = bu("2001:db8:1::101", MMA1, 1, 10, 0, KEY);
    round(&mut c, &[(a(MMA1), other)], 0, kernel_ok);
    register(&mut c, MMA2, 2, 100);
    assert!(changes_of(&tick(&mut c, 1100)).is_empty());
    assert!(c.desired().contains(&decap_rule(MMA1)));
}

#[test]
fn a_move_the_kernel_refuses_withdraws_the_previous_coa_too() {
    let mut c = core_window(1000);
    register(&mut c, MMA1, 1, 0);
    let msg = bu(HOA, MMA2, 2, 10, 100, KEY);
    let out = round(&mut c, &[(a(MMA2), msg)], 100, |ch| match ch {
        Change::Add(KObject::Rule { .. }) => Outcome::Refused {
            errno: Some(1),
            reason: "Operation not permitted".into(),
        },
        _ => Outcome::Applied,
    });
    assert_eq!(acks(&out), vec![Some(130)]);
    assert!(changes_of(&out).contains(&Change::Delete(decap_rule(MMA1))));
    assert_eq!(c.plan().lingering(&a(HOA)), None);
    assert_eq!(c.desired(), HashSet::from([c.plan().decap_route()]));
}
