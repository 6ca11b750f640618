//! Scenario tests of 002's figures and of failures, on the real cores in virtual time.
use mipcast_sim::invariants::{self, Settled};
use mipcast_sim::topology as topo;
use mipcast_sim::world::MhKind;
use mipcast_sim::{LinkId, NodeId, SimConfig, World};

/// Runs `ms` of virtual time checking the instant invariants after every event.
fn run(w: &mut World, ms: u64) {
    let end = w.now + ms;
    w.run_until_with(end, &mut |w| {
        if let Err(e) = invariants::check(w) {
            panic!("t={} ms: {e}", w.now);
        }
    });
}

/// Runs until terminal `t` is settled (checking invariants), returns how long it took.
fn until_settled(w: &mut World, t: usize, limit_ms: u64) -> u64 {
    let start = w.now;
    while invariants::settled(w, t) == Settled::NotSettled {
        assert!(
            w.now - start < limit_ms,
            "terminal {t} not settled after {limit_ms} ms: {}",
            invariants::describe(w, NodeId::Mn(t))
        );
        run(w, 10);
    }
    w.now - start
}

#[test]
fn fig4_register_in_a_foreign_site() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    let took = until_settled(&mut w, 0, 5000);
    println!("registered in {took} ms");
    assert_eq!(invariants::settled(&w, 0), Settled::InSite { site: 0, ifindex: topo::IF_A });
    let bus = w.bus_sent_by(0);
    assert_eq!(bus.len(), 2, "{bus:?}");
    assert_eq!(bus[0].dst, topo::mma_addr(0));
    assert_eq!(bus[1].dst, topo::ha_addr());
    assert!(bus[0].t < bus[1].t);
    invariants::check(&w).unwrap();
}
