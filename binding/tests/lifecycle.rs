//! Binding lifetimes, refreshes, deregistration, timers, SA reload and the state file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use common::*;
use mipcast_binding::sa::Algorithm;
use mipcast_binding::Millis;
use mipcast_binding::{
    Action, Binding, BindingRecord, HomeAgentPolicy, Registrar, RegistrarConfig, RemoveReason,
    SaTable, SecurityAssociation,
};
use mipcast_wire::mh::{Message, MhRepr};

fn removes<P: Clone>(actions: &[Action<P>]) -> Vec<(std::net::Ipv6Addr, RemoveReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Remove { binding, reason } => Some((binding.hoa, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn lifetime_is_capped_to_the_configured_maximum() {
    let policy = HomeAgentPolicy::new(vec![(addr(1, 0), 64)]).unwrap();
    let config = RegistrarConfig {
        max_lifetime_s: 102,
        ..config()
    };
    let mut ha = Registrar::new(config, sas(), policy).unwrap();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.lifetime = 1000;
    let actions = send(&mut ha, &bu, &clock);
    // 102 s rounds down to 25 units of 4 s: what the BAck says is what the cache holds.
    assert_eq!(the_ack(&actions, COA, HOA).back.lifetime, 25);
    let b = ha.cache().get(&HOA).unwrap();
    assert_eq!(
        (b.lifetime_s, b.expires_at_ms),
        (100, clock.mono_ms + 100_000)
    );

    // A request below the cap is granted as asked.
    let mut clock = clock;
    clock.advance_ms(10);
    let mut bu = Bu::new(2, clock.ntp(0));
    bu.lifetime = 3;
    assert_eq!(
        the_ack(&send(&mut ha, &bu, &clock), COA, HOA).back.lifetime,
        3
    );
    assert_eq!(ha.cache().get(&HOA).unwrap().lifetime_s, 12);
}

#[test]
fn refresh_replaces_the_binding_and_moves_its_expiry() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock);
    clock.advance_ms(30_000);
    let mut bu = Bu::new(2, clock.ntp(0));
    bu.alt_coa = Some(addr(0xe, 1));
    let actions = send(&mut ha, &bu, &clock);
    let Action::Install {
        binding,
        replaced: Some(old),
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!((old.sequence, old.coa), (1, COA));
    assert_eq!((binding.sequence, binding.coa), (2, addr(0xe, 1)));
    assert_eq!(
        ha.next_deadline(),
        Some(Millis(clock.mono_ms + 32_000)),
        "refresh timer restarted"
    );

    // The old expiry time passes without effect.
    clock.advance_ms(15_000);
    assert!(removes(&ha.poll_timers(clock.now())).is_empty());
    assert_eq!(ha.cache().len(), 1);
}

#[test]
fn deregistration_by_zero_lifetime() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock);
    clock.advance_ms(1000);
    let mut bu = Bu::new(2, clock.ntp(0));
    bu.lifetime = 0;
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(removes(&actions), vec![(HOA, RemoveReason::Deregistered)]);
    let ack = the_ack(&actions, COA, HOA);
    assert_eq!(
        (ack.back.status, ack.back.lifetime, ack.back.sequence),
        (0, 0, 2)
    );
    assert_eq!(ack.auth, Ok(SPI));
    assert!(ha.cache().is_empty());
    assert_eq!(ha.next_deadline(), None);
}

#[test]
fn deregistration_by_care_of_equal_to_home_address() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock);
    clock.advance_ms(1000);
    let mut bu = Bu::new(2, clock.ntp(0));
    bu.alt_coa = Some(HOA);
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(removes(&actions), vec![(HOA, RemoveReason::Deregistered)]);
    let ack = the_ack(&actions, HOA, HOA);
    assert_eq!((ack.back.status, ack.back.lifetime), (0, 0));
    assert!(ha.cache().is_empty());
}

#[test]
fn deregistration_without_binding_is_133() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.lifetime = 0;
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 133);
    assert!(removes(&actions).is_empty());
}

#[test]
fn registration_replayed_after_deregistration_is_refused() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    let register = Bu::new(1, clock.ntp(0));
    send(&mut ha, &register, &clock);
    clock.advance_ms(1000);
    let mut dereg = Bu::new(2, clock.ntp(0));
    dereg.lifetime = 0;
    send(&mut ha, &dereg, &clock);
    clock.advance_ms(1000);
    // Still inside the 7 s window of the captured registration.
    let actions = send(&mut ha, &register, &clock);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 144);
    assert_eq!(installs(&actions), 0);
    assert!(ha.cache().is_empty());
}

#[test]
fn expiry_with_a_fake_clock_removes_everything() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    let hoas = [addr(1, 0x101), addr(1, 0x102), addr(1, 0x103)];
    for (i, hoa) in hoas.iter().enumerate() {
        let mut bu = Bu::new(1, clock.ntp(0));
        bu.hoa = Some((128, *hoa));
        bu.lifetime = 5 * (i as u16 + 1); // 20, 40, 60 s
        send(&mut ha, &bu, &clock);
    }
    let start = clock.mono_ms;
    let mut removed = Vec::new();
    let mut brrs = 0;
    while let Some(Millis(deadline)) = ha.next_deadline() {
        assert!(deadline >= clock.mono_ms, "deadline in the past");
        clock.advance_ms(deadline - clock.mono_ms);
        let actions = ha.poll_timers(clock.now());
        brrs += sends(&actions).len();
        removed.extend(
            removes(&actions)
                .into_iter()
                .map(|(hoa, r)| (hoa, r, clock.mono_ms - start)),
        );
    }
    assert_eq!(
        removed,
        vec![
            (hoas[0], RemoveReason::Expired, 20_000),
            (hoas[1], RemoveReason::Expired, 40_000),
            (hoas[2], RemoveReason::Expired, 60_000),
        ]
    );
    assert_eq!(brrs, 3, "one refresh request per binding");
    assert!(ha.cache().is_empty());
}

#[test]
fn binding_refresh_request_sent_once_before_expiry() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock); // 40 s
    clock.advance_ms(31_999);
    assert!(ha.poll_timers(clock.now()).is_empty());
    clock.advance_ms(1);
    let actions = ha.poll_timers(clock.now());
    let s = sends(&actions);
    assert_eq!(s.len(), 1, "{actions:?}");
    assert_eq!((s[0].0, s[0].1), (COA, HA));
    assert_eq!(
        MhRepr::parse(&s[0].2).unwrap().message,
        Message::BindingRefreshRequest
    );
    assert_eq!(ha.next_deadline(), Some(Millis(clock.mono_ms + 8_000)));
    clock.advance_ms(1);
    assert!(
        ha.poll_timers(clock.now()).is_empty(),
        "BRR must not repeat"
    );
    clock.advance_ms(7_999);
    assert_eq!(
        removes(&ha.poll_timers(clock.now())),
        vec![(HOA, RemoveReason::Expired)]
    );
}

#[test]
fn sa_reload_keeps_bindings_and_applies_to_the_next_bu() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock);
    let new_key = b"rotated key, thirty-two bytes!!!".to_vec();
    ha.replace_sas(
        SaTable::new([SecurityAssociation {
            spi: 3000,
            algorithm: Algorithm::HmacSha1_96,
            key: new_key.clone(),
            allowed: vec![(addr(1, 0), 64)],
        }])
        .unwrap(),
    );
    assert_eq!(ha.cache().get(&HOA).unwrap().sequence, 1, "binding kept");

    clock.advance_ms(100);
    assert_eq!(
        rejected_status(&send(&mut ha, &Bu::new(2, clock.ntp(0)), &clock)),
        146
    );
    clock.advance_ms(100);
    let mut bu = Bu::new(3, clock.ntp(0));
    bu.signer = Some((3000, Algorithm::HmacSha1_96, new_key));
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(installs(&actions), 1);
    assert_eq!(ha.cache().get(&HOA).unwrap().spi, 3000);
}

#[test]
fn state_records_round_trip_and_skip_expired_ones() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let short = addr(1, 0x201);
    let long = addr(1, 0x202);
    for (hoa, units) in [(short, 5), (long, 50)] {
        let mut bu = Bu::new(9, clock.ntp(0));
        bu.hoa = Some((128, hoa));
        bu.lifetime = units; // 20 s and 200 s
        send(&mut ha, &bu, &clock);
    }
    let json = serde_json::to_string(&ha.records(clock.now())).unwrap();
    let records: Vec<BindingRecord<()>> = serde_json::from_str(&json).unwrap();
    assert_eq!(records, ha.records(clock.now()));

    // Restart 30 s later with a fresh monotonic clock: the 20 s binding is gone.
    let mut later = Clock {
        mono_ms: 5,
        wall_ms: clock.wall_ms + 30_000,
    };
    let mut restarted = home_agent();
    let actions = restarted.restore(records, later.now());
    let installed: Vec<_> = actions
        .iter()
        .map(|a| match a {
            Action::Install {
                binding,
                replaced: None,
            } => binding.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(installed.len(), 1);
    assert_eq!((installed[0].hoa, installed[0].sequence), (long, 9));
    assert_eq!(installed[0].expires_at_ms, 5 + 170_000);
    assert!(restarted.cache().get(&short).is_none());

    // The restored binding keeps its sequence number and replay state...
    later.advance_ms(10);
    let mut stale = Bu::new(9, later.ntp(0));
    stale.hoa = Some((128, long));
    let actions = restarted.handle_bu(COA, HA, &stale.bytes(), later.now());
    assert_eq!(the_ack(&actions, COA, long).back.status, 135);
    // ...and expires on the new clock.
    later.advance_ms(170_000);
    let removed = removes(&restarted.poll_timers(later.now()));
    assert_eq!(removed, vec![(long, RemoveReason::Expired)]);
}

#[test]
fn bad_config_is_refused() {
    let p = || HomeAgentPolicy::new(vec![(addr(1, 0), 64)]).unwrap();
    for bad in [
        RegistrarConfig {
            max_lifetime_s: 3,
            ..config()
        },
        RegistrarConfig {
            replay_window_ms: 0,
            ..config()
        },
        RegistrarConfig {
            refresh_percent: 0,
            ..config()
        },
        RegistrarConfig {
            refresh_percent: 100,
            ..config()
        },
    ] {
        assert!(Registrar::new(bad, sas(), p()).is_err(), "{bad:?}");
    }
}

#[test]
fn revoked_binding_leaves_the_cache_and_its_bu_cannot_be_replayed() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    let first = Bu::new(1, clock.ntp(0));
    assert_eq!(installs(&send(&mut ha, &first, &clock)), 1);
    clock.advance_ms(1000);
    let moved = Bu {
        alt_coa: Some(addr(0xe, 1)),
        ..Bu::new(2, clock.ntp(0))
    };
    assert_eq!(installs(&send(&mut ha, &moved, &clock)), 1);

    // The kernel refused the move: the whole binding goes, timers included.
    let revoked = ha.revoke(&HOA, clock.now()).expect("bound");
    assert_eq!((revoked.sequence, revoked.coa), (2, addr(0xe, 1)));
    // Its answer: 130, the BU's sequence number and timestamp, signed for the BU's CoA.
    let bytes = ha.revoked_ack(&revoked).expect("emit");
    let ack = the_ack::<()>(
        &[Action::Send {
            dst: COA,
            src: HA,
            bytes,
        }],
        addr(0xe, 1),
        HOA,
    );
    assert_eq!(
        (ack.back.status, ack.back.sequence, ack.back.lifetime),
        (130, 2, 0)
    );
    assert_eq!(ack.replay_timestamp(), Some(moved.timestamp.unwrap()));
    assert_eq!(ack.auth, Ok(SPI));
    assert!(ha.cache().get(&HOA).is_none());
    assert_eq!(ha.cache().len(), 0);
    assert_eq!(ha.next_deadline(), None);
    assert!(
        ha.revoke(&HOA, clock.now()).is_none(),
        "nothing left to revoke"
    );
    clock.advance_ms(60_000);
    assert!(
        ha.poll_timers(clock.now()).is_empty(),
        "no expiry of a revoked binding"
    );

    // The very BU replayed within the window is refused (timestamp already seen)...
    let mut clock = Clock::new();
    let mut ha = home_agent();
    let bu = Bu::new(5, clock.ntp(0));
    send(&mut ha, &bu, &clock);
    ha.revoke(&HOA, clock.now()).expect("bound");
    clock.advance_ms(100);
    let replay = ha.handle_bu(COA, HA, &bu.bytes(), clock.now());
    assert_eq!(installs(&replay), 0, "{replay:?}");
    assert_eq!(the_ack(&replay, COA, HOA).back.status, 144);
    // ...while the MN's retry, with a new sequence number and timestamp, registers again.
    let retry = Bu::new(6, clock.ntp(0));
    let actions = send(&mut ha, &retry, &clock);
    assert_eq!(installs(&actions), 1);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 0);
    assert_eq!(ha.cache().get(&HOA).map(|b| b.sequence), Some(6));
}

/// A Binding Refresh Request sent by the timer changes one thing, the binding's refresh time
/// (now none), and the daemons do not journal it (see `Registrar::poll_timers`). The journal
/// then holds the refresh time still due: after a crash the restored binding is the same, and
/// the only difference is that the request goes out once more, once.
#[test]
fn an_unjournaled_refresh_request_only_repeats_once_after_a_restart() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(1, clock.ntp(0)), &clock);
    // What the journal holds: the record written when the BU was accepted.
    let journaled = ha.records(clock.now());
    assert_eq!(
        journaled[0].refresh_unix_ms,
        Some(clock.wall_ms + 32_000),
        "80 % of 40 s"
    );

    clock.advance_ms(32_000);
    let brr = sends(&ha.poll_timers(clock.now()));
    assert_eq!(brr.len(), 1);
    assert_eq!(
        (brr[0].0, brr[0].2[2]),
        (COA, 0),
        "a BRR to the care-of address"
    );
    let current = ha.records(clock.now());
    assert_eq!(
        current[0].refresh_unix_ms, None,
        "what a compaction would write"
    );
    // The timer's change is the refresh time alone.
    assert_eq!(
        BindingRecord {
            refresh_unix_ms: None,
            ..journaled[0].clone()
        },
        current[0]
    );
    clock.advance_ms(10);
    assert!(sends(&ha.poll_timers(clock.now())).is_empty(), "sent once");

    // Crash 1 s after the BRR, restart from the journal as written.
    let mut later = Clock {
        mono_ms: 7,
        wall_ms: clock.wall_ms + 1_000,
    };
    let mut restarted = home_agent();
    assert_eq!(
        installs(&restarted.restore(journaled.clone(), later.now())),
        1
    );
    // The same binding as restored from the up-to-date records (a compacted journal), but
    // for the refresh time.
    let mut compacted = home_agent();
    compacted.restore(current, later.now());
    let b = restarted.cache().get(&HOA).unwrap();
    assert_eq!((b.sequence, b.coa), (1, COA));
    assert_eq!(b.refresh_at_ms, Some(later.mono_ms), "due at once");
    assert_eq!(
        Binding {
            refresh_at_ms: None,
            ..b.clone()
        },
        *compacted.cache().get(&HOA).unwrap()
    );
    let again = sends(&restarted.poll_timers(later.now()));
    assert_eq!(again.len(), 1, "the BRR goes out once more");
    assert_eq!(again[0].2, brr[0].2);
    later.advance_ms(1_000);
    assert!(sends(&restarted.poll_timers(later.now())).is_empty());
    // The terminal answers with a BU, which is accepted as any refresh.
    let actions = send(&mut restarted, &Bu::new(2, later.ntp(0)), &later);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 0);

    // Restarted from the up-to-date records instead, nothing repeats.
    assert!(sends(&compacted.poll_timers(later.now())).is_empty());
}
