//! MMA benchmark: terminal registrations per second, kernel state and daemon RSS with many
//! terminals, in throwaway namespaces.
//!
//! ```text
//! sudo cargo run --release -p mipcast-netns-tests --bin mma-bench -- --terminals 100000
//! ```
//! Options: `--terminals N` (100000), `--window W` BUs in flight (128), `--daemon PATH` (the
//! `mma` binary next to this one). Topology: `ha` (WAN) ── `mma` ── `site` (every BU comes from
//! the site's on-link address 2001:db8:4::2, one home address and group per terminal). Each
//! registration makes the MMA install two routes (batched) and one MFC entry.
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use mipcast_netns_tests::{veth, Daemon, Netns};
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::mh::{bu_flags, fill_checksum, BindingUpdate, Experimental, Message, MhRepr, MobilityOption};
use socket2::{Domain, Protocol, Socket, Type};

const MMA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 2);
const KEY: &[u8] = b"mma benchmark key, 32 bytes long";
const SPI: u32 = 1000;

struct Args {
    terminals: u32,
    window: u32,
    daemon: String,
}

fn args() -> Args {
    let mut a = Args {
        terminals: 100_000,
        window: 128,
        daemon: std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.join("mma").to_string_lossy().into_owned()))
            .unwrap_or_else(|| "mma".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--terminals" => a.terminals = value().parse().unwrap_or_else(|_| usage("bad --terminals")),
            "--window" => a.window = value().parse().unwrap_or_else(|_| usage("bad --window")),
            "--daemon" => a.daemon = value(),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("mma-bench: {msg}\nusage: mma-bench [--terminals N] [--window W] [--daemon PATH]");
    std::process::exit(2);
}

fn hoa(i: u32) -> Ipv6Addr {
    let [a, b, c, d] = i.to_be_bytes();
    Ipv6Addr::from([0x20, 0x01, 0x0d, 0xb8, 0, 0x99, 0, 0, 0, 0, 0, 0, a, b, c, d])
}

fn group(i: u32) -> Ipv6Addr {
    let [a, b, c, d] = i.to_be_bytes();
    Ipv6Addr::from([0xff, 0x35, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, a, b, c, d])
}

fn bu(i: u32, seq: u16, lifetime: u16) -> Vec<u8> {
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: seq,
            flags: bu_flags::ACK | bu_flags::MAP,
            lifetime,
        }),
        options: vec![
            MobilityOption::HomeNetworkPrefix { prefix_len: 128, prefix: hoa(i) },
            MobilityOption::ReplayProtection {
                timestamp: mipcast_wire::ntp::ntp_timestamp(SystemTime::now()),
            },
            MobilityOption::Experimental(Experimental::TerminalGroup(group(i))),
        ],
    };
    let mut buf = vec![0; repr.buffer_len() + 64];
    let creds = Credentials { spi: SPI, algorithm: Algorithm::HmacSha256_128, key: KEY };
    let n = repr.emit_authenticated(&mut buf, &creds, &SRC, &hoa(i)).expect("emit BU");
    buf.truncate(n);
    fill_checksum(&mut buf, &SRC, &MMA).expect("checksum");
    buf
}

/// One BU per terminal with `window` in flight; returns (seconds, accepted, refused, lost).
fn phase(sock: &Socket, a: &Args, seq: u16, lifetime: u16) -> (f64, u32, u32, u32) {
    let to = SocketAddr::V6(SocketAddrV6::new(MMA, 0, 0, 0)).into();
    let started = Instant::now();
    let (mut sent, mut ok, mut refused, mut lost) = (0u32, 0u32, 0u32, 0u32);
    let mut buf = [0u8; 2048];
    while ok + refused + lost < a.terminals {
        while sent < a.terminals && sent - (ok + refused + lost) < a.window {
            sock.send_to(&bu(sent, seq, lifetime), &to).expect("send BU");
            sent += 1;
        }
        match (&*sock).read(&mut buf) {
            Ok(n) => match MhRepr::parse(&buf[..n]).map(|r| r.message) {
                Ok(Message::BindingAck(b)) if b.status == 0 => ok += 1,
                Ok(Message::BindingAck(_)) => refused += 1,
                _ => {}
            },
            Err(_) => lost += 1,
        }
    }
    (started.elapsed().as_secs_f64(), ok, refused, lost)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn count_lines(ns: &Netns, cmd: &str) -> usize {
    ns.sh(cmd).lines().count()
}

fn main() {
    let a = args();
    if !mipcast_netns_tests::have_root("mma-bench") {
        std::process::exit(1);
    }
    let ha = Netns::new("bh");
    let mma = Netns::new("bm");
    let site = Netns::new("bs");
    veth(&ha, "e1", "2001:db8:2::1/64", &mma, "e0", "2001:db8:2::2/64");
    veth(&mma, "e1", "2001:db8:4::1/64", &site, "e0", "2001:db8:4::2/64");
    site.sh("ip -6 route add default via 2001:db8:4::1");

    let dir = std::env::temp_dir().join(format!("mma-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = dir.join("key");
    std::fs::write(&key, KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let config = dir.join("mma.yaml");
    std::fs::write(
        &config,
        format!(
            "address: {MMA}\nwan_interface: e0\nsite_interfaces: [e1]\nsite_prefixes: [2001:db8:4::/64]\n\
             home_agents:\n  - address: 2001:db8:2::1\n    home_prefixes: [2001:db8:99::/64]\n\
             security_associations:\n  - spi: {SPI}\n    algorithm: hmac-sha256-128\n    key_file: {}\n    home_prefixes: [2001:db8:99::/64]\n\
             state:\n  file: {}\n  write_delay_ms: 1000\n",
            key.display(),
            dir.join("state.json").display()
        ),
    )
    .expect("config");
    let log = dir.join("mma.log");
    let mut daemon = Daemon(mma.spawn(&a.daemon, &["-c", config.to_str().unwrap_or_default(), "--log-level", "warn"], Some(&log)));
    let deadline = Instant::now() + Duration::from_secs(15);
    while mma.try_sh("ss -ltn | grep -q 9642").is_err() {
        assert!(Instant::now() < deadline, "mma did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = daemon.0.id();
    let rss_idle = rss_kib(pid);

    let lines = site.enter(|| {
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(135))).expect("raw MH socket");
        sock.bind(&SocketAddr::V6(SocketAddrV6::new(SRC, 0, 0, 0)).into()).expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let _ = sock.set_recv_buffer_size(4 << 20);
        let mut lines = Vec::new();
        let (secs, ok, refused, lost) = phase(&sock, &a, 1, 1000);
        lines.push(format!(
            "register: {ok} accepted, {refused} refused, {lost} lost in {secs:.2} s = {:.0} registrations/s",
            f64::from(a.terminals) / secs
        ));
        let (secs, ok, refused, lost) = phase(&sock, &a, 2, 1000);
        lines.push(format!(
            "refresh:  {ok} accepted, {refused} refused, {lost} lost in {secs:.2} s = {:.0} refreshes/s (no kernel change)",
            f64::from(a.terminals) / secs
        ));
        lines
    });
    let rss = rss_kib(pid);
    let mfc = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let down = count_lines(&mma, "ip -6 route show proto 158");
    let up = count_lines(&mma, "ip -6 route show table 102 proto 158");
    let started = Instant::now();
    let status = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(120));
    let shutdown = started.elapsed().as_secs_f64();
    let left = count_lines(&mma, "ip -6 route show table all proto 158");
    let mfc_left = count_lines(&mma, "cat /proc/net/ip6_mr_cache").saturating_sub(1);
    let state_mib = std::fs::metadata(dir.join("state.json")).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0);
    let cpus = Command::new("nproc").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();

    println!("mma benchmark: {} terminals, window {}, {cpus} CPUs", a.terminals, a.window);
    for l in lines {
        println!("  {l}");
    }
    println!("  kernel: {mfc} MFC entries, {down} downlink routes (main), {up} uplink routes (table 102)");
    println!("  RSS idle {rss_idle} KiB, with {} terminals {rss} KiB", a.terminals);
    println!(
        "  SIGTERM: exit {status:?} after {shutdown:.2} s, left {left} routes and {mfc_left} MFC entries; state file {state_mib:.1} MiB"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
