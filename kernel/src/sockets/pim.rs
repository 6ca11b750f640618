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

    pub async fn send_to(
        &self,
        message: &[u8],
        destination: Ipv6Addr,
        info: PacketInfo,
    ) -> Result<()> {
        self.raw.send_to(message, destination, info).await
    }
}
