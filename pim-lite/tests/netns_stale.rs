//! Stale packets after a prune (issue 11, cause 4): when the last listener leaves, the access
//! router's entry becomes a negative one (no outgoing interface) instead of disappearing, so
//! the datagrams the upstream still sends until it has processed the Prune are dropped, not
//! queued by the kernel as an unresolved entry and released, seconds old, when the host joins
//! again.
//!
//! ```text
//!  S --(s0|c_s)-- core --(c_a1|a1_up)-- acc1 --(a1_dn|h1)-- host
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::time::{Duration, Instant};

use common::*;
use mipcast_kernel::sockets::SsmMembership;
use mipcast_netns_tests::{require_root, Netns};

const PIM: &str = "
pim:
  hello_period_secs: 30
  triggered_hello_delay_ms: 100
  rpf_check_interval_secs: 1
";

#[test]
#[ignore = "needs root"]
fn a_listener_back_soon_after_a_prune_gets_no_stale_datagrams() {
    require_root();
    let (src, core, acc1, host) = (
        Netns::new("ss"),
        Netns::new("sc"),
        Netns::new("sa"),
        Netns::new("sh"),
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
        &acc1,
        "a1_dn",
        "2001:db8:21::1/64",
        &host,
        "h1",
        "2001:db8:21::100/64",
    );
    src.sh("ip -6 route add default via 2001:db8:1::2");
    acc1.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:11::1");
    let h1 = ifindex(&host, "h1");
    let r_core = Router::start(
        &core,
        "core",
        &format!(
            "interfaces:\n  - {{ name: c_s, role: core }}\n  - {{ name: c_a1, role: core }}\n{PIM}"
        ),
    );
    let r_acc1 = Router::start(
        &acc1,
        "acc1",
        &format!(
            "interfaces:
  - {{ name: a1_up, role: core }}
  - name: a1_dn
    role: access
    mld:
      query_interval_secs: 10
      query_response_interval_ms: 1000
      fast_leave: true
{PIM}"
        ),
    );
    wait_for("PIM adjacency", Duration::from_secs(5), || {
        (neighbors(&core) == 1 && neighbors(&acc1) == 1).then_some(())
    });
    let sender = Sender::start(&src, "s0");
    let rx = Receiver::bind(&host);
    let membership = host.enter(|| SsmMembership::new().expect("membership socket"));

    for round in 0..3 {
        let fresh = sender.mark();
        membership.join(h1, a(G), a(S)).expect("join on h1");
        rx.first_on(h1, fresh, Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: no datagram after the join\nacc1:\n{}",
                    r_acc1.log_text()
                )
            });
        std::thread::sleep(Duration::from_millis(300));
        // Leave: acc1 (fast leave) stops forwarding at once and prunes; the core goes on
        // sending to acc1 until the Prune is processed.
        membership.leave(h1, a(G), a(S)).expect("leave on h1");
        std::thread::sleep(Duration::from_millis(700));
        rx.drain();
        let rejoin = sender.mark();
        let t = Instant::now();
        membership.join(h1, a(G), a(S)).expect("join again on h1");
        // Everything received now must have been sent around the rejoin or later (2 ms per
        // datagram: 10 datagrams is 20 ms of slack for datagrams in flight), none from the
        // moments after the leave, 700 ms earlier.
        let mut stale = Vec::new();
        let mut fresh_seen = false;
        while t.elapsed() < Duration::from_millis(500) {
            if let Some((i, seq)) = rx.next(Duration::from_millis(50)) {
                if i == h1 && seq + 10 < rejoin {
                    stale.push(seq);
                }
                fresh_seen |= i == h1 && seq >= rejoin;
            }
        }
        assert!(fresh_seen, "round {round}: traffic after the rejoin");
        assert!(
            stale.is_empty(),
            "round {round}: stale datagrams released at the rejoin (sent before {rejoin}): {stale:?}\nacc1:\n{}",
            r_acc1.log_text()
        );
        membership.leave(h1, a(G), a(S)).expect("leave");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(sender);
    drop(membership);
    for (ns, r) in [(&core, r_core), (&acc1, r_acc1)] {
        r.stop();
        assert!(
            mfc(ns).is_empty(),
            "MFC left in {}: {:?}",
            ns.name(),
            mfc(ns)
        );
    }
}
