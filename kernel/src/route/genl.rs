//! A generic-netlink request/reply socket: family resolution through the controller and
//! acknowledged requests or dumps, returning each reply's generic-netlink payload.
//!
//! Hand-written because none of our netlink crates models the families we speak (SEG6 for the
//! tunnel source, nl80211 for a radio's signal): netlink-packet-route is rtnetlink only, and
//! netlink-packet-generic would only give us the 4-byte generic header and the controller,
//! leaving each family's payload to write anyway. Used by [`super::tunsrc`] and
//! [`crate::nl80211`].
use std::time::Duration;

use rtnetlink::sys::{
    protocols::NETLINK_GENERIC, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket,
};
use tokio::sync::Mutex;

use super::error::{NlFailure, RouteError};
use super::nl::ext_ack_message;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_VERSION: u8 = 1;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 1;
pub(crate) const NLM_F_ACK: u16 = 4;
/// NLM_F_ROOT | NLM_F_MATCH: every object, ended by NLMSG_DONE (no acknowledgement).
pub(crate) const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;
pub(crate) const GENL_HDRLEN: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A generic-netlink socket, opened in the caller's namespace.
pub(crate) struct Genl {
    inner: Mutex<(TokioSocket, u32)>,
}

impl Genl {
    pub(crate) fn open() -> Result<Genl, RouteError> {
        let socket = TokioSocket::new(NETLINK_GENERIC).map_err(RouteError::Socket)?;
        socket
            .socket_ref()
            .set_ext_ack(true)
            .map_err(RouteError::Socket)?;
        socket
            .socket_ref()
            .set_cap_ack(true)
            .map_err(RouteError::Socket)?;
        Ok(Genl {
            inner: Mutex::new((socket, 0)),
        })
    }

    /// The id of the generic-netlink family `name`; ENOENT (as the kernel's errno) when the
    /// kernel has no such family.
    pub(crate) async fn family(&self, name: &str) -> Result<u16, NlFailure> {
        let mut nul = name.as_bytes().to_vec();
        nul.push(0);
        let replies = self
            .exchange(
                GENL_ID_CTRL,
                CTRL_VERSION,
                CTRL_CMD_GETFAMILY,
                NLM_F_REQUEST | NLM_F_ACK,
                &[(CTRL_ATTR_FAMILY_NAME, &nul)],
            )
            .await?;
        replies
            .iter()
            .find_map(|p| attr(p.get(GENL_HDRLEN..)?, CTRL_ATTR_FAMILY_ID))
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map(u16::from_ne_bytes)
            .ok_or_else(|| {
                NlFailure::local(format!(
                    "the kernel's answer for the {name} generic-netlink family carries no id"
                ))
            })
    }

    /// Sends one request and returns the generic-netlink payload (header and attributes) of
    /// every reply of type `family` before the acknowledgement or the end of the dump.
    pub(crate) async fn exchange(
        &self,
        family: u16,
        version: u8,
        cmd: u8,
        flags: u16,
        attrs: &[(u16, &[u8])],
    ) -> Result<Vec<Vec<u8>>, NlFailure> {
        let mut guard = self.inner.lock().await;
        let (socket, seq) = &mut *guard;
        *seq = seq.wrapping_add(1);
        let request = encode(family, *seq, flags, version, cmd, attrs);
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
                        NLMSG_DONE => {
                            return match done_errno(msg.body) {
                                Some(errno) => {
                                    Err(NlFailure::kernel(errno, done_ext_ack(msg.flags, msg.body)))
                                }
                                None => Ok(replies),
                            };
                        }
                        k if k == family => replies.push(msg.body.to_vec()),
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

pub(crate) fn encode(
    family: u16,
    seq: u32,
    flags: u16,
    version: u8,
    cmd: u8,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    buf.extend_from_slice(&family.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
    buf.extend_from_slice(&[cmd, version, 0, 0]);
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

/// The error a dump ended with: the kernel reports a failure inside a dump (e.g. nl80211's
/// ENODEV for an interface without a wireless device) as a negative int in NLMSG_DONE rather
/// than as NLMSG_ERROR. None for a clean end.
fn done_errno(body: &[u8]) -> Option<i32> {
    let code = i32::from_ne_bytes(body.get(..4)?.try_into().ok()?);
    (code < 0).then(|| code.saturating_abs())
}

/// The extended-ack message of a failed dump: unlike NLMSG_ERROR, NLMSG_DONE carries its
/// TLVs right after the error code, with no echoed request.
fn done_ext_ack(flags: u16, body: &[u8]) -> Option<String> {
    const NLM_F_ACK_TLVS: u16 = 0x200;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let text = attr(body.get(4..)?, NLMSGERR_ATTR_MSG)?;
    let text = text.split(|b| *b == 0).next().unwrap_or(text);
    Some(String::from_utf8_lossy(text).into_owned())
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

/// The value of the first attribute of type `kind` in a flat attribute area (the nested and
/// byte-order flag bits ignored); None when absent or when a length is malformed first.
pub(crate) fn attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
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
        let value = [0xaa; 16];
        let buf = encode(0x1a, 7, NLM_F_REQUEST | NLM_F_ACK, 1, 3, &[(1, &value[..])]);
        assert_eq!(buf.len(), 16 + 4 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(&buf[16..20], &[3, 1, 0, 0]);
        assert_eq!(attr(&buf[20..], 1), Some(&value[..]));
        let mut rest = &buf[..];
        let m = Message::split(&mut rest).unwrap();
        assert_eq!(
            (m.kind, m.seq, m.flags),
            (0x1a, 7, NLM_F_REQUEST | NLM_F_ACK)
        );
        assert!(rest.is_empty());
    }

    /// The dump path (NLM_F_DUMP, multi-part replies ended by NLMSG_DONE, no ack) against the
    /// one family every kernel has: the controller's list of families, which names itself.
    #[test]
    fn dump_of_the_controller_lists_nlctrl() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (names, id) = rt.block_on(async {
            let genl = Genl::open().unwrap();
            let replies = genl
                .exchange(
                    GENL_ID_CTRL,
                    CTRL_VERSION,
                    CTRL_CMD_GETFAMILY,
                    NLM_F_REQUEST | NLM_F_DUMP,
                    &[],
                )
                .await
                .unwrap();
            let names = replies
                .iter()
                .filter_map(|p| attr(p.get(GENL_HDRLEN..)?, CTRL_ATTR_FAMILY_NAME))
                .map(|n| String::from_utf8_lossy(n).trim_end_matches('\0').to_owned())
                .collect::<Vec<_>>();
            // The next request on the same socket gets its own answer, not the dump's tail.
            (names, genl.family("nlctrl").await.unwrap())
        });
        assert!(
            names.len() > 1 && names.iter().any(|n| n == "nlctrl"),
            "{names:?}"
        );
        assert_eq!(id, GENL_ID_CTRL);
    }

    #[test]
    fn a_dump_ending_in_an_error_is_an_error() {
        assert_eq!(done_errno(&0i32.to_ne_bytes()), None);
        assert_eq!(done_errno(&[]), None);
        assert_eq!(done_errno(&[0xff, 0xff]), None);
        assert_eq!(
            done_errno(&(-libc::ENODEV).to_ne_bytes()),
            Some(libc::ENODEV)
        );
        assert_eq!(done_errno(&i32::MIN.to_ne_bytes()), Some(i32::MAX));
        let mut body = (-libc::EINVAL).to_ne_bytes().to_vec();
        body.extend_from_slice(&[12, 0, 1, 0]);
        body.extend_from_slice(b"no wdev\0");
        assert_eq!(done_ext_ack(0x200, &body).as_deref(), Some("no wdev"));
        assert_eq!(done_ext_ack(0, &body), None);
        assert_eq!(done_ext_ack(0x200, &body[..6]), None);
    }

    #[test]
    fn truncated_input_never_panics() {
        let buf = encode(
            GENL_ID_CTRL,
            1,
            NLM_F_REQUEST | NLM_F_DUMP,
            CTRL_VERSION,
            CTRL_CMD_GETFAMILY,
            &[(CTRL_ATTR_FAMILY_NAME, b"nl80211\0")],
        );
        for cut in 0..buf.len() {
            let mut rest = &buf[..cut];
            while Message::split(&mut rest).is_some() {}
            let _ = attr(&buf[20..cut.max(20)], CTRL_ATTR_FAMILY_NAME);
        }
    }
}
