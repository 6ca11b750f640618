//! One blocking request/reply exchange with nf_tables on a fresh NETLINK_NETFILTER socket.
//!
//! A socket per exchange keeps replies of an aborted exchange (we stop reading at the first
//! error) from ever being read as answers to the next one. Every exchange is bounded by
//! [`REPLY_TIMEOUT`]; the kernel answers these small requests in well under a millisecond.
use std::io;
use std::time::{Duration, Instant};

use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::{TimeVal, TimeValLike};

use super::wire::{error_code, replies, Batch, MsgType, BATCH_BEGIN_SEQ, NFGENMSG_LEN};

pub(super) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_WAIT_MICROS: i64 = REPLY_TIMEOUT.as_micros() as i64;
/// Large enough for any dump datagram the kernel builds (it caps them at 32 KiB + headroom).
const RECV_BUF: usize = 64 * 1024;

/// Why an exchange failed, before the caller adds what it was doing.
#[derive(Debug)]
pub(super) enum Failure {
    /// The netfilter netlink socket cannot be opened (EPROTONOSUPPORT: no nfnetlink).
    Socket(io::Error),
    /// The kernel refused the batch as a whole (`message` is None) or one of its messages.
    Errno {
        errno: i32,
        message: Option<&'static str>,
    },
    /// A dump was interrupted by a concurrent ruleset change; repeating it is correct.
    DumpInterrupted,
    Timeout,
    Malformed(String),
    Io(io::Error),
}

fn open() -> Result<Socket, Failure> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(Failure::Socket)?;
    sock.bind_auto().map_err(Failure::Io)?;
    sock.connect(&SocketAddr::new(0, 0)).map_err(Failure::Io)?;
    Ok(sock)
}

fn send(sock: &Socket, datagram: &[u8]) -> Result<(), Failure> {
    let sent = sock.send(datagram, 0).map_err(Failure::Io)?;
    if sent != datagram.len() {
        return Err(Failure::Malformed(format!(
            "sent {sent} of {} bytes",
            datagram.len()
        )));
    }
    Ok(())
}

/// Reads the next reply datagram into `buf`.
fn recv(sock: &Socket, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        // `left` is at most REPLY_TIMEOUT (well inside TimeVal's range); at least 1 µs, because
        // a zero SO_RCVTIMEO means "block for ever".
        let micros = i64::try_from(left.as_micros()).unwrap_or(i64::MAX);
        let timeout = TimeVal::microseconds(micros.clamp(1, MAX_WAIT_MICROS));
        setsockopt(sock, sockopt::ReceiveTimeout, &timeout).map_err(|e| Failure::Io(e.into()))?;
        buf.clear();
        match sock.recv(buf, libc::MSG_TRUNC) {
            Ok(n) if n > buf.len() => {
                return Err(Failure::Malformed(format!(
                    "{n}-byte reply exceeds our {RECV_BUF}-byte buffer"
                )))
            }
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Sends a batch and waits until every message in it is acknowledged. The kernel applies all
/// of it or none, so the first error is the answer.
pub(super) fn transact(batch: Batch) -> Result<(), Failure> {
    let (datagram, mut pending) = batch.finish();
    let sock = open()?;
    send(&sock, &datagram)?;
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = Vec::with_capacity(RECV_BUF);
    while !pending.is_empty() {
        recv(&sock, &mut buf, deadline)?;
        for reply in replies(&buf) {
            let reply = reply.map_err(Failure::Malformed)?;
            if reply.nlmsg_type != NLMSG_ERROR {
                continue;
            }
            let errno = error_code(reply.payload)
                .ok_or_else(|| Failure::Malformed("short NLMSG_ERROR".into()))?;
            let at = pending.iter().position(|(seq, _)| *seq == reply.seq);
            if errno != 0 {
                let message = at.and_then(|i| pending.get(i)).map(|(_, what)| *what);
                // An error on BATCH_BEGIN (or on a message we did not send) concerns the batch.
                let message = if reply.seq == BATCH_BEGIN_SEQ {
                    None
                } else {
                    message
                };
                return Err(Failure::Errno { errno, message });
            }
            if let Some(i) = at {
                pending.swap_remove(i);
            }
        }
    }
    Ok(())
}

/// Runs a dump request and returns the payloads (after `nfgenmsg`) of its `reply_type`
/// messages.
pub(super) fn dump(request: &[u8], reply_type: MsgType) -> Result<Vec<Vec<u8>>, Failure> {
    let sock = open()?;
    send(&sock, request)?;
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut buf = Vec::with_capacity(RECV_BUF);
    let mut out = Vec::new();
    loop {
        recv(&sock, &mut buf, deadline)?;
        for reply in replies(&buf) {
            let reply = reply.map_err(Failure::Malformed)?;
            if reply.flags & NLM_F_DUMP_INTR != 0 {
                return Err(Failure::DumpInterrupted);
            }
            match reply.nlmsg_type {
                NLMSG_DONE | NLMSG_ERROR => {
                    // Both carry an errno first; a successful DONE carries 0.
                    return match error_code(reply.payload) {
                        Some(0) => Ok(out),
                        Some(errno) => Err(Failure::Errno {
                            errno,
                            message: None,
                        }),
                        None if reply.nlmsg_type == NLMSG_DONE => Ok(out),
                        None => Err(Failure::Malformed("short NLMSG_ERROR".into())),
                    };
                }
                t if reply_type.is(t) => {
                    let attrs = reply.payload.get(NFGENMSG_LEN..).unwrap_or_default();
                    out.push(attrs.to_vec());
                }
                _ => {}
            }
        }
    }
}
