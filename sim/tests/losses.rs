//! Lost, duplicated and reordered signalling: recovery by retransmission (RFC 6275 §11.8:
//! first registrations time out after 1.5 s, then the timeout doubles), within the bound each
//! test states. Observed times (virtual ms) are in the comments; the assertions allow for the
//! 20 ms WAN and 2 ms site latencies on top.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_sim::invariants::{self, run_checked as run, run_until_settled as until_settled};
use mipcast_sim::topology as topo;
use mipcast_sim::world::{Impairments, MhKind};
use mipcast_sim::{LinkId, Packet, SimConfig, World};

fn bu_to(dst: std::net::Ipv6Addr) -> impl Fn(&Packet) -> bool {
    move |p| p.dst == dst && matches!(p.kind, MhKind::Bu { .. })
}

fn back_from(src: std::net::Ipv6Addr) -> impl Fn(&Packet) -> bool {
    move |p| p.src == src && matches!(p.kind, MhKind::Back { .. })
}

/// Registration in site 0 with the first `n` messages matching `drop` lost.
fn register_losing(n: usize, drop: impl Fn(&Packet) -> bool + 'static) -> (World, u64) {
    let mut w = World::new(SimConfig::default());
    w.drop_next(n, drop);
    w.attach(0, 0, LinkId::Site(0, 0));
    let took = until_settled(&mut w, 0, 40_000);
    assert!(w.drops.is_empty(), "the loss was not exercised");
    assert!(w.packets.iter().filter(|p| p.dropped).count() >= n);
    (w, took)
}

#[test]
fn lossless_registration_takes_two_round_trips() {
    let (_, took) = register_losing(0, |_| false);
    // Observed: 50 ms (RS→RA 2 ms, MMA round trip 4 ms, HA round trip 40 ms, ticks of 5 ms).
    assert!(took <= 60, "{took}");
}

#[test]
fn lost_bu_to_the_mma_is_retransmitted() {
    let (_, took) = register_losing(1, bu_to(topo::mma_addr(0)));
    println!("BU to MMA lost: registered after {took} ms");
    // Observed: 1545 ms (retransmission after the 1.5 s first-registration timeout).
    assert!((1500..=1600).contains(&took), "{took}");
}

#[test]
fn lost_back_from_the_mma_is_recovered() {
    let (_, took) = register_losing(1, back_from(topo::mma_addr(0)));
    println!("BAck from MMA lost: registered after {took} ms");
    // Observed: 1545 ms; the MMA accepts the retransmission (new sequence number) as a refresh.
    assert!((1500..=1600).contains(&took), "{took}");
}

#[test]
fn lost_bu_to_the_home_agent_is_retransmitted() {
    let (_, took) = register_losing(1, bu_to(topo::ha_addr()));
    println!("BU to HA lost: registered after {took} ms");
    // Observed: 1545 ms.
    assert!((1500..=1600).contains(&took), "{took}");
}

#[test]
fn lost_back_from_the_home_agent_is_recovered() {
    let (_, took) = register_losing(1, back_from(topo::ha_addr()));
    println!("BAck from HA lost: registered after {took} ms");
    // Observed: 1545 ms.
    assert!((1500..=1600).contains(&took), "{took}");
}

#[test]
fn three_lost_bus_back_off_exponentially() {
    let (_, took) = register_losing(3, bu_to(topo::mma_addr(0)));
    println!("3 BUs to MMA lost: registered after {took} ms");
    // Observed: 10545 ms = 1.5 + 3 + 6 s of back-off.
    assert!((10_500..=10_600).contains(&took), "{took}");
}

#[test]
fn lost_deregistration_to_the_old_mma_is_retransmitted() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    w.drop_next(1, bu_to(topo::mma_addr(0)));
    w.attach(0, 0, LinkId::Site(1, 0));
    let took = until_settled(&mut w, 0, 5000);
    assert!(w.drops.is_empty());
    println!("deregistration to the old MMA lost: settled after {took} ms");
    // The retransmitted deregistration reaches the old MMA, which forwards for its grace
    // period (4 s) and cleans up: nothing left 1.5 + 4 s later (observed: clean at +5.6 s).
    run(&mut w, 6000);
    assert!(
        w.mmas[0].kernel.is_pristine(),
        "{:?}",
        w.mmas[0].kernel.objects
    );
    invariants::check(&w).unwrap();
}

#[test]
fn lost_home_deregistration_ack_is_recovered() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    w.drop_next(1, back_from(topo::ha_addr()));
    w.attach(0, 0, LinkId::Home);
    let took = until_settled(&mut w, 0, 5000);
    println!("BAck of the home deregistration lost: home after {took} ms");
    // Observed: 1500 ms (the home RA, then a retransmission after 1.5 s... less the RA wait:
    // the timer runs from the first BU).
    assert!(took <= 2100, "{took}");
    assert!(w.ha.kernel.is_pristine());
}

#[test]
fn duplicated_and_reordered_signalling_is_harmless() {
    let mut w = World::new(SimConfig {
        seed: 7,
        ..SimConfig::default()
    });
    // Every message twice, each copy up to 30 ms late: copies overtake each other.
    w.impair = Impairments {
        loss: 0,
        duplicate: 1000,
        jitter_ms: 30,
    };
    w.attach(0, 0, LinkId::Site(0, 0));
    let first = until_settled(&mut w, 0, 5000);
    w.attach(0, 0, LinkId::Site(1, 1));
    let second = until_settled(&mut w, 0, 5000);
    w.attach(0, 1, LinkId::Site(1, 0));
    run(&mut w, 600);
    w.detach(0, 0);
    run(&mut w, 2000);
    w.attach(0, 1, LinkId::Home);
    let home = until_settled(&mut w, 0, 5000);
    println!("with duplicates and reordering: {first} / {second} / {home} ms");
    run(&mut w, 12_000);
    invariants::pristine(&w).unwrap();
    // Every BU arrived twice and each copy was answered, the second as a replay (144, RFC
    // 4285 timestamp not newer), which the terminal ignores once registered: the invariants
    // held after every event.
    let bus = w
        .packets
        .iter()
        .filter(|p| matches!(p.kind, MhKind::Bu { .. }))
        .count();
    let backs = w
        .packets
        .iter()
        .filter(|p| matches!(p.kind, MhKind::Back { .. }))
        .count();
    assert!(backs >= 2 * bus - 1, "{bus} BUs, {backs} BAcks");
    let statuses: std::collections::BTreeSet<u8> = w
        .packets
        .iter()
        .filter_map(|p| match p.kind {
            MhKind::Back { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert!(statuses.contains(&144), "{statuses:?}");
}

/// A BAck 144 (or 135) that answers an *older* BU is taken by the mobile node as a resync
/// request for the one outstanding: `Client::on_back` checks the sequence number only for
/// statuses below 128. Each costs a needless BU; the fourth exhausts `MAX_RESYNCS`, the
/// registration is dropped as rejected, and (with the defect of refusals.rs) the terminal
/// never registers. Found by the random itineraries (duplicated and lost signalling); here made
/// deterministic: four late copies of BU 1 reach the MMA while BU 2 waits for its answer.
#[test]
fn stale_replay_answers_do_not_kill_a_registration() {
    use mipcast_sim::world::Fate;
    let mut w = World::new(SimConfig::default());
    let mma = topo::mma_addr(0);
    w.script(1, Fate::Duplicate(vec![1600, 1610, 1620, 1630]), move |p| {
        p.dst == mma && matches!(p.kind, MhKind::Bu { seq: 1, .. })
    });
    w.drop_next(1, move |p| {
        p.src == mma && matches!(p.kind, MhKind::Back { seq: 1, status: 0 })
    });
    // The MMA's acceptances of the later BUs take 300 ms (a slow path): the late copies'
    // answers arrive while a BU is outstanding.
    w.script(10, Fate::Delay(300), move |p| {
        p.src == mma
            && matches!(
                p.kind,
                MhKind::Back {
                    seq: 2..,
                    status: 0
                }
            )
    });
    w.attach(0, 0, LinkId::Site(0, 0));
    let took = until_settled(&mut w, 0, 10_000);
    // Observed today: three needless resync BUs, then "rejected_144" and never registered.
    assert!(w.rejections.is_empty(), "{:?}", w.rejections);
    assert!(took < 2500, "{took}");
}
