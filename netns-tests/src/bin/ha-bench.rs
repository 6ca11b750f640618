//! Home agent benchmark: Binding Update → Binding Acknowledgement throughput and daemon memory
//! with many bindings, in throwaway namespaces.
//!
//! ```text
//! cargo build --release -p home-agent
//! sudo cargo run --release -p mipcast-netns-tests --bin ha-bench -- --bindings 100000
//! ```
//! Options: `--bindings N` (100000), `--window W` BUs in flight (128), `--coas C` distinct
//! care-of addresses (16), `--daemon PATH` (default: `home-agent` beside this binary).
//!
//! The client keeps W BUs in flight over a raw Mobility Header socket (checksum computed here)
//! and counts BAcks; phases: register all, refresh all (no kernel change), deregister all.
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{fill_checksum, BindingUpdate, Message, MhRepr, MobilityOption};
use mipcast_wire::ntp::ntp_timestamp;
use socket2::{Domain, Protocol, Socket, Type};

const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);
const KEY: &[u8] = b"benchmark-key-not-hex";
const SPI: u32 = 1000;

struct Args {
    bindings: u32,
    window: u32,
    coas: u32,
    daemon: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        bindings: 100_000,
        window: 128,
        coas: 16,
        daemon: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("home-agent")))
            .unwrap_or_else(|| PathBuf::from("home-agent")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = || {
            value
                .parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number")))
        };
        match flag.as_str() {
            "--bindings" => a.bindings = num(),
            "--window" => a.window = num().max(1),
            "--coas" => a.coas = num().clamp(1, 65535),
            "--daemon" => a.daemon = PathBuf::from(&value),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "ha-bench: {msg}\nusage: ha-bench [--bindings N] [--window W] [--coas C] [--daemon PATH]"
    );
    std::process::exit(2)
}

fn hoa(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, 0)) + u128::from(i))
}

fn coa(i: u32, coas: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, (1 + i % coas) as u16)
}

fn bu(hoa: Ipv6Addr, coa: Ipv6Addr, seq: u16, lifetime: u16) -> Vec<u8> {
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: seq,
            flags: 0xc000,
            lifetime,
        }),
        options: vec![
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: hoa,
            },
            MobilityOption::AlternateCareOf(coa),
            MobilityOption::ReplayProtection {
                timestamp: ntp_timestamp(SystemTime::now()),
            },
        ],
    };
    let mut buf = vec![0; 256];
    let creds = Credentials {
        spi: SPI,
        algorithm: Algorithm::HmacSha256_128,
        key: KEY,
    };
    let n = repr
        .emit_authenticated(&mut buf, &creds, &coa, &hoa)
        .expect("emit BU");
    buf.truncate(n);
    fill_checksum(&mut buf, &SRC, &HA).expect("checksum");
    buf
}

/// Sends one BU per binding with `window` in flight; returns (seconds, BAcks by status 0,
/// other replies, timeouts).
fn phase(sock: &Socket, a: &Args, seq: u16, lifetime: u16) -> (f64, u32, u32, u32) {
    let to = SocketAddr::V6(SocketAddrV6::new(HA, 0, 0, 0)).into();
    let started = Instant::now();
    let (mut sent, mut ok, mut other, mut lost) = (0u32, 0u32, 0u32, 0u32);
    let mut buf = [0u8; 2048];
    while ok + other + lost < a.bindings {
        while sent < a.bindings && sent - (ok + other + lost) < a.window {
            let msg = bu(hoa(sent), coa(sent, a.coas), seq, lifetime);
            sock.send_to(&msg, &to).expect("send BU");
            sent += 1;
        }
        match (&*sock).read(&mut buf) {
            Ok(n) => match MhRepr::parse(&buf[..n]).map(|r| r.message) {
                Ok(Message::BindingAck(b)) if b.status == 0 => ok += 1,
                Ok(Message::BindingAck(_)) | Ok(Message::BindingError(_)) => other += 1,
                _ => {}
            },
            // A reply lost (e.g. a BU dropped by a full socket buffer): count it and go on.
            Err(_) => lost += 1,
        }
        let done = ok + other + lost;
        if done % 10_000 == 0 && done > 0 {
            eprintln!(
                "  {done} replies after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    (started.elapsed().as_secs_f64(), ok, other, lost)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let a = args();
    if !nix::unistd::geteuid().is_root() {
        usage("needs root (network namespaces)");
    }
    if !a.daemon.exists() {
        usage(&format!(
            "{} not found: build it first (cargo build --release -p home-agent) or pass --daemon",
            a.daemon.display()
        ));
    }
    let (ha, cn, mn) = (Netns::new("bha"), Netns::new("bcn"), Netns::new("bmn"));
    veth(
        &cn,
        "cn0",
        "2001:db8:1::2/64",
        &ha,
        "home0",
        "2001:db8:1::1/64",
    );
    veth(
        &mn,
        "wan0",
        "2001:db8:2::9/64",
        &ha,
        "wan1",
        "2001:db8:2::1/64",
    );
    ha.sh("ip -6 route add 2001:db8:3::/64 via 2001:db8:2::9");
    mn.sh("ip -6 route add default via 2001:db8:2::1");

    let dir = std::env::temp_dir().join(format!("ha-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = dir.join("key");
    std::fs::write(&key, KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = dir.join("home-agent.yaml");
    std::fs::write(
        &config,
        format!(
            "home_link: {{ interface: home0, address: {HA} }}\n\
             home_prefixes: [2001:db8:1::/64]\n\
             security_associations:\n  - {{ spi: {SPI}, algorithm: hmac-sha256-128, key_file: {}, home_prefixes: [2001:db8:1::/64] }}\n\
             state: {{ file: {}, write_delay_ms: 1000 }}\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("home-agent.log");
    let mut daemon = Daemon(ha.spawn(
        a.daemon.to_str().expect("path"),
        &["-c", config.to_str().expect("path"), "--log-level", "warn"],
        Some(&log),
    ));
    let pid = daemon.0.id();
    let ready = Instant::now() + Duration::from_secs(15);
    while ha.try_sh("ss -ltn | grep -q 9641").is_err() {
        assert!(
            Instant::now() < ready,
            "daemon not ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_idle = rss_kib(pid);

    let report = mn.enter(|| {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(135))).expect("raw MH socket");
        sock.bind(&SocketAddr::V6(SocketAddrV6::new(SRC, 0, 0, 0)).into()).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        // A big receive buffer: BAcks of a whole window may be queued at once.
        let _ = sock.set_recv_buffer_size(4 << 20);
        let mut lines = Vec::new();
        for (name, seq, lifetime) in [("register", 1u16, 900u16), ("refresh", 2, 900), ("deregister", 3, 0)] {
            eprintln!("{name}...");
            let (secs, ok, other, lost) = phase(&sock, &a, seq, lifetime);
            let rss = rss_kib(pid);
            let objects = ha.sh("ip -6 route show table all proto 158 | wc -l; ip -6 neigh show proxy | wc -l");
            let line = format!(
                "{name:<10} {:>7} BUs in {secs:>7.2} s = {:>8.0} BU/s  (BAck 0: {ok}, other: {other}, lost: {lost})  \
                 RSS {rss} KiB  routes+proxies: {}",
                a.bindings,
                f64::from(a.bindings) / secs,
                objects.split_whitespace().collect::<Vec<_>>().join("+"),
            );
            eprintln!("{line}");
            lines.push(line);
            if name == "register" {
                lines.push(format!("RSS idle {rss_idle} KiB, with {} bindings {rss} KiB", a.bindings));
            }
        }
        lines
    });
    let stop = Instant::now();
    let status = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    println!(
        "home-agent benchmark: {} bindings, window {}, {} care-of addresses",
        a.bindings, a.window, a.coas
    );
    for l in report {
        println!("{l}");
    }
    println!(
        "shutdown: {:.2} s, exit {:?}",
        stop.elapsed().as_secs_f64(),
        status
    );
    let _ = std::fs::remove_dir_all(&dir);
}
