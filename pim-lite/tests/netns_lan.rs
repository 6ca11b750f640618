//! Two pim-lite routers on one access link (a bridge) with one listener: the DR alone
//! forwards (no duplicate datagrams), the MLD querier alone queries, and when the forwarder
//! dies without a goodbye the other takes over once its Hello holdtime runs out.
//!
//! ```text
//!  S --(s0|c_s)-- core --(c_a1|a1_up)-- acc1 --a1_dn--+
//!                   \                                 br0 --h0-- host
//!                    `--(c_a2|a2_up)-- acc2 --a2_dn--+
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use mipcast_kernel::sockets::SsmMembership;
use mipcast_netns_tests::{require_root, Netns};

/// Hello holdtime on the access link: how long a dead DR goes unnoticed at most.
const HOLDTIME_SECS: u64 = 3;

fn access_config(up: &str, down: &str) -> String {
    format!(
        "interfaces:
  - {{ name: {up}, role: core }}
  - name: {down}
    role: access
    mld:
      query_interval_secs: 5
      query_response_interval_ms: 1000
      last_listener_query_interval_ms: 300
pim:
  hello_period_secs: 1
  hello_holdtime_secs: {HOLDTIME_SECS}
  triggered_hello_delay_ms: 100
  override_interval_ms: 500
  rpf_check_interval_secs: 1
"
    )
}

const CORE: &str = "interfaces:
  - { name: c_s, role: core }
  - { name: c_a1, role: core }
  - { name: c_a2, role: core }
pim:
  hello_period_secs: 1
  hello_holdtime_secs: 3
  triggered_hello_delay_ms: 100
  override_interval_ms: 500
  rpf_check_interval_secs: 1
";

/// The access interface's view in one router's /status.
fn lan_view(ns: &Netns, ifname: &str) -> pim_lite::status::IfaceStatus {
    status(ns)
        .interfaces
        .into_iter()
        .find(|i| i.name == ifname)
        .expect("access interface in /status")
}

/// Datagrams received in `window`: (total, sequence numbers seen more than once).
fn count_duplicates(rx: &Receiver, window: Duration) -> (usize, usize) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let start = Instant::now();
    while let Some(left) = window.checked_sub(start.elapsed()) {
        match rx.next(left) {
            Some((_, seq)) => *seen.entry(seq).or_default() += 1,
            None => break,
        }
    }
    let total = seen.values().sum();
    (total, seen.values().filter(|&&n| n > 1).count())
}

#[test]
#[ignore = "needs root"]
fn one_forwarder_one_querier_and_takeover_on_a_shared_access_link() {
    require_root();
    let (src, core, acc1, acc2, lan, host) = (
        Netns::new("ls"),
        Netns::new("lc"),
        Netns::new("la1"),
        Netns::new("la2"),
        Netns::new("lb"),
        Netns::new("lh"),
    );
    link(
        &src,
        "s0",
        "2001:db8:1::1/64",
        &core,
        "c_s",
        "2001:db8:1::2/64",
    );
    link(
        &core,
        "c_a1",
        "2001:db8:11::1/64",
        &acc1,
        "a1_up",
        "2001:db8:11::2/64",
    );
    link(
        &core,
        "c_a2",
        "2001:db8:12::1/64",
        &acc2,
        "a2_up",
        "2001:db8:12::2/64",
    );
    bridge_port(&lan, "p1", &acc1, "a1_dn", "2001:db8:21::1/64");
    bridge_port(&lan, "p2", &acc2, "a2_dn", "2001:db8:21::2/64");
    bridge_port(&lan, "p3", &host, "h0", "2001:db8:21::100/64");
    src.sh("ip -6 route add default via 2001:db8:1::2");
    acc1.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:11::1");
    acc2.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:12::1");
    let h0 = ifindex(&host, "h0");

    let _r_core = Router::start(&core, "core", CORE);
    let r1 = Router::start(&acc1, "acc1", &access_config("a1_up", "a1_dn"));
    let r2 = Router::start(&acc2, "acc2", &access_config("a2_up", "a2_dn"));
    wait_for(
        "adjacencies (core + the other access router)",
        Duration::from_secs(5),
        || (neighbors(&acc1) == 2 && neighbors(&acc2) == 2).then_some(()),
    );
    // Both agree on one DR (equal priorities: the higher link-local address) and on one
    // querier (the lower address, RFC 3810 §7.6.2): the querier election needs the other
    // router's query, which comes at its start-up.
    let (ll1, ll2) = (link_local(&acc1, "a1_dn"), link_local(&acc2, "a2_dn"));
    let views = wait_for("one DR and one querier", Duration::from_secs(5), || {
        let (v1, v2) = (lan_view(&acc1, "a1_dn"), lan_view(&acc2, "a2_dn"));
        let q = |v: &pim_lite::status::IfaceStatus| {
            v.querier.as_ref().is_some_and(|q| q.we_are_querier)
        };
        (v1.dr.is_some() && v1.dr == v2.dr && q(&v1) != q(&v2)).then_some((v1, v2))
    });
    let dr = views.0.dr.expect("dr");
    assert_eq!(dr, ll1.max(ll2), "highest address is DR");
    let querier_is_1 = views.0.querier.as_ref().is_some_and(|q| q.we_are_querier);
    assert_eq!(querier_is_1, ll1 < ll2, "lowest address queries");
    let (fwd_ns, fwd, fwd_if, other_ns, standby, other_if, other_up) = if dr == ll1 {
        (&acc1, r1, "a1_dn", &acc2, r2, "a2_dn", "a2_up")
    } else {
        (&acc2, r2, "a2_dn", &acc1, r1, "a1_dn", "a1_up")
    };

    wait_for("pim_dr gauges", Duration::from_secs(3), || {
        let d = |ns: &Netns, i: &str| {
            metric(
                &metrics(ns),
                &format!("pim_lite_pim_dr{{interface=\"{i}\"}}"),
            )
        };
        (d(fwd_ns, fwd_if) == 1.0 && d(other_ns, other_if) == 0.0).then_some(())
    });

    // Only the querier's queries reach the host once the election settled.
    let cap = Capture::start(&host, "h0");
    let sender = Sender::start(&src, "s0");
    let rx = Receiver::bind(&host);
    let membership = host.enter(|| SsmMembership::new().expect("membership socket"));
    membership.join(h0, a(G), a(S)).expect("join on h0");
    let first = rx.first_on(h0, sender.mark(), Duration::from_secs(5));
    assert!(
        first.is_some(),
        "no traffic after the join:\n{}",
        fwd.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    rx.drain();

    // 10 s of stream: every datagram exactly once.
    let (total, dups) = count_duplicates(&rx, Duration::from_secs(10));
    println!("10 s on the shared link: {total} datagrams, {dups} duplicated");
    assert!(total > 1000, "stream flows ({total} datagrams in 10 s)");
    assert_eq!(dups, 0, "duplicate datagrams: both routers forward");
    let e = mfc(fwd_ns)
        .into_iter()
        .find(|e| e.source == a(S) && e.group == a(G))
        .expect("DR's MFC entry");
    assert_eq!(e.oifs, vec![fwd_if.to_string()]);
    assert!(
        mfc(other_ns).iter().all(|e| e.oifs.is_empty()),
        "the non-DR forwards nothing: {:?}",
        mfc(other_ns)
    );
    assert!(
        !lan_view(other_ns, other_if).listeners.is_empty(),
        "the non-DR still tracks the listener"
    );
    let pcap = cap.stop();
    let queriers = tshark_fields(&pcap, "icmpv6.type == 130", &["ipv6.src"]);
    let sources: std::collections::BTreeSet<String> = queriers
        .into_iter()
        .filter_map(|f| f.into_iter().next())
        .collect();
    let expected_querier = ll1.min(ll2).to_string();
    assert_eq!(
        sources,
        [expected_querier].into_iter().collect(),
        "MLD queries on the link after the election come from the querier alone"
    );
    let _ = std::fs::remove_file(pcap);

    // The forwarder dies without a goodbye: the other router notices when its Hello
    // holdtime runs out, becomes DR and builds the tree.
    rx.drain();
    // Datagrams sent until the process is gone may still be forwarded by it: only those
    // sent after its death count, timed from the kill.
    let t0 = Instant::now();
    fwd.kill9();
    let fresh = sender.mark();
    let took = rx
        .first_on(h0, fresh, Duration::from_secs(HOLDTIME_SECS + 5))
        .map(|_| t0.elapsed())
        .unwrap_or_else(|| panic!("no takeover:\n{}", standby.log_text()));
    println!(
        "forwarder killed (SIGKILL) -> traffic through the other router: {:.0} ms (Hello holdtime {HOLDTIME_SECS} s)",
        took.as_secs_f64() * 1000.0
    );
    assert!(
        took < Duration::from_secs(HOLDTIME_SECS) + Duration::from_millis(1500),
        "takeover took {took:?}"
    );
    let e = has_entry(other_ns).expect("new DR's MFC entry");
    assert_eq!(
        (e.iif.as_str(), e.oifs.clone()),
        (other_up, vec![other_if.to_string()])
    );
    // /status follows a change within 100 ms (it is not rebuilt on the packet path).
    wait_for("the new DR in /status", Duration::from_secs(1), || {
        (lan_view(other_ns, other_if).dr == Some(ll1.min(ll2))).then_some(())
    });
    let m = metrics(other_ns);
    assert!(metric(&m, "pim_lite_pim_dr_changes_total") >= 1.0, "{m}");

    // The killed router comes back: with the higher address it is DR again (the standby
    // steps back at its first Hello) and rebuilds the tree once the host reports again.
    let fwd_cfg = access_config(if fwd_if == "a1_dn" { "a1_up" } else { "a2_up" }, fwd_if);
    let back = Router::start(fwd_ns, "forwarder-again", &fwd_cfg);
    wait_for(
        "the restarted router forwards again",
        Duration::from_secs(5),
        || {
            has_entry(fwd_ns)
                .filter(|e| e.oifs == vec![fwd_if.to_string()])
                .map(|_| ())
        },
    );
    wait_for("the standby stepped back", Duration::from_secs(3), || {
        has_entry(other_ns)
            .is_none_or(|e| e.oifs.is_empty())
            .then_some(())
    });
    rx.drain();
    let (total, dups) = count_duplicates(&rx, Duration::from_secs(2));
    assert!(
        total > 200 && dups == 0,
        "after the DR came back: {total} datagrams, {dups} duplicated"
    );

    // A DR that shuts down says goodbye (holdtime 0): the standby takes over at once.
    let t0 = Instant::now();
    back.stop();
    let fresh = sender.mark();
    let took = rx
        .first_on(h0, fresh, Duration::from_secs(HOLDTIME_SECS + 5))
        .map(|_| t0.elapsed())
        .unwrap_or_else(|| panic!("no takeover after the goodbye:\n{}", standby.log_text()));
    println!(
        "DR stopped (SIGTERM, goodbye Hello) -> traffic through the other router: {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    assert!(
        took < Duration::from_secs(1),
        "takeover after a goodbye took {took:?}"
    );
    drop(membership);
    drop(sender);
    standby.stop();
}

fn has_entry(ns: &Netns) -> Option<MfcEntry> {
    mfc(ns)
        .into_iter()
        .find(|e| e.source == a(S) && e.group == a(G))
}

/// A PIM router played by the test on `h0` in `host`: Hellos and Asserts from the host's
/// link-local address through the kernel's raw PIM socket.
struct FakeRouter {
    rt: tokio::runtime::Runtime,
    sock: mipcast_kernel::sockets::PimSocket,
    ifindex: u32,
}

impl FakeRouter {
    fn new(host: &Netns, ifname: &str) -> FakeRouter {
        let ifindex = ifindex(host, ifname);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let sock = host.enter(|| {
            let _g = rt.enter();
            let s = mipcast_kernel::sockets::PimSocket::new().expect("pim socket");
            s.join_all_pim_routers(ifindex).expect("join ff02::d");
            s
        });
        FakeRouter { rt, sock, ifindex }
    }

    fn send(&self, msg: &mipcast_wire::pim::PimRepr) {
        let mut b = vec![0; msg.buffer_len()];
        msg.emit(&mut b).expect("emit");
        self.rt
            .block_on(self.sock.send_to(
                &b,
                mipcast_wire::pim::ALL_PIM_ROUTERS,
                mipcast_kernel::sockets::PacketInfo::on(self.ifindex),
            ))
            .expect("send PIM");
    }

    fn hello(&self) {
        use mipcast_wire::pim::{HelloOption, PimRepr};
        self.send(&PimRepr::Hello {
            options: vec![
                HelloOption::Holdtime(105),
                HelloOption::DrPriority(0),
                HelloOption::GenerationId(7),
            ],
        });
    }

    fn assert(&self, preference: u32, metric: u32) {
        self.send(&mipcast_wire::pim::PimRepr::Assert(
            mipcast_wire::pim::Assert {
                group: mipcast_wire::pim::EncodedGroup::new(a(G)),
                source: a(S),
                rpt: false,
                metric_preference: preference,
                metric,
            },
        ));
    }

    /// The next Assert heard within `within`: (metric preference, metric).
    fn next_assert(&self, within: Duration) -> Option<(u32, u32)> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let got = self
                .rt
                .block_on(async { tokio::time::timeout(left, self.sock.recv(&mut buf)).await })
                .ok()?
                .ok()?;
            if let Ok(mipcast_wire::pim::PimRepr::Assert(a)) =
                mipcast_wire::pim::PimRepr::parse(&buf[..got.len])
            {
                return Some((a.metric_preference, a.metric));
            }
        }
    }
}

/// Asserts from another router on the access link, with the real daemon and kernel: a
/// better one makes pim-lite stop forwarding onto the link (its MFC entry loses the link),
/// a worse one is answered with pim-lite's own Assert, and an AssertCancel from the winner
/// brings the traffic back.
#[test]
#[ignore = "needs root"]
fn asserts_on_the_access_link_stop_and_restart_forwarding() {
    require_root();
    let (src, acc, host) = (Netns::new("as"), Netns::new("aa"), Netns::new("ah"));
    link(
        &src,
        "s0",
        "2001:db8:1::1/64",
        &acc,
        "a_up",
        "2001:db8:1::2/64",
    );
    link(
        &acc,
        "a_dn",
        "2001:db8:21::1/64",
        &host,
        "h0",
        "2001:db8:21::100/64",
    );
    src.sh("ip -6 route add default via 2001:db8:1::2");
    let h0 = ifindex(&host, "h0");
    let cap = Capture::start(&host, "h0");
    let r = Router::start(&acc, "acc", &access_config("a_up", "a_dn"));
    let sender = Sender::start(&src, "s0");
    let rx = Receiver::bind(&host);
    let membership = host.enter(|| SsmMembership::new().expect("membership socket"));
    membership.join(h0, a(G), a(S)).expect("join on h0");
    assert!(
        rx.first_on(h0, sender.mark(), Duration::from_secs(5))
            .is_some(),
        "no traffic after the join:\n{}",
        r.log_text()
    );
    let fake = FakeRouter::new(&host, "h0");
    fake.hello();
    wait_for(
        "the fake router as neighbour",
        Duration::from_secs(3),
        || (lan_view(&acc, "a_dn").neighbors.len() == 1).then_some(()),
    );
    assert_eq!(
        lan_view(&acc, "a_dn").dr,
        Some(link_local(&acc, "a_dn")),
        "priority 1 beats the fake router's 0"
    );

    // A worse Assert (preference 200 > 101): pim-lite keeps forwarding and re-asserts.
    fake.assert(200, 1);
    assert_eq!(
        fake.next_assert(Duration::from_secs(2)),
        Some((101, 1024)),
        "pim-lite answers with its configured metrics"
    );
    assert!(rx
        .first_on(h0, sender.mark(), Duration::from_secs(1))
        .is_some());

    // A better one: pim-lite stops forwarding onto the link.
    fake.assert(10, 1);
    wait_for(
        "MFC entry without the access link",
        Duration::from_secs(2),
        || {
            has_entry(&acc)
                .is_none_or(|e| !e.oifs.contains(&"a_dn".to_string()))
                .then_some(())
        },
    );
    rx.drain();
    assert_eq!(
        rx.first_on(h0, sender.mark(), Duration::from_millis(500)),
        None,
        "traffic while the other router won the Assert"
    );
    let view = lan_view(&acc, "a_dn");
    assert_eq!(view.asserts.len(), 1, "{view:?}");
    assert!(!view.asserts[0].we_won);

    // AssertCancel from the winner: forwarding resumes at once.
    let (t0, fresh) = (Instant::now(), sender.mark());
    fake.assert(0x7fff_ffff, u32::MAX);
    let back = rx
        .first_on(h0, fresh, Duration::from_secs(2))
        .map(|_| t0.elapsed());
    assert!(
        back.is_some(),
        "traffic after AssertCancel:\n{}",
        r.log_text()
    );
    println!(
        "AssertCancel -> traffic again: {:.1} ms",
        back.unwrap_or_default().as_secs_f64() * 1000.0
    );
    for sample in [
        "pim_lite_pim_asserts_total{direction=\"received\",kind=\"we_win\"}",
        "pim_lite_pim_asserts_total{direction=\"received\",kind=\"we_lose\"}",
        "pim_lite_pim_asserts_total{direction=\"received\",kind=\"cancel\"}",
        "pim_lite_pim_asserts_total{direction=\"sent\",kind=\"assert\"}",
    ] {
        wait_for(sample, Duration::from_secs(2), || {
            (metric(&metrics(&acc), sample) >= 1.0).then_some(())
        });
    }
    drop(membership);
    drop(sender);
    r.stop();
    // pim-lite's Hellos (with the goodbye) and Asserts on the access link decode cleanly.
    let pcap = cap.stop();
    let ours = format!("pim && ipv6.src == {}", link_local(&acc, "a_dn"));
    let problems = tshark_problems(&pcap, &ours);
    assert!(problems.is_empty(), "tshark:\n{}", problems.join("\n"));
    let kinds = tshark_fields(&pcap, &ours, &["pim.type", "pim.holdtime"]);
    assert!(
        kinds.iter().any(|k| k[0] == "5"),
        "no Assert captured: {kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k[0] == "0" && k.get(1).is_some_and(|h| h == "0")),
        "no goodbye Hello captured: {kinds:?}"
    );
    let _ = std::fs::remove_file(pcap);
}
