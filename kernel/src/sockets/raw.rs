//! The raw IPv6 socket core shared by the MH, ICMPv6 and PIM sockets: creation, packet-info
//! receive and send, readiness through tokio.
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::error::{Result, SocketError};
use super::sys;

/// Where a packet goes out: the interface (0 = by routing) and the source address
/// (unspecified = the kernel chooses). Sent as an `IPV6_PKTINFO` control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    pub ifindex: u32,
    pub source: Ipv6Addr,
}

impl PacketInfo {
    /// Interface and source chosen by the kernel's routing.
    pub const ANY: PacketInfo = PacketInfo {
        ifindex: 0,
        source: Ipv6Addr::UNSPECIFIED,
    };

    /// Out of interface `ifindex`, source chosen by the kernel.
    pub fn on(ifindex: u32) -> PacketInfo {
        PacketInfo {
            ifindex,
            source: Ipv6Addr::UNSPECIFIED,
        }
    }

    /// The same, with source address `source` (must be one of ours).
    pub fn with_source(self, source: Ipv6Addr) -> PacketInfo {
        PacketInfo { source, ..self }
    }
}

/// What the kernel told us about a received packet. The payload is `buf[..len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub source: Ipv6Addr,
    /// The packet's destination address (`IPV6_PKTINFO`).
    pub destination: Ipv6Addr,
    /// The interface it arrived on (`IPV6_PKTINFO`).
    pub ifindex: u32,
    /// The IPv6 hop limit it arrived with (`IPV6_HOPLIMIT`).
    pub hop_limit: u8,
}

/// A control buffer aligned for `cmsghdr`, large enough for one `in6_pktinfo` and one `int`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

pub(crate) struct RawSocket {
    fd: AsyncFd<Socket>,
}

impl RawSocket {
    /// A non-blocking, close-on-exec raw IPv6 socket for `protocol`, with packet info and hop
    /// limit reception on and our own multicast not looped back.
    pub(crate) fn new(protocol: i32, what: &str) -> Result<RawSocket> {
        let socket = Socket::new(
            Domain::IPV6,
            Type::RAW.nonblocking(),
            Some(Protocol::from(protocol)),
        )
        .map_err(|e| SocketError::os(format!("socket(AF_INET6, SOCK_RAW, {what})"), e))?;
        let fd = socket.as_fd();
        sys::set_opt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            &1i32,
            "setsockopt(IPV6_RECVPKTINFO)",
        )?;
        socket
            .set_recv_hoplimit_v6(true)
            .map_err(|e| SocketError::os("setsockopt(IPV6_RECVHOPLIMIT)", e))?;
        socket
            .set_multicast_loop_v6(false)
            .map_err(|e| SocketError::os("setsockopt(IPV6_MULTICAST_LOOP)", e))?;
        Ok(RawSocket {
            fd: sys::register(socket, what)?,
        })
    }

    pub(crate) fn socket(&self) -> &Socket {
        self.fd.get_ref()
    }

    pub(crate) fn borrowed(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }

    /// Makes the kernel compute the checksum at `offset` on send and verify it on receive
    /// (dropping bad packets), over the IPv6 pseudo-header.
    pub(crate) fn set_checksum_offset(&self, offset: usize) -> Result<()> {
        // Header offsets are single-digit; the kernel takes a C int.
        let offset = libc::c_int::try_from(offset).unwrap_or(libc::c_int::MAX);
        sys::set_opt(
            self.borrowed(),
            libc::IPPROTO_IPV6,
            libc::IPV6_CHECKSUM,
            &offset,
            "setsockopt(IPV6_CHECKSUM)",
        )
    }

    pub(crate) fn set_unicast_hops(&self, hops: u8) -> Result<()> {
        self.socket()
            .set_unicast_hops_v6(u32::from(hops))
            .map_err(|e| SocketError::os("setsockopt(IPV6_UNICAST_HOPS)", e))
    }

    pub(crate) fn set_multicast_hops(&self, hops: u8) -> Result<()> {
        self.socket()
            .set_multicast_hops_v6(u32::from(hops))
            .map_err(|e| SocketError::os("setsockopt(IPV6_MULTICAST_HOPS)", e))
    }

    pub(crate) fn join(&self, group: Ipv6Addr, ifindex: u32) -> Result<()> {
        self.socket()
            .join_multicast_v6(&group, ifindex)
            .map_err(|e| SocketError::os(format!("join {group} on ifindex {ifindex}"), e))
    }

    pub(crate) fn leave(&self, group: Ipv6Addr, ifindex: u32) -> Result<()> {
        self.socket()
            .leave_multicast_v6(&group, ifindex)
            .map_err(|e| SocketError::os(format!("leave {group} on ifindex {ifindex}"), e))
    }

    /// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE, which needs CAP_NET_ADMIN, else
    /// SO_RCVBUF, capped by net.core.rmem_max) and returns the size the kernel granted (it
    /// counts its own overhead, so about twice the request).
    pub(crate) fn set_recv_buffer(&self, bytes: usize) -> Result<usize> {
        let value = i32::try_from(bytes).unwrap_or(i32::MAX);
        let forced = sys::set_opt(
            self.borrowed(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &value,
            "setsockopt(SO_RCVBUFFORCE)",
        );
        if forced.is_err() {
            self.socket()
                .set_recv_buffer_size(bytes)
                .map_err(|e| SocketError::os("setsockopt(SO_RCVBUF)", e))?;
        }
        self.socket()
            .recv_buffer_size()
            .map_err(|e| SocketError::os("getsockopt(SO_RCVBUF)", e))
    }

    /// Hands every packet already queued, without waiting and at most `max`, to `each` (with
    /// its bytes, `buf[..len]`); returns how many were taken.
    pub(crate) fn drain(
        &self,
        buf: &mut [u8],
        max: usize,
        mut each: impl FnMut(Result<(Received, &[u8])>),
    ) -> usize {
        use futures::FutureExt;
        for taken in 0..max {
            let Some(received) = self.recv(buf).now_or_never() else {
                return taken;
            };
            each(received.map(|rx| (rx, buf.get(..rx.len).unwrap_or_default())));
        }
        max
    }

    /// Receives one packet's payload (everything after the IPv6 header and its extension
    /// headers) into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| SocketError::os("wait readable", e))?;
            match guard.try_io(|fd| recv_once(fd.get_ref(), buf)) {
                Ok(Ok(raw)) => return raw.into_received(buf.len()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(SocketError::os("recvmsg", e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends `payload` to `destination` with `info` as `IPV6_PKTINFO`. A link-scope destination
    /// also gets `info.ifindex` as scope id, which the kernel requires for it.
    pub(crate) async fn send_to(
        &self,
        payload: &[u8],
        destination: Ipv6Addr,
        info: PacketInfo,
    ) -> Result<()> {
        let needs_scope = destination.is_unicast_link_local()
            || (destination.is_multicast()
                && destination
                    .segments()
                    .first()
                    .is_some_and(|s| s & 0x000f <= 2));
        let scope_id = if needs_scope { info.ifindex } else { 0 };
        let to = SockaddrIn6::from(SocketAddrV6::new(destination, 0, 0, scope_id));
        let pktinfo = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: info.source.octets(),
            },
            ipi6_ifindex: info.ifindex,
        };
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|e| SocketError::os("wait writable", e))?;
            let sent = guard.try_io(|fd| {
                let cmsg = [ControlMessage::Ipv6PacketInfo(&pktinfo)];
                sendmsg(
                    fd.get_ref().as_raw_fd(),
                    &[IoSlice::new(payload)],
                    &cmsg,
                    MsgFlags::empty(),
                    Some(&to),
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => {
                    return Err(SocketError::os(
                        format!(
                            "sendmsg to {destination} (ifindex {}, source {})",
                            info.ifindex, info.source
                        ),
                        e,
                    ))
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// One recvmsg result, copied out of nix's borrowed view.
struct RawRecv {
    len: usize,
    truncated: bool,
    source: Option<Ipv6Addr>,
    pktinfo: Option<(Ipv6Addr, u32)>,
    hop_limit: Option<i32>,
}

impl RawRecv {
    fn into_received(self, capacity: usize) -> Result<Received> {
        if self.truncated {
            return Err(SocketError::Truncated {
                op: "recvmsg",
                capacity,
            });
        }
        let source = self.source.ok_or(SocketError::MissingControl {
            what: "source address",
        })?;
        let (destination, ifindex) = self.pktinfo.ok_or(SocketError::MissingControl {
            what: "IPV6_PKTINFO",
        })?;
        let hop_limit = self.hop_limit.and_then(|h| u8::try_from(h).ok()).ok_or(
            SocketError::MissingControl {
                what: "IPV6_HOPLIMIT",
            },
        )?;
        Ok(Received {
            len: self.len,
            source,
            destination,
            ifindex,
            hop_limit,
        })
    }
}

fn recv_once(socket: &Socket, buf: &mut [u8]) -> io::Result<RawRecv> {
    let mut cbuf = CmsgBuf([0; 128]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cbuf.0),
        MsgFlags::empty(),
    )?;
    let mut out = RawRecv {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        source: msg.address.map(|a| a.ip()),
        pktinfo: None,
        hop_limit: None,
    };
    for cmsg in msg.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                out.pktinfo = Some((Ipv6Addr::from(info.ipi6_addr.s6_addr), info.ipi6_ifindex));
            }
            ControlMessageOwned::Ipv6HopLimit(h) => out.hop_limit = Some(h),
            _ => {}
        }
    }
    Ok(out)
}
