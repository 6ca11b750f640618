use std::net::Ipv6Addr;

use super::error::Result;
use super::raw::{PacketInfo, RawSocket, Received};
use super::sys;

/// All nodes (ff02::1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers (ff02::2): where router solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All MLDv2-capable routers (ff02::16): where MLDv2 reports go.
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// Hop-by-hop header with a Router Alert option, value 0 ("MLD", RFC 2711), padded to 8 bytes
/// with a 2-byte PadN. The kernel fills in the next-header byte.
const ROUTER_ALERT_MLD: [u8; 8] = [0, 0, 5, 2, 0, 0, 1, 0];

/// A raw ICMPv6 socket that receives only the ICMPv6 types it was opened for.
///
/// The kernel computes and verifies the ICMPv6 checksum itself. Received packets carry the
/// hop limit (ND messages are valid only with 255) and the arrival interface.
pub struct IcmpSocket {
    raw: RawSocket,
}

impl IcmpSocket {
    /// Opens the socket with a filter passing exactly `types` (e.g. 133..=137 for ND,
    /// 130/131/132/143 for MLD). Multicast loopback is off.
    pub fn new(types: &[u8]) -> Result<IcmpSocket> {
        let raw = RawSocket::new(libc::IPPROTO_ICMPV6, "IPPROTO_ICMPV6")?;
        sys::set_opt(
            raw.borrowed(),
            libc::IPPROTO_ICMPV6,
            sys::ICMPV6_FILTER,
            &pass_only(types),
            "setsockopt(ICMPV6_FILTER)",
        )?;
        Ok(IcmpSocket { raw })
    }

    /// Hop limit of unicast packets we send (255 for ND).
    pub fn set_unicast_hops(&self, hops: u8) -> Result<()> {
        self.raw.set_unicast_hops(hops)
    }

    /// Hop limit of multicast packets we send (255 for ND, 1 for MLD).
    pub fn set_multicast_hops(&self, hops: u8) -> Result<()> {
        self.raw.set_multicast_hops(hops)
    }

    /// Adds (or removes) a hop-by-hop Router Alert option (value 0, MLD) to every packet this
    /// socket sends from now on. Keep ND and MLD on separate sockets for this reason.
    pub fn set_router_alert(&self, on: bool) -> Result<()> {
        let value: &[u8] = if on { &ROUTER_ALERT_MLD } else { &[] };
        sys::set_opt_bytes(
            self.raw.borrowed(),
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPOPTS,
            value,
            "setsockopt(IPV6_HOPOPTS)",
        )
    }

    /// Receives multicast to `group` (e.g. [`ALL_ROUTERS`], [`ALL_MLDV2_ROUTERS`]) on `ifindex`.
    pub fn join(&self, group: Ipv6Addr, ifindex: u32) -> Result<()> {
        self.raw.join(group, ifindex)
    }

    pub fn leave(&self, group: Ipv6Addr, ifindex: u32) -> Result<()> {
        self.raw.leave(group, ifindex)
    }

    /// The next ICMPv6 message (from its type byte on) into `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        self.raw.recv(buf).await
    }

    /// Sends an ICMPv6 message (checksum field zero, the kernel fills it).
    pub async fn send_to(
        &self,
        message: &[u8],
        destination: Ipv6Addr,
        info: PacketInfo,
    ) -> Result<()> {
        self.raw.send_to(message, destination, info).await
    }
}

/// Linux's filter is a block bitmap: a set bit blocks that type.
fn pass_only(types: &[u8]) -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    for &t in types {
        if let Some(word) = filter.get_mut(usize::from(t >> 5)) {
            *word &= !(1u32 << (t & 31));
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::pass_only;

    #[test]
    fn filter_blocks_everything_but_the_listed_types() {
        let f = pass_only(&[134, 143]);
        let passes = |t: u8| f[usize::from(t >> 5)] & (1 << (t & 31)) == 0;
        assert!(passes(134) && passes(143));
        assert!((0..=255u8).filter(|&t| passes(t)).count() == 2);
        assert_eq!(pass_only(&[]), [u32::MAX; 8]);
    }
}
