//! The registrar state machine: Binding Updates and timer ticks in, [`Action`]s out.
use std::net::Ipv6Addr;

use mipcast_wire::mh::{back_status, bu_flags, MobilityOption};

use crate::cache::{Binding, BindingCache, BindingRecord, BindingState};
use crate::messages::{self, Signer};
use crate::policy::{DeregVerdict, Policy, Request, Verdict};
use crate::replay::RecentTimestamps;
use crate::sa::SaTable;
use crate::time::{ms_to_ntp_units, Millis, Now};
use crate::validate::{self, History, Limits, Outcome, Rejection, SignedReply};

/// Registrar settings shared by both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Longest lifetime granted, in seconds; longer requests are cut to it (rounded down to
    /// the 4-second unit of the BAck). At least 4.
    pub max_lifetime_s: u32,
    /// RFC 4285 timestamp window either side of our clock, in milliseconds (default 7 s).
    pub replay_window_ms: u64,
    /// When, as a percentage of the granted lifetime, to send the one Binding Refresh Request
    /// (1-99; default 80).
    pub refresh_percent: u8,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            max_lifetime_s: 3600,
            replay_window_ms: 7000,
            refresh_percent: 80,
        }
    }
}

/// Why a [`RegistrarConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("maximum lifetime {0} s is below the 4 s unit of the protocol")]
    LifetimeTooShort(u32),
    #[error("replay window must be positive")]
    ZeroReplayWindow,
    #[error("refresh percentage {0} is outside 1-99")]
    RefreshPercent(u8),
}

/// Why a received message was dropped without a reply (for counters and debug logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("source address is not unicast")]
    BadSource,
    #[error("mobility header length inconsistent with the packet")]
    BadLength,
    #[error("malformed mobility header: {0}")]
    Malformed(mipcast_wire::Error),
    #[error("mobility header type {0} is not a binding update")]
    NotBindingUpdate(u8),
    #[error("could not emit the reply: {0}")]
    Emit(mipcast_wire::Error),
}

impl DropReason {
    /// A short stable label for a metrics counter.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::BadSource => "bad_source",
            DropReason::BadLength => "bad_length",
            DropReason::Malformed(_) => "malformed",
            DropReason::NotBindingUpdate(_) => "not_binding_update",
            DropReason::Emit(_) => "emit_failed",
        }
    }
}

/// A state-file record [`Registrar::restore_checked`] did not restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRefusal {
    pub hoa: Ipv6Addr,
    /// Which check failed: a short stable label.
    pub reason: &'static str,
}

/// Why a binding left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveReason {
    /// The MN deregistered.
    Deregistered,
    /// Its lifetime ran out without a refresh.
    Expired,
    /// The grace period of a lingering (deregistered) binding ended.
    GraceEnded,
}

/// Something the daemon shell must do. Actions of one call are in the order to apply them:
/// kernel changes come before the acknowledgement that announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<P> {
    /// Send Mobility Header `bytes` from `src` to `dst` (raw IPPROTO_MH socket).
    Send {
        dst: Ipv6Addr,
        src: Ipv6Addr,
        bytes: Vec<u8>,
    },
    /// Program `binding`; `replaced` is the binding it supersedes for the same home address.
    Install {
        binding: Binding<P>,
        replaced: Option<Binding<P>>,
    },
    /// Undo `binding`.
    Remove {
        binding: Binding<P>,
        reason: RemoveReason,
    },
    /// A BU was refused with `status` (its BAck is in a following `Send`); for logs and metrics.
    Rejected {
        peer: Ipv6Addr,
        hoa: Option<Ipv6Addr>,
        status: u8,
        /// The BU carried a valid MAC, so its (signed) reply is one a real terminal needs to
        /// resynchronise; daemons take it from a reply budget apart from unauthenticated ones.
        authenticated: bool,
        /// For status 146, which authentication check failed (a metrics label).
        auth_error: Option<&'static str>,
    },
    /// A message was dropped without reply.
    Drop(DropReason),
}

/// Binding registration for one router role.
#[derive(Debug)]
pub struct Registrar<Po: Policy> {
    config: RegistrarConfig,
    sas: SaTable,
    policy: Po,
    cache: BindingCache<Po::Payload>,
    recent: RecentTimestamps,
}

impl<Po: Policy> Registrar<Po> {
    pub fn new(config: RegistrarConfig, sas: SaTable, policy: Po) -> Result<Self, ConfigError> {
        if config.max_lifetime_s < 4 {
            return Err(ConfigError::LifetimeTooShort(config.max_lifetime_s));
        }
        if config.replay_window_ms == 0 {
            return Err(ConfigError::ZeroReplayWindow);
        }
        if !(1..=99).contains(&config.refresh_percent) {
            return Err(ConfigError::RefreshPercent(config.refresh_percent));
        }
        Ok(Registrar {
            config,
            sas,
            policy,
            cache: BindingCache::new(),
            recent: RecentTimestamps::default(),
        })
    }

    pub fn cache(&self) -> &BindingCache<Po::Payload> {
        &self.cache
    }

    pub fn policy(&self) -> &Po {
        &self.policy
    }

    /// For policy configuration changes (e.g. new home prefixes); bindings are kept.
    pub fn policy_mut(&mut self) -> &mut Po {
        &mut self.policy
    }

    /// Swaps in reloaded security associations. Bindings are kept; their next BU is checked
    /// against the new table.
    pub fn replace_sas(&mut self, sas: SaTable) {
        self.sas = sas;
    }

    /// The monotonic time at which [`Self::poll_timers`] has work, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.cache.next_deadline().map(Millis)
    }

    /// Handles one Mobility Header message received from `src` on our address `dst`. Every
    /// MH type is accepted here: non-BU types are answered or dropped as RFC 6275 §9.2 says.
    pub fn handle_bu(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: &[u8],
        now: Now,
    ) -> Vec<Action<Po::Payload>> {
        self.recent.prune(now.mono_ms());
        let limits = Limits {
            window_ntp: ms_to_ntp_units(self.config.replay_window_ms),
            max_lifetime_units: u16::try_from(self.config.max_lifetime_s / 4).unwrap_or(u16::MAX),
            now_ntp: now.wall_ntp,
        };
        let (cache, recent) = (&self.cache, &self.recent);
        let history = |hoa: Ipv6Addr| match cache.get(&hoa) {
            Some(b) => History {
                sequence: Some(b.sequence),
                timestamp: Some(b.last_timestamp),
            },
            None => History {
                sequence: None,
                timestamp: recent.get(&hoa),
            },
        };
        match validate::validate(src, dst, bytes, &self.sas, &limits, history) {
            Outcome::Drop(reason) => vec![Action::Drop(reason)],
            Outcome::BindingError { status } => {
                vec![send(
                    src,
                    dst,
                    messages::binding_error(status, Ipv6Addr::UNSPECIFIED),
                )]
            }
            Outcome::Reject(rejection) => self.reject(src, dst, rejection),
            Outcome::Valid(req) if req.deregistration => self.deregister(req, now),
            Outcome::Valid(req) => self.register(req, now),
        }
    }

    /// Expires bindings and sends due Binding Refresh Requests.
    ///
    /// A Binding Refresh Request changes the binding's refresh time (to none: it is sent once
    /// per registration) and nothing else, and it is not returned as a change to persist: the
    /// daemons journal installs and removals only. Deliberately: a journal that still holds the
    /// refresh time restores a binding that is otherwise the same, and the request goes out
    /// once more after the restart ([`crate::BindingCache::restore`] makes a past refresh time
    /// due at once). A repeated request is harmless (RFC 6275 §11.7.4: the mobile node answers
    /// it with an ordinary Binding Update, or lets the binding go), while journaling it would cost a
    /// synced write per timer round for a state that only saves one message after a crash.
    /// The next compaction writes the refresh time as it is. Test:
    /// `an_unjournaled_refresh_request_only_repeats_once_after_a_restart`.
    pub fn poll_timers(&mut self, now: Now) -> Vec<Action<Po::Payload>> {
        self.recent.prune(now.mono_ms());
        let mut actions = Vec::new();
        for binding in self.cache.expire(now.mono_ms()) {
            self.remember(binding.hoa, binding.last_timestamp, now);
            let reason = match binding.state {
                BindingState::Active => RemoveReason::Expired,
                BindingState::Lingering => RemoveReason::GraceEnded,
            };
            actions.push(Action::Remove { binding, reason });
        }
        for hoa in self.cache.take_due_refreshes(now.mono_ms()) {
            if let Some(b) = self.cache.get(&hoa) {
                actions.push(send(b.peer, b.local, messages::binding_refresh_request()));
            }
        }
        actions
    }

    /// Takes back the binding of `hoa` after its kernel programming failed: the daemon answers
    /// the BU with status 130 instead of 0, so no binding may stay behind that the MN believes
    /// refused. The binding leaves the cache without an [`Action::Remove`] (its kernel state is
    /// the daemon's to roll back) and is returned; its timestamp is remembered like a
    /// deregistration's, so the very BU replayed is refused while the MN's retry, with a new
    /// sequence number and timestamp, is accepted. None when `hoa` has no binding.
    pub fn revoke(&mut self, hoa: &Ipv6Addr, now: Now) -> Option<Binding<Po::Payload>> {
        let binding = self.cache.remove(hoa)?;
        self.remember(binding.hoa, binding.last_timestamp, now);
        Some(binding)
    }

    /// The BAck 130 (insufficient resources) that answers the BU which created `binding`
    /// when the daemon could not program it (see [`Self::revoke`]): signed with the binding's
    /// SA and echoing its timestamp, like any reply to an authenticated BU.
    pub fn revoked_ack(
        &self,
        binding: &Binding<Po::Payload>,
    ) -> Result<Vec<u8>, mipcast_wire::Error> {
        let signed = SignedReply {
            spi: binding.spi,
            coa: binding.coa,
            hoa: binding.hoa,
            timestamp: binding.last_timestamp,
        };
        self.signed_ack(
            back_status::INSUFFICIENT_RESOURCES,
            binding.sequence,
            0,
            Vec::new(),
            Some(signed),
        )
    }

    /// The bindings as state-file records.
    pub fn records(&self, now: Now) -> Vec<BindingRecord<Po::Payload>> {
        self.cache.records(now)
    }

    /// Restores state-file records (expired ones are skipped) and returns an `Install` for
    /// each restored binding so the shell can reprogram the kernel. Records that fail
    /// [`Self::check_record`] are left out; [`Self::restore_checked`] also says which.
    pub fn restore(
        &mut self,
        records: Vec<BindingRecord<Po::Payload>>,
        now: Now,
    ) -> Vec<Action<Po::Payload>> {
        self.restore_checked(records, now).0
    }

    /// [`Self::restore`], with the records refused and why: a state file is re-checked
    /// against the current configuration (it may be stale, edited or forged), so nothing a
    /// BU could not have created now is programmed.
    pub fn restore_checked(
        &mut self,
        records: Vec<BindingRecord<Po::Payload>>,
        now: Now,
    ) -> (Vec<Action<Po::Payload>>, Vec<RestoreRefusal>) {
        let mut refused = Vec::new();
        let mut actions = Vec::new();
        for record in records {
            let hoa = record.hoa;
            if let Err(reason) = self.check_record(&record, now) {
                refused.push(RestoreRefusal { hoa, reason });
                continue;
            }
            if let Err(reason) = self.policy.check_restored(&record, &self.cache) {
                refused.push(RestoreRefusal { hoa, reason });
                continue;
            }
            for restored in self.cache.restore(vec![record], now) {
                if let Some(b) = self.cache.get(&restored) {
                    actions.push(Action::Install {
                        binding: b.clone(),
                        replaced: None,
                    });
                }
            }
        }
        (actions, refused)
    }

    /// Re-checks every cached binding against the configuration now in force (after a
    /// reload replaced the SAs or the policy's settings), as a restore would: the SA still
    /// exists and authorises the home address, the lifetime is within the maximum, and the
    /// policy would still accept it. What fails leaves the cache and is handed back with the
    /// failed check's label, so the caller withdraws its kernel state and reports it.
    pub fn revalidate(&mut self, now: Now) -> Vec<(Binding<Po::Payload>, &'static str)> {
        let mut failed = Vec::new();
        for record in self.cache.records(now) {
            let verdict = self
                .check_against_config(&record, now)
                .and_then(|()| self.policy.check_restored(&record, &self.cache));
            if let Err(reason) = verdict {
                if let Some(binding) = self.revoke(&record.hoa, now) {
                    failed.push((binding, reason));
                }
            }
        }
        failed
    }

    /// The checks every restored record passes, whatever the role: addresses of the right
    /// kinds, a configured SA that authorises the home address, and a lifetime no longer than
    /// the configured maximum.
    fn check_record(&self, r: &BindingRecord<Po::Payload>, now: Now) -> Result<(), &'static str> {
        let routable = |a: Ipv6Addr| {
            !(a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback()
                || a.is_unicast_link_local())
        };
        if !routable(r.hoa) {
            return Err("hoa_not_unicast");
        }
        if !routable(r.coa) {
            return Err("coa_not_unicast");
        }
        if !routable(r.peer) || !routable(r.local) {
            return Err("peer_not_unicast");
        }
        if r.hoa == r.local {
            return Err("hoa_is_ours");
        }
        if self.cache.get(&r.hoa).is_some() {
            return Err("duplicate_hoa");
        }
        self.check_against_config(r, now)
    }

    /// The part of [`Self::check_record`] that a configuration change can break: the SA and
    /// its prefixes, and the lifetime cap.
    fn check_against_config(
        &self,
        r: &BindingRecord<Po::Payload>,
        now: Now,
    ) -> Result<(), &'static str> {
        if self.sas.get(r.spi).is_none() {
            return Err("unknown_spi");
        }
        if !self.sas.authorises(r.spi, r.hoa) {
            return Err("spi_not_authorised");
        }
        let max_ms = u64::from(self.config.max_lifetime_s) * 1000;
        // A lingering (forwarding) binding's lifetime is its grace period, set by policy.
        let lifetime_capped =
            r.state == BindingState::Lingering || r.lifetime_s <= self.config.max_lifetime_s;
        // Some slack for clock steps between the write and now.
        let slack_ms = 60_000;
        let longest_ms = match r.state {
            BindingState::Active => max_ms,
            BindingState::Lingering => u64::from(r.lifetime_s) * 1000,
        };
        let too_late = r.expires_unix_ms > now.unix_ms().saturating_add(longest_ms + slack_ms);
        if !lifetime_capped || too_late {
            return Err("lifetime_over_max");
        }
        Ok(())
    }

    fn register(&mut self, req: Request, now: Now) -> Vec<Action<Po::Payload>> {
        let (payload, ack_options) = match self.policy.on_register(&req, &self.cache) {
            Verdict::Accept {
                payload,
                ack_options,
            } => (payload, ack_options),
            Verdict::Reject { status } => return self.reject_valid(&req, status),
        };
        let lifetime_ms = u64::from(req.lifetime_s) * 1000;
        let binding = Binding {
            hoa: req.hoa,
            coa: req.coa,
            peer: req.src,
            local: req.dst,
            sequence: req.sequence,
            lifetime_s: req.lifetime_s,
            registered_at_ms: now.mono_ms(),
            expires_at_ms: now.mono_ms().saturating_add(lifetime_ms),
            refresh_at_ms: Some(
                now.mono_ms()
                    .saturating_add(lifetime_ms * u64::from(self.config.refresh_percent) / 100),
            ),
            last_timestamp: req.timestamp,
            spi: req.spi,
            state: BindingState::Active,
            payload,
        };
        self.recent.forget(&req.hoa);
        let replaced = self.cache.insert(binding.clone());
        let mut actions = vec![Action::Install { binding, replaced }];
        self.ack_accepted(&req, ack_options, &mut actions);
        actions
    }

    fn deregister(&mut self, req: Request, now: Now) -> Vec<Action<Po::Payload>> {
        let verdict = self.policy.on_deregister(&req, &self.cache);
        let mut actions = Vec::new();
        let ack_options = match verdict {
            DeregVerdict::Reject { status } => return self.reject_valid(&req, status),
            DeregVerdict::Linger {
                payload,
                grace_s,
                ack_options,
            } if grace_s > 0 => {
                if let Some(old) = self.cache.get(&req.hoa).cloned() {
                    let lingering = Binding {
                        sequence: req.sequence,
                        lifetime_s: grace_s,
                        registered_at_ms: now.mono_ms(),
                        expires_at_ms: now.mono_ms().saturating_add(u64::from(grace_s) * 1000),
                        refresh_at_ms: None,
                        last_timestamp: req.timestamp,
                        spi: req.spi,
                        state: BindingState::Lingering,
                        payload,
                        ..old
                    };
                    let replaced = self.cache.insert(lingering.clone());
                    actions.push(Action::Install {
                        binding: lingering,
                        replaced,
                    });
                } else {
                    // Nothing is bound, so there is nothing to forward.
                    self.remember(req.hoa, req.timestamp, now);
                }
                ack_options
            }
            DeregVerdict::Linger { ack_options, .. } | DeregVerdict::Remove { ack_options } => {
                if let Some(binding) = self.cache.remove(&req.hoa) {
                    actions.push(Action::Remove {
                        binding,
                        reason: RemoveReason::Deregistered,
                    });
                }
                self.remember(req.hoa, req.timestamp, now);
                ack_options
            }
        };
        self.ack_accepted(&req, ack_options, &mut actions);
        actions
    }

    /// Sends the acceptance BAck if the MN asked for one (RFC 6275 §9.5.1: A flag).
    fn ack_accepted(
        &self,
        req: &Request,
        options: Vec<MobilityOption>,
        actions: &mut Vec<Action<Po::Payload>>,
    ) {
        if !req.has_flag(bu_flags::ACK) {
            return;
        }
        let units = u16::try_from(req.lifetime_s / 4).unwrap_or(u16::MAX);
        let signed = SignedReply {
            spi: req.spi,
            coa: req.coa,
            hoa: req.hoa,
            timestamp: req.timestamp,
        };
        let bytes = self.signed_ack(
            back_status::ACCEPTED,
            req.sequence,
            units,
            options,
            Some(signed),
        );
        actions.push(send(req.src, req.dst, bytes));
    }

    /// A policy refused an authenticated, fresh BU.
    fn reject_valid(&self, req: &Request, status: u8) -> Vec<Action<Po::Payload>> {
        let signed = SignedReply {
            spi: req.spi,
            coa: req.coa,
            hoa: req.hoa,
            timestamp: req.timestamp,
        };
        self.reject(
            req.src,
            req.dst,
            Rejection {
                status,
                sequence: req.sequence,
                hoa: Some(req.hoa),
                signed: Some(signed),
                auth_error: None,
            },
        )
    }

    /// Rejections are acknowledged whatever the A flag says (RFC 6275 §10.3.1).
    fn reject(&self, src: Ipv6Addr, dst: Ipv6Addr, r: Rejection) -> Vec<Action<Po::Payload>> {
        let bytes = self.signed_ack(r.status, r.sequence, 0, Vec::new(), r.signed);
        vec![
            Action::Rejected {
                peer: src,
                hoa: r.hoa,
                status: r.status,
                authenticated: r.signed.is_some(),
                auth_error: r.auth_error,
            },
            send(src, dst, bytes),
        ]
    }

    fn signed_ack(
        &self,
        status: u8,
        sequence: u16,
        lifetime_units: u16,
        mut options: Vec<MobilityOption>,
        signed: Option<SignedReply>,
    ) -> Result<Vec<u8>, mipcast_wire::Error> {
        let signer = signed.and_then(|s| {
            options.push(MobilityOption::ReplayProtection {
                timestamp: s.timestamp,
            });
            // The SA verified this very BU moments ago, so the lookup cannot miss.
            self.sas.get(s.spi).map(|sa| Signer {
                sa,
                coa: s.coa,
                hoa: s.hoa,
            })
        });
        messages::binding_ack(status, sequence, lifetime_units, options, signer)
    }

    /// Keeps a removed binding's last timestamp until no replay of it could pass the window:
    /// it was accepted at most one window ahead of our clock, so two windows from now suffice.
    fn remember(&mut self, hoa: Ipv6Addr, timestamp: u64, now: Now) {
        let forget_at = now
            .mono_ms()
            .saturating_add(self.config.replay_window_ms.saturating_mul(2));
        self.recent.remember(hoa, timestamp, forget_at);
    }
}

fn send<P>(dst: Ipv6Addr, src: Ipv6Addr, bytes: Result<Vec<u8>, mipcast_wire::Error>) -> Action<P> {
    match bytes {
        Ok(bytes) => Action::Send { dst, src, bytes },
        Err(e) => Action::Drop(DropReason::Emit(e)),
    }
}
