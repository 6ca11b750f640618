//! Every acknowledgement status the validation pipeline and the home agent policy produce,
//! observed in the bytes the registrar emits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use common::*;
use mipcast_binding::sa::Algorithm;
use mipcast_binding::{Action, BindingState, DropReason};
use mipcast_wire::auth::AuthError;
use mipcast_wire::mh::{bu_flags, BindingAck, Message, MhRepr, MobilityOption};

#[test]
fn accepted_registration_installs_then_acknowledges_signed() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let ts = clock.ntp(0);
    let actions = send(&mut ha, &Bu::new(7, ts), &clock);

    let Action::Install { binding, replaced } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(replaced, &None);
    assert_eq!(
        (binding.hoa, binding.coa, binding.peer, binding.local),
        (HOA, COA, COA, HA)
    );
    assert_eq!(
        (binding.sequence, binding.lifetime_s, binding.spi),
        (7, 40, SPI)
    );
    assert_eq!(binding.expires_at_ms, clock.mono_ms + 40_000);
    assert_eq!(binding.refresh_at_ms, Some(clock.mono_ms + 32_000));
    assert_eq!(binding.state, BindingState::Active);

    let ack = the_ack(&actions, COA, HOA);
    assert_eq!(
        ack.back,
        BindingAck {
            status: 0,
            flags: 0,
            sequence: 7,
            lifetime: 10
        }
    );
    assert_eq!(ack.auth, Ok(SPI));
    assert_eq!(
        ack.replay_timestamp(),
        Some(ts),
        "accepted BAck echoes the BU timestamp"
    );
    assert_eq!(ha.cache().get(&HOA).unwrap().sequence, 7);
}

#[test]
fn no_ack_flag_means_no_ack_on_success() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.flags = bu_flags::HOME;
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(installs(&actions), 1);
    assert!(sends(&actions).is_empty(), "{actions:?}");
}

#[test]
fn errors_are_acknowledged_without_the_ack_flag() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.flags = bu_flags::HOME;
    bu.signer = None;
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 146);
}

#[test]
fn alternate_care_of_address_is_bound_and_authenticated() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let alt = addr(0xe, 5);
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.alt_coa = Some(alt);
    let actions = send(&mut ha, &bu, &clock);
    assert_eq!(ha.cache().get(&HOA).unwrap().coa, alt);
    assert_eq!(ha.cache().get(&HOA).unwrap().peer, COA);
    // The BAck still goes to the source but is signed for the bound care-of address.
    assert_eq!(the_ack(&actions, alt, HOA).auth, Ok(SPI));
}

#[test]
fn missing_or_non_host_home_network_prefix_is_128_unsigned() {
    let clock = Clock::new();
    for hoa in [None, Some((64, HOA))] {
        let mut ha = home_agent();
        let mut bu = Bu::new(1, clock.ntp(0));
        bu.hoa = hoa;
        let actions = send(&mut ha, &bu, &clock);
        assert_eq!(rejected_status(&actions), 128);
        let ack = the_ack(&actions, COA, HOA);
        assert_eq!(ack.back.status, 128);
        assert_eq!(
            ack.auth,
            Err(AuthError::Missing),
            "nothing verified, nothing signed"
        );
        assert_eq!(installs(&actions), 0);
    }
}

#[test]
fn spi_not_authorised_for_the_home_address_is_129_signed() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.signer = Some((FOREIGN_SPI, Algorithm::HmacSha1_96, FOREIGN_KEY.to_vec()));
    let actions = send(&mut ha, &bu, &clock);
    let ack = the_ack(&actions, COA, HOA);
    assert_eq!(ack.back.status, 129);
    assert_eq!(ack.auth, Ok(FOREIGN_SPI));
    assert!(ha.cache().is_empty());
}

#[test]
fn registration_without_home_flag_is_129() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.flags = bu_flags::ACK;
    assert_eq!(
        the_ack(&send(&mut ha, &bu, &clock), COA, HOA).back.status,
        129
    );
}

#[test]
fn home_address_off_the_home_prefix_is_132() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, clock.ntp(0));
    bu.hoa = Some((128, FOREIGN_HOA));
    bu.signer = Some((FOREIGN_SPI, Algorithm::HmacSha1_96, FOREIGN_KEY.to_vec()));
    let actions = send(&mut ha, &bu, &clock);
    let ack = the_ack(&actions, COA, FOREIGN_HOA);
    assert_eq!(ack.back.status, 132);
    assert_eq!(ack.auth, Ok(FOREIGN_SPI));
    assert_eq!(installs(&actions), 0);
}

#[test]
fn stale_sequence_is_135_with_the_last_accepted_number() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    send(&mut ha, &Bu::new(100, clock.ntp(0)), &clock);
    for stale in [100, 99, 100u16.wrapping_add(32768)] {
        clock.advance_ms(10);
        let actions = send(&mut ha, &Bu::new(stale, clock.ntp(0)), &clock);
        let ack = the_ack(&actions, COA, HOA);
        assert_eq!(
            (ack.back.status, ack.back.sequence),
            (135, 100),
            "sequence {stale}"
        );
        assert_eq!(ack.auth, Ok(SPI));
        assert_eq!(installs(&actions), 0);
    }
}

#[test]
fn sequence_wraps_from_65535_to_0_but_not_back() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    assert_eq!(
        installs(&send(&mut ha, &Bu::new(65535, clock.ntp(0)), &clock)),
        1
    );
    clock.advance_ms(10);
    let actions = send(&mut ha, &Bu::new(0, clock.ntp(0)), &clock);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 0);
    assert_eq!(ha.cache().get(&HOA).unwrap().sequence, 0);
    clock.advance_ms(10);
    let actions = send(&mut ha, &Bu::new(65535, clock.ntp(0)), &clock);
    let ack = the_ack(&actions, COA, HOA);
    assert_eq!((ack.back.status, ack.back.sequence), (135, 0));
}

#[test]
fn replayed_bu_is_144_with_our_time_and_installs_nothing() {
    let mut ha = home_agent();
    let mut clock = Clock::new();
    let bu = Bu::new(1, clock.ntp(0));
    assert_eq!(installs(&send(&mut ha, &bu, &clock)), 1);
    clock.advance_ms(1500);
    // The identical bytes again, and a higher sequence number with the same timestamp.
    let mut same_ts = bu.clone();
    same_ts.sequence = 2;
    for replay in [bu, same_ts] {
        let actions = send(&mut ha, &replay, &clock);
        let ack = the_ack(&actions, COA, HOA);
        assert_eq!(ack.back.status, 144);
        assert_eq!(ack.auth, Ok(SPI));
        assert_eq!(
            ack.replay_timestamp(),
            Some(clock.ntp(0)),
            "our clock, for resync"
        );
        assert_eq!(installs(&actions), 0);
        assert_eq!(ha.cache().get(&HOA).unwrap().sequence, 1);
    }
}

#[test]
fn seven_second_window_either_side() {
    let clock = Clock::new();
    for (offset_ms, status) in [
        (7000, 0),
        (-7000, 0),
        (7001, 144),
        (-7001, 144),
        (-60_000, 144),
    ] {
        let mut ha = home_agent();
        let actions = send(&mut ha, &Bu::new(1, clock.ntp(offset_ms)), &clock);
        assert_eq!(
            the_ack(&actions, COA, HOA).back.status,
            status,
            "offset {offset_ms} ms"
        );
    }
}

#[test]
fn missing_replay_protection_is_145() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let mut bu = Bu::new(1, 0);
    bu.timestamp = None;
    let actions = send(&mut ha, &bu, &clock);
    let ack = the_ack(&actions, COA, HOA);
    assert_eq!(ack.back.status, 145);
    assert_eq!(ack.auth, Ok(SPI));
    assert_eq!(ack.replay_timestamp(), Some(clock.ntp(0)));
}

#[test]
fn authentication_failures_are_146_unsigned() {
    let clock = Clock::new();
    let wrong_key = Some((SPI, Algorithm::HmacSha256_128, b"not the key".to_vec()));
    let unknown_spi = Some((4242, Algorithm::HmacSha256_128, KEY.to_vec()));
    let wrong_algorithm = Some((SPI, Algorithm::HmacSha1_96, KEY.to_vec()));
    for signer in [None, wrong_key, unknown_spi, wrong_algorithm] {
        let mut ha = home_agent();
        let mut bu = Bu::new(1, clock.ntp(0));
        bu.signer = signer.clone();
        let actions = send(&mut ha, &bu, &clock);
        let ack = the_ack(&actions, COA, HOA);
        assert_eq!(ack.back.status, 146, "{signer:?}");
        assert_eq!(ack.auth, Err(AuthError::Missing));
        assert!(ha.cache().is_empty());
    }
}

#[test]
fn bu_signed_for_another_care_of_address_is_146() {
    let mut ha = home_agent();
    let clock = Clock::new();
    // Signed for COA but sent from elsewhere: the authenticator covers the care-of address.
    let actions = ha.handle_bu(
        addr(0xf, 0x999),
        HA,
        &Bu::new(1, clock.ntp(0)).bytes(),
        clock.now(),
    );
    assert_eq!(rejected_status(&actions), 146);
    assert!(ha.cache().is_empty());
}

#[test]
fn unknown_mh_type_gets_binding_error_2() {
    let mut ha = home_agent();
    let clock = Clock::new();
    // A well-framed 16-byte Mobility Header of type 42.
    let mut bytes = vec![59, 1, 42, 0, 0, 0];
    bytes.resize(16, 0);
    let actions = ha.handle_bu(COA, HA, &bytes, clock.now());
    let s = sends(&actions);
    assert_eq!(s.len(), 1, "{actions:?}");
    assert_eq!((s[0].0, s[0].1), (COA, HA));
    let repr = MhRepr::parse(&s[0].2).unwrap();
    let Message::BindingError(be) = repr.message else {
        panic!("{repr:?}")
    };
    assert_eq!(
        (be.status, be.home_address),
        (2, std::net::Ipv6Addr::UNSPECIFIED)
    );
}

#[test]
fn truncated_mh_is_dropped_silently() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let bytes = Bu::new(1, clock.ntp(0)).bytes();
    for cut in [bytes.len() - 8, bytes.len() - 1, 5, 0] {
        let actions = ha.handle_bu(COA, HA, &bytes[..cut], clock.now());
        assert_eq!(
            actions,
            vec![Action::Drop(DropReason::BadLength)],
            "cut at {cut}"
        );
    }
    assert!(ha.cache().is_empty());
}

#[test]
fn non_bu_messages_are_dropped() {
    let mut ha = home_agent();
    let clock = Clock::new();
    let back = MhRepr {
        message: Message::BindingAck(BindingAck {
            status: 0,
            flags: 0,
            sequence: 1,
            lifetime: 1,
        }),
        options: vec![MobilityOption::ReplayProtection {
            timestamp: clock.ntp(0),
        }],
    };
    let mut buf = vec![0; back.buffer_len()];
    back.emit(&mut buf).unwrap();
    let actions = ha.handle_bu(COA, HA, &buf, clock.now());
    assert_eq!(actions, vec![Action::Drop(DropReason::NotBindingUpdate(6))]);
}
