//! The rtnetlink connection: single requests, pipelined batches with one acknowledgement per
//! message, and dumps.
//!
//! We drive `netlink-proto` directly instead of going through `rtnetlink::Handle` because the
//! handle cannot send several messages as one batch (`request_batch`) and hides the
//! per-message acknowledgements we need to attribute errors to objects.
use std::os::fd::AsFd;
use std::time::Duration;

use futures::StreamExt;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::proto::{self, ConnectionHandle};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr};

use super::error::{NlFailure, RouteError};

/// Messages per netlink batch: one datagram of a few hundred requests keeps the syscall count
/// low while every acknowledgement still fits in the receive buffer below.
pub(crate) const BATCH_CHUNK: usize = 256;
/// The kernel writes the acknowledgements of a whole datagram before we read any; each costs
/// about a kilobyte of socket memory, so the default 208 KiB would overflow (ENOBUFS, lost acks).
const RX_BUFFER: usize = 4 << 20;
/// Bound on every wait for the kernel, so a lost answer becomes an error, not a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of requests refused with ENOMEM, after 5, 10, 20 ... ms (about 1.3 s in all).
const ENOMEM_RETRIES: usize = 8;
const ENOMEM_FIRST_PAUSE: Duration = Duration::from_millis(5);
/// A dump interrupted by concurrent changes (NLM_F_DUMP_INTR) is retried this many times.
const DUMP_ATTEMPTS: usize = 4;

#[derive(Clone, Debug)]
pub(crate) struct Nl {
    handle: ConnectionHandle<RouteNetlinkMessage>,
}

/// The outcome of one request of a batch: the messages it was answered with, or its error.
pub(crate) type Answer = Result<Vec<RouteNetlinkMessage>, NlFailure>;

/// One request of a batch, with its netlink flags.
pub(crate) struct Request {
    pub message: RouteNetlinkMessage,
    pub flags: u16,
}

impl Nl {
    /// Opens the socket in the calling thread's network namespace and spawns the connection
    /// task on the current tokio runtime.
    pub(crate) fn connect() -> Result<Nl, RouteError> {
        let (mut conn, handle, _unsolicited) =
            proto::new_connection::<RouteNetlinkMessage>(NETLINK_ROUTE)
                .map_err(RouteError::Socket)?;
        conn.set_forward_ack(true);
        let socket = conn.socket_mut().socket_mut();
        // Extended acks give the kernel's own sentence ("Nexthop device is not up"); capped
        // acks keep each error small instead of echoing the whole request.
        socket.set_ext_ack(true).map_err(RouteError::Socket)?;
        socket.set_cap_ack(true).map_err(RouteError::Socket)?;
        let fd = socket.as_fd();
        if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RX_BUFFER)
            .is_err()
        {
            // Without CAP_NET_ADMIN only rmem_max applies; batches then rely on the timeout.
            let _ =
                nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBuf, &RX_BUFFER);
        }
        tokio::spawn(conn);
        Ok(Nl { handle })
    }

    /// Sends the requests in datagrams of [`BATCH_CHUNK`] and returns one result per request,
    /// in order. Every request must carry NLM_F_ACK.
    ///
    /// Requests refused with ENOMEM are sent again after a pause: each seg6 route allocates
    /// per-CPU memory atomically, from a pool the kernel refills in the background, so a burst
    /// of a few thousand routes drains it for a moment (seen here: a run of ~100 failures at
    /// the end of a batch, all succeeding a few milliseconds later).
    pub(crate) async fn batch(&self, requests: Vec<Request>) -> Vec<Result<(), NlFailure>> {
        self.batch_with_replies(requests)
            .await
            .into_iter()
            .map(|r| r.map(drop))
            .collect()
    }

    /// Like [`Self::batch`], also returning the messages the kernel answered each request
    /// with before its acknowledgement (single gets: the object asked for).
    pub(crate) async fn batch_with_replies(&self, requests: Vec<Request>) -> Vec<Answer> {
        let mut results = vec![Err(closed()); requests.len()];
        let mut pending: Vec<(usize, Request)> = requests.into_iter().enumerate().collect();
        let mut pause = ENOMEM_FIRST_PAUSE;
        for attempt in 0..=ENOMEM_RETRIES {
            let mut retry = Vec::new();
            let mut queue = pending.into_iter().peekable();
            while queue.peek().is_some() {
                let chunk: Vec<(usize, Request)> = queue.by_ref().take(BATCH_CHUNK).collect();
                let messages = chunk
                    .iter()
                    .map(|(_, r)| {
                        to_netlink(Request {
                            message: r.message.clone(),
                            flags: r.flags,
                        })
                    })
                    .collect();
                for ((index, request), outcome) in chunk.into_iter().zip(self.chunk(messages).await)
                {
                    match outcome {
                        Err(e) if e.errno == Some(libc::ENOMEM) && attempt < ENOMEM_RETRIES => {
                            retry.push((index, request))
                        }
                        other => {
                            if let Some(slot) = results.get_mut(index) {
                                *slot = other;
                            }
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
            pending = retry;
        }
        results
    }

    async fn chunk(&self, chunk: Vec<NetlinkMessage<RouteNetlinkMessage>>) -> Vec<Answer> {
        let n = chunk.len();
        let mut stream = match self.handle.request_batch(chunk, SocketAddr::new(0, 0)) {
            Ok(s) => s,
            Err(_) => return vec![Err(closed()); n],
        };
        // (sequence number, outcome) of every acknowledgement or error.
        let mut answers: Vec<(u32, Result<(), NlFailure>)> = Vec::with_capacity(n);
        // (sequence number, message) of replies that come before their acknowledgement.
        let mut replies: Vec<(u32, RouteNetlinkMessage)> = Vec::new();
        let collect = async {
            while let Some(msg) = stream.next().await {
                let seq = msg.header.sequence_number;
                if let NetlinkPayload::InnerMessage(inner) = msg.payload {
                    replies.push((seq, inner));
                } else if let NetlinkPayload::Error(e) = &msg.payload {
                    let outcome = match e.code {
                        None => Ok(()),
                        Some(code) => Err(NlFailure::kernel(
                            code.get().saturating_abs(),
                            ext_ack_message(msg.header.flags, &e.header),
                        )),
                    };
                    answers.push((seq, outcome));
                }
            }
        };
        if tokio::time::timeout(ANSWER_TIMEOUT, collect).await.is_err() || answers.len() != n {
            // Without every answer we cannot tell which request an answer belongs to.
            let text = format!(
                "the kernel acknowledged {} of {n} batched requests within {} s; state unknown",
                answers.len(),
                ANSWER_TIMEOUT.as_secs()
            );
            return vec![Err(NlFailure::local(text)); n];
        }
        // The requests of one batch carry consecutive sequence numbers and each gets exactly
        // one answer, so the smallest answered number belongs to the first request.
        let base = answers.iter().map(|(seq, _)| *seq).min().unwrap_or(0);
        let mut results: Vec<Answer> =
            vec![Err(NlFailure::local("no acknowledgement from the kernel")); n];
        for (seq, outcome) in answers {
            if let Some(slot) = results.get_mut(seq.wrapping_sub(base) as usize) {
                *slot = outcome.map(|()| Vec::new());
            }
        }
        for (seq, reply) in replies {
            if let Some(Ok(messages)) = results.get_mut(seq.wrapping_sub(base) as usize) {
                messages.push(reply);
            }
        }
        results
    }

    /// One acknowledged request.
    pub(crate) async fn ack(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NlFailure> {
        self.batch(vec![Request { message, flags }])
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(closed()))
    }

    /// A request answered by messages (a dump with NLM_F_DUMP, or a single get).
    pub(crate) async fn query(
        &self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NlFailure> {
        let flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        for _ in 0..DUMP_ATTEMPTS {
            let mut stream = self
                .handle
                .request(
                    to_netlink(Request {
                        message: message.clone(),
                        flags,
                    }),
                    SocketAddr::new(0, 0),
                )
                .map_err(|_| closed())?;
            let mut out = Vec::new();
            let mut interrupted = false;
            let collect = async {
                while let Some(msg) = stream.next().await {
                    interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
                    match msg.payload {
                        NetlinkPayload::InnerMessage(inner) => out.push(inner),
                        NetlinkPayload::Error(e) => {
                            if let Some(code) = e.code {
                                return Err(NlFailure::kernel(
                                    code.get().saturating_abs(),
                                    ext_ack_message(msg.header.flags, &e.header),
                                ));
                            }
                        }
                        NetlinkPayload::Overrun(_) => {
                            return Err(NlFailure::local("netlink receive buffer overrun"));
                        }
                        _ => {}
                    }
                }
                Ok(())
            };
            match tokio::time::timeout(ANSWER_TIMEOUT, collect).await {
                Err(_) => {
                    return Err(NlFailure::local(format!(
                        "no answer from the kernel within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) if interrupted => continue,
                Ok(Ok(())) => return Ok(out),
            }
        }
        Err(NlFailure::local(
            "dump kept being interrupted by concurrent changes",
        ))
    }
}

fn closed() -> NlFailure {
    NlFailure::local("the netlink connection is closed")
}

fn to_netlink(req: Request) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = NetlinkMessage::from(req.message);
    msg.header.flags = req.flags;
    msg
}

/// The NLMSGERR_ATTR_MSG string of an extended ack. `payload` is what follows the error code:
/// the request's header (or whole request when not capped), then the TLVs.
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const NLMSGERR_ATTR_MSG: u16 = 1;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        len.checked_add(3)? & !3
    };
    let mut tlvs = payload.get(request_len..)?;
    while let Some(&[l0, l1, k0, k1]) = tlvs.get(..4) {
        let len = u16::from_ne_bytes([l0, l1]) as usize;
        let kind = u16::from_ne_bytes([k0, k1]) & 0x3fff;
        let value = tlvs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_ack_message_is_found_after_capped_header() {
        let mut p = vec![0u8; 16];
        let msg = b"Nexthop device is not up\0";
        let len = (4 + msg.len()) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&1u16.to_ne_bytes());
        p.extend_from_slice(msg);
        let flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
        assert_eq!(
            ext_ack_message(flags, &p).as_deref(),
            Some("Nexthop device is not up")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &p), None);
        // Truncated input yields nothing rather than a panic.
        for cut in 0..p.len() {
            let _ = ext_ack_message(flags, &p[..cut]);
        }
    }
}
