//! The Binding Update client: building and signing BUs, matching BAcks, RFC 6275 §11.8
//! retransmission, refresh before expiry, and per-peer sequence numbers and clock offsets.
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_wire::auth::{self, Algorithm, Credentials};
use mipcast_wire::mh::{bu_flags, BindingUpdate, Experimental, Message, MhRepr, MobilityOption};
use serde::Serialize;

/// RFC 6275 §13: InitialBindackTimeoutFirstReg.
pub const INITIAL_TIMEOUT_FIRST_MS: u64 = 1500;
/// RFC 6275 §12: INITIAL_BINDACK_TIMEOUT.
pub const INITIAL_TIMEOUT_MS: u64 = 1000;
/// RFC 6275 §12: MAX_BINDACK_TIMEOUT; when the timeout reaches it we give up.
pub const MAX_TIMEOUT_MS: u64 = 32_000;
/// After giving up, a fresh attempt this much later (a peer may come back).
pub const RETRY_AFTER_GIVE_UP_MS: u64 = 60_000;
/// Refresh a binding when this share of its granted lifetime has passed.
const REFRESH_PERCENT: u64 = 80;
/// Sequence/timestamp resynchronisations (135/144) allowed per attempt: a peer that keeps
/// rejecting our corrected value is broken, not out of sync.
const MAX_RESYNCS: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sa {
    pub spi: u32,
    pub algorithm: Algorithm,
    pub key: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    HomeAgent,
    Mma,
}

impl PeerKind {
    pub fn label(self) -> &'static str {
        match self {
            PeerKind::HomeAgent => "home_agent",
            PeerKind::Mma => "mma",
        }
    }
}

/// What one registration asks of its peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub kind: PeerKind,
    /// Lifetime in seconds; 0 deregisters.
    pub lifetime_s: u32,
    /// Alternate Care-of Address option (HA registration in a site: the MMA's assigned CoA).
    pub alt_coa: Option<Ipv6Addr>,
    /// Terminal group (MMA registration).
    pub group: Option<Ipv6Addr>,
    /// Forwarding request (deregistration from the previous MMA): new CoA and grace seconds.
    pub forward: Option<(Ipv6Addr, u32)>,
    /// The MMA we come from (registration with a new site's MMA after an inter-site move):
    /// the new MMA asks it for our context. Sent until the registration is accepted.
    pub previous_mma: Option<Ipv6Addr>,
}

impl Request {
    pub fn is_deregistration(&self) -> bool {
        self.lifetime_s == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A BU is outstanding.
    Waiting,
    /// Accepted; refreshed at `refresh_at`.
    Bound,
    /// Retransmissions exhausted; a new attempt starts at `deadline`.
    GaveUp,
}

#[derive(Clone, Debug, Serialize)]
pub struct Registration {
    pub peer: Ipv6Addr,
    pub request: Request,
    pub state: State,
    pub seq: u16,
    /// Source and authenticated care-of address of the last BU sent.
    pub src: Option<Ipv6Addr>,
    #[serde(skip)]
    pub timestamp: u64,
    pub timeout_ms: u64,
    #[serde(skip)]
    pub deadline: Millis,
    #[serde(skip)]
    pub started: Millis,
    /// While waiting for a refresh, the binding is still valid until this time.
    #[serde(skip)]
    pub bound_until: Option<Millis>,
    pub granted_s: u32,
    /// The care-of address an MMA assigned (Experimental AssignedCoa).
    pub assigned_coa: Option<Ipv6Addr>,
    resyncs: u8,
}

/// A BU ready for the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub peer: Ipv6Addr,
    pub src: Ipv6Addr,
    pub bytes: Vec<u8>,
    pub kind: PeerKind,
    pub seq: u16,
    pub lifetime_s: u32,
    pub retransmission: bool,
}

/// What a received BAck meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Accepted {
        peer: Ipv6Addr,
        kind: PeerKind,
        deregistration: bool,
        assigned_coa: Option<Ipv6Addr>,
        elapsed_ms: u64,
    },
    Resync {
        peer: Ipv6Addr,
        status: u8,
    },
    Rejected {
        peer: Ipv6Addr,
        kind: PeerKind,
        status: u8,
    },
    /// Not ours, stale, or unauthenticated: changes nothing.
    Ignored(&'static str),
}

/// Every registration of this node, keyed by peer address.
#[derive(Debug, Default)]
pub struct Client {
    pub regs: BTreeMap<Ipv6Addr, Registration>,
    /// Next sequence number per peer (RFC 6275 §11.8: increasing per destination).
    pub next_seq: BTreeMap<Ipv6Addr, u16>,
    /// Peer clock minus ours, in NTP units, learnt from status 144.
    offsets: BTreeMap<Ipv6Addr, i64>,
    last_timestamp: BTreeMap<Ipv6Addr, u64>,
}

/// Inputs to build and verify messages.
pub struct Ctx<'a> {
    pub hoa: Ipv6Addr,
    pub sa: &'a dyn Fn(PeerKind, Ipv6Addr) -> Option<Sa>,
}

impl Client {
    /// A client continuing the sequence numbers of a previous run.
    pub fn with_sequences(next_seq: BTreeMap<Ipv6Addr, u16>) -> Client {
        Client {
            next_seq,
            ..Client::default()
        }
    }

    /// Starts (or restarts) a registration with `peer`; returns the first BU.
    pub fn start(
        &mut self,
        peer: Ipv6Addr,
        request: Request,
        src: Option<Ipv6Addr>,
        now: Millis,
        wall_ntp: u64,
        ctx: &Ctx<'_>,
    ) -> Option<Outgoing> {
        let first = !self
            .regs
            .get(&peer)
            .is_some_and(|r| r.state == State::Bound || r.bound_until.is_some());
        let bound_until = self.regs.get(&peer).and_then(|r| r.bound_until);
        let reg = Registration {
            peer,
            request,
            state: State::Waiting,
            seq: 0,
            src: None,
            timestamp: 0,
            timeout_ms: if first {
                INITIAL_TIMEOUT_FIRST_MS
            } else {
                INITIAL_TIMEOUT_MS
            },
            deadline: now,
            started: now,
            bound_until,
            granted_s: 0,
            assigned_coa: None,
            resyncs: 0,
        };
        self.regs.insert(peer, reg);
        self.send(peer, src, now, wall_ntp, ctx, false)
    }

    /// Drops a registration without telling the peer (e.g. superseded).
    pub fn forget(&mut self, peer: Ipv6Addr) {
        self.regs.remove(&peer);
    }

    pub fn get(&self, peer: &Ipv6Addr) -> Option<&Registration> {
        self.regs.get(peer)
    }

    /// Builds and "sends" the BU for `peer` with a new sequence number and timestamp; arms
    /// the retransmission timer with the registration's current timeout.
    fn send(
        &mut self,
        peer: Ipv6Addr,
        src: Option<Ipv6Addr>,
        now: Millis,
        wall_ntp: u64,
        ctx: &Ctx<'_>,
        retransmission: bool,
    ) -> Option<Outgoing> {
        let seq = *self.next_seq.entry(peer).or_insert(1);
        let offset = self.offsets.get(&peer).copied().unwrap_or(0);
        let mut timestamp = wall_ntp.wrapping_add_signed(offset);
        if let Some(last) = self.last_timestamp.get(&peer) {
            // The peer accepts only timestamps newer than the last one it saw from us.
            if timestamp <= *last {
                timestamp = last.wrapping_add(1);
            }
        }
        let reg = self.regs.get_mut(&peer)?;
        reg.deadline = now + std::time::Duration::from_millis(reg.timeout_ms);
        let src = src?;
        let sa = (ctx.sa)(reg.request.kind, peer)?;
        let coa = reg.request.alt_coa.unwrap_or(src);
        let bytes = build_bu(ctx.hoa, seq, timestamp, &reg.request, &sa, coa).ok()?;
        self.next_seq.insert(peer, seq.wrapping_add(1));
        self.last_timestamp.insert(peer, timestamp);
        reg.seq = seq;
        reg.timestamp = timestamp;
        reg.src = Some(src);
        Some(Outgoing {
            peer,
            src,
            bytes,
            kind: reg.request.kind,
            seq,
            lifetime_s: reg.request.lifetime_s,
            retransmission,
        })
    }

    /// Sends a refresh now (Binding Refresh Request): only for a binding we hold.
    pub fn refresh_now(
        &mut self,
        peer: Ipv6Addr,
        src: Option<Ipv6Addr>,
        now: Millis,
        wall_ntp: u64,
        ctx: &Ctx<'_>,
    ) -> Option<Outgoing> {
        let reg = self.regs.get_mut(&peer)?;
        if reg.state != State::Bound || reg.request.is_deregistration() {
            return None;
        }
        reg.state = State::Waiting;
        reg.timeout_ms = INITIAL_TIMEOUT_MS;
        reg.started = now;
        reg.resyncs = 0;
        self.send(peer, src, now, wall_ntp, ctx, false)
    }

    /// Handles a Binding Acknowledgement from `src`.
    pub fn on_back(
        &mut self,
        src: Ipv6Addr,
        bytes: &[u8],
        repr: &MhRepr,
        now: Millis,
        wall_ntp: u64,
        ctx: &Ctx<'_>,
    ) -> AckOutcome {
        let Message::BindingAck(ba) = repr.message else {
            return AckOutcome::Ignored("not a binding acknowledgement");
        };
        let Some(reg) = self.regs.get_mut(&src) else {
            return AckOutcome::Ignored("no registration with this peer");
        };
        if reg.state != State::Waiting {
            return AckOutcome::Ignored("no binding update outstanding");
        }
        let (Some(bu_src), Some(sa)) = (reg.src, (ctx.sa)(reg.request.kind, src)) else {
            return AckOutcome::Ignored("no binding update outstanding");
        };
        let coa = reg.request.alt_coa.unwrap_or(bu_src);
        let lookup = |spi: u32| (spi == sa.spi).then_some((sa.algorithm, sa.key.as_slice()));
        if auth::verify(bytes, &coa, &ctx.hoa, lookup).is_err() {
            // An unsigned (or forged) answer must not end or redirect a registration;
            // retransmission carries on.
            return AckOutcome::Ignored("unauthenticated binding acknowledgement");
        }
        let kind = reg.request.kind;
        match ba.status {
            status if status < 128 => {
                if ba.sequence != reg.seq {
                    return AckOutcome::Ignored("sequence number of an earlier binding update");
                }
                let elapsed_ms = now.0.saturating_sub(reg.started.0);
                let deregistration = reg.request.is_deregistration() || ba.lifetime == 0;
                if deregistration {
                    self.regs.remove(&src);
                    return AckOutcome::Accepted {
                        peer: src,
                        kind,
                        deregistration: true,
                        assigned_coa: None,
                        elapsed_ms,
                    };
                }
                let granted_s = u32::from(ba.lifetime) * 4;
                let advice_s = repr.options.iter().find_map(|o| match o {
                    MobilityOption::BindingRefreshAdvice { interval } => {
                        Some(u64::from(*interval) * 4)
                    }
                    _ => None,
                });
                let mut refresh_ms = u64::from(granted_s) * 10 * REFRESH_PERCENT;
                if let Some(a) = advice_s.filter(|a| *a > 0) {
                    refresh_ms = refresh_ms.min(a * 1000);
                }
                let assigned = repr.experimental().find_map(|e| match e {
                    Experimental::AssignedCoa(a) => Some(*a),
                    _ => None,
                });
                reg.state = State::Bound;
                reg.granted_s = granted_s;
                reg.bound_until = Some(now + std::time::Duration::from_secs(u64::from(granted_s)));
                reg.deadline = now + std::time::Duration::from_millis(refresh_ms.max(1000));
                reg.assigned_coa = assigned.or(reg.assigned_coa);
                // The move is done: refreshes do not name the previous MMA again.
                reg.request.previous_mma = None;
                AckOutcome::Accepted {
                    peer: src,
                    kind,
                    deregistration: false,
                    assigned_coa: reg.assigned_coa,
                    elapsed_ms,
                }
            }
            status @ (mipcast_wire::mh::back_status::SEQUENCE_OUT_OF_WINDOW
            | mipcast_wire::mh::back_status::MIPV6_ID_MISMATCH) => {
                // A late or duplicated copy of an earlier BU may be answered while a newer one
                // is outstanding; that answer says nothing about the newer one. A 144 echoes
                // its BU's sequence number; a 135 carries the last number the peer accepted,
                // which the outstanding BU already passes if the 135 answered an older one.
                let stale = if status == mipcast_wire::mh::back_status::SEQUENCE_OUT_OF_WINDOW {
                    seq_newer(reg.seq, ba.sequence)
                } else {
                    ba.sequence != reg.seq
                };
                if stale {
                    return AckOutcome::Ignored("resynchronisation for an earlier binding update");
                }
                if reg.resyncs >= MAX_RESYNCS {
                    self.regs.remove(&src);
                    return AckOutcome::Rejected {
                        peer: src,
                        kind,
                        status,
                    };
                }
                reg.resyncs += 1;
                if status == mipcast_wire::mh::back_status::SEQUENCE_OUT_OF_WINDOW {
                    // The BAck carries the last sequence number the peer accepted.
                    self.next_seq.insert(src, ba.sequence.wrapping_add(1));
                } else if let Some(their) = repr.replay_timestamp() {
                    // RFC 4285 §6: the BAck carries the peer's clock; our next timestamp
                    // follows it.
                    let offset = their.wrapping_sub(wall_ntp) as i64;
                    self.offsets.insert(src, offset);
                    self.last_timestamp.remove(&src);
                }
                AckOutcome::Resync { peer: src, status }
            }
            status => {
                self.regs.remove(&src);
                AckOutcome::Rejected {
                    peer: src,
                    kind,
                    status,
                }
            }
        }
    }

    /// Resends after a resynchronisation, immediately, with the corrected numbers.
    pub fn resend(
        &mut self,
        peer: Ipv6Addr,
        src: Option<Ipv6Addr>,
        now: Millis,
        wall_ntp: u64,
        ctx: &Ctx<'_>,
    ) -> Option<Outgoing> {
        self.send(peer, src, now, wall_ntp, ctx, true)
    }

    /// The earliest timer of any registration.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.regs.values().map(|r| r.deadline).min()
    }

    /// Timer work: retransmissions, give-ups, refreshes, expiries. `src` gives the source to
    /// use for a peer kind right now.
    pub fn poll(
        &mut self,
        now: Millis,
        wall_ntp: u64,
        src: &dyn Fn(PeerKind, Ipv6Addr) -> Option<Ipv6Addr>,
        ctx: &Ctx<'_>,
    ) -> (Vec<Outgoing>, Vec<TimerEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let due: Vec<Ipv6Addr> = self
            .regs
            .values()
            .filter(|r| r.deadline <= now)
            .map(|r| r.peer)
            .collect();
        for peer in due {
            let Some(reg) = self.regs.get_mut(&peer) else {
                continue;
            };
            if reg.bound_until.is_some_and(|u| u <= now) {
                reg.bound_until = None;
                events.push(TimerEvent::Expired {
                    peer,
                    kind: reg.request.kind,
                });
            }
            match reg.state {
                State::Waiting => {
                    if reg.timeout_ms >= MAX_TIMEOUT_MS {
                        reg.state = State::GaveUp;
                        reg.deadline =
                            now + std::time::Duration::from_millis(RETRY_AFTER_GIVE_UP_MS);
                        events.push(TimerEvent::GaveUp {
                            peer,
                            kind: reg.request.kind,
                        });
                        if reg.request.is_deregistration() {
                            self.regs.remove(&peer);
                        }
                        continue;
                    }
                    reg.timeout_ms = (reg.timeout_ms * 2).min(MAX_TIMEOUT_MS);
                    let kind = reg.request.kind;
                    out.extend(self.send(peer, src(kind, peer), now, wall_ntp, ctx, true));
                }
                State::Bound | State::GaveUp => {
                    reg.state = State::Waiting;
                    reg.timeout_ms = if reg.bound_until.is_some() {
                        INITIAL_TIMEOUT_MS
                    } else {
                        INITIAL_TIMEOUT_FIRST_MS
                    };
                    reg.started = now;
                    reg.resyncs = 0;
                    let kind = reg.request.kind;
                    out.extend(self.send(peer, src(kind, peer), now, wall_ntp, ctx, false));
                }
            }
        }
        (out, events)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerEvent {
    GaveUp { peer: Ipv6Addr, kind: PeerKind },
    Expired { peer: Ipv6Addr, kind: PeerKind },
}

/// Room for the authentication option (type, length, subtype, SPI, up to 16 bytes of
/// authenticator) and its alignment.
const AUTH_ROOM: usize = 2 + 1 + 4 + 16 + 8;

/// A signed Binding Update. MMA registrations carry the M flag, home registrations H; all ask
/// for an acknowledgement.
pub fn build_bu(
    hoa: Ipv6Addr,
    seq: u16,
    timestamp: u64,
    req: &Request,
    sa: &Sa,
    coa: Ipv6Addr,
) -> mipcast_wire::Result<Vec<u8>> {
    let mut flags = bu_flags::ACK;
    flags |= match req.kind {
        PeerKind::HomeAgent => bu_flags::HOME,
        PeerKind::Mma => bu_flags::MAP,
    };
    let lifetime = u16::try_from(req.lifetime_s.div_ceil(4)).unwrap_or(u16::MAX);
    let mut options = vec![MobilityOption::HomeNetworkPrefix {
        prefix_len: 128,
        prefix: hoa,
    }];
    if let Some(a) = req.alt_coa {
        options.push(MobilityOption::AlternateCareOf(a));
    }
    if let Some(g) = req.group {
        options.push(MobilityOption::Experimental(Experimental::TerminalGroup(g)));
    }
    if let Some((new_coa, grace_secs)) = req.forward {
        options.push(MobilityOption::Experimental(
            Experimental::ForwardingRequest {
                new_coa,
                grace_secs,
            },
        ));
    }
    if let Some(previous) = req.previous_mma {
        options.push(MobilityOption::Experimental(Experimental::PreviousMma(
            previous,
        )));
    }
    options.push(MobilityOption::ReplayProtection { timestamp });
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence: seq,
            flags,
            lifetime,
        }),
        options,
    };
    let mut buf = vec![0; repr.buffer_len() + AUTH_ROOM];
    let creds = Credentials {
        spi: sa.spi,
        algorithm: sa.algorithm,
        key: &sa.key,
    };
    let n = repr.emit_authenticated(&mut buf, &creds, &coa, &hoa)?;
    buf.truncate(n);
    Ok(buf)
}

/// `a` is newer than `b` in RFC 6275's modulo-2^16 sequence number space (§9.5.1).
fn seq_newer(a: u16, b: u16) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < 0x8000
}
