//! Routes, rules, proxy-ND entries and addresses over rtnetlink, all tagged with one
//! protocol number of our own (RTPROT / NDA_PROTOCOL / IFA_PROTO), so a restarted daemon
//! finds, reconciles and removes exactly its state.
//!
//! A [`Kernel`] talks to the network namespace of the thread that called [`Kernel::connect`]
//! (sockets belong to the namespace they were created in), whichever thread uses it later.
mod codec;
mod error;
pub(crate) mod genl;
mod link;
mod nl;
mod object;
mod tunsrc;

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

pub use error::{outcome_of, Op, RouteError};
pub use object::KObject;

use codec::Dumped;
pub(crate) use error::NlFailure;
use mipcast_proto::Outcome;
use nl::{Nl, Request};
use object::{install_rank, key, Key};

/// Our routing-protocol number (`ip route ... proto 158`): unassigned in
/// /etc/iproute2/rt_protos, below the 186+ range other daemons (bird, frr...) use.
pub const RTPROT_MIPCAST: u8 = 158;
pub use mipcast_proto::{RT_TABLE_LOCAL, RT_TABLE_MAIN};
/// Where [`Kernel::ensure_local_rule_moved`] puts the `lookup local` rule by default: after
/// the decapsulation rules (small prefs), before everything else.
pub const DEFAULT_LOCAL_RULE_PREF: u32 = 1000;
const RTPROT_KERNEL: u8 = 2;
const ADD: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
const DELETE: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// Handle on the kernel's routing state. Cheap to clone; clones share the sockets.
#[derive(Clone)]
pub struct Kernel {
    nl: Nl,
    genl: Arc<tunsrc::Seg6Genl>,
    protocol: u8,
}

/// What [`Kernel::reconcile`] (or [`Kernel::remove_all_ours`]) changed.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    pub added: Vec<KObject>,
    /// Desired objects that took the place of one of ours with the same kernel identity (an
    /// encap route whose tunnel destination changed), atomically.
    pub replaced: Vec<KObject>,
    pub removed: Vec<KObject>,
    /// Objects with our tag that are not a shape we install (older versions, hand-made with
    /// `proto 158`), removed too.
    pub removed_unrecognised: usize,
    pub failed: Vec<RouteError>,
}

/// The answer of [`Kernel::route_get`]: where the kernel would send a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteLookup {
    pub oif: u32,
    pub gateway: Option<Ipv6Addr>,
    pub table: u32,
}

/// One change of a batch, and how to name it in an error.
enum Subject {
    Object(Op, KObject),
    Other(String),
}

impl Kernel {
    /// Opens the sockets (in the calling thread's network namespace) and starts the rtnetlink
    /// connection task on the current tokio runtime. `protocol` tags everything we install;
    /// daemons use [`RTPROT_MIPCAST`].
    pub async fn connect(protocol: u8) -> Result<Kernel, RouteError> {
        Ok(Kernel {
            nl: Nl::connect()?,
            genl: Arc::new(tunsrc::Seg6Genl::open()?),
            protocol,
        })
    }

    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Installs `obj`; fails with EEXIST ("File exists") if an object with its identity
    /// exists. A proxy entry that exists without our tag is refused (the kernel would silently
    /// adopt it).
    pub async fn add(&self, obj: &KObject) -> Result<(), RouteError> {
        self.add_batch(std::slice::from_ref(obj))
            .await
            .into_iter()
            .next()
            .map_or(Ok(()), Err)
    }

    /// Installs `obj`, atomically taking the place of an object with the same kernel identity
    /// (routes: table, destination, source; proxy entries: address, interface): changing an
    /// encap route's tunnel destination leaves no unrouted window. Rules have no replace in
    /// the kernel; an identical rule already present counts as success. An address already
    /// present on the interface is taken over (made permanent, no DAD, tagged ours): the
    /// kernel may have autoconfigured the very address a mobile node derives from an RA.
    pub async fn replace(&self, obj: &KObject) -> Result<(), RouteError> {
        let obj = obj.normalized();
        if let KObject::ProxyNeigh { .. } = obj {
            self.refuse_foreign_proxy(&obj, Op::Replace).await?;
        }
        let flags = if matches!(obj, KObject::Rule { .. }) {
            ADD
        } else {
            REPLACE
        };
        match self
            .nl
            .ack(codec::new_message(&obj, self.protocol), flags)
            .await
        {
            Err(e) if matches!(obj, KObject::Rule { .. }) && e.errno == Some(libc::EEXIST) => {
                Ok(())
            }
            other => other.map_err(|e| e.on(Op::Replace, obj)),
        }
    }

    /// Deletes `obj`. Routes and rules are matched by the kernel together with our tag, so
    /// another daemon's object with the same selectors is never touched (ESRCH/ENOENT
    /// instead); proxy entries are checked against a dump first. Addresses are deleted by
    /// address, prefix length and interface alone (the kernel ignores IFA_PROTO there): pass
    /// only addresses this daemon added. Listing, reconciling and removing-all only ever
    /// delete addresses carrying our tag.
    pub async fn delete(&self, obj: &KObject) -> Result<(), RouteError> {
        let obj = obj.normalized();
        if let KObject::ProxyNeigh { .. } = obj {
            self.refuse_foreign_proxy(&obj, Op::Delete).await?;
        }
        self.nl
            .ack(codec::del_message(&obj, self.protocol), DELETE)
            .await
            .map_err(|e| e.on(Op::Delete, obj))
    }

    /// Installs many objects with netlink batching (a few hundred requests per datagram, one
    /// round of acknowledgements each). Routes go first, rules last, so no rule ever points
    /// at a half-filled table. Returns the failures, each naming its object; empty = all in.
    pub async fn add_batch(&self, objects: &[KObject]) -> Vec<RouteError> {
        let mut objects: Vec<KObject> = objects.iter().map(|o| o.normalized()).collect();
        objects.sort_by_key(install_rank);
        self.batch_of(Op::Add, objects).await
    }

    /// Deletes many objects in batches (rules first, routes last). Returns the failures.
    pub async fn delete_batch(&self, objects: &[KObject]) -> Vec<RouteError> {
        let mut objects: Vec<KObject> = objects.iter().map(|o| o.normalized()).collect();
        objects.sort_by_key(|o| std::cmp::Reverse(install_rank(o)));
        self.batch_of(Op::Delete, objects).await
    }

    /// Applies one run of changes (`op` on every object: adds and deletes as one batch each,
    /// replaces one by one) and returns one [`Outcome`] per object, in order, classified by
    /// the one errno policy. What drivers of the protocol cores call.
    pub async fn apply(&self, op: Op, objects: &[KObject]) -> Vec<Outcome> {
        // The kernel's failures name their object, not their place in the batch: a run that
        // holds one object twice (add, then add again) is cut where it repeats, so that each
        // failure belongs to exactly one change.
        let mut outcomes = Vec::with_capacity(objects.len());
        let mut rest = objects;
        while !rest.is_empty() {
            let mut seen = HashSet::new();
            let unique = rest
                .iter()
                .take_while(|o| seen.insert(o.normalized()))
                .count();
            let (now, later) = rest.split_at(unique);
            outcomes.extend(self.apply_distinct(op, now).await);
            rest = later;
        }
        outcomes
    }

    /// [`Self::apply`] of objects that are all different.
    async fn apply_distinct(&self, op: Op, objects: &[KObject]) -> Vec<Outcome> {
        let failures = match op {
            Op::Add => self.add_batch(objects).await,
            Op::Delete => self.delete_batch(objects).await,
            Op::Replace => {
                let mut failed = Vec::new();
                for o in objects {
                    if let Err(e) = self.replace(o).await {
                        failed.push(e);
                    }
                }
                failed
            }
        };
        let mut outcomes = vec![Outcome::Applied; objects.len()];
        for e in failures {
            let outcome = e.outcome();
            match e {
                RouteError::Object { object, .. } => {
                    for (o, slot) in objects.iter().zip(outcomes.iter_mut()) {
                        if o.normalized() == object {
                            *slot = outcome.clone();
                        }
                    }
                }
                // Not attributable to one object: none of the run can be trusted.
                _ => outcomes.iter_mut().for_each(|slot| *slot = outcome.clone()),
            }
        }
        outcomes
    }

    /// Adds or deletes `objects` in order, first refusing proxy entries that exist without
    /// our tag (the kernel neither refuses to adopt them on add nor checks the tag on delete).
    async fn batch_of(&self, op: Op, mut objects: Vec<KObject>) -> Vec<RouteError> {
        let mut failed = Vec::new();
        if objects
            .iter()
            .any(|o| matches!(o, KObject::ProxyNeigh { .. }))
        {
            let foreign = match self.foreign_among(&objects).await {
                Ok(foreign) => foreign,
                Err(e) => return objects.into_iter().map(|o| e.clone().on(op, o)).collect(),
            };
            objects.retain(|o| {
                let clash = foreign.contains(o);
                if clash {
                    failed.push(not_ours(op, *o));
                }
                !clash
            });
        }
        let changes = objects
            .into_iter()
            .map(|o| match op {
                Op::Delete => (
                    Subject::Object(op, o),
                    codec::del_message(&o, self.protocol),
                    DELETE,
                ),
                Op::Add | Op::Replace => (
                    Subject::Object(op, o),
                    codec::new_message(&o, self.protocol),
                    ADD,
                ),
            })
            .collect();
        failed.extend(self.run(changes).await);
        failed
    }

    /// Every route (all tables), rule, proxy entry and IPv6 address carrying our tag, in a
    /// shape we install.
    /// The `lookup local` rule of [`Self::ensure_local_rule_moved`] is not listed.
    pub async fn list_ours(&self) -> Result<Vec<KObject>, RouteError> {
        Ok(self
            .dump_ours()
            .await?
            .into_iter()
            .filter_map(|d| d.object)
            .collect())
    }

    /// Makes our tagged state equal `desired`: adds what is missing, replaces ours that share
    /// a kernel identity with a desired object but differ (atomic), removes ours that are not
    /// desired. Objects without our tag are never touched; a desired object that collides
    /// with one of them is reported in `failed`.
    pub async fn reconcile(
        &self,
        desired: &HashSet<KObject>,
    ) -> Result<ReconcileReport, RouteError> {
        let desired: HashSet<KObject> = desired.iter().map(|o| o.normalized()).collect();
        let dumped = self.dump_ours().await?;
        let proxies = self
            .dump_proxies()
            .await
            .map_err(|e| e.request("listing proxy neighbours"))?;
        let foreign = self.foreign(&proxies);

        let mut current: HashMap<Key, KObject> = HashMap::new();
        let mut unrecognised = Vec::new();
        let mut surplus = Vec::new();
        for d in dumped {
            match d.object {
                Some(obj) => {
                    if let Some(dup) = current.insert(key(&obj), obj) {
                        // Two of ours with one identity (different metrics): keep one.
                        surplus.push(dup);
                    }
                }
                None => unrecognised.push(d),
            }
        }
        let desired_keys: HashSet<Key> = desired.iter().map(key).collect();

        let mut report = ReconcileReport::default();
        let mut to_add = Vec::new();
        let mut to_replace = Vec::new();
        let mut sorted: Vec<KObject> = desired.iter().copied().collect();
        sorted.sort();
        for obj in sorted {
            match current.get(&key(&obj)) {
                Some(have) if *have == obj => {}
                Some(_) => to_replace.push(obj),
                None if foreign.contains(&obj) => report.failed.push(not_ours(Op::Add, obj)),
                None => to_add.push(obj),
            }
        }
        let mut to_remove: Vec<KObject> = current
            .values()
            .filter(|o| !desired_keys.contains(&key(o)))
            .copied()
            .collect();
        to_remove.extend(surplus);
        to_remove.sort();

        let add_failures = self.add_batch(&to_add).await;
        report.added = succeeded(&to_add, &add_failures);
        report.failed.extend(add_failures);

        let subjects = to_replace
            .iter()
            .map(|o| {
                let flags = if matches!(o, KObject::Rule { .. }) {
                    ADD
                } else {
                    REPLACE
                };
                (
                    Subject::Object(Op::Replace, *o),
                    codec::new_message(o, self.protocol),
                    flags,
                )
            })
            .collect();
        let replace_failures = self.run(subjects).await;
        report.replaced = succeeded(&to_replace, &replace_failures);
        report.failed.extend(replace_failures);

        self.remove(to_remove, unrecognised, &mut report).await;
        Ok(report)
    }

    /// Applies `changes` in order; each run of consecutive changes with one op is one netlink
    /// batch. One outcome per change.
    pub async fn apply_in_runs(&self, changes: &[(Op, KObject)]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut rest = changes;
        while let Some(&(op, _)) = rest.first() {
            let run = rest.iter().take_while(|(o, _)| *o == op).count();
            let (now, later) = rest.split_at(run);
            let objects: Vec<KObject> = now.iter().map(|(_, object)| *object).collect();
            outcomes.extend(self.apply(op, &objects).await);
            rest = later;
        }
        outcomes
    }

    /// [`Self::reconcile`], reported in one log line (`why`: start, reload) and a warning per
    /// object the kernel refused. The report's `failed` are for the daemon's error counter.
    pub async fn reconcile_logged(
        &self,
        desired: &HashSet<KObject>,
        why: &str,
    ) -> Result<ReconcileReport, RouteError> {
        let report = self.reconcile(desired).await.inspect_err(|e| {
            tracing::error!(why, error = %e, "cannot reconcile the kernel state");
        })?;
        for e in &report.failed {
            tracing::warn!(why, error = %e, "reconcile");
        }
        tracing::info!(
            why,
            wanted = desired.len(),
            added = report.added.len(),
            replaced = report.replaced.len(),
            removed = report.removed.len() + report.removed_unrecognised,
            failed = report.failed.len(),
            "kernel reconciled"
        );
        Ok(report)
    }

    /// At a daemon's stop: removes every object with our tag and puts the `lookup local` rule
    /// back at preference 0 ([`Self::restore_local_rule`]), logging each failure. Returns how
    /// many objects went and how many steps failed.
    pub async fn remove_ours_at_stop(&self, local_rule_pref: u32) -> (usize, usize) {
        let (removed, mut failed) = match self.remove_all_ours().await {
            Ok(report) => {
                for e in &report.failed {
                    tracing::warn!(error = %e, "removing kernel state");
                }
                (
                    report.removed.len() + report.removed_unrecognised,
                    report.failed.len(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list our kernel state");
                (0, 1)
            }
        };
        if let Err(e) = self.restore_local_rule(local_rule_pref).await {
            tracing::warn!(error = %e, "restoring the local rule");
            failed += 1;
        }
        (removed, failed)
    }

    /// Removes every object with our tag (except the `lookup local` rule, see
    /// [`Self::restore_local_rule`]).
    pub async fn remove_all_ours(&self) -> Result<ReconcileReport, RouteError> {
        let mut objects = Vec::new();
        let mut unrecognised = Vec::new();
        for d in self.dump_ours().await? {
            match d.object {
                Some(o) => objects.push(o),
                None => unrecognised.push(d),
            }
        }
        let mut report = ReconcileReport::default();
        self.remove(objects, unrecognised, &mut report).await;
        Ok(report)
    }

    async fn remove(
        &self,
        mut objects: Vec<KObject>,
        unrecognised: Vec<Dumped>,
        report: &mut ReconcileReport,
    ) {
        objects.sort_by_key(|o| std::cmp::Reverse(install_rank(o)));
        let subjects = objects
            .iter()
            .map(|o| {
                (
                    Subject::Object(Op::Delete, *o),
                    codec::del_message(o, self.protocol),
                    DELETE,
                )
            })
            .chain(unrecognised.into_iter().map(|d| {
                (
                    Subject::Other(format!("deleting {}", d.describe)),
                    d.delete,
                    DELETE,
                )
            }))
            .collect::<Vec<_>>();
        let total_other = subjects.len() - objects.len();
        let failures = self.run(subjects).await;
        let failed_other = failures
            .iter()
            .filter(|e| matches!(e, RouteError::Request { .. }))
            .count();
        report.removed.extend(succeeded(&objects, &failures));
        report.removed_unrecognised += total_other.saturating_sub(failed_other);
        report.failed.extend(failures);
    }

    /// Sets the namespace-wide outer source of seg6 encapsulation (`ip sr tunsrc set`).
    pub async fn set_seg6_tunsrc(&self, addr: Ipv6Addr) -> Result<(), RouteError> {
        self.genl
            .set_tunsrc(addr)
            .await
            .map_err(|e| e.request(format!("setting the seg6 tunnel source to {addr}")))
    }

    /// The namespace-wide seg6 tunnel source (`::` when unset).
    pub async fn get_seg6_tunsrc(&self) -> Result<Ipv6Addr, RouteError> {
        self.genl
            .get_tunsrc()
            .await
            .map_err(|e| e.request("reading the seg6 tunnel source"))
    }

    /// Moves the `lookup local` rule from pref 0 to `pref`, so decapsulation rules (smaller
    /// prefs) see tunnel packets addressed to local addresses first. Adds the rule at `pref`
    /// (tagged ours) if absent, then deletes the pref-0 one; idempotent.
    pub async fn ensure_local_rule_moved(&self, pref: u32) -> Result<(), RouteError> {
        if pref == 0 {
            return Err(NlFailure::local("pref 0 is where the rule already is")
                .request("moving the local rule"));
        }
        let rules = self.local_rules().await?;
        if !rules.iter().any(|(p, _)| *p == pref) {
            let rule = local_rule(pref);
            self.nl
                .ack(codec::new_message(&rule, self.protocol), ADD)
                .await
                .map_err(|e| e.on(Op::Add, rule))?;
        }
        if let Some((_, proto)) = rules.iter().find(|(p, _)| *p == 0) {
            let rule = local_rule(0);
            self.nl
                .ack(codec::del_message(&rule, *proto), DELETE)
                .await
                .map_err(|e| e.on(Op::Delete, rule))?;
        }
        Ok(())
    }

    /// The inverse of [`Self::ensure_local_rule_moved`], for shutdown: puts `lookup local`
    /// back at pref 0 (as the kernel created it) and deletes our rule at `pref`; idempotent.
    pub async fn restore_local_rule(&self, pref: u32) -> Result<(), RouteError> {
        let rules = self.local_rules().await?;
        if !rules.iter().any(|(p, _)| *p == 0) {
            let rule = local_rule(0);
            self.nl
                .ack(codec::new_message(&rule, RTPROT_KERNEL), ADD)
                .await
                .map_err(|e| e.on(Op::Add, rule))?;
        }
        if pref != 0
            && rules
                .iter()
                .any(|(p, proto)| *p == pref && *proto == self.protocol)
        {
            let rule = local_rule(pref);
            self.nl
                .ack(codec::del_message(&rule, self.protocol), DELETE)
                .await
                .map_err(|e| e.on(Op::Delete, rule))?;
        }
        Ok(())
    }

    /// The index of the interface named `name`.
    pub async fn ifindex(&self, name: &str) -> Result<u32, RouteError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let replies = match self.nl.query(RouteNetlinkMessage::GetLink(m), false).await {
            Err(e) if e.errno == Some(libc::ENODEV) => {
                return Err(RouteError::NoSuchInterface(name.to_owned()))
            }
            other => other.map_err(|e| e.request(format!("looking up interface {name:?}")))?,
        };
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| RouteError::NoSuchInterface(name.to_owned()))
    }

    /// Where the kernel would route a packet to `dst` (`ip -6 route get`), e.g. for an RPF
    /// check toward a multicast source; None when it has no usable route.
    pub async fn route_get(&self, dst: Ipv6Addr) -> Result<Option<RouteLookup>, RouteError> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.destination_prefix_length = 128;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
        let replies = match self.nl.query(RouteNetlinkMessage::GetRoute(m), false).await {
            Err(e)
                if matches!(
                    e.errno,
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN)
                ) =>
            {
                return Ok(None)
            }
            other => other.map_err(|e| e.request(format!("looking up the route to {dst}")))?,
        };
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(r) = reply else {
                continue;
            };
            if !matches!(r.header.kind, RouteType::Unicast | RouteType::Local) {
                return Ok(None);
            }
            let mut found = RouteLookup {
                oif: 0,
                gateway: None,
                table: u32::from(r.header.table),
            };
            for attr in r.attributes {
                match attr {
                    RouteAttribute::Oif(i) => found.oif = i,
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => found.gateway = Some(g),
                    RouteAttribute::Table(t) => found.table = t,
                    _ => {}
                }
            }
            return Ok((found.oif != 0).then_some(found));
        }
        Ok(None)
    }

    // ---- internals ----

    /// One acknowledged request, created (`create`) or deleted, for the capability probe.
    pub(crate) async fn request_raw(
        &self,
        message: RouteNetlinkMessage,
        create: bool,
        what: &str,
    ) -> Result<(), RouteError> {
        self.nl
            .ack(message, if create { ADD } else { DELETE })
            .await
            .map_err(|e| e.request(what))
    }

    /// Runs the changes as batches; returns one error per failed change.
    async fn run(&self, changes: Vec<(Subject, RouteNetlinkMessage, u16)>) -> Vec<RouteError> {
        let (subjects, requests): (Vec<Subject>, Vec<Request>) = changes
            .into_iter()
            .map(|(s, message, flags)| (s, Request { message, flags }))
            .unzip();
        let results = self.nl.batch(requests).await;
        subjects
            .into_iter()
            .zip(results)
            .filter_map(|(subject, result)| {
                let e = result.err()?;
                Some(match subject {
                    // Rules have no replace: an identical one being there is the goal.
                    Subject::Object(Op::Replace, KObject::Rule { .. })
                        if e.errno == Some(libc::EEXIST) =>
                    {
                        return None
                    }
                    Subject::Object(op, o) => e.on(op, o),
                    Subject::Other(what) => e.request(what),
                })
            })
            .collect()
    }

    /// Every object with our tag, recognised or not, except the `lookup local` rule.
    async fn dump_ours(&self) -> Result<Vec<Dumped>, RouteError> {
        let mut out = Vec::new();
        let mut routes = RouteMessage::default();
        routes.header.address_family = AddressFamily::Inet6;
        for reply in self
            .nl
            .query(RouteNetlinkMessage::GetRoute(routes), true)
            .await
            .map_err(|e| e.request("listing routes"))?
        {
            if let RouteNetlinkMessage::NewRoute(m) = reply {
                out.extend(codec::parse_route(&m));
            }
        }
        let mut rules = RuleMessage::default();
        rules.header.family = AddressFamily::Inet6;
        for reply in self
            .nl
            .query(RouteNetlinkMessage::GetRule(rules), true)
            .await
            .map_err(|e| e.request("listing rules"))?
        {
            if let RouteNetlinkMessage::NewRule(m) = reply {
                out.extend(
                    codec::parse_rule(&m)
                        .filter(|d| d.object.as_ref().and_then(codec::is_local_lookup).is_none()),
                );
            }
        }
        out.extend(
            self.dump_proxies()
                .await
                .map_err(|e| e.request("listing proxy neighbours"))?,
        );
        let mut addresses = AddressMessage::default();
        addresses.header.family = AddressFamily::Inet6;
        for reply in self
            .nl
            .query(RouteNetlinkMessage::GetAddress(addresses), true)
            .await
            .map_err(|e| e.request("listing addresses"))?
        {
            if let RouteNetlinkMessage::NewAddress(m) = reply {
                out.extend(codec::parse_address(&m));
            }
        }
        out.retain(|d| d.protocol == self.protocol);
        Ok(out)
    }

    async fn dump_proxies(&self) -> Result<Vec<Dumped>, NlFailure> {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.flags = NeighbourFlags::Proxy;
        let replies = self
            .nl
            .query(RouteNetlinkMessage::GetNeighbour(m), true)
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(n) => codec::parse_proxy(&n),
                _ => None,
            })
            .collect())
    }

    fn foreign(&self, proxies: &[Dumped]) -> HashSet<KObject> {
        proxies
            .iter()
            .filter(|d| d.protocol != self.protocol)
            .filter_map(|d| d.object)
            .collect()
    }

    /// The proxy entries among `objects` that exist without our tag. One RTM_GETNEIGH per
    /// entry (batched), not a dump: the cost follows the batch, not the size of the proxy
    /// table (a dump per batch made registrations O(bindings) each at 100k bindings).
    async fn foreign_among(&self, objects: &[KObject]) -> Result<HashSet<KObject>, NlFailure> {
        let proxies: Vec<KObject> = objects
            .iter()
            .filter(|o| matches!(o, KObject::ProxyNeigh { .. }))
            .copied()
            .collect();
        let requests = proxies
            .iter()
            .map(|o| Request {
                message: RouteNetlinkMessage::GetNeighbour(codec::proxy_get_message(o)),
                flags: NLM_F_REQUEST | NLM_F_ACK,
            })
            .collect();
        let mut foreign = HashSet::new();
        for (object, answer) in proxies
            .into_iter()
            .zip(self.nl.batch_with_replies(requests).await)
        {
            let replies = match answer {
                Ok(replies) => replies,
                // No entry for the address: nobody's to take over.
                Err(e) if e.errno == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            // The kernel answers with the entry it would adopt, which may be one for any
            // interface (no device): whoever's it is decides.
            let theirs = replies.iter().any(|r| match r {
                RouteNetlinkMessage::NewNeighbour(n) => {
                    codec::parse_proxy(n).is_some_and(|d| d.protocol != self.protocol)
                }
                _ => false,
            });
            if theirs {
                foreign.insert(object);
            }
        }
        Ok(foreign)
    }

    async fn refuse_foreign_proxy(&self, obj: &KObject, op: Op) -> Result<(), RouteError> {
        let foreign = self
            .foreign_among(std::slice::from_ref(obj))
            .await
            .map_err(|e| e.on(op, *obj))?;
        if foreign.contains(obj) {
            return Err(not_ours(op, *obj));
        }
        Ok(())
    }

    /// (pref, protocol) of every `lookup local` rule without selectors.
    async fn local_rules(&self) -> Result<Vec<(u32, u8)>, RouteError> {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet6;
        let replies = self
            .nl
            .query(RouteNetlinkMessage::GetRule(m), true)
            .await
            .map_err(|e| e.request("listing rules"))?;
        Ok(replies
            .into_iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRule(m) => codec::parse_rule(&m),
                _ => None,
            })
            .filter_map(|d| {
                Some((
                    d.object.as_ref().and_then(codec::is_local_lookup)?,
                    d.protocol,
                ))
            })
            .collect())
    }
}

fn local_rule(pref: u32) -> KObject {
    KObject::Rule {
        pref,
        from: None,
        to: None,
        ipproto: None,
        table: RT_TABLE_LOCAL,
    }
}

fn not_ours(op: Op, object: KObject) -> RouteError {
    RouteError::Object {
        op,
        object,
        errno: None,
        text: "an entry without our protocol tag exists; left alone".to_owned(),
    }
}

/// The objects of `attempted` that no error in `failures` names.
fn succeeded(attempted: &[KObject], failures: &[RouteError]) -> Vec<KObject> {
    let failed: HashSet<KObject> = failures
        .iter()
        .filter_map(|e| match e {
            RouteError::Object { object, .. } => Some(*object),
            _ => None,
        })
        .collect();
    attempted
        .iter()
        .filter(|o| !failed.contains(o))
        .copied()
        .collect()
}
