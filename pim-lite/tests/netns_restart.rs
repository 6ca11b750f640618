//! Restarts while a stream flows: the upstream (core) and the downstream (access) pim-lite,
//! each stopped with SIGTERM and with SIGKILL and started again. Traffic must be back within
//! 2 s of the new process starting.
//!
//! ```text
//!  S --(s0|c_s)-- core --(c_a|a_up)-- acc --(a_dn|h0)-- host
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

const BOUND: Duration = Duration::from_secs(2);

const PIM: &str = "pim:
  hello_period_secs: 30
  triggered_hello_delay_ms: 100
  override_interval_ms: 500
  rpf_check_interval_secs: 1
";

fn core_config() -> String {
    format!("interfaces:\n  - {{ name: c_s, role: core }}\n  - {{ name: c_a, role: core }}\n{PIM}")
}

fn access_config() -> String {
    format!(
        "interfaces:
  - {{ name: a_up, role: core }}
  - name: a_dn
    role: access
    mld:
      query_interval_secs: 10
      query_response_interval_ms: 500
{PIM}"
    )
}

#[derive(Clone, Copy, Debug)]
enum How {
    Term,
    Kill,
}

fn stop(r: Router, how: How) {
    match how {
        How::Term => {
            r.stop();
        }
        How::Kill => r.kill9(),
    }
}

#[test]
#[ignore = "needs root"]
fn traffic_is_back_within_two_seconds_after_either_router_restarts() {
    require_root();
    let (src, core, acc, host) = (
        Netns::new("rs"),
        Netns::new("rc"),
        Netns::new("ra"),
        Netns::new("rh"),
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
        "c_a",
        "2001:db8:11::1/64",
        &acc,
        "a_up",
        "2001:db8:11::2/64",
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
    acc.sh("ip -6 route add 2001:db8:1::/64 via 2001:db8:11::1");
    let h0 = ifindex(&host, "h0");

    let mut r_core = Some(Router::start(&core, "core", &core_config()));
    let mut r_acc = Some(Router::start(&acc, "acc", &access_config()));
    wait_for("adjacency", Duration::from_secs(5), || {
        (neighbors(&core) == 1 && neighbors(&acc) == 1).then_some(())
    });
    let sender = Sender::start(&src, "s0");
    let rx = Receiver::bind(&host);
    let membership = host.enter(|| SsmMembership::new().expect("membership socket"));
    membership.join(h0, a(G), a(S)).expect("join on h0");
    assert!(
        rx.first_on(h0, sender.mark(), Duration::from_secs(5))
            .is_some(),
        "no traffic after the join"
    );

    let mut figures = Vec::new();
    let mut acc_log_after_upstream_restarts = String::new();
    for (which, how) in [
        ("upstream", How::Kill),
        ("upstream", How::Term),
        ("downstream", How::Kill),
        ("downstream", How::Term),
    ] {
        // Run a little after the previous recovery so periodic timers are mid-period.
        std::thread::sleep(Duration::from_millis(700));
        if which == "downstream" && acc_log_after_upstream_restarts.is_empty() {
            acc_log_after_upstream_restarts =
                r_acc.as_ref().map(Router::log_text).unwrap_or_default();
        }
        let slot = if which == "upstream" {
            &mut r_core
        } else {
            &mut r_acc
        };
        let r = slot.take().expect("router running");
        let (ns, cfg, name) = if which == "upstream" {
            (&core, core_config(), "core")
        } else {
            (&acc, access_config(), "acc")
        };
        stop(r, how);
        // The stream stops: the kernel flushed the stopped router's MFC entries.
        let gone = sender.mark();
        assert_eq!(
            rx.first_on(h0, gone, Duration::from_millis(300)),
            None,
            "{which} {how:?}: traffic still flows with the router stopped"
        );
        rx.drain();
        let (t0, fresh) = (Instant::now(), sender.mark());
        let restarted = Router::start(ns, &format!("{name}-{how:?}"), &cfg);
        let back = rx
            .first_on(h0, fresh, Duration::from_secs(10))
            .map(|_| t0.elapsed());
        let back = back.unwrap_or_else(|| {
            panic!(
                "{which} {how:?}: no traffic within 10 s\nrestarted:\n{}",
                restarted.log_text()
            )
        });
        println!(
            "{which} restart after {how:?}: traffic back {:.0} ms after the new process started",
            back.as_secs_f64() * 1000.0
        );
        figures.push((which, how, back));
        *slot = Some(restarted);
    }
    for (which, how, back) in &figures {
        assert!(
            *back < BOUND,
            "{which} {how:?}: traffic back after {back:?}"
        );
    }
    // The downstream router saw each upstream restart as one (a new generation id after
    // SIGKILL; a goodbye then a new neighbour after SIGTERM), and sent its Hello first.
    let log = &acc_log_after_upstream_restarts;
    assert!(
        log.contains("PIM neighbour restarted (new generation id)"),
        "{log}"
    );
    assert!(log.contains("PIM neighbour left (holdtime 0)"), "{log}");
    assert!(
        log.contains("sending a Hello ahead of a Join/Prune"),
        "{log}"
    );
    drop(membership);
    drop(sender);
    for r in [r_acc, r_core].into_iter().flatten() {
        r.stop();
    }
}
