//! Scenario tests of 002's figures and of failures, on the real cores in virtual time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_sim::invariants::{
    self, run_checked as run, run_until_settled as until_settled, Settled,
};
use mipcast_sim::topology as topo;
use mipcast_sim::world::MhKind;
use mipcast_sim::{LinkId, NodeId, SimConfig, World};

#[test]
fn fig4_register_in_a_foreign_site() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    let took = until_settled(&mut w, 0, 5000);
    println!("registered in {took} ms");
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_A
        }
    );
    let bus = w.bus_sent_by(0);
    assert_eq!(bus.len(), 2, "{bus:?}");
    assert_eq!(bus[0].dst, topo::mma_addr(0));
    assert_eq!(bus[1].dst, topo::ha_addr());
    assert!(bus[0].t < bus[1].t);
    invariants::check(&w).unwrap();
}

/// Terminal 0 registered in site 0 on link 0 through radio 0.
fn registered() -> World {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    w
}

fn bu_count(w: &World) -> usize {
    w.bus_sent_by(0).len()
}

#[test]
fn intra_site_roam_sends_no_binding_update() {
    let mut w = registered();
    let before = bu_count(&w);
    let old_addr = topo::onlink(0, 0, topo::site_link_prefix(0, 0));
    // Layer-2 roam of the one radio to the other access link of the site.
    w.attach(0, 0, LinkId::Site(0, 1));
    run(&mut w, 3000);
    assert_eq!(
        bu_count(&w),
        before,
        "an intra-site move sent binding updates"
    );
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_A
        }
    );
    // The terminal took the new link's address and dropped the old one.
    let new_addr = topo::onlink(0, 0, topo::site_link_prefix(0, 1));
    let addrs: Vec<_> = w.mns[0]
        .kernel
        .objects
        .iter()
        .filter_map(|o| match o {
            mipcast_proto::KObject::Address { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect();
    assert!(
        addrs.contains(&new_addr) && !addrs.contains(&old_addr),
        "{addrs:?}"
    );
    invariants::check(&w).unwrap();
}

#[test]
fn intra_site_make_before_break_sends_no_binding_update() {
    let mut w = registered();
    let before = bu_count(&w);
    // Second radio comes up on the other link; then the first goes.
    w.attach(0, 1, LinkId::Site(0, 1));
    run(&mut w, 1000);
    w.detach(0, 0);
    run(&mut w, 3000);
    assert_eq!(
        bu_count(&w),
        before,
        "an intra-site move sent binding updates"
    );
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_B
        }
    );
    let g = topo::group(0);
    assert_eq!(
        w.mns[0]
            .kernel
            .memberships
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![(topo::IF_B, g, topo::mma_addr(0))]
    );
    // Moving back and forth inside the site never costs a BU either.
    for i in 0..6 {
        let (up, down) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        w.attach(0, up, LinkId::Site(0, i % 2));
        run(&mut w, 700);
        w.detach(0, down);
        run(&mut w, 1500);
    }
    assert_eq!(bu_count(&w), before);
    invariants::check(&w).unwrap();
}

#[test]
fn fig6_inter_site_move() {
    let mut w = registered();
    let before = bu_count(&w);
    w.attach(0, 0, LinkId::Site(1, 0));
    let took = until_settled(&mut w, 0, 5000);
    println!("inter-site handover settled in {took} ms");
    let bus: Vec<_> = w.bus_sent_by(0).into_iter().skip(before).cloned().collect();
    let new_addr = topo::onlink(0, 0, topo::site_link_prefix(1, 0));
    // BU to the new MMA first, then (once accepted) to the home agent and the old MMA's
    // deregistration with a forwarding request.
    assert_eq!(bus.len(), 3, "{bus:#?}");
    assert_eq!(bus[0].dst, topo::mma_addr(1));
    assert!(matches!(bus[0].kind, MhKind::Bu { lifetime, .. } if lifetime > 0));
    let rest: Vec<_> = bus[1..].iter().map(|p| (p.dst, p.kind)).collect();
    assert!(rest.iter().any(|(d, k)| *d == topo::ha_addr()
        && matches!(k, MhKind::Bu { home: true, lifetime, .. } if *lifetime > 0)));
    assert!(rest
        .iter()
        .any(|(d, k)| *d == topo::mma_addr(0) && matches!(k, MhKind::Bu { lifetime: 0, .. })));
    assert!(bus.iter().all(|p| p.src == new_addr));
    // The old MMA forwards to the new on-link address for the grace period.
    let forward = mipcast_proto::KObject::EncapRoute {
        dst: ipnetwork::Ipv6Network::from(topo::hoa(0)),
        src: None,
        tunnel_dst: new_addr,
        oif: topo::IF_A,
        table: mipcast_proto::RT_TABLE_MAIN,
    };
    assert!(
        w.mmas[0].kernel.objects.contains(&forward),
        "{:?}",
        w.mmas[0].kernel.objects
    );
    assert!(w.mmas[0].kernel.mfc.is_empty());
    // The terminal decapsulates what the old MMA forwards to its new address, for as long.
    let forwarded = |w: &World| {
        w.mns[0].kernel.objects.iter().any(|o| {
            matches!(*o, mipcast_proto::KObject::Rule { from: Some(f), to: Some(t), ipproto: Some(41), .. }
                if f.ip() == topo::mma_addr(0) && t.ip() == new_addr)
        })
    };
    assert!(forwarded(&w), "{:?}", w.mns[0].kernel.objects);
    // After the grace period (4 s asked) the old MMA has cleaned up, and so has the terminal.
    run(&mut w, 4500);
    assert!(!forwarded(&w));
    assert!(
        w.mmas[0].kernel.is_pristine(),
        "{:?}",
        w.mmas[0].kernel.objects
    );
    assert_eq!(w.mmas[0].core.terminals().count(), 0);
    invariants::check(&w).unwrap();
}

#[test]
fn fig7_return_home() {
    let mut w = registered();
    let before = bu_count(&w);
    w.attach(0, 0, LinkId::Home);
    let took = until_settled(&mut w, 0, 5000);
    println!("return home settled in {took} ms");
    assert_eq!(invariants::settled(&w, 0), Settled::Home);
    let bus: Vec<_> = w.bus_sent_by(0).into_iter().skip(before).cloned().collect();
    assert!(
        bus.iter().any(|p| p.dst == topo::ha_addr()
            && p.src == topo::hoa(0)
            && matches!(
                p.kind,
                MhKind::Bu {
                    lifetime: 0,
                    home: true,
                    ..
                }
            )),
        "{bus:#?}"
    );
    // The home agent removed the tunnel and the proxy entry; the MMA's decapsulation rule
    // stays for the previous-CoA window (1 s) after the deregistration.
    assert!(w.ha.core.is_empty());
    run(&mut w, 1000);
    assert!(w.ha.kernel.is_pristine(), "{:?}", w.ha.kernel.objects);
    // The old MMA forwards to the home address for the grace period (4 s).
    run(&mut w, 15_000);
    invariants::pristine(&w).unwrap();
    // Then the terminal is a plain host: its home address on the home link, a default
    // route; no tunnels, rules, memberships or marks.
    let k = &w.mns[0].kernel;
    assert!(k.memberships.is_empty() && k.marks.is_empty());
    assert!(
        k.objects.iter().all(|o| matches!(
            o,
            mipcast_proto::KObject::Address { .. } | mipcast_proto::KObject::GatewayRoute { .. }
        )),
        "{:?}",
        k.objects
    );
    assert!(k.objects.contains(&mipcast_proto::KObject::Address {
        addr: topo::hoa(0),
        prefix_len: 64,
        ifindex: topo::IF_A
    }));
}

#[test]
fn everything_expires_when_the_terminal_vanishes() {
    let mut w = registered();
    w.detach(0, 0);
    // Lifetime 60 s: the home agent and the MMA let the bindings expire.
    run(&mut w, 61_000);
    invariants::pristine(&w).unwrap();
}

// ---- the invariants can fail ----------------------------------------------------------------

#[test]
fn invariants_catch_stray_and_missing_state() {
    let mut w = registered();
    invariants::check(&w).unwrap();
    // A route nobody owns at the home agent.
    let stray = mipcast_proto::KObject::EncapRoute {
        dst: ipnetwork::Ipv6Network::from(topo::hoa(7)),
        src: None,
        tunnel_dst: topo::mma_addr(1),
        oif: topo::IF_A,
        table: mipcast_proto::RT_TABLE_MAIN,
    };
    w.ha.kernel.objects.insert(stray);
    assert!(invariants::ownership(&w).is_err());
    w.ha.kernel.objects.remove(&stray);
    // The MFC entry vanishes behind the MMA's back: no delivery path.
    let mfc = w.mmas[0].kernel.mfc.clone();
    w.mmas[0].kernel.mfc.clear();
    assert!(invariants::delivery(&w).unwrap_err().contains("MFC"));
    w.mmas[0].kernel.mfc = mfc;
    // A membership the terminal's core does not know of.
    w.mns[0]
        .kernel
        .memberships
        .insert((9, topo::group(0), topo::mma_addr(1)));
    assert!(invariants::ownership(&w).is_err());
}

#[test]
fn a_long_stay_is_kept_alive_by_refreshes() {
    let mut w = registered();
    let before = bu_count(&w);
    // Five minutes with lifetimes of 60 s: the terminal stays registered throughout; it is
    // only "not settled" while a refresh is in flight (one round trip, observed 40 ms).
    let mut gap = 0;
    let mut worst = 0;
    for _ in 0..15_000 {
        run(&mut w, 20);
        if invariants::settled(&w, 0) == Settled::NotSettled {
            gap += 20;
            worst = worst.max(gap);
        } else {
            gap = 0;
        }
    }
    assert!(worst <= 60, "unsettled for {worst} ms at once");
    let refreshes = bu_count(&w) - before;
    println!("{refreshes} refresh BUs in 300 s");
    // One refresh per peer every 48 s (80% of 60 s): 2 × 6 = 12; a BRR that arrives first may
    // trigger the refresh instead, never in addition.
    assert!((10..=14).contains(&refreshes), "{refreshes}");
}

#[test]
fn two_terminals_in_one_site_move_independently() {
    let mut w = World::new(SimConfig {
        terminals: 2,
        ..SimConfig::default()
    });
    w.attach(0, 0, LinkId::Site(0, 0));
    w.attach(1, 0, LinkId::Site(0, 1));
    until_settled(&mut w, 0, 5000);
    until_settled(&mut w, 1, 5000);
    // One MFC entry per terminal group at the site's MMA.
    let mma = topo::mma_addr(0);
    assert_eq!(w.mmas[0].kernel.mfc.iter().copied().collect::<Vec<_>>(), {
        let mut v = vec![(mma, topo::group(0)), (mma, topo::group(1))];
        v.sort();
        v
    });
    let others = w.bus_sent_by(1).len();
    w.attach(0, 0, LinkId::Site(1, 0));
    until_settled(&mut w, 0, 5000);
    run(&mut w, 5000);
    // The other terminal noticed nothing.
    assert_eq!(w.bus_sent_by(1).len(), others);
    assert_eq!(
        w.mmas[0].kernel.mfc.iter().copied().collect::<Vec<_>>(),
        vec![(mma, topo::group(1))]
    );
    invariants::check(&w).unwrap();
}

/// Issue 14: the real MMA core advises (operator command), the real MN core obeys: it moves
/// to its other radio's link in the same site at once, with no Binding Update.
#[test]
fn handoff_advice_moves_the_terminal_to_its_other_link() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    w.attach(0, 1, LinkId::Site(0, 1));
    until_settled(&mut w, 0, 5000);
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_A
        }
    );
    let before = bu_count(&w);
    let advised_at = w.now;
    w.advise(0, 0, mipcast_wire::mh::advice_reason::CONGESTION, 30);
    let mut moved = None;
    while w.now - advised_at < 1000 {
        run(&mut w, 10);
        if invariants::settled(&w, 0)
            == (Settled::InSite {
                site: 0,
                ifindex: topo::IF_B,
            })
        {
            moved = Some(w.now - advised_at);
            break;
        }
    }
    let moved = moved.unwrap_or_else(|| panic!("{}", invariants::describe(&w, NodeId::Mn(0))));
    println!("advice to settled on the other link: {moved} ms");
    assert_eq!(bu_count(&w), before, "an intra-site move sends no BU");
    // The advised link is avoided for 30 s: the terminal stays on B meanwhile.
    run(&mut w, 20_000);
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_B
        }
    );
    assert!(w.mn_status(0).links[0].avoid.is_some());
}

/// Advice to a terminal with no other link: it stays, and the advice is in its status.
#[test]
fn handoff_advice_without_an_alternative_leaves_the_terminal_in_place() {
    let mut w = registered();
    w.advise(0, 0, mipcast_wire::mh::advice_reason::MAINTENANCE, 30);
    run(&mut w, 3000);
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_A
        }
    );
    assert!(w.mn_status(0).links[0].avoid.is_some());
}

/// Issue 11, "Bad input": a terminal that vanishes in the middle of an inter-site move (its
/// registration with the new MMA, the home agent's or the forwarding request in flight, or the
/// old MMA already forwarding) leaves no state anywhere once its lifetimes (60 s) and the grace
/// period (10 s) have run out, wherever the move was cut.
#[test]
fn a_terminal_vanishing_mid_move_leaves_no_state_after_its_lifetimes() {
    for cut_ms in [0, 1, 2, 3, 5, 10, 20, 50, 200] {
        let mut w = registered();
        w.attach(0, 0, LinkId::Site(1, 0));
        run(&mut w, cut_ms);
        w.detach(0, 0);
        run(&mut w, 61_000 + 10_000);
        invariants::pristine(&w).unwrap_or_else(|e| panic!("cut after {cut_ms} ms: {e}"));
    }
}
