//! Plain MIPv6 mode against the real home agent: cn — ha — r — mn, r a plain router whose RAs
//! carry no MAP option on two access links. The node registers its on-link care-of address
//! with the HA, a TCP stream CN → HoA is tunnelled by the HA straight to that address (and
//! back, reverse-tunnelled to the HA), every move costs exactly one BU to the HA, the HA's
//! binding follows, the stream survives, and SIGTERM leaves nothing in the kernel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
mod common;

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use mipcast_netns_tests::{require_root, veth, Daemon, Netns};

const HOA: &str = "2001:db8:1::100";
const HA: &str = "2001:db8:1::1";
const CN: &str = "2001:db8:1::2";
const HA_METRICS: &str = "[::1]:9641";
const MN_PORT: u16 = 19645;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The home-agent binary of the build that produced this test (`target/<profile>/`; the test
/// executable lives in its `deps/`).
fn home_agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.join("home-agent")
}

/// Home-agent config in the shape of configs/home-agent.yaml, keys mode 600, absolute paths.
fn write_ha_config(dir: &Path) -> PathBuf {
    let key = write_key(dir, "ha.key");
    let path = dir.join("home-agent.yaml");
    std::fs::write(
        &path,
        format!(
            "home_link:\n  interface: home0\n  address: {HA}\n\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - spi: {SPI_HA}\n    algorithm: hmac-sha256-128\n    \
             key_file: {}\n    home_prefixes: [{HOA}/128]\n\
             metrics:\n  listen: \"{HA_METRICS}\"\n\
             state:\n  file: {}\n  write_delay_ms: 100\n",
            key.display(),
            dir.join("ha-state.json").display()
        ),
    )
    .unwrap();
    path
}

/// The HA's bindings as `home-agent status --json` prints them: (HoA, CoA) pairs of those
/// whose kernel state is programmed.
fn ha_bindings(ha: &Netns, bin: &Path, cfg: &Path) -> Vec<(String, String)> {
    let out = ha.cmd(
        bin.to_str().unwrap(),
        &["-c", cfg.to_str().unwrap(), "status", "--json"],
    );
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    v["bindings"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .filter(|b| b["programmed"] == true)
                .map(|b| {
                    (
                        b["hoa"].as_str().unwrap_or_default().to_owned(),
                        b["coa"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Global addresses on `ifname` in `ns`.
fn global_addresses(ns: &Netns, ifname: &str) -> Vec<Ipv6Addr> {
    ns.sh(&format!("ip -6 -o addr show dev {ifname} scope global"))
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "inet6")?;
            w.get(i + 1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Waits until the HA binds the HoA to a global address of the node's `ifname` in `prefix`.
fn wait_binding_on(
    ha: &Netns,
    mn: &Netns,
    bin: &Path,
    cfg: &Path,
    ifname: &str,
    prefix: &str,
) -> Ipv6Addr {
    wait_for(
        Duration::from_secs(10),
        &format!("HA binding HoA -> CoA on {ifname}"),
        || {
            let bs = ha_bindings(ha, bin, cfg);
            let [(hoa, coa)] = bs.as_slice() else {
                return None;
            };
            let coa: Ipv6Addr = coa.parse().ok()?;
            (hoa == HOA
                && coa.to_string().starts_with(prefix)
                && global_addresses(mn, ifname).contains(&coa))
            .then_some(coa)
        },
    )
}

/// Everything tagged proto 158 (and our nft tables) left in a namespace.
fn leftovers(ns: &Netns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .sh("ip -6 route show table all proto 158")
        .lines()
        .map(str::to_owned)
        .collect();
    // iproute2 ignores `proto` when listing rules: filter here.
    v.extend(
        ns.sh("ip -6 rule show")
            .lines()
            .filter(|r| r.contains("proto 158"))
            .map(str::to_owned),
    );
    v.extend(ns.sh("ip -6 neigh show proxy").lines().map(str::to_owned));
    v.extend(
        ns.sh("nft list tables")
            .lines()
            .filter(|t| t.contains("mipcast"))
            .map(str::to_owned),
    );
    v.retain(|l| !l.trim().is_empty());
    v
}

/// tshark fields of a BU: source, destination, H flag, home address (Home Network Prefix
/// option, length 128), Alternate Care-of Address option.
const BU_FIELDS: [&str; 5] = [
    "ipv6.src",
    "ipv6.dst",
    "mip6.bu.h_flag",
    "mip6.nemo.mnp.mnp",
    "mip6.acoa.acoa",
];

/// The BUs (mobility header type 5) in a capture, one `BU_FIELDS` vector each.
fn bus(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[test]
#[ignore = "needs root"]
fn netns_plain_mipv6_registers_on_link_coa_tunnels_tcp_and_follows_moves() {
    require_root();
    let ha_bin = home_agent_binary();
    assert!(
        ha_bin.is_file(),
        "{} not built (cargo build -p home-agent, or cargo test --workspace)",
        ha_bin.display()
    );
    let cn = Netns::new("m6cn");
    let ha = Netns::new("m6ha");
    let r = Netns::new("m6r");
    let mn = Netns::new("m6mn");
    veth(
        &cn,
        "e0",
        &format!("{CN}/64"),
        &ha,
        "home0",
        &format!("{HA}/64"),
    );
    veth(
        &ha,
        "wan0",
        "2001:db8:3::1/64",
        &r,
        "e0",
        "2001:db8:3::2/64",
    );
    veth(&r, "a1", "2001:db8:4::1/64", &mn, "e1", "");
    veth(&r, "a2", "2001:db8:5::1/64", &mn, "e2", "");
    cn.sh(&format!("ip -6 route add default via {HA}"));
    ha.sh("ip -6 route add 2001:db8:4::/47 via 2001:db8:3::2");
    r.sh("ip -6 route add default via 2001:db8:3::1");

    let dir = std::env::temp_dir().join(format!("mipcast-mn-mipv6-{}", std::process::id()));
    let qdir = dir.join("q");
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::write(qdir.join("e1.quality"), "100\n").unwrap();
    std::fs::write(qdir.join("e2.quality"), "50\n").unwrap();
    let ha_cfg = write_ha_config(&dir);
    let mn_cfg = write_mn_config(
        &dir,
        &MnSetup {
            hoa: HOA,
            ha: HA,
            home_prefix: "2001:db8:1::/64",
            interfaces: &[("e1", 50), ("e2", 50)],
            quality_dir: Some(&qdir),
            metrics_port: MN_PORT,
        },
    );
    set_mode(&mn_cfg, "mipv6");

    let mut ha_daemon = Daemon(ha.spawn(
        ha_bin.to_str().unwrap(),
        &["-c", ha_cfg.to_str().unwrap(), "--log-level", "debug"],
        Some(&dir.join("ha.log")),
    ));
    wait_for(Duration::from_secs(10), "home agent /healthz", || {
        ha.enter(|| mipcast_daemon::metrics::fetch(HA_METRICS.parse().unwrap(), "/healthz").ok())
    });
    // Plain router: RAs with the prefix only, no MAP option.
    let _ras = ra_sender(
        &r,
        vec![
            (ifindex(&r, "a1"), ra_bytes(a("2001:db8:4::"), None)),
            (ifindex(&r, "a2"), ra_bytes(a("2001:db8:5::"), None)),
        ],
    );
    let mut mn_daemon = Daemon(mn.spawn(
        env!("CARGO_BIN_EXE_mobile-node"),
        &["-c", mn_cfg.to_str().unwrap(), "--log-level", "debug"],
        Some(&dir.join("mn.log")),
    ));

    // (1) The on-link address of e1 is the care-of address at the HA.
    let coa1 = wait_binding_on(&ha, &mn, &ha_bin, &ha_cfg, "e1", "2001:db8:4:");
    let st = status(&mn, MN_PORT).expect("MN status");
    assert_eq!(
        st["attachment"]["ifindex"].as_u64(),
        Some(u64::from(ifindex(&mn, "e1"))),
        "{st}"
    );

    // (2) TCP CN -> HoA: socat on the MN counts bytes, a writer in the CN namespace streams.
    let cap_e1 = Capture::start(&mn, "e1", "ip6", dir.join("e1.pcap"));
    let mut flow = TcpFlow::start(&cn, &mn, a(HOA), &dir);
    let received = || flow.received();
    wait_for(
        Duration::from_secs(10),
        "TCP bytes through the HA's tunnel",
        || (received() > 20_000).then_some(()),
    );
    let tunnelled = cap_e1.finish("tcp", &["ipv6.src", "ipv6.dst", "ipv6.nxt"]);
    let down = format!("{HA},{CN}\t{coa1},{HOA}\t41,6");
    let up = format!("{coa1},{HOA}\t{HA},{CN}\t41,6");
    assert!(
        tunnelled.contains(&down),
        "downlink IPv6-in-IPv6 HA -> CoA on e1 ({down}): {tunnelled:?}"
    );
    assert!(
        tunnelled.contains(&up),
        "uplink IPv6-in-IPv6 CoA -> HA on e1 ({up}): {tunnelled:?}"
    );
    assert!(
        tunnelled.iter().all(|l| *l == down || *l == up),
        "every TCP segment on e1 is tunnelled between the HA and the CoA: {tunnelled:?}"
    );

    // (3) Moves: e1 -> e2, then back; each costs exactly one BU, to the HA, from the new CoA.
    let moves = [("e1", "e2", "2001:db8:5:"), ("e2", "e1", "2001:db8:4:")];
    let mut coa = coa1;
    for (from, to, prefix) in moves {
        let cap1 = Capture::start(
            &mn,
            "e1",
            "ip6 proto 135 or ip6 proto 41",
            dir.join(format!("{to}-e1.pcap")),
        );
        let cap2 = Capture::start(
            &mn,
            "e2",
            "ip6 proto 135 or ip6 proto 41",
            dir.join(format!("{to}-e2.pcap")),
        );
        let before = received();
        std::fs::write(qdir.join(format!("{from}.quality")), "0\n").unwrap();
        std::fs::write(qdir.join(format!("{to}.quality")), "100\n").unwrap();
        let new_coa = wait_binding_on(&ha, &mn, &ha_bin, &ha_cfg, to, prefix);
        assert_ne!(new_coa, coa);
        wait_for(
            Duration::from_secs(10),
            &format!("TCP bytes after the move to {to}"),
            || (received() > before + 20_000).then_some(()),
        );
        let on_new_link = dir.join(format!("{to}-{to}.pcap"));
        let mut seen = bus(&cap1.finish("mip6.mhtype == 5", &BU_FIELDS));
        seen.extend(bus(&cap2.finish("mip6.mhtype == 5", &BU_FIELDS)));
        assert_eq!(
            seen.len(),
            1,
            "exactly one BU per move ({from} -> {to}): {seen:?}"
        );
        let c = new_coa.to_string();
        // The CoA is the BU's source, so an Alternate CoA option is optional (design §4);
        // if present it must name the same address.
        let alt = seen[0].get(4).cloned().unwrap_or_default();
        assert!(
            seen[0].get(..4)
                == Some(&[c.clone(), HA.to_owned(), "1".to_owned(), HOA.to_owned()][..])
                && (alt.is_empty() || alt == c),
            "the BU of the move {from} -> {to} is a home registration of {HOA} from the new \
             CoA {c} to the HA: {seen:?}"
        );
        // The HA's tunnel now ends at the new CoA, on the new link.
        let tunnelled = tshark(&on_new_link, "tcp", &["ipv6.src", "ipv6.dst", "ipv6.nxt"]);
        let down = format!("{HA},{CN}\t{c},{HOA}\t41,6");
        assert!(
            tunnelled.contains(&down),
            "downlink HA -> new CoA on {to} ({down}): {tunnelled:?}"
        );
        let st = status(&mn, MN_PORT).expect("MN status");
        assert_eq!(
            st["attachment"]["ifindex"].as_u64(),
            Some(u64::from(ifindex(&mn, to))),
            "{st}"
        );
        coa = new_coa;
    }
    let mut samples = vec![received()];
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(500));
        samples.push(received());
    }
    flow.stop();
    assert!(!flow.broke(), "the TCP connection broke");
    assert!(
        samples.windows(2).all(|w| w[1] > w[0]),
        "bytes keep arriving after the moves: {samples:?}"
    );

    // (4) SIGTERM on both: nothing of ours is left in either kernel.
    let log = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert!(
        mn_daemon
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "mobile-node clean exit: {}",
        log("mn.log")
    );
    assert!(
        ha_daemon
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "home-agent clean exit: {}",
        log("ha.log")
    );
    assert_eq!(leftovers(&mn), Vec::<String>::new(), "mobile node");
    assert_eq!(leftovers(&ha), Vec::<String>::new(), "home agent");
    let _ = std::fs::remove_dir_all(&dir);
}
