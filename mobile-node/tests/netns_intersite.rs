//! Registration and an inter-site move against scripted MMAs and a scripted home agent, with
//! the Binding Updates counted on the wire.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use mipcast_netns_tests::{require_root, Daemon};
use mipcast_wire::mh::bu_flags;

const HOA: &str = "2001:db8:99::100";
const HA: &str = "2001:db8:2::1";
const MMA1: &str = "2001:db8:10::1";
const MMA2: &str = "2001:db8:20::1";
const PORT: u16 = 19643;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
#[ignore = "needs root"]
fn netns_registration_then_inter_site_move() {
    require_root();
    let sites = two_sites(HA, MMA1, MMA2);
    let (mn, log1, log2, logh) = (&sites.mn, &sites.log1, &sites.log2, &sites.logh);

    let dir = std::env::temp_dir().join(format!("mipcast-mn-inter-{}", std::process::id()));
    let cfg = write_mn_config(
        &dir,
        &MnSetup {
            hoa: HOA,
            ha: HA,
            home_prefix: "2001:db8:99::/64",
            interfaces: &[("e1", 60), ("e2", 50)],
            quality_dir: None,
            metrics_port: PORT,
        },
    );
    let mut daemon = Daemon(mn.spawn(
        env!("CARGO_BIN_EXE_mobile-node"),
        &["-c", cfg.to_str().unwrap(), "--log-level", "debug"],
        Some(&dir.join("mn.log")),
    ));

    // Registration: MMA1 then the home agent with the MMA as alternate CoA.
    wait_for(Duration::from_secs(10), "home registration", || {
        (!logh.lock().unwrap().is_empty()).then_some(())
    });
    let e1_addr = a("2001:db8:10:1:0:0:0:0"); // prefix only; the IID comes from the MAC
    let first = log1.lock().unwrap().clone();
    assert_eq!(first.len(), 1, "{first:?}");
    let b = &first[0];
    assert!(b.authenticated);
    assert_eq!(b.flags, bu_flags::ACK | bu_flags::MAP);
    assert_eq!(b.hoa, Some(a(HOA)));
    assert!(b.group.is_some_and(|g| g.segments()[0] == 0xff35));
    assert_eq!(
        b.src.segments()[..4],
        e1_addr.segments()[..4],
        "sent from the on-link address on e1"
    );
    let hb = logh.lock().unwrap()[0].clone();
    assert_eq!(
        (hb.flags, hb.alt_coa, hb.lifetime_units),
        (bu_flags::ACK | bu_flags::HOME, Some(a(MMA1)), 15)
    );
    assert!(hb.authenticated);
    let group = b.group.unwrap();

    // Kernel state the daemon installed.
    let rules = mn.sh("ip -6 rule show");
    assert!(
        rules.contains(&format!("to {group} ipproto ipv6 lookup 100")),
        "{rules}"
    );
    assert!(rules.contains(&format!("from {HOA} lookup 200")), "{rules}");
    let uplink = mn.sh("ip -6 route show table 200 proto 158");
    assert!(
        uplink.contains(MMA1) && uplink.contains("dev e1"),
        "{uplink}"
    );
    assert!(mn
        .sh("ip -6 route show table 100 proto 158")
        .contains("End.DT6"));
    assert!(mn.sh("ip -6 addr show dev lo").contains(HOA));
    assert!(mn
        .sh("nft list table ip6 mipcast_mn")
        .contains(&group.to_string()));

    // Inter-site move: e1 goes down; the node is on e2 in MMA2's site.
    let cap = Capture::start(mn, "e2", "ip6 proto 135", dir.join("e2.pcap"));
    mn.sh("ip link set e1 down");
    wait_for(
        Duration::from_secs(10),
        "deregistration with the old MMA",
        || (log1.lock().unwrap().len() >= 2).then_some(()),
    );
    wait_for(Duration::from_secs(5), "second home registration", || {
        (logh.lock().unwrap().len() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let new_mma = log2.lock().unwrap().clone();
    assert_eq!(new_mma.len(), 1, "{new_mma:?}");
    assert_eq!(
        (new_mma[0].flags, new_mma[0].group),
        (bu_flags::ACK | bu_flags::MAP, Some(group))
    );
    let e2_src = new_mma[0].src;
    assert_eq!(e2_src.segments()[..4], a("2001:db8:20:1::").segments()[..4]);
    let home = logh.lock().unwrap()[1].clone();
    assert_eq!(
        (home.alt_coa, home.src, home.flags),
        (Some(a(MMA2)), e2_src, bu_flags::ACK | bu_flags::HOME)
    );
    let dereg = log1.lock().unwrap()[1].clone();
    assert_eq!(
        (dereg.lifetime_units, dereg.forward, dereg.src),
        (0, Some((e2_src, 5)), e2_src)
    );
    assert!(
        home.at >= new_mma[0].at && dereg.at >= new_mma[0].at,
        "HA and old MMA only after the new MMA"
    );
    let on_wire = cap.finish("mip6.mhtype == 5", &["ipv6.dst", "mip6.bu.seqnr"]);
    assert_eq!(on_wire.len(), 3, "exactly three BUs on e2: {on_wire:?}");
    for peer in [MMA2, HA, MMA1] {
        assert_eq!(
            on_wire
                .iter()
                .filter(|l| l.starts_with(&format!("{peer}\t")))
                .count(),
            1,
            "{on_wire:?}"
        );
    }
    let uplink = mn.sh("ip -6 route show table 200 proto 158");
    assert!(
        uplink.contains(MMA2) && uplink.contains("dev e2"),
        "{uplink}"
    );
    // The old MMA forwards to our new on-link address: a unicast decap rule for it.
    let rules = mn.sh("ip -6 rule show");
    assert!(
        rules.contains(&format!("from {MMA1} to {e2_src} ipproto ipv6 lookup 100")),
        "{rules}"
    );
    let st = status(mn, PORT).expect("status");
    assert_eq!(st["attachment"]["mma"], MMA2);

    // Shutdown removes everything.
    assert!(daemon
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert_eq!(mn.sh("ip -6 route show table all proto 158"), "");
    assert!(!mn.sh("ip -6 rule show").contains("lookup 100"));
    assert!(!mn.sh("ip -6 addr show dev lo").contains(HOA));
    assert!(mn.try_sh("nft list table ip6 mipcast_mn").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
