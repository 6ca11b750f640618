//! Kernel refusal at each step of registration and handover: the state stays consistent (the
//! instant invariants hold after every event), refused changes are retried (mobile node) or
//! the registration revoked with BAck 130 (home agent, MMA).
//!
//! Found here first, and fixed: after a BAck 130 the mobile node never registered again (it
//! now backs off and registers again); a delete the home agent's kernel refused left an object
//! no binding owns (it is now tried again until it goes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_proto::KObject;
use mipcast_sim::invariants::{
    self, run_checked as run, run_until_settled as until_settled, Settled,
};
use mipcast_sim::topology as topo;
use mipcast_sim::world::MhKind;
use mipcast_sim::{LinkId, NodeId, Op, SimConfig, Target, Verb, World};

fn backs_with(w: &World, status: u8) -> usize {
    w.packets
        .iter()
        .filter(|p| matches!(p.kind, MhKind::Back { status: s, .. } if s == status))
        .count()
}

fn is_add_of(op: &Op, pred: fn(&KObject) -> bool) -> bool {
    matches!(op.verb, Verb::Add | Verb::Replace)
        && matches!(op.target, Target::Object(o) if pred(&o))
}

fn encap(o: &KObject) -> bool {
    matches!(o, KObject::EncapRoute { .. })
}

/// Runs, invariants checked after every event, until the terminal has its BAck 130 (the
/// revocation), at most `limit_ms`.
fn until_revoked(w: &mut World, limit_ms: u64) {
    let start = w.now;
    while backs_with(w, 130) == 0 {
        assert!(
            w.now - start < limit_ms,
            "no revocation within {limit_ms} ms"
        );
        run(w, 2);
    }
}

/// Registers in site 0 with `node`'s kernel refusing the first change matching `pred`, up to
/// the revocation, invariants checked after every event. Call [`registers_again`] after the
/// checks of the revoked state.
fn register_with_refusal(node: NodeId, pred: impl Fn(&Op) -> bool + 'static) -> World {
    let mut w = World::new(SimConfig::default());
    w.refuse_next(node, 1, pred);
    w.attach(0, 0, LinkId::Site(0, 0));
    until_revoked(&mut w, 10_000);
    assert!(
        w.kernel(node).faults.is_empty(),
        "the refusal was not exercised"
    );
    w
}

/// After a revocation the terminal registers again (RFC 6275 back-off, first retry 1.5 s).
fn registers_again(w: &mut World, site: usize) {
    let took = until_settled(w, 0, 5000);
    assert!(took >= 1400, "registered again too soon: {took} ms");
    assert_eq!(
        invariants::settled(w, 0),
        Settled::InSite {
            site,
            ifindex: topo::IF_A
        }
    );
    assert_eq!(backs_with(w, 130), 1, "one revocation only");
}

/// Nothing of terminal 0 is left at `node` (core and kernel).
fn nothing_left(w: &World, node: NodeId) {
    match node {
        NodeId::Ha => {
            assert!(w.ha.core.is_empty());
            assert!(w.ha.kernel.is_pristine(), "{:?}", w.ha.kernel.objects);
        }
        NodeId::Mma(s) => {
            assert_eq!(w.mmas[s].core.terminals().count(), 0);
            assert!(
                w.mmas[s].kernel.is_pristine(),
                "{:?}",
                w.mmas[s].kernel.objects
            );
        }
        NodeId::Mn(_) | NodeId::Router(_) => unreachable!(),
    }
}

#[test]
fn mma_refuses_the_downlink_route() {
    let mut w = register_with_refusal(NodeId::Mma(0), |op| is_add_of(op, encap));
    // Revoked: BAck 130 to the terminal, everything withdrawn, the home agent never asked.
    assert_eq!(backs_with(&w, 130), 1);
    nothing_left(&w, NodeId::Mma(0));
    nothing_left(&w, NodeId::Ha);
    registers_again(&mut w, 0);
}

#[test]
fn mma_refuses_the_mfc_entry() {
    let mut w = register_with_refusal(NodeId::Mma(0), |op| {
        op.verb == Verb::Add && matches!(op.target, Target::Mfc { .. })
    });
    assert_eq!(backs_with(&w, 130), 1);
    nothing_left(&w, NodeId::Mma(0));
    registers_again(&mut w, 0);
}

#[test]
fn home_agent_refuses_the_tunnel() {
    let mut w = register_with_refusal(NodeId::Ha, |op| is_add_of(op, encap));
    assert_eq!(backs_with(&w, 130), 1);
    nothing_left(&w, NodeId::Ha);
    registers_again(&mut w, 0);
}

#[test]
fn home_agent_refuses_the_proxy_entry() {
    let mut w = register_with_refusal(NodeId::Ha, |op| {
        is_add_of(op, |o| matches!(o, KObject::ProxyNeigh { .. }))
    });
    assert_eq!(backs_with(&w, 130), 1);
    // The route that did get in was rolled back.
    nothing_left(&w, NodeId::Ha);
    registers_again(&mut w, 0);
}

/// The mobile node retries what its kernel refused (after 1 s) and gets registered.
fn mn_refusal(pred: impl Fn(&Op) -> bool + 'static) -> u64 {
    let mut w = World::new(SimConfig::default());
    w.refuse_next(NodeId::Mn(0), 1, pred);
    w.attach(0, 0, LinkId::Site(0, 0));
    let took = until_settled(&mut w, 0, 3000);
    assert!(
        w.kernel(NodeId::Mn(0)).faults.is_empty(),
        "the refusal was not exercised"
    );
    // Settled means registered; the refused change is back within the retry interval.
    run(&mut w, 1100);
    invariants::check(&w).unwrap();
    assert_eq!(backs_with(&w, 130), 0);
    took
}

#[test]
fn terminal_retries_a_refused_join() {
    mn_refusal(|op| matches!(op.target, Target::Membership { .. }) && op.verb == Verb::Add);
    // Held: the membership is in the kernel after the retry.
}

#[test]
fn terminal_retries_a_refused_address() {
    mn_refusal(|op| is_add_of(op, |o| matches!(o, KObject::Address { .. })));
}

#[test]
fn terminal_retries_a_refused_uplink_route() {
    mn_refusal(|op| is_add_of(op, encap));
}

#[test]
fn terminal_retries_a_refused_leave() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 3000);
    w.refuse_next(NodeId::Mn(0), 1, |op| {
        op.verb == Verb::Delete && matches!(op.target, Target::Membership { .. })
    });
    w.attach(0, 0, LinkId::Home);
    run(&mut w, 600);
    assert!(
        w.kernel(NodeId::Mn(0)).faults.is_empty(),
        "the refusal was not exercised"
    );
    until_settled(&mut w, 0, 3000);
    run(&mut w, 1100);
    assert!(
        w.mns[0].kernel.memberships.is_empty(),
        "{:?}",
        w.mns[0].kernel.memberships
    );
}

/// Inter-site move with a refusal at `node`, up to the revocation, checking the invariants.
fn move_with_refusal(node: NodeId, pred: impl Fn(&Op) -> bool + 'static) -> World {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    w.refuse_next(node, 1, pred);
    w.attach(0, 0, LinkId::Site(1, 0));
    until_revoked(&mut w, 15_000);
    assert!(
        w.kernel(node).faults.is_empty(),
        "the refusal was not exercised"
    );
    w
}

#[test]
fn new_mma_refuses_on_an_inter_site_move() {
    let mut w = move_with_refusal(NodeId::Mma(1), |op| is_add_of(op, encap));
    assert_eq!(backs_with(&w, 130), 1);
    nothing_left(&w, NodeId::Mma(1));
    registers_again(&mut w, 1);
}

#[test]
fn home_agent_refuses_the_move() {
    let mut w = move_with_refusal(NodeId::Ha, |op| is_add_of(op, encap));
    assert_eq!(backs_with(&w, 130), 1);
    // The refused replace left the route to the old CoA: the rollback deleted it too.
    nothing_left(&w, NodeId::Ha);
    registers_again(&mut w, 1);
}

#[test]
fn old_mma_refuses_the_forwarding_route() {
    let mut w = move_with_refusal(NodeId::Mma(0), |op| is_add_of(op, encap));
    run(&mut w, 15_000);
    // The old MMA revoked instead of forwarding; the terminal is registered in the new site.
    assert_eq!(backs_with(&w, 130), 1);
    nothing_left(&w, NodeId::Mma(0));
    until_settled(&mut w, 0, 1000);
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 1,
            ifindex: topo::IF_A
        }
    );
}

// ---- defects the harness found (fixed) -----------------------------------------------------------

/// Registering (or moving) with a revocation on the way must end registered: the home agent's
/// core documents "The MN retries with a new sequence number". It does not: the mobile node's
/// `Client::on_back` removes the registration on any status >= 128 other than 135/144, and
/// `on_ack_outcome` only logs it (and drops `pending_site`), so nothing ever sends another BU.
#[test]
fn terminal_registers_again_after_a_revocation() {
    type Case = (&'static str, NodeId, bool, fn(&Op) -> bool);
    let cases: Vec<Case> = vec![
        ("MMA route at registration", NodeId::Mma(0), false, |op| {
            is_add_of(op, encap)
        }),
        ("HA tunnel at registration", NodeId::Ha, false, |op| {
            is_add_of(op, encap)
        }),
        ("new MMA route at a move", NodeId::Mma(1), true, |op| {
            is_add_of(op, encap)
        }),
        ("HA tunnel at a move", NodeId::Ha, true, |op| {
            is_add_of(op, encap)
        }),
    ];
    for (name, node, moving, pred) in cases {
        let mut w = World::new(SimConfig::default());
        if moving {
            w.attach(0, 0, LinkId::Site(0, 0));
            until_settled(&mut w, 0, 5000);
        }
        w.refuse_next(node, 1, pred);
        w.attach(0, 0, LinkId::Site(usize::from(moving), 0));
        let start = w.now;
        while invariants::settled(&w, 0) == Settled::NotSettled {
            assert!(
                w.now - start < 70_000,
                "{name}: not registered 70 s after a revocation: {}",
                invariants::describe(&w, NodeId::Mn(0))
            );
            run(&mut w, 100);
        }
    }
}

/// A delete the home agent's kernel refuses leaves the object with no binding: at home, the
/// HoA/128 route to the old MMA stays and hijacks the terminal's traffic until a restart
/// reconciles. The core reports it (`KernelRefused`) and never tries again.
#[test]
fn home_agent_retries_a_refused_delete() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    w.refuse_next(NodeId::Ha, 1, |op| op.verb == Verb::Delete);
    w.attach(0, 0, LinkId::Home);
    w.run_for(15_000);
    invariants::ownership(&w).unwrap();
}

// ---- state left by a crashed predecessor ------------------------------------------------------

fn stale_route(tunnel_dst: std::net::Ipv6Addr, oif: u32) -> KObject {
    KObject::EncapRoute {
        dst: ipnetwork::Ipv6Network::from(topo::hoa(0)),
        src: None,
        tunnel_dst,
        oif,
        table: mipcast_proto::RT_TABLE_MAIN,
    }
}

#[test]
fn mma_takes_over_a_route_left_by_a_predecessor() {
    let mut w = World::new(SimConfig::default());
    // The route of the terminal's previous life, to some other group.
    let stale = stale_route("ff35::dead".parse().unwrap(), topo::IF_B);
    w.mmas[0].kernel.objects.insert(stale);
    w.attach(0, 0, LinkId::Site(0, 0));
    let mut settled = false;
    let end = w.now + 3000;
    // The stale object has no owner until the registration replaces it: check the rest.
    w.run_until_with(end, &mut |w| {
        if invariants::settled(w, 0) != Settled::NotSettled {
            settled = true;
        }
    });
    assert!(settled);
    // "exists" was answered by a replace: the MMA's route now goes to the terminal's group.
    assert!(!w.mmas[0].kernel.objects.contains(&stale));
    invariants::check(&w).unwrap();
    assert_eq!(backs_with(&w, 130), 0);
}

#[test]
fn home_agent_revokes_when_a_predecessor_left_the_route() {
    let mut w = World::new(SimConfig::default());
    let stale = stale_route(topo::mma_addr(1), topo::IF_A);
    w.ha.kernel.objects.insert(stale);
    w.attach(0, 0, LinkId::Site(0, 0));
    // The stale route has no owner until the revocation's rollback takes it out: no invariant
    // checks on the way.
    while backs_with(&w, 130) == 0 {
        assert!(w.now < 5000, "no revocation");
        w.run_for(2);
    }
    // The home agent's policy: an add that finds its route there is refused, the binding
    // revoked (BAck 130), and the rollback's delete takes the stale route out too, so the
    // terminal's retry succeeds.
    assert_eq!(backs_with(&w, 130), 1);
    assert!(w.ha.kernel.is_pristine(), "{:?}", w.ha.kernel.objects);
    registers_again(&mut w, 0);
}

/// Issue 11, "Bad input": a terminal that asks the previous MMA for a grace period beyond its
/// maximum (60 s in the sim) gets 130 and no forwarding: the old MMA keeps the terminal as it
/// was (until its lifetime ends) with no tunnel to the new care-of address, while the terminal
/// settles in the new site all the same (the home agent's binding does not depend on it).
#[test]
fn old_mma_refuses_a_grace_beyond_its_maximum_and_installs_nothing() {
    let mut w = World::new(SimConfig {
        grace_s: 61,
        ..SimConfig::default()
    });
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    let before = w.mmas[0].kernel.objects.clone();
    assert_eq!(backs_with(&w, 130), 0);
    w.attach(0, 0, LinkId::Site(1, 0));
    until_settled(&mut w, 0, 15_000);
    run(&mut w, 2000);
    assert_eq!(
        backs_with(&w, 130),
        1,
        "the forwarding request, refused once"
    );
    assert_eq!(
        w.mmas[0].kernel.objects, before,
        "the old MMA's kernel changed"
    );
    assert_eq!(w.mmas[0].core.counts(), (1, 0), "not forwarding");
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 1,
            ifindex: topo::IF_A
        }
    );
}
