//! One host floods its access link with mutated MLDv2 reports (10,000 a second): pim-lite's
//! state stays within its caps and a Router Solicitation is still answered within 50 ms
//! (issue 16; before, RS -> RA rose from 7 ms to 1.18 s).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mipcast_kernel::sockets::{IcmpSocket, PacketInfo, ALL_ROUTERS};
use mipcast_netns_tests::{require_root, Netns};
use mipcast_wire::mld::{GroupRecord, MldRepr, RecordType};
use mipcast_wire::nd::{NdRepr, ROUTER_ADVERTISEMENT};

const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
const REPORTS_PER_SECOND: u64 = 10_000;

const CONFIG: &str = "
interfaces:
  - { name: r_up, role: core }
  - name: r_dn
    role: access
    mld:
      query_interval_secs: 10
      query_response_interval_ms: 1000
      max_groups: 64
      max_sources_per_group: 4
      max_sg: 128
    ra:
      max_interval_ms: 10000
      solicited_delay_max_ms: 5
      prefixes: [ { prefix: \"2001:db8:21::/64\" } ]
";

/// A report for a group and sources that change with `i`.
fn mutated_report(i: u64) -> Vec<u8> {
    let g = Ipv6Addr::new(0xff35, 0, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
    let sources = (0..4)
        .map(|k| Ipv6Addr::new(0x2001, 0xdb8, 0x77, k, 0, 0, (i >> 16) as u16, i as u16))
        .collect();
    let m = MldRepr::ReportV2 {
        records: vec![GroupRecord {
            record_type: RecordType::ModeIsInclude,
            multicast_address: g,
            sources,
        }],
    };
    let mut b = vec![0; m.buffer_len()];
    m.emit(&mut b).unwrap();
    b
}

/// Sets the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// RS -> first RA, from the host on `ifindex`.
async fn solicit(ifindex: u32) -> Duration {
    let s = IcmpSocket::new(&[ROUTER_ADVERTISEMENT]).expect("icmp socket");
    s.set_multicast_hops(255).expect("hops");
    let rs = NdRepr::RouterSolicit { options: vec![] };
    let mut msg = vec![0; rs.buffer_len()];
    rs.emit(&mut msg).expect("emit RS");
    let start = Instant::now();
    s.send_to(&msg, ALL_ROUTERS, PacketInfo::on(ifindex))
        .await
        .expect("send RS");
    let mut buf = [0u8; 1500];
    tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
        .await
        .expect("an RA within 2 s")
        .expect("recv RA");
    start.elapsed()
}

#[test]
#[ignore = "needs root"]
fn an_mld_flood_leaves_router_solicitations_answered_quickly() {
    require_root();
    let (up, router, host) = (Netns::new("fu"), Netns::new("fr"), Netns::new("fh"));
    link(
        &up,
        "u0",
        "2001:db8:1::1/64",
        &router,
        "r_up",
        "2001:db8:1::2/64",
    );
    link(&router, "r_dn", "2001:db8:21::1/64", &host, "h0", "");
    let pim = Router::start(&router, "flood", CONFIG);
    wait_ready(&router, "r_dn");
    let h0 = ifindex(&host, "h0");
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let calm = host.enter(|| rt().block_on(solicit(h0)));

    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let (latencies, flood_secs) = std::thread::scope(|scope| {
        let (stop, sent, host) = (&stop, &sent, &host);
        scope.spawn(move || {
            host.enter(|| {
                rt().block_on(async {
                    let s = IcmpSocket::new(&[]).expect("icmp socket");
                    s.set_multicast_hops(1).expect("hops");
                    let started = Instant::now();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Paced in 1 ms slices: REPORTS_PER_SECOND / 1000 each.
                        let due = started.elapsed().as_millis() as u64 * REPORTS_PER_SECOND / 1000;
                        while i < due {
                            let r = mutated_report(i);
                            if s.send_to(&r, ALL_MLDV2_ROUTERS, PacketInfo::on(h0))
                                .await
                                .is_ok()
                            {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            i += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
            })
        });
        // The flood stops however this thread leaves the scope: a failed solicitation panics,
        // and the scope would otherwise wait for the flood forever.
        let _stop_flood = StopOnDrop(stop);
        // Let the flood build up its state first, then solicit every 200 ms.
        std::thread::sleep(Duration::from_secs(2));
        let flood_start = Instant::now();
        let latencies: Vec<Duration> = host.enter(|| {
            rt().block_on(async {
                let mut l = Vec::new();
                for _ in 0..10 {
                    l.push(solicit(h0).await);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                l
            })
        });
        let flood_secs = flood_start.elapsed().as_secs_f64() + 2.0;
        stop.store(true, Ordering::Relaxed);
        (latencies, flood_secs)
    });
    let rate = sent.load(Ordering::Relaxed) as f64 / flood_secs;
    let worst = latencies.iter().max().unwrap();
    println!(
        "RS -> RA: {calm:?} calm, worst {worst:?} under {rate:.0} MLD reports/s: {latencies:?}"
    );
    assert!(
        rate > 0.8 * REPORTS_PER_SECOND as f64,
        "flood rate {rate:.0}/s"
    );
    assert!(*worst < Duration::from_millis(50), "{latencies:?}");
    // The state stayed within the caps, and the excess was counted.
    let st = status(&router);
    let dn = st.interfaces.iter().find(|i| i.name == "r_dn").unwrap();
    let sources: usize = dn.listeners.iter().map(|l| l.sources.len()).sum();
    assert!(dn.listeners.len() <= 64, "{} groups", dn.listeners.len());
    assert!(sources <= 128, "{sources} (S,G) listeners");
    let m = metrics(&router);
    assert!(m.contains("host_rate_limit"), "{m}");
    drop(pim);
}
