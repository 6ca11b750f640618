//! Access links: what their routers advertise, and which one to use.
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_wire::group::eui64_from_mac;
use mipcast_wire::nd::{NdOption, RouterAdvert};
use serde::Serialize;

/// Static facts and policy inputs of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    pub ifindex: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub preference: u8,
    pub cost: u8,
}

/// What the last Router Advertisement on a link said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouterInfo {
    /// Link-local address of the router.
    pub router: Ipv6Addr,
    #[serde(skip)]
    pub last_seen: Millis,
    /// Autonomous /64 prefix we form our on-link address from.
    pub slaac_prefix: Option<Ipv6Addr>,
    /// Every advertised prefix (address, length), to recognise the home link.
    pub prefixes: Vec<(Ipv6Addr, u8)>,
    /// The MMA of the MAP option (preference above 0), if any.
    pub mma: Option<Ipv6Addr>,
}

impl RouterInfo {
    pub fn from_advert(router: Ipv6Addr, ra: &RouterAdvert, now: Millis) -> RouterInfo {
        let mut prefixes = Vec::new();
        let mut slaac_prefix = None;
        let mut mma: Option<(u8, Ipv6Addr)> = None;
        for opt in &ra.options {
            match opt {
                NdOption::PrefixInformation(pi) if pi.valid_lifetime > 0 => {
                    prefixes.push((pi.prefix, pi.prefix_len));
                    if pi.autonomous && pi.prefix_len == 64 && slaac_prefix.is_none() {
                        slaac_prefix = Some(pi.prefix);
                    }
                }
                // The most preferred MAP; preference 0 means "do not use" (RFC 5380 §4).
                NdOption::Map(m)
                    if m.preference > 0
                        && m.valid_lifetime > 0
                        && mma.is_none_or(|(p, _)| m.preference > p) =>
                {
                    mma = Some((m.preference, m.address));
                }
                _ => {}
            }
        }
        RouterInfo {
            router,
            last_seen: now,
            slaac_prefix,
            prefixes,
            mma: mma.map(|(_, a)| a),
        }
    }

    /// Same router, prefixes and MMA: a refresh, not a movement.
    pub fn same_attachment(&self, other: &RouterInfo) -> bool {
        self.router == other.router
            && self.slaac_prefix == other.slaac_prefix
            && self.mma == other.mma
            && self.prefixes == other.prefixes
    }
}

/// A link's quality level on its smoothed value (document 003's threshold levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Stable,
    /// Below the degrading threshold: the best candidate is prepared.
    Degrading,
    /// Below the unusable threshold: the terminal leaves at once if anything else is usable.
    Unusable,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Stable => "stable",
            Level::Degrading => "degrading",
            Level::Unusable => "unusable",
        }
    }
}

/// Quality smoothing and the thresholds of the levels. Each boundary has a down threshold
/// (`*_below`, crossed going down) and a higher up threshold (`*_from`, crossed going up):
/// a smoothed value between the two keeps the level it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// Time constant of the exponential moving average; 0 uses the raw reading.
    pub time_constant_ms: u64,
    pub degrading_below: u8,
    pub stable_from: u8,
    pub unusable_below: u8,
    pub usable_from: u8,
}

impl Levels {
    /// No smoothing and no levels: the raw reading scores the link (the behaviour before
    /// issue 14; raw 0 is still unusable).
    pub const OFF: Levels = Levels {
        time_constant_ms: 0,
        degrading_below: 0,
        stable_from: 0,
        unusable_below: 0,
        usable_from: 0,
    };

    /// The level after `level` for the smoothed value `s`.
    fn next(&self, level: Level, s: f64) -> Level {
        let below = |t: u8| s < f64::from(t);
        match level {
            _ if below(self.unusable_below) => Level::Unusable,
            Level::Unusable if below(self.usable_from) => Level::Unusable,
            Level::Unusable | Level::Degrading if !below(self.stable_from) => Level::Stable,
            Level::Unusable | Level::Degrading => Level::Degrading,
            Level::Stable if below(self.degrading_below) => Level::Degrading,
            Level::Stable => Level::Stable,
        }
    }
}

/// Handoff advice the network gave about a link: avoid it until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Avoid {
    #[serde(skip)]
    pub until: Millis,
    /// The advice's reason byte (`mipcast_wire::mh::advice_reason`).
    pub reason: u8,
}

/// One interface's live state.
#[derive(Clone, Debug)]
pub struct Link {
    pub cfg: LinkConfig,
    pub up: bool,
    /// The last reading (held until the next one); None: no quality source.
    pub quality: Option<u8>,
    /// The moving average and when it was last brought up to date.
    ewma: Option<(f64, Millis)>,
    pub level: Level,
    pub avoid: Option<Avoid>,
    pub ra: Option<RouterInfo>,
    /// Router solicitations sent since the link came up without an answer.
    pub rs_sent: u8,
    pub rs_next: Option<Millis>,
    pub probe: Probe,
}

/// Periodic RS/RA probes of a link's router: the round trip from a solicitation to the next
/// advertisement (which includes the router's RFC 4861 response delay of up to 500 ms: it
/// measures the router's responsiveness as much as the link's delay), and the share of
/// solicitations no advertisement followed before the next one (loss).
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    /// The outstanding probe's send time.
    pub sent: Option<Millis>,
    pub next: Option<Millis>,
    /// Moving averages (weight 1/4 per probe).
    pub rtt_ms: Option<f64>,
    pub loss: f64,
    pub count: u64,
}

/// Weight of the newest probe in the probe averages.
const PROBE_WEIGHT: f64 = 0.25;

impl Probe {
    /// An advertisement arrived: the outstanding probe is answered.
    pub fn answered(&mut self, now: Millis) {
        if let Some(sent) = self.sent.take() {
            #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
            let sample = now.0.saturating_sub(sent.0) as f64;
            self.rtt_ms = Some(
                self.rtt_ms
                    .map_or(sample, |r| r + PROBE_WEIGHT * (sample - r)),
            );
            self.loss -= PROBE_WEIGHT * self.loss;
        }
    }

    /// A new probe goes out at `now`; the previous one, still unanswered, counts as lost.
    pub fn send(&mut self, now: Millis, interval_ms: u64) {
        if self.sent.is_some() {
            self.loss += PROBE_WEIGHT * (1.0 - self.loss);
        }
        self.sent = Some(now);
        self.next = Some(now.plus_ms(interval_ms));
        self.count += 1;
    }
}

impl Link {
    pub fn new(cfg: LinkConfig) -> Link {
        Link {
            cfg,
            up: false,
            quality: None,
            ewma: None,
            level: Level::Stable,
            avoid: None,
            ra: None,
            rs_sent: 0,
            rs_next: None,
            probe: Probe::default(),
        }
    }

    /// The smoothed quality at `now`. The readings are a sample-and-hold signal (a source
    /// reports when it likes: a file on change, the control socket once), so the average is
    /// the continuous-time one of that signal: it converges on the held reading with the
    /// time constant whatever the reading rate.
    pub fn smoothed(&self, now: Millis, tau_ms: u64) -> Option<f64> {
        let q = f64::from(self.quality?);
        let Some((s, at)) = self.ewma else {
            return Some(q);
        };
        if tau_ms == 0 {
            return Some(q);
        }
        #[allow(clippy::cast_precision_loss)] // milliseconds far below 2^52
        let decay = (-(now.0.saturating_sub(at.0) as f64) / tau_ms as f64).exp();
        Some(q + (s - q) * decay)
    }

    /// A new reading at `now`; updates the level.
    pub fn feed(&mut self, value: Option<u8>, now: Millis, levels: &Levels) {
        self.ewma = match (value, self.smoothed(now, levels.time_constant_ms)) {
            (None, _) => None,
            (Some(v), None) => Some((f64::from(v), now)),
            (Some(_), Some(s)) => Some((s, now)),
        };
        self.quality = value;
        self.update_level(now, levels);
    }

    /// Re-evaluates the level on the smoothed value at `now`.
    pub fn update_level(&mut self, now: Millis, levels: &Levels) {
        self.level = match self.smoothed(now, levels.time_constant_ms) {
            None => Level::Stable,
            Some(s) => levels.next(self.level, s),
        };
    }

    /// Whether the average is still moving towards the held reading (timer work).
    pub fn converging(&self, now: Millis, tau_ms: u64) -> bool {
        match (self.smoothed(now, tau_ms), self.quality) {
            (Some(s), Some(q)) => (s - f64::from(q)).abs() >= 0.5,
            _ => false,
        }
    }

    /// Whether advice asks us to keep off this link at `now`.
    pub fn avoided(&self, now: Millis) -> bool {
        self.avoid.is_some_and(|a| a.until > now)
    }

    /// SLAAC-style on-link address: the advertised /64 followed by our EUI-64.
    pub fn onlink_address(&self) -> Option<Ipv6Addr> {
        let prefix = self.ra.as_ref()?.slaac_prefix?;
        Some(slaac(prefix, self.cfg.mac))
    }

    fn ra_fresh(&self, now: Millis, ra_timeout_ms: u64) -> Option<&RouterInfo> {
        self.ra
            .as_ref()
            .filter(|r| now.0 < r.last_seen.0.saturating_add(ra_timeout_ms))
    }

    /// The link's score, or None when it cannot carry us (down, no fresh RA, a raw reading
    /// of 0: the radio says it is gone, no average waits for that).
    pub fn score(&self, now: Millis, p: &Policy) -> Option<i64> {
        let ra_timeout_ms = p.ra_timeout_ms;
        if !self.up || self.quality == Some(0) {
            return None;
        }
        let quality = self
            .smoothed(now, p.levels.time_constant_ms)
            .map_or(100, |s| s.round().clamp(0.0, 100.0) as i64);
        let ra = self.ra_fresh(now, ra_timeout_ms)?;
        // An ageing RA costs up to 10 points: a router that went quiet loses ties first.
        let age = i64::try_from(now.0.saturating_sub(ra.last_seen.0)).unwrap_or(i64::MAX);
        let age_penalty =
            age.saturating_mul(10) / i64::try_from(ra_timeout_ms.max(1)).unwrap_or(i64::MAX);
        #[allow(clippy::cast_possible_truncation)] // at most loss_penalty points
        let loss_penalty = (self.probe.loss * f64::from(p.loss_penalty)).round() as i64;
        Some(
            i64::from(self.cfg.preference) + quality
                - i64::from(self.cfg.cost)
                - age_penalty
                - loss_penalty,
        )
    }
}

pub fn slaac(prefix: Ipv6Addr, mac: [u8; 6]) -> Ipv6Addr {
    let p = prefix.octets();
    let iid = eui64_from_mac(mac);
    let mut a = [0u8; 16];
    for (i, b) in a.iter_mut().enumerate() {
        *b = if i < 8 {
            p.get(i).copied().unwrap_or(0)
        } else {
            iid.get(i - 8).copied().unwrap_or(0)
        };
    }
    Ipv6Addr::from(a)
}

/// Selection policy parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub hysteresis: u32,
    pub min_dwell_ms: u64,
    pub ra_timeout_ms: u64,
    pub levels: Levels,
    /// Between RS/RA probes of each link with a router (0: no probes).
    pub probe_interval_ms: u64,
    /// Points taken off a link's score at 100 % probe loss (proportionally below).
    pub loss_penalty: u32,
    /// While the current link degrades, register with the MMA of a prepared candidate in
    /// another site already (its answer is the "request handoff": 130 = not admitted).
    pub pre_register: bool,
    /// Prepare the best candidate of the current site at all times, not only while the
    /// current link degrades.
    pub prepare_always: bool,
    /// While the current link degrades and no other link is up, bring the best
    /// administratively down one up (and down again when preparation stops without a move
    /// there), so the prepared candidate is usable at the decision.
    pub prepare_link_up: bool,
}

/// Why the terminal moved (handovers by cause).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The first link after none.
    Attach,
    /// The current link degraded or became unusable.
    Quality,
    /// The network advised us to leave it.
    Advice,
    /// The current link went down or lost its router.
    LinkDown,
    /// Another link became better by the hysteresis margin.
    Preference,
}

impl Cause {
    pub fn label(self) -> &'static str {
        match self {
            Cause::Attach => "attach",
            Cause::Quality => "quality",
            Cause::Advice => "advice",
            Cause::LinkDown => "link_down",
            Cause::Preference => "preference",
        }
    }
}

/// The outcome of one selection round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No usable link at all.
    None,
    Stay(u32),
    Switch {
        from: Option<u32>,
        to: u32,
        cause: Cause,
    },
    /// Advice asks us to leave the current link but no other link can take us.
    AdvisedNoAlternative(u32),
    /// A better link exists but not by the hysteresis margin.
    HeldByHysteresis {
        current: u32,
        candidate: u32,
    },
    /// A better link exists but we have not been on the current one for the dwell time.
    HeldByDwell {
        current: u32,
        candidate: u32,
    },
}

impl Decision {
    pub fn label(&self) -> &'static str {
        match self {
            Decision::None => "no_link",
            Decision::Stay(_) => "stay",
            Decision::Switch { .. } => "switch",
            Decision::AdvisedNoAlternative(_) => "advised_no_alternative",
            Decision::HeldByHysteresis { .. } => "held_hysteresis",
            Decision::HeldByDwell { .. } => "held_dwell",
        }
    }
}

/// A link that can carry us, as selection sees it.
#[derive(Clone, Copy, Debug)]
struct Cand {
    ifindex: u32,
    score: i64,
    level: Level,
    avoided: bool,
}

impl Cand {
    /// Usable and not advised against.
    fn good(&self) -> bool {
        self.level != Level::Unusable && !self.avoided
    }
}

fn candidates(links: &[Link], now: Millis, p: &Policy) -> Vec<Cand> {
    links
        .iter()
        .filter_map(|l| {
            l.score(now, p).map(|score| Cand {
                ifindex: l.cfg.ifindex,
                score,
                level: l.level,
                avoided: l.avoided(now),
            })
        })
        .collect()
}

/// Highest score among `cands` passing `f`; on a tie the interface listed first.
fn best_by(cands: &[Cand], f: impl Fn(&Cand) -> bool) -> Option<Cand> {
    cands
        .iter()
        .filter(|c| f(c))
        .fold(None::<Cand>, |acc, c| match acc {
            Some(b) if b.score >= c.score => acc,
            _ => Some(*c),
        })
}

/// The link to prepare while the current one degrades: the best good link other than it.
pub fn candidate(links: &[Link], current: u32, now: Millis, p: &Policy) -> Option<u32> {
    best_by(&candidates(links, now, p), |c| {
        c.good() && c.ifindex != current
    })
    .map(|c| c.ifindex)
}

/// Picks the link to use. Good links (not unusable, not advised against) come first; the
/// current link is left at once when it became unusable or advice asks us to leave and a good
/// link exists; otherwise only for a link better by `hysteresis` points after `min_dwell_ms`
/// on the current one.
pub fn select(
    links: &[Link],
    current: Option<u32>,
    since: Millis,
    now: Millis,
    p: &Policy,
) -> Decision {
    let cands = candidates(links, now, p);
    let best = best_by(&cands, Cand::good)
        .or_else(|| best_by(&cands, |c| c.level != Level::Unusable))
        .or_else(|| best_by(&cands, |_| true));
    let cur = current.and_then(|c| cands.iter().find(|x| x.ifindex == c).copied());
    let (b, c, cc) = match (best, current, cur) {
        (None, _, _) => return Decision::None,
        (Some(b), None, _) => {
            return Decision::Switch {
                from: None,
                to: b.ifindex,
                cause: Cause::Attach,
            }
        }
        (Some(b), Some(c), None) => {
            // Up with a router, yet unscored: its radio reported quality 0.
            let radio_lost = links
                .iter()
                .any(|l| l.cfg.ifindex == c && l.up && l.quality == Some(0) && l.ra.is_some());
            return Decision::Switch {
                from: Some(c),
                to: b.ifindex,
                cause: if radio_lost {
                    Cause::Quality
                } else {
                    Cause::LinkDown
                },
            };
        }
        (Some(b), Some(c), Some(cc)) => (b, c, cc),
    };
    let stay = if cc.avoided && !b.good() {
        Decision::AdvisedNoAlternative(c)
    } else {
        Decision::Stay(c)
    };
    let switch = |cause| Decision::Switch {
        from: Some(c),
        to: b.ifindex,
        cause,
    };
    if b.ifindex == c {
        return stay;
    }
    if cc.level == Level::Unusable && b.level != Level::Unusable {
        return switch(Cause::Quality);
    }
    if cc.avoided && b.good() {
        return switch(Cause::Advice);
    }
    if b.score <= cc.score {
        stay
    } else if b.score < cc.score.saturating_add(i64::from(p.hysteresis)) {
        Decision::HeldByHysteresis {
            current: c,
            candidate: b.ifindex,
        }
    } else if now.0 < since.0.saturating_add(p.min_dwell_ms) {
        Decision::HeldByDwell {
            current: c,
            candidate: b.ifindex,
        }
    } else if cc.level == Level::Degrading {
        switch(Cause::Quality)
    } else {
        switch(Cause::Preference)
    }
}
