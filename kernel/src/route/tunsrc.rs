//! The namespace-wide seg6 tunnel source (`ip sr tunsrc set|show`), over generic netlink.
//!
//! Hand-written because none of our netlink crates models the "SEG6" generic-netlink family:
//! netlink-packet-route is rtnetlink only, and netlink-packet-generic would only give us the
//! generic header and the controller, leaving the SEG6 payload to write anyway. The whole
//! protocol here is two commands with one 16-byte attribute each.
use std::net::Ipv6Addr;
use std::time::Duration;

use rtnetlink::sys::{
    protocols::NETLINK_GENERIC, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket,
};
use tokio::sync::Mutex;

use super::error::{NlFailure, RouteError};
use super::nl::ext_ack_message;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const SEG6_FAMILY: &[u8] = b"SEG6\0";
const SEG6_CMD_SET_TUNSRC: u8 = 3;
const SEG6_CMD_GET_TUNSRC: u8 = 4;
const SEG6_ATTR_DST: u16 = 1;
const SEG6_GENL_VERSION: u8 = 1;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A generic-netlink socket, opened with the rtnetlink one so both live in the same namespace.
pub(crate) struct Seg6Genl {
    inner: Mutex<(TokioSocket, u32)>,
}

impl Seg6Genl {
    pub(crate) fn open() -> Result<Seg6Genl, RouteError> {
        let socket = TokioSocket::new(NETLINK_GENERIC).map_err(RouteError::Socket)?;
        socket
            .socket_ref()
            .set_ext_ack(true)
            .map_err(RouteError::Socket)?;
        socket
            .socket_ref()
            .set_cap_ack(true)
            .map_err(RouteError::Socket)?;
        Ok(Seg6Genl {
            inner: Mutex::new((socket, 0)),
        })
    }

    pub(crate) async fn set_tunsrc(&self, addr: Ipv6Addr) -> Result<(), NlFailure> {
        let family = self.family().await?;
        self.exchange(
            family,
            SEG6_CMD_SET_TUNSRC,
            &[(SEG6_ATTR_DST, &addr.octets())],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn get_tunsrc(&self) -> Result<Ipv6Addr, NlFailure> {
        let family = self.family().await?;
        let replies = self.exchange(family, SEG6_CMD_GET_TUNSRC, &[]).await?;
        replies
            .iter()
            .find_map(|attrs| attr(attrs, SEG6_ATTR_DST))
            .and_then(|v| <[u8; 16]>::try_from(v).ok())
            .map(Ipv6Addr::from)
            .ok_or_else(|| NlFailure::local("the kernel's reply carries no SEG6_ATTR_DST"))
    }

    async fn family(&self) -> Result<u16, NlFailure> {
        let replies = self
            .exchange(
                GENL_ID_CTRL,
                CTRL_CMD_GETFAMILY,
                &[(CTRL_ATTR_FAMILY_NAME, SEG6_FAMILY)],
            )
            .await?;
        replies
            .iter()
            .find_map(|attrs| attr(attrs, CTRL_ATTR_FAMILY_ID))
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map(u16::from_ne_bytes)
            .ok_or_else(|| NlFailure::local("the kernel has no SEG6 generic-netlink family"))
    }

    /// Sends one acknowledged request and returns the attribute area of every reply of type
    /// `family` that arrived before the acknowledgement.
    async fn exchange(
        &self,
        family: u16,
        cmd: u8,
        attrs: &[(u16, &[u8])],
    ) -> Result<Vec<Vec<u8>>, NlFailure> {
        let mut guard = self.inner.lock().await;
        let (socket, seq) = &mut *guard;
        *seq = seq.wrapping_add(1);
        let request = encode(family, *seq, cmd, attrs);
        let run = async {
            socket
                .send_to(&request, &SocketAddr::new(0, 0))
                .await
                .map_err(|e| NlFailure::local(format!("sending to the kernel: {e}")))?;
            let mut replies = Vec::new();
            loop {
                let (datagram, _) = socket
                    .recv_from_full()
                    .await
                    .map_err(|e| NlFailure::local(format!("reading from the kernel: {e}")))?;
                let mut rest = datagram.as_slice();
                while let Some(msg) = Message::split(&mut rest) {
                    if msg.seq != *seq {
                        continue;
                    }
                    match msg.kind {
                        NLMSG_ERROR => {
                            let code = msg.body.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok());
                            let code = i32::from_ne_bytes(code.unwrap_or([0; 4]));
                            if code == 0 {
                                return Ok(replies);
                            }
                            let ext = ext_ack_message(msg.flags, msg.body.get(4..).unwrap_or(&[]));
                            return Err(NlFailure::kernel(code.saturating_abs(), ext));
                        }
                        NLMSG_DONE => return Ok(replies),
                        k if k == family => {
                            replies.push(msg.body.get(GENL_HDRLEN..).unwrap_or(&[]).to_vec());
                        }
                        _ => {}
                    }
                }
            }
        };
        tokio::time::timeout(TIMEOUT, run)
            .await
            .unwrap_or_else(|_| Err(NlFailure::local("no answer from the kernel")))
    }
}

fn encode(family: u16, seq: u32, cmd: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    buf.extend_from_slice(&family.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
    buf.extend_from_slice(&[cmd, SEG6_GENL_VERSION, 0, 0]);
    for (kind, value) in attrs {
        let len = 4 + value.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(value);
        buf.resize((buf.len() + 3) & !3, 0);
    }
    let total = (buf.len() as u32).to_ne_bytes();
    buf.splice(..4, total);
    buf
}

struct Message<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    body: &'a [u8],
}

impl<'a> Message<'a> {
    /// The next netlink message of a datagram, advancing `rest`; None at the end or on a
    /// malformed length.
    fn split(rest: &mut &'a [u8]) -> Option<Message<'a>> {
        let hdr = rest.get(..NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes(hdr.get(..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(hdr.get(4..6)?.try_into().ok()?);
        let flags = u16::from_ne_bytes(hdr.get(6..8)?.try_into().ok()?);
        let seq = u32::from_ne_bytes(hdr.get(8..12)?.try_into().ok()?);
        let body = rest.get(NLMSG_HDRLEN..len)?;
        *rest = rest.get(((len + 3) & !3).min(rest.len())..)?;
        Some(Message {
            kind,
            flags,
            seq,
            body,
        })
    }
}

/// The value of the first attribute of type `kind` in a flat attribute area.
fn attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while let Some(&[l0, l1, k0, k1]) = attrs.get(..4) {
        let len = u16::from_ne_bytes([l0, l1]) as usize;
        let value = attrs.get(4..len)?;
        if u16::from_ne_bytes([k0, k1]) & 0x3fff == kind {
            return Some(value);
        }
        attrs = attrs.get(((len + 3) & !3).min(attrs.len())..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_matches_netlink() {
        let addr: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let buf = encode(
            0x1a,
            7,
            SEG6_CMD_SET_TUNSRC,
            &[(SEG6_ATTR_DST, &addr.octets())],
        );
        assert_eq!(buf.len(), 16 + 4 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(&buf[16..20], &[3, 1, 0, 0]);
        assert_eq!(attr(&buf[20..], SEG6_ATTR_DST), Some(&addr.octets()[..]));
        let mut rest = &buf[..];
        let m = Message::split(&mut rest).unwrap();
        assert_eq!(
            (m.kind, m.seq, m.flags),
            (0x1a, 7, NLM_F_REQUEST | NLM_F_ACK)
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn truncated_input_never_panics() {
        let buf = encode(
            0x10,
            1,
            CTRL_CMD_GETFAMILY,
            &[(CTRL_ATTR_FAMILY_NAME, SEG6_FAMILY)],
        );
        for cut in 0..buf.len() {
            let mut rest = &buf[..cut];
            while Message::split(&mut rest).is_some() {}
            let _ = attr(&buf[20..cut.max(20)], CTRL_ATTR_FAMILY_NAME);
        }
    }
}
