//! Context transfer between MMAs (issue 12 §3) on the real cores in virtual time: the new MMA
//! asks the old one for the terminal's context as soon as it accepts the registration, and has
//! it one WAN round trip later.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use mipcast_sim::invariants::{self, run_checked as run, run_until_settled as until_settled};
use mipcast_sim::topology as topo;
use mipcast_sim::world::{MhKind, Packet};
use mipcast_sim::{LinkId, NodeId, SimConfig, World};

/// Terminal 0 registered in site 0, then moved to site 1.
fn moved(prepare: impl FnOnce(&mut World)) -> World {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    prepare(&mut w);
    w.attach(0, 0, LinkId::Site(1, 0));
    until_settled(&mut w, 0, 5000);
    w
}

fn between(w: &World, from: usize, to: usize) -> Vec<Packet> {
    w.packets
        .iter()
        .filter(|p| p.from == NodeId::Mma(from) && p.dst == topo::mma_addr(to))
        .cloned()
        .collect()
}

#[test]
fn inter_site_move_transfers_the_context_in_one_round_trip() {
    let mut w = moved(|_| {});
    let cfg = SimConfig::default();
    // Exactly one request (MMA 1 -> MMA 0) and one reply, one WAN round trip apart.
    let requests = between(&w, 1, 0);
    let replies = between(&w, 0, 1);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let (req, rep) = (&requests[0], &replies[0]);
    assert!(matches!(
        req.kind,
        MhKind::Bu {
            lifetime: 0,
            home: false,
            ..
        }
    ));
    let MhKind::Bu { seq, .. } = req.kind else {
        unreachable!()
    };
    assert_eq!(rep.kind, MhKind::Back { seq, status: 0 });
    assert_eq!(req.delivered_to, Some(NodeId::Mma(0)));
    assert_eq!(rep.delivered_to, Some(NodeId::Mma(1)));
    // The request leaves with the terminal's acknowledgement, the reply as the request lands.
    let back = w
        .packets
        .iter()
        .find(|p| {
            p.from == NodeId::Mma(1)
                && p.dst == topo::onlink(0, 0, topo::site_link_prefix(1, 0))
                && matches!(p.kind, MhKind::Back { status: 0, .. })
        })
        .unwrap();
    assert_eq!(req.t, back.t, "requested at once");
    assert_eq!(rep.t - req.t, cfg.wan_latency_ms, "answered on arrival");
    // The new MMA shows the context it received, one round trip after asking.
    let status = w.mmas[1].core.context_status();
    assert_eq!(status.len(), 1, "{status:?}");
    let c = &status[0];
    assert_eq!(
        (c.hoa, c.from, c.state),
        (topo::hoa(0), topo::mma_addr(0), "received")
    );
    assert_eq!(c.group, Some(topo::group(0)));
    assert_eq!(c.rtt_ms, Some(2 * cfg.wan_latency_ms));
    assert_eq!(c.transmissions, 1);
    // The old MMA still forwards for its grace period, as without context transfer.
    assert_eq!(w.mmas[0].core.terminals().count(), 1);
    run(&mut w, 4500);
    assert_eq!(w.mmas[0].core.terminals().count(), 0);
    assert_eq!(
        between(&w, 1, 0).len(),
        1,
        "no retransmission after the reply"
    );
    invariants::check(&w).unwrap();
}

#[test]
fn a_lost_context_request_is_sent_again() {
    let mut w = moved(|w| {
        w.drop_next(1, |p| {
            p.from == NodeId::Mma(1) && p.dst == topo::mma_addr(0)
        })
    });
    run(&mut w, 2000);
    let requests = between(&w, 1, 0);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests[0].dropped);
    assert_eq!(requests[1].t - requests[0].t, 1000);
    let c = &w.mmas[1].core.context_status()[0];
    assert_eq!((c.state, c.transmissions), ("received", 2));
    invariants::check(&w).unwrap();
}

#[test]
fn the_first_registration_asks_no_one() {
    let mut w = World::new(SimConfig::default());
    w.attach(0, 0, LinkId::Site(0, 0));
    until_settled(&mut w, 0, 5000);
    assert!(between(&w, 0, 1).is_empty());
    assert!(w.mmas[0].core.context_status().is_empty());
}
