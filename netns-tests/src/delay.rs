//! A WAN delay element for the tests: this kernel has neither netem nor fq, so one-way delay,
//! jitter and loss are applied by a user-space relay between two veths in a namespace of its
//! own.
//!
//! ```text
//!   a [a_if] ==veth== [x0] relay namespace [x1] ==veth== [b_if] b
//!                       \__ thread a->b __/ \__ thread b->a __/
//! ```
//! Why AF_PACKET rather than TUN: the relay is a layer-2 bridge that holds frames, so `a_if`
//! and `b_if` stay on one link (same /64, neighbour discovery, link-local MLD/PIM/RAs pass
//! through untouched). A TUN relay would be a router: an extra hop, a hop-limit decrement,
//! routes to change in every topology and no link-local traffic across. The sockets use
//! PACKET_VNET_HDR because frames from a local sender over a veth carry CHECKSUM_PARTIAL
//! (checksum not yet computed) and may be GSO super-frames: the virtio-net header hands that
//! state to us on receive and back to the kernel on send, so checksums get completed and
//! large frames segmented on the way out. No pnet: it is dormant and this needs only
//! socket/bind/recv/send on one interface each.
//!
//! Each direction is one thread with a FIFO of held frames: the release time is arrival +
//! delay + jitter, clamped to be no earlier than the previous frame's (no reordering, like a
//! real link), so the head of the deque is always the next frame due and no timer wheel is
//! needed. The thread sleeps in ppoll(2) (timer slack 1 ns) until shortly before the head is
//! due and spins only the last [`SPIN`] before it. Loss and jitter come from a seeded
//! generator advanced once per frame, so a run with the same seed and the same frames drops
//! and delays the same frames.
//!
//! The relay also notes every Mobility Header message it carries (plain or IPv6-in-IPv6), so a
//! benchmark can count signalling crossing the link; [`MhTap`] does the same on all interfaces
//! of a namespace.
use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{veth, Netns};

/// How long before a frame is due the relay stops sleeping and spins. Short: at 10 kpps a
/// frame is due every 100 us, and a longer spin would keep a core busy all the time (and run
/// into the kernel's real-time throttling); ppoll with 1 ns slack already wakes within tens of
/// microseconds.
const SPIN: Duration = Duration::from_micros(20);
/// Longest sleep, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(10);
/// Frames read per wake-up before releasing due ones again.
const BATCH: usize = 64;
/// Room for a GSO super-frame plus the virtio-net header.
const FRAME_MAX: usize = 65536 + VNET_HDR;
/// struct virtio_net_hdr (without num_buffers).
const VNET_HDR: usize = 10;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_MH: u8 = 135;
const IPPROTO_IPV6: u8 = 41;
/// linux/if_packet.h; not in every libc release.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// One direction's impairment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    pub delay: Duration,
    /// Each frame gets delay + U(-jitter, +jitter) (never less than zero).
    pub jitter: Duration,
    /// Probability (0..=1) that a frame is dropped.
    pub loss: f64,
}

impl Impairment {
    /// A constant delay, no jitter, no loss.
    pub fn delay_ms(ms: u64) -> Impairment {
        Impairment {
            delay: Duration::from_millis(ms),
            ..Impairment::default()
        }
    }
}

/// Configuration of a [`DelayLink`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DelayConfig {
    pub a_to_b: Impairment,
    pub b_to_a: Impairment,
    pub seed: u64,
}

impl DelayConfig {
    /// The same constant one-way delay both ways.
    pub fn symmetric_ms(ms: u64) -> DelayConfig {
        DelayConfig {
            a_to_b: Impairment::delay_ms(ms),
            b_to_a: Impairment::delay_ms(ms),
            seed: 1,
        }
    }
}

/// A Mobility Header message seen on a link: its type and a hash of its bytes (the same
/// message seen on several links or in both directions of a capture hashes the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhMessage {
    pub mh_type: u8,
    pub hash: u64,
}

/// Counters of one direction.
#[derive(Debug, Default)]
pub struct DirectionStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    /// Frames the kernel refused on the way out (e.g. the peer interface is down).
    pub send_errors: AtomicU64,
    /// Largest lateness of a release behind its scheduled time, in nanoseconds.
    pub max_late_ns: AtomicU64,
    mh: Mutex<Vec<(Instant, MhMessage)>>,
}

impl DirectionStats {
    /// Mobility Header messages carried since `since`.
    pub fn mh_since(&self, since: Instant) -> Vec<MhMessage> {
        lock(&self.mh)
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, m)| *m)
            .collect()
    }
}

/// A delayed link between `a` and `b`: two veths and a relay in a namespace of its own. Dropping
/// it stops the relay threads and deletes the namespace (and with it both veth pairs).
pub struct DelayLink {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub a_to_b: Arc<DirectionStats>,
    pub b_to_a: Arc<DirectionStats>,
    // Dropped after the threads are joined (Drop below), which closes the sockets first.
    ns: Netns,
}

impl DelayLink {
    /// Links `a`'s `a_if` and `b`'s `b_if` (addresses as for [`veth`], CIDR or empty) through a
    /// relay namespace tagged `tag`.
    #[allow(clippy::too_many_arguments)] // the two ends as `veth` takes them, plus the delay
    pub fn new(
        tag: &str,
        a: &Netns,
        a_if: &str,
        a_addr: &str,
        b: &Netns,
        b_if: &str,
        b_addr: &str,
        cfg: DelayConfig,
    ) -> io::Result<DelayLink> {
        let ns = Netns::new(tag);
        // The relay namespace must be invisible on the link: no IPv6 of its own (no RS, MLD
        // reports, DAD), and it takes frames for any MAC.
        ns.try_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
            .map_err(io::Error::other)?;
        veth(a, a_if, a_addr, &ns, "x0", "");
        veth(&ns, "x1", "", b, b_if, b_addr);
        ns.try_sh("ip link set x0 promisc on && ip link set x1 promisc on")
            .map_err(io::Error::other)?;
        // The virtio-net header cannot describe a GSO super-frame of tunnelled packets
        // (IPv6-in-IPv6: SKB_GSO_IPXIP6), so such frames are mangled or dropped on the way
        // through the relay and TCP through a tunnel crawls (well under 1 Mbit/s). One
        // segment per frame on the two ends sending into the relay makes their kernels
        // segment before the veth, tunnelled or not.
        for (n, ifname) in [(a, a_if), (b, b_if)] {
            n.try_sh(&format!("ip link set dev {ifname} gso_max_segs 1"))
                .map_err(io::Error::other)?;
        }
        let socks = ns.enter(|| -> io::Result<_> {
            let idx = |n: &str| -> io::Result<i32> {
                let c = std::ffi::CString::new(n).map_err(io::Error::other)?;
                // SAFETY: a valid NUL-terminated string.
                match unsafe { libc::if_nametoindex(c.as_ptr()) } {
                    0 => Err(io::Error::last_os_error()),
                    i => Ok(i as i32),
                }
            };
            let (x0, x1) = (idx("x0")?, idx("x1")?);
            Ok((
                packet_socket(x0, true)?,
                packet_socket(x1, false)?,
                packet_socket(x1, true)?,
                packet_socket(x0, false)?,
            ))
        })?;
        let (rx0, tx1, rx1, tx0) = socks;
        let stop = Arc::new(AtomicBool::new(false));
        let (ab, ba) = (
            Arc::new(DirectionStats::default()),
            Arc::new(DirectionStats::default()),
        );
        let mut threads = Vec::new();
        for (rx, tx, imp, stats, seed) in [
            (rx0, tx1, cfg.a_to_b, Arc::clone(&ab), cfg.seed),
            (
                rx1,
                tx0,
                cfg.b_to_a,
                Arc::clone(&ba),
                cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
            ),
        ] {
            let stop = Arc::clone(&stop);
            let name = format!("delay-{}", ns.name());
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || relay(rx, tx, imp, seed, &stats, &stop))?,
            );
        }
        Ok(DelayLink {
            stop,
            threads,
            a_to_b: ab,
            b_to_a: ba,
            ns,
        })
    }

    /// The relay's namespace (its interfaces are x0 towards `a`, x1 towards `b`).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Mobility Header messages carried either way since `since`.
    pub fn mh_since(&self, since: Instant) -> Vec<MhMessage> {
        let mut v = self.a_to_b.mh_since(since);
        v.extend(self.b_to_a.mh_since(since));
        v
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET socket with a virtio-net header, bound to `ifindex`: receiving every frame
/// arriving there (not our own sends) when `rx`, sending only otherwise.
fn packet_socket(ifindex: i32, rx: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
    if rx {
        setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        // FORCE: past net.core.rmem_max (we are root), room for ~100 ms at 10 kpps of full
        // frames should the thread be held up.
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20)?;
    } else {
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 16 << 20)?;
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    // Protocol 0 binds without receiving anything: the send-only socket.
    sll.sll_protocol = if rx { ETH_P_ALL.to_be() } else { 0 };
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the given length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes the calling thread wake up on time on a busy machine: SCHED_FIFO (a compiler in the
/// background must not hold a packet 20 ms late; the relay sleeps between frames and
/// busy-polls at most [`SPIN`] at a time, and the kernel's real-time throttling bounds it
/// anyway) and a 1 ns timer slack. Best effort: without CAP_SYS_NICE the thread keeps its
/// normal policy. Returns whether real-time scheduling was granted.
pub fn realtime_thread() -> bool {
    // SAFETY: prctl and sched_setscheduler on the calling thread with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1u64);
        let p = libc::sched_param { sched_priority: 10 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const p) == 0
    }
}

/// SplitMix64: a seeded, reproducible stream for loss and jitter. Hand-written because five
/// lines fix the sequence forever, whatever version of a random-number crate is resolved.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Held {
    due: Instant,
    frame: Vec<u8>,
}

fn relay(
    rx: OwnedFd,
    tx: OwnedFd,
    imp: Impairment,
    seed: u64,
    stats: &DirectionStats,
    stop: &AtomicBool,
) {
    realtime_thread();
    let mut rng = SplitMix(seed);
    let mut queue: VecDeque<Held> = VecDeque::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut scratch = vec![0u8; FRAME_MAX];
    let mut last_due: Option<Instant> = None;
    let jitter_ns = imp.jitter.as_nanos() as f64;
    while !stop.load(Ordering::Relaxed) {
        // Release what is due.
        let now = Instant::now();
        while queue.front().is_some_and(|h| h.due <= now) {
            let Some(h) = queue.pop_front() else { break };
            send(&tx, &h.frame, stats);
            let late = now.saturating_duration_since(h.due).as_nanos() as u64;
            stats.max_late_ns.fetch_max(late, Ordering::Relaxed);
            pool.push(h.frame);
        }
        // Wait for a frame, or until just before the head is due.
        let wait = match queue.front() {
            Some(h) => h.due.saturating_duration_since(now),
            None => MAX_SLEEP,
        };
        let ready = if wait > SPIN {
            poll_in(&rx, (wait - SPIN).min(MAX_SLEEP))
        } else {
            // Busy-poll the last few microseconds, then release.
            while Instant::now() < now + wait {
                std::hint::spin_loop();
            }
            continue;
        };
        if !ready {
            continue;
        }
        for _ in 0..BATCH {
            // SAFETY: scratch is valid for FRAME_MAX bytes.
            let n = unsafe {
                libc::recv(
                    rx.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            // Held frames are copied out of the one large receive buffer into recycled
            // buffers of their own size: no 64 KiB per frame.
            let mut buf = pool.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(scratch.get(..n as usize).unwrap_or_default());
            let arrived = Instant::now();
            // One draw for loss and one for jitter per frame, whatever the outcome: the
            // stream stays aligned with the frame sequence.
            let (u_loss, u_jit) = (rng.unit(), rng.unit());
            if u_loss < imp.loss {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                pool.push(buf);
                continue;
            }
            if let Some(m) = buf.get(VNET_HDR..).and_then(mobility_header) {
                lock(&stats.mh).push((arrived, m));
            }
            let offset = (u_jit * 2.0 - 1.0) * jitter_ns;
            let mut due = if offset >= 0.0 {
                arrived + imp.delay + Duration::from_nanos(offset as u64)
            } else {
                arrived
                    + imp
                        .delay
                        .saturating_sub(Duration::from_nanos((-offset) as u64))
            };
            if let Some(prev) = last_due {
                due = due.max(prev);
            }
            last_due = Some(due);
            queue.push_back(Held { due, frame: buf });
        }
    }
}

fn send(tx: &OwnedFd, frame: &[u8], stats: &DirectionStats) {
    // SAFETY: frame is a valid buffer of frame.len() bytes.
    let r = unsafe { libc::send(tx.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if r < 0 {
        stats.send_errors.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}

/// True when `fd` is readable within `timeout`.
fn poll_in(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let r = unsafe { libc::ppoll(&raw mut p, 1, &raw const ts, std::ptr::null()) };
    r > 0
}

/// The Mobility Header message in an Ethernet frame carrying IPv6 (directly or in an
/// IPv6-in-IPv6 tunnel, as mipcast and reverse-tunnelled MIPv6 send it), if any.
pub fn mobility_header(frame: &[u8]) -> Option<MhMessage> {
    if u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) != ETH_P_IPV6 {
        return None;
    }
    let mut ip = frame.get(14..)?;
    for _ in 0..2 {
        let nh = *ip.get(6)?;
        let payload = ip.get(40..)?;
        match nh {
            IPPROTO_MH => {
                let len = (usize::from(*payload.get(1)?) + 1) * 8;
                let mh = payload.get(..len)?;
                return Some(MhMessage {
                    mh_type: *mh.get(2)?,
                    hash: fnv1a(mh),
                });
            }
            IPPROTO_IPV6 => ip = payload,
            _ => return None,
        }
    }
    None
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every Mobility Header message on any interface of a namespace (one AF_PACKET socket for
/// all of them, with a BPF filter so only MH frames reach user space). A message seen twice
/// (sent on one interface, received on another, or on `lo`) counts once in [`MhTap::since`].
pub struct MhTap {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    seen: Arc<Mutex<Vec<(Instant, MhMessage)>>>,
}

impl MhTap {
    pub fn start(ns: &Netns) -> io::Result<MhTap> {
        let fd = ns.enter(|| -> io::Result<OwnedFd> {
            // SAFETY: plain socket(2); the fd is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from(ETH_P_ALL.to_be()),
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            attach_mh_filter(&fd)?;
            Ok(fd)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::Builder::new()
            .name(format!("mhtap-{}", ns.name()))
            .spawn(move || {
                let mut buf = vec![0u8; FRAME_MAX];
                while !s2.load(Ordering::Relaxed) {
                    if !poll_in(&fd, Duration::from_millis(20)) {
                        continue;
                    }
                    // SAFETY: buf is valid for its length.
                    let n = unsafe {
                        libc::recv(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                        )
                    };
                    if n <= 0 {
                        continue;
                    }
                    if let Some(m) = buf.get(..n as usize).and_then(mobility_header) {
                        lock(&seen2).push((Instant::now(), m));
                    }
                }
            })?;
        Ok(MhTap {
            stop,
            thread: Some(thread),
            seen,
        })
    }

    /// Distinct Mobility Header messages seen since `since`.
    pub fn since(&self, since: Instant) -> HashSet<MhMessage> {
        lock(&self.seen)
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, m)| *m)
            .collect()
    }
}

impl Drop for MhTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Classic BPF: accept IPv6 frames whose next header is MH, or IPv6-in-IPv6 whose inner next
/// header is MH; drop the rest in the kernel (the data streams never reach the tap).
fn attach_mh_filter(fd: &OwnedFd) -> io::Result<()> {
    const LDH_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LDB_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        ins(LDH_ABS, 0, 0, 12),                    // 0: ethertype
        ins(JEQ_K, 0, 6, u32::from(ETH_P_IPV6)),   // 1: else drop (8)
        ins(LDB_ABS, 0, 0, 14 + 6),                // 2: next header
        ins(JEQ_K, 3, 0, u32::from(IPPROTO_MH)),   // 3: accept (7)
        ins(JEQ_K, 0, 3, u32::from(IPPROTO_IPV6)), // 4: else drop (8)
        ins(LDB_ABS, 0, 0, 14 + 40 + 6),           // 5: inner next header
        ins(JEQ_K, 0, 1, u32::from(IPPROTO_MH)),   // 6: else drop (8)
        ins(RET_K, 0, 0, 0x0004_0000),             // 7: accept
        ins(RET_K, 0, 0, 0),                       // 8: drop
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(nh: u8, inner: Option<u8>, mh: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, nh, 64];
        ip.extend_from_slice(&[0; 32]);
        f.extend_from_slice(&ip);
        if let Some(inh) = inner {
            let mut ip2 = vec![0x60, 0, 0, 0, 0, 0, inh, 64];
            ip2.extend_from_slice(&[0; 32]);
            f.extend_from_slice(&ip2);
        }
        f.extend_from_slice(mh);
        f
    }

    #[test]
    fn finds_plain_and_tunnelled_mobility_headers_and_nothing_else() {
        // MH: payload proto, header length 1 (16 bytes), type 5 (BU), ...
        let mut mh = vec![59, 1, 5, 0];
        mh.extend_from_slice(&[7; 12]);
        let plain = mobility_header(&frame(135, None, &mh)).expect("plain MH");
        let tunnelled = mobility_header(&frame(41, Some(135), &mh)).expect("tunnelled MH");
        assert_eq!(plain, tunnelled);
        assert_eq!(plain.mh_type, 5);
        assert_eq!(mobility_header(&frame(17, None, &mh)), None);
        assert_eq!(mobility_header(&frame(41, Some(17), &mh)), None);
        // Truncated: header length says 16 bytes, 8 present.
        assert_eq!(mobility_header(&frame(135, None, &mh[..8])), None);
        mh[5] = 8;
        assert_ne!(mobility_header(&frame(135, None, &mh)), Some(plain));
    }

    #[test]
    fn the_generator_is_reproducible_and_uniform_enough() {
        let (mut a, mut b) = (SplitMix(42), SplitMix(42));
        let xs: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs, (0..10_000).map(|_| b.unit()).collect::<Vec<_>>());
        let below = xs.iter().filter(|x| **x < 0.1).count();
        assert!((800..1200).contains(&below), "{below} of 10000 below 0.1");
    }
}
