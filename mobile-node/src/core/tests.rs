//! Scripted event sequences for every transition, asserting on the Binding Updates sent (as
//! decoded and verified bytes) and the kernel changes requested.
use std::net::Ipv6Addr;

use mipcast_wire::auth::{self, Algorithm, Credentials};
use mipcast_wire::mh::{
    back_status, bu_flags, BindingAck, Experimental, Message, MhRepr, MobilityOption,
};
use mipcast_wire::nd::{MapOption, NdOption, NdRepr, PrefixInformation, RouterAdvert};

use super::*;

const E1: u32 = 2;
const E2: u32 = 3;
const LO: u32 = 1;
const MAC1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC2: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const NTP0: u64 = 3_900_000_000 << 32;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn hoa() -> Ipv6Addr {
    a("2001:db8:99::100")
}
fn ha() -> Ipv6Addr {
    a("2001:db8:2::1")
}
fn mma1() -> Ipv6Addr {
    a("2001:db8:10::1")
}
fn mma2() -> Ipv6Addr {
    a("2001:db8:20::1")
}
/// The home site's MMA.
fn mma_home() -> Ipv6Addr {
    a("2001:db8:90::1")
}
fn group() -> Ipv6Addr {
    a("ff35::ff:fe00:1")
}
fn sa_of(spi: u32) -> Sa {
    Sa {
        spi,
        algorithm: Algorithm::HmacSha256_128,
        key: vec![spi as u8; 20],
    }
}

fn config(mode: Mode) -> CoreConfig {
    CoreConfig {
        hoa: hoa(),
        home_agent: ha(),
        home_prefix: "2001:db8:99::/64".parse().unwrap(),
        group: group(),
        mode,
        lifetime_s: 300,
        ha_sa: sa_of(300),
        mma_sas: [(mma1(), sa_of(301)), (mma2(), sa_of(302))].into(),
        default_mma_sa: Some(sa_of(399)),
        links: vec![
            LinkConfig {
                ifindex: E1,
                name: "e1".into(),
                mac: MAC1,
                preference: 50,
                cost: 0,
            },
            LinkConfig {
                ifindex: E2,
                name: "e2".into(),
                mac: MAC2,
                preference: 50,
                cost: 0,
            },
        ],
        lo_ifindex: LO,
        policy: Policy {
            hysteresis: 10,
            min_dwell_ms: 2000,
            ra_timeout_ms: 3000,
            levels: links::Levels::OFF,
            probe_interval_ms: 0,
            loss_penalty: 0,
            pre_register: false,
            prepare_always: false,
            prepare_link_up: false,
        },
        overlap_ms: 1000,
        grace_s: 10,
        tables: Tables {
            decap_table: 100,
            uplink_table: 200,
            second_link_table: 101,
            decap_pref: 10,
            uplink_pref: 20,
        },
    }
}

fn sa_for(peer: Ipv6Addr) -> Sa {
    let c = config(Mode::Site);
    if peer == ha() {
        c.ha_sa
    } else {
        c.mma_sas.get(&peer).cloned().unwrap_or(sa_of(399))
    }
}

/// A Router Advertisement with one autonomous /64 and, optionally, a MAP option.
fn ra(prefix: &str, mma: Option<Ipv6Addr>) -> Vec<u8> {
    let mut options = vec![NdOption::PrefixInformation(PrefixInformation {
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 86400,
        preferred_lifetime: 14400,
        prefix: a(prefix),
    })];
    if let Some(m) = mma {
        options.push(NdOption::Map(MapOption {
            distance: 1,
            preference: 10,
            rcoa: false,
            valid_lifetime: 3600,
            address: m,
        }));
    }
    let repr = NdRepr::RouterAdvert(RouterAdvert {
        cur_hop_limit: 64,
        managed: false,
        other: false,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        options,
    });
    let mut buf = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A decoded BU as the peer would see it, after verifying its authenticator.
#[derive(Debug, Clone, Copy)]
struct SentBu {
    peer: Ipv6Addr,
    src: Ipv6Addr,
    seq: u16,
    flags: u16,
    lifetime_units: u16,
    alt_coa: Option<Ipv6Addr>,
    group: Option<Ipv6Addr>,
    forward: Option<(Ipv6Addr, u32)>,
    timestamp: u64,
}

fn decode(o: &Outgoing) -> SentBu {
    let repr = MhRepr::parse(&o.bytes).unwrap();
    let Message::BindingUpdate(bu) = repr.message else {
        panic!("not a BU")
    };
    assert_eq!(
        repr.home_address(),
        Some(hoa()),
        "HNP carries the home address"
    );
    let alt = repr.alternate_care_of();
    let coa = alt.unwrap_or(o.src);
    let sa = sa_for(o.peer);
    auth::verify(&o.bytes, &coa, &hoa(), |spi| {
        (spi == sa.spi).then_some((sa.algorithm, sa.key.as_slice()))
    })
    .expect("BU authenticates with the peer's SA");
    let group = repr.experimental().find_map(|e| match e {
        Experimental::TerminalGroup(g) => Some(*g),
        _ => None,
    });
    let forward = repr.experimental().find_map(|e| match e {
        Experimental::ForwardingRequest {
            new_coa,
            grace_secs,
        } => Some((*new_coa, *grace_secs)),
        _ => None,
    });
    SentBu {
        peer: o.peer,
        src: o.src,
        seq: bu.sequence,
        flags: bu.flags,
        lifetime_units: bu.lifetime,
        alt_coa: alt,
        group,
        forward,
        timestamp: repr.replay_timestamp().expect("replay protection"),
    }
}

/// The BAck a peer sends for `bu`, signed with its SA.
fn back_for(
    bu: &SentBu,
    status: u8,
    seq: u16,
    timestamp: u64,
    assigned: Option<Ipv6Addr>,
) -> Vec<u8> {
    let mut options = vec![MobilityOption::ReplayProtection { timestamp }];
    if let Some(c) = assigned {
        options.push(MobilityOption::Experimental(Experimental::AssignedCoa(c)));
    }
    let lifetime = if status < 128 { bu.lifetime_units } else { 0 };
    let repr = MhRepr {
        message: Message::BindingAck(BindingAck {
            status,
            flags: 0,
            sequence: seq,
            lifetime,
        }),
        options,
    };
    let sa = sa_for(bu.peer);
    let mut buf = vec![0; repr.buffer_len() + 40];
    let creds = Credentials {
        spi: sa.spi,
        algorithm: sa.algorithm,
        key: &sa.key,
    };
    let coa = bu.alt_coa.unwrap_or(bu.src);
    let n = repr
        .emit_authenticated(&mut buf, &creds, &coa, &hoa())
        .unwrap();
    buf.truncate(n);
    buf
}

/// An output of the core, flattened for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    SendRs { ifindex: u32 },
    SendBu(Outgoing),
    Kernel(KernelChange),
    Metric(MetricEvent),
}

impl From<Output> for Action {
    fn from(o: Output) -> Action {
        match o {
            Output::Send(Send::Rs { ifindex }) => Action::SendRs { ifindex },
            Output::Send(Send::Bu(bu)) => Action::SendBu(bu),
            Output::Kernel(k) => Action::Kernel(k),
            Output::Event(m) => Action::Metric(m),
        }
    }
}

struct H {
    core: Core,
    t: u64,
    /// The kernel's answer to each change (everything applied unless a test says otherwise).
    kernel: fn(&KernelChange) -> Outcome,
}

impl H {
    fn new(mode: Mode) -> H {
        H {
            core: Core::new(config(mode), Persisted::default()),
            t: 1_000,
            kernel: |_| Outcome::Applied,
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: Millis(self.t),
            wall_ntp: NTP0 + mipcast_wire::ntp::ms_to_ntp_units(self.t),
        }
    }
    fn ev(&mut self, e: Event<'_>) -> Vec<Action> {
        let now = self.now();
        self.core.handle_input(now, e);
        self.settle()
    }
    fn settle(&mut self) -> Vec<Action> {
        let now = self.now();
        mipcast_proto::settle(&mut self.core, now, self.kernel)
            .into_iter()
            .map(Action::from)
            .collect()
    }
    fn tick(&mut self) -> Vec<Action> {
        let now = self.now();
        self.core.handle_timeout(now);
        self.settle()
    }
    fn advance(&mut self, ms: u64) -> Vec<Action> {
        // Step in 100 ms ticks, as the shell's timer would wake us.
        let mut out = Vec::new();
        let end = self.t + ms;
        while self.t < end {
            self.t = (self.t + 100).min(end);
            out.extend(self.tick());
        }
        out
    }
    fn up(&mut self, ifindex: u32) -> Vec<Action> {
        self.ev(Event::Link { ifindex, up: true })
    }
    fn down(&mut self, ifindex: u32) -> Vec<Action> {
        self.ev(Event::Link { ifindex, up: false })
    }
    fn ra(&mut self, ifindex: u32, prefix: &str, mma: Option<Ipv6Addr>) -> Vec<Action> {
        let bytes = ra(prefix, mma);
        let router = if ifindex == E1 {
            a("fe80::1")
        } else {
            a("fe80::2")
        };
        self.ev(Event::RouterAdvert {
            ifindex,
            src: router,
            hop_limit: 255,
            bytes: &bytes,
        })
    }
    fn ack(&mut self, bu: &SentBu, status: u8, assigned: Option<Ipv6Addr>) -> Vec<Action> {
        let bytes = back_for(bu, status, bu.seq, bu.timestamp, assigned);
        self.ev(Event::Mobility {
            src: bu.peer,
            bytes: &bytes,
        })
    }
    /// Attached in site 1 on e1 with both registrations accepted.
    fn registered_in_site1(mode: Mode) -> H {
        let mut h = H::new(mode);
        h.up(E1);
        let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
        let mma_bu = bus(&acts).remove(0);
        let acts = h.ack(&mma_bu, 0, Some(mma1()));
        let ha_bu = bus(&acts).remove(0);
        let acts = h.ack(&ha_bu, 0, None);
        assert!(bus(&acts).is_empty());
        h
    }
}

fn bus(actions: &[Action]) -> Vec<SentBu> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendBu(o) => Some(decode(o)),
            _ => None,
        })
        .collect()
}

fn kchanges(actions: &[Action]) -> Vec<KernelChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Kernel(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

fn pos(changes: &[KernelChange], f: impl Fn(&KernelChange) -> bool) -> usize {
    changes
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("change not found in {changes:#?}"))
}

fn slaac_of(prefix: &str, mac: [u8; 6]) -> Ipv6Addr {
    links::slaac(a(prefix), mac)
}

fn uplink_route(seg: Ipv6Addr, oif: u32) -> KObject {
    KObject::EncapRoute {
        dst: "::/0".parse().unwrap(),
        src: None,
        tunnel_dst: seg,
        oif,
        table: 200,
    }
}

fn unicast_decap_rule(from: Ipv6Addr, to: Ipv6Addr) -> KObject {
    KObject::Rule {
        pref: 11,
        from: Some(Ipv6Network::from(from)),
        to: Some(Ipv6Network::from(to)),
        ipproto: Some(41),
        table: 100,
    }
}

fn handovers(actions: &[Action]) -> Vec<HandoverKind> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Metric(MetricEvent::Handover(k)) => Some(*k),
            _ => None,
        })
        .collect()
}

#[test]
fn start_at_home_sends_nothing_and_uses_the_home_address_natively() {
    let mut h = H::new(Mode::Site);
    let acts = h.up(E1);
    assert!(acts.contains(&Action::SendRs { ifindex: E1 }));
    // Before any RA: the home address waits on lo.
    assert!(kchanges(&acts).contains(&KernelChange::AddAddress(Address {
        ifindex: LO,
        addr: hoa(),
        prefix_len: 128
    })));
    let acts = h.ra(E1, "2001:db8:99::", Some(mma_home()));
    assert!(bus(&acts).is_empty(), "nothing to deregister at home");
    let k = kchanges(&acts);
    let add = pos(&k, |c| {
        *c == KernelChange::AddAddress(Address {
            ifindex: E1,
            addr: hoa(),
            prefix_len: 64,
        })
    });
    let del = pos(&k, |c| {
        *c == KernelChange::RemoveAddress(Address {
            ifindex: LO,
            addr: hoa(),
            prefix_len: 128,
        })
    });
    assert!(add < del);
    assert!(k.contains(&KernelChange::SetDefaultRoute(DefaultRoute {
        ifindex: E1,
        gateway: a("fe80::1")
    })));
    assert!(!k.iter().any(|c| matches!(
        c,
        KernelChange::Install(_) | KernelChange::Join(_) | KernelChange::MarkGroup(_)
    )));
    assert_eq!(h.core.attachment(), Attach::Home { ifindex: E1 });
    assert_eq!(handovers(&acts), vec![HandoverKind::Home]);
}

#[test]
fn home_to_visited_site_registers_with_the_mma_then_the_home_agent() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    h.ra(E1, "2001:db8:99::", None);
    h.up(E2);
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    let acts = h.down(E1);
    let onlink = slaac_of("2001:db8:10:2::", MAC2);
    let sent = bus(&acts);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let bu = &sent[0];
    assert_eq!((bu.peer, bu.src), (mma1(), onlink));
    assert_eq!(bu.flags, bu_flags::ACK | bu_flags::MAP);
    assert_eq!(bu.lifetime_units, 75);
    assert_eq!(bu.group, Some(group()));
    assert_eq!(bu.alt_coa, None);
    let k = kchanges(&acts);
    let join = pos(&k, |c| {
        *c == KernelChange::Join(Membership {
            ifindex: E2,
            group: group(),
            source: mma1(),
        })
    });
    let up = pos(&k, |c| {
        *c == KernelChange::Install(uplink_route(mma1(), E2))
    });
    assert!(join < up);
    // The marking waits for the MMA's acknowledgement (see `home::mark_group_now`).
    assert!(!k.contains(&KernelChange::MarkGroup(group())));
    assert!(k.contains(&KernelChange::Install(KObject::Rule {
        pref: 10,
        from: None,
        to: Some(Ipv6Network::from(group())),
        ipproto: Some(41),
        table: 100
    })));
    assert!(k.contains(&KernelChange::Install(KObject::DecapRoute {
        local: group(),
        oif: E2,
        table: 100,
        inner_table: 255
    })));
    assert!(k.contains(&KernelChange::Install(KObject::Rule {
        pref: 20,
        from: Some(Ipv6Network::from(hoa())),
        to: None,
        ipproto: None,
        table: 200
    })));
    assert!(k.contains(&KernelChange::AddAddress(Address {
        ifindex: LO,
        addr: hoa(),
        prefix_len: 128
    })));
    assert!(k.contains(&KernelChange::RemoveAddress(Address {
        ifindex: E1,
        addr: hoa(),
        prefix_len: 64
    })));

    // MMA accepts and assigns its address as CoA: now the home agent.
    let acts = h.ack(bu, 0, Some(mma1()));
    assert!(kchanges(&acts).contains(&KernelChange::MarkGroup(group())));
    let sent = bus(&acts);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let hbu = &sent[0];
    assert_eq!((hbu.peer, hbu.src), (ha(), onlink));
    assert_eq!(hbu.flags, bu_flags::ACK | bu_flags::HOME);
    assert_eq!(hbu.alt_coa, Some(mma1()));
    assert_eq!(hbu.forward, None);
    let acts = h.ack(hbu, 0, None);
    assert!(acts.contains(&Action::Metric(MetricEvent::Registration {
        peer: PeerKind::HomeAgent,
        outcome: "accepted".into()
    })));
    assert_eq!(h.core.care_of_address(), Some(mma1()));
}

#[test]
fn intra_site_move_is_make_before_break_with_zero_binding_updates() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    let acts = h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    assert!(bus(&acts).is_empty());
    h.advance(2500);
    h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    // e1 degrades (but still works): e2 wins by more than the hysteresis.
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(60),
    });
    assert!(bus(&acts).is_empty(), "intra-site: no BU");
    assert_eq!(handovers(&acts), vec![HandoverKind::IntraSite]);
    let k = kchanges(&acts);
    let join = pos(&k, |c| {
        *c == KernelChange::Join(Membership {
            ifindex: E2,
            group: group(),
            source: mma1(),
        })
    });
    let up = pos(&k, |c| {
        *c == KernelChange::Install(uplink_route(mma1(), E2))
    });
    assert!(join < up, "join before the uplink switch");
    assert!(
        !k.iter().any(|c| matches!(c, KernelChange::Leave(_))),
        "old branch kept during the overlap"
    );
    // Both links decapsulate during the overlap (issue 11, cause 1): the old one through the
    // second-link rule and table (a multicast route only matches on its own interface).
    let second_rule = KObject::Rule {
        pref: 12,
        from: None,
        to: Some(group().into()),
        ipproto: Some(41),
        table: 101,
    };
    let second_decap = KObject::DecapRoute {
        local: group(),
        oif: E1,
        table: 101,
        inner_table: mipcast_proto::RT_TABLE_LOCAL,
    };
    assert!(k.contains(&KernelChange::Install(second_rule)), "{k:?}");
    assert!(k.contains(&KernelChange::Install(second_decap)), "{k:?}");
    assert!(
        !k.iter()
            .any(|c| matches!(c, KernelChange::Remove(KObject::EncapRoute { .. }))),
        "uplink replaced in place"
    );
    let mut later = Vec::new();
    for _ in 0..12 {
        h.t += 100;
        later.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
        later.extend(h.ra(E2, "2001:db8:10:2::", Some(mma1())));
    }
    assert!(bus(&later).is_empty());
    assert_eq!(
        kchanges(&later),
        vec![
            KernelChange::Remove(second_rule),
            KernelChange::Remove(second_decap),
            KernelChange::Leave(Membership {
                ifindex: E1,
                group: group(),
                source: mma1()
            })
        ],
        "the overlap ends: the old link neither decapsulates nor listens"
    );
}

#[test]
fn intra_site_move_on_link_down_leaves_at_once() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    let acts = h.down(E1);
    assert!(bus(&acts).is_empty());
    let k = kchanges(&acts);
    assert!(k.contains(&KernelChange::Join(Membership {
        ifindex: E2,
        group: group(),
        source: mma1()
    })));
    assert!(k.contains(&KernelChange::Leave(Membership {
        ifindex: E1,
        group: group(),
        source: mma1()
    })));
    assert!(k.contains(&KernelChange::Install(uplink_route(mma1(), E2))));
}

#[test]
fn a_refused_kernel_change_is_reported_and_retried_until_it_holds() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    let join_e2 = Membership {
        ifindex: E2,
        group: group(),
        source: mma1(),
    };
    // The kernel refuses the join on the new link (say, the interface has no multicast yet).
    h.kernel = |c| match c {
        KernelChange::Join(m) if m.ifindex == E2 => Outcome::Refused {
            errno: Some(libc::ENOBUFS),
            reason: "No buffer space available".into(),
        },
        _ => Outcome::Applied,
    };
    let acts = h.down(E1);
    assert!(kchanges(&acts).contains(&KernelChange::Join(join_e2)));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Metric(MetricEvent::KernelRefused { .. }))));
    // The core knows the kernel does not hold it, and wakes up to try again.
    assert!(!h.core.applied().memberships.contains(&join_e2));
    let retry = h.core.poll_timeout().expect("a retry is scheduled");
    assert!(retry.0 <= h.t + 1000, "retry at {retry:?}, now {}", h.t);
    // Still refused at the first retry: asked again, reported again.
    h.t = retry.0;
    let acts = h.tick();
    assert_eq!(
        kchanges(&acts),
        vec![KernelChange::Join(join_e2)],
        "only the missing change is asked for again"
    );
    // The kernel recovers: the next retry installs it and the retries stop.
    h.kernel = |_| Outcome::Applied;
    h.t = h.core.poll_timeout().expect("retry").0;
    let acts = h.tick();
    assert_eq!(kchanges(&acts), vec![KernelChange::Join(join_e2)]);
    assert!(h.core.applied().memberships.contains(&join_e2));
    h.advance(2000);
    assert!(kchanges(&h.tick()).is_empty());
}

#[test]
fn site_to_other_site_registers_new_mma_then_home_agent_and_old_mma_with_forwarding() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    let acts = h.down(E1);
    assert_eq!(handovers(&acts), vec![HandoverKind::InterSite]);
    let sent = bus(&acts);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].peer, sent[0].flags),
        (mma2(), bu_flags::ACK | bu_flags::MAP)
    );
    assert!(kchanges(&acts).contains(&KernelChange::Join(Membership {
        ifindex: E2,
        group: group(),
        source: mma2()
    })));
    let acts = h.ack(&sent[0], 0, Some(mma2()));
    let sent = bus(&acts);
    let onlink = slaac_of("2001:db8:20:1::", MAC2);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        (sent[0].peer, sent[0].alt_coa, sent[0].flags),
        (ha(), Some(mma2()), bu_flags::ACK | bu_flags::HOME)
    );
    assert_eq!(
        (sent[1].peer, sent[1].lifetime_units, sent[1].flags),
        (mma1(), 0, bu_flags::ACK | bu_flags::MAP)
    );
    assert_eq!(sent[1].forward, Some((onlink, 10)));
    let k = kchanges(&acts);
    assert!(k.contains(&KernelChange::Install(unicast_decap_rule(mma1(), onlink))));
    assert!(k.contains(&KernelChange::Install(KObject::DecapRoute {
        local: onlink,
        oif: E2,
        table: 100,
        inner_table: 255
    })));
    let old = sent[1];
    let acts = h.ack(&old, 0, None);
    assert!(acts.contains(&Action::Metric(MetricEvent::Registration {
        peer: PeerKind::Mma,
        outcome: "deregistered".into()
    })));
    // Forwarding state goes when the grace period ends.
    let mut later = Vec::new();
    for _ in 0..105 {
        h.t += 100;
        later.extend(h.ra(E2, "2001:db8:20:1::", Some(mma2())));
    }
    assert!(kchanges(&later).contains(&KernelChange::Remove(unicast_decap_rule(mma1(), onlink))));
}

#[test]
fn foreign_site_to_home_deregisters_ha_and_last_mma_with_forwarding_to_the_home_address() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:99::", Some(mma_home()));
    let acts = h.down(E1);
    assert_eq!(handovers(&acts), vec![HandoverKind::Home]);
    let sent = bus(&acts);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        (
            sent[0].peer,
            sent[0].src,
            sent[0].lifetime_units,
            sent[0].flags
        ),
        (ha(), hoa(), 0, bu_flags::ACK | bu_flags::HOME)
    );
    assert_eq!(sent[0].alt_coa, None);
    assert_eq!(
        (sent[1].peer, sent[1].src, sent[1].lifetime_units),
        (mma1(), hoa(), 0)
    );
    assert_eq!(sent[1].forward, Some((hoa(), 10)));
    let k = kchanges(&acts);
    let add = pos(&k, |c| {
        *c == KernelChange::AddAddress(Address {
            ifindex: E2,
            addr: hoa(),
            prefix_len: 64,
        })
    });
    assert!(add < k.len());
    assert!(k.contains(&KernelChange::RemoveAddress(Address {
        ifindex: LO,
        addr: hoa(),
        prefix_len: 128
    })));
    assert!(k.contains(&KernelChange::Remove(KObject::Rule {
        pref: 20,
        from: Some(Ipv6Network::from(hoa())),
        to: None,
        ipproto: None,
        table: 200
    })));
    assert!(k.contains(&KernelChange::UnmarkGroup(group())));
    assert!(k.contains(&KernelChange::Install(unicast_decap_rule(mma1(), hoa()))));
    // The kernel changes come before the BUs: the home address must be on the link first.
    let first_bu = acts
        .iter()
        .position(|x| matches!(x, Action::SendBu(_)))
        .unwrap();
    assert!(acts[..first_bu]
        .iter()
        .all(|x| matches!(x, Action::Kernel(_))));
    let acts = h.ack(&sent[0], 0, None);
    assert!(acts.contains(&Action::Metric(MetricEvent::Registration {
        peer: PeerKind::HomeAgent,
        outcome: "deregistered".into()
    })));
}

#[test]
fn home_sites_other_subnet_is_a_site_move_only_when_the_mma_differs() {
    // From a foreign site to the home site's MMA on a non-home subnet: inter-site.
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:90:5::", Some(mma_home()));
    let acts = h.down(E1);
    assert_eq!(handovers(&acts), vec![HandoverKind::InterSite]);
    let sent = bus(&acts);
    assert_eq!(sent[0].peer, mma_home());
    let acts = h.ack(&sent[0], 0, Some(mma_home()));
    let peers: Vec<Ipv6Addr> = bus(&acts).iter().map(|b| b.peer).collect();
    assert_eq!(peers, vec![ha(), mma1()]);

    // Within the home site, from one non-home subnet to another: intra-site.
    let acts = h.up(E1);
    assert!(bus(&acts).is_empty());
    h.ra(E1, "2001:db8:90:6::", Some(mma_home()));
    let acts = h.down(E2);
    assert_eq!(handovers(&acts), vec![HandoverKind::IntraSite]);
    assert!(bus(&acts).is_empty());
}

#[test]
fn plain_mipv6_registers_the_onlink_address_and_reregisters_on_every_move() {
    let mut h = H::new(Mode::Mipv6);
    h.up(E1);
    let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    let coa1 = slaac_of("2001:db8:10:1::", MAC1);
    let sent = bus(&acts);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].peer, sent[0].src, sent[0].flags, sent[0].group),
        (ha(), coa1, bu_flags::ACK | bu_flags::HOME, None)
    );
    let k = kchanges(&acts);
    assert!(k.contains(&KernelChange::AddAddress(Address {
        ifindex: E1,
        addr: coa1,
        prefix_len: 64
    })));
    assert!(k.contains(&KernelChange::Install(unicast_decap_rule(ha(), coa1))));
    assert!(k.contains(&KernelChange::Install(KObject::DecapRoute {
        local: coa1,
        oif: E1,
        table: 100,
        inner_table: 255
    })));
    assert!(k.contains(&KernelChange::Install(uplink_route(ha(), E1))));
    assert!(!k
        .iter()
        .any(|c| matches!(c, KernelChange::Join(_) | KernelChange::MarkGroup(_))));
    h.ack(&sent[0], 0, None);
    assert_eq!(h.core.care_of_address(), Some(coa1));

    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", None);
    let acts = h.down(E1);
    let coa2 = slaac_of("2001:db8:20:1::", MAC2);
    let sent2 = bus(&acts);
    assert_eq!(sent2.len(), 1);
    assert_eq!((sent2[0].peer, sent2[0].src), (ha(), coa2));
    assert!(sent2[0].seq > sent[0].seq);
    let k = kchanges(&acts);
    assert!(k.contains(&KernelChange::Install(unicast_decap_rule(ha(), coa2))));
    assert!(k.contains(&KernelChange::Install(uplink_route(ha(), E2))));
    // The home agent's tunnel to the previous care-of address still decapsulates for a
    // moment (what it sent before our BU is still on its way), then goes.
    let old_rule = KernelChange::Remove(unicast_decap_rule(ha(), coa1));
    assert!(!k.contains(&old_rule));
    let k = kchanges(&h.advance(super::mipv6::PREVIOUS_COA_DECAP_MS - 100));
    assert!(!k.contains(&old_rule), "{k:?}");
    let k = kchanges(&h.advance(200));
    assert!(k.contains(&old_rule), "{k:?}");
}

#[test]
fn site_mode_without_map_option_falls_back_to_plain_mipv6() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let acts = h.ra(E1, "2001:db8:30:1::", None);
    assert_eq!(handovers(&acts), vec![HandoverKind::Mipv6]);
    let sent = bus(&acts);
    assert_eq!(
        (sent[0].peer, sent[0].src),
        (ha(), slaac_of("2001:db8:30:1::", MAC1))
    );
}

#[test]
fn retransmission_backs_off_from_1_5_s_doubling_to_32_s_then_gives_up() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    let first = bus(&acts).remove(0);
    let start = h.t;
    let mut times = vec![0];
    let mut seqs = vec![first.seq];
    let mut gave_up = None;
    for _ in 0..900 {
        h.t += 100;
        let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
        for b in bus(&acts) {
            assert_eq!(b.peer, mma1());
            times.push(h.t - start);
            seqs.push(b.seq);
        }
        if acts.contains(&Action::Metric(MetricEvent::Registration {
            peer: PeerKind::Mma,
            outcome: "timeout".into(),
        })) {
            gave_up = Some(h.t - start);
            break;
        }
    }
    assert_eq!(times, vec![0, 1500, 4500, 10500, 22500, 46500]);
    assert_eq!(gave_up, Some(78500));
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "a new sequence number per retransmission: {seqs:?}"
    );
}

#[test]
fn refresh_before_expiry_uses_the_one_second_initial_timeout() {
    let mut h = H::registered_in_site1(Mode::Site);
    let mut sends = Vec::new();
    let start = h.t;
    for _ in 0..2600 {
        h.t += 100;
        let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
        sends.extend(bus(&acts).into_iter().map(|b| (h.t - start, b.peer)));
        if sends.len() >= 4 {
            break;
        }
    }
    // Lifetime 300 s: refresh at 80 %, then (unanswered) retransmit after 1 s.
    assert_eq!(sends[0].0, 240_000);
    assert!(
        sends.iter().any(|(t, p)| *p == sends[0].1 && *t == 241_000),
        "{sends:?}"
    );
}

#[test]
fn status_135_resynchronises_the_sequence_number() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let bu = bus(&h.ra(E1, "2001:db8:10:1::", Some(mma1()))).remove(0);
    let bytes = back_for(
        &bu,
        back_status::SEQUENCE_OUT_OF_WINDOW,
        5000,
        bu.timestamp,
        None,
    );
    let acts = h.ev(Event::Mobility {
        src: mma1(),
        bytes: &bytes,
    });
    let again = bus(&acts);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seq, 5001);
}

#[test]
fn status_144_resynchronises_the_timestamp_to_the_peers_clock() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let bu = bus(&h.ra(E1, "2001:db8:10:1::", Some(mma1()))).remove(0);
    let theirs = bu.timestamp + (100u64 << 32);
    let bytes = back_for(&bu, back_status::MIPV6_ID_MISMATCH, bu.seq, theirs, None);
    let again = bus(&h.ev(Event::Mobility {
        src: mma1(),
        bytes: &bytes,
    }));
    assert_eq!(again.len(), 1);
    assert!(
        again[0].timestamp >= theirs && again[0].timestamp - theirs < (1u64 << 32),
        "{:x} vs {theirs:x}",
        again[0].timestamp
    );
}

#[test]
fn unauthenticated_or_stale_acks_change_nothing() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let bu = bus(&h.ra(E1, "2001:db8:10:1::", Some(mma1()))).remove(0);
    let mut forged = back_for(&bu, 0, bu.seq, bu.timestamp, Some(mma1()));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let acts = h.ev(Event::Mobility {
        src: mma1(),
        bytes: &forged,
    });
    assert!(bus(&acts).is_empty(), "no HA BU on a forged BAck");
    let stale = back_for(&bu, 0, bu.seq.wrapping_sub(1), bu.timestamp, Some(mma1()));
    assert!(bus(&h.ev(Event::Mobility {
        src: mma1(),
        bytes: &stale
    }))
    .is_empty());
    let rejected = back_for(
        &bu,
        back_status::ADMIN_PROHIBITED,
        bu.seq,
        bu.timestamp,
        None,
    );
    let acts = h.ev(Event::Mobility {
        src: mma1(),
        bytes: &rejected,
    });
    assert!(acts.contains(&Action::Metric(MetricEvent::Registration {
        peer: PeerKind::Mma,
        outcome: "rejected_129".into()
    })));
    assert!(
        bus(&h.advance(5000)).is_empty(),
        "a rejected registration is not retransmitted"
    );
}

#[test]
fn binding_refresh_request_triggers_a_new_registration() {
    let mut h = H::registered_in_site1(Mode::Site);
    let brr = mipcast_wire_brr();
    let acts = h.ev(Event::Mobility {
        src: mma1(),
        bytes: &brr,
    });
    let sent = bus(&acts);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].peer, sent[0].lifetime_units), (mma1(), 75));
    let acts = h.ev(Event::Mobility {
        src: a("2001:db8:77::1"),
        bytes: &brr,
    });
    assert!(bus(&acts).is_empty(), "no binding with that node");
}

fn mipcast_wire_brr() -> Vec<u8> {
    let repr = MhRepr {
        message: Message::BindingRefreshRequest,
        options: vec![],
    };
    let mut buf = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn flapping_quality_is_suppressed_by_hysteresis_and_dwell() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    let mut all = Vec::new();
    // e2 scores up to 9 points better, then worse, repeatedly: below the hysteresis of 10.
    for i in 0..40 {
        h.t += 100;
        all.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
        all.extend(h.ra(E2, "2001:db8:10:2::", Some(mma1())));
        let q = if i % 2 == 0 { 91 } else { 100 };
        all.extend(h.ev(Event::Quality {
            ifindex: E1,
            value: Some(q),
        }));
    }
    assert!(
        handovers(&all).is_empty(),
        "no handover below the hysteresis"
    );
    assert!(all.contains(&Action::Metric(MetricEvent::Decision("held_hysteresis"))));
    // A big quality drop switches; an immediate reversal is held by the dwell time.
    h.t += 100;
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(20),
    });
    assert_eq!(handovers(&acts), vec![HandoverKind::IntraSite]);
    h.ev(Event::Quality {
        ifindex: E2,
        value: Some(20),
    });
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(100),
    });
    assert!(handovers(&acts).is_empty());
    assert!(acts.contains(&Action::Metric(MetricEvent::Decision("held_dwell"))));
    let mut later = Vec::new();
    for _ in 0..25 {
        h.t += 100;
        later.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
        later.extend(h.ra(E2, "2001:db8:10:2::", Some(mma1())));
    }
    assert_eq!(
        handovers(&later),
        vec![HandoverKind::IntraSite],
        "after the dwell time it switches back"
    );
    assert!(bus(&later).is_empty());
}

#[test]
fn router_advertisements_need_hop_limit_255_and_a_link_local_source() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    let bytes = ra("2001:db8:10:1::", Some(mma1()));
    let acts = h.ev(Event::RouterAdvert {
        ifindex: E1,
        src: a("fe80::1"),
        hop_limit: 64,
        bytes: &bytes,
    });
    assert!(acts.contains(&Action::Metric(MetricEvent::Dropped("ra_hop_limit"))));
    let acts = h.ev(Event::RouterAdvert {
        ifindex: E1,
        src: a("2001:db8::1"),
        hop_limit: 255,
        bytes: &bytes,
    });
    assert!(acts.contains(&Action::Metric(MetricEvent::Dropped(
        "ra_source_not_link_local"
    ))));
    assert_eq!(h.core.attachment(), Attach::Detached);
    let acts = h.ev(Event::RouterAdvert {
        ifindex: E1,
        src: a("fe80::1"),
        hop_limit: 255,
        bytes: &bytes[..10],
    });
    assert!(bus(&acts).is_empty());
    assert_eq!(h.core.attachment(), Attach::Detached);
}

#[test]
fn a_new_mma_on_the_same_link_is_an_inter_site_move() {
    let mut h = H::registered_in_site1(Mode::Site);
    let acts = h.ra(E1, "2001:db8:10:1::", Some(mma2()));
    assert_eq!(handovers(&acts), vec![HandoverKind::InterSite]);
    assert_eq!(bus(&acts)[0].peer, mma2());
}

mod home;
mod raise;
mod selection;

/// The previous MMA named in the BUs to `peer` among `actions` (issue 12 §3), one entry per BU.
fn previous_mma_named(actions: &[Action], peer: Ipv6Addr) -> Vec<Option<Ipv6Addr>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendBu(o) if o.peer == peer => Some(o),
            _ => None,
        })
        .map(|o| {
            MhRepr::parse(&o.bytes)
                .unwrap()
                .experimental()
                .find_map(|e| match e {
                    Experimental::PreviousMma(p) => Some(*p),
                    _ => None,
                })
        })
        .collect()
}

#[test]
fn an_inter_site_move_names_the_previous_mma_until_accepted() {
    let mut h = H::new(Mode::Site);
    h.up(E1);
    // The first registration comes from nowhere: no previous MMA.
    let acts = h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    assert_eq!(previous_mma_named(&acts, mma1()), vec![None]);
    let mma_bu = bus(&acts).remove(0);
    let ha_bu = bus(&h.ack(&mma_bu, 0, Some(mma1()))).remove(0);
    h.ack(&ha_bu, 0, None);
    // Inter-site move: the BU to the new MMA names the old one, retransmissions too.
    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    let acts = h.down(E1);
    assert_eq!(previous_mma_named(&acts, mma2()), vec![Some(mma1())]);
    let first = bus(&acts).remove(0);
    let retx = h.advance(1600);
    assert_eq!(previous_mma_named(&retx, mma2()), vec![Some(mma1())]);
    let bu = bus(&retx)
        .into_iter()
        .find(|b| b.peer == mma2())
        .unwrap_or(first);
    // Accepted: the refreshes, built from the same request, no longer name it.
    h.ack(&bu, 0, Some(mma2()));
    let reg = h.core.client.get(&mma2()).unwrap();
    assert_eq!(reg.state, reg::State::Bound);
    assert_eq!(reg.request.previous_mma, None);
}

/// Issue 11, section 3: between sites too, the old link keeps listening and decapsulating for
/// the overlap; the forwarding request goes shortly before it ends (the old MMA delivers down
/// the old tree until then) and leaves through the old link from the address registered there
/// (a host route to the old MMA through the old router), not through the new site and the
/// home agent.
#[test]
fn inter_site_make_before_break_keeps_the_old_site_and_asks_for_forwarding_through_it() {
    let mut h = H::registered_in_site1(Mode::Site);
    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    h.advance(2500);
    h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(60),
    });
    assert_eq!(handovers(&acts), vec![HandoverKind::InterSite]);
    let k = kchanges(&acts);
    assert!(
        !k.iter().any(|c| matches!(c, KernelChange::Leave(_))),
        "old site's branch kept: {k:?}"
    );
    assert!(k.contains(&KernelChange::Install(KObject::DecapRoute {
        local: group(),
        oif: E1,
        table: 101,
        inner_table: mipcast_proto::RT_TABLE_LOCAL,
    })));
    let to_mma1 = KObject::GatewayRoute {
        dst: mma1().into(),
        gateway: a("fe80::1"),
        oif: E1,
        table: mipcast_proto::RT_TABLE_MAIN,
    };
    assert!(k.contains(&KernelChange::Install(to_mma1)), "{k:?}");
    let sent = bus(&acts);
    let acts = h.ack(&sent[0], 0, Some(mma2()));
    assert!(
        bus(&acts).iter().all(|b| b.peer != mma1()),
        "no forwarding request while the old site delivers"
    );
    let ha_bu = bus(&acts).into_iter().find(|b| b.peer == ha()).unwrap();
    h.ack(&ha_bu, 0, None);
    let old_addr = slaac_of("2001:db8:10:1::", MAC1);
    let new_addr = slaac_of("2001:db8:20:1::", MAC2);
    // Shortly before the overlap ends the request goes; then the old site is left, its route
    // and decapsulation go.
    let mut later = Vec::new();
    for _ in 0..12 {
        h.t += 100;
        later.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
        later.extend(h.ra(E2, "2001:db8:20:1::", Some(mma2())));
    }
    let sent = bus(&later);
    let dereg = sent
        .iter()
        .find(|b| b.peer == mma1())
        .expect("forwarding request");
    assert_eq!(dereg.forward, Some((new_addr, 10)));
    assert_eq!(
        dereg.src, old_addr,
        "sent from the old link's registered address"
    );
    let k = kchanges(&later);
    assert!(k.contains(&KernelChange::Remove(to_mma1)), "{k:?}");
    assert!(k.contains(&KernelChange::Leave(Membership {
        ifindex: E1,
        group: group(),
        source: mma1()
    })));
}

/// The prepared candidate: a raw reading under the degrading threshold prepares the best other
/// link of the site before the move (its branch grafts meanwhile), without decapsulating
/// there (its copies would be duplicates).
#[test]
fn a_falling_raw_reading_prepares_the_candidate_before_the_move() {
    let mut cfg = config(Mode::Site);
    cfg.policy.levels = links::Levels {
        time_constant_ms: 2000,
        degrading_below: 50,
        stable_from: 65,
        unusable_below: 20,
        usable_from: 30,
    };
    let mut h = H::registered_in_site1(Mode::Site);
    h.core.cfg.policy = cfg.policy;
    h.up(E2);
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    h.advance(2500);
    h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    h.ra(E2, "2001:db8:10:2::", Some(mma1()));
    h.ev(Event::Quality {
        ifindex: E1,
        value: Some(100),
    });
    h.ev(Event::Quality {
        ifindex: E2,
        value: Some(60),
    });
    // The average of e1 still says 100: no move, but the candidate is joined.
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(40),
    });
    assert!(handovers(&acts).is_empty(), "no move yet");
    let k = kchanges(&acts);
    assert!(
        k.contains(&KernelChange::Join(Membership {
            ifindex: E2,
            group: group(),
            source: mma1()
        })),
        "{k:?}"
    );
    assert!(
        !k.iter().any(|c| matches!(
            c,
            KernelChange::Install(KObject::DecapRoute { oif: E2, .. })
        )),
        "no decapsulation on the candidate: {k:?}"
    );
}

/// Registered in site 1 on e1, e2 up in site 2; the quality of e1 falls: an inter-site move
/// with both links up (make before break). Returns the move's actions.
fn inter_site_mbb(h: &mut H) -> Vec<Action> {
    h.up(E2);
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    h.advance(2500);
    h.ra(E1, "2001:db8:10:1::", Some(mma1()));
    h.ra(E2, "2001:db8:20:1::", Some(mma2()));
    let acts = h.ev(Event::Quality {
        ifindex: E1,
        value: Some(60),
    });
    assert_eq!(handovers(&acts), vec![HandoverKind::InterSite]);
    acts
}

fn uplink_changes(acts: &[Action]) -> Vec<KernelChange> {
    kchanges(acts)
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                KernelChange::Install(KObject::EncapRoute { table: 200, .. })
                    | KernelChange::Remove(KObject::EncapRoute { table: 200, .. })
            )
        })
        .collect()
}

/// Issue 11 §3: the new MMA's reverse tunnel is refused by the home agent until it has the
/// binding update, so between sites the uplink stays on the old MMA (out of the old link)
/// until the home agent's acknowledgement; the home agent accepts the old CoA for a while
/// after the move (its `previous_coa_accept_ms`).
#[test]
fn between_sites_the_reverse_tunnel_stays_on_the_old_mma_until_the_home_agent_accepts() {
    let mut h = H::registered_in_site1(Mode::Site);
    let acts = inter_site_mbb(&mut h);
    assert!(uplink_changes(&acts).is_empty(), "{:?}", kchanges(&acts));
    let sent = bus(&acts);
    let acts = h.ack(&sent[0], 0, Some(mma2()));
    assert!(
        uplink_changes(&acts).is_empty(),
        "the new MMA accepted us, the home agent not yet: {:?}",
        kchanges(&acts)
    );
    let ha_bu = bus(&acts).into_iter().find(|b| b.peer == ha()).unwrap();
    let acts = h.ack(&ha_bu, 0, None);
    assert_eq!(
        uplink_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma2(), E2))]
    );
}

/// Issue 11 §3: the old site's membership is kept until traffic arrives through the new one
/// (then a short drain), the overlap's timeout still bounding it; the forwarding request goes
/// at that moment.
#[test]
fn traffic_through_the_new_site_ends_the_inter_site_overlap_early() {
    let mut h = H::registered_in_site1(Mode::Site);
    let acts = inter_site_mbb(&mut h);
    let sent = bus(&acts);
    let acts = h.ack(&sent[0], 0, Some(mma2()));
    let ha_bu = bus(&acts).into_iter().find(|b| b.peer == ha()).unwrap();
    h.advance(10);
    // Packets on the old link say nothing about the new path.
    let acts = h.ev(Event::Delivered { ifindex: E1 });
    assert!(kchanges(&acts).is_empty() && bus(&acts).is_empty());
    // The new site delivers before the home agent's BAck is here (same WAN path): the
    // home agent has moved, so the uplink follows at once.
    let acts = h.ev(Event::Delivered { ifindex: E2 });
    assert_eq!(
        uplink_changes(&acts),
        vec![KernelChange::Install(uplink_route(mma2(), E2))]
    );
    let fwd = bus(&acts);
    assert_eq!(fwd.len(), 1, "the forwarding request goes now: {fwd:?}");
    assert_eq!(fwd[0].peer, mma1());
    assert_eq!(fwd[0].src, slaac_of("2001:db8:10:1::", MAC1));
    let old_branch = KernelChange::Leave(Membership {
        ifindex: E1,
        group: group(),
        source: mma1(),
    });
    assert!(!kchanges(&acts).contains(&old_branch), "drained first");
    // A second notice changes nothing.
    assert!(kchanges(&h.ev(Event::Delivered { ifindex: E2 })).is_empty());
    h.ack(&ha_bu, 0, None);
    let start = h.t;
    let mut later = Vec::new();
    while !kchanges(&later).contains(&old_branch) {
        assert!(h.t < start + 100, "the old site is left within the drain");
        h.t += 10;
        later.extend(h.tick());
    }
    assert!(
        h.t - start >= 40,
        "kept for the drain: left after {} ms",
        h.t - start
    );
}

/// Without that signal (no counters), the overlap's timeout still ends it.
#[test]
fn without_traffic_through_the_new_site_the_overlap_timeout_ends_it() {
    let mut h = H::registered_in_site1(Mode::Site);
    let acts = inter_site_mbb(&mut h);
    let sent = bus(&acts);
    let acts = h.ack(&sent[0], 0, Some(mma2()));
    let ha_bu = bus(&acts).into_iter().find(|b| b.peer == ha()).unwrap();
    h.ack(&ha_bu, 0, None);
    let old_branch = KernelChange::Leave(Membership {
        ifindex: E1,
        group: group(),
        source: mma1(),
    });
    let until = |h: &mut H, ms: u64| {
        let mut out = Vec::new();
        for _ in 0..ms / 100 {
            h.t += 100;
            out.extend(h.ra(E1, "2001:db8:10:1::", Some(mma1())));
            out.extend(h.ra(E2, "2001:db8:20:1::", Some(mma2())));
        }
        out
    };
    assert!(!kchanges(&until(&mut h, 500)).contains(&old_branch));
    assert!(kchanges(&until(&mut h, 700)).contains(&old_branch));
}
