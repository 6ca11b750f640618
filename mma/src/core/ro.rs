//! Route optimisation, the MMA's side (issue 12 §2 and §4): Binding Updates to correspondents'
//! agents for the terminals served here, and the reverse routes that send the terminal's
//! traffic straight to them. A pure state machine on the cores' contract ([`Machine`]).
//!
//! Inputs: a *sighting* of a (correspondent, home address) pair in traffic tunnelled to a
//! terminal (the kernel reports the first packet of each pair, rate-limited, so a flow is
//! seen again every few seconds while it lasts); the agent's Binding Acknowledgements; the
//! terminal's arrival and final departure (from the MMA core's events).
//!
//! Per pair: a BU (HoA in the Home Network Prefix option, care-of address = the MMA = the
//! packet's source, no H flag, signed with the MMA's association for that correspondent,
//! Replay Protection) is sent and retransmitted after 1, 2, 4 ... s up to `max_attempts`. A
//! signed BAck 0 binds the pair: the reverse route `<CN>/128 from <HoA>/128` in the uplink
//! table tunnels the terminal's packets to the agent. The binding is refreshed (new BU) at
//! `refresh_percent` of its lifetime if the pair was seen since the last BU, otherwise it is
//! let expire (route removed). No answer, a refusal, or a Binding Error puts the pair on
//! hold for `hold_s`, doubled at each further failure up to `max_hold_s`: a correspondent
//! without an agent gets `max_attempts` BUs, then a few per hour at most. A BAck 135 names the
//! agent's last sequence number: the BU is sent again once with the next one.
//!
//! Correspondents with no configured association are never sent anything (a BU cannot be
//! authenticated without one). When a terminal leaves for good (home, or grace ended) every
//! bound correspondent gets a deregistration (lifetime 0) and the reverse routes go. When it
//! moves to another MMA the reverse routes go at once and its pairs are no longer refreshed or
//! retried (the other MMA binds the correspondents from the context); nothing is deregistered.
//!
//! For context transfer between MMAs (§3): [`Ro::correspondents_of`] lists a terminal's
//! bindings; [`Ro::bind_now`] binds a correspondent received from the old MMA at once,
//! continuing its sequence numbers.
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, Machine, Millis, Now, Outcome};
use mipcast_wire::auth::{self, Algorithm, Credentials};
use mipcast_wire::mh::{bu_flags, BindingUpdate, Message, MhRepr, MobilityOption};
use mipcast_wire::prefix::prefix_contains;
use serde::Serialize;

/// The MMA's association with one correspondent (or a prefix of them).
#[derive(Clone, PartialEq, Eq)]
pub struct CorrespondentSa {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// Where BUs go and tunnels end; None: the correspondent itself runs the agent.
    pub agent: Option<Ipv6Addr>,
    pub spi: u32,
    pub algorithm: Algorithm,
    pub key: Vec<u8>,
}

// Keys never reach logs.
impl std::fmt::Debug for CorrespondentSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrespondentSa")
            .field("prefix", &self.prefix)
            .field("prefix_len", &self.prefix_len)
            .field("agent", &self.agent)
            .field("spi", &self.spi)
            .finish_non_exhaustive()
    }
}

/// Settings; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoConfig {
    /// The MMA's address: the BUs' source and care-of address.
    pub mma: Ipv6Addr,
    pub correspondents: Vec<CorrespondentSa>,
    /// Lifetime asked for, seconds (a multiple of 4).
    pub lifetime_s: u32,
    /// Refresh at this share of the granted lifetime, if the flow was seen since.
    pub refresh_percent: u8,
    /// BUs per attempt series before the correspondent is put on hold.
    pub max_attempts: u8,
    /// First retransmission timeout, doubled per attempt.
    pub retransmit_ms: u64,
    /// First hold after a failure, doubled per further failure up to `max_hold_s`.
    pub hold_s: u32,
    pub max_hold_s: u32,
    /// The MMA's uplink table and WAN interface (the reverse routes).
    pub uplink_table: u32,
    pub wan_ifindex: u32,
}

/// What goes into [`Ro`].
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The kernel saw `correspondent` send to `hoa` through the home agent's tunnel.
    Sighting {
        correspondent: Ipv6Addr,
        hoa: Ipv6Addr,
    },
    /// A Mobility Header message from `src` (a BAck or Binding Error from an agent).
    Mobility { src: Ipv6Addr, bytes: &'a [u8] },
    /// The terminal is served here (registered).
    TerminalUp { hoa: Ipv6Addr },
    /// The terminal left for good (returned home, or its grace ended): deregister.
    TerminalGone { hoa: Ipv6Addr },
    /// The terminal moved to another MMA (forwarding started there): its reverse routes go
    /// and its pairs are neither refreshed nor retried (the next MMA binds the correspondents
    /// from the context it got here); bound pairs stay listed for context transfer until they
    /// expire. No deregistration: the binding is the next MMA's now.
    TerminalLeft { hoa: Ipv6Addr },
}

/// A BU to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Send {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub bytes: Vec<u8>,
}

/// A change of a reverse route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    Add(KObject),
    Delete(KObject),
}

/// What happened, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    BindingSent {
        hoa: Ipv6Addr,
        correspondent: Ipv6Addr,
        sequence: u16,
        lifetime_s: u32,
        attempt: u8,
    },
    Bound {
        hoa: Ipv6Addr,
        correspondent: Ipv6Addr,
        lifetime_s: u32,
    },
    /// No agent answered, or it refused (`status`): on hold for `hold_s`.
    OnHold {
        hoa: Ipv6Addr,
        correspondent: Ipv6Addr,
        status: Option<u8>,
        hold_s: u32,
    },
    /// The binding ended (`reason`: expired, deregistered).
    Unbound {
        hoa: Ipv6Addr,
        correspondent: Ipv6Addr,
        reason: &'static str,
    },
    /// A message was ignored (`reason`: a stable metrics label).
    Ignored {
        peer: Ipv6Addr,
        reason: &'static str,
    },
    KernelRefused {
        change: Change,
        reason: String,
    },
}

pub type Output = mipcast_proto::Output<Send, Change, Event>;

/// One correspondent binding of a terminal, as context transfer carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CorrespondentBinding {
    pub correspondent: Ipv6Addr,
    /// Seconds left of the binding at the correspondent.
    pub remaining_s: u32,
    /// The last sequence number the correspondent accepted.
    pub sequence: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// BU `attempt` out, next try (or hold) at `retry_at`.
    Binding {
        attempt: u8,
        retry_at: Millis,
        /// A 135 already made us resynchronise once in this series.
        resynced: bool,
    },
    Bound {
        expires_at: Millis,
        refresh_at: Millis,
        /// Sent a refresh BU whose BAck is outstanding.
        refreshing: bool,
    },
    /// Nothing sent until `until`.
    Hold { until: Millis },
}

#[derive(Debug, Clone)]
struct Pair {
    agent: Ipv6Addr,
    /// Index into the configuration's correspondents.
    sa: usize,
    /// The sequence number of the last BU sent.
    sequence: u16,
    state: State,
    /// Seen since the last BU (refresh only then).
    seen: bool,
    /// The current hold, for doubling.
    hold_s: u32,
    /// Granted lifetime of the binding (seconds), for context transfer.
    lifetime_s: u32,
    /// Reverse route installed.
    routed: bool,
}

/// The route-optimisation state of the MMA; see the module documentation.
#[derive(Debug)]
pub struct Ro {
    config: RoConfig,
    /// Terminals served here.
    terminals: std::collections::BTreeSet<Ipv6Addr>,
    /// (home address, correspondent) -> pair.
    pairs: BTreeMap<(Ipv6Addr, Ipv6Addr), Pair>,
    queue: VecDeque<Output>,
    /// First sequence number of new pairs (varied so a restarted MMA does not repeat the
    /// numbers its previous run used; a 135 resynchronises anyway).
    next_sequence: u16,
}

/// Milliseconds in a second.
const MS: u64 = 1000;

impl Ro {
    pub fn new(config: RoConfig, first_sequence: u16) -> Ro {
        Ro {
            config,
            terminals: Default::default(),
            pairs: BTreeMap::new(),
            queue: VecDeque::new(),
            next_sequence: first_sequence,
        }
    }

    /// Replaces the settings (SIGHUP); pairs whose correspondent lost its association are
    /// dropped at their next step.
    pub fn reload(&mut self, config: RoConfig) {
        self.config = config;
    }

    fn sa_for(&self, correspondent: Ipv6Addr) -> Option<usize> {
        self.config
            .correspondents
            .iter()
            .position(|s| prefix_contains(s.prefix, s.prefix_len, correspondent))
    }

    /// The correspondents bound (or being bound) for `hoa`, for context transfer.
    pub fn correspondents_of(
        &self,
        hoa: Ipv6Addr,
        now: Now,
    ) -> impl Iterator<Item = CorrespondentBinding> + '_ {
        self.pairs
            .range((hoa, Ipv6Addr::UNSPECIFIED)..=(hoa, Ipv6Addr::from(u128::MAX)))
            .filter_map(move |(&(_, cn), p)| match p.state {
                State::Bound { expires_at, .. } => Some(CorrespondentBinding {
                    correspondent: cn,
                    remaining_s: u32::try_from(expires_at.0.saturating_sub(now.mono.0) / MS)
                        .unwrap_or(u32::MAX),
                    sequence: p.sequence,
                }),
                _ => None,
            })
    }

    /// Binds `binding.correspondent` for `hoa` now (context transfer from the old MMA),
    /// continuing the old MMA's sequence numbers; the terminal counts as served here.
    pub fn bind_now(&mut self, now: Now, hoa: Ipv6Addr, binding: CorrespondentBinding) {
        self.terminals.insert(hoa);
        let Some(sa) = self.sa_for(binding.correspondent) else {
            self.queue.push_back(Output::Event(Event::Ignored {
                peer: binding.correspondent,
                reason: "no_association",
            }));
            return;
        };
        let agent = self.agent(sa, binding.correspondent);
        let pair = self
            .pairs
            .entry((hoa, binding.correspondent))
            .or_insert(Pair {
                agent,
                sa,
                sequence: binding.sequence,
                state: State::Hold { until: now.mono },
                seen: true,
                hold_s: 0,
                lifetime_s: 0,
                routed: false,
            });
        pair.sequence = pair.sequence.max(binding.sequence);
        self.start(now, hoa, binding.correspondent);
    }

    fn agent(&self, sa: usize, correspondent: Ipv6Addr) -> Ipv6Addr {
        self.config
            .correspondents
            .get(sa)
            .and_then(|s| s.agent)
            .unwrap_or(correspondent)
    }

    /// Starts an attempt series for a pair: BU 1.
    fn start(&mut self, now: Now, hoa: Ipv6Addr, cn: Ipv6Addr) {
        let retransmit = self.config.retransmit_ms;
        if let Some(p) = self.pairs.get_mut(&(hoa, cn)) {
            p.state = State::Binding {
                attempt: 1,
                retry_at: now.mono.plus_ms(retransmit),
                resynced: false,
            };
        }
        self.send_bu(now, hoa, cn, self.config.lifetime_s, 1);
    }

    /// Sends a BU for the pair with the next sequence number.
    fn send_bu(&mut self, now: Now, hoa: Ipv6Addr, cn: Ipv6Addr, lifetime_s: u32, attempt: u8) {
        let Some(p) = self.pairs.get_mut(&(hoa, cn)) else {
            return;
        };
        p.sequence = p.sequence.wrapping_add(1);
        p.seen = false;
        let (sequence, agent, sa) = (p.sequence, p.agent, p.sa);
        let Some(sa) = self.config.correspondents.get(sa) else {
            return;
        };
        match build_bu(self.config.mma, hoa, sequence, lifetime_s, now.wall_ntp, sa) {
            Some(bytes) => {
                self.queue.push_back(Output::Send(Send {
                    src: self.config.mma,
                    dst: agent,
                    bytes,
                }));
                self.queue.push_back(Output::Event(Event::BindingSent {
                    hoa,
                    correspondent: cn,
                    sequence,
                    lifetime_s,
                    attempt,
                }));
            }
            None => self.queue.push_back(Output::Event(Event::Ignored {
                peer: agent,
                reason: "emit_failed",
            })),
        }
    }

    fn reverse_route(&self, hoa: Ipv6Addr, cn: Ipv6Addr, agent: Ipv6Addr) -> KObject {
        KObject::EncapRoute {
            dst: Ipv6Network::from(cn),
            src: Some(Ipv6Network::from(hoa)),
            tunnel_dst: agent,
            oif: self.config.wan_ifindex,
            table: self.config.uplink_table,
        }
    }

    fn unroute(&mut self, hoa: Ipv6Addr, cn: Ipv6Addr) {
        let Some(p) = self.pairs.get_mut(&(hoa, cn)) else {
            return;
        };
        if std::mem::take(&mut p.routed) {
            let agent = p.agent;
            let route = self.reverse_route(hoa, cn, agent);
            self.queue.push_back(Output::Kernel(Change::Delete(route)));
        }
    }

    fn hold(&mut self, now: Now, hoa: Ipv6Addr, cn: Ipv6Addr, status: Option<u8>) {
        self.unroute(hoa, cn);
        let (first, max) = (self.config.hold_s, self.config.max_hold_s);
        let Some(p) = self.pairs.get_mut(&(hoa, cn)) else {
            return;
        };
        p.hold_s = if p.hold_s == 0 {
            first
        } else {
            p.hold_s.saturating_mul(2).min(max)
        };
        p.state = State::Hold {
            until: now.mono.plus_ms(u64::from(p.hold_s) * MS),
        };
        let hold_s = p.hold_s;
        self.queue.push_back(Output::Event(Event::OnHold {
            hoa,
            correspondent: cn,
            status,
            hold_s,
        }));
    }

    fn on_sighting(&mut self, now: Now, cn: Ipv6Addr, hoa: Ipv6Addr) {
        if !self.terminals.contains(&hoa) {
            return;
        }
        if let Some(p) = self.pairs.get_mut(&(hoa, cn)) {
            p.seen = true;
            if matches!(p.state, State::Hold { until } if until <= now.mono) {
                self.start(now, hoa, cn);
            }
            return;
        }
        let Some(sa) = self.sa_for(cn) else {
            self.queue.push_back(Output::Event(Event::Ignored {
                peer: cn,
                reason: "no_association",
            }));
            return;
        };
        let agent = self.agent(sa, cn);
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.pairs.insert(
            (hoa, cn),
            Pair {
                agent,
                sa,
                sequence,
                state: State::Hold { until: now.mono },
                seen: true,
                hold_s: 0,
                lifetime_s: 0,
                routed: false,
            },
        );
        self.start(now, hoa, cn);
    }

    /// The pair a BAck from `src` answers: the one toward that agent whose BU had this
    /// sequence number and whose association verifies the authenticator (`Ok`), or, for an
    /// unsigned reply, the pair matched by sequence alone (`Err`).
    fn match_ack(
        &self,
        src: Ipv6Addr,
        bytes: &[u8],
        sequence: u16,
    ) -> Option<((Ipv6Addr, Ipv6Addr), bool)> {
        let mut unsigned = None;
        for (&key, p) in &self.pairs {
            if p.agent != src || !matches!(p.state, State::Binding { .. } | State::Bound { .. }) {
                continue;
            }
            let Some(sa) = self.config.correspondents.get(p.sa) else {
                continue;
            };
            let lookup = |spi| (spi == sa.spi).then_some((sa.algorithm, sa.key.as_slice()));
            match auth::verify(bytes, &self.config.mma, &key.0, lookup) {
                Ok(_) => return Some((key, true)),
                Err(auth::AuthError::Missing) if p.sequence == sequence => {
                    unsigned.get_or_insert((key, false));
                }
                Err(_) => {}
            }
        }
        unsigned
    }

    fn on_mobility(&mut self, now: Now, src: Ipv6Addr, bytes: &[u8]) {
        let ignored = |reason| Output::Event(Event::Ignored { peer: src, reason });
        let Ok(repr) = MhRepr::parse(bytes) else {
            self.queue.push_back(ignored("malformed"));
            return;
        };
        let ack = match repr.message {
            Message::BindingAck(ack) => ack,
            // An agent that does not know the message: no route optimisation with it.
            Message::BindingError(_) => {
                let keys: Vec<_> = self
                    .pairs
                    .iter()
                    .filter(|(_, p)| p.agent == src && matches!(p.state, State::Binding { .. }))
                    .map(|(k, _)| *k)
                    .collect();
                if keys.is_empty() {
                    self.queue.push_back(ignored("unexpected_binding_error"));
                }
                for (hoa, cn) in keys {
                    self.hold(now, hoa, cn, None);
                }
                return;
            }
            // Refreshes follow the flow's sightings, not the agent's requests.
            Message::BindingRefreshRequest => {
                self.queue.push_back(ignored("refresh_request"));
                return;
            }
            _ => {
                self.queue.push_back(ignored("not_binding_ack"));
                return;
            }
        };
        let Some(((hoa, cn), signed)) = self.match_ack(src, bytes, ack.sequence) else {
            self.queue.push_back(ignored("unmatched_ack"));
            return;
        };
        // An unsigned reply can only be a refusal of a BU the agent could not verify; an
        // unsigned acceptance is a forgery.
        if !signed && ack.status < 128 {
            self.queue.push_back(ignored("unsigned_ack"));
            return;
        }
        let Some(p) = self.pairs.get(&(hoa, cn)).cloned() else {
            return;
        };
        match ack.status {
            0..=127 if ack.sequence == p.sequence => {
                let lifetime_s = u32::from(ack.lifetime) * 4;
                if lifetime_s == 0 {
                    // Our deregistration was acknowledged; the pair is already gone.
                    return;
                }
                let refresh_ms =
                    u64::from(lifetime_s) * MS * u64::from(self.config.refresh_percent) / 100;
                let route = self.reverse_route(hoa, cn, p.agent);
                if let Some(pm) = self.pairs.get_mut(&(hoa, cn)) {
                    pm.state = State::Bound {
                        expires_at: now.mono.plus_ms(u64::from(lifetime_s) * MS),
                        refresh_at: now.mono.plus_ms(refresh_ms),
                        refreshing: false,
                    };
                    pm.hold_s = 0;
                    pm.lifetime_s = lifetime_s;
                    // (A late acknowledgement for a terminal that left routes nothing.)
                    if self.terminals.contains(&hoa) && !std::mem::replace(&mut pm.routed, true) {
                        self.queue.push_back(Output::Kernel(Change::Add(route)));
                    }
                }
                if !matches!(p.state, State::Bound { .. }) {
                    self.queue.push_back(Output::Event(Event::Bound {
                        hoa,
                        correspondent: cn,
                        lifetime_s,
                    }));
                }
            }
            0..=127 => self.queue.push_back(ignored("stale_ack")),
            // The agent holds a newer sequence number (another MMA bound it): continue after
            // it, once per series.
            135 if signed => {
                let resync = matches!(
                    p.state,
                    State::Binding {
                        resynced: false,
                        ..
                    }
                );
                if resync {
                    if let Some(pm) = self.pairs.get_mut(&(hoa, cn)) {
                        pm.sequence = ack.sequence;
                        pm.state = State::Binding {
                            attempt: 1,
                            retry_at: now.mono.plus_ms(self.config.retransmit_ms),
                            resynced: true,
                        };
                    }
                    self.send_bu(now, hoa, cn, self.config.lifetime_s, 1);
                } else {
                    self.hold(now, hoa, cn, Some(ack.status));
                }
            }
            status => self.hold(now, hoa, cn, Some(status)),
        }
    }

    fn on_terminal_left(&mut self, now: Now, hoa: Ipv6Addr) {
        self.terminals.remove(&hoa);
        let keys: Vec<_> = self
            .pairs
            .range((hoa, Ipv6Addr::UNSPECIFIED)..=(hoa, Ipv6Addr::from(u128::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for (hoa, cn) in keys {
            // A reverse route left here would tunnel the terminal's traffic straight to the
            // correspondent should it come back, and the correspondent, bound to the next MMA
            // by then, drops it until this MMA has bound it again.
            self.unroute(hoa, cn);
            if let Some(p) = self.pairs.get_mut(&(hoa, cn)) {
                p.seen = false;
                if matches!(p.state, State::Binding { .. }) {
                    p.state = State::Hold { until: now.mono };
                }
            }
        }
    }

    fn on_terminal_gone(&mut self, now: Now, hoa: Ipv6Addr) {
        self.terminals.remove(&hoa);
        let keys: Vec<_> = self
            .pairs
            .range((hoa, Ipv6Addr::UNSPECIFIED)..=(hoa, Ipv6Addr::from(u128::MAX)))
            .map(|(k, p)| (*k, matches!(p.state, State::Bound { .. })))
            .collect();
        for ((hoa, cn), bound) in keys {
            self.unroute(hoa, cn);
            if bound {
                // One deregistration, not retransmitted: if it is lost the binding expires at
                // the correspondent by itself, and traffic to the home address is then routed
                // normally again.
                self.send_bu(now, hoa, cn, 0, 1);
                self.queue.push_back(Output::Event(Event::Unbound {
                    hoa,
                    correspondent: cn,
                    reason: "deregistered",
                }));
            }
            self.pairs.remove(&(hoa, cn));
        }
    }

    fn on_timers(&mut self, now: Now) {
        let keys: Vec<_> = self.pairs.keys().copied().collect();
        for (hoa, cn) in keys {
            let Some(p) = self.pairs.get(&(hoa, cn)).cloned() else {
                continue;
            };
            if self.sa_for(cn) != Some(p.sa) {
                // The association was removed or changed by a reload.
                self.unroute(hoa, cn);
                self.pairs.remove(&(hoa, cn));
                continue;
            }
            match p.state {
                State::Binding {
                    attempt, retry_at, ..
                } if retry_at <= now.mono => {
                    if attempt >= self.config.max_attempts {
                        self.hold(now, hoa, cn, None);
                    } else {
                        let next = attempt + 1;
                        let backoff = self.config.retransmit_ms << u32::from(attempt.min(16));
                        if let Some(pm) = self.pairs.get_mut(&(hoa, cn)) {
                            if let State::Binding {
                                attempt, retry_at, ..
                            } = &mut pm.state
                            {
                                *attempt = next;
                                *retry_at = now.mono.plus_ms(backoff);
                            }
                        }
                        self.send_bu(now, hoa, cn, self.config.lifetime_s, next);
                    }
                }
                State::Bound { expires_at, .. } if expires_at <= now.mono => {
                    self.unroute(hoa, cn);
                    self.pairs.remove(&(hoa, cn));
                    self.queue.push_back(Output::Event(Event::Unbound {
                        hoa,
                        correspondent: cn,
                        reason: "expired",
                    }));
                }
                State::Bound {
                    refresh_at,
                    refreshing: false,
                    expires_at,
                } if refresh_at <= now.mono && p.seen => {
                    if let Some(pm) = self.pairs.get_mut(&(hoa, cn)) {
                        pm.state = State::Bound {
                            expires_at,
                            refresh_at,
                            refreshing: true,
                        };
                    }
                    self.send_bu(now, hoa, cn, self.config.lifetime_s, 1);
                }
                // Hold over and the flow seen meanwhile: a new series, whose failure doubles
                // the hold. An idle pair stays on hold (its hold remembered) until a sighting
                // or the terminal's departure.
                State::Hold { until } if until <= now.mono && p.seen => {
                    self.start(now, hoa, cn);
                }
                _ => {}
            }
        }
    }

    /// Number of pairs in each state (bound, binding, on hold), for status and gauges.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.pairs
            .values()
            .fold((0, 0, 0), |(b, p, h), pair| match pair.state {
                State::Bound { .. } => (b + 1, p, h),
                State::Binding { .. } => (b, p + 1, h),
                State::Hold { .. } => (b, p, h + 1),
            })
    }
}

/// The BU the MMA sends for `hoa`: A flag, no H; HNP, Replay Protection, authentication.
fn build_bu(
    mma: Ipv6Addr,
    hoa: Ipv6Addr,
    sequence: u16,
    lifetime_s: u32,
    wall_ntp: u64,
    sa: &CorrespondentSa,
) -> Option<Vec<u8>> {
    let repr = MhRepr {
        message: Message::BindingUpdate(BindingUpdate {
            sequence,
            flags: bu_flags::ACK,
            lifetime: u16::try_from(lifetime_s / 4).unwrap_or(u16::MAX),
        }),
        options: vec![
            MobilityOption::HomeNetworkPrefix {
                prefix_len: 128,
                prefix: hoa,
            },
            MobilityOption::ReplayProtection {
                timestamp: wall_ntp,
            },
        ],
    };
    let mut buf = vec![0; repr.buffer_len() + 64];
    let creds = Credentials {
        spi: sa.spi,
        algorithm: sa.algorithm,
        key: &sa.key,
    };
    let n = repr.emit_authenticated(&mut buf, &creds, &mma, &hoa).ok()?;
    buf.truncate(n);
    Some(buf)
}

impl Machine for Ro {
    type Input<'a> = Input<'a>;
    type Send = Send;
    type Change = Change;
    type Event = Event;

    fn handle_input(&mut self, now: Now, input: Input<'_>) {
        match input {
            Input::Sighting { correspondent, hoa } => self.on_sighting(now, correspondent, hoa),
            Input::Mobility { src, bytes } => self.on_mobility(now, src, bytes),
            Input::TerminalUp { hoa } => {
                self.terminals.insert(hoa);
            }
            Input::TerminalGone { hoa } => self.on_terminal_gone(now, hoa),
            Input::TerminalLeft { hoa } => self.on_terminal_left(now, hoa),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.on_timers(now);
    }

    fn poll_timeout(&self) -> Option<Millis> {
        self.pairs
            .values()
            .filter_map(|p| match p.state {
                State::Binding { retry_at, .. } => Some(retry_at),
                State::Bound {
                    expires_at,
                    refresh_at,
                    refreshing,
                } => Some(if refreshing || !p.seen {
                    expires_at
                } else {
                    refresh_at.min(expires_at)
                }),
                State::Hold { until } => p.seen.then_some(until),
            })
            .min()
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A refused reverse route only costs the optimisation of the uplink (the terminal's
    /// packets keep going through the home agent): reported, nothing undone.
    fn kernel_result(&mut self, _now: Now, change: &Change, outcome: Outcome) {
        if !outcome.reached(matches!(change, Change::Delete(_))) {
            if let (
                Change::Add(KObject::EncapRoute {
                    dst,
                    src: Some(src),
                    ..
                }),
                _,
            ) = (change, &outcome)
            {
                if let Some(p) = self.pairs.get_mut(&(src.ip(), dst.ip())) {
                    p.routed = false;
                }
            }
            self.queue.push_back(Output::Event(Event::KernelRefused {
                change: *change,
                reason: format!("{outcome:?}"),
            }));
        }
    }
}

#[cfg(test)]
mod tests;
