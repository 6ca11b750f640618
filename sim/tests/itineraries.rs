//! 1,000 random itineraries (seeded: a failure names its seed, and `SIM_SEED=n` reruns just
//! that one): two terminals moving among the links of three sites and the home link, by
//! layer-2 roaming, make-before-break with the second radio, or dropping off; signalling
//! losses, duplicates and reordering; kernel refusals at every node. The instant invariants
//! (no kernel object without an owner, exactly one delivery path per registered terminal) are
//! checked after every event; at the end of each itinerary, with the network healed, every
//! attached terminal must be registered again, and once everything left or expired nothing
//! but the constant objects may remain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::time::Instant;

use mipcast_proto::KObject;
use mipcast_sim::invariants::{self, Settled};
use mipcast_sim::pim;
use mipcast_sim::rng::Rng;
use mipcast_sim::world::{Impairments, MhKind};
use mipcast_sim::{LinkId, NodeId, Op, SimConfig, Target, Verb, World};

const ITINERARIES: u64 = 1000;
const STEPS: usize = 8;

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        sites: 3,
        links_per_site: 2,
        terminals: 2,
        lifetime_s: 20,
        grace_s: 3,
        ra_interval_ms: 1000,
        ..SimConfig::default()
    }
}

fn random_link(rng: &mut Rng, cfg: &SimConfig) -> LinkId {
    // One in five moves goes home.
    if rng.chance(200) {
        LinkId::Home
    } else {
        LinkId::Site(
            rng.below(cfg.sites as u64) as usize,
            rng.below(cfg.links_per_site as u64) as usize,
        )
    }
}

fn random_refusal(rng: &mut Rng, w: &mut World) {
    // One in five refusals hits a pim-lite router's MFC installs (retried at its next RPF
    // check).
    if rng.chance(200) {
        let r = rng.below(w.routers.len() as u64) as usize;
        let n = 1 + rng.below(2) as usize;
        w.routers[r]
            .kernel
            .refuse_next(n, 105, |op: &Op| op.verb != Verb::Delete);
        return;
    }
    let node = match rng.below(3) {
        0 => NodeId::Ha,
        1 => NodeId::Mma(rng.below(w.cfg.sites as u64) as usize),
        _ => NodeId::Mn(rng.below(w.cfg.terminals as u64) as usize),
    };
    let n = 1 + rng.below(2) as usize;
    // Any change, adds and replaces more often (they are what revocations follow from).
    // Deletes are refused at the home agent and the mobile node, whose retries the invariants
    // follow (the MMA retries its refused deletes too: mma/tests/core.rs).
    let deletes_retried = !matches!(node, NodeId::Mma(_));
    match rng.below(4) {
        0 => w.refuse_next(node, n, |op: &Op| op.verb != Verb::Delete),
        3 if deletes_retried => w.refuse_next(node, n, |op: &Op| op.verb == Verb::Delete),
        3 => w.refuse_next(node, n, |op: &Op| op.verb != Verb::Delete),
        1 => w.refuse_next(node, n, |op: &Op| {
            op.verb != Verb::Delete
                && matches!(op.target, Target::Object(KObject::EncapRoute { .. }))
        }),
        _ => w.refuse_next(node, n, |op: &Op| {
            op.verb != Verb::Delete && !matches!(op.target, Target::Object(_))
        }),
    }
}

fn checked_run(w: &mut World, ms: u64, seed: u64, step: usize) {
    let end = w.now + ms;
    w.run_until_with(end, &mut |w| {
        if let Err(e) = invariants::check(w) {
            panic!("seed {seed}, step {step}, t={} ms: {e}", w.now);
        }
    });
}

/// Whether terminal `t` saw a registration refused for good (a status other than 130, which
/// it retries after a back-off): it is then not expected to settle.
fn rejected(w: &World, t: usize) -> bool {
    // 133 refuses the deregistration of a binding the home agent no longer has: the goal of a
    // deregistration, and the terminal does not need to do anything after it.
    w.rejections
        .iter()
        .any(|(_, m, outcome)| *m == t && outcome != "rejected_133" && outcome != "rejected_130")
}

#[derive(Default, Debug)]
struct Tally {
    steps: usize,
    settled: usize,
    stuck_after_rejection: usize,
    events: u64,
    stale_timeouts: u64,
    bus: usize,
    router_timeouts: u64,
    mcast: usize,
    rejections: std::collections::BTreeMap<String, usize>,
}

fn itinerary(seed: u64, tally: &mut Tally) {
    let cfg = config(seed);
    let mut w = World::new(cfg.clone());
    let mut rng = Rng::new(seed ^ 0x5eed);
    for t in 0..cfg.terminals {
        let l = random_link(&mut rng, &cfg);
        w.attach(t, 0, l);
    }
    for step in 0..STEPS {
        tally.steps += 1;
        w.impair = Impairments::default();
        if rng.chance(250) {
            w.impair = Impairments {
                loss: 100 + rng.below(300) as u32,
                duplicate: rng.below(200) as u32,
                jitter_ms: rng.below(40),
            };
        }
        if rng.chance(250) {
            random_refusal(&mut rng, &mut w);
        }
        let t = rng.below(cfg.terminals as u64) as usize;
        let on: Vec<usize> = (0..2).filter(|r| w.mns[t].radios[*r].is_some()).collect();
        match rng.below(10) {
            // Layer-2 roam of an attached radio (or attach a radio if none is).
            0..=4 => {
                let r = on.first().copied().unwrap_or(0);
                let l = random_link(&mut rng, &cfg);
                w.attach(t, r, l);
            }
            // Make before break: the other radio comes up elsewhere, then this one goes.
            5..=7 => {
                let r = on.first().copied().unwrap_or(0);
                let l = random_link(&mut rng, &cfg);
                w.attach(t, 1 - r, l);
                checked_run(&mut w, 200 + rng.below(1500), seed, step);
                w.detach(t, r);
            }
            // Drop off the network for a while, then come back somewhere.
            _ => {
                for r in on {
                    w.detach(t, r);
                }
                checked_run(&mut w, rng.below(5000), seed, step);
                let l = random_link(&mut rng, &cfg);
                w.attach(t, 0, l);
            }
        }
        checked_run(&mut w, 100 + rng.below(3000), seed, step);
    }
    // Heal the network: every attached terminal must end registered (or home).
    w.impair = Impairments::default();
    for node in [
        NodeId::Ha,
        NodeId::Mma(0),
        NodeId::Mma(1),
        NodeId::Mma(2),
        NodeId::Mn(0),
        NodeId::Mn(1),
    ] {
        w.kernel_mut(node).faults.clear();
    }
    for r in &mut w.routers {
        r.kernel.faults.clear();
    }
    w.drops.clear();
    let start = w.now;
    loop {
        let pending: Vec<usize> = (0..cfg.terminals)
            .filter(|&t| invariants::settled(&w, t) == Settled::NotSettled && !rejected(&w, t))
            .collect();
        if pending.is_empty() {
            break;
        }
        if w.now - start >= 95_000 && std::env::var_os("SIM_TRACE").is_some() {
            for p in &w.packets {
                println!("{p:?}");
            }
        }
        // 32 s: a registration that gave up retries after 60 s; allow one such round.
        assert!(
            w.now - start < 95_000,
            "seed {seed}: terminals {pending:?} not registered {} ms after healing: {}",
            w.now - start,
            invariants::describe(&w, NodeId::Mn(pending[0]))
        );
        checked_run(&mut w, 100, seed, STEPS);
    }
    for t in 0..cfg.terminals {
        if invariants::settled(&w, t) == Settled::NotSettled {
            tally.stuck_after_rejection += 1;
        } else {
            tally.settled += 1;
        }
    }
    // Once the routers' timers have run their course without movement, every settled
    // terminal's link gets its group over one branch and no branch is left without a
    // listener or a downstream join.
    checked_run(&mut w, pim::quiet_ms(), seed, STEPS);
    if let Err(e) = pim::mcast_check(&w) {
        panic!(
            "seed {seed}: multicast last hop after {} ms quiet: {e}",
            pim::quiet_ms()
        );
    }
    // Everything leaves: half the time by going home (deregistration), else by vanishing
    // (expiry). Then nothing but the constant objects may be left.
    let home = rng.chance(500);
    for t in 0..cfg.terminals {
        for r in 0..2 {
            w.detach(t, r);
        }
        if home {
            w.attach(t, 0, LinkId::Home);
        }
    }
    let lifetime_ms = u64::from(cfg.lifetime_s) * 1000;
    checked_run(&mut w, lifetime_ms + 10_000, seed, STEPS + 1);
    // A terminal stuck after a revocation at home may still hold an MMA binding it refreshes?
    // No: once home it deregisters everything it knows of, and what it forgot expires.
    if let Err(e) = invariants::pristine(&w) {
        panic!("seed {seed}: not clean after everything left: {e}");
    }
    assert!(lifetime_ms + 10_000 >= pim::quiet_ms());
    if let Some(r) = w.routers.iter().find(|r| !r.mfc.is_empty()) {
        panic!(
            "seed {seed}: router {:?} still forwards {:?} after everything left",
            r.id, r.mfc
        );
    }
    for (_, _, outcome) in &w.rejections {
        *tally.rejections.entry(outcome.clone()).or_default() += 1;
    }
    tally.events += w.stats.events;
    tally.stale_timeouts += w.stats.stale_timeouts;
    tally.router_timeouts += w.stats.router_timeouts;
    tally.mcast += w.mcast.len();
    tally.bus += w
        .packets
        .iter()
        .filter(|p| matches!(p.kind, MhKind::Bu { .. }))
        .count();
}

#[test]
fn random_itineraries_keep_the_invariants() {
    let started = Instant::now();
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (1..=ITINERARIES).collect(),
    };
    let mut tally = Tally::default();
    for seed in &seeds {
        itinerary(*seed, &mut tally);
    }
    println!(
        "{} itineraries, {} steps, {} events, {} BUs in {:.1} s; end states: {} registered/home, {} stuck after a refusal for good",
        seeds.len(),
        tally.steps,
        tally.events,
        tally.bus,
        started.elapsed().as_secs_f64(),
        tally.settled,
        tally.stuck_after_rejection
    );
    println!("registrations rejected, by outcome: {:?}", tally.rejections);
    println!(
        "pim-lite routers: {} timeouts handled, {} MLD/PIM messages",
        tally.router_timeouts, tally.mcast
    );
    assert_eq!(
        tally.stale_timeouts, 0,
        "a core asked for a timeout it had just handled"
    );
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut w = World::new(config(seed));
        w.impair = Impairments {
            loss: 200,
            duplicate: 100,
            jitter_ms: 20,
        };
        w.attach(0, 0, LinkId::Site(0, 0));
        w.attach(1, 0, LinkId::Site(1, 1));
        w.run_for(5000);
        w.attach(0, 0, LinkId::Site(2, 0));
        w.attach(1, 0, LinkId::Home);
        w.run_for(10_000);
        serde_json::to_string(&w.packets).unwrap()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}
