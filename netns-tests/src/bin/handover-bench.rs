//! handover-bench: what a move costs a live stream, mipcast against plain Mobile IPv6.
//!
//! The standard topology (`mipcast_netns_tests::site`, with the home link and a delay element on
//! every WAN link), a 1,000 packets/s UDP stream CN -> home address and the same stream back
//! (terminal -> CN), each datagram carrying a sequence number and its send time, while the
//! terminal moves back and forth:
//!
//! - `intra`: e1 <-> e2 (a1 and a2, both site 1); `inter`: e1 <-> e3 (site 1 <-> site 2);
//!   `home`: e1 <-> e4 (site 1 <-> the home link).
//! - `mbb` (make before break): both links up, the new one at quality 60, the old one's
//!   quality falls from 100 in steps of 10 every 50 ms until the terminal switches.
//! - `bbm` (break before make): both links up, then the old link's router side goes down at
//!   once (the terminal sees its carrier go); it comes back after the move is measured.
//! - modes `mipcast` (the terminal's `mode: site`) and `mipv6` (its plain RFC 6275 mode), one
//!   site each per delay, same topology and delays. `mipcast-ro` (not run by default: ask for
//!   it with `--modes`) is `mipcast` with route optimisation (issue 12): the correspondent
//!   agent runs in `cn`, the MMAs bind it and hand each other the terminal's context (MMA peers).
//!   Before the streams start, a few packets to the home address make mma1 bind the
//!   correspondent, so the streams run route-optimised from the first packet and the loss
//!   counted is the moves'. After each move the correspondent's binding is checked against the
//!   MMA now serving the terminal (none at home): `ro_binding_misses` counts the moves where
//!   it was not there by the end of the move's window.
//!
//! Per move, the interruption is the longest interval between consecutive received packets,
//! either direction, from the trigger to the next move's trigger. `lost` counts sequence
//! numbers never received, `duplicates` those received more than once. Signalling counts
//! distinct Mobility Header messages: `signalling_outside_site` those the WAN delay elements
//! carried, `signalling_total` those seen anywhere (taps in the terminal, the home agent and
//! the MMAs, plus the WAN).
//!
//! ```text
//! cargo build --release --workspace
//! sudo target/release/handover-bench --delays 0,10,25,50 --moves 20 [--json]
//! sudo target/release/handover-bench --modes mipcast,mipcast-ro --kinds inter --delays 10   # FIG 6 loss
//! ```
//! SIGINT/SIGTERM stop the daemons and delete the namespaces.
// A test tool: what cannot be set up ends the run with a message, by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use std::collections::{HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mipcast_netns_tests::delay::{realtime_thread, MhMessage, MhTap};
use mipcast_netns_tests::site::{addr, Node, Site, SiteError, SiteOptions, WanDelays, WanLink};
use mipcast_netns_tests::wait::{self, pause, wait_for, WaitError};
use mipcast_netns_tests::Netns;
use serde_json::{json, Value};

const USAGE: &str = "[--delays 0,10,25,50] [--moves 20] [--modes mipcast,mipv6,mipcast-ro] \
[--kinds intra,inter,home] [--styles mbb,bbm] [--site-site-ms N] [--bin-dir DIR] [--json]";
const RATE_PPS: u64 = 1000;
const DOWN_PORT: u16 = 7100;
const UP_PORT: u16 = 7101;

fn usage(msg: &str) -> ! {
    eprintln!("handover-bench: {msg}\nusage: handover-bench {USAGE}");
    std::process::exit(2)
}

struct Args {
    delays: Vec<u64>,
    moves: u32,
    modes: Vec<String>,
    kinds: Vec<String>,
    styles: Vec<String>,
    /// One-way delay of the sites' direct link (MMA1 -- MMA2); None: the WAN delay.
    site_site_ms: Option<u64>,
    /// Where the daemons are; None: next to this binary.
    bin_dir: Option<std::path::PathBuf>,
    json: bool,
}

fn list(flag: &str, v: &str, allowed: &[&str]) -> Vec<String> {
    let out: Vec<String> = v.split(',').map(str::to_owned).collect();
    if out.is_empty() || out.iter().any(|x| !allowed.contains(&x.as_str())) {
        usage(&format!("{flag}: expected a list of {}", allowed.join(",")));
    }
    out
}

fn parse_args() -> Args {
    let mut a = Args {
        delays: vec![0, 10, 25, 50],
        moves: 20,
        modes: vec!["mipcast".into(), "mipv6".into()],
        kinds: vec!["intra".into(), "inter".into(), "home".into()],
        styles: vec!["mbb".into(), "bbm".into()],
        site_site_ms: None,
        bin_dir: None,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!(
                "usage: handover-bench {USAGE}\n\n\
                 Moves a terminal under a 1000 packets/s UDP stream each way (CN <-> home address)\n\
                 and reports loss, duplicates, the interruption per move and the Mobility Header\n\
                 messages, for mipcast and plain Mobile IPv6, at each one-way WAN delay (ms).\n\
                 mipcast-ro: mipcast with route optimisation (correspondent agent, MMA peers).\n\
                 Run as root on a release build (cargo build --release --workspace).\n\
                 --site-site-ms sets the sites' direct link (MMA1 -- MMA2) apart from the WAN\n\
                 delay (neighbouring sites); --bin-dir runs other daemon binaries (a before/after).\n\
                 --json prints {{\"runs\": [...]}} on stdout (the table goes to stderr)."
            );
            std::process::exit(0);
        }
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--delays" => {
                a.delays = v
                    .split(',')
                    .map(|d| {
                        d.parse()
                            .unwrap_or_else(|_| usage("--delays: comma-separated milliseconds"))
                    })
                    .collect()
            }
            "--moves" => {
                a.moves = v
                    .parse()
                    .ok()
                    .filter(|m| *m > 0)
                    .unwrap_or_else(|| usage("--moves: a positive number"))
            }
            "--modes" => a.modes = list("--modes", &v, &["mipcast", "mipv6", "mipcast-ro"]),
            "--kinds" => a.kinds = list("--kinds", &v, &["intra", "inter", "home"]),
            "--styles" => a.styles = list("--styles", &v, &["mbb", "bbm"]),
            "--site-site-ms" => {
                a.site_site_ms = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage("--site-site-ms: milliseconds")),
                )
            }
            "--bin-dir" => a.bin_dir = Some(v.into()),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    a
}

fn main() -> ExitCode {
    let args = parse_args();
    if !mipcast_netns_tests::have_root() {
        eprintln!("handover-bench builds network namespaces: run it as root.");
        return ExitCode::FAILURE;
    }
    // The first SIGINT/SIGTERM interrupts the waits (the run winds down and removes its
    // sites); namespaces still there 5 s later are removed under it.
    mipcast_netns_tests::cleanup::on_signals();
    let result = run(&args);
    // Every site (daemons, namespaces) is gone once run() returns.
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if wait::interrupted() => {
            eprintln!("\ninterrupted: daemons stopped, namespaces deleted");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("\nhandover-bench failed: {e}");
            ExitCode::FAILURE
        }
    };
    let pid = format!("_{}_", std::process::id());
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("mchb") && l.contains(&pid))
            .map(str::to_owned)
            .collect();
        if !ours.is_empty() {
            eprintln!("namespaces left behind: {ours:?}");
            return ExitCode::FAILURE;
        }
    }
    code
}

#[derive(Debug)]
enum BenchError {
    Site(SiteError),
    Other(String),
    Interrupted,
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Site(e) => write!(f, "{e}"),
            BenchError::Other(e) => write!(f, "{e}"),
            BenchError::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl From<SiteError> for BenchError {
    fn from(e: SiteError) -> Self {
        match e {
            SiteError::Wait(WaitError::Interrupted) => BenchError::Interrupted,
            e => BenchError::Site(e),
        }
    }
}

impl From<WaitError> for BenchError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::Interrupted => BenchError::Interrupted,
            other => BenchError::Site(SiteError::Wait(other)),
        }
    }
}

impl From<String> for BenchError {
    fn from(e: String) -> Self {
        BenchError::Other(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A paced UDP stream from one namespace to another: datagrams of 64 bytes carrying a
/// sequence number and the send time; the receiver logs (sequence, arrival).
struct Stream {
    stop_tx: Arc<AtomicBool>,
    stop_rx: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<(u64, Instant)>>>,
    tx: Option<JoinHandle<()>>,
    rx: Option<JoinHandle<()>>,
}

/// A UDP socket in `ns` bound to `[a]:port`, with IPV6_FREEBIND: the home address moves
/// between `lo` and e4 and is briefly absent, which must not break the stream's sockets.
fn udp_socket(ns: &Netns, a: Ipv6Addr, port: u16) -> Result<std::net::UdpSocket, String> {
    ns.enter(|| {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        s.set_freebind_v6(true)
            .map_err(|e| format!("IPV6_FREEBIND: {e}"))?;
        s.set_recv_buffer_size(1 << 20)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
        s.bind(&SocketAddr::V6(SocketAddrV6::new(a, port, 0, 0)).into())
            .map_err(|e| format!("bind [{a}]:{port} in {}: {e}", ns.name()))?;
        Ok(s.into())
    })
}

impl Stream {
    fn start(
        from: &Netns,
        src: Ipv6Addr,
        to: &Netns,
        dst: Ipv6Addr,
        port: u16,
    ) -> Result<Stream, String> {
        let tx_sock = udp_socket(from, src, 0)?;
        let rx_sock = udp_socket(to, dst, port)?;
        rx_sock
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let mut s = Stream {
            stop_tx: Arc::new(AtomicBool::new(false)),
            stop_rx: Arc::new(AtomicBool::new(false)),
            sent: Arc::new(AtomicU64::new(0)),
            arrivals: Arc::new(Mutex::new(Vec::with_capacity(1 << 16))),
            tx: None,
            rx: None,
        };
        let (stop, log) = (Arc::clone(&s.stop_rx), Arc::clone(&s.arrivals));
        let rx = std::thread::spawn(move || {
            realtime_thread();
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = rx_sock.recv(&mut buf) {
                    let now = Instant::now();
                    if n >= 16 {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                        lock(&log).push((seq, now));
                    }
                }
            }
        });
        let (stop, sent) = (Arc::clone(&s.stop_tx), Arc::clone(&s.sent));
        let epoch = Instant::now();
        let tx = std::thread::spawn(move || {
            realtime_thread();
            let dst = SocketAddr::V6(SocketAddrV6::new(dst, port, 0, 0));
            let mut buf = [0u8; 64];
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = epoch + Duration::from_nanos(seq * 1_000_000_000 / RATE_PPS);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                buf[..8].copy_from_slice(&seq.to_be_bytes());
                let t = epoch.elapsed().as_nanos() as u64;
                buf[8..16].copy_from_slice(&t.to_be_bytes());
                // A send refused (no route or address for a moment) is a lost packet.
                let _ = tx_sock.send_to(&buf, dst);
                seq += 1;
                sent.store(seq, Ordering::Relaxed);
            }
        });
        s.tx = Some(tx);
        s.rx = Some(rx);
        Ok(s)
    }

    /// Stops sending (the receiver goes on).
    fn stop_sending(&mut self) {
        self.stop_tx.store(true, Ordering::Relaxed);
        if let Some(t) = self.tx.take() {
            let _ = t.join();
        }
    }

    /// Stops sending, lets packets in flight arrive for `drain`, stops receiving; returns
    /// (sent, arrivals).
    fn finish(mut self, drain: Duration) -> (u64, Vec<(u64, Instant)>) {
        self.stop_sending();
        std::thread::sleep(drain);
        self.stop_rx.store(true, Ordering::Relaxed);
        if let Some(t) = self.rx.take() {
            let _ = t.join();
        }
        let arrivals = std::mem::take(&mut *lock(&self.arrivals));
        (self.sent.load(Ordering::Relaxed), arrivals)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop_tx.store(true, Ordering::Relaxed);
        self.stop_rx.store(true, Ordering::Relaxed);
        for t in [self.tx.take(), self.rx.take()].into_iter().flatten() {
            let _ = t.join();
        }
    }
}

/// The longest silence within [from, to) of sorted arrival times (the window's edges count as
/// arrivals, so a stream that stopped shows it): (length, start relative to `from`).
fn largest_gap(times: &[Instant], from: Instant, to: Instant) -> (Duration, Duration) {
    let mut last = from;
    let mut worst = (Duration::ZERO, Duration::ZERO);
    for t in times
        .iter()
        .filter(|t| **t >= from && **t < to)
        .chain(std::iter::once(&to))
    {
        let gap = t.saturating_duration_since(last);
        if gap > worst.0 {
            worst = (gap, last.saturating_duration_since(from));
        }
        last = *t;
    }
    worst
}

/// (lost, duplicates) of a stream.
fn loss(sent: u64, arrivals: &[(u64, Instant)]) -> (u64, u64) {
    let unique: HashSet<u64> = arrivals.iter().map(|(s, _)| *s).collect();
    let got = unique.iter().filter(|s| **s < sent).count() as u64;
    (sent - got, arrivals.len() as u64 - unique.len() as u64)
}

#[derive(Debug, Clone)]
struct RunResult {
    mode: String,
    kind: String,
    style: String,
    delay: u64,
    /// The sites' direct link's one-way delay.
    site_site: u64,
    moves: u32,
    lost_down: u64,
    lost_up: u64,
    duplicates: u64,
    duplicates_down: u64,
    /// Break before make: from the carrier-down command to the terminal's log line saying it
    /// saw the link go (an upper bound: includes starting `ip`), per move.
    detections: Vec<f64>,
    gaps_down: Vec<f64>,
    gaps_up: Vec<f64>,
    /// Where each move's largest downstream gap began, ms after the trigger.
    gap_starts_down: Vec<f64>,
    mh_outside: usize,
    mh_total: usize,
    /// Moves where the terminal did not reach the target link within the timeout.
    failed_moves: u32,
    /// `mipcast-ro`: moves after which the correspondent's binding did not name the serving
    /// MMA (or was not gone, at home) by the end of the move's window.
    ro_binding_misses: Option<u32>,
    /// `mipcast-ro`: per move, the care-of address the correspondent held when last looked at
    /// in the move's window, and when (ms after the trigger) it first named the serving MMA.
    ro_bindings: Vec<(Option<Ipv6Addr>, Option<f64>)>,
}

impl RunResult {
    fn gaps(&self) -> Vec<f64> {
        self.gaps_down
            .iter()
            .zip(&self.gaps_up)
            .map(|(d, u)| d.max(*u))
            .collect()
    }

    fn mean(v: &[f64]) -> f64 {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    fn max_gap(&self) -> f64 {
        self.gaps().into_iter().fold(0.0, f64::max)
    }

    fn mean_gap(&self) -> f64 {
        Self::mean(&self.gaps())
    }

    fn json(&self) -> Value {
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        json!({
            "mode": self.mode, "move": self.kind, "style": self.style,
            "wan_delay_ms": self.delay, "site_site_ms": self.site_site, "moves": self.moves,
            "lost": self.lost_down + self.lost_up, "duplicates": self.duplicates,
            "max_gap_ms": r2(self.max_gap()), "mean_gap_ms": r2(self.mean_gap()),
            "signalling_outside_site": self.mh_outside, "signalling_total": self.mh_total,
            "lost_down": self.lost_down, "lost_up": self.lost_up,
            "duplicates_down": self.duplicates_down,
            "mean_detection_ms": (!self.detections.is_empty())
                .then(|| r2(Self::mean(&self.detections))),
            "max_detection_ms": (!self.detections.is_empty())
                .then(|| r2(self.detections.iter().copied().fold(0.0, f64::max))),
            "mean_gap_down_ms": r2(Self::mean(&self.gaps_down)),
            "mean_gap_up_ms": r2(Self::mean(&self.gaps_up)),
            "per_move": self.gaps_down.iter().zip(&self.gaps_up).zip(&self.gap_starts_down)
                .enumerate()
                .map(|(i, ((d, u), s))| {
                    let mut m = json!({"gap_down_ms": r2(*d), "gap_up_ms": r2(*u),
                                       "gap_down_start_ms": r2(*s)});
                    if let Some((b, at)) = self.ro_bindings.get(i) {
                        m["cn_binding"] = json!(b.map(|a| a.to_string()));
                        m["cn_binding_after_ms"] = json!(at.map(r2));
                    }
                    m
                })
                .collect::<Vec<_>>(),
            "failed_moves": self.failed_moves,
            "route_optimisation": self.ro_binding_misses.is_some(),
            "ro_binding_misses": self.ro_binding_misses,
        })
    }
}

fn header() -> String {
    format!(
        "{:<10} {:<6} {:<5} {:>5} {:>5} {:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>7} {:>7}",
        "mode",
        "move",
        "style",
        "delay",
        "moves",
        "lost",
        "dups",
        "max gap",
        "mean gap",
        "down",
        "up",
        "MH-out",
        "MH-all",
        "failed",
        "detect",
        "RO-miss"
    )
}

fn row(r: &RunResult) -> String {
    format!(
        "{:<10} {:<6} {:<5} {:>5} {:>5} {:>7} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>7} {:>6} {:>7} {:>7}",
        r.mode,
        r.kind,
        r.style,
        r.delay,
        r.moves,
        r.lost_down + r.lost_up,
        r.duplicates,
        r.max_gap(),
        r.mean_gap(),
        RunResult::mean(&r.gaps_down),
        RunResult::mean(&r.gaps_up),
        r.mh_outside,
        r.mh_total,
        r.failed_moves,
        if r.detections.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.1}", RunResult::mean(&r.detections))
        },
        r.ro_binding_misses
            .map_or_else(|| "-".to_owned(), |m| m.to_string())
    )
}

fn run(args: &Args) -> Result<(), BenchError> {
    let mut results: Vec<RunResult> = Vec::new();
    eprintln!(
        "handover-bench: {} moves per run; streams of {RATE_PPS} packets/s each way; \
         gaps in ms (largest silence per move, either direction; down = CN -> terminal, \
         up = terminal -> CN); MH = Mobility Header messages per run",
        args.moves
    );
    if let Some(ms) = args.site_site_ms {
        eprintln!("handover-bench: the sites' direct link (mma1 -- mma2) at {ms} ms one-way");
    }
    eprintln!("{}", header());
    for &delay in &args.delays {
        for mode in &args.modes {
            let mut site = build(delay, mode, args)?;
            for kind in &args.kinds {
                for style in &args.styles {
                    let mut r = measure(&site, mode, kind, style, delay, args.moves)?;
                    r.site_site = args.site_site_ms.unwrap_or(delay);
                    eprintln!("{}", row(&r));
                    results.push(r);
                }
            }
            // Leaves nothing behind: checked here rather than trusted.
            site.stop_daemons(Duration::from_secs(10));
            let left = site.leftovers()?;
            if !left.is_empty() {
                eprintln!(
                    "warning: kernel state left behind by the daemons ({mode}, {delay} ms):\n  {}",
                    left.join("\n  ")
                );
            }
        }
        for kind in &args.kinds {
            for style in &args.styles {
                let find = |m: &str| {
                    results.iter().find(|r| {
                        r.delay == delay && r.mode == m && r.kind == *kind && r.style == *style
                    })
                };
                if let (Some(a), Some(b)) = (find("mipv6"), find("mipcast")) {
                    let ratio = if b.mean_gap() > 0.0 {
                        format!("{:.2}", a.mean_gap() / b.mean_gap())
                    } else {
                        "-".into()
                    };
                    eprintln!(
                        "summary {delay} ms {kind} {style}: mipv6 / mipcast mean interruption = \
                         {:.1} / {:.1} ms = {ratio}",
                        a.mean_gap(),
                        b.mean_gap()
                    );
                }
                if let (Some(ro), Some(b)) = (find("mipcast-ro"), find("mipcast")) {
                    eprintln!(
                        "summary {delay} ms {kind} {style}: mipcast-ro / mipcast lost = {} / {}, \
                         mean interruption = {:.1} / {:.1} ms, max = {:.1} / {:.1} ms",
                        ro.lost_down + ro.lost_up,
                        b.lost_down + b.lost_up,
                        ro.mean_gap(),
                        b.mean_gap(),
                        ro.max_gap(),
                        b.max_gap()
                    );
                }
            }
        }
    }
    if args.json {
        let runs: Vec<Value> = results.iter().map(RunResult::json).collect();
        println!("{}", json!({ "runs": runs }));
    }
    Ok(())
}

fn build(delay: u64, mode: &str, args: &Args) -> Result<Site, BenchError> {
    let mut opts = SiteOptions::new("hb");
    opts.wan_delay_ms = WanDelays {
        site_site: args.site_site_ms.unwrap_or(delay),
        ..WanDelays::all(delay)
    };
    opts.bin_dir.clone_from(&args.bin_dir);
    opts.wan_relays = true;
    opts.home_link = args.kinds.iter().any(|k| k == "home");
    opts.mn_mode = if mode == "mipv6" { "mipv6" } else { "site" }.into();
    opts.log_level = "info".into();
    opts.correspondent_agent = mode == "mipcast-ro";
    opts.mma_peers = mode == "mipcast-ro";
    let mut site = Site::build(&opts)?;
    if opts.home_link {
        // The terminal hears the home link only while a home run needs it: with e4 up it
        // would have a connected route to the home prefix (and the home agent) all along.
        carrier(&site, "e4", false)?;
    }
    site.start_daemons()?;
    Ok(site)
}

/// The router side of the terminal's link `ifname`: its carrier as the terminal sees it.
fn router_side(ifname: &str) -> (Node, &'static str) {
    match ifname {
        "e1" => (Node::A1, "acc0"),
        "e2" => (Node::A2, "acc0"),
        "e3" => (Node::A3, "acc0"),
        _ => (Node::Home, "hm0"),
    }
}

fn carrier(site: &Site, ifname: &str, up: bool) -> Result<(), String> {
    let (node, dev) = router_side(ifname);
    site.ns(node).try_sh(&format!(
        "ip link set {dev} {}",
        if up { "up" } else { "down" }
    ))?;
    Ok(())
}

/// How long after `since` the terminal logged that `ifname` went down, if it did.
fn link_down_logged(log: &str, ifname: &str, since: std::time::SystemTime) -> Option<Duration> {
    let needle = format!("link state changed link={ifname} up=false");
    let since = since.duration_since(std::time::UNIX_EPOCH).ok()?;
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| rfc3339_utc(l.split_whitespace().next()?))
        .find(|t| *t >= since)
        .map(|t| t - since)
}

/// `2026-11-30T08:52:18.121725Z` (the daemons' log timestamps) as time since the epoch.
fn rfc3339_utc(s: &str) -> Option<Duration> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<u64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(Duration::new(
        days * 86_400 + hh * 3600 + mm * 60 + ss,
        nanos,
    ))
}

/// The terminal's status: attachment ifindex and, per link name, whether it is usable (score).
fn mn_view(site: &Site) -> Option<(Option<u64>, HashMap<String, bool>, Value)> {
    let st = site.status(Node::Mn).ok()?;
    let at = st["attachment"]["ifindex"].as_u64();
    let links = st["links"]
        .as_array()?
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").to_owned(),
                !l["score"].is_null(),
            )
        })
        .collect();
    Some((at, links, st))
}

/// Registered where it should be: nothing outstanding, and bound with the home agent unless
/// at home.
fn settled(st: &Value, at_home: bool) -> bool {
    if at_home {
        return true;
    }
    let regs = st["registrations"].as_array().cloned().unwrap_or_default();
    let all_bound = regs.iter().all(|r| r["state"] == "bound");
    let ha_bound = regs
        .iter()
        .any(|r| r["peer"] == addr::HA.to_string() && r["state"] == "bound");
    all_bound && ha_bound
}

/// Puts the terminal on `a` with `b` usable next to it (qualities a 100, b 60, others 0;
/// e4's carrier only when it is one of them) and waits until it is registered there.
fn place(site: &Site, a: &str, b: &str) -> Result<(), BenchError> {
    let has_home = site.ifindex(Node::Mn, "e4").is_some();
    for i in ["e1", "e2", "e3", "e4"] {
        let q = if i == a {
            100
        } else if i == b {
            60
        } else {
            0
        };
        site.set_quality(i, q)?;
        if i != "e4" {
            carrier(site, i, true)?;
        } else if has_home {
            carrier(site, i, i == a || i == b)?;
        }
    }
    let ia = u64::from(site.ifindex(Node::Mn, a).unwrap_or(0));
    let placed = wait_for(
        &format!("the terminal settled on {a} with {b} usable"),
        Duration::from_secs(30),
        || {
            let (at, links, st) = mn_view(site)?;
            (at == Some(ia) && links.get(b).copied().unwrap_or(false) && settled(&st, a == "e4"))
                .then_some(())
        },
    );
    match placed {
        Ok(()) => {}
        Err(WaitError::Interrupted) => return Err(BenchError::Interrupted),
        // Measured anyway: the rows show what a terminal that cannot settle goes through.
        Err(e) => eprintln!(
            "  warning: {e}; terminal status: {}",
            site.status(Node::Mn)
                .map(|v| v.to_string())
                .unwrap_or_default()
        ),
    }
    // Past the overlap and any forwarding set up by the placement itself.
    pause(Duration::from_millis(1500))?;
    Ok(())
}

fn measure(
    site: &Site,
    mode: &str,
    kind: &str,
    style: &str,
    delay: u64,
    moves: u32,
) -> Result<RunResult, BenchError> {
    let (a, b) = match kind {
        "intra" => ("e1", "e2"),
        "inter" => ("e1", "e3"),
        _ => ("e1", "e4"),
    };
    place(site, a, b)?;
    let taps = [Node::Mn, Node::Ha, Node::Mma1, Node::Mma2]
        .iter()
        .map(|n| MhTap::start(site.ns(*n)).map_err(|e| format!("MH tap in {}: {e}", n.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let ro = mode == "mipcast-ro";
    if ro {
        bind_correspondent(site)?;
    }
    let t_run = Instant::now();
    let down = Stream::start(&site.cn, addr::CN, &site.mn, addr::HOA, DOWN_PORT)?;
    let up = Stream::start(&site.mn, addr::HOA, &site.cn, addr::CN, UP_PORT)?;
    pause(Duration::from_millis(500))?;
    // After each move: time for the overlap (1 s), the tree and the WAN round trips.
    let window = Duration::from_millis(2000 + 4 * delay);
    let mut triggers = Vec::new();
    let mut detections = Vec::new();
    let mut failed = 0u32;
    let mut ro_misses = 0u32;
    let mut ro_bindings = Vec::new();
    let (mut cur, mut next) = (a, b);
    for _ in 0..moves {
        let target = u64::from(site.ifindex(Node::Mn, next).unwrap_or(0));
        let t0 = Instant::now();
        triggers.push(t0);
        if style == "mbb" {
            for q in (20..=90).rev().step_by(10) {
                site.set_quality(cur, q)?;
                pause(Duration::from_millis(50))?;
                if mn_view(site).is_some_and(|(at, _, _)| at == Some(target)) {
                    break;
                }
            }
        } else {
            let wall = std::time::SystemTime::now();
            carrier(site, cur, false)?;
            let seen = wait_for(
                &format!("the terminal seeing {cur} go down"),
                Duration::from_secs(5),
                || link_down_logged(&site.log(Node::Mn), cur, wall),
            );
            if let Ok(d) = seen {
                detections.push(d.as_secs_f64() * 1000.0);
            }
        }
        let arrived = wait_for(
            &format!("the terminal on {next}"),
            Duration::from_secs(10),
            || mn_view(site).and_then(|(at, _, _)| (at == Some(target)).then_some(())),
        );
        match arrived {
            Ok(()) => {}
            Err(WaitError::Interrupted) => return Err(BenchError::Interrupted),
            Err(e) => {
                failed += 1;
                eprintln!("  {mode} {kind} {style}: {e}");
            }
        }
        // Ready for the way back: the link just left usable again at quality 60, the current
        // one at 100. Set at once, so that the averages (time constant 2 s) have settled by
        // the time the link left comes back: set later, the link coming back still scored
        // its old quality and took the terminal back on its own (an extra, unmeasured move).
        site.set_quality(next, 100)?;
        site.set_quality(cur, 60)?;
        let rest = window.saturating_sub(t0.elapsed());
        if ro {
            // The rest of the window watching the correspondent's binding follow the move, and
            // at least a second and two WAN round trips after the terminal reached its link (a
            // make-before-break switch can come late in the window).
            let mut seen = None;
            let watch = rest.max(Duration::from_millis(1000 + 4 * delay));
            let followed = wait_for("the correspondent's binding", watch, || {
                seen = cn_binding(site);
                (seen == serving_mma(next)).then(|| t0.elapsed().as_secs_f64() * 1000.0)
            });
            let at = match followed {
                Ok(at) => Some(at),
                Err(WaitError::Interrupted) => return Err(BenchError::Interrupted),
                Err(_) => {
                    ro_misses += 1;
                    None
                }
            };
            ro_bindings.push((seen, at));
        }
        pause(window.saturating_sub(t0.elapsed()))?;
        if style == "bbm" {
            carrier(site, cur, true)?;
        }
        let left = cur;
        let usable = wait_for(
            &format!("{left} usable again"),
            Duration::from_secs(10),
            || {
                mn_view(site)
                    .and_then(|(_, links, _)| links.get(left).copied().filter(|u| *u).map(|_| ()))
            },
        );
        if let Err(WaitError::Interrupted) = usable {
            return Err(BenchError::Interrupted);
        }
        pause(Duration::from_millis(300))?;
        (cur, next) = (next, cur);
    }
    let t_end = Instant::now();
    triggers.push(t_end);
    let drain = Duration::from_millis(300 + 2 * delay);
    // Both senders stop first, so the one drain covers the packets in flight either way (the
    // upstream ones too: stopping its receiver at once counted the last 2 x delay as lost).
    let mut up = up;
    up.stop_sending();
    let (sent_d, arr_d) = down.finish(drain);
    let (sent_u, arr_u) = up.finish(Duration::ZERO);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let gaps = |arr: &[(u64, Instant)]| {
        let mut times: Vec<Instant> = arr.iter().map(|(_, t)| *t).collect();
        times.sort();
        triggers
            .windows(2)
            .map(|w| largest_gap(&times, w[0], w[1]))
            .map(|(len, start)| (ms(len), ms(start)))
            .collect::<Vec<(f64, f64)>>()
    };
    let (gd, gu) = (gaps(&arr_d), gaps(&arr_u));
    let (lost_down, dup_d) = loss(sent_d, &arr_d);
    let (lost_up, dup_u) = loss(sent_u, &arr_u);
    let mut outside: HashSet<MhMessage> = HashSet::new();
    for l in WanLink::ALL {
        if let Some(d) = site.wan_link(l) {
            outside.extend(d.mh_since(t_run));
        }
    }
    let mut total = outside.clone();
    for t in &taps {
        total.extend(t.since(t_run));
    }
    Ok(RunResult {
        mode: mode.into(),
        kind: kind.into(),
        style: style.into(),
        delay,
        // Set by the caller, which knows the topology's options.
        site_site: delay,
        moves,
        lost_down,
        lost_up,
        duplicates: dup_d + dup_u,
        duplicates_down: dup_d,
        detections,
        gaps_down: gd.iter().map(|g| g.0).collect(),
        gaps_up: gu.iter().map(|g| g.0).collect(),
        gap_starts_down: gd.iter().map(|g| g.1).collect(),
        mh_outside: outside.len(),
        mh_total: total.len(),
        failed_moves: failed,
        ro_binding_misses: ro.then_some(ro_misses),
        ro_bindings,
    })
}

/// The MMA serving the terminal on `ifname` (None: the home link).
fn serving_mma(ifname: &str) -> Option<Ipv6Addr> {
    match ifname {
        "e1" | "e2" => Some(addr::MMA1),
        "e3" => Some(addr::MMA2),
        _ => None,
    }
}

/// The care-of address the correspondent agent holds for the home address, if any.
fn cn_binding(site: &Site) -> Option<Ipv6Addr> {
    site.status_list(Node::Cn, "bindings")
        .iter()
        .find(|b| b["hoa"] == addr::HOA.to_string())
        .and_then(|b| b["coa"].as_str()?.parse().ok())
}

/// Route optimisation on before a run: packets CN -> home address until mma1 (the terminal
/// is placed on e1) has bound the correspondent, then a pause for the reverse route.
fn bind_correspondent(site: &Site) -> Result<(), BenchError> {
    let sock = udp_socket(&site.cn, addr::CN, 0)?;
    let dst = SocketAddr::V6(SocketAddrV6::new(addr::HOA, DOWN_PORT + 10, 0, 0));
    wait_for(
        "the correspondent bound by mma1",
        Duration::from_secs(20),
        || {
            let _ = sock.send_to(b"bind", dst);
            (cn_binding(site) == Some(addr::MMA1)).then_some(())
        },
    )?;
    pause(Duration::from_millis(500))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_gap_counts_the_window_edges_and_says_where_it_began() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let ds = |n| Duration::from_millis(n);
        let times = [ms(1), ms(2), ms(40), ms(41), ms(99)];
        assert_eq!(largest_gap(&times, ms(0), ms(100)), (ds(58), ds(41)));
        // Arrivals outside the window do not count; a silent tail does.
        assert_eq!(largest_gap(&times, ms(0), ms(200)), (ds(101), ds(99)));
        assert_eq!(largest_gap(&[], ms(10), ms(30)), (ds(20), ds(0)));
    }

    #[test]
    fn log_timestamps_read_as_unix_time() {
        // date -u -d 2026-11-30T08:52:18Z +%s
        assert_eq!(
            rfc3339_utc("2026-11-30T08:52:18.121725Z"),
            Some(Duration::new(1_796_028_738, 121_725_000))
        );
        assert_eq!(rfc3339_utc("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(rfc3339_utc("garbage"), None);
        let log = "2026-11-30T08:52:18.121725Z  INFO mobile_node::core: link state changed link=e1 up=false";
        let since = std::time::UNIX_EPOCH + Duration::new(1_796_028_738, 120_000_000);
        let d = link_down_logged(log, "e1", since).unwrap();
        assert_eq!(d, Duration::from_micros(1725));
        assert_eq!(link_down_logged(log, "e2", since), None);
    }

    #[test]
    fn loss_counts_missing_and_repeated_sequence_numbers() {
        let t = Instant::now();
        let arr: Vec<(u64, Instant)> = [0, 1, 1, 3, 5, 5, 5].iter().map(|s| (*s, t)).collect();
        // Sent 0..6: 2 and 4 never arrived; 1 twice, 5 three times.
        assert_eq!(loss(6, &arr), (2, 3));
    }
}
