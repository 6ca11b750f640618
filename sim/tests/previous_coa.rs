//! The home agent's window for a previous care-of address (issue 11 §3): after a terminal's
//! binding moves to a new MMA, reverse-tunnelled packets from the old MMA are still
//! decapsulated for `ha_previous_coa_ms`, then the old MMA's rule goes; the invariants
//! (every rule owned by a binding or by its previous CoA's window) hold throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_proto::KObject;
use mipcast_sim::invariants::{self, run_checked as run, run_until_settled as until_settled};
use mipcast_sim::topology as topo;
use mipcast_sim::{LinkId, SimConfig, World};

/// Whether the home agent's kernel decapsulates tunnels from `coa`.
fn ha_accepts(w: &World, coa: std::net::Ipv6Addr) -> bool {
    w.ha.kernel.objects.iter().any(
        |o| matches!(*o, KObject::Rule { from: Some(f), ipproto: Some(41), .. } if f.ip() == coa),
    )
}

/// Registered in site 0, then moved (radio 0) to site 1; returns the world at the first
/// millisecond the home agent holds the new binding.
fn moved_to_site1(cfg: SimConfig) -> World {
    let mut w = World::new(cfg);
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    assert!(ha_accepts(&w, topo::mma_addr(0)));
    w.attach(0, 0, LinkId::Site(1, 0));
    let start = w.now;
    let bound_to_mma1 = |w: &World| {
        let now = mipcast_sim::record::now_at(w.now);
        w.ha.core.status(now).first().map(|b| b.coa) == Some(topo::mma_addr(1))
    };
    while !bound_to_mma1(&w) {
        assert!(w.now - start < 3000, "the home agent never got the move");
        run(&mut w, 1);
    }
    w
}

#[test]
fn the_old_mma_is_accepted_for_the_window_after_the_move_then_refused() {
    let mut w = moved_to_site1(SimConfig::default());
    assert!(ha_accepts(&w, topo::mma_addr(1)));
    assert!(
        ha_accepts(&w, topo::mma_addr(0)),
        "the previous CoA's rule stays: {:?}",
        w.ha.kernel.objects
    );
    run(&mut w, 990);
    assert!(ha_accepts(&w, topo::mma_addr(0)));
    run(&mut w, 20);
    assert!(
        !ha_accepts(&w, topo::mma_addr(0)),
        "the window is over: {:?}",
        w.ha.kernel.objects
    );
    assert!(ha_accepts(&w, topo::mma_addr(1)));
    invariants::check(&w).unwrap();
}

#[test]
fn without_a_window_the_old_mma_is_refused_with_the_move() {
    let w = moved_to_site1(SimConfig {
        ha_previous_coa_ms: 0,
        ..SimConfig::default()
    });
    assert!(!ha_accepts(&w, topo::mma_addr(0)));
    assert!(ha_accepts(&w, topo::mma_addr(1)));
}

#[test]
fn returning_home_within_the_window_ends_the_first_window_and_opens_one_for_the_last_coa() {
    let mut w = moved_to_site1(SimConfig::default());
    w.attach(0, 0, LinkId::Home);
    until_settled(&mut w, 0, 900);
    // What the terminal sent up through site 1's MMA before it deregistered still arrives;
    // the window of the earlier move (site 0's MMA) ended with the deregistration.
    assert!(
        !ha_accepts(&w, topo::mma_addr(0)),
        "{:?}",
        w.ha.kernel.objects
    );
    assert!(
        ha_accepts(&w, topo::mma_addr(1)),
        "{:?}",
        w.ha.kernel.objects
    );
    assert!(w.ha.core.is_empty());
    invariants::check(&w).unwrap();
    // The window (1 s) ends: nothing left.
    run(&mut w, 1000);
    assert!(w.ha.kernel.is_pristine(), "{:?}", w.ha.kernel.objects);
    invariants::check(&w).unwrap();
}
