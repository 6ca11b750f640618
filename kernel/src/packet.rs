//! The packet socket on the home link through which the home agent sees Neighbor
//! Solicitations for any address and sends its advertisements (`home_link.proxy: user`).
//! What to answer is decided elsewhere (the home agent's pure core); this is only the I/O.
//!
//! Why a packet socket with a BPF filter, not an ICMPv6 socket plus all-multicast: an NS for
//! a home address goes to that address's solicited-node group, and the IPv6 stack drops
//! multicast for groups the interface has not joined before any ICMPv6 socket sees it, even
//! with all-multicast on; joining one group per home address is the O(n) cost we avoid. A
//! packet socket sees the frames before that check. The classic BPF filter below keeps
//! everything but ICMPv6 type 135 in the kernel, so the daemon wakes only for solicitations,
//! and the socket's all-multicast membership makes a real NIC deliver solicited-node frames
//! for groups nobody joined (the kernel drops the membership when the socket closes).
//! Hand-written with libc: socket2 has no AF_PACKET/`sockaddr_ll` or `SO_ATTACH_FILTER`
//! support.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

const ETH_P_IPV6: u16 = 0x86dd;

/// An AF_PACKET socket bound to one interface, receiving only Neighbor Solicitations.
pub struct NdSocket {
    fd: AsyncFd<OwnedFd>,
}

/// `ldh [12]; jeq #0x86dd; ldb [20]; jeq #58; ldb [54]; jeq #135; ret #65535; ret #0`: an
/// untagged IPv6 frame whose next header is ICMPv6 and whose ICMPv6 type is 135.
fn ns_filter() -> [libc::sock_filter; 8] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let (ld_h, ld_b) = (
        libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
        libc::BPF_LD | libc::BPF_B | libc::BPF_ABS,
    );
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    [
        op(ld_h, 0, 0, 12),
        op(jeq, 0, 5, u32::from(ETH_P_IPV6)),
        op(ld_b, 0, 0, 20),
        op(jeq, 0, 3, 58),
        op(ld_b, 0, 0, 54),
        op(jeq, 0, 1, 135),
        op(ret, 0, 0, 0xffff),
        op(ret, 0, 0, 0),
    ]
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl NdSocket {
    /// Opens the socket on `ifindex` (needs CAP_NET_RAW). Must be called inside a tokio
    /// runtime.
    pub fn open(ifindex: u32) -> io::Result<NdSocket> {
        let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
        // Protocol 0: nothing is queued until bind, which comes after the filter, so no
        // unfiltered frame slips in between.
        // SAFETY: plain socket(2) call; the returned descriptor is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        check(raw)?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut filter = ns_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `filter`, alive for the call; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                std::ptr::from_ref(&prog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IPV6.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a properly sized sockaddr_ll.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: all-zero is a valid packet_mreq.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
        // SAFETY: `mreq` is a properly sized packet_mreq.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                std::ptr::from_ref(&mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other("not called within a tokio runtime"));
        }
        // SAFETY: the OwnedFd keeps returning the same descriptor until the AsyncFd, which
        // owns it, is dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(NdSocket { fd })
    }

    /// The next frame received from the link (our own outgoing frames are skipped); its
    /// length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_incoming(fd.as_raw_fd(), buf)) {
                Ok(Ok(Some(n))) => return Ok(n),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one complete Ethernet frame on the bound interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|fd| {
                // SAFETY: `frame` is valid for `frame.len()` bytes for the call.
                let rc =
                    unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            if let Ok(result) = sent {
                return result;
            }
        }
    }
}

/// One recvfrom; None for a frame we sent ourselves (packet sockets see those too).
fn recv_incoming(fd: libc::c_int, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for the sizes passed.
    let rc = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            std::ptr::from_mut(&mut from).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if from.sll_pkttype == libc::PACKET_OUTGOING {
        return Ok(None);
    }
    Ok(Some(usize::try_from(rc).unwrap_or(0)))
}

/// The interface's MAC address, from sysfs.
pub fn mac_of(interface: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| io::Error::other(format!("{interface}: not an Ethernet address")))?;
    }
    if parts.next().is_some() {
        return Err(io::Error::other(format!(
            "{interface}: not an Ethernet address"
        )));
    }
    Ok(mac)
}

/// The interface's link-local address (from /proc/net/if_inet6), if it has one: the source
/// the kernel itself would give a Neighbor Advertisement to a link-local solicitor, and the
/// one some ND clients (ndisc6) insist on.
pub fn link_local_of(interface: &str) -> io::Result<Option<std::net::Ipv6Addr>> {
    let table = std::fs::read_to_string("/proc/net/if_inet6")?;
    Ok(table.lines().find_map(|line| {
        // address ifindex prefixlen scope flags name
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [addr, _, _, "20", _, name] if *name == interface => u128::from_str_radix(addr, 16)
                .ok()
                .map(std::net::Ipv6Addr::from),
            _ => None,
        }
    }))
}
