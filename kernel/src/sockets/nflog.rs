//! The NFLOG group the route-optimisation sighting rule ([`crate::nft::SightingRule`]) copies
//! packets to: an `NETLINK_NETFILTER` socket bound to one nfnetlink_log group, yielding the
//! (source, destination) of each logged IPv6 packet. The few nfnetlink_log messages are
//! written by hand (linux/netfilter/nfnetlink_log.h): no maintained crate covers them, and
//! the `nflog` crate binds the libnetfilter_log C library.
use std::io;
use std::net::Ipv6Addr;

use netlink_sys::{protocols::NETLINK_NETFILTER, AsyncSocket, AsyncSocketExt, TokioSocket};

/// `NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET` and `| NFULNL_MSG_CONFIG`.
const MSG_PACKET: u16 = 4 << 8;
const MSG_CONFIG: u16 = (4 << 8) | 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// `NFULA_CFG_CMD`, `NFULA_CFG_MODE`, `NFULA_CFG_TIMEOUT`, `NFULA_CFG_QTHRESH`,
/// `NFULA_PAYLOAD`.
const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CFG_TIMEOUT: u16 = 4;
const CFG_QTHRESH: u16 = 5;
const ATTR_PAYLOAD: u16 = 9;
/// `NFULNL_CFG_CMD_BIND`, `NFULNL_COPY_PACKET`.
const CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
const AF_INET6: u8 = 10;
const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;
/// The outer and inner IPv6 headers are all we read of a packet.
const COPY_RANGE: u32 = 80;

/// A socket bound to one NFLOG group.
pub struct NflogSocket {
    sock: TokioSocket,
}

impl NflogSocket {
    /// Binds to `group` (the kernel refuses a group another socket holds: EBUSY).
    pub async fn bind(group: u16) -> io::Result<NflogSocket> {
        let mut sock = TokioSocket::new(NETLINK_NETFILTER)?;
        sock.socket_mut().bind_auto()?;
        let mut msg = Vec::with_capacity(64);
        header(&mut msg, group);
        attr(&mut msg, CFG_CMD, &[CMD_BIND]);
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[COPY_PACKET, 0]);
        attr(&mut msg, CFG_MODE, &mode);
        // Each packet at once: the kernel otherwise queues up to 100 of them for up to 1 s,
        // and a sighting is worth most when it is fresh.
        attr(&mut msg, CFG_QTHRESH, &1u32.to_be_bytes());
        attr(&mut msg, CFG_TIMEOUT, &1u32.to_be_bytes());
        finish(&mut msg);
        sock.send(&msg).await?;
        // The acknowledgement says whether the group is ours.
        loop {
            let (datagram, _) = sock.recv_from_full().await?;
            if let Some(errno) = ack_errno(&datagram) {
                if errno == 0 {
                    return Ok(NflogSocket { sock });
                }
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
    }

    /// The (source, destination) of every packet in the next datagram (possibly none).
    pub async fn next(&mut self) -> io::Result<Vec<(Ipv6Addr, Ipv6Addr)>> {
        let (datagram, _) = self.sock.recv_from_full().await?;
        Ok(sightings(&datagram))
    }
}

fn header(msg: &mut Vec<u8>, group: u16) {
    msg.extend_from_slice(&[0; 4]); // length, set by finish
    msg.extend_from_slice(&MSG_CONFIG.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&[AF_INET6, 0]);
    msg.extend_from_slice(&group.to_be_bytes());
}

fn attr(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(value);
    while !msg.len().is_multiple_of(4) {
        msg.push(0);
    }
}

fn finish(msg: &mut [u8]) {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_ne_bytes();
    if let Some(head) = msg.get_mut(..4) {
        head.copy_from_slice(&len);
    }
}

/// The netlink messages of a datagram as (type, payload after the netlink header).
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        let len = usize::try_from(u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
        let kind = u16::from_ne_bytes(rest.get(4..6)?.try_into().ok()?);
        let body = rest.get(NLMSG_HDR..len)?;
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, body))
    })
}

/// The errno of an acknowledgement (0: success), None if the datagram holds none.
fn ack_errno(datagram: &[u8]) -> Option<i32> {
    messages(datagram).find_map(|(kind, body)| {
        (kind == NLMSG_ERROR)
            .then(|| body.get(..4)?.try_into().ok().map(i32::from_ne_bytes))
            .flatten()
            .map(|e| -e)
    })
}

/// The (source, destination) of each IPv6 packet logged in `datagram`: of the inner packet
/// when it is IPv6-in-IPv6 (what the sighting rule logs), else of the packet.
fn sightings(datagram: &[u8]) -> Vec<(Ipv6Addr, Ipv6Addr)> {
    messages(datagram)
        .filter(|(kind, _)| *kind == MSG_PACKET)
        .filter_map(|(_, body)| {
            let mut attrs = body.get(NFGENMSG..)?;
            while attrs.len() >= 4 {
                let len = usize::from(u16::from_ne_bytes(attrs.get(..2)?.try_into().ok()?));
                let kind = u16::from_ne_bytes(attrs.get(2..4)?.try_into().ok()?) & 0x3fff;
                let value = attrs.get(4..len)?;
                if kind == ATTR_PAYLOAD {
                    return addresses(value);
                }
                attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
            }
            None
        })
        .collect()
}

fn addresses(packet: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    if packet.first()? >> 4 != 6 {
        return None;
    }
    if *packet.get(6)? == 41 {
        return addresses(packet.get(40..)?);
    }
    let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
    Some((Ipv6Addr::from(src), Ipv6Addr::from(dst)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_msg(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let mut msg = Vec::new();
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&MSG_PACKET.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&[AF_INET6, 0, 0, 7]);
        attr(&mut msg, 1, &[0x86, 0xdd, 5, 0]); // packet header: hw protocol, hook
        attr(&mut msg, ATTR_PAYLOAD, &ip);
        finish(&mut msg);
        msg
    }

    #[test]
    fn packets_of_a_datagram_are_read_and_junk_is_skipped() {
        let (a, b) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut d = packet_msg(a, b);
        d.extend(packet_msg(b, a));
        assert_eq!(sightings(&d), vec![(a, b), (b, a)]);
        // IPv6-in-IPv6: the inner packet's addresses.
        let mut outer = vec![0x60, 0, 0, 0, 0, 40, 41, 64];
        outer.extend_from_slice(&[0x11; 32]);
        let mut inner = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        inner.extend_from_slice(&a.octets());
        inner.extend_from_slice(&b.octets());
        outer.extend(inner);
        assert_eq!(addresses(&outer), Some((a, b)));
        assert!(sightings(&d[..30]).is_empty());
        assert!(sightings(&[]).is_empty());
    }

    #[test]
    fn config_message_layout() {
        let mut msg = Vec::new();
        header(&mut msg, 7);
        attr(&mut msg, CFG_CMD, &[CMD_BIND]);
        finish(&mut msg);
        assert_eq!(msg.len(), 28);
        assert_eq!(&msg[16..20], &[AF_INET6, 0, 0, 7]);
        assert_eq!(&msg[20..25], &[5, 0, 1, 0, CMD_BIND]);
    }
}
