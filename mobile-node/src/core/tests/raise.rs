//! Issue 14: a prepared candidate that is administratively down is brought up (policy
//! `prepare_link_up`), usable at the decision, and put down again when it is not used.
use super::*;

/// Raw readings (no smoothing) with the levels of configs/mobile-node.yaml.
fn raising_config(prepare_link_up: bool) -> CoreConfig {
    let mut c = config(Mode::Site);
    c.policy.levels = links::Levels {
        time_constant_ms: 0,
        degrading_below: 50,
        stable_from: 65,
        unusable_below: 20,
        usable_from: 35,
    };
    c.policy.prepare_link_up = prepare_link_up;
    c
}

/// Registered in site 1 on e1 (quality 100); e2 administratively down, its radio at `q2`.
fn on_e1_with_e2_down(prepare_link_up: bool, q2: u8) -> H {
    let mut h = H::new(Mode::Site);
    h.core = Core::new(raising_config(prepare_link_up), Persisted::default());
    h.quality(E1, 100);
    h.quality(E2, q2);
    h.up(E1);
    let acts = h.ra(E1, P1, Some(mma1()));
    let mma_bu = bus(&acts).remove(0);
    let acts = h.ack(&mma_bu, 0, Some(mma1()));
    let ha_bu = bus(&acts).remove(0);
    h.ack(&ha_bu, 0, None);
    h
}

const P1: &str = "2001:db8:10:1::";
const P2: &str = "2001:db8:10:2::";

impl H {
    fn quality(&mut self, ifindex: u32, value: u8) -> Vec<Action> {
        self.ev(Event::Quality {
            ifindex,
            value: Some(value),
        })
    }
    /// `ms` of virtual time in 100 ms ticks, with an RA every second on each link of
    /// `routers` (so no router ages out).
    fn run(&mut self, ms: u64, routers: &[(u32, &str)]) -> Vec<Action> {
        let mut out = Vec::new();
        let end = self.t + ms;
        while self.t < end {
            out.extend(self.advance(100));
            if self.t.is_multiple_of(1000) {
                for (ifindex, prefix) in routers {
                    out.extend(self.ra(*ifindex, prefix, Some(mma1())));
                }
            }
        }
        out
    }
}

fn raises(acts: &[Action], ifindex: u32) -> usize {
    kchanges(acts)
        .iter()
        .filter(|k| **k == KernelChange::SetLinkUp(ifindex))
        .count()
}

fn lowers(acts: &[Action], ifindex: u32) -> usize {
    kchanges(acts)
        .iter()
        .filter(|k| **k == KernelChange::SetLinkDown(ifindex))
        .count()
}

#[test]
fn a_degrading_link_brings_the_down_candidate_up_and_the_move_goes_there() {
    let mut h = on_e1_with_e2_down(true, 90);
    assert_eq!(
        raises(&h.run(3000, &[(E1, P1)]), E2),
        0,
        "e1 is stable: nothing raised"
    );
    // e1 degrades, but not enough for any move (e2 is down: nowhere to go).
    let mut acts = h.quality(E1, 45);
    assert_eq!(h.core.links[0].level, links::Level::Degrading);
    assert_eq!(raises(&acts, E2), 1, "{:?}", kchanges(&acts));
    assert!(h.core.status(Millis(h.t)).links[1].prepared);
    // Brought up before anything else is asked of it: no RS on a down link.
    assert!(!acts.contains(&Action::SendRs { ifindex: E2 }));
    acts.extend(h.run(500, &[(E1, P1)]));
    assert_eq!(raises(&acts, E2), 1, "asked once");
    // The kernel reports it up: it is solicited and, once its router answers, it carries the
    // move the degrading link calls for (90 + 50 against 45 + 50).
    let acts = h.up(E2);
    assert!(acts.contains(&Action::SendRs { ifindex: E2 }));
    let mut acts = h.ra(E2, P2, Some(mma1()));
    acts.extend(h.run(2500, &[(E1, P1), (E2, P2)]));
    assert_eq!(handovers(&acts), vec![HandoverKind::IntraSite]);
    assert_eq!(h.core.attachment().ifindex(), Some(E2));
    assert_eq!(lowers(&acts, E2), 0);
    // In use: held up, and put down at shutdown.
    assert_eq!(h.core.raised_links(), vec![E2]);
    // e2 fades and e1 recovers: back to e1.
    let mut acts = h.quality(E1, 100);
    acts.extend(h.quality(E2, 30));
    acts.extend(h.run(2500, &[(E1, P1), (E2, P2)]));
    assert_eq!(h.core.attachment().ifindex(), Some(E1));
    // Neither prepared nor used any more: down again, but only once the make-before-break
    // overlap has left the group there.
    let k = kchanges(&acts);
    let down = k
        .iter()
        .position(|c| *c == KernelChange::SetLinkDown(E2))
        .unwrap_or_else(|| panic!("e2 not put down: {k:?}"));
    let on_e2 = Membership {
        ifindex: E2,
        group: group(),
        source: mma1(),
    };
    let leave = k
        .iter()
        .position(|c| *c == KernelChange::Leave(on_e2))
        .unwrap_or_else(|| panic!("the group not left on e2: {k:?}"));
    assert!(leave < down, "{k:?}");
    assert!(h.core.raised_links().is_empty());
}

#[test]
fn preparation_that_stops_puts_the_raised_link_down_and_one_found_up_is_left_alone() {
    let mut h = on_e1_with_e2_down(true, 90);
    let acts = h.quality(E1, 45);
    assert_eq!(raises(&acts, E2), 1);
    // e1 stable again before e2 was used: e2 goes down again.
    let acts = h.quality(E1, 100);
    assert_eq!(lowers(&acts, E2), 1, "{:?}", kchanges(&acts));
    assert!(h.core.raised_links().is_empty());

    // Someone else had it up (only its carrier was missing): asked once, never put down.
    h.kernel = |c| match c {
        KernelChange::SetLinkUp(_) => Outcome::AlreadyPresent,
        _ => Outcome::Applied,
    };
    let mut acts = h.quality(E1, 45);
    acts.extend(h.run(3000, &[(E1, P1)]));
    acts.extend(h.quality(E1, 44));
    assert_eq!(raises(&acts, E2), 1, "{:?}", kchanges(&acts));
    let acts = h.quality(E1, 100);
    assert_eq!(lowers(&acts, E2), 0);
    assert!(h.core.raised_links().is_empty());
}

#[test]
fn a_down_link_is_left_alone_without_the_policy_or_when_its_radio_is_gone() {
    let mut h = on_e1_with_e2_down(false, 90);
    let mut acts = h.quality(E1, 45);
    acts.extend(h.run(3000, &[(E1, P1)]));
    assert_eq!(raises(&acts, E2), 0);
    assert!(!h.core.status(Millis(h.t)).links[1].prepared);

    let mut h = on_e1_with_e2_down(true, 0);
    let mut acts = h.quality(E1, 45);
    acts.extend(h.run(3000, &[(E1, P1)]));
    assert_eq!(
        raises(&acts, E2),
        0,
        "a radio reading 0 is not worth raising"
    );
}

#[test]
fn the_best_down_link_is_chosen() {
    let p = raising_config(true).policy;
    let mk = |ifindex: u32, q: u8, up: bool| {
        let mut l = Link::new(LinkConfig {
            ifindex,
            name: format!("e{ifindex}"),
            mac: MAC1,
            preference: 50,
            cost: 0,
        });
        l.feed(Some(q), Millis(0), &p.levels);
        l.up = up;
        l
    };
    let links = [
        mk(1, 45, true),
        mk(2, 60, false),
        mk(3, 80, false),
        mk(4, 99, true),
    ];
    let none = |_| false;
    assert_eq!(
        crate::core::raise::link_to_raise(&links, 1, Millis(0), &p, none),
        Some(3)
    );
    assert_eq!(
        crate::core::raise::link_to_raise(&links, 1, Millis(0), &p, |i| i == 3),
        Some(2)
    );
    let off = Policy {
        prepare_link_up: false,
        ..p
    };
    assert_eq!(
        crate::core::raise::link_to_raise(&links, 1, Millis(0), &off, none),
        None
    );
}
