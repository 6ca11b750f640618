//! The `Policy` trait expresses the MMA's rules: a payload (the terminal group), an extra BAck
//! option (the assigned care-of address), a cross-binding conflict check, and a forwarding
//! window after deregistration that ends in a later `Remove`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;

use common::*;
use mipcast_binding::{
    Action, BindingCache, BindingState, DeregVerdict, Policy, Registrar, RemoveReason, Request,
    Verdict,
};
use mipcast_wire::mh::{bu_flags, Experimental, MobilityOption};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Terminal {
    Group(Ipv6Addr),
    Forwarding(Ipv6Addr),
}

struct MmaLike;

impl Policy for MmaLike {
    type Payload = Terminal;

    fn on_register(&mut self, req: &Request, cache: &BindingCache<Terminal>) -> Verdict<Terminal> {
        let group = req.options.iter().find_map(|o| match o {
            MobilityOption::Experimental(Experimental::TerminalGroup(g)) => Some(*g),
            _ => None,
        });
        let Some(group) = group else {
            return Verdict::Reject { status: 128 };
        };
        let taken = cache
            .iter()
            .any(|b| b.hoa != req.hoa && b.payload == Terminal::Group(group));
        if taken {
            return Verdict::Reject { status: 129 };
        }
        Verdict::Accept {
            payload: Terminal::Group(group),
            ack_options: vec![MobilityOption::Experimental(Experimental::AssignedCoa(
                req.dst,
            ))],
        }
    }

    fn on_deregister(
        &mut self,
        req: &Request,
        _: &BindingCache<Terminal>,
    ) -> DeregVerdict<Terminal> {
        for o in &req.options {
            if let MobilityOption::Experimental(Experimental::ForwardingRequest {
                new_coa,
                grace_secs,
            }) = o
            {
                return DeregVerdict::Linger {
                    payload: Terminal::Forwarding(*new_coa),
                    grace_s: *grace_secs,
                    ack_options: Vec::new(),
                };
            }
        }
        DeregVerdict::Remove {
            ack_options: Vec::new(),
        }
    }
}

const GROUP: Ipv6Addr = Ipv6Addr::new(0xff35, 0, 0, 0, 0x0211, 0x22ff, 0xfe33, 0x4455);

fn mma() -> Registrar<MmaLike> {
    Registrar::new(config(), sas(), MmaLike).unwrap()
}

fn terminal_bu(seq: u16, hoa: Ipv6Addr, group: Ipv6Addr, clock: &Clock) -> Bu {
    let mut bu = Bu::new(seq, clock.ntp(0));
    bu.flags = bu_flags::ACK | bu_flags::MAP;
    bu.hoa = Some((128, hoa));
    bu.extra = vec![MobilityOption::Experimental(Experimental::TerminalGroup(
        group,
    ))];
    bu
}

#[test]
fn payload_and_assigned_care_of_option() {
    let mut r = mma();
    let clock = Clock::new();
    let actions = send(&mut r, &terminal_bu(1, HOA, GROUP, &clock), &clock);
    let Action::Install { binding, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(binding.payload, Terminal::Group(GROUP));
    let ack = the_ack(&actions, COA, HOA);
    assert_eq!((ack.back.status, ack.auth), (0, Ok(SPI)));
    assert!(
        ack.options
            .contains(&MobilityOption::Experimental(Experimental::AssignedCoa(HA))),
        "{ack:?}"
    );
}

#[test]
fn group_claimed_by_another_terminal_is_refused() {
    let mut r = mma();
    let mut clock = Clock::new();
    send(&mut r, &terminal_bu(1, HOA, GROUP, &clock), &clock);
    clock.advance_ms(10);
    let other = addr(1, 0x777);
    let actions = send(&mut r, &terminal_bu(1, other, GROUP, &clock), &clock);
    assert_eq!(the_ack(&actions, COA, other).back.status, 129);
    assert_eq!(installs(&actions), 0);
    assert_eq!(r.cache().len(), 1);
    // The owner itself may refresh with the same group.
    clock.advance_ms(10);
    assert_eq!(
        installs(&send(&mut r, &terminal_bu(2, HOA, GROUP, &clock), &clock)),
        1
    );
}

#[test]
fn forwarding_request_lingers_then_removes() {
    let mut r = mma();
    let mut clock = Clock::new();
    send(&mut r, &terminal_bu(1, HOA, GROUP, &clock), &clock);
    clock.advance_ms(1000);
    let new_coa = addr(0x9, 1);
    let mut dereg = terminal_bu(2, HOA, GROUP, &clock);
    dereg.lifetime = 0;
    dereg.extra = vec![MobilityOption::Experimental(
        Experimental::ForwardingRequest {
            new_coa,
            grace_secs: 5,
        },
    )];
    let actions = send(&mut r, &dereg, &clock);
    let Action::Install {
        binding,
        replaced: Some(old),
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(old.payload, Terminal::Group(GROUP));
    assert_eq!(binding.payload, Terminal::Forwarding(new_coa));
    assert_eq!(binding.state, BindingState::Lingering);
    assert_eq!(binding.refresh_at_ms, None);
    assert_eq!(the_ack(&actions, COA, HOA).back.status, 0);

    clock.advance_ms(4999);
    assert!(
        r.poll_timers(clock.now()).is_empty(),
        "no refresh request while lingering"
    );
    clock.advance_ms(1);
    let actions = r.poll_timers(clock.now());
    let [Action::Remove {
        binding,
        reason: RemoveReason::GraceEnded,
    }] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(binding.payload, Terminal::Forwarding(new_coa));
    assert!(r.cache().is_empty());
}

#[test]
fn return_during_the_forwarding_window_replaces_the_lingering_binding() {
    let mut r = mma();
    let mut clock = Clock::new();
    send(&mut r, &terminal_bu(1, HOA, GROUP, &clock), &clock);
    clock.advance_ms(100);
    let mut dereg = terminal_bu(2, HOA, GROUP, &clock);
    dereg.lifetime = 0;
    dereg.extra = vec![MobilityOption::Experimental(
        Experimental::ForwardingRequest {
            new_coa: addr(0x9, 1),
            grace_secs: 30,
        },
    )];
    send(&mut r, &dereg, &clock);
    clock.advance_ms(100);
    let actions = send(&mut r, &terminal_bu(3, HOA, GROUP, &clock), &clock);
    let Action::Install {
        binding,
        replaced: Some(old),
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(old.state, BindingState::Lingering);
    assert_eq!(
        (binding.state, &binding.payload),
        (BindingState::Active, &Terminal::Group(GROUP))
    );
}
