use std::net::Ipv6Addr;

use super::error::Result;
use super::raw::{PacketInfo, RawSocket, Received};

/// Checksum field offset in the Mobility Header (RFC 6275 §6.1.1).
const MH_CHECKSUM_OFFSET: i32 = 4;

/// A raw Mobility Header (IPPROTO_MH) socket. The kernel computes the MH checksum on send and
/// drops received messages whose checksum is wrong, so callers send with the checksum field
/// zero and never see a corrupt message.
pub struct MhSocket {
    raw: RawSocket,
}

impl MhSocket {
    pub fn new() -> Result<MhSocket> {
        let raw = RawSocket::new(libc::IPPROTO_MH, "IPPROTO_MH")?;
        raw.set_checksum_offset(MH_CHECKSUM_OFFSET)?;
        Ok(MhSocket { raw })
    }

    /// The next Mobility Header message (from its payload-proto byte on) into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        self.raw.recv(buf).await
    }

    /// Sends one Mobility Header message to `destination` (source and interface per `info`).
    pub async fn send_to(
        &self,
        message: &[u8],
        destination: Ipv6Addr,
        info: PacketInfo,
    ) -> Result<()> {
        self.raw.send_to(message, destination, info).await
    }
}
