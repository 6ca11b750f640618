//! The IPv6 multicast routing table (MRT6): MIFs, (S,G) forwarding entries, upcalls, counters.
//!
//! An [`Mrt6`] is the one multicast routing socket of a kernel MRT6 table: a raw ICMPv6 socket
//! on which `MRT6_INIT` succeeded. The kernel allows one such socket per table, so daemons
//! sharing a box each take their own table ([`Mrt6::open`] with `Some(table)`; traffic reaches
//! a non-default table only through an `ip -6 mrule`).
//!
//! The kernel manages `mc_forwarding` itself: `MRT6_INIT` raises `all.mc_forwarding`, each
//! MIF raises its interface's, and `MRT6_DONE` (or closing the socket) lowers them and flushes
//! the table's MIFs and MFC entries. The sysctls are read-only; we never write them.
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::sockets::sys;
use crate::sockets::{Result, SocketError};

// From linux/mroute6.h; libc does not export the MRT6 interface.
const MRT6_BASE: libc::c_int = 200;
const MRT6_INIT: libc::c_int = MRT6_BASE;
const MRT6_DONE: libc::c_int = MRT6_BASE + 1;
const MRT6_ADD_MIF: libc::c_int = MRT6_BASE + 2;
const MRT6_DEL_MIF: libc::c_int = MRT6_BASE + 3;
const MRT6_ADD_MFC: libc::c_int = MRT6_BASE + 4;
const MRT6_DEL_MFC: libc::c_int = MRT6_BASE + 5;
const MRT6_ASSERT: libc::c_int = MRT6_BASE + 7;
const MRT6_TABLE: libc::c_int = MRT6_BASE + 9;
/// SIOCPROTOPRIVATE (linux/sockios.h) and the two MRT6 requests based on it.
const SIOCPROTOPRIVATE: libc::c_ulong = 0x89E0;
const SIOCGETMIFCNT_IN6: libc::c_ulong = SIOCPROTOPRIVATE;
const SIOCGETSGCNT_IN6: libc::c_ulong = SIOCPROTOPRIVATE + 1;
/// MAXMIFS: MIFs per table.
pub const MAX_MIFS: usize = 32;
/// RT6_TABLE_DFLT (= RT_TABLE_MAIN for IPv6): the table used when none is chosen, the one
/// /proc/net/ip6_mr_* shows and the default `ip -6 mrule` looks up.
pub const DEFAULT_TABLE: u32 = 254;
/// Size of `struct mrt6msg`.
const MRT6MSG_LEN: usize = 40;

/// `struct mif6ctl`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Mif6Ctl {
    mif6c_mifi: u16,
    mif6c_flags: u8,
    vifc_threshold: u8,
    mif6c_pifi: u16,
    vifc_rate_limit: libc::c_uint,
}

/// `struct mf6cctl`; `if_set` is IF_SETSIZE (256) bits in 32-bit words.
#[repr(C)]
#[derive(Clone, Copy)]
struct Mf6cCtl {
    mf6cc_origin: libc::sockaddr_in6,
    mf6cc_mcastgrp: libc::sockaddr_in6,
    mf6cc_parent: u16,
    mf6cc_ifset: [u32; 8],
}

/// `struct sioc_sg_req6`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SiocSgReq6 {
    src: libc::sockaddr_in6,
    grp: libc::sockaddr_in6,
    pktcnt: libc::c_ulong,
    bytecnt: libc::c_ulong,
    wrong_if: libc::c_ulong,
}

/// `struct sioc_mif_req6`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SiocMifReq6 {
    mifi: u16,
    icount: libc::c_ulong,
    ocount: libc::c_ulong,
    ibytes: libc::c_ulong,
    obytes: libc::c_ulong,
}

/// A multicast interface index in one MRT6 table (0..32), as handed out by [`Mrt6::add_mif`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mifi(u16);

impl Mifi {
    pub fn index(self) -> u16 {
        self.0
    }
}

/// What the kernel reports about an (S,G) entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SgCounters {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that arrived on another interface than the entry's incoming MIF.
    pub wrong_if: u64,
}

/// Traffic through one MIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MifCounters {
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Why the kernel sent an upcall (`im6_msgtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpcallKind {
    /// MRT6MSG_NOCACHE: a packet for an (S,G) without an MFC entry.
    NoCache,
    /// MRT6MSG_WRONGMIF: a packet for an (S,G) arrived on another MIF than the entry's.
    WrongMif,
    /// MRT6MSG_WHOLEPKT: a whole packet for the PIM register MIF.
    WholePacket,
    /// Any other type (e.g. MRT6MSG_WRMIFWHOLE = 4).
    Other(u8),
}

/// A kernel-to-daemon message (`struct mrt6msg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upcall {
    pub kind: UpcallKind,
    /// The MIF the packet arrived on.
    pub mif: Mifi,
    pub source: Ipv6Addr,
    pub group: Ipv6Addr,
}

impl Upcall {
    /// Parses an upcall. Ordinary ICMPv6 on the same socket starts with a non-zero type byte
    /// (type 0 is reserved), so `None` means "not an upcall" (or too short to be one).
    pub fn parse(bytes: &[u8]) -> Option<Upcall> {
        let b = bytes.get(..MRT6MSG_LEN)?;
        let (&[mbz, kind, m0, m1], rest) = b.split_first_chunk::<4>()?;
        if mbz != 0 {
            return None;
        }
        let src: [u8; 16] = rest.get(4..20)?.try_into().ok()?;
        let dst: [u8; 16] = rest.get(20..36)?.try_into().ok()?;
        let kind = match kind {
            1 => UpcallKind::NoCache,
            2 => UpcallKind::WrongMif,
            3 => UpcallKind::WholePacket,
            k => UpcallKind::Other(k),
        };
        // im6_mif is a host-order __u16.
        Some(Upcall {
            kind,
            mif: Mifi(u16::from_ne_bytes([m0, m1])),
            source: src.into(),
            group: dst.into(),
        })
    }
}

/// The multicast routing socket of one MRT6 table. Dropping it (or [`Mrt6::close`]) runs
/// `MRT6_DONE`: the kernel removes every MIF and MFC entry of the table.
///
/// All methods take `&self`, so one `Arc<Mrt6>` can serve an upcall task and a control task.
pub struct Mrt6 {
    fd: AsyncFd<Socket>,
    table: u32,
    /// The interface index behind each MIF we added.
    mifs: Mutex<[Option<u32>; MAX_MIFS]>,
    done: AtomicBool,
}

impl Mrt6 {
    /// Becomes the multicast router of `table` (`None`: the default table 254). Must run inside
    /// a tokio runtime and the target network namespace; needs CAP_NET_ADMIN.
    pub fn open(table: Option<u32>) -> Result<Mrt6> {
        let socket = Socket::new(
            Domain::IPV6,
            Type::RAW.nonblocking(),
            Some(Protocol::ICMPV6),
        )
        .map_err(|e| SocketError::os("socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6) for MRT6", e))?;
        // Upcalls bypass the ICMPv6 filter (the kernel queues them straight to this socket), so
        // blocking every type leaves only upcalls here; MLD has its own socket.
        sys::set_opt(
            socket.as_fd(),
            libc::IPPROTO_ICMPV6,
            sys::ICMPV6_FILTER,
            &[u32::MAX; 8],
            "setsockopt(ICMPV6_FILTER)",
        )?;
        // The table must be chosen before MRT6_INIT binds the socket to it.
        if let Some(t) = table {
            sys::set_opt(
                socket.as_fd(),
                libc::IPPROTO_IPV6,
                MRT6_TABLE,
                &t,
                &format!("setsockopt(MRT6_TABLE {t})"),
            )?;
        }
        let table = table.unwrap_or(DEFAULT_TABLE);
        sys::set_opt(
            socket.as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_INIT,
            &1i32,
            "setsockopt(MRT6_INIT)",
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRINUSE) => SocketError::TableInUse { table },
            _ => e,
        })?;
        let fd = sys::register(socket, "MRT6")?;
        Ok(Mrt6 {
            fd,
            table,
            mifs: Mutex::new([None; MAX_MIFS]),
            done: AtomicBool::new(false),
        })
    }

    /// `MRT6_ASSERT`: with it on, the kernel reports (S,G) data that arrives on one of the
    /// entry's outgoing interfaces (a WRONGMIF upcall, at most one per entry every few
    /// seconds), which is how a PIM router learns it must Assert (RFC 7761 §4.6).
    pub fn set_assert(&self, on: bool) -> Result<()> {
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_ASSERT,
            &i32::from(on),
            "setsockopt(MRT6_ASSERT)",
        )
    }

    /// The MRT6 table this socket owns.
    pub fn table(&self) -> u32 {
        self.table
    }

    /// Makes `ifindex` a multicast interface and returns its MIF; the same MIF again if it
    /// already is one.
    pub fn add_mif(&self, ifindex: u32) -> Result<Mifi> {
        let pifi = u16::try_from(ifindex).map_err(|_| SocketError::IfindexTooLarge(ifindex))?;
        let mut mifs = self.mifs();
        if let Some(i) = mifs.iter().position(|m| *m == Some(ifindex)) {
            return Ok(Mifi(mif_u16(i)));
        }
        let (slot, free) = mifs
            .iter_mut()
            .enumerate()
            .find(|(_, m)| m.is_none())
            .ok_or(SocketError::MifTableFull {
                ifindex,
                max: MAX_MIFS,
            })?;
        let ctl = Mif6Ctl {
            mif6c_mifi: mif_u16(slot),
            mif6c_flags: 0,
            vifc_threshold: 1,
            mif6c_pifi: pifi,
            vifc_rate_limit: 0,
        };
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_ADD_MIF,
            &ctl,
            &format!("MRT6_ADD_MIF {slot} for ifindex {ifindex}"),
        )?;
        *free = Some(ifindex);
        Ok(Mifi(mif_u16(slot)))
    }

    /// Removes a MIF (the kernel drops MFC references to it).
    pub fn del_mif(&self, mifi: Mifi) -> Result<()> {
        let mut mifs = self.mifs();
        let slot = mifs
            .get_mut(usize::from(mifi.0))
            .filter(|m| m.is_some())
            .ok_or(SocketError::UnknownMif {
                op: "MRT6_DEL_MIF",
                mifi: mifi.0,
            })?;
        let ctl = Mif6Ctl {
            mif6c_mifi: mifi.0,
            mif6c_flags: 0,
            vifc_threshold: 0,
            mif6c_pifi: 0,
            vifc_rate_limit: 0,
        };
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_DEL_MIF,
            &ctl,
            &format!("MRT6_DEL_MIF {}", mifi.0),
        )?;
        *slot = None;
        Ok(())
    }

    /// The MIF of `ifindex`, if we added one.
    pub fn mif_of(&self, ifindex: u32) -> Option<Mifi> {
        self.mifs()
            .iter()
            .position(|m| *m == Some(ifindex))
            .map(|i| Mifi(mif_u16(i)))
    }

    /// The interface index behind `mifi`, if it is ours.
    pub fn ifindex_of(&self, mifi: Mifi) -> Option<u32> {
        self.mifs().get(usize::from(mifi.0)).copied().flatten()
    }

    /// Installs (or replaces) the (source, group) entry: packets arriving on `iif` are
    /// forwarded out of every MIF in `oifs` whose hop limit they exceed 1 on arrival (the
    /// kernel's per-oif threshold is 1); packets on other MIFs count as `wrong_if`.
    pub fn add_mfc(
        &self,
        source: Ipv6Addr,
        group: Ipv6Addr,
        iif: Mifi,
        oifs: &[Mifi],
    ) -> Result<()> {
        const OP: &str = "MRT6_ADD_MFC";
        self.check_ours(OP, iif)?;
        let mut ifset = [0u32; 8];
        for &oif in oifs {
            self.check_ours(OP, oif)?;
            if let Some(word) = ifset.get_mut(usize::from(oif.0 / 32)) {
                *word |= 1 << (oif.0 % 32);
            }
        }
        let ctl = mf6cctl(source, group, iif.0, ifset);
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_ADD_MFC,
            &ctl,
            OP,
        )
        .map_err(|e| e.described(|| format!("{OP} ({source}, {group})")))
    }

    /// Removes the (source, group) entry.
    pub fn del_mfc(&self, source: Ipv6Addr, group: Ipv6Addr) -> Result<()> {
        let ctl = mf6cctl(source, group, 0, [0; 8]);
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_DEL_MFC,
            &ctl,
            "MRT6_DEL_MFC",
        )
        .map_err(|e| e.described(|| format!("MRT6_DEL_MFC ({source}, {group})")))
    }

    /// Packet, byte and wrong-interface counts of the (source, group) entry
    /// (EADDRNOTAVAIL when there is none).
    pub fn sg_counters(&self, source: Ipv6Addr, group: Ipv6Addr) -> Result<SgCounters> {
        let mut req = SiocSgReq6 {
            src: sys::sockaddr_in6(source, 0),
            grp: sys::sockaddr_in6(group, 0),
            pktcnt: 0,
            bytecnt: 0,
            wrong_if: 0,
        };
        sys::ioctl_inout(
            self.fd.get_ref().as_fd(),
            SIOCGETSGCNT_IN6,
            &mut req,
            "SIOCGETSGCNT_IN6",
        )
        .map_err(|e| e.described(|| format!("SIOCGETSGCNT_IN6 ({source}, {group})")))?;
        Ok(SgCounters {
            packets: count(req.pktcnt),
            bytes: count(req.bytecnt),
            wrong_if: count(req.wrong_if),
        })
    }

    /// Traffic counts of one of our MIFs.
    pub fn mif_counters(&self, mifi: Mifi) -> Result<MifCounters> {
        self.check_ours("SIOCGETMIFCNT_IN6", mifi)?;
        let mut req = SiocMifReq6 {
            mifi: mifi.0,
            icount: 0,
            ocount: 0,
            ibytes: 0,
            obytes: 0,
        };
        sys::ioctl_inout(
            self.fd.get_ref().as_fd(),
            SIOCGETMIFCNT_IN6,
            &mut req,
            &format!("SIOCGETMIFCNT_IN6 {}", mifi.0),
        )?;
        Ok(MifCounters {
            in_packets: count(req.icount),
            out_packets: count(req.ocount),
            in_bytes: count(req.ibytes),
            out_bytes: count(req.obytes),
        })
    }

    /// The next upcall. Anything else on the socket (ICMPv6 data, should the filter ever let
    /// some through) is skipped.
    pub async fn recv_upcall(&self) -> Result<Upcall> {
        // NOCACHE/WRONGMIF upcalls are 80 bytes; a WHOLEPKT one carries a whole packet, of
        // which we only need the header.
        let mut buf = [0u8; 256];
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| SocketError::os("MRT6 wait readable", e))?;
            let got = guard.try_io(|fd| {
                nix::sys::socket::recv(
                    std::os::fd::AsRawFd::as_raw_fd(fd.get_ref()),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                )
                .map_err(io::Error::from)
            });
            match got {
                Ok(Ok(n)) => match buf.get(..n).and_then(Upcall::parse) {
                    Some(upcall) => return Ok(upcall),
                    None => tracing::debug!(len = n, "MRT6 socket: skipped a non-upcall message"),
                },
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(SocketError::os("recv on MRT6 socket", e)),
                Err(_would_block) => {}
            }
        }
    }

    /// Gives the table up (`MRT6_DONE`): the kernel flushes our MIFs and MFC entries. Once
    /// only (later calls, and the drop, do nothing); the socket then serves nothing more.
    pub fn close(&self) -> Result<()> {
        self.done()
    }

    fn done(&self) -> Result<()> {
        if self.done.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        sys::set_opt(
            self.fd.get_ref().as_fd(),
            libc::IPPROTO_IPV6,
            MRT6_DONE,
            &1i32,
            "setsockopt(MRT6_DONE)",
        )
    }

    fn check_ours(&self, op: &'static str, mifi: Mifi) -> Result<()> {
        match self.ifindex_of(mifi) {
            Some(_) => Ok(()),
            None => Err(SocketError::UnknownMif { op, mifi: mifi.0 }),
        }
    }

    fn mifs(&self) -> MutexGuard<'_, [Option<u32>; MAX_MIFS]> {
        // The table is a plain array updated in one assignment: a poisoned lock still holds a
        // consistent value.
        self.mifs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Mrt6 {
    fn drop(&mut self) {
        // Closing the socket would flush the table too; doing it explicitly lets us log a failure.
        if let Err(e) = self.done() {
            tracing::warn!(table = self.table, "{e}");
        }
    }
}

/// Kernel counters are `unsigned long`: 64 bits here, 32 on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn count(v: libc::c_ulong) -> u64 {
    u64::from(v)
}

fn mif_u16(slot: usize) -> u16 {
    // Slots are below MAX_MIFS (32).
    u16::try_from(slot).unwrap_or(u16::MAX)
}

fn mf6cctl(source: Ipv6Addr, group: Ipv6Addr, parent: u16, ifset: [u32; 8]) -> Mf6cCtl {
    Mf6cCtl {
        mf6cc_origin: sys::sockaddr_in6(source, 0),
        mf6cc_mcastgrp: sys::sockaddr_in6(group, 0),
        mf6cc_parent: parent,
        mf6cc_ifset: ifset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_struct_sizes_match_mroute6_h() {
        // x86_64/aarch64 sizes of the C structs (checked with a C compiler against linux/mroute6.h).
        assert_eq!(std::mem::size_of::<Mif6Ctl>(), 12);
        assert_eq!(std::mem::size_of::<Mf6cCtl>(), 92);
        assert_eq!(std::mem::size_of::<SiocSgReq6>(), 80);
        assert_eq!(std::mem::size_of::<SiocMifReq6>(), 40);
    }

    #[test]
    fn upcall_parse_rejects_icmp_and_short_messages() {
        let mut m = [0u8; 80];
        m[1] = 1;
        m[2..4].copy_from_slice(&3u16.to_ne_bytes());
        m[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        m[24..40].copy_from_slice(&"ff35::1".parse::<Ipv6Addr>().unwrap().octets());
        let u = Upcall::parse(&m).unwrap();
        assert_eq!((u.kind, u.mif.index()), (UpcallKind::NoCache, 3));
        assert_eq!(u.group, "ff35::1".parse::<Ipv6Addr>().unwrap());
        m[0] = 130; // an MLD query
        assert!(Upcall::parse(&m).is_none());
        assert!(Upcall::parse(&[0u8; 39]).is_none());
    }
}
