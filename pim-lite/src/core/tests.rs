//! State-machine tests: a fake clock (plain `Millis` values), packets in as bytes, actions out.
use std::net::Ipv6Addr;
use std::path::Path;

use mipcast_wire::mld::{self, GroupRecord, MldRepr, QueryV2, RecordType};
use mipcast_wire::nd::NdRepr;
use mipcast_wire::pim::{
    EncodedGroup, EncodedSource, HelloOption, JoinPrune, JoinPruneGroup, PimRepr,
};

use super::settings::Settings;
use super::*;
use crate::config::Config;

const ACC: u32 = 1;
const CORE0: u32 = 2;
const CORE1: u32 = 3;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn s() -> Ipv6Addr {
    a("2001:db8:1::1")
}
fn g() -> Ipv6Addr {
    a("ff35::200:ff:fe00:100")
}
fn sg() -> Sg {
    Sg {
        source: s(),
        group: g(),
    }
}
fn our_ll(ifindex: u32) -> Ipv6Addr {
    a(&format!("fe80::{ifindex}:1"))
}
const HOST: &str = "fe80::99";

const CONFIG: &str = "
interfaces:
  - name: acc
    role: access
    mld:
      query_interval_secs: 20
      query_response_interval_ms: 2000
      last_listener_query_interval_ms: 500
    ra:
      max_interval_ms: 60000
      solicited_delay_max_ms: 50
      prefixes: [ { prefix: \"2001:db8:21::/64\" } ]
      map: { address: \"2001:db8:1::1\", preference: 12 }
  - { name: core0, role: core }
  - { name: core1, role: core }
";

fn config(text: &str) -> Config {
    mipcast_daemon::config::load_str(Path::new("test.yaml"), text).unwrap()
}

fn addrs_of(ifindex: u32) -> IfaceAddrs {
    IfaceAddrs {
        link_local: Some(our_ll(ifindex)),
        globals: vec![a(&format!("2001:db8:{ifindex}::1"))],
        mac: Some([2, 0, 0, 0, 0, ifindex as u8]),
    }
}

/// A router as the shell creates it: nothing has run yet, not even the start-up tick.
fn unstarted(text: &str, now: u64, seed: u64) -> Router {
    let cfg = config(text);
    let ifaces = [ACC, CORE0, CORE1]
        .into_iter()
        .map(|i| (i, addrs_of(i)))
        .collect();
    Router::new(&Settings::from(&cfg), ifaces, Millis(now), seed)
}

fn router_with(text: &str) -> Router {
    let mut r = unstarted(text, 0, 7);
    r.tick(Millis(0));
    r.take_actions();
    r
}

fn router() -> Router {
    router_with(CONFIG)
}

fn rx(ifindex: u32, source: Ipv6Addr, hop_limit: u8) -> Rx {
    Rx {
        ifindex,
        source,
        destination: ALL_NODES,
        hop_limit,
    }
}

fn bytes_of_mld(m: &MldRepr) -> Vec<u8> {
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b).unwrap();
    b
}

fn bytes_of_pim(m: &PimRepr) -> Vec<u8> {
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b).unwrap();
    b
}

fn report(r: &mut Router, now: u64, t: RecordType, sources: &[Ipv6Addr]) {
    let m = MldRepr::ReportV2 {
        records: vec![GroupRecord {
            record_type: t,
            multicast_address: g(),
            sources: sources.to_vec(),
        }],
    };
    r.handle_mld(Millis(now), rx(ACC, a(HOST), 1), &bytes_of_mld(&m));
}

fn hello(
    r: &mut Router,
    now: u64,
    ifindex: u32,
    from: Ipv6Addr,
    gen_id: u32,
    holdtime: u16,
    addrs: &[Ipv6Addr],
) {
    let mut options = vec![
        HelloOption::Holdtime(holdtime),
        HelloOption::GenerationId(gen_id),
    ];
    if !addrs.is_empty() {
        options.push(HelloOption::AddressList(addrs.to_vec()));
    }
    r.handle_pim(
        Millis(now),
        rx(ifindex, from, 1),
        &bytes_of_pim(&PimRepr::Hello { options }),
    );
}

fn join_prune(
    r: &mut Router,
    now: u64,
    ifindex: u32,
    from: Ipv6Addr,
    upstream: Ipv6Addr,
    join: bool,
    holdtime: u16,
) {
    let src = vec![EncodedSource::new(s())];
    let m = PimRepr::JoinPrune(JoinPrune {
        upstream_neighbor: upstream,
        holdtime,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::new(g()),
            joins: if join { src.clone() } else { vec![] },
            prunes: if join { vec![] } else { src },
        }],
    });
    r.handle_pim(Millis(now), rx(ifindex, from, 1), &bytes_of_pim(&m));
}

/// Runs every timer up to and including `until`, step by step, collecting actions.
fn run_until(r: &mut Router, from: u64, until: u64) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    let mut now = from;
    loop {
        r.tick(Millis(now));
        out.extend(r.take_actions().into_iter().map(|act| (now, act)));
        let next = r.next_deadline().0.max(now + 1);
        if next > until {
            return out;
        }
        now = next;
    }
}

/// Join/Prune messages among `actions`: (ifindex, upstream neighbour, joins, prunes).
fn jps(actions: &[Action]) -> Vec<(u32, Ipv6Addr, Vec<Sg>, Vec<Sg>)> {
    actions
        .iter()
        .filter_map(|act| match act {
            Action::Send(p) if p.proto == Proto::Pim => match PimRepr::parse(&p.bytes).unwrap() {
                PimRepr::JoinPrune(jp) => {
                    let (j, pr, _) = pim::entries(&jp);
                    Some((p.ifindex, jp.upstream_neighbor, j, pr))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn queries(actions: &[Action]) -> Vec<(Ipv6Addr, QueryV2)> {
    actions
        .iter()
        .filter_map(|act| match act {
            Action::Send(p) if p.proto == Proto::Mld => match MldRepr::parse(&p.bytes).unwrap() {
                MldRepr::QueryV2(q) => Some((p.destination, q)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Forwarding entries installed (negative entries, with no outgoing interface, are removals:
/// see [`mfc_dels`]).
fn mfc_adds(actions: &[Action]) -> Vec<(u32, Vec<u32>)> {
    actions
        .iter()
        .filter_map(|act| match act {
            Action::MfcAdd { iif, oifs, .. } if !oifs.is_empty() => Some((*iif, oifs.clone())),
            _ => None,
        })
        .collect()
}

/// Entries that stop forwarding: deleted, or replaced by a negative entry (see `hold`).
fn mfc_dels(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|act| match act {
            Action::MfcDel { .. } => true,
            Action::MfcAdd { oifs, .. } => oifs.is_empty(),
            _ => false,
        })
        .count()
}

fn acts(v: &[(u64, Action)]) -> Vec<Action> {
    v.iter().map(|(_, act)| act.clone()).collect()
}

/// A listener for (S,G) on the access link with S reached through `n0` on core0.
fn joined_upstream(r: &mut Router, n0: Ipv6Addr) -> Vec<Action> {
    hello(r, 10, CORE0, n0, 1, 105, &[a("2001:db8:99::1")]);
    r.take_actions();
    report(r, 20, RecordType::AllowNewSources, &[s()]);
    let first = r.take_actions();
    assert_eq!(
        first,
        vec![Action::ResolveRpf(s())],
        "RPF is looked up before anything else"
    );
    r.rpf_resolved(
        Millis(25),
        s(),
        Some(RpfRoute {
            ifindex: CORE0,
            gateway: Some(a("2001:db8:99::1")),
        }),
    );
    r.take_actions()
}

#[test]
fn report_makes_a_listener_that_joins_installs_and_expires() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    let out = joined_upstream(&mut r, n0);
    // The gateway is the neighbour's global address, known from its Hello address list.
    assert_eq!(jps(&out), vec![(CORE0, n0, vec![sg()], vec![])]);
    assert_eq!(mfc_adds(&out), vec![(CORE0, vec![ACC])]);
    assert!(matches!(
        out.iter().find(|a| matches!(a, Action::MfcAdd { .. })),
        Some(Action::MfcAdd {
            interest_since: Some(Millis(20)),
            ..
        })
    ));

    // MALI = 2 × 20 s + 2 s: no refresh, so the listener goes at 42.020 s, not before.
    let before = run_until(&mut r, 26, 42_019);
    assert_eq!(mfc_dels(&acts(&before)), 0);
    // Periodic Joins refresh the upstream state every 60 s... none due yet; general queries
    // went out (the querier keeps asking).
    assert!(queries(&acts(&before))
        .iter()
        .any(|(d, q)| *d == ALL_NODES && q.multicast_address.is_unspecified()));
    let after = run_until(&mut r, 42_019, 42_020);
    let after = acts(&after);
    assert_eq!(mfc_dels(&after), 1, "{after:?}");
    assert_eq!(
        jps(&after),
        vec![(CORE0, n0, vec![], vec![sg()])],
        "Prune when interest ends"
    );
    assert_eq!(r.sg_count(), 0);
}

#[test]
fn block_sends_source_specific_queries_then_times_the_source_out() {
    let mut r = router();
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::BlockOldSources, &[s()]);
    let out = r.take_actions();
    let q = queries(&out);
    assert_eq!(q.len(), 1, "{out:?}");
    assert_eq!(q[0].0, g(), "sent to the group");
    assert_eq!(
        (q[0].1.multicast_address, q[0].1.sources.clone()),
        (g(), vec![s()])
    );
    assert_eq!(q[0].1.max_response_delay_ms(), 500, "max response = LLQI");
    assert_eq!(
        mfc_dels(&out),
        0,
        "not removed before the last listener query time"
    );
    // LLQC = robustness = 2: one retransmission after LLQI, removal at LLQT = 1 s.
    let later = run_until(&mut r, 1001, 1999);
    assert_eq!(
        queries(&acts(&later))
            .iter()
            .filter(|(d, _)| *d == g())
            .count(),
        1
    );
    assert_eq!(mfc_dels(&acts(&later)), 0);
    let gone = acts(&run_until(&mut r, 1999, 2000));
    assert_eq!(mfc_dels(&gone), 1, "{gone:?}");
}

#[test]
fn a_report_during_the_last_listener_query_keeps_the_source() {
    let mut r = router();
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::ChangeToInclude, &[]);
    assert_eq!(
        queries(&r.take_actions()).len(),
        1,
        "TO_IN {{}} queries the dropped source"
    );
    report(&mut r, 1200, RecordType::ModeIsInclude, &[s()]);
    let out = acts(&run_until(&mut r, 1201, 5000));
    assert_eq!(mfc_dels(&out), 0, "{out:?}");
    assert!(
        queries(&out).iter().all(|(d, _)| *d != g()),
        "no more specific queries once answered"
    );
}

#[test]
fn fast_leave_drops_the_source_at_once() {
    let mut r = router_with(&CONFIG.replace(
        "query_interval_secs: 20",
        "query_interval_secs: 20\n      fast_leave: true",
    ));
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::BlockOldSources, &[s()]);
    let out = r.take_actions();
    assert!(queries(&out).is_empty());
    assert_eq!(mfc_dels(&out), 1);
}

#[test]
fn querier_election_lowest_address_wins_until_it_goes_quiet() {
    let mut r = router();
    assert_eq!(r.is_querier(ACC), Some(true));
    let general = MldRepr::QueryV2(QueryV2 {
        max_response_code: mld::encode_max_response_code(2000),
        multicast_address: Ipv6Addr::UNSPECIFIED,
        suppress_router_side: false,
        qrv: 2,
        qqic: 20,
        sources: vec![],
    });
    // A higher address does not take over.
    r.handle_mld(
        Millis(100),
        rx(ACC, a("fe80::2:ffff"), 1),
        &bytes_of_mld(&general),
    );
    assert_eq!(r.is_querier(ACC), Some(true));
    // A lower one does; we send no general queries while it is present.
    r.handle_mld(
        Millis(200),
        rx(ACC, a("fe80::1"), 1),
        &bytes_of_mld(&general),
    );
    assert_eq!(r.is_querier(ACC), Some(false));
    // Other querier present = 2 × 20 s + 2 s / 2 = 41 s.
    let quiet = acts(&run_until(&mut r, 201, 41_199));
    assert!(queries(&quiet).is_empty(), "{quiet:?}");
    assert_eq!(r.is_querier(ACC), Some(false));
    let back = acts(&run_until(&mut r, 41_199, 41_200));
    assert_eq!(r.is_querier(ACC), Some(true));
    assert!(queries(&back)
        .iter()
        .any(|(d, q)| *d == ALL_NODES && q.multicast_address.is_unspecified()));
    // A query with hop limit 255 is invalid and changes nothing.
    r.handle_mld(
        Millis(41_300),
        rx(ACC, a("fe80::1"), 255),
        &bytes_of_mld(&general),
    );
    assert_eq!(r.is_querier(ACC), Some(true));
}

#[test]
fn mldv1_and_exclude_in_the_ssm_range_are_ignored() {
    let mut r = router();
    let v1 = MldRepr::ReportV1 {
        multicast_address: g(),
    };
    r.handle_mld(Millis(10), rx(ACC, a(HOST), 1), &bytes_of_mld(&v1));
    report(&mut r, 20, RecordType::ChangeToExclude, &[]);
    assert!(r.take_actions().is_empty());
    assert_eq!(
        r.stats().get(Counter::MldIgnored("v1_report_in_ssm_range")),
        1
    );
    assert_eq!(
        r.stats().get(Counter::MldIgnored("exclude_in_ssm_range")),
        1
    );
    // Outside the SSM range an MLDv1 report is any-source interest: tracked, not forwarded.
    let asm = MldRepr::ReportV1 {
        multicast_address: a("ff15::1234"),
    };
    r.handle_mld(Millis(30), rx(ACC, a(HOST), 1), &bytes_of_mld(&asm));
    assert!(r.take_actions().is_empty());
    let st = r.status(Millis(30));
    let acc = st.interfaces.iter().find(|i| i.name == "acc").unwrap();
    assert_eq!(acc.listeners.len(), 1);
    assert!(acc.listeners[0].any_source_expires_in_ms.is_some());
}

#[test]
fn downstream_join_installs_with_directly_connected_source_and_expires() {
    let mut r = router();
    let n = a("fe80::2:2");
    hello(&mut r, 10, CORE0, n, 1, 105, &[]);
    r.take_actions();
    // A Join from a non-neighbour is ignored.
    join_prune(&mut r, 15, CORE0, a("fe80::2:3"), our_ll(CORE0), true, 30);
    assert!(r.take_actions().is_empty());
    join_prune(&mut r, 20, CORE0, n, our_ll(CORE0), true, 30);
    assert_eq!(r.take_actions(), vec![Action::ResolveRpf(s())]);
    r.rpf_resolved(
        Millis(21),
        s(),
        Some(RpfRoute {
            ifindex: CORE1,
            gateway: None,
        }),
    );
    let out = r.take_actions();
    assert_eq!(mfc_adds(&out), vec![(CORE1, vec![CORE0])]);
    assert!(jps(&out).is_empty(), "S is directly connected: no Join");
    // Holdtime 30 s: refreshed at 10 s, so it lasts until 40.010 s.
    join_prune(&mut r, 10_010, CORE0, n, our_ll(CORE0), true, 30);
    let out = acts(&run_until(&mut r, 10_011, 40_009));
    assert_eq!(mfc_dels(&out), 0);
    let out = acts(&run_until(&mut r, 40_009, 40_010));
    assert_eq!(mfc_dels(&out), 1);
}

#[test]
fn prune_from_the_only_neighbour_removes_at_once() {
    let mut r = router();
    let n = a("fe80::2:2");
    hello(&mut r, 10, CORE0, n, 1, 105, &[]);
    // Addressed to our global address this time: that is ours too.
    join_prune(&mut r, 20, CORE0, n, a("2001:db8:2::1"), true, 210);
    r.rpf_resolved(
        Millis(21),
        s(),
        Some(RpfRoute {
            ifindex: CORE1,
            gateway: None,
        }),
    );
    r.take_actions();
    join_prune(&mut r, 30, CORE0, n, our_ll(CORE0), false, 210);
    assert_eq!(mfc_dels(&r.take_actions()), 1);
}

#[test]
fn prune_on_a_shared_link_waits_for_an_override() {
    let mut r = router();
    let (n1, n2) = (a("fe80::2:2"), a("fe80::2:3"));
    hello(&mut r, 10, CORE0, n1, 1, 105, &[]);
    hello(&mut r, 10, CORE0, n2, 1, 105, &[]);
    join_prune(&mut r, 20, CORE0, n1, our_ll(CORE0), true, 210);
    r.rpf_resolved(
        Millis(21),
        s(),
        Some(RpfRoute {
            ifindex: CORE1,
            gateway: None,
        }),
    );
    r.take_actions();
    // n1 prunes; n2 still wants it and overrides with a Join inside the window (3 s).
    join_prune(&mut r, 1000, CORE0, n1, our_ll(CORE0), false, 210);
    assert_eq!(mfc_dels(&r.take_actions()), 0);
    join_prune(&mut r, 2000, CORE0, n2, our_ll(CORE0), true, 210);
    let out = acts(&run_until(&mut r, 2001, 10_000));
    assert_eq!(mfc_dels(&out), 0, "the override kept the state");
    // Without an override the prune takes effect after the prune-pending time.
    join_prune(&mut r, 20_000, CORE0, n1, our_ll(CORE0), false, 210);
    let out = acts(&run_until(&mut r, 20_001, 22_999));
    assert_eq!(mfc_dels(&out), 0);
    let out = acts(&run_until(&mut r, 22_999, 23_000));
    assert_eq!(mfc_dels(&out), 1);
}

#[test]
fn we_override_another_routers_prune_for_an_sg_we_want() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    let other = a("fe80::2:7");
    hello(&mut r, 30, CORE0, other, 5, 105, &[]);
    r.take_actions();
    // Another downstream router prunes (S,G) toward our upstream neighbour, addressed by
    // its global address.
    join_prune(&mut r, 1000, CORE0, other, a("2001:db8:99::1"), false, 210);
    assert!(r.take_actions().is_empty());
    let out = acts(&run_until(&mut r, 1001, 1000 + 2500));
    assert_eq!(
        jps(&out),
        vec![(CORE0, n0, vec![sg()], vec![])],
        "Join within the override interval"
    );
}

#[test]
fn neighbour_restart_and_expiry() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    // Periodic Join at t_periodic (60 s after the first); the host keeps reporting.
    let out = acts(&run_listening(&mut r, 26, 60_025));
    assert_eq!(jps(&out), vec![(CORE0, n0, vec![sg()], vec![])]);
    // New generation id: the neighbour lost our state; we re-join within 2.5 s instead of
    // waiting for the next period, and send a triggered Hello.
    hello(&mut r, 61_000, CORE0, n0, 2, 105, &[a("2001:db8:99::1")]);
    let out = acts(&run_listening(&mut r, 61_000, 66_000));
    assert_eq!(jps(&out), vec![(CORE0, n0, vec![sg()], vec![])], "{out:?}");
    let hellos = out.iter().filter(|act| matches!(act, Action::Send(p) if p.proto == Proto::Pim && p.ifindex == CORE0 && matches!(PimRepr::parse(&p.bytes), Ok(PimRepr::Hello { .. })))).count();
    assert!(hellos >= 1, "triggered Hello");
    // Holdtime expiry (105 s after the last Hello): no neighbour, no Join target.
    assert_eq!(r.neighbor_count(CORE0), 1);
    run_listening(&mut r, 66_000, 61_000 + 105_000);
    assert_eq!(r.neighbor_count(CORE0), 0);
    let st = r.status(Millis(166_001));
    assert_eq!(st.sg[0].upstream_neighbor, None);
    assert!(
        st.sg[0].mfc_installed,
        "forwarding stays while S is routed that way"
    );
}

/// Like [`run_until`], with the host re-reporting (S,G) every 30 s.
fn run_listening(r: &mut Router, from: u64, until: u64) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < until {
        let end = (t + 30_000).min(until);
        out.extend(run_until(r, t, end));
        report(r, end, RecordType::ModeIsInclude, &[s()]);
        out.extend(r.take_actions().into_iter().map(|act| (end, act)));
        t = end;
    }
    out
}

#[test]
fn rpf_change_moves_the_join() {
    let mut r = router();
    let (n0, n1) = (a("fe80::2:2"), a("fe80::3:2"));
    joined_upstream(&mut r, n0);
    hello(&mut r, 30, CORE1, n1, 9, 105, &[]);
    r.take_actions();
    // The periodic re-check asks for the route again; the answer now points to core1/n1.
    let out = acts(&run_until(&mut r, 31, 5000));
    assert!(
        out.contains(&Action::ResolveRpf(s())),
        "periodic RPF re-check"
    );
    r.rpf_resolved(
        Millis(5001),
        s(),
        Some(RpfRoute {
            ifindex: CORE1,
            gateway: Some(n1),
        }),
    );
    let out = r.take_actions();
    let mut j = jps(&out);
    j.sort();
    assert_eq!(
        j,
        vec![
            (CORE0, n0, vec![], vec![sg()]),
            (CORE1, n1, vec![sg()], vec![])
        ]
    );
    assert_eq!(mfc_adds(&out), vec![(CORE1, vec![ACC])]);
}

#[test]
fn router_solicitation_is_answered_within_the_configured_delay() {
    let mut r = router();
    run_until(&mut r, 0, 1000);
    r.handle_nd(
        Millis(1000),
        rx(ACC, a(HOST), 255),
        &[133, 0, 0, 0, 0, 0, 0, 0],
    );
    let out = run_until(&mut r, 1000, 1050);
    let ras: Vec<(u64, NdRepr)> = out
        .iter()
        .filter_map(|(t, act)| match act {
            Action::Send(p) if p.proto == Proto::Nd => {
                assert_eq!((p.source, p.destination), (our_ll(ACC), ALL_NODES));
                Some((*t, NdRepr::parse(&p.bytes).unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ras.len(), 1, "{out:?}");
    let NdRepr::RouterAdvert(ra) = &ras[0].1 else {
        panic!()
    };
    let map = ra.map().unwrap();
    assert_eq!((map.address, map.preference, map.distance), (s(), 12, 1));
    // An RS with a hop limit other than 255 is not valid (RFC 4861 §6.1.1).
    r.handle_nd(
        Millis(2000),
        rx(ACC, a(HOST), 64),
        &[133, 0, 0, 0, 0, 0, 0, 0],
    );
    let out = run_until(&mut r, 2000, 2100);
    assert!(out
        .iter()
        .all(|(_, act)| !matches!(act, Action::Send(p) if p.proto == Proto::Nd)));
}

#[test]
fn shutdown_prunes_says_goodbye_and_removes_every_entry() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    r.shutdown();
    let out = r.take_actions();
    assert_eq!(jps(&out), vec![(CORE0, n0, vec![], vec![sg()])]);
    assert_eq!(mfc_dels(&out), 1);
    let goodbye = out.iter().filter(|act| matches!(act, Action::Send(p) if p.proto == Proto::Pim
        && matches!(PimRepr::parse(&p.bytes), Ok(PimRepr::Hello { ref options }) if options.contains(&HelloOption::Holdtime(0))))).count();
    assert_eq!(
        goodbye, 3,
        "holdtime-0 Hello on every PIM interface (two core, the access link)"
    );
    assert_eq!(r.sg_count(), 0);
}

#[test]
fn malformed_input_is_counted_not_fatal() {
    let mut r = router();
    r.handle_mld(Millis(1), rx(ACC, a(HOST), 1), &[143, 0, 0]);
    r.handle_pim(Millis(1), rx(CORE0, a("fe80::5"), 1), &[0x23, 0, 0, 0, 2]);
    r.handle_pim(Millis(1), rx(CORE0, a("2001:db8::5"), 1), &[0x20, 0, 0, 0]);
    r.handle_nd(Millis(1), rx(ACC, a(HOST), 255), &[133]);
    assert!(r.take_actions().is_empty());
    let malformed: u64 = r
        .stats()
        .counters
        .iter()
        .filter(|(c, _)| matches!(c, Counter::Malformed { .. }))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(malformed, 4);
}

#[test]
fn example_config_loads_and_bad_values_are_located() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pim-lite.yaml");
    let cfg: Config = mipcast_daemon::config::load(&path).unwrap();
    assert_eq!(cfg.mrt6.table, 254);
    assert_eq!(cfg.metrics.listen.port(), 9644);
    assert!(cfg.ssm_groups.iter().any(|r| r.contains(g())));
    assert!(!cfg.ssm_groups.iter().any(|r| r.contains(a("ff15::1"))));

    let bad = "interfaces:\n  - name: acc\n    role: access\n    ra:\n      map: { address: \"2001:db8::1\", distance: 16 }\n";
    let err = mipcast_daemon::config::load_str::<Config>(Path::new("t.yaml"), bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("interfaces[0].ra.map.distance"), "{err}");
    let many: String = (0..33)
        .map(|i| format!("  - {{ name: e{i}, role: core }}\n"))
        .collect();
    let err = mipcast_daemon::config::load_str::<Config>(
        Path::new("t.yaml"),
        &format!("interfaces:\n{many}"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("at most 32"), "{err}");
    let err = mipcast_daemon::config::load_str::<Config>(
        Path::new("t.yaml"),
        "interfaces: []\nssm_groups: [\"2001:db8::/32\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ff00::/8"), "{err}");
}

/// The kinds of the PIM messages sent on `ifindex`, in order.
fn pim_kinds(actions: &[Action], ifindex: u32) -> Vec<&'static str> {
    actions
        .iter()
        .filter_map(|act| match act {
            Action::Send(p) if p.proto == Proto::Pim && p.ifindex == ifindex => {
                Some(match PimRepr::parse(&p.bytes) {
                    Ok(PimRepr::Hello { .. }) => "hello",
                    Ok(PimRepr::JoinPrune(jp)) => match pim::entries(&jp) {
                        (j, _, _) if !j.is_empty() => "join",
                        _ => "prune",
                    },
                    _ => "other",
                })
            }
            _ => None,
        })
        .collect()
}

// ---- two routers on one core link: the netns tree's core and acc2, without sockets ----

/// The upstream router: S is directly connected on `UP_S`, the access router is on `UP_DOWN`.
const UP_S: u32 = 20;
const UP_DOWN: u32 = 21;

/// A router and the answer it gets to every RPF lookup.
struct Node {
    r: Router,
    rpf: RpfRoute,
}

impl Node {
    fn upstream() -> Node {
        let cfg =
            config("interfaces:\n  - { name: c_s, role: core }\n  - { name: c_a2, role: core }\n");
        let ifaces = [UP_S, UP_DOWN]
            .into_iter()
            .map(|i| (i, addrs_of(i)))
            .collect();
        Node {
            r: Router::new(&Settings::from(&cfg), ifaces, Millis(0), 99),
            rpf: RpfRoute {
                ifindex: UP_S,
                gateway: None,
            },
        }
    }

    /// The access router (CONFIG) reaching S through the upstream's link-local address.
    fn access(now: u64, seed: u64) -> Node {
        Node {
            r: unstarted(CONFIG, now, seed),
            rpf: RpfRoute {
                ifindex: CORE0,
                gateway: Some(our_ll(UP_DOWN)),
            },
        }
    }

    /// Takes the actions, answering RPF lookups as the shell does (at once, in order).
    fn settle(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        loop {
            let actions = self.r.take_actions();
            if actions.is_empty() {
                return out;
            }
            for act in actions {
                match act {
                    Action::ResolveRpf(source) => {
                        self.r.rpf_resolved(Millis(now), source, Some(self.rpf))
                    }
                    other => out.push(other),
                }
            }
        }
    }

    fn ignored(&self, reason: &'static str) -> u64 {
        self.r
            .stats()
            .counters
            .get(&Counter::PimIgnored(reason))
            .copied()
            .unwrap_or(0)
    }
}

/// Hands the PIM packets among `actions` sent on `from_if` to `to`, arriving on `to_if`, in
/// order. Returns how many there were.
fn carry(actions: &[Action], from_if: u32, to: &mut Router, to_if: u32, now: u64) -> usize {
    let mut n = 0;
    for act in actions {
        if let Action::Send(p) = act {
            if p.proto == Proto::Pim && p.ifindex == from_if {
                to.handle_pim(Millis(now), rx(to_if, p.source, 1), &p.bytes);
                n += 1;
            }
        }
    }
    n
}

/// Carries packets both ways until the link is quiet; returns the upstream's actions.
fn pump(up: &mut Node, acc: &mut Node, now: u64) -> Vec<Action> {
    let mut up_log = Vec::new();
    loop {
        let from_acc = acc.settle(now);
        let from_up = up.settle(now);
        let moved = carry(&from_acc, CORE0, &mut up.r, UP_DOWN, now)
            + carry(&from_up, UP_DOWN, &mut acc.r, CORE0, now);
        up_log.extend(from_up);
        if moved == 0 {
            return up_log;
        }
    }
}

/// Runs both routers' timers from `from` to `until` with the link in between.
fn run_link(up: &mut Node, acc: &mut Node, from: u64, until: u64) -> Vec<Action> {
    let mut up_log = Vec::new();
    let mut now = from;
    while now <= until {
        up.r.tick(Millis(now));
        acc.r.tick(Millis(now));
        up_log.extend(pump(up, acc, now));
        now =
            up.r.next_deadline()
                .0
                .min(acc.r.next_deadline().0)
                .max(now + 1);
    }
    up_log
}

fn forwards_down(up: &Node) -> bool {
    up.r.status(Millis(0)).sg.iter().any(|e| {
        e.source == s() && e.group == g() && e.mfc_installed && e.oifs == vec!["c_a2".to_string()]
    })
}

/// The restart of the netns test (access router 2 under the core), with the event order the
/// shell allows: its sockets are open before its first tick, so the upstream's periodic
/// Hello and the host's report can be handled before the start-up Hello goes out. The Join
/// that follows used to leave first, the upstream dropped it (no Hello heard from that
/// router yet), and nothing repeated it for a Join period (60 s): traffic stopped at the
/// upstream although the access router had its MFC entry.
#[test]
fn restarted_access_router_gets_its_tree_back_whatever_runs_before_its_first_tick() {
    let mut up = Node::upstream();
    let mut acc = Node::access(0, 1);
    run_link(&mut up, &mut acc, 0, 300);
    assert_eq!(
        (up.r.neighbor_count(UP_DOWN), acc.r.neighbor_count(CORE0)),
        (1, 1),
        "adjacency"
    );
    report(&mut acc.r, 400, RecordType::AllowNewSources, &[s()]);
    let out = pump(&mut up, &mut acc, 400);
    assert_eq!(mfc_adds(&out), vec![(UP_S, vec![UP_DOWN])]);
    assert!(forwards_down(&up));

    // Graceful stop: Prune and goodbye Hello; the upstream drops the branch and the neighbour.
    acc.r.shutdown();
    let out = pump(&mut up, &mut acc, 1000);
    assert_eq!(mfc_dels(&out), 1);
    assert_eq!((up.r.sg_count(), up.r.neighbor_count(UP_DOWN)), (0, 0));

    // The upstream's next periodic Hello is what the new instance finds on its socket.
    let (mut t, mut up_hello) = (1000, Vec::new());
    while pim_kinds(&up_hello, UP_DOWN) != ["hello"] {
        t = up.r.next_deadline().0.max(t + 1);
        assert!(t < 60_000, "no periodic Hello from the upstream");
        up.r.tick(Millis(t));
        up_hello = up.settle(t);
    }
    let mut acc = Node::access(t, 2);
    carry(&up_hello, UP_DOWN, &mut acc.r, CORE0, t);
    report(&mut acc.r, t, RecordType::ModeIsInclude, &[s()]);
    let first = acc.settle(t);
    assert_eq!(mfc_adds(&first), vec![(CORE0, vec![ACC])]);
    carry(&first, CORE0, &mut up.r, UP_DOWN, t);
    let out = up.settle(t);
    assert_eq!(
        up.ignored("non_neighbor"),
        0,
        "Join/Prune from a router whose Hello was not heard"
    );
    assert_eq!(
        mfc_adds(&out),
        vec![(UP_S, vec![UP_DOWN])],
        "the upstream forwards again at once"
    );
    assert_eq!(pim_kinds(&first, CORE0), ["hello", "join"]);
    // The start-up tick and the triggered Hellos change nothing.
    run_link(&mut up, &mut acc, t, t + 1000);
    assert!(forwards_down(&up));
    let st = up.r.status(Millis(t + 1000));
    let down = st.interfaces.iter().find(|i| i.name == "c_a2").unwrap();
    assert_eq!(down.neighbors.len(), 1);
    assert_ne!(down.neighbors[0].gen_id, None);
}

/// Without a link-local address nothing can be sent, the Join included; once the address
/// appears, the Hello is followed by the Join at once, not a Join period later.
#[test]
fn joins_that_could_not_leave_go_right_after_the_first_hello() {
    let cfg = config(CONFIG);
    let no_ll = IfaceAddrs {
        link_local: None,
        ..addrs_of(CORE0)
    };
    let ifaces = vec![
        (ACC, addrs_of(ACC)),
        (CORE0, no_ll),
        (CORE1, addrs_of(CORE1)),
    ];
    let mut r = Router::new(&Settings::from(&cfg), ifaces, Millis(0), 7);
    r.tick(Millis(0));
    assert!(
        pim_kinds(&r.take_actions(), CORE0).is_empty(),
        "nothing leaves without a source address"
    );
    let out = joined_upstream(&mut r, a("fe80::2:2"));
    assert!(pim_kinds(&out, CORE0).is_empty());
    r.set_addresses(Millis(2000), CORE0, addrs_of(CORE0));
    let out = acts(&run_until(&mut r, 2000, 2000));
    assert_eq!(pim_kinds(&out, CORE0), ["hello", "join"], "{out:?}");
}

/// After an address change the neighbours have not heard us from the new address: a Join
/// triggered before the next tick brings its Hello along.
#[test]
fn a_join_after_an_address_change_is_preceded_by_a_hello() {
    let mut r = router();
    joined_upstream(&mut r, a("fe80::2:2"));
    r.set_addresses(
        Millis(100),
        CORE0,
        IfaceAddrs {
            link_local: Some(a("fe80::2:77")),
            ..addrs_of(CORE0)
        },
    );
    let out = r.take_actions();
    assert!(out.is_empty(), "{out:?}");
    // A second channel from the same source, before the tick that would send the Hello.
    let m = MldRepr::ReportV2 {
        records: vec![GroupRecord {
            record_type: RecordType::AllowNewSources,
            multicast_address: a("ff35::2"),
            sources: vec![s()],
        }],
    };
    r.handle_mld(Millis(110), rx(ACC, a(HOST), 1), &bytes_of_mld(&m));
    let out = r.take_actions();
    assert_eq!(pim_kinds(&out, CORE0), ["hello", "join"], "{out:?}");
    let sources: Vec<Ipv6Addr> = out
        .iter()
        .filter_map(|act| match act {
            Action::Send(p) if p.ifindex == CORE0 => Some(p.source),
            _ => None,
        })
        .collect();
    assert_eq!(sources, [a("fe80::2:77"); 2], "both from the new address");
    // The Hello timer restarted: no second Hello at the next tick.
    let out = acts(&run_until(&mut r, 110, 5000));
    assert_eq!(
        pim_kinds(&out, CORE0)
            .iter()
            .filter(|k| **k == "hello")
            .count(),
        0,
        "{out:?}"
    );
}

// ---- issue 10: restart recovery, tolerant Hellos, LAN behaviour ----

fn hello_opts(r: &mut Router, now: u64, ifindex: u32, from: Ipv6Addr, options: Vec<HelloOption>) {
    r.handle_pim(
        Millis(now),
        rx(ifindex, from, 1),
        &bytes_of_pim(&PimRepr::Hello { options }),
    );
}

#[test]
fn a_restarted_upstream_hears_our_hello_before_our_join() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    run_listening(&mut r, 26, 30_000);
    // The upstream router restarts: new generation id. Whatever comes first on core0 after
    // that must be our Hello, and the Join must follow within the override interval.
    hello(&mut r, 30_000, CORE0, n0, 77, 105, &[a("2001:db8:99::1")]);
    let out = acts(&run_listening(&mut r, 30_000, 32_600));
    let kinds = pim_kinds(&out, CORE0);
    assert_eq!(kinds.first(), Some(&"hello"), "{kinds:?}");
    assert!(kinds.contains(&"join"), "{kinds:?}");
    assert_eq!(r.stats().get(Counter::NeighborRestarts), 1);
    // Same for a neighbour that came back after expiring (a new neighbour).
    let mut r = router();
    joined_upstream(&mut r, n0);
    hello(&mut r, 100, CORE0, n0, 1, 0, &[]); // goodbye
    r.take_actions();
    hello(&mut r, 200, CORE0, n0, 2, 105, &[a("2001:db8:99::1")]);
    let kinds = pim_kinds(&r.take_actions(), CORE0);
    assert_eq!(
        kinds,
        vec!["hello", "join"],
        "Hello first, then the Join at once"
    );
}

#[test]
fn a_join_from_a_non_neighbour_is_dropped_and_triggers_a_hello() {
    let mut r = router();
    let stranger = a("fe80::2:9");
    run_until(&mut r, 1, 1000);
    join_prune(&mut r, 1000, CORE0, stranger, our_ll(CORE0), true, 210);
    assert_eq!(r.stats().get(Counter::PimIgnored("non_neighbor")), 1);
    assert_eq!(r.status(Millis(1000)).interfaces[1].downstream, vec![]);
    // A triggered Hello within the triggered-hello delay (5 s), not the 30 s period.
    let out = run_until(&mut r, 1001, 6000);
    let hello_at = out
        .iter()
        .find(|(_, act)| pim_kinds(std::slice::from_ref(act), CORE0) == ["hello"])
        .map(|(t, _)| *t);
    assert!(hello_at.is_some_and(|t| t <= 6000), "{out:?}");
}

#[test]
fn ipv4_address_list_entries_and_bad_options_do_not_cost_the_adjacency() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    // Issue 10's bytes: an Address List holding one IPv4 entry, then a bad-length option,
    // an unknown one, and a good Address List.
    let mut body = vec![0x20, 0, 0, 0];
    body.extend_from_slice(&[0, 1, 0, 2, 0, 105]);
    body.extend_from_slice(&[0x00, 0x18, 0x00, 0x06, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x02]);
    body.extend_from_slice(&[0, 19, 0, 2, 0, 1]);
    body.extend_from_slice(&[0, 22, 0, 0]);
    body.extend_from_slice(&[0, 24, 0, 18, 2, 0]);
    body.extend_from_slice(&a("2001:db8:99::1").octets());
    r.handle_pim(Millis(10), rx(CORE0, n0, 1), &body);
    assert_eq!(r.neighbor_count(CORE0), 1);
    let st = r.status(Millis(10));
    assert_eq!(
        st.interfaces[1].neighbors[0].addresses,
        vec![a("2001:db8:99::1")]
    );
    assert_eq!(st.interfaces[1].neighbors[0].dr_priority, None);
    let c = |l| r.stats().get(Counter::HelloSkipped(l));
    assert_eq!(
        (
            c("foreign_address_family"),
            c("bad_option"),
            c("unknown_option")
        ),
        (1, 1, 1)
    );
}

#[test]
fn bad_join_prunes_are_counted_and_change_nothing() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    hello(&mut r, 10, CORE0, n0, 1, 105, &[]);
    r.take_actions();
    let good = {
        let src = vec![EncodedSource::new(s())];
        bytes_of_pim(&PimRepr::JoinPrune(JoinPrune {
            upstream_neighbor: our_ll(CORE0),
            holdtime: 210,
            groups: vec![JoinPruneGroup {
                group: EncodedGroup::new(g()),
                joins: src,
                prunes: vec![],
            }],
        }))
    };
    // More sources than the packet holds; an unknown family; truncated; a Bootstrap message.
    let mut more = good.clone();
    more[47] = 2;
    let mut family = good.clone();
    family[50] = 9;
    let short = good[..good.len() - 3].to_vec();
    for bytes in [&more, &family, &short, &vec![0x24, 0, 0, 0, 1, 2]] {
        r.handle_pim(Millis(20), rx(CORE0, n0, 1), bytes);
    }
    assert!(r.take_actions().is_empty());
    assert_eq!(r.sg_count(), 0);
    let malformed: u64 = r
        .stats()
        .counters
        .iter()
        .filter(|(c, _)| {
            matches!(
                c,
                Counter::Malformed {
                    protocol: "pim",
                    ..
                }
            )
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(malformed, 3);
    assert_eq!(r.stats().get(Counter::PimIgnored("message_type")), 1);
    // The good one still works.
    r.handle_pim(Millis(30), rx(CORE0, n0, 1), &good);
    assert_eq!(r.sg_count(), 1);
}

#[test]
fn dr_election_priority_then_address_and_without_priority_option() {
    let mut r = router(); // our access link-local fe80::1:1, priority 1
    assert_eq!(r.is_dr(ACC), Some(true));
    let high = a("fe80::1:9");
    // Higher address, same priority: it is DR.
    hello_opts(
        &mut r,
        10,
        ACC,
        high,
        vec![HelloOption::Holdtime(105), HelloOption::DrPriority(1)],
    );
    assert_eq!(r.is_dr(ACC), Some(false));
    // Lower address with a higher priority wins over both.
    let low = a("fe80::1:0");
    hello_opts(
        &mut r,
        20,
        ACC,
        low,
        vec![HelloOption::Holdtime(105), HelloOption::DrPriority(5)],
    );
    assert_eq!(r.status(Millis(20)).interfaces[0].dr, Some(low));
    // One router without the option: addresses alone decide (highest wins).
    hello_opts(
        &mut r,
        30,
        ACC,
        a("fe80::1:5"),
        vec![HelloOption::Holdtime(105)],
    );
    assert_eq!(r.status(Millis(30)).interfaces[0].dr, Some(high));
    // Goodbyes: we are DR again.
    for n in [high, low, a("fe80::1:5")] {
        hello_opts(&mut r, 40, ACC, n, vec![HelloOption::Holdtime(0)]);
    }
    assert_eq!(r.is_dr(ACC), Some(true));
}

#[test]
fn only_the_dr_builds_the_tree_for_its_listeners_and_takes_over_when_the_dr_goes() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    let other_dr = a("fe80::1:9");
    hello_opts(
        &mut r,
        5,
        ACC,
        other_dr,
        vec![HelloOption::Holdtime(4), HelloOption::DrPriority(1)],
    );
    hello(&mut r, 10, CORE0, n0, 1, 105, &[a("2001:db8:99::1")]);
    r.take_actions();
    report(&mut r, 20, RecordType::AllowNewSources, &[s()]);
    let out = r.take_actions();
    assert!(
        jps(&out).is_empty() && mfc_adds(&out).is_empty(),
        "non-DR: no tree"
    );
    assert_eq!(r.sg_count(), 0);
    // The DR's holdtime (4 s) runs out: we become DR and build the tree.
    let out = acts(&run_until(&mut r, 26, 4_100));
    assert_eq!(r.is_dr(ACC), Some(true));
    assert!(out.contains(&Action::ResolveRpf(s())), "{out:?}");
    r.rpf_resolved(
        Millis(4_100),
        s(),
        Some(RpfRoute {
            ifindex: CORE0,
            gateway: Some(a("2001:db8:99::1")),
        }),
    );
    let out = r.take_actions();
    assert_eq!(jps(&out), vec![(CORE0, n0, vec![sg()], vec![])]);
    assert_eq!(mfc_adds(&out), vec![(CORE0, vec![ACC])]);
    // Lost and regained on the access link, lost on core0 (n0's address is higher).
    assert_eq!(r.stats().get(Counter::DrChanges), 3);
    assert_eq!(r.is_dr(CORE0), Some(false));
}

fn assert_msg(r: &mut Router, now: u64, ifindex: u32, from: Ipv6Addr, pref: u32, metric: u32) {
    let m = PimRepr::Assert(mipcast_wire::pim::Assert {
        group: EncodedGroup::new(g()),
        source: s(),
        rpt: false,
        metric_preference: pref,
        metric,
    });
    r.handle_pim(Millis(now), rx(ifindex, from, 1), &bytes_of_pim(&m));
}

fn asserts_sent(actions: &[Action]) -> Vec<(u32, u32)> {
    actions
        .iter()
        .filter_map(|act| match act {
            Action::Send(p) if p.proto == Proto::Pim => match PimRepr::parse(&p.bytes) {
                Ok(PimRepr::Assert(a)) => Some((p.ifindex, a.metric_preference)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn assert_loser_stops_forwarding_until_the_winner_cancels_or_times_out() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    let rival = a("fe80::1:0"); // lower address than ours on the access link
    joined_upstream(&mut r, n0);
    hello_opts(
        &mut r,
        30,
        ACC,
        rival,
        vec![HelloOption::Holdtime(105), HelloOption::DrPriority(0)],
    );
    r.take_actions();
    // Data on our outgoing access link: the kernel's WRONGMIF upcall → we assert.
    r.tick(Millis(40));
    r.handle_upcall(UpcallKind::WrongMif, Some(ACC), sg());
    assert_eq!(asserts_sent(&r.take_actions()), vec![(ACC, 101)]);
    // A worse metric loses to us: we re-assert.
    assert_msg(&mut r, 50, ACC, rival, 110, 1);
    assert_eq!(asserts_sent(&r.take_actions()), vec![(ACC, 101)]);
    // A better preference wins: we stop forwarding on the access link.
    assert_msg(&mut r, 60, ACC, rival, 90, 1);
    let out = r.take_actions();
    assert_eq!(mfc_dels(&out), 1, "no oif left: entry removed: {out:?}");
    assert_eq!(
        r.status(Millis(60)).interfaces[0].asserts[0].winner,
        Some(rival)
    );
    // The winner cancels: we forward again at once.
    assert_msg(&mut r, 70, ACC, rival, 0x7fff_ffff, u32::MAX);
    assert_eq!(mfc_adds(&r.take_actions()), vec![(CORE0, vec![ACC])]);
    // Same preference and metric: the higher address wins, and that is us.
    assert_msg(&mut r, 80, ACC, rival, 101, 1024);
    assert_eq!(asserts_sent(&r.take_actions()), vec![(ACC, 101)]);
    // Lost again (metric); after Assert_Time (180 s) without news we forward again.
    assert_msg(&mut r, 90, ACC, rival, 101, 5);
    r.take_actions();
    let out = acts(&run_listening(&mut r, 91, 90 + 180_001));
    assert!(mfc_adds(&out).contains(&(CORE0, vec![ACC])), "{out:?}");
}

#[test]
fn join_suppression_and_lan_prune_delay_of_the_neighbours() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    let other = a("fe80::2:7");
    hello(&mut r, 30, CORE0, other, 5, 105, &[]);
    r.take_actions();
    run_listening(&mut r, 31, 50_000);
    // Another router joins the same (S,G) toward n0 at 50 s: our 60 s refresh is
    // suppressed to at least 1.1 × 60 s later.
    let jp = PimRepr::JoinPrune(JoinPrune {
        upstream_neighbor: n0,
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::new(g()),
            joins: vec![EncodedSource::new(s())],
            prunes: vec![],
        }],
    });
    r.handle_pim(Millis(50_000), rx(CORE0, other, 1), &bytes_of_pim(&jp));
    assert_eq!(r.stats().get(Counter::JoinsSuppressed), 1);
    let mut out = acts(&run_listening(&mut r, 50_001, 99_999));
    hello(&mut r, 100_000, CORE0, n0, 1, 105, &[a("2001:db8:99::1")]);
    out.extend(acts(&run_listening(&mut r, 100_000, 50_000 + 65_999)));
    assert!(jps(&out).is_empty(), "Join suppressed: {out:?}");
    let out = acts(&run_listening(&mut r, 116_000, 50_000 + 84_001));
    assert_eq!(
        jps(&out),
        vec![(CORE0, n0, vec![sg()], vec![])],
        "{:?}",
        r.status(Millis(134_001))
    );

    // Upstream side: prune-pending lasts the neighbours' largest LAN prune delay when all
    // of them send the option (here 1 s + 6 s), our own (0.5 + 2.5 s) otherwise.
    let mut r = router();
    let (n1, n2) = (a("fe80::2:2"), a("fe80::2:3"));
    for n in [n1, n2] {
        hello_opts(
            &mut r,
            10,
            CORE0,
            n,
            vec![
                HelloOption::Holdtime(105),
                HelloOption::LanPruneDelay(mipcast_wire::pim::LanPruneDelay {
                    tracking_support: false,
                    propagation_delay_ms: 1000,
                    override_interval_ms: 6000,
                }),
            ],
        );
    }
    join_prune(&mut r, 20, CORE0, n1, our_ll(CORE0), true, 210);
    r.rpf_resolved(
        Millis(21),
        s(),
        Some(RpfRoute {
            ifindex: CORE1,
            gateway: None,
        }),
    );
    r.take_actions();
    join_prune(&mut r, 1000, CORE0, n1, our_ll(CORE0), false, 210);
    let out = acts(&run_until(&mut r, 1001, 7_999));
    assert_eq!(mfc_dels(&out), 0, "still within 7 s");
    let out = acts(&run_until(&mut r, 7_999, 8_000));
    assert_eq!(mfc_dels(&out), 1);
}

#[test]
fn an_assert_winner_upstream_becomes_the_join_target() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    let winner = a("fe80::2:9");
    hello(&mut r, 30, CORE0, winner, 3, 105, &[]);
    r.take_actions();
    // The other upstream router wins the Assert on our RPF link: Joins go to it now.
    assert_msg(&mut r, 40, CORE0, winner, 50, 1);
    let mut j = jps(&r.take_actions());
    j.sort();
    assert_eq!(
        j,
        vec![
            (CORE0, n0, vec![], vec![sg()]),
            (CORE0, winner, vec![sg()], vec![])
        ]
    );
    assert_eq!(r.status(Millis(40)).sg[0].upstream_neighbor, Some(winner));
    // The winner goes away: back to the unicast RPF neighbour.
    hello(&mut r, 50, CORE0, winner, 3, 0, &[]);
    assert_eq!(
        jps(&r.take_actions()),
        vec![(CORE0, n0, vec![sg()], vec![])]
    );
}

#[test]
fn new_config_knobs_are_validated() {
    let err = |text: &str| {
        mipcast_daemon::config::load_str::<Config>(Path::new("t.yaml"), text)
            .unwrap_err()
            .to_string()
    };
    let e = err("interfaces:\n  - { name: c, role: core, pim: false }\n");
    assert!(e.contains("interfaces[0].pim"), "{e}");
    let e = err("interfaces: []\npim: { assert_metric_preference: 2147483647 }\n");
    assert!(e.contains("pim.assert_metric_preference"), "{e}");
    let e = err("interfaces: []\npim: { assert_time_secs: 1 }\n");
    assert!(e.contains("pim.assert_time_secs"), "{e}");
    let cfg = config("interfaces:\n  - { name: acc, role: access, pim: false }\n");
    let r = Router::new(
        &Settings::from(&cfg),
        vec![(ACC, addrs_of(ACC))],
        Millis(0),
        1,
    );
    assert_eq!(r.is_dr(ACC), None, "no PIM on that access link");
}

#[test]
fn a_reloaded_dr_priority_moves_the_dr_role() {
    let mut r = router();
    hello_opts(
        &mut r,
        10,
        ACC,
        a("fe80::1:9"),
        vec![HelloOption::Holdtime(105), HelloOption::DrPriority(1)],
    );
    assert_eq!(r.is_dr(ACC), Some(false));
    let text = format!("{CONFIG}pim:\n  dr_priority: 5\n");
    let changes = r.reload(&Settings::from(&config(&text))).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(r.is_dr(ACC), Some(true));
    // The new priority is announced right away.
    let out = acts(&run_until(&mut r, 20, 20));
    let dr_prio = out.iter().any(|act| matches!(act, Action::Send(p) if p.ifindex == ACC
        && matches!(PimRepr::parse(&p.bytes), Ok(PimRepr::Hello { ref options }) if options.contains(&HelloOption::DrPriority(5)))));
    assert!(dr_prio, "{out:?}");
    let off = CONFIG.replace("    role: access\n", "    role: access\n    pim: false\n");
    assert!(
        r.reload(&Settings::from(&config(&off))).is_err(),
        "turning PIM off needs a restart"
    );
}

#[test]
fn the_assert_winner_cancels_when_its_listener_leaves() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    joined_upstream(&mut r, n0);
    let rival = a("fe80::1:0");
    hello_opts(
        &mut r,
        30,
        ACC,
        rival,
        vec![HelloOption::Holdtime(105), HelloOption::DrPriority(0)],
    );
    r.take_actions();
    assert_msg(&mut r, 40, ACC, rival, 200, 1);
    assert_eq!(asserts_sent(&r.take_actions()), vec![(ACC, 101)]);
    report(&mut r, 50, RecordType::BlockOldSources, &[s()]);
    let out = acts(&run_until(&mut r, 50, 5_000));
    assert_eq!(mfc_dels(&out), 1);
    assert_eq!(
        asserts_sent(&out),
        vec![(ACC, 0x7fff_ffff)],
        "AssertCancel once we stop forwarding"
    );
}

#[test]
fn a_neighbour_announcing_the_gateway_address_later_gets_the_join_at_once() {
    let mut r = router();
    let n0 = a("fe80::2:2");
    // First Hello without an Address List: the route's global gateway is nobody we know.
    hello(&mut r, 10, CORE0, n0, 1, 105, &[]);
    r.take_actions();
    report(&mut r, 20, RecordType::AllowNewSources, &[s()]);
    r.take_actions();
    r.rpf_resolved(
        Millis(25),
        s(),
        Some(RpfRoute {
            ifindex: CORE0,
            gateway: Some(a("2001:db8:99::1")),
        }),
    );
    assert!(jps(&r.take_actions()).is_empty());
    // Same generation id, now with the address: the RPF neighbour appears, Join at once.
    hello(&mut r, 1000, CORE0, n0, 1, 105, &[a("2001:db8:99::1")]);
    assert_eq!(
        jps(&r.take_actions()),
        vec![(CORE0, n0, vec![sg()], vec![])]
    );
}

/// An IS_IN report from `host` for `group` with `sources`.
fn report_from(r: &mut Router, now: u64, host: &str, group: Ipv6Addr, sources: &[Ipv6Addr]) {
    let m = MldRepr::ReportV2 {
        records: vec![GroupRecord {
            record_type: RecordType::ModeIsInclude,
            multicast_address: group,
            sources: sources.to_vec(),
        }],
    };
    r.handle_mld(Millis(now), rx(ACC, a(host), 1), &bytes_of_mld(&m));
}

fn capped(limits: &str) -> Router {
    router_with(&CONFIG.replace(
        "      last_listener_query_interval_ms: 500\n",
        &format!("      last_listener_query_interval_ms: 500\n{limits}"),
    ))
}

#[test]
fn listeners_sources_and_sg_are_capped_per_access_link() {
    let mut r = capped("      max_groups: 2\n      max_sources_per_group: 3\n      max_sg: 4\n");
    let sources: Vec<Ipv6Addr> = (1..=5).map(|i| a(&format!("2001:db8:1::{i}"))).collect();
    let (g1, g2, g3) = (a("ff35::1"), a("ff35::2"), a("ff35::3"));
    report_from(&mut r, 10, HOST, g1, &sources);
    report_from(&mut r, 10, HOST, g2, &sources);
    report_from(&mut r, 10, HOST, g3, &sources);
    let ignored = |r: &Router, why| r.stats().get(Counter::MldIgnored(why));
    assert_eq!(ignored(&r, "sources_per_group_limit"), 2, "g1: 3 of 5");
    assert_eq!(ignored(&r, "sg_limit"), 4, "g2: 1 more makes 4 in all");
    assert_eq!(ignored(&r, "group_limit"), 1, "g3: a third group");
    let listened = r
        .status(Millis(10))
        .interfaces
        .iter()
        .map(|i| i.listeners.len())
        .sum::<usize>();
    assert!(listened <= 4, "{listened}");
    // A refresh of what is already kept is not a new entry: nothing more is refused.
    report_from(&mut r, 20, HOST, g1, &sources[..3]);
    assert_eq!(ignored(&r, "sources_per_group_limit"), 2);
}

#[test]
fn one_host_reporting_too_fast_is_dropped_and_the_others_are_heard() {
    let mut r = capped("      reports_per_second_per_host: 1\n      report_burst_per_host: 2\n");
    for i in 0..10u16 {
        report_from(&mut r, 10, HOST, a(&format!("ff35::{:x}", i + 1)), &[s()]);
    }
    assert_eq!(r.stats().get(Counter::MldIgnored("host_rate_limit")), 8);
    report_from(&mut r, 10, "fe80::98", g(), &[s()]);
    assert_eq!(r.stats().get(Counter::MldIgnored("host_rate_limit")), 8);
    assert_eq!(r.stats().get(Counter::MldRecord("is_in")), 3);
    // A second later the flooding host has a token again.
    report_from(&mut r, 1010, HOST, g(), &[s()]);
    assert_eq!(r.stats().get(Counter::MldRecord("is_in")), 4);
}

/// The negative entries of a pruned channel (issue 11, cause 4): after the last listener
/// leaves, the entry forwards nowhere for the hold time instead of disappearing, so the kernel
/// drops the packets still arriving instead of queueing them for the next install.
#[test]
fn a_pruned_channel_keeps_a_negative_entry_for_the_hold_time() {
    let mut r = router_with(&CONFIG.replace(
        "query_interval_secs: 20",
        "query_interval_secs: 20\n      fast_leave: true",
    ));
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::BlockOldSources, &[s()]);
    let out = r.take_actions();
    let negative: Vec<&Action> = out
        .iter()
        .filter(|act| matches!(act, Action::MfcAdd { .. } | Action::MfcDel { .. }))
        .collect();
    assert_eq!(
        negative,
        vec![&Action::MfcAdd {
            sg: sg(),
            iif: CORE0,
            oifs: vec![],
            interest_since: None
        }],
        "the entry is replaced by one forwarding nowhere, not deleted"
    );
    assert!(r.negative.contains(sg()));
    let hold = u64::try_from(hold::NEGATIVE_HOLD.as_millis()).unwrap();
    let before = acts(&run_until(&mut r, 1001, 1000 + hold - 1));
    assert!(
        !before
            .iter()
            .any(|act| matches!(act, Action::MfcDel { .. })),
        "{before:?}"
    );
    let after = acts(&run_until(&mut r, 1000 + hold, 1000 + hold + 10));
    assert_eq!(
        after
            .iter()
            .filter(|act| matches!(act, Action::MfcDel { sg: x } if *x == sg()))
            .count(),
        1,
        "deleted once the hold is over: {after:?}"
    );
    assert!(!r.negative.contains(sg()));
}

/// A negative entry the kernel refuses leaves the forwarding entry it was to replace: that one
/// is deleted instead, so nothing forwards to a link without listeners.
#[test]
fn a_refused_negative_entry_deletes_the_forwarding_one() {
    use mipcast_proto::{Machine, Outcome};
    let mut r = router_with(&CONFIG.replace(
        "query_interval_secs: 20",
        "query_interval_secs: 20\n      fast_leave: true",
    ));
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::BlockOldSources, &[s()]);
    r.take_actions();
    let refused = machine::Change::MfcAdd {
        sg: sg(),
        iif: CORE0,
        oifs: vec![],
        interest_since: None,
    };
    Machine::kernel_result(
        &mut r,
        mipcast_proto::Now::from_unix(1001, std::time::Duration::ZERO),
        &refused,
        Outcome::Refused {
            errno: Some(libc::ENOBUFS),
            reason: "test".into(),
        },
    );
    assert_eq!(r.take_actions(), vec![Action::MfcDel { sg: sg() }]);
    assert!(!r.negative.contains(sg()));
}

#[test]
fn a_listener_back_within_the_hold_replaces_the_negative_entry() {
    let mut r = router_with(&CONFIG.replace(
        "query_interval_secs: 20",
        "query_interval_secs: 20\n      fast_leave: true",
    ));
    joined_upstream(&mut r, a("fe80::2:2"));
    report(&mut r, 1000, RecordType::BlockOldSources, &[s()]);
    r.take_actions();
    report(&mut r, 2000, RecordType::AllowNewSources, &[s()]);
    assert_eq!(r.take_actions(), vec![Action::ResolveRpf(s())]);
    r.rpf_resolved(
        Millis(2001),
        s(),
        Some(RpfRoute {
            ifindex: CORE0,
            gateway: Some(a("2001:db8:99::1")),
        }),
    );
    let back = r.take_actions();
    assert_eq!(mfc_adds(&back), vec![(CORE0, vec![ACC])], "{back:?}");
    assert!(!r.negative.contains(sg()));
    // No late deletion of the (now forwarding) entry when the old hold would have ended.
    let hold = u64::try_from(hold::NEGATIVE_HOLD.as_millis()).unwrap();
    let later = acts(&run_until(&mut r, 2001, 1000 + hold + 10));
    assert!(
        !later.iter().any(|act| matches!(act, Action::MfcDel { .. })),
        "{later:?}"
    );
    // Shutdown removes the forwarding entry; a negative one goes too.
    report(
        &mut r,
        1000 + hold + 20,
        RecordType::BlockOldSources,
        &[s()],
    );
    r.take_actions();
    r.shutdown();
    let out = r.take_actions();
    assert_eq!(
        out.iter()
            .filter(|act| matches!(act, Action::MfcDel { .. }))
            .count(),
        1,
        "{out:?}"
    );
}
