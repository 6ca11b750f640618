use std::net::Ipv6Addr;

use super::error::Result;
use super::raw::{PacketInfo, RawSocket, Received};

/// All PIM routers (ff02::d).
pub const ALL_PIM_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xd);

/// A raw PIMv2 (IPPROTO_PIM) socket: the kernel fills and verifies the checksum over the
/// pseudo-header; multicast goes out with hop limit 1 and is not looped back.
pub struct PimSocket {
    raw: RawSocket,
}

impl PimSocket {
    pub fn new() -> Result<PimSocket> {
        let raw = RawSocket::new(libc::IPPROTO_PIM, "IPPROTO_PIM")?;
        raw.set_checksum_offset(mipcast_wire::pim::CHECKSUM_OFFSET)?;
        raw.set_multicast_hops(1)?;
        Ok(PimSocket { raw })
    }

    /// Receives PIM messages sent to ff02::d on `ifindex`.
    pub fn join_all_pim_routers(&self, ifindex: u32) -> Result<()> {
        self.raw.join(ALL_PIM_ROUTERS, ifindex)
    }

    pub fn leave_all_pim_routers(&self, ifindex: u32) -> Result<()> {
        self.raw.leave(ALL_PIM_ROUTERS, ifindex)
    }

    /// The next PIM message (from its version/type byte on) into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        self.raw.recv(buf).await
    }

    /// Hands every message already queued, without waiting and at most `max`, to `each`
    /// (with its bytes, `buf[..len]`); returns how many were taken. After a [`Self::recv`],
    /// this turns a burst of Join/Prunes into one batch of MFC changes.
    pub fn drain(
        &self,
        buf: &mut [u8],
        max: usize,
        each: impl FnMut(Result<(Received, &[u8])>),
    ) -> usize {
        self.raw.drain(buf, max, each)
    }

    /// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE, else SO_RCVBUF capped by
    /// net.core.rmem_max) and returns the size the kernel granted. The default (~208 KiB)
    /// holds a few hundred Join/Prunes: a downstream router joining thousands of channels at
    /// once overflows it while the daemon installs MFC entries.
    pub fn set_recv_buffer(&self, bytes: usize) -> Result<usize> {
        self.raw.set_recv_buffer(bytes)
    }

    pub async fn send_to(
        &self,
        message: &[u8],
        destination: Ipv6Addr,
        info: PacketInfo,
    ) -> Result<()> {
        self.raw.send_to(message, destination, info).await
    }
}
