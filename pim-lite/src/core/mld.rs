//! MLDv2 router side (RFC 3810 §6-7) for one access link: querier election, general and
//! specific queries, and per-group listener state.
//!
//! Source-specific (INCLUDE) state is what forwarding uses: an INCLUDE record for (S,G) is
//! interest in (S,G), for any group. EXCLUDE records and MLDv1 reports ask for any source;
//! pim-lite has no rendezvous point, so that interest is only tracked (and shown) for groups
//! outside the SSM range, and ignored inside it as RFC 4604 §2.2 requires.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use mipcast_proto::Millis;
use mipcast_proto::{Rate, SourceLimiter, SourceLimits};
use mipcast_wire::mld::{self, GroupRecord, MldRepr, QueryV2, RecordType};

use super::settings::{GroupRange, MldSettings};
use super::stats::{Counter, Stats};
use super::Sg;

/// Who queries this link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Querier {
    /// We do; `startup_left` startup queries remain (RFC 3810 §7.6.1).
    Us {
        next_general: Millis,
        startup_left: u8,
    },
    /// A router with a lower address does, until `expires` (Other Querier Present timer).
    Other { address: Ipv6Addr, expires: Millis },
}

#[derive(Debug, Clone, Default)]
struct Group {
    /// INCLUDE-mode sources and when their source timer runs out.
    sources: BTreeMap<Ipv6Addr, Millis>,
    /// Any-source (EXCLUDE / MLDv1) listeners outside the SSM range: the group timer.
    any_source_until: Option<Millis>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.any_source_until.is_none()
    }
}

/// Queries still to be repeated for one group (RFC 3810 §7.6.3).
#[derive(Debug, Clone)]
struct Retransmit {
    sources: BTreeSet<Ipv6Addr>,
    /// A multicast-address-specific query (any-source listeners) is pending too.
    group_query: bool,
    next: Millis,
    left: u8,
}

/// Everything a call may read or produce besides the interface's own state.
pub struct MldCtx<'a> {
    pub now: Millis,
    /// Our link-local address on the link, once the kernel has one.
    pub our_address: Option<Ipv6Addr>,
    pub ssm: &'a [GroupRange],
    pub stats: &'a mut Stats,
    /// Queries to send: destination and message.
    pub out: &'a mut Vec<(Ipv6Addr, MldRepr)>,
    /// (S,G) pairs that gained or lost their last listener.
    pub changed: &'a mut Vec<Sg>,
}

impl MldCtx<'_> {
    fn in_ssm(&self, group: Ipv6Addr) -> bool {
        self.ssm.iter().any(|r| r.contains(group))
    }
}

#[derive(Debug, Clone)]
pub struct MldIface {
    cfg: MldSettings,
    querier: Querier,
    groups: BTreeMap<Ipv6Addr, Group>,
    retransmits: BTreeMap<Ipv6Addr, Retransmit>,
    /// Reports taken per host (the shared limiter, one bucket per source address).
    reports: SourceLimiter,
}

/// Hosts whose report rate is tracked at once per link: beyond, reports from new hosts are
/// dropped until some go idle (a link with more hosts than this is not an access link).
const MAX_TRACKED_HOSTS: usize = 4096;

fn report_limiter(cfg: &MldSettings) -> SourceLimiter {
    let per_host = Rate {
        per_second: cfg.reports_per_second_per_host,
        burst: cfg.report_burst_per_host,
    };
    SourceLimiter::new(SourceLimits {
        // Every host of the link together: one reporting host per tracked slot at its rate.
        global: Rate {
            per_second: cfg.reports_per_second_per_host.saturating_mul(64),
            burst: cfg.report_burst_per_host.saturating_mul(64),
        },
        per_source: Some(per_host),
        source_prefix_len: 128,
        max_sources: MAX_TRACKED_HOSTS,
    })
}

/// Listener state of one group, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: Ipv6Addr,
    pub sources: Vec<(Ipv6Addr, Millis)>,
    pub any_source_until: Option<Millis>,
}

impl MldIface {
    /// Starts as querier with the startup queries due at once (RFC 3810 §7.6.1).
    pub fn new(cfg: MldSettings, now: Millis) -> MldIface {
        MldIface {
            querier: Querier::Us {
                next_general: now,
                startup_left: cfg.startup_query_count(),
            },
            reports: report_limiter(&cfg),
            cfg,
            groups: BTreeMap::new(),
            retransmits: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &MldSettings {
        &self.cfg
    }

    pub fn set_config(&mut self, cfg: MldSettings) {
        if (cfg.reports_per_second_per_host, cfg.report_burst_per_host)
            != (
                self.cfg.reports_per_second_per_host,
                self.cfg.report_burst_per_host,
            )
        {
            self.reports = report_limiter(&cfg);
        }
        self.cfg = cfg;
    }

    pub fn querier(&self) -> &Querier {
        &self.querier
    }

    pub fn is_querier(&self) -> bool {
        matches!(self.querier, Querier::Us { .. })
    }

    /// True while some listener on the link asked for (S,G).
    pub fn has_listener(&self, sg: Sg) -> bool {
        self.groups
            .get(&sg.group)
            .is_some_and(|g| g.sources.contains_key(&sg.source))
    }

    /// Every (S,G) with a listener.
    pub fn listened(&self) -> impl Iterator<Item = Sg> + '_ {
        self.groups
            .iter()
            .flat_map(|(&group, g)| g.sources.keys().map(move |&source| Sg { source, group }))
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn groups(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .map(|(&group, g)| GroupView {
                group,
                sources: g.sources.iter().map(|(&s, &t)| (s, t)).collect(),
                any_source_until: g.any_source_until,
            })
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Millis> {
        let querier = match self.querier {
            Querier::Us { next_general, .. } => next_general,
            Querier::Other { expires, .. } => expires,
        };
        let timers = self
            .groups
            .values()
            .flat_map(|g| g.sources.values().copied().chain(g.any_source_until));
        let retransmits = self.retransmits.values().map(|r| r.next);
        timers.chain(retransmits).chain([querier]).min()
    }

    /// A received MLD message from `source` with hop limit `hop_limit`.
    pub fn handle(&mut self, ctx: &mut MldCtx<'_>, source: Ipv6Addr, hop_limit: u8, msg: MldRepr) {
        // RFC 3810 §5.1.14/§5.2.13: link-local source (or :: for reports), hop limit 1.
        let source_ok = source.is_unicast_link_local()
            || (source.is_unspecified() && matches!(msg, MldRepr::ReportV2 { .. }));
        if !source_ok {
            ctx.stats.bump(Counter::Malformed {
                protocol: "mld",
                reason: "source_not_link_local",
            });
            return;
        }
        if hop_limit != 1 {
            ctx.stats.bump(Counter::Malformed {
                protocol: "mld",
                reason: "hop_limit",
            });
            return;
        }
        let report = matches!(msg, MldRepr::ReportV2 { .. } | MldRepr::ReportV1 { .. });
        if report && !self.reports.allow(source, ctx.now) {
            ctx.stats.bump(Counter::MldIgnored("host_rate_limit"));
            return;
        }
        match msg {
            MldRepr::QueryV2(q) => self.on_query(
                ctx,
                source,
                q.multicast_address,
                &q.sources,
                q.suppress_router_side,
            ),
            MldRepr::QueryV1 {
                multicast_address, ..
            } => self.on_query(ctx, source, multicast_address, &[], false),
            MldRepr::ReportV2 { records } => {
                for record in records {
                    self.on_record(ctx, record);
                }
            }
            MldRepr::ReportV1 { multicast_address } => {
                ctx.stats.bump(Counter::MldRecord("v1_report"));
                if self.any_source_allowed(ctx, multicast_address, "v1_report_in_ssm_range") {
                    self.refresh_any_source(ctx, multicast_address);
                }
            }
            MldRepr::DoneV1 { multicast_address } => {
                ctx.stats.bump(Counter::MldRecord("v1_done"));
                if self.any_source_allowed(ctx, multicast_address, "v1_done_in_ssm_range") {
                    self.any_source_leave(ctx, multicast_address);
                }
            }
        }
    }

    /// Expires timers and sends due queries.
    pub fn tick(&mut self, ctx: &mut MldCtx<'_>) {
        let now = ctx.now;
        match self.querier {
            Querier::Us {
                next_general,
                startup_left,
            } if next_general <= now => {
                let startup_left = startup_left.saturating_sub(1);
                let next = if startup_left > 0 {
                    self.cfg.startup_query_interval()
                } else {
                    self.cfg.query_interval()
                };
                self.querier = Querier::Us {
                    next_general: now + next,
                    startup_left,
                };
                self.send_general_query(ctx);
            }
            Querier::Other { address, expires } if expires <= now => {
                tracing::info!(previous = %address, "MLD: other querier present timer expired, we are querier again");
                self.querier = Querier::Us {
                    next_general: now + self.cfg.query_interval(),
                    startup_left: 0,
                };
                self.send_general_query(ctx);
            }
            _ => {}
        }
        self.retransmit_due(ctx);
        self.expire(ctx);
    }

    fn send_general_query(&self, ctx: &mut MldCtx<'_>) {
        if ctx.our_address.is_none() {
            return;
        }
        ctx.stats.bump(Counter::MldQueriesSent("general"));
        let q = self.query(
            Ipv6Addr::UNSPECIFIED,
            Vec::new(),
            self.cfg.query_response_interval_ms,
        );
        ctx.out.push((super::ALL_NODES, q));
    }

    fn query(&self, group: Ipv6Addr, sources: Vec<Ipv6Addr>, max_response_ms: u64) -> MldRepr {
        MldRepr::QueryV2(QueryV2 {
            max_response_code: mld::encode_max_response_code(
                u32::try_from(max_response_ms).unwrap_or(u32::MAX),
            ),
            multicast_address: group,
            suppress_router_side: false,
            qrv: self.cfg.robustness.min(7),
            qqic: mld::encode_qqic(u32::try_from(self.cfg.query_interval_secs).unwrap_or(u32::MAX)),
            sources,
        })
    }

    fn on_query(
        &mut self,
        ctx: &mut MldCtx<'_>,
        from: Ipv6Addr,
        group: Ipv6Addr,
        sources: &[Ipv6Addr],
        suppress: bool,
    ) {
        if Some(from) == ctx.our_address {
            return;
        }
        let lower = ctx.our_address.is_none_or(|ours| from < ours);
        if lower {
            if !matches!(self.querier, Querier::Other { address, .. } if address == from) {
                tracing::info!(querier = %from, ours = ?ctx.our_address, "MLD: lower-addressed querier heard, we stop querying");
            }
            self.querier = Querier::Other {
                address: from,
                expires: ctx.now + self.cfg.other_querier_present(),
            };
            self.retransmits.clear();
        }
        // A specific query from the querier lowers our timers as the querier's do (§7.6.1),
        // unless it asks routers to suppress timer updates.
        if group.is_unspecified() || suppress || self.is_querier() {
            return;
        }
        let deadline = ctx.now + self.cfg.llqt();
        if let Some(g) = self.groups.get_mut(&group) {
            if sources.is_empty() {
                if let Some(t) = g.any_source_until.as_mut() {
                    *t = (*t).min(deadline);
                }
            }
            for s in sources {
                if let Some(t) = g.sources.get_mut(s) {
                    *t = (*t).min(deadline);
                }
            }
        }
    }

    fn on_record(&mut self, ctx: &mut MldCtx<'_>, rec: GroupRecord) {
        let label = match rec.record_type {
            RecordType::ModeIsInclude => "is_in",
            RecordType::ModeIsExclude => "is_ex",
            RecordType::ChangeToInclude => "to_in",
            RecordType::ChangeToExclude => "to_ex",
            RecordType::AllowNewSources => "allow",
            RecordType::BlockOldSources => "block",
        };
        ctx.stats.bump(Counter::MldRecord(label));
        let group = rec.multicast_address;
        if !group.is_multicast() || group.segments()[0] & 0x000f <= 1 {
            // Interface- and link-local scope groups are never routed.
            ctx.stats.bump(Counter::MldIgnored("unroutable_group"));
            return;
        }
        let sources: BTreeSet<Ipv6Addr> = rec
            .sources
            .iter()
            .copied()
            .filter(|s| !s.is_multicast() && !s.is_unspecified() && !s.is_loopback())
            .collect();
        match rec.record_type {
            RecordType::ModeIsInclude | RecordType::AllowNewSources => {
                self.report_sources(ctx, group, &sources);
            }
            RecordType::ChangeToInclude => {
                self.report_sources(ctx, group, &sources);
                let rest: BTreeSet<Ipv6Addr> = self
                    .groups
                    .get(&group)
                    .map(|g| {
                        g.sources
                            .keys()
                            .filter(|s| !sources.contains(s))
                            .copied()
                            .collect()
                    })
                    .unwrap_or_default();
                // TO_IN also ends any-source listening: Q(G) for it (§7.4.2, EXCLUDE row).
                let any_source = self
                    .groups
                    .get(&group)
                    .is_some_and(|g| g.any_source_until.is_some());
                if any_source {
                    self.any_source_leave(ctx, group);
                }
                self.sources_leave(ctx, group, &rest);
            }
            RecordType::BlockOldSources => {
                let known: BTreeSet<Ipv6Addr> = self
                    .groups
                    .get(&group)
                    .map(|g| {
                        sources
                            .iter()
                            .filter(|s| g.sources.contains_key(s))
                            .copied()
                            .collect()
                    })
                    .unwrap_or_default();
                self.sources_leave(ctx, group, &known);
            }
            RecordType::ModeIsExclude | RecordType::ChangeToExclude => {
                if self.any_source_allowed(ctx, group, "exclude_in_ssm_range") {
                    self.refresh_any_source(ctx, group);
                }
            }
        }
    }

    /// Any-source interest is only meaningful outside the SSM range (RFC 4604 §2.2.2).
    fn any_source_allowed(&self, ctx: &mut MldCtx<'_>, group: Ipv6Addr, why: &'static str) -> bool {
        if ctx.in_ssm(group) {
            tracing::debug!(%group, reason = why, "MLD: any-source request for an SSM group ignored");
            ctx.stats.bump(Counter::MldIgnored(why));
            false
        } else {
            true
        }
    }

    fn refresh_any_source(&mut self, ctx: &mut MldCtx<'_>, group: Ipv6Addr) {
        if !self.groups.contains_key(&group) && self.groups.len() >= self.cfg.max_groups {
            ctx.stats.bump(Counter::MldIgnored("group_limit"));
            return;
        }
        let until = ctx.now + self.cfg.mali();
        self.groups.entry(group).or_default().any_source_until = Some(until);
        if let Some(r) = self.retransmits.get_mut(&group) {
            r.group_query = false;
        }
        self.drop_finished_retransmit(group);
    }

    /// Sources listed in IS_IN/ALLOW/TO_IN: their timers become MALI (§7.4.1).
    fn report_sources(
        &mut self,
        ctx: &mut MldCtx<'_>,
        group: Ipv6Addr,
        sources: &BTreeSet<Ipv6Addr>,
    ) {
        if sources.is_empty() {
            return;
        }
        let until = ctx.now + self.cfg.mali();
        if !self.groups.contains_key(&group) && self.groups.len() >= self.cfg.max_groups {
            ctx.stats.bump(Counter::MldIgnored("group_limit"));
            return;
        }
        let mut sg_total: usize = self.groups.values().map(|g| g.sources.len()).sum();
        let (max_per_group, max_sg) = (self.cfg.max_sources_per_group, self.cfg.max_sg);
        let g = self.groups.entry(group).or_default();
        for &source in sources {
            if let Some(timer) = g.sources.get_mut(&source) {
                *timer = until;
                continue;
            }
            if g.sources.len() >= max_per_group {
                ctx.stats
                    .bump(Counter::MldIgnored("sources_per_group_limit"));
                continue;
            }
            if sg_total >= max_sg {
                ctx.stats.bump(Counter::MldIgnored("sg_limit"));
                continue;
            }
            g.sources.insert(source, until);
            sg_total += 1;
            tracing::info!(%source, %group, "MLD: listener joined");
            ctx.changed.push(Sg { source, group });
        }
        if g.is_empty() {
            self.groups.remove(&group);
        }
        if let Some(r) = self.retransmits.get_mut(&group) {
            r.sources.retain(|s| !sources.contains(s));
        }
        self.drop_finished_retransmit(group);
    }

    /// A listener reported it no longer wants `sources`: with fast leave they go at once;
    /// otherwise, as querier, ask whether anyone else still wants them (Q(G,S), §7.6.3.2)
    /// and let them time out after the last listener query time.
    fn sources_leave(
        &mut self,
        ctx: &mut MldCtx<'_>,
        group: Ipv6Addr,
        sources: &BTreeSet<Ipv6Addr>,
    ) {
        if sources.is_empty() {
            return;
        }
        if self.cfg.fast_leave {
            if let Some(g) = self.groups.get_mut(&group) {
                for &source in sources {
                    if g.sources.remove(&source).is_some() {
                        tracing::info!(%source, %group, "MLD: listener left (fast leave)");
                        ctx.changed.push(Sg { source, group });
                    }
                }
            }
            self.drop_empty(group);
            return;
        }
        if !self.is_querier() {
            return;
        }
        let deadline = ctx.now + self.cfg.llqt();
        if let Some(g) = self.groups.get_mut(&group) {
            for s in sources {
                if let Some(t) = g.sources.get_mut(s) {
                    *t = (*t).min(deadline);
                }
            }
        }
        tracing::info!(%group, sources = ?sources, "MLD: sources blocked, sending source-specific query");
        self.send_specific(ctx, group, sources.iter().copied().collect(), false);
        let r = self.retransmits.entry(group).or_insert(Retransmit {
            sources: BTreeSet::new(),
            group_query: false,
            next: ctx.now,
            left: 0,
        });
        r.sources.extend(sources.iter().copied());
        r.next = ctx.now + self.cfg.llqi();
        r.left = self.cfg.llqc().saturating_sub(1);
        self.drop_finished_retransmit(group);
    }

    /// An any-source listener left (MLDv1 Done, TO_IN): Q(G), group timer to LLQT.
    fn any_source_leave(&mut self, ctx: &mut MldCtx<'_>, group: Ipv6Addr) {
        let is_querier = self.is_querier();
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if g.any_source_until.is_none() {
            return;
        }
        if self.cfg.fast_leave {
            g.any_source_until = None;
            self.drop_empty(group);
            return;
        }
        if !is_querier {
            return;
        }
        let deadline = ctx.now + self.cfg.llqt();
        g.any_source_until = g.any_source_until.map(|t| t.min(deadline));
        self.send_specific(ctx, group, Vec::new(), true);
        let r = self.retransmits.entry(group).or_insert(Retransmit {
            sources: BTreeSet::new(),
            group_query: false,
            next: ctx.now,
            left: 0,
        });
        r.group_query = true;
        r.next = ctx.now + self.cfg.llqi();
        r.left = self.cfg.llqc().saturating_sub(1);
        self.drop_finished_retransmit(group);
    }

    fn send_specific(
        &self,
        ctx: &mut MldCtx<'_>,
        group: Ipv6Addr,
        sources: Vec<Ipv6Addr>,
        group_only: bool,
    ) {
        if ctx.our_address.is_none() || (sources.is_empty() && !group_only) {
            return;
        }
        ctx.stats.bump(Counter::MldQueriesSent(if group_only {
            "group"
        } else {
            "group_source"
        }));
        let q = self.query(group, sources, self.cfg.last_listener_query_interval_ms);
        // Specific queries go to the group being queried (§5.1.15).
        ctx.out.push((group, q));
    }

    fn retransmit_due(&mut self, ctx: &mut MldCtx<'_>) {
        let due: Vec<Ipv6Addr> = self
            .retransmits
            .iter()
            .filter(|(_, r)| r.next <= ctx.now)
            .map(|(&g, _)| g)
            .collect();
        for group in due {
            let Some(r) = self.retransmits.get_mut(&group) else {
                continue;
            };
            let (sources, group_query) =
                (r.sources.iter().copied().collect::<Vec<_>>(), r.group_query);
            r.left = r.left.saturating_sub(1);
            r.next = ctx.now + self.cfg.llqi();
            if r.left == 0 {
                self.retransmits.remove(&group);
            }
            if group_query {
                self.send_specific(ctx, group, Vec::new(), true);
            }
            self.send_specific(ctx, group, sources, false);
        }
    }

    fn drop_finished_retransmit(&mut self, group: Ipv6Addr) {
        if self
            .retransmits
            .get(&group)
            .is_some_and(|r| r.left == 0 || (r.sources.is_empty() && !r.group_query))
        {
            self.retransmits.remove(&group);
        }
    }

    fn expire(&mut self, ctx: &mut MldCtx<'_>) {
        let now = ctx.now;
        let mut emptied = Vec::new();
        for (&group, g) in self.groups.iter_mut() {
            g.sources.retain(|&source, until| {
                let keep = *until > now;
                if !keep {
                    tracing::info!(%source, %group, "MLD: listener timed out");
                    ctx.changed.push(Sg { source, group });
                }
                keep
            });
            if g.any_source_until.is_some_and(|t| t <= now) {
                tracing::info!(%group, "MLD: any-source listeners timed out");
                g.any_source_until = None;
            }
            if g.is_empty() {
                emptied.push(group);
            }
        }
        for group in emptied {
            self.groups.remove(&group);
            self.retransmits.remove(&group);
        }
        // Sources that timed out need no more queries.
        let groups = &self.groups;
        self.retransmits.retain(|group, r| match groups.get(group) {
            Some(g) => {
                r.sources.retain(|s| g.sources.contains_key(s));
                r.group_query &= g.any_source_until.is_some();
                !r.sources.is_empty() || r.group_query
            }
            None => false,
        });
    }

    fn drop_empty(&mut self, group: Ipv6Addr) {
        if self.groups.get(&group).is_some_and(Group::is_empty) {
            self.groups.remove(&group);
            self.retransmits.remove(&group);
        }
    }
}
