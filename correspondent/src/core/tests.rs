//! The correspondent core driven through the cores' contract with real BU bytes, a fake
//! kernel that accepts everything, and a hand-moved clock. Every refusal is checked to leave
//! the kernel untouched.
use std::net::Ipv6Addr;
use std::time::Duration;

use home_agent::core::replies::back_status_of;
use mipcast_binding::{Registrar, RegistrarConfig, SaTable, SecurityAssociation};
use mipcast_proto::{settle, KObject, Machine, Outcome, TokenBucket};
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{BindingUpdate, Message, MhRepr, MobilityOption};
use mipcast_wire::ntp::ntp_timestamp;

use super::*;

const KEY1: &[u8] = b"mma1-key-0123456789abcdef";
const KEY2: &[u8] = b"mma2-key-0123456789abcdef";
const WALL0: u64 = 1_700_000_000_000;
const UPLINK: u32 = 4;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn cn() -> Ipv6Addr {
    a("2001:db8:c::1")
}
fn mma1() -> Ipv6Addr {
    a("2001:db8:2::1")
}
fn mma2() -> Ipv6Addr {
    a("2001:db8:3::1")
}
const HOA: &str = "2001:db8:1::100";

fn core() -> Core {
    let sas = SaTable::new([
        SecurityAssociation {
            spi: 2001,
            algorithm: Algorithm::HmacSha256_128,
            key: KEY1.to_vec(),
            allowed: vec![(a("2001:db8:1::"), 64)],
        },
        SecurityAssociation {
            spi: 2002,
            algorithm: Algorithm::HmacSha256_128,
            key: KEY2.to_vec(),
            allowed: vec![(a("2001:db8:1::"), 64)],
        },
    ])
    .unwrap();
    let policy = CorrespondentPolicy::new([
        MmaSource {
            spi: 2001,
            prefix: mma1(),
            prefix_len: 128,
        },
        MmaSource {
            spi: 2002,
            prefix: mma2(),
            prefix_len: 128,
        },
    ])
    .unwrap();
    let registrar = Registrar::new(RegistrarConfig::default(), sas.clone(), policy).unwrap();
    Core::new(
        registrar,
        sas,
        plan(cn(), UPLINK, 3600, 10, 255),
        TokenBucket::new(1, 2),
    )
}

fn now(ms: u64) -> Now {
    Now::from_unix(ms, Duration::from_millis(WALL0 + ms))
}

/// What one BU looks like; [`Bu::bytes`] signs it as `coa` (the sender unless an Alternate
/// CoA is given).
#[derive(Clone)]
struct Bu {
    hoa: &'static str,
    src: Ipv6Addr,
    alt_coa: Option<Ipv6Addr>,
    seq: u16,
    flags: u16,
    lifetime_units: u16,
    at_ms: u64,
    spi: u32,
    key: &'static [u8],
    replay: bool,
}

impl Bu {
    fn new(src: Ipv6Addr, seq: u16, at_ms: u64) -> Bu {
        let (spi, key) = if src == mma2() {
            (2002, KEY2)
        } else {
            (2001, KEY1)
        };
        Bu {
            hoa: HOA,
            src,
            alt_coa: None,
            seq,
            flags: 0x8000, // A, no H: a correspondent binding
            lifetime_units: 10,
            at_ms,
            spi,
            key,
            replay: true,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let ts = ntp_timestamp(std::time::UNIX_EPOCH + Duration::from_millis(WALL0 + self.at_ms));
        let mut options = vec![MobilityOption::HomeNetworkPrefix {
            prefix_len: 128,
            prefix: a(self.hoa),
        }];
        options.extend(self.alt_coa.map(MobilityOption::AlternateCareOf));
        if self.replay {
            options.push(MobilityOption::ReplayProtection { timestamp: ts });
        }
        let repr = MhRepr {
            message: Message::BindingUpdate(BindingUpdate {
                sequence: self.seq,
                flags: self.flags,
                lifetime: self.lifetime_units,
            }),
            options,
        };
        let mut buf = vec![0; 256];
        let creds = Credentials {
            spi: self.spi,
            algorithm: Algorithm::HmacSha256_128,
            key: self.key,
        };
        let coa = self.alt_coa.unwrap_or(self.src);
        let n = repr
            .emit_authenticated(&mut buf, &creds, &coa, &a(self.hoa))
            .unwrap();
        buf.truncate(n);
        buf
    }
}

/// What one round produced.
#[derive(Debug, Default)]
struct Round {
    kernel: Vec<Change>,
    sends: Vec<Send>,
    events: Vec<Event>,
}

impl Round {
    fn statuses(&self) -> Vec<Option<u8>> {
        self.sends
            .iter()
            .map(|s| back_status_of(&s.bytes))
            .collect()
    }
}

fn drive(c: &mut Core, at: Now) -> Round {
    for coa in c.unresolved() {
        c.resolve(coa, UPLINK);
    }
    let mut r = Round::default();
    for o in settle(c, at, |_| Outcome::Applied) {
        match o {
            Output::Kernel(k) => r.kernel.push(k),
            Output::Send(s) => r.sends.push(s),
            Output::Event(e) => r.events.push(e),
        }
    }
    r
}

fn feed(c: &mut Core, src: Ipv6Addr, bytes: &[u8], at_ms: u64) -> Round {
    c.handle_input(
        now(at_ms),
        Input {
            src,
            dst: cn(),
            bytes,
        },
    );
    drive(c, now(at_ms))
}

fn send(c: &mut Core, bu: &Bu) -> Round {
    feed(c, bu.src, &bu.bytes(), bu.at_ms)
}

// Expected objects are spelt out field by field.
fn encap(coa: Ipv6Addr) -> KObject {
    KObject::EncapRoute {
        dst: format!("{HOA}/128").parse().unwrap(),
        src: None,
        tunnel_dst: coa,
        oif: UPLINK,
        table: 254,
    }
}
fn rule(coa: Ipv6Addr) -> KObject {
    KObject::Rule {
        pref: 10,
        from: Some(coa.into()),
        to: Some(cn().into()),
        ipproto: Some(41),
        table: 3600,
    }
}

fn refused_with(r: &Round, status: u8) {
    assert!(r.kernel.is_empty(), "a refusal touched the kernel: {r:?}");
    assert_eq!(r.statuses(), vec![Some(status)], "{r:?}");
    assert!(r.events.iter().any(|e| matches!(e,
        Event::Rejected { status: s, .. } if *s == status)));
}

/// An accepted BU from MMA1 at 0 ms (sequence 1).
fn bound() -> Core {
    let mut c = core();
    let r = send(&mut c, &Bu::new(mma1(), 1, 0));
    assert_eq!(r.statuses(), vec![Some(0)]);
    c
}

#[test]
fn accepted_bu_installs_encap_route_and_decap_rule_then_acknowledges() {
    let mut c = core();
    let r = send(&mut c, &Bu::new(mma1(), 1, 0));
    assert_eq!(
        r.kernel,
        vec![Change::Add(encap(mma1())), Change::Add(rule(mma1()))]
    );
    assert_eq!(r.statuses(), vec![Some(0)]);
    assert_eq!((r.sends[0].dst, r.sends[0].src), (mma1(), cn()));
    let st = c.status(now(1000));
    assert_eq!((st[0].hoa, st[0].coa, st[0].spi), (a(HOA), mma1(), 2001));
    // The decapsulation route for the correspondent's address comes with reconciliation.
    assert!(c.desired().contains(&KObject::DecapRoute {
        local: cn(),
        oif: UPLINK,
        table: 3600,
        inner_table: 255,
    }));
    assert!(!c
        .desired()
        .iter()
        .any(|o| matches!(o, KObject::ProxyNeigh { .. })));
}

#[test]
fn home_registration_is_refused_with_131() {
    let mut c = core();
    let mut bu = Bu::new(mma1(), 1, 0);
    bu.flags |= 0x4000;
    refused_with(&send(&mut c, &bu), 131);
    assert!(c.is_empty());
}

#[test]
fn wrong_key_and_unknown_spi_are_146_and_install_nothing() {
    let mut c = core();
    let mut bu = Bu::new(mma1(), 1, 0);
    bu.key = b"not the key at all, sorry";
    refused_with(&send(&mut c, &bu), 146);
    let mut bu = Bu::new(mma1(), 1, 1000);
    bu.spi = 4242;
    refused_with(&send(&mut c, &bu), 146);
    assert!(c.is_empty());
}

#[test]
fn missing_replay_protection_is_145_and_replayed_bu_is_144() {
    let mut c = core();
    let mut bu = Bu::new(mma1(), 1, 0);
    bu.replay = false;
    refused_with(&send(&mut c, &bu), 145);
    let mut c = bound();
    // The same bytes again a second later: the timestamp is not newer.
    let replayed = Bu::new(mma1(), 1, 0).bytes();
    refused_with(&feed(&mut c, mma1(), &replayed, 1000), 144);
    assert_eq!(c.status(now(1000))[0].sequence, 1);
}

#[test]
fn old_sequence_is_135() {
    let mut c = core();
    assert_eq!(
        send(&mut c, &Bu::new(mma1(), 5, 0)).statuses(),
        vec![Some(0)]
    );
    refused_with(&send(&mut c, &Bu::new(mma1(), 4, 1000)), 135);
}

#[test]
fn home_address_outside_the_mmas_prefixes_is_129() {
    let mut c = core();
    let mut bu = Bu::new(mma1(), 1, 0);
    bu.hoa = "2001:db8:99::100";
    refused_with(&send(&mut c, &bu), 129);
    assert!(c.is_empty());
}

#[test]
fn sender_must_be_the_mma_of_the_spi_and_its_own_care_of_address() {
    let mut c = core();
    // MMA2's key used from MMA1's address.
    let mut bu = Bu::new(mma1(), 1, 0);
    (bu.spi, bu.key) = (2002, KEY2);
    refused_with(&send(&mut c, &bu), 129);
    // MMA1 redirecting the home address to a third party.
    let mut bu = Bu::new(mma1(), 1, 1000);
    bu.alt_coa = Some(a("2001:db8:66::6"));
    refused_with(&send(&mut c, &bu), 129);
    assert!(c.is_empty());
}

#[test]
fn deregistration_removes_what_was_installed() {
    let mut c = bound();
    let mut bu = Bu::new(mma1(), 2, 1000);
    bu.lifetime_units = 0;
    let r = send(&mut c, &bu);
    assert_eq!(
        r.kernel,
        vec![Change::Delete(encap(mma1())), Change::Delete(rule(mma1()))]
    );
    assert_eq!(r.statuses(), vec![Some(0)]);
    assert!(c.is_empty());
}

#[test]
fn move_to_another_mma_replaces_the_route_and_the_old_mma_cannot_deregister() {
    let mut c = bound();
    let r = send(&mut c, &Bu::new(mma2(), 2, 1000));
    assert_eq!(
        r.kernel,
        vec![
            Change::Add(rule(mma2())),
            Change::Replace(encap(mma2())),
            Change::Delete(rule(mma1())),
        ]
    );
    let mut late = Bu::new(mma1(), 3, 2000);
    late.lifetime_units = 0;
    refused_with(&send(&mut c, &late), 129);
    assert_eq!(c.status(now(2000))[0].coa, mma2());
}

#[test]
fn expiry_removes_what_was_installed() {
    let mut c = bound();
    let deadline = c.poll_timeout().unwrap();
    // 40 s lifetime; a Binding Refresh Request may come first.
    let mut removed = Vec::new();
    let mut t = deadline;
    while !c.is_empty() {
        c.handle_timeout(now(t.0));
        removed.extend(drive(&mut c, now(t.0)).kernel);
        t = c.poll_timeout().unwrap_or(t);
    }
    assert_eq!(t.0, 40_000);
    assert_eq!(
        removed,
        vec![Change::Delete(encap(mma1())), Change::Delete(rule(mma1()))]
    );
}

#[test]
fn malformed_messages_are_counted_drops_without_reply() {
    let mut c = core();
    for junk in [&[][..], &[59, 0, 5, 0][..], &[59, 1, 5, 0, 0, 0, 0, 0][..]] {
        let r = feed(&mut c, mma1(), junk, 0);
        assert!(r.kernel.is_empty() && r.sends.is_empty(), "{r:?}");
        assert!(
            r.events.iter().any(|e| matches!(e, Event::Dropped { .. })),
            "{r:?}"
        );
    }
}

#[test]
fn replies_to_forged_bus_are_rate_limited() {
    let mut c = core();
    let mut replies = 0;
    let mut suppressed = 0;
    for i in 0..20 {
        let mut bu = Bu::new(a("2001:db8:5::66"), 1, i);
        bu.key = b"guessing the key won't work";
        let r = send(&mut c, &bu);
        assert!(r.kernel.is_empty());
        replies += r.sends.len();
        suppressed += r
            .events
            .iter()
            .filter(|e| matches!(e, Event::ReplySuppressed { .. }))
            .count();
    }
    // A burst of 2 at 1 per second over 20 ms.
    assert_eq!(replies, 2);
    assert!(suppressed > 0);
    assert!(c.is_empty());
}

#[test]
fn restored_records_of_unauthorised_senders_are_refused() {
    let c = bound();
    let mut records = c.records(now(1000));
    let mut forged = records[0].clone();
    forged.hoa = a("2001:db8:1::200");
    forged.peer = a("2001:db8:66::6");
    forged.coa = forged.peer;
    records.push(forged);
    let mut fresh = core();
    let (n, refused) = fresh.restore_checked(records, now(1000));
    assert_eq!(n, 1);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason, "mma_not_authorised");
}

#[test]
fn policy_config_is_checked() {
    assert_eq!(
        CorrespondentPolicy::new([]).unwrap_err(),
        PolicyError::NoMma
    );
    let m = MmaSource {
        spi: 300,
        prefix: mma1(),
        prefix_len: 128,
    };
    assert_eq!(
        CorrespondentPolicy::new([m, m]).unwrap_err(),
        PolicyError::DuplicateSpi(300)
    );
}

/// The MMA's route-optimisation core ([`mma::core::ro`]) against this one, bytes passed
/// between them: its BU binds, its deregistration unbinds, and each side installs its half.
#[test]
fn mma_route_optimisation_interoperates() {
    use mma::core::ro;

    let mut mma = ro::Ro::new(
        ro::RoConfig {
            mma: mma1(),
            correspondents: vec![ro::CorrespondentSa {
                prefix: cn(),
                prefix_len: 128,
                agent: None,
                spi: 2001,
                algorithm: Algorithm::HmacSha256_128,
                key: KEY1.to_vec(),
            }],
            lifetime_s: 40,
            refresh_percent: 80,
            max_attempts: 3,
            retransmit_ms: 1000,
            hold_s: 60,
            max_hold_s: 3600,
            uplink_table: 3601,
            wan_ifindex: 2,
        },
        7,
    );
    let mut c = core();
    let mma_step = |m: &mut ro::Ro, at: u64| {
        let mut sends = Vec::new();
        let mut kernel = Vec::new();
        for o in settle(m, now(at), |_| Outcome::Applied) {
            match o {
                mipcast_proto::Output::Send(s) => sends.push(s),
                mipcast_proto::Output::Kernel(k) => kernel.push(k),
                mipcast_proto::Output::Event(_) => {}
            }
        }
        (sends, kernel)
    };
    mma.handle_input(now(0), ro::Input::TerminalUp { hoa: a(HOA) });
    mma.handle_input(
        now(0),
        ro::Input::Sighting {
            correspondent: cn(),
            hoa: a(HOA),
        },
    );
    let (bus, _) = mma_step(&mut mma, 0);
    assert_eq!(bus.len(), 1);
    assert_eq!((bus[0].src, bus[0].dst), (mma1(), cn()));
    let r = feed(&mut c, bus[0].src, &bus[0].bytes, 5);
    assert_eq!(r.statuses(), vec![Some(0)]);
    assert_eq!(
        r.kernel,
        vec![Change::Add(encap(mma1())), Change::Add(rule(mma1()))]
    );
    mma.handle_input(
        now(10),
        ro::Input::Mobility {
            src: r.sends[0].src,
            bytes: &r.sends[0].bytes,
        },
    );
    let (_, kernel) = mma_step(&mut mma, 10);
    assert!(
        matches!(kernel.as_slice(), [ro::Change::Add(KObject::EncapRoute { tunnel_dst, .. })] if *tunnel_dst == cn()),
        "{kernel:?}"
    );
    // Return home: the MMA deregisters, the correspondent removes its half.
    mma.handle_input(now(20), ro::Input::TerminalGone { hoa: a(HOA) });
    let (bus, kernel) = mma_step(&mut mma, 20);
    assert!(matches!(kernel.as_slice(), [ro::Change::Delete(_)]));
    let r = feed(&mut c, bus[0].src, &bus[0].bytes, 25);
    assert_eq!(r.statuses(), vec![Some(0)]);
    assert_eq!(
        r.kernel,
        vec![Change::Delete(encap(mma1())), Change::Delete(rule(mma1()))]
    );
}
