//! The multicast last hop with pim-lite in the loop: the terminals' MLD reports reach their
//! access router, whose PIM Join/Prune builds and cuts the branch from the MMA's router. An
//! intra-site move is a join on the new link, a graft of its branch and a prune of the old
//! one, with no Binding Update; lost reports, Joins and Prunes and reordered Join/Prune are
//! repaired within the protocol's timers, asserted in virtual time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::net::Ipv6Addr;

use mipcast_sim::invariants::{self, run_checked as run, run_until_settled, Settled};
use mipcast_sim::pim::{self, McastFrom, McastPacket, RouterId, ACCESS_IF, DOWN_IF_BASE};
use mipcast_sim::topology as topo;
use mipcast_sim::world::{Fate, MhKind};
use mipcast_sim::{LinkId, SimConfig, World};

fn sg() -> (Ipv6Addr, Ipv6Addr) {
    (topo::mma_addr(0), topo::group(0))
}

/// Whether the branch to link `l` of site 0 carries terminal 0's channel end to end.
fn branch(w: &World, l: usize) -> bool {
    let (s, g) = sg();
    w.router(RouterId::Site(0))
        .forwards(s, g, DOWN_IF_BASE + l as u32)
        && w.router(RouterId::Access(0, l)).forwards(s, g, ACCESS_IF)
}

/// Runs 1 ms at a time (invariants checked) until `cond` holds; returns how long it took, or
/// fails past `limit_ms`.
fn until(w: &mut World, limit_ms: u64, what: &str, cond: impl Fn(&World) -> bool) -> u64 {
    let start = w.now;
    while !cond(w) {
        assert!(
            w.now - start < limit_ms,
            "{what}: not within {limit_ms} ms (MFC: site {:?}, access {:?} {:?})",
            w.router(RouterId::Site(0)).mfc,
            w.router(RouterId::Access(0, 0)).mfc,
            w.router(RouterId::Access(0, 1)).mfc,
        );
        run(w, 1);
    }
    w.now - start
}

fn bu_count(w: &World) -> usize {
    w.bus_sent_by(0).len()
}

fn from_access(p: &McastPacket, l: usize) -> bool {
    p.from == McastFrom::Router(RouterId::Access(0, l))
}

fn count(w: &World, f: impl Fn(&McastPacket) -> bool) -> usize {
    w.mcast.iter().filter(|p| f(p)).count()
}

/// Terminal 0 registered in site 0 on link 0, its branch built and the routers quiet.
fn registered() -> World {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    run_until_settled(&mut w, 0, 5000);
    run(&mut w, 2000);
    pim::mcast_check(&w).unwrap();
    w
}

#[test]
fn registration_builds_one_branch_to_the_terminals_link() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    run_until_settled(&mut w, 0, 5000);
    // The join goes out with the registration: by the time the terminal is settled its
    // report reached the access router, which joined toward the site router.
    let took = until(&mut w, 50, "branch after registration", |w| branch(w, 0));
    println!("branch built {took} ms after the terminal settled");
    assert!(!branch(&w, 1), "the other link of the site gets nothing");
    let (s, g) = sg();
    assert!(count(&w, |p| from_access(p, 0) && p.kind.joins((s, g))) >= 1);
    assert!(
        w.mcast
            .iter()
            .any(|p| p.from == McastFrom::Host(0, 0) && p.kind.is_report()),
        "the terminal's kernel reported its join"
    );
    pim::mcast_check(&w).unwrap();
    // Another site's routers hold nothing for it.
    assert!(w.router(RouterId::Site(1)).mfc.is_empty());
}

#[test]
fn intra_site_move_is_join_graft_and_prune_with_zero_bus() {
    let mut w = registered();
    let (s, g) = sg();
    let bus = bu_count(&w);
    let moved = w.now;
    // Layer-2 roam of the one radio to the other access link of the site.
    w.attach(0, 0, LinkId::Site(0, 1));
    let graft = until(&mut w, 50, "graft of the new link's branch", |w| {
        branch(w, 1)
    });
    println!("new branch forwarding {graft} ms after the move");
    assert!(count(&w, |p| from_access(p, 1) && p.kind.joins((s, g))) >= 1);
    // The old link's listener left without a word (its radio is gone): it ages out after
    // MALI, then the old access router prunes its branch.
    let prune = until(
        &mut w,
        pim::mali_ms() + 1000,
        "prune of the old branch",
        |w| !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE),
    );
    println!(
        "old branch pruned {} ms after the move (MALI {} ms)",
        w.now - moved,
        pim::mali_ms()
    );
    assert!(
        prune + graft >= pim::mali_ms() - 1000,
        "pruned before MALI: {prune} ms"
    );
    assert!(count(&w, |p| from_access(p, 0) && p.kind.prunes((s, g))) >= 1);
    assert!(w.router(RouterId::Access(0, 0)).mfc.is_empty());
    assert_eq!(bu_count(&w), bus, "an intra-site move sent binding updates");
    assert_eq!(
        invariants::settled(&w, 0),
        Settled::InSite {
            site: 0,
            ifindex: topo::IF_A
        }
    );
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
}

#[test]
fn second_radio_takes_over_with_zero_bus() {
    let mut w = registered();
    let (s, g) = sg();
    let bus = bu_count(&w);
    // The second radio comes up on the other link; the first goes a second later.
    w.attach(0, 1, LinkId::Site(0, 1));
    run(&mut w, 1000);
    w.detach(0, 0);
    let graft = until(&mut w, 3000, "graft through the second radio", |w| {
        branch(w, 1)
    });
    println!("new branch forwarding {graft} ms after the first radio went");
    let prune = until(&mut w, pim::mali_ms() + 1000, "old branch pruned", |w| {
        !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE)
    });
    println!(
        "old branch pruned {} ms after the first radio went",
        graft + prune
    );
    assert_eq!(bu_count(&w), bus, "an intra-site move sent binding updates");
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
}

#[test]
fn a_lost_report_is_repaired_by_the_hosts_retransmission() {
    let mut w = World::new(SimConfig::default());
    w.mcast_drop_next(1, |p| p.from == McastFrom::Host(0, 0) && p.kind.is_report());
    w.attach(0, 0, LinkId::Site(0, 0));
    // Wait for the membership, then time the repair from the lost report.
    until(&mut w, 5000, "lost report", |w| {
        w.mcast.iter().any(|p| p.dropped)
    });
    let lost_at = w.mcast.iter().find(|p| p.dropped).unwrap().t;
    assert!(!branch(&w, 0));
    until(
        &mut w,
        1100,
        "repair by the second state-change report",
        |w| branch(w, 0),
    );
    println!("branch built {} ms after the lost report", w.now - lost_at);
    // The Unsolicited Report Interval (1 s) plus the link's latency.
    assert!(w.now - lost_at <= 1000 + 2 * w.cfg.site_latency_ms + 5);
    run_until_settled(&mut w, 0, 5000);
    pim::mcast_check(&w).unwrap();
}

#[test]
fn lost_reports_are_repaired_by_the_next_query() {
    let mut w = World::new(SimConfig::default());
    // Past the routers' start-up queries: general queries come once per query interval.
    w.run_for(20_000);
    // Both transmissions of the state-change report are lost.
    w.mcast_drop_next(2, |p| p.from == McastFrom::Host(0, 0) && p.kind.is_report());
    w.attach(0, 0, LinkId::Site(0, 0));
    until(&mut w, 5000, "lost reports", |w| {
        w.mcast.iter().filter(|p| p.dropped).count() == 2
    });
    let lost_at = w.mcast.iter().find(|p| p.dropped).unwrap().t;
    let took = until(&mut w, 7000, "repair by a general query", |w| branch(w, 0));
    println!(
        "branch built {} ms after the first lost report",
        w.now - lost_at
    );
    // At the latest one query interval, then the host's response delay (up to the query's
    // maximum response time) and the latency.
    let mld = pim::mld_settings();
    let bound = mld.query_interval().as_millis() as u64
        + mld.query_response_interval_ms
        + 4 * w.cfg.site_latency_ms;
    assert!(w.now - lost_at <= bound, "{took} ms > {bound} ms");
    let answer = w
        .mcast
        .iter()
        .find(|p| p.from == McastFrom::Host(0, 0) && !p.dropped)
        .unwrap();
    assert!(
        answer.t > lost_at,
        "repaired by a query's answer, not a state-change report"
    );
    run_until_settled(&mut w, 0, 5000);
    pim::mcast_check(&w).unwrap();
}

#[test]
fn a_lost_join_is_repaired_by_the_periodic_join() {
    let mut w = World::new(SimConfig::default());
    let (s, g) = sg();
    w.mcast_drop_next(1, move |p| from_access(p, 0) && p.kind.joins((s, g)));
    w.attach(0, 0, LinkId::Site(0, 0));
    until(&mut w, 5000, "lost join", |w| {
        w.mcast.iter().any(|p| p.dropped)
    });
    let lost_at = w.mcast.iter().find(|p| p.dropped).unwrap().t;
    run(&mut w, 100);
    assert!(
        !branch(&w, 0),
        "the site router cannot know of the lost join"
    );
    assert!(w.router(RouterId::Access(0, 0)).forwards(s, g, ACCESS_IF));
    until(&mut w, 3100, "repair by the periodic Join", |w| {
        branch(w, 0)
    });
    println!("branch built {} ms after the lost Join", w.now - lost_at);
    let period = pim::pim_settings().join_prune_period().as_millis() as u64;
    assert!(w.now - lost_at <= period + 2 * w.cfg.site_latency_ms + 5);
    run_until_settled(&mut w, 0, 5000);
    pim::mcast_check(&w).unwrap();
}

#[test]
fn a_lost_prune_leaves_the_old_branch_until_its_holdtime() {
    let mut w = registered();
    let (s, g) = sg();
    w.mcast_drop_next(1, move |p| from_access(p, 0) && p.kind.prunes((s, g)));
    w.attach(0, 0, LinkId::Site(0, 1));
    until(&mut w, pim::mali_ms() + 1000, "lost prune", |w| {
        w.mcast.iter().any(|p| p.dropped)
    });
    let lost_at = w.mcast.iter().find(|p| p.dropped).unwrap().t;
    assert!(w.router(RouterId::Access(0, 0)).mfc.is_empty());
    assert!(
        w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE),
        "the prune was lost"
    );
    // The last Join the old router sent is held for the join holdtime at most.
    let last_join = w
        .mcast
        .iter()
        .filter(|p| from_access(p, 0) && p.kind.joins((s, g)))
        .map(|p| p.t)
        .max()
        .unwrap();
    until(
        &mut w,
        pim::join_holdtime_ms() + 100,
        "old branch aged out",
        |w| !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE),
    );
    println!(
        "old branch gone {} ms after the lost Prune, {} ms after the last Join (holdtime {} ms)",
        w.now - lost_at,
        w.now - last_join,
        pim::join_holdtime_ms()
    );
    assert!(w.now - last_join <= pim::join_holdtime_ms() + 2 * w.cfg.site_latency_ms + 5);
    assert!(branch(&w, 1), "the new branch is untouched");
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
}

#[test]
fn a_join_overtaken_by_the_later_prune_ages_out() {
    let mut w = registered();
    let (s, g) = sg();
    // From now on the old router's Joins take 3.5 s, longer than the refresh period: the
    // last Join it sends before its Prune arrives after the Prune.
    w.mcast_script(1000, Fate::Delay(3500), move |p| {
        from_access(p, 0) && p.kind.joins((s, g))
    });
    w.attach(0, 0, LinkId::Site(0, 1));
    until(&mut w, pim::mali_ms() + 1000, "prune sent", |w| {
        w.mcast
            .iter()
            .any(|p| from_access(p, 0) && p.kind.prunes((s, g)))
    });
    let prune_at = w
        .mcast
        .iter()
        .find(|p| from_access(p, 0) && p.kind.prunes((s, g)))
        .unwrap()
        .t;
    let last_join = w
        .mcast
        .iter()
        .filter(|p| from_access(p, 0) && p.kind.joins((s, g)))
        .map(|p| p.t)
        .max()
        .unwrap();
    assert!(
        last_join < prune_at && last_join + 3500 > prune_at,
        "reordered"
    );
    until(&mut w, 1000, "the prune takes effect", |w| {
        !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE)
    });
    // The late Join re-creates the branch the Prune removed...
    until(&mut w, 4000, "late join re-creates the branch", |w| {
        w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE)
    });
    // ...for one holdtime at most: nothing refreshes it.
    until(
        &mut w,
        pim::join_holdtime_ms() + 100,
        "late branch aged out",
        |w| !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE),
    );
    println!(
        "re-created branch gone {} ms after the late Join was sent (holdtime {} ms)",
        w.now - last_join,
        pim::join_holdtime_ms()
    );
    assert!(
        w.now - last_join > pim::join_holdtime_ms(),
        "the late Join was not held"
    );
    assert!(branch(&w, 1));
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
}

#[test]
fn leaving_for_another_site_prunes_the_whole_tree() {
    let mut w = registered();
    let (s, g) = sg();
    w.attach(0, 0, LinkId::Site(1, 0));
    run_until_settled(&mut w, 0, 5000);
    let g1 = (topo::mma_addr(1), g);
    until(&mut w, 2000, "branch in site 1", |w| {
        w.router(RouterId::Site(1))
            .forwards(g1.0, g1.1, DOWN_IF_BASE)
    });
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
    assert!(!w.router(RouterId::Site(0)).mfc.contains_key(&(s, g)));
    assert!(w.router(RouterId::Access(0, 0)).mfc.is_empty());
    // No Binding Update was lost in this, so the BUs are those of one inter-site move.
    assert!(w
        .packets
        .iter()
        .all(|p| !matches!(p.kind, MhKind::Bu { .. }) || !p.dropped));
}

#[test]
fn the_multicast_invariants_catch_missing_and_stray_branches() {
    let mut w = registered();
    let (s, g) = sg();
    let ar = w.router_index(RouterId::Access(0, 0));
    let entry = w.routers[ar].mfc.remove(&(s, g)).unwrap();
    let e = pim::mcast_delivery(&w).unwrap_err();
    assert!(e.contains("access router does not forward"), "{e}");
    w.routers[ar].mfc.insert((s, g), entry);
    pim::mcast_check(&w).unwrap();
    // A branch to the other link, where nobody listens.
    let other = w.router_index(RouterId::Access(0, 1));
    w.routers[other]
        .mfc
        .insert((s, g), (pim::UP_IF, vec![ACCESS_IF]));
    let e = pim::mcast_no_stale(&w).unwrap_err();
    assert!(e.contains("Access(0, 1)"), "{e}");
    w.routers[other].mfc.clear();
    let sr = w.router_index(RouterId::Site(0));
    w.routers[sr]
        .mfc
        .get_mut(&(s, g))
        .unwrap()
        .1
        .push(DOWN_IF_BASE + 1);
    let e = pim::mcast_no_stale(&w).unwrap_err();
    assert!(e.contains("Site(0)"), "{e}");
}

#[test]
fn a_prune_overtaken_by_the_next_join_is_undone_by_the_join_refresh() {
    let mut w = registered();
    let (s, g) = sg();
    // The old router's Prunes take 2 s (its Joins are refreshed every 3 s).
    w.mcast_script(1000, Fate::Delay(2000), move |p| {
        from_access(p, 0) && p.kind.prunes((s, g))
    });
    w.attach(0, 0, LinkId::Site(0, 1));
    until(&mut w, pim::mali_ms() + 1000, "prune sent", |w| {
        w.mcast
            .iter()
            .any(|p| from_access(p, 0) && p.kind.prunes((s, g)))
    });
    // The terminal comes straight back: its report makes the router join again, and that
    // Join reaches the site router before the Prune sent ahead of it.
    w.attach(0, 0, LinkId::Site(0, 0));
    let back = w.now;
    until(&mut w, 100, "join after coming back", |w| branch(w, 0));
    let cut = until(&mut w, 4000, "the late prune cuts the branch", |w| {
        !w.router(RouterId::Site(0)).forwards(s, g, DOWN_IF_BASE)
    });
    println!(
        "late Prune cut the branch {} ms after the return",
        w.now - back
    );
    let repaired = until(&mut w, 3100, "the periodic Join restores it", |w| {
        branch(w, 0)
    });
    println!("branch restored {repaired} ms after the cut");
    let period = pim::pim_settings().join_prune_period().as_millis() as u64;
    assert!(repaired <= period + 2 * w.cfg.site_latency_ms + 5);
    assert!(cut > 0);
    run(&mut w, pim::quiet_ms());
    pim::mcast_check(&w).unwrap();
}
