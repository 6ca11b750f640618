//! The user-space neighbour proxy (`home_link.proxy: user`, the default): a host on the home
//! link resolving a home address gets the home agent's MAC while (and only while) the
//! address is registered, DAD for a registered address is defended, and 10,000 registered
//! addresses are answered without a single kernel proxy entry. Resolution is done by the
//! correspondent's kernel (an independent ND implementation), triggered by a datagram.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::*;
use mipcast_netns_tests::bench::{nth_address, pipeline};
use mipcast_netns_tests::mh_client::{Bu, MhClient};
use mipcast_netns_tests::{require_root, Netns};

/// Makes `host`'s kernel resolve each of `addrs` on cn0 (a UDP datagram to each, after
/// forgetting what it knew), and returns what it learnt after `wait`: the link-layer address
/// per address, None where resolution failed or is still incomplete. The kernel is the
/// independent ND implementation here, as any host on the home link would use it.
fn resolve_all(host: &Netns, addrs: &[Ipv6Addr], wait: Duration) -> Vec<Option<String>> {
    host.sh("ip -6 neigh flush dev cn0");
    host.enter(|| {
        let sock = std::net::UdpSocket::bind("[::]:0").unwrap();
        for addr in addrs {
            // Queued until the neighbour resolves; dropped when it does not.
            let _ = sock.send_to(b"nd", (*addr, 9));
        }
    });
    let deadline = Instant::now() + wait;
    loop {
        let table = host.sh("ip -6 neigh show dev cn0");
        let learnt: std::collections::HashMap<Ipv6Addr, String> = table
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr: Ipv6Addr = f.next()?.parse().ok()?;
                let mut f = f.skip_while(|w| *w != "lladdr");
                f.next()?;
                Some((addr, f.next()?.to_ascii_lowercase()))
            })
            .collect();
        let got: Vec<Option<String>> = addrs.iter().map(|a| learnt.get(a).cloned()).collect();
        if got.iter().all(Option::is_some) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The link-layer address the correspondent's kernel learns for `addr` within 1.5 s.
fn resolve(host: &Netns, addr: &str) -> Option<String> {
    resolve_all(host, &[a(addr)], Duration::from_millis(1500))
        .pop()
        .flatten()
}

fn ha_mac(lab: &Lab) -> String {
    lab.ha
        .sh("cat /sys/class/net/home0/address")
        .trim()
        .to_ascii_lowercase()
}

#[test]
#[ignore = "needs root"]
fn registered_home_address_resolves_to_the_home_agent_only_while_registered() {
    require_root();
    let lab = Lab::new("nd");
    let _ha = lab.start(&[]);
    let mac = ha_mac(&lab);
    assert_eq!(resolve(&lab.cn, HOA), None, "not registered yet");

    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status: 0, .. })),
        "{reply:?}"
    );
    assert_eq!(resolve(&lab.cn, HOA).as_deref(), Some(mac.as_str()));
    // Another address of the home prefix, never registered: silence.
    assert_eq!(resolve(&lab.cn, "2001:db8:1::999"), None);
    // No kernel proxy entry and proxy_ndp left alone: the answers came from user space.
    assert!(lab.kernel_state().proxies.is_empty());
    assert_eq!(
        lab.ha
            .sh("cat /proc/sys/net/ipv6/conf/home0/proxy_ndp")
            .trim(),
        "0"
    );
    assert!(lab.metric("home_agent_neighbour_solicitations_total{outcome=\"answered\"}") >= 1.0);
    assert!(
        lab.metric("home_agent_neighbour_solicitations_total{outcome=\"not_registered\"}") >= 1.0
    );

    // Deregistered: no longer answered.
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(2, 0, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status: 0, .. })),
        "{reply:?}"
    );
    assert_eq!(resolve(&lab.cn, HOA), None, "answered after deregistration");
}

#[test]
#[ignore = "needs root"]
fn dad_for_a_registered_home_address_is_defended() {
    require_root();
    let lab = Lab::new("dad");
    let _ha = lab.start(&[]);
    let reply = with_mn(&lab.mn, async |mn| {
        mn.exchange(&mn.bu(1, 100, Some(KEY))).await
    });
    assert!(
        matches!(reply, Some(Reply::Ack { status: 0, .. })),
        "{reply:?}"
    );
    // Another host claims the registered home address (with DAD), and, as a control, an
    // address nobody holds.
    lab.cn
        .sh("sysctl -qw net.ipv6.conf.cn0.accept_dad=1 net.ipv6.conf.cn0.dad_transmits=1");
    lab.cn.sh(&format!(
        "ip addr add {HOA}/64 dev cn0 && ip addr add 2001:db8:1::998/64 dev cn0"
    ));
    let addr_state = |addr: &str| {
        lab.cn
            .sh("ip -6 addr show dev cn0")
            .lines()
            .find(|l| l.contains(&format!("{addr}/64")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        wait_for(Duration::from_secs(5), || addr_state(HOA)
            .contains("dadfailed")),
        "DAD for the registered home address not defended: {}",
        lab.cn.sh("ip -6 addr show dev cn0")
    );
    assert!(
        wait_for(Duration::from_secs(5), || {
            let s = addr_state("2001:db8:1::998");
            !s.is_empty() && !s.contains("tentative") && !s.contains("dadfailed")
        }),
        "an unregistered address passes DAD: {}",
        lab.cn.sh("ip -6 addr show dev cn0")
    );
}

#[test]
#[ignore = "needs root"]
fn ten_thousand_registered_home_addresses_resolve() {
    require_root();
    const N: u32 = 10_000;
    let lab = Lab::new("nd10k");
    let _ha = lab.start(&["--log-level", "warn"]);
    let base: Ipv6Addr = "2001:db8:1::1:0".parse().unwrap();
    let started = Instant::now();
    let tally = lab.mn.enter(|| {
        let client = MhClient::bind(a(COA), a(HA), Duration::from_secs(2)).expect("MH socket");
        pipeline(&client, N, 128, |i| {
            Bu {
                flags: 0xc000,
                lifetime: 200,
                alternate_coa: Some(a(COA)),
                ..Bu::new(1, nth_address(base, i), a(COA), SPI, KEY)
            }
            .bytes()
        })
        .expect("send BUs")
    });
    assert_eq!(tally.accepted, N, "{tally:?}");
    eprintln!(
        "{N} registrations in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(lab.kernel_state().proxies.is_empty());

    // Every one of the 10,000 is resolved by the correspondent, 500 at a time: the kernel's
    // neighbour table limit (gc_thresh3, 1024 by default) is machine-wide, not ours to raise.
    let mac = ha_mac(&lab);
    let started = Instant::now();
    let addrs: Vec<Ipv6Addr> = (0..N).map(|i| nth_address(base, i)).collect();
    let got: Vec<Option<String>> = addrs
        .chunks(500)
        .flat_map(|chunk| resolve_all(&lab.cn, chunk, Duration::from_secs(10)))
        .collect();
    let wrong: Vec<(&Ipv6Addr, &Option<String>)> = addrs
        .iter()
        .zip(&got)
        .filter(|(_, got)| got.as_deref() != Some(mac.as_str()))
        .collect();
    eprintln!(
        "{N} resolutions in {:.2} s, {} wrong",
        started.elapsed().as_secs_f64(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{} not resolved to {mac}, e.g. {:?}",
        wrong.len(),
        wrong.iter().take(5).collect::<Vec<_>>()
    );
    // Just past the registered range: nothing.
    assert_eq!(resolve(&lab.cn, &nth_address(base, N).to_string()), None);
}
