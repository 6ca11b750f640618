//! Context transfer between MMAs (issue 12 §3, seed 004: move the agent's state, not the
//! user's history).
//!
//! When a terminal registers here after an inter-site move, its BU names the MMA it comes from
//! (Experimental sub-type 5). If that MMA is a configured peer, we send it a Context Request at
//! once (a BU between MMAs, see `mipcast_wire::context` for the layout and why); it answers from
//! its binding cache with the terminal's group, remaining lifetime and the correspondents it had
//! bound, and we hand those correspondents to route optimisation to bind now, without waiting
//! for traffic. One round trip; the old MMA keeps forwarding for its grace period as before.
//!
//! Both directions are authenticated with the peer's MMA–MMA security association (RFC 4285
//! option, the peer's own SPI; the MAC covers the requesting MMA's address and the home
//! address). Requests carry a timestamp checked against a replay window and the last one
//! accepted from that peer; a reply is accepted only for an outstanding request with its
//! sequence number and home address, once.
//!
//! What the old MMA answers (BAck status of the Context Reply):
//!
//! | status | when |
//! |--------|------|
//! | 0   | the terminal is registered here or in its forwarding window: context follows |
//! | 133 | no binding for this home address here (never registered, or its window ended) |
//! | 144 | the request's timestamp is outside the replay window or not newer than the last |
//!
//! Dropped without a reply (counted in `mma_context_dropped{reason}`): a request or reply from
//! an address that is not a configured peer (`unknown_peer`), one that fails authentication
//! (`auth_failed`: wrong SPI, wrong key, tampered), a malformed one (`malformed`), a reply
//! that matches no outstanding request (`unexpected_reply`: late, duplicated or replayed), a
//! reply for a terminal no longer registered here (`terminal_gone`). Nothing changes then. A
//! registration naming a previous MMA that is not a configured peer sends nothing and is
//! counted (`mma_context_requests{outcome="unknown_peer"}`).
//!
//! Retransmission: after [`INITIAL_TIMEOUT_MS`], doubling, [`MAX_TRANSMISSIONS`] in all, each
//! with a fresh timestamp and the same sequence number (a late answer to an earlier copy still
//! matches); then we give up (`gave_up`): route optimisation then learns the correspondents
//! from traffic, as without context transfer.
//!
//! Route optimisation (`ro.rs`) is a machine of its own; the shell joins the two: it keeps
//! [`Core::set_correspondents`] up to date from route optimisation's bindings (what the old
//! side sends), and hands the new side's `BindCorrespondents` event to route optimisation,
//! which binds those correspondents at once.
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv6Addr;

use serde::Serialize;

use mipcast_binding::replay;
use mipcast_binding::time::ms_to_ntp_units;
use mipcast_binding::{BindingState, Now};
use mipcast_proto::{Millis, ReplyKind};
use mipcast_wire::auth::{Algorithm, Credentials};
use mipcast_wire::context::{
    self as wire, context_flags, ContextReply, ContextRequest, CorrespondentEntry, TerminalContext,
    MAX_CORRESPONDENTS,
};
use mipcast_wire::mh::{back_status, mh_type, Experimental, MhPacket, MhRepr};

use super::{Core, Event, Held, Output, Received, Send};

/// First retransmission after this long (RFC 6275's INITIAL_BINDACK_TIMEOUT).
pub const INITIAL_TIMEOUT_MS: u64 = 1000;
/// Requests sent per terminal at most (the first and two retransmissions: 0, 1 and 3 s, given
/// up at 7 s). A context that late is worth little: traffic has shown the flows by then.
pub const MAX_TRANSMISSIONS: u8 = 3;
/// BAck status of a Context Reply for a terminal we hold no binding for.
pub const STATUS_UNKNOWN_TERMINAL: u8 = back_status::NOT_HOME_AGENT;

/// A peer MMA we exchange contexts with, and our security association with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    pub address: Ipv6Addr,
    pub spi: u32,
    pub algorithm: Algorithm,
    pub key: Vec<u8>,
}

// Keys must never reach logs.
impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("address", &self.address)
            .field("spi", &self.spi)
            .field("algorithm", &self.algorithm)
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .finish()
    }
}

impl Peer {
    fn credentials(&self) -> Credentials<'_> {
        Credentials {
            spi: self.spi,
            algorithm: self.algorithm,
            key: &self.key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextConfig {
    pub peers: Vec<Peer>,
    /// RFC 4285 timestamp window either side of our clock for requests.
    pub replay_window_ms: u64,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            peers: Vec::new(),
            replay_window_ms: 7000,
        }
    }
}

/// One correspondent's route-optimisation binding, as the context carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CorrespondentContext {
    pub addr: Ipv6Addr,
    pub lifetime_left_s: u32,
    /// Sequence number of the last Binding Update sent to the correspondent.
    pub seq: u16,
}

/// A context protocol decision, for logs, metrics and the seam to route optimisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "context", rename_all = "snake_case")]
pub enum ContextEvent {
    /// A Context Request left for `peer` (`retransmission` for the second and later).
    RequestSent {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        seq: u16,
        retransmission: bool,
    },
    /// The registration named a previous MMA that is not a configured peer: no request.
    UnknownPreviousMma { hoa: Ipv6Addr, previous: Ipv6Addr },
    /// No valid answer after every transmission.
    GaveUp { hoa: Ipv6Addr, peer: Ipv6Addr },
    /// The peer's context for `hoa` arrived, `rtt_ms` after the first request.
    Received {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        group: Ipv6Addr,
        lifetime_left_s: u32,
        forwarding: bool,
        truncated: bool,
        correspondents: Vec<CorrespondentContext>,
        rtt_ms: u64,
    },
    /// The peer answered with a refusal (see the status table above).
    Refused {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        status: u8,
    },
    /// We answered a peer's request (status 0 with `correspondents` listed, or a refusal).
    Served {
        hoa: Ipv6Addr,
        peer: Ipv6Addr,
        status: u8,
        correspondents: usize,
    },
    /// A context message dropped without reply; `reason` is a stable metrics label.
    Dropped {
        reason: &'static str,
        peer: Ipv6Addr,
    },
    /// Route optimisation: bind these correspondents of `hoa` now, with this MMA as care-of
    /// address (until `ro.rs` takes this call, the event is the output).
    BindCorrespondents {
        hoa: Ipv6Addr,
        correspondents: Vec<CorrespondentContext>,
    },
}

/// A request waiting for its reply.
#[derive(Debug, Clone)]
struct Outstanding {
    peer: Ipv6Addr,
    /// Our address the request goes from (the MAC's requester address).
    src: Ipv6Addr,
    seq: u16,
    first_sent: Millis,
    transmissions: u8,
    timeout_ms: u64,
    next_at: Millis,
}

/// A context received for a terminal registered here, for `mma status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextStatus {
    pub hoa: Ipv6Addr,
    pub from: Ipv6Addr,
    /// "requested" (waiting for the reply) or "received".
    pub state: &'static str,
    pub group: Option<Ipv6Addr>,
    /// The terminal's remaining lifetime at the previous MMA when it answered.
    pub lifetime_left_s: Option<u32>,
    pub forwarding: bool,
    pub truncated: bool,
    pub correspondents: Vec<CorrespondentContext>,
    pub rtt_ms: Option<u64>,
    pub transmissions: u8,
}

/// The context transfer state of an MMA.
#[derive(Debug, Default)]
pub(super) struct ContextState {
    config: ContextConfig,
    /// Next request sequence number (seeded from the clock at the first request, so a restart
    /// does not reuse recent numbers).
    next_seq: Option<u16>,
    /// By home address.
    outstanding: BTreeMap<Ipv6Addr, Outstanding>,
    /// Last request timestamp accepted from each peer.
    accepted_ts: HashMap<Ipv6Addr, u64>,
    /// Last request timestamp sent to each peer (ours must keep increasing).
    sent_ts: HashMap<Ipv6Addr, u64>,
    /// Contexts received, by home address (only for terminals still registered here).
    received: BTreeMap<Ipv6Addr, ContextStatus>,
    /// Route optimisation's bindings of each terminal served here (old side of a transfer):
    /// correspondent, when its binding ends, last sequence number. Kept up to date by the
    /// shell from the route-optimisation core ([`Core::set_correspondents`]).
    correspondents: BTreeMap<Ipv6Addr, Vec<(Ipv6Addr, Millis, u16)>>,
}

impl ContextState {
    fn peer(&self, address: Ipv6Addr) -> Option<&Peer> {
        self.config.peers.iter().find(|p| p.address == address)
    }
}

/// The previous MMA a registration BU names, if any.
fn previous_mma(bu: &[u8]) -> Option<Ipv6Addr> {
    MhRepr::parse(bu)
        .ok()?
        .experimental()
        .find_map(|e| match e {
            Experimental::PreviousMma(a) => Some(*a),
            _ => None,
        })
}

impl Core {
    /// Sets the peers and the replay window (at start and on reload). Outstanding requests to
    /// peers that are gone are dropped.
    pub fn set_context(&mut self, config: ContextConfig) {
        let c = &mut self.context;
        c.outstanding
            .retain(|_, o| config.peers.iter().any(|p| p.address == o.peer));
        c.config = config;
    }

    /// Whether `m` is a context message for this module: a Context Request, or a Binding
    /// Acknowledgement from a configured peer (MMAs send each other no other BAcks).
    pub(super) fn is_context_message(&self, m: &Received<'_>) -> bool {
        if wire::is_context_request(m.bytes) {
            return true;
        }
        MhPacket::new_checked(m.bytes).is_ok_and(|p| p.mh_type() == mh_type::BINDING_ACK)
            && self.context.peer(m.src).is_some()
    }

    pub(super) fn on_context_message(&mut self, m: Received<'_>, now: Now) {
        if self.context.peer(m.src).is_none() {
            self.limiter.note_failure(m.src, now.mono);
            return self.context_event(ContextEvent::Dropped {
                reason: "unknown_peer",
                peer: m.src,
            });
        }
        let Ok(repr) = MhRepr::parse(m.bytes) else {
            return self.context_event(ContextEvent::Dropped {
                reason: "malformed",
                peer: m.src,
            });
        };
        if let Some(req) = ContextRequest::from_repr(&repr) {
            self.on_request(m, req, now);
        } else if let Some(reply) = ContextReply::from_repr(&repr) {
            self.on_reply(m, reply, now);
        } else {
            self.context_event(ContextEvent::Dropped {
                reason: "malformed",
                peer: m.src,
            });
        }
    }

    /// After the registrar accepted `hoa` as newly served here: ask the previous MMA its BU
    /// names for the terminal's context.
    pub(super) fn request_context(&mut self, hoa: Ipv6Addr, bu: &[u8], now: Now) {
        let Some(previous) = previous_mma(bu) else {
            return;
        };
        if previous == self.plan.mma {
            return;
        }
        if self.context.peer(previous).is_none() {
            return self.context_event(ContextEvent::UnknownPreviousMma { hoa, previous });
        }
        let seq = {
            let next = self.context.next_seq.unwrap_or((now.wall_ntp >> 22) as u16);
            self.context.next_seq = Some(next.wrapping_add(1));
            next
        };
        let o = Outstanding {
            peer: previous,
            src: self.plan.mma,
            seq,
            first_sent: now.mono,
            transmissions: 0,
            timeout_ms: INITIAL_TIMEOUT_MS,
            next_at: now.mono,
        };
        self.context.received.remove(&hoa);
        self.context.outstanding.insert(hoa, o);
        self.transmit_request(hoa, now);
    }

    /// Sends (or resends) the request for `hoa` with a fresh timestamp and arms the timer.
    fn transmit_request(&mut self, hoa: Ipv6Addr, now: Now) {
        let Some(o) = self.context.outstanding.get(&hoa).cloned() else {
            return;
        };
        let Some(peer) = self.context.peer(o.peer).cloned() else {
            self.context.outstanding.remove(&hoa);
            return;
        };
        let last = self.context.sent_ts.get(&o.peer).copied();
        let timestamp = match last {
            Some(l) if now.wall_ntp <= l => l.wrapping_add(1),
            _ => now.wall_ntp,
        };
        let req = ContextRequest {
            sequence: o.seq,
            hoa,
            timestamp,
        };
        let bytes = match req.emit_authenticated(&peer.credentials(), &o.src) {
            Ok(b) => b,
            Err(e) => {
                self.context.outstanding.remove(&hoa);
                return self.hold(Output::Event(Event::Dropped {
                    reason: "emit_failed",
                    detail: e.to_string(),
                }));
            }
        };
        self.context.sent_ts.insert(o.peer, timestamp);
        let retransmission = o.transmissions > 0;
        if let Some(entry) = self.context.outstanding.get_mut(&hoa) {
            entry.transmissions += 1;
            entry.next_at = now.mono.plus_ms(entry.timeout_ms);
            entry.timeout_ms = entry.timeout_ms.saturating_mul(2);
        }
        // Not sent if the registration that asks for it is revoked in this round.
        self.held.push(Held {
            output: Output::Send(Send {
                src: o.src,
                dst: o.peer,
                bytes,
            }),
            confirms: Some(hoa),
        });
        self.held.push(Held {
            output: Output::Event(Event::Context(ContextEvent::RequestSent {
                hoa,
                peer: o.peer,
                seq: o.seq,
                retransmission,
            })),
            confirms: Some(hoa),
        });
    }

    /// Retransmissions and give-ups due at `now`.
    pub(super) fn context_timeout(&mut self, now: Now) {
        let due: Vec<Ipv6Addr> = self
            .context
            .outstanding
            .iter()
            .filter(|(_, o)| o.next_at <= now.mono)
            .map(|(hoa, _)| *hoa)
            .collect();
        for hoa in due {
            if !self.served_here(hoa) {
                // The terminal left (or was revoked) meanwhile: its context is moot.
                self.context.outstanding.remove(&hoa);
                continue;
            }
            let Some(o) = self.context.outstanding.get(&hoa) else {
                continue;
            };
            if o.transmissions >= MAX_TRANSMISSIONS {
                let peer = o.peer;
                self.context.outstanding.remove(&hoa);
                self.context_event(ContextEvent::GaveUp { hoa, peer });
            } else {
                self.transmit_request(hoa, now);
            }
        }
    }

    pub(super) fn context_deadline(&self) -> Option<Millis> {
        self.context.outstanding.values().map(|o| o.next_at).min()
    }

    /// Old side: answer a peer's request from the binding cache.
    fn on_request(&mut self, m: Received<'_>, req: ContextRequest, now: Now) {
        let Some(peer) = self.context.peer(m.src).cloned() else {
            return;
        };
        let lookup = |spi: u32| (spi == peer.spi).then_some((peer.algorithm, peer.key.as_slice()));
        if wire::verify(m.bytes, &m.src, &req.hoa, lookup).is_err() {
            self.limiter.note_failure(m.src, now.mono);
            return self.context_event(ContextEvent::Dropped {
                reason: "auth_failed",
                peer: m.src,
            });
        }
        let window = ms_to_ntp_units(self.context.config.replay_window_ms);
        let last = self.context.accepted_ts.get(&m.src).copied();
        let (status, context) = if replay::check(req.timestamp, now.wall_ntp, window, last).is_err()
        {
            (back_status::MIPV6_ID_MISMATCH, None)
        } else {
            self.context.accepted_ts.insert(m.src, req.timestamp);
            match self.terminal_context(req.hoa, now) {
                Some(c) => (back_status::ACCEPTED, Some(c)),
                None => (STATUS_UNKNOWN_TERMINAL, None),
            }
        };
        let correspondents = context.as_ref().map_or(0, |c| c.correspondents.len());
        let reply = ContextReply {
            status,
            sequence: req.sequence,
            hoa: req.hoa,
            context,
        };
        if status != back_status::ACCEPTED
            && !self
                .limiter
                .allow(ReplyKind::Authenticated, m.src, now.mono)
        {
            return self.hold(Output::Event(Event::ReplySuppressed { peer: m.src }));
        }
        match reply.emit_authenticated(&peer.credentials(), &m.src) {
            Ok(bytes) => {
                self.hold(Output::Send(Send {
                    src: m.dst,
                    dst: m.src,
                    bytes,
                }));
                self.context_event(ContextEvent::Served {
                    hoa: req.hoa,
                    peer: m.src,
                    status,
                    correspondents,
                });
            }
            Err(e) => self.hold(Output::Event(Event::Dropped {
                reason: "emit_failed",
                detail: e.to_string(),
            })),
        }
    }

    /// The context of `hoa` if it is registered here or in its forwarding window.
    fn terminal_context(&self, hoa: Ipv6Addr, now: Now) -> Option<TerminalContext> {
        let b = self.registrar.cache().get(&hoa)?;
        let mut list = self.correspondents_of(hoa, now);
        // The longest-lived bindings travel when not all fit.
        list.sort_by_key(|c| std::cmp::Reverse(c.lifetime_left_s));
        let truncated = list.len() > MAX_CORRESPONDENTS;
        list.truncate(MAX_CORRESPONDENTS);
        let mut flags = 0;
        if b.payload.forward_to.is_some() || b.state == BindingState::Lingering {
            flags |= context_flags::FORWARDING;
        }
        if truncated {
            flags |= context_flags::TRUNCATED;
        }
        let left_ms = b.expires_at_ms.saturating_sub(now.mono.0);
        Some(TerminalContext {
            flags,
            group: b.payload.group,
            lifetime_left_s: u32::try_from(left_ms / 1000).unwrap_or(u32::MAX),
            correspondents: list
                .into_iter()
                .map(|c| CorrespondentEntry {
                    address: c.addr,
                    lifetime_left_s: u16::try_from(c.lifetime_left_s).unwrap_or(u16::MAX),
                    sequence: c.seq,
                })
                .collect(),
        })
    }

    /// New side: a reply to one of our requests.
    fn on_reply(&mut self, m: Received<'_>, reply: ContextReply, now: Now) {
        let Some(o) = self
            .context
            .outstanding
            .get(&reply.hoa)
            .filter(|o| o.peer == m.src && o.seq == reply.sequence)
            .cloned()
        else {
            return self.context_event(ContextEvent::Dropped {
                reason: "unexpected_reply",
                peer: m.src,
            });
        };
        let Some(peer) = self.context.peer(m.src).cloned() else {
            return;
        };
        let lookup = |spi: u32| (spi == peer.spi).then_some((peer.algorithm, peer.key.as_slice()));
        if wire::verify(m.bytes, &o.src, &reply.hoa, lookup).is_err() {
            // A forged answer must not end the real exchange: the request stays outstanding.
            self.limiter.note_failure(m.src, now.mono);
            return self.context_event(ContextEvent::Dropped {
                reason: "auth_failed",
                peer: m.src,
            });
        }
        self.context.outstanding.remove(&reply.hoa);
        let hoa = reply.hoa;
        if reply.status != back_status::ACCEPTED {
            return self.context_event(ContextEvent::Refused {
                hoa,
                peer: m.src,
                status: reply.status,
            });
        }
        let Some(ctx) = reply.context else {
            return self.context_event(ContextEvent::Dropped {
                reason: "malformed",
                peer: m.src,
            });
        };
        if !self.served_here(hoa) {
            return self.context_event(ContextEvent::Dropped {
                reason: "terminal_gone",
                peer: m.src,
            });
        }
        let correspondents: Vec<CorrespondentContext> = ctx
            .correspondents
            .iter()
            .map(|c| CorrespondentContext {
                addr: c.address,
                lifetime_left_s: u32::from(c.lifetime_left_s),
                seq: c.sequence,
            })
            .collect();
        let rtt_ms = now.mono.0.saturating_sub(o.first_sent.0);
        let forwarding = ctx.flags & context_flags::FORWARDING != 0;
        let truncated = ctx.flags & context_flags::TRUNCATED != 0;
        // Keep only contexts of terminals still here: the map stays as small as the cache.
        let stale: Vec<Ipv6Addr> = self
            .context
            .received
            .keys()
            .filter(|h| !self.served_here(**h))
            .copied()
            .collect();
        for h in stale {
            self.context.received.remove(&h);
        }
        self.context.received.insert(
            hoa,
            ContextStatus {
                hoa,
                from: m.src,
                state: "received",
                group: Some(ctx.group),
                lifetime_left_s: Some(ctx.lifetime_left_s),
                forwarding,
                truncated,
                correspondents: correspondents.clone(),
                rtt_ms: Some(rtt_ms),
                transmissions: o.transmissions,
            },
        );
        self.context_event(ContextEvent::Received {
            hoa,
            peer: m.src,
            group: ctx.group,
            lifetime_left_s: ctx.lifetime_left_s,
            forwarding,
            truncated,
            correspondents: correspondents.clone(),
            rtt_ms,
        });
        self.bind_correspondents(hoa, correspondents, now);
    }

    /// Whether `hoa` is registered and served here (not only forwarded).
    fn served_here(&self, hoa: Ipv6Addr) -> bool {
        self.registrar
            .cache()
            .get(&hoa)
            .is_some_and(|b| b.state == BindingState::Active && b.payload.forward_to.is_none())
    }

    /// The correspondents bound for `hoa` (old side of a transfer), with what is left of their
    /// bindings at `now`.
    pub fn correspondents_of(&self, hoa: Ipv6Addr, now: Now) -> Vec<CorrespondentContext> {
        self.context
            .correspondents
            .get(&hoa)
            .into_iter()
            .flatten()
            .filter(|(_, ends, _)| *ends > now.mono)
            .map(|&(addr, ends, seq)| CorrespondentContext {
                addr,
                lifetime_left_s: u32::try_from((ends.0 - now.mono.0) / 1000).unwrap_or(u32::MAX),
                seq,
            })
            .collect()
    }

    /// Route optimisation's current bindings of `hoa` (an empty list forgets the terminal):
    /// what a peer asking for its context gets.
    pub fn set_correspondents(
        &mut self,
        hoa: Ipv6Addr,
        now: Now,
        list: impl IntoIterator<Item = CorrespondentContext>,
    ) {
        let list: Vec<_> = list
            .into_iter()
            .map(|c| {
                let ends = Millis(
                    now.mono
                        .0
                        .saturating_add(u64::from(c.lifetime_left_s) * 1000),
                );
                (c.addr, ends, c.seq)
            })
            .collect();
        if list.is_empty() {
            self.context.correspondents.remove(&hoa);
        } else {
            self.context.correspondents.insert(hoa, list);
        }
    }

    /// New side of a transfer: the shell hands these correspondents of `hoa` to route
    /// optimisation, which binds them at once.
    pub fn bind_correspondents(
        &mut self,
        hoa: Ipv6Addr,
        correspondents: Vec<CorrespondentContext>,
        _now: Now,
    ) {
        if !correspondents.is_empty() {
            self.context_event(ContextEvent::BindCorrespondents {
                hoa,
                correspondents,
            });
        }
    }

    fn context_event(&mut self, e: ContextEvent) {
        self.hold(Output::Event(Event::Context(e)));
    }

    /// Contexts requested or received for terminals registered here, for `mma status`.
    pub fn context_status(&self) -> Vec<ContextStatus> {
        let requested = self
            .context
            .outstanding
            .iter()
            .map(|(hoa, o)| ContextStatus {
                hoa: *hoa,
                from: o.peer,
                state: "requested",
                group: None,
                lifetime_left_s: None,
                forwarding: false,
                truncated: false,
                correspondents: Vec::new(),
                rtt_ms: None,
                transmissions: o.transmissions,
            });
        self.context
            .received
            .values()
            .filter(|c| self.served_here(c.hoa))
            .cloned()
            .chain(requested)
            .collect()
    }
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
