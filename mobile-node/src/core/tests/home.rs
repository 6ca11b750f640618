//! Issue 11, home moves: make before break to and from the home link.
use super::*;

const HOME: &str = "2001:db8:99::";
const SITE1: &str = "2001:db8:10:2::";

fn native_uplink_route() -> KObject {
    KObject::GatewayRoute {
        dst: "::/0".parse().unwrap(),
        gateway: a("fe80::1"),
        oif: E1,
        table: 200,
    }
}

fn uplink_table_changes(acts: &[Action]) -> Vec<KernelChange> {
    kchanges(acts)
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                KernelChange::Install(
                    KObject::EncapRoute { table: 200, .. }
                        | KObject::GatewayRoute { table: 200, .. }
                ) | KernelChange::Remove(
                    KObject::EncapRoute { table: 200, .. }
                        | KObject::GatewayRoute { table: 200, .. }
                )
            )
        })
        .collect()
}

/// At home on e1, site 1 usable on e2; e1's quality falls: the move to the site with the
/// home link still up. Returns the move's actions.
fn leave_home_mbb(h: &mut H) -> Vec<Action> {
    h.up(E1);
    h.ra(E1, HOME, None);
    h.up(E2);
    h.ra(E2, SITE1, Some(mma1()));
    h.advance(2500);
    h.ra(E1, HOME, None);
    h.ra(E2, SITE1, Some(mma1()));
    assert_eq!(h.core.attachment(), Attach::Home { ifindex: E1 });
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(60),
    });
    assert_eq!(
        h.core.attachment(),
        Attach::Site {
            ifindex: E2,
            mma: mma1()
        }
    );
    acts
}

/// Leaving home, the home agent tunnels nothing and decapsulates nothing of ours until it has
/// the binding update: the uplink stays native out of the home link until its
/// acknowledgement, then moves to the reverse tunnel in place (one route replaced).
#[test]
fn leaving_home_the_uplink_stays_native_on_the_home_link_until_the_home_agent_accepts() {
    let mut h = H::new(Mode::Site);
    let acts = leave_home_mbb(&mut h);
    assert_eq!(
        uplink_table_changes(&acts),
        vec![KernelChange::Install(native_uplink_route())],
        "{:?}",
        kchanges(&acts)
    );
    let mma_bu = bus(&acts).remove(0);
    assert_eq!(mma_bu.peer, mma1());
    let acts = h.ack(&mma_bu, 0, Some(mma1()));
    assert!(
        uplink_table_changes(&acts).is_empty(),
        "the MMA accepted us, the home agent not yet: {:?}",
        kchanges(&acts)
    );
    let ha_bu = bus(&acts).into_iter().find(|b| b.peer == ha()).unwrap();
    let acts = h.ack(&ha_bu, 0, None);
    assert_eq!(
        uplink_table_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma1(), E2))],
        "replaced in place, not removed after: {:?}",
        kchanges(&acts)
    );
}

/// The first packets through the new site say the home agent moved, like its BAck.
#[test]
fn leaving_home_traffic_through_the_site_moves_the_uplink_too() {
    let mut h = H::new(Mode::Site);
    let acts = leave_home_mbb(&mut h);
    let mma_bu = bus(&acts).remove(0);
    h.ack(&mma_bu, 0, Some(mma1()));
    let acts = h.ev(Event::Delivered { ifindex: E2 });
    assert_eq!(
        uplink_table_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma1(), E2))]
    );
}

/// The home link going away ends the native uplink at once; without the home agent's answer
/// the overlap's timeout ends it.
#[test]
fn leaving_home_the_native_uplink_ends_with_the_home_link_or_the_overlap() {
    let mut h = H::new(Mode::Site);
    leave_home_mbb(&mut h);
    let acts = h.down(E1);
    assert_eq!(
        uplink_table_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma1(), E2))],
        "{:?}",
        kchanges(&acts)
    );

    let mut h = H::new(Mode::Site);
    leave_home_mbb(&mut h);
    let mut later = Vec::new();
    for _ in 0..9 {
        h.t += 100;
        later.extend(h.tick());
    }
    assert!(
        uplink_table_changes(&later).is_empty(),
        "within the overlap"
    );
    h.t += 150;
    assert_eq!(
        uplink_table_changes(&h.tick()),
        vec![KernelChange::Install(uplink_route(mma1(), E2))]
    );
}

/// Break before make leaving home: nothing to keep, the reverse tunnel at once (as before).
#[test]
fn leaving_home_with_the_home_link_down_uses_the_reverse_tunnel_at_once() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    h.ra(E1, HOME, None);
    h.up(E2);
    h.ra(E2, SITE1, Some(mma1()));
    let acts = h.down(E1);
    assert_eq!(
        uplink_table_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma1(), E2))]
    );
}

/// Coming home with the site's link still up: the home agent stops tunnelling at once, but
/// what it tunnelled before is still on its way down the site's tree; the site's membership
/// and decapsulation stay for the overlap, then go.
#[test]
fn coming_home_keeps_the_site_branch_for_the_overlap() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, HOME, None);
    h.advance(2500);
    h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    h.ra(E2, HOME, None);
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(60),
    });
    assert_eq!(handovers(&acts), vec![HandoverKind::Home]);
    let branch = Membership {
        ifindex: E1,
        group: group(),
        source: mma1(),
    };
    let decap = KObject::DecapRoute {
        local: group(),
        oif: E1,
        table: 100,
        inner_table: mipcast_proto::RT_TABLE_LOCAL,
    };
    let k = kchanges(&acts);
    assert!(!k.contains(&KernelChange::Leave(branch)), "{k:?}");
    assert!(!k.contains(&KernelChange::Remove(decap)), "{k:?}");
    // The deregistrations go at once all the same.
    let sent = bus(&acts);
    assert_eq!(
        sent.iter()
            .map(|b| (b.peer, b.lifetime_units))
            .collect::<Vec<_>>(),
        vec![(ha(), 0), (mma1(), 0)]
    );
    let mut later = Vec::new();
    for _ in 0..9 {
        h.t += 100;
        later.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
        later.extend(h.ra(E2, HOME, None));
    }
    assert!(!kchanges(&later).contains(&KernelChange::Leave(branch)));
    h.t += 150;
    let k = kchanges(&h.tick());
    assert!(k.contains(&KernelChange::Leave(branch)), "{k:?}");
    assert!(k.contains(&KernelChange::Remove(decap)), "{k:?}");
}

/// The nftables marking of the group follows the move's Binding Updates (it is slow and only
/// feeds the delivery counters); the changes the BUs need (address, routes, rules) precede
/// them.
#[test]
fn group_marking_follows_the_binding_updates_of_a_home_move() {
    let first_bu = |acts: &[Action]| {
        acts.iter()
            .position(|x| matches!(x, Action::SendBu(_)))
            .unwrap()
    };
    let at = |acts: &[Action], c: &KernelChange| {
        acts.iter()
            .position(|x| matches!(x, Action::Kernel(k) if k == c))
            .unwrap()
    };
    // Coming home (break before make): the deregistration before the unmarking, after the
    // home address is on the home link and the uplink rule is gone.
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, HOME, None);
    let acts = h.down(E1);
    assert_eq!(handovers(&acts), vec![HandoverKind::Home]);
    let bu = first_bu(&acts);
    assert!(at(&acts, &KernelChange::UnmarkGroup(group())) > bu);
    let hoa_on_link = KernelChange::AddAddress(Address {
        ifindex: E2,
        addr: hoa(),
        prefix_len: 64,
    });
    assert!(at(&acts, &hoa_on_link) < bu);
    let uplink_rule = KernelChange::Remove(KObject::Rule {
        pref: 20,
        from: Some(Ipv6Network::from(hoa())),
        to: None,
        ipproto: None,
        table: 200,
    });
    assert!(at(&acts, &uplink_rule) < bu);
    // Leaving home: the MMA registration after the join; the marking only once the MMA
    // accepted us, after the BU to the home agent.
    let mut h = H::new(Mode::Site);
    h.up(E1);
    h.ra(E1, HOME, None);
    h.up(E2);
    h.ra(E2, SITE1, Some(mma1()));
    let acts = h.down(E1);
    let bu = first_bu(&acts);
    let join = KernelChange::Join(Membership {
        ifindex: E2,
        group: group(),
        source: mma1(),
    });
    assert!(at(&acts, &join) < bu);
    assert!(!kchanges(&acts).contains(&KernelChange::MarkGroup(group())));
    let mma_bu = bus(&acts).remove(0);
    let acts = h.ack(&mma_bu, 0, Some(mma1()));
    let ha_bu = first_bu(&acts);
    assert_eq!(bus(&acts)[0].peer, ha());
    assert!(at(&acts, &KernelChange::MarkGroup(group())) > ha_bu);
}

/// Between sites the group stays marked throughout (no unmark and mark again).
#[test]
fn an_inter_site_move_keeps_the_group_marked() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    let mut acts = h.down(E1);
    let mma_bu = bus(&acts).remove(0);
    acts.extend(h.ack(&mma_bu, 0, Some(mma2())));
    assert!(!kchanges(&acts)
        .iter()
        .any(|c| matches!(c, KernelChange::MarkGroup(_) | KernelChange::UnmarkGroup(_))));
}
