use std::net::Ipv6Addr;

use super::error::Result;
use super::raw::{PacketInfo, RawSocket, Received};

/// A raw Mobility Header (IPPROTO_MH) socket. The kernel computes the MH checksum on send and
/// drops received messages whose checksum is wrong, so callers send with the checksum field
/// zero and never see a corrupt message.
pub struct MhSocket {
    raw: RawSocket,
}

impl MhSocket {
    pub fn new() -> Result<MhSocket> {
        let raw = RawSocket::new(libc::IPPROTO_MH, "IPPROTO_MH")?;
        raw.set_checksum_offset(mipcast_wire::mh::CHECKSUM_OFFSET)?;
        Ok(MhSocket { raw })
    }

    /// The next Mobility Header message (from its payload-proto byte on) into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        self.raw.recv(buf).await
    }

    /// Hands every message already queued, without waiting and at most `max`, to `each`
    /// (with its bytes, `buf[..len]`); returns how many were taken. After a [`Self::recv`],
    /// this turns a burst of BUs into one batch of kernel changes.
    pub fn drain(
        &self,
        buf: &mut [u8],
        max: usize,
        each: impl FnMut(Result<(Received, &[u8])>),
    ) -> usize {
        self.raw.drain(buf, max, each)
    }

    /// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE, which needs CAP_NET_ADMIN, else
    /// SO_RCVBUF, capped by net.core.rmem_max) and returns the size the kernel granted (it
    /// counts its own overhead, so about twice the request). The default (~208 KiB) holds only
    /// about 200 BUs: a larger burst arriving while the daemon programs the kernel is dropped.
    pub fn set_recv_buffer(&self, bytes: usize) -> Result<usize> {
        self.raw.set_recv_buffer(bytes)
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
