//! The mapping from bindings to the kernel objects that serve them.
//!
//! Per binding (HoA → CoA): an `HoA/128` encap route toward the CoA, and, when the kernel
//! answers neighbour solicitations for home addresses (`home_link.proxy: kernel`), a proxy-ND
//! entry for the HoA on the home link (see [`Plan::without_proxy_entries`]). Per distinct CoA: one decapsulation rule
//! `from CoA to HA ipproto 41 lookup <decap table>`, shared by every binding with that CoA
//! (reference counted). Once: the `HA/128 End.DT6 table main` route in the decap table.
//!
//! After a binding's care-of address changes, the previous CoA's rule may stay for a bounded
//! window ([`Plan::with_previous_coa_window`]): reverse-tunnelled packets the terminal sent
//! through its old care-of address before it learnt that we accepted the new one are still
//! in flight, and refusing them loses about a WAN round trip of upstream traffic per move. A
//! deregistration (the terminal came home) opens the same window for its last CoA. The rule
//! goes when the window ends, when the home address moves again or its binding expires, and
//! with everything else at shutdown; a restart does not restore it (reconciliation removes it).
//!
//! Changes are computed per [`Round`]: the shell feeds a burst of registrar actions into the
//! plan, then asks for the net difference between the state before the round and now, so a
//! binding removed and re-added in one burst costs nothing and a CoA whose last binding moves
//! away in the same burst another one arrives keeps its rule.
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, Millis, RT_TABLE_MAIN};

/// The fixed parameters of the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanParams {
    pub home_ifindex: u32,
    pub ha_address: Ipv6Addr,
    pub decap_table: u32,
    pub decap_rule_pref: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CoaState {
    refs: u32,
    /// Home addresses that moved away from this CoA whose window is still open.
    lingering: u32,
    /// Interface toward the CoA (the encap routes' device); None until the shell resolved it.
    oif: Option<u32>,
}

/// Desired kernel state for the current bindings.
#[derive(Debug, Clone)]
pub struct Plan {
    params: PlanParams,
    tunnels: HashMap<Ipv6Addr, Ipv6Addr>,
    coas: HashMap<Ipv6Addr, CoaState>,
    /// Whether each binding gets a kernel proxy-ND entry.
    proxy_entries: bool,
    /// Where decapsulated packets are looked up (main; a correspondent host: local).
    inner_table: u32,
    /// How long a previous CoA's tunnel is still accepted after a move (0: not at all).
    previous_coa_window_ms: u64,
    /// Per home address that moved: its previous CoA, accepted until then.
    lingers: HashMap<Ipv6Addr, (Ipv6Addr, Millis)>,
}

/// What changed in the plan since a round began: the before-values of every touched HoA and
/// CoA. Consumed by [`Plan::changes`] and [`Plan::end_round`].
#[derive(Debug, Default)]
pub struct Round {
    hoas: HashMap<Ipv6Addr, Option<Ipv6Addr>>,
    coas: HashMap<Ipv6Addr, CoaState>,
}

impl Round {
    /// Nothing touched: no binding and no previous CoA's window.
    pub fn is_empty(&self) -> bool {
        self.hoas.is_empty() && self.coas.is_empty()
    }

    /// Whether a binding changed (not only a previous CoA's window).
    pub fn touches_bindings(&self) -> bool {
        !self.hoas.is_empty()
    }

    /// Home addresses touched in this round.
    pub fn hoas(&self) -> impl Iterator<Item = &Ipv6Addr> {
        self.hoas.keys()
    }

    /// The CoA `hoa` was bound to before the round, if it was touched.
    pub fn before(&self, hoa: &Ipv6Addr) -> Option<Option<Ipv6Addr>> {
        self.hoas.get(hoa).copied()
    }
}

/// Net kernel changes of a round, in the order to apply them: adds (new rules before the
/// routes that rely on them are harmless either way), then atomic replaces, then deletes, so
/// a moving HoA is never unrouted and an old CoA's rule goes only after its routes moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub add: Vec<KObject>,
    pub replace: Vec<KObject>,
    pub delete: Vec<KObject>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.replace.is_empty() && self.delete.is_empty()
    }

    pub fn len(&self) -> usize {
        self.add.len() + self.replace.len() + self.delete.len()
    }
}

impl CoaState {
    fn accepted(&self) -> bool {
        self.refs > 0 || self.lingering > 0
    }
}

impl Plan {
    pub fn new(params: PlanParams) -> Plan {
        Plan {
            params,
            tunnels: HashMap::new(),
            coas: HashMap::new(),
            proxy_entries: true,
            inner_table: RT_TABLE_MAIN,
            previous_coa_window_ms: 0,
            lingers: HashMap::new(),
        }
    }

    /// After a move, the previous care-of address's tunnel is still accepted for `ms`
    /// (see the module documentation); 0 turns it off.
    pub fn with_previous_coa_window(mut self, ms: u64) -> Plan {
        self.previous_coa_window_ms = ms;
        self
    }

    pub fn previous_coa_window_ms(&self) -> u64 {
        self.previous_coa_window_ms
    }

    /// Decapsulated packets are looked up in `table` instead of main (a correspondent agent
    /// on the correspondent host itself: the inner packets are its own, in the local table).
    pub fn with_inner_table(mut self, table: u32) -> Plan {
        self.inner_table = table;
        self
    }

    /// No proxy-ND entries: the home agent answers solicitations itself
    /// ([`super::neighbour`]), or the home link is virtual and nobody solicits.
    pub fn without_proxy_entries(mut self) -> Plan {
        self.proxy_entries = false;
        self
    }

    pub fn params(&self) -> &PlanParams {
        &self.params
    }

    pub fn len(&self) -> usize {
        self.tunnels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// The CoA `hoa` is tunnelled to.
    pub fn tunnel(&self, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.tunnels.get(hoa).copied()
    }

    /// Bindings using `coa`.
    pub fn refs(&self, coa: &Ipv6Addr) -> u32 {
        self.coas.get(coa).map_or(0, |c| c.refs)
    }

    /// Whether tunnelled packets from `coa` are accepted: a binding uses it, or a home address
    /// left it less than the window ago.
    pub fn accepts(&self, coa: &Ipv6Addr) -> bool {
        self.coas.get(coa).is_some_and(CoaState::accepted)
    }

    /// The previous CoA still accepted for `hoa`, and until when.
    pub fn lingering(&self, hoa: &Ipv6Addr) -> Option<(Ipv6Addr, Millis)> {
        self.lingers.get(hoa).copied()
    }

    /// Every open previous-CoA window: (home address, previous CoA, until).
    pub fn lingers(&self) -> impl Iterator<Item = (Ipv6Addr, Ipv6Addr, Millis)> + '_ {
        self.lingers
            .iter()
            .map(|(hoa, (coa, until))| (*hoa, *coa, *until))
    }

    /// When the next previous-CoA window ends.
    pub fn next_linger_deadline(&self) -> Option<Millis> {
        self.lingers.values().map(|(_, until)| *until).min()
    }

    /// `hoa` moved away from `previous` (or deregistered from it) at `now`: its tunnel is
    /// accepted for the window (a window of an earlier move of `hoa` ends here). Nothing when the window is 0 or the
    /// home address is bound to `previous` again.
    pub fn linger(&mut self, round: &mut Round, hoa: Ipv6Addr, previous: Ipv6Addr, now: Millis) {
        self.unlinger(round, hoa);
        if self.previous_coa_window_ms == 0 || self.tunnels.get(&hoa) == Some(&previous) {
            return;
        }
        self.touch(round, previous);
        self.coas
            .entry(previous)
            .or_insert(CoaState {
                refs: 0,
                lingering: 0,
                oif: None,
            })
            .lingering += 1;
        self.lingers
            .insert(hoa, (previous, now.plus_ms(self.previous_coa_window_ms)));
    }

    /// Ends `hoa`'s previous-CoA window, if it has one (its binding expired or was refused).
    pub fn unlinger(&mut self, round: &mut Round, hoa: Ipv6Addr) {
        let Some((coa, _)) = self.lingers.remove(&hoa) else {
            return;
        };
        self.touch(round, coa);
        if let Some(c) = self.coas.get_mut(&coa) {
            c.lingering = c.lingering.saturating_sub(1);
        }
    }

    /// Ends the windows that are over at `now`; returns (home address, previous CoA) of each.
    pub fn expire_lingers(&mut self, round: &mut Round, now: Millis) -> Vec<(Ipv6Addr, Ipv6Addr)> {
        let mut over: Vec<(Ipv6Addr, Ipv6Addr)> = self
            .lingers
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(hoa, (coa, _))| (*hoa, *coa))
            .collect();
        over.sort();
        for (hoa, _) in &over {
            self.unlinger(round, *hoa);
        }
        over
    }

    /// Binds `hoa` to `coa` (None: unbinds it), recording before-values in `round`.
    pub fn set(&mut self, round: &mut Round, hoa: Ipv6Addr, coa: Option<Ipv6Addr>) {
        let old = self.tunnels.get(&hoa).copied();
        round.hoas.entry(hoa).or_insert(old);
        if old == coa {
            return;
        }
        if let Some(old) = old {
            self.touch(round, old);
            if let Some(c) = self.coas.get_mut(&old) {
                c.refs = c.refs.saturating_sub(1);
            }
            self.tunnels.remove(&hoa);
        }
        if let Some(new) = coa {
            self.touch(round, new);
            self.coas
                .entry(new)
                .or_insert(CoaState {
                    refs: 0,
                    lingering: 0,
                    oif: None,
                })
                .refs += 1;
            self.tunnels.insert(hoa, new);
        }
    }

    fn touch(&self, round: &mut Round, coa: Ipv6Addr) {
        if let Entry::Vacant(e) = round.coas.entry(coa) {
            e.insert(self.coas.get(&coa).copied().unwrap_or(CoaState {
                refs: 0,
                lingering: 0,
                oif: None,
            }));
        }
    }

    /// Care-of addresses in use whose outgoing interface is not known yet.
    pub fn unresolved(&self, round: &Round) -> Vec<Ipv6Addr> {
        round
            .coas
            .keys()
            .filter(|c| {
                self.coas
                    .get(c)
                    .is_some_and(|s| s.refs > 0 && s.oif.is_none())
            })
            .copied()
            .collect()
    }

    /// Records the interface toward `coa` (found by a route lookup).
    pub fn resolve(&mut self, coa: Ipv6Addr, oif: u32) {
        if let Some(c) = self.coas.get_mut(&coa) {
            c.oif = Some(oif);
        }
    }

    /// The net kernel changes between the state before `round` and now.
    pub fn changes(&self, round: &Round) -> Changes {
        let mut out = Changes::default();
        for (&hoa, &before) in &round.hoas {
            let after = self.tunnels.get(&hoa).copied();
            match (before, after) {
                (None, Some(coa)) => {
                    out.add.extend(self.proxy(hoa));
                    out.add.push(self.encap(hoa, coa, self.oif_now(coa)));
                }
                (Some(coa), None) => {
                    out.delete
                        .push(self.encap(hoa, coa, self.oif_before(round, coa)));
                    out.delete.extend(self.proxy(hoa));
                }
                (Some(b), Some(a)) if a != b => {
                    out.replace.push(self.encap(hoa, a, self.oif_now(a)));
                }
                _ => {}
            }
        }
        for (&coa, before) in &round.coas {
            let now = self.accepts(&coa);
            if !before.accepted() && now {
                out.add.push(self.rule(coa));
            } else if before.accepted() && !now {
                out.delete.push(self.rule(coa));
            }
        }
        // Deterministic order: the kernel does not care, tests and logs do.
        out.add.sort();
        out.replace.sort();
        out.delete.sort();
        out
    }

    /// Forgets care-of addresses no binding uses any more. Call once the round's changes
    /// (and any rollback computed from them) are built.
    pub fn end_round(&mut self, round: Round) {
        for coa in round.coas.keys() {
            if !self.accepts(coa) {
                self.coas.remove(coa);
            }
        }
    }

    /// Unbinds the `failed` home addresses of `round` (their registrations are revoked) in a
    /// new round, and returns it with the changes that take their objects out of the kernel:
    /// what the round added for them, and, for a failed move, the route to the previous CoA
    /// that the refused replace left in place. Apply the deletes tolerating "not found".
    pub fn withdraw(&mut self, round: &Round, failed: &HashSet<Ipv6Addr>) -> (Round, Changes) {
        let mut undo = Round::default();
        let mut stale = Vec::new();
        for hoa in failed {
            let Some(before) = round.before(hoa) else {
                continue;
            };
            let current = self.tunnels.get(hoa).copied();
            if let Some(old) = before.filter(|old| Some(*old) != current) {
                stale.push(self.encap(*hoa, old, self.oif_before(round, old)));
            }
            // A revoked binding's previous CoA is no longer accepted either.
            self.unlinger(&mut undo, *hoa);
            self.set(&mut undo, *hoa, None);
        }
        let mut changes = self.changes(&undo);
        changes.delete.extend(stale);
        changes.delete.sort();
        changes.delete.dedup();
        (undo, changes)
    }

    /// Home addresses whose binding depends on `object` in `round`: the HoA of a route or
    /// proxy entry; for a CoA's rule, every HoA of the round now tunnelled to that CoA.
    pub fn dependents(&self, round: &Round, object: &KObject) -> Vec<Ipv6Addr> {
        match object {
            KObject::EncapRoute { dst, .. } => vec![dst.ip()],
            KObject::ProxyNeigh { addr, .. } => vec![*addr],
            KObject::Rule {
                from: Some(from), ..
            } => round
                .hoas
                .keys()
                .filter(|h| self.tunnels.get(h) == Some(&from.ip()))
                .copied()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Everything that should be in the kernel now (for reconciliation at start).
    pub fn desired(&self) -> HashSet<KObject> {
        let mut out: HashSet<KObject> = HashSet::with_capacity(self.tunnels.len() * 2 + 1);
        out.insert(self.decap_route());
        for (&hoa, &coa) in &self.tunnels {
            out.extend(self.proxy(hoa));
            out.insert(self.encap(hoa, coa, self.oif_now(coa)));
        }
        for (&coa, state) in &self.coas {
            if state.accepted() {
                out.insert(self.rule(coa));
            }
        }
        out
    }

    /// All care-of addresses in use whose interface is unknown (after a restore).
    pub fn all_unresolved(&self) -> Vec<Ipv6Addr> {
        self.coas
            .iter()
            .filter(|(_, s)| s.refs > 0 && s.oif.is_none())
            .map(|(c, _)| *c)
            .collect()
    }

    /// The one decapsulation route: tunnel packets to the HA address that a CoA rule sent to
    /// the decap table are decapsulated and the inner packet routed by `main`.
    pub fn decap_route(&self) -> KObject {
        KObject::DecapRoute {
            local: self.params.ha_address,
            oif: self.params.home_ifindex,
            table: self.params.decap_table,
            inner_table: self.inner_table,
        }
    }

    fn oif_now(&self, coa: Ipv6Addr) -> u32 {
        self.coas
            .get(&coa)
            .and_then(|c| c.oif)
            .unwrap_or(self.params.home_ifindex)
    }

    fn oif_before(&self, round: &Round, coa: Ipv6Addr) -> u32 {
        round
            .coas
            .get(&coa)
            .and_then(|c| c.oif)
            .unwrap_or_else(|| self.oif_now(coa))
    }

    fn proxy(&self, hoa: Ipv6Addr) -> Option<KObject> {
        self.proxy_entries.then_some(KObject::ProxyNeigh {
            addr: hoa,
            ifindex: self.params.home_ifindex,
        })
    }

    fn encap(&self, hoa: Ipv6Addr, coa: Ipv6Addr, oif: u32) -> KObject {
        KObject::EncapRoute {
            dst: Ipv6Network::from(hoa),
            src: None,
            tunnel_dst: coa,
            oif,
            table: RT_TABLE_MAIN,
        }
    }

    fn rule(&self, coa: Ipv6Addr) -> KObject {
        KObject::Rule {
            pref: self.params.decap_rule_pref,
            from: Some(Ipv6Network::from(coa)),
            to: Some(Ipv6Network::from(self.params.ha_address)),
            ipproto: Some(IPPROTO_IPV6),
            table: self.params.decap_table,
        }
    }
}

/// IPv6-in-IPv6 (RFC 2473).
const IPPROTO_IPV6: u8 = 41;

#[cfg(test)]
mod tests {
    use super::*;

    const HOME_IF: u32 = 2;
    const WAN_IF: u32 = 3;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn plan() -> Plan {
        Plan::new(PlanParams {
            home_ifindex: HOME_IF,
            ha_address: a("2001:db8:1::1"),
            decap_table: 3600,
            decap_rule_pref: 10,
        })
    }

    // Expected objects are spelt out field by field, independently of the code's helpers.
    fn proxy(hoa: &str) -> KObject {
        KObject::ProxyNeigh {
            addr: a(hoa),
            ifindex: HOME_IF,
        }
    }
    fn encap(hoa: &str, coa: &str, oif: u32) -> KObject {
        KObject::EncapRoute {
            dst: format!("{hoa}/128").parse().unwrap(),
            src: None,
            tunnel_dst: a(coa),
            oif,
            table: 254,
        }
    }
    fn rule(coa: &str) -> KObject {
        KObject::Rule {
            pref: 10,
            from: Some(format!("{coa}/128").parse().unwrap()),
            to: Some("2001:db8:1::1/128".parse().unwrap()),
            ipproto: Some(41),
            table: 3600,
        }
    }
    fn sorted(mut v: Vec<KObject>) -> Vec<KObject> {
        v.sort();
        v
    }

    /// One round binding `hoa` to `coa` (resolved to WAN_IF), committed.
    fn bind(p: &mut Plan, hoa: &str, coa: Option<&str>) -> Changes {
        let mut r = Round::default();
        p.set(&mut r, a(hoa), coa.map(a));
        for c in p.unresolved(&r) {
            p.resolve(c, WAN_IF);
        }
        let ch = p.changes(&r);
        p.end_round(r);
        ch
    }

    #[test]
    fn first_binding_adds_proxy_route_and_rule() {
        let mut p = plan();
        let ch = bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        assert_eq!(
            ch.add,
            sorted(vec![
                proxy("2001:db8:1::100"),
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF),
                rule("2001:db8:2::9"),
            ])
        );
        assert!(ch.replace.is_empty() && ch.delete.is_empty());
    }

    #[test]
    fn rules_are_shared_and_reference_counted() {
        let mut p = plan();
        bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        let second = bind(&mut p, "2001:db8:1::101", Some("2001:db8:2::9"));
        assert_eq!(
            second.add,
            sorted(vec![
                proxy("2001:db8:1::101"),
                encap("2001:db8:1::101", "2001:db8:2::9", WAN_IF)
            ]),
            "no second rule for the same CoA"
        );
        assert_eq!(p.refs(&a("2001:db8:2::9")), 2);
        let first_gone = bind(&mut p, "2001:db8:1::100", None);
        assert_eq!(
            first_gone.delete,
            sorted(vec![
                proxy("2001:db8:1::100"),
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF)
            ]),
            "the rule stays while another binding uses the CoA"
        );
        let last_gone = bind(&mut p, "2001:db8:1::101", None);
        assert!(last_gone.delete.contains(&rule("2001:db8:2::9")));
        assert_eq!(last_gone.delete.len(), 3);
        assert!(p.is_empty());
        assert_eq!(p.desired(), HashSet::from([p.decap_route()]));
    }

    #[test]
    fn coa_change_replaces_the_route_and_moves_the_rule() {
        let mut p = plan();
        bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        let ch = bind(&mut p, "2001:db8:1::100", Some("2001:db8:3::9"));
        assert_eq!(ch.add, vec![rule("2001:db8:3::9")]);
        assert_eq!(
            ch.replace,
            vec![encap("2001:db8:1::100", "2001:db8:3::9", WAN_IF)]
        );
        assert_eq!(ch.delete, vec![rule("2001:db8:2::9")]);
        // The proxy entry is untouched: the HoA never stops being answered for.
        assert!(!ch.add.contains(&proxy("2001:db8:1::100")));
        assert_eq!(p.refs(&a("2001:db8:2::9")), 0);
        assert_eq!(p.refs(&a("2001:db8:3::9")), 1);
    }

    #[test]
    fn refresh_with_same_coa_changes_nothing() {
        let mut p = plan();
        bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        assert!(bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9")).is_empty());
    }

    #[test]
    fn a_round_yields_the_net_difference() {
        let mut p = plan();
        bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        let mut r = Round::default();
        // Removed and re-added with the same CoA, and a CoA's only binding leaving while a
        // new one arrives: nothing for the kernel.
        p.set(&mut r, a("2001:db8:1::100"), None);
        p.set(&mut r, a("2001:db8:1::100"), Some(a("2001:db8:2::9")));
        assert!(p.changes(&r).is_empty());
        p.set(&mut r, a("2001:db8:1::100"), None);
        p.set(&mut r, a("2001:db8:1::200"), Some(a("2001:db8:2::9")));
        let ch = p.changes(&r);
        assert_eq!(
            ch.add,
            sorted(vec![
                proxy("2001:db8:1::200"),
                encap("2001:db8:1::200", "2001:db8:2::9", WAN_IF)
            ])
        );
        assert_eq!(
            ch.delete,
            sorted(vec![
                proxy("2001:db8:1::100"),
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF)
            ])
        );
        p.end_round(r);
        assert_eq!(p.refs(&a("2001:db8:2::9")), 1);
    }

    #[test]
    fn failed_bindings_are_withdrawn_with_their_rule() {
        let mut p = plan();
        bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        let mut r = Round::default();
        p.set(&mut r, a("2001:db8:1::100"), Some(a("2001:db8:3::9"))); // move
        p.set(&mut r, a("2001:db8:1::101"), Some(a("2001:db8:3::9"))); // new
        p.set(&mut r, a("2001:db8:1::102"), Some(a("2001:db8:4::9"))); // new, succeeds
        for c in p.unresolved(&r) {
            p.resolve(c, WAN_IF);
        }
        // The rule for 3::9 failed: both bindings that needed it fail, the third does not.
        let mut deps = p.dependents(&r, &rule("2001:db8:3::9"));
        deps.sort();
        assert_eq!(deps, vec![a("2001:db8:1::100"), a("2001:db8:1::101")]);
        let failed: HashSet<_> = deps.into_iter().collect();
        let (undo, ch) = p.withdraw(&r, &failed);
        assert!(ch.add.is_empty() && ch.replace.is_empty(), "{ch:?}");
        // Everything of both failed bindings goes, including the moving one's route to its
        // previous CoA (the refused replace left it) and the rule that did get in.
        assert_eq!(
            ch.delete,
            sorted(vec![
                proxy("2001:db8:1::100"),
                encap("2001:db8:1::100", "2001:db8:3::9", WAN_IF),
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF),
                proxy("2001:db8:1::101"),
                encap("2001:db8:1::101", "2001:db8:3::9", WAN_IF),
                rule("2001:db8:3::9"),
            ])
        );
        p.end_round(r);
        p.end_round(undo);
        assert_eq!(p.tunnel(&a("2001:db8:1::100")), None);
        assert_eq!(p.tunnel(&a("2001:db8:1::101")), None);
        assert_eq!(p.tunnel(&a("2001:db8:1::102")), Some(a("2001:db8:4::9")));
        assert_eq!(p.refs(&a("2001:db8:3::9")), 0);
        assert_eq!(p.refs(&a("2001:db8:2::9")), 0);
        assert_eq!(p.desired().len(), 1 + 2 + 1);
    }

    #[test]
    fn without_proxy_entries_a_binding_is_its_route_and_rule() {
        let mut p = plan().without_proxy_entries();
        let ch = bind(&mut p, "2001:db8:1::100", Some("2001:db8:2::9"));
        assert_eq!(
            ch.add,
            sorted(vec![
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF),
                rule("2001:db8:2::9"),
            ])
        );
        assert!(!p
            .desired()
            .iter()
            .any(|o| matches!(o, KObject::ProxyNeigh { .. })));
        let gone = bind(&mut p, "2001:db8:1::100", None);
        assert_eq!(
            gone.delete,
            sorted(vec![
                encap("2001:db8:1::100", "2001:db8:2::9", WAN_IF),
                rule("2001:db8:2::9"),
            ])
        );
    }

    #[test]
    fn unresolved_coa_falls_back_to_the_home_interface() {
        let mut p = plan();
        let mut r = Round::default();
        p.set(&mut r, a("2001:db8:1::100"), Some(a("2001:db8:2::9")));
        assert_eq!(p.unresolved(&r), vec![a("2001:db8:2::9")]);
        let ch = p.changes(&r);
        assert!(ch
            .add
            .contains(&encap("2001:db8:1::100", "2001:db8:2::9", HOME_IF)));
    }

    #[test]
    fn desired_matches_what_rounds_added() {
        let mut p = plan();
        let mut added = HashSet::new();
        for i in 0..50u16 {
            let hoa = format!("2001:db8:1::{:x}", 0x100 + i);
            let coa = format!("2001:db8:2::{}", i % 7);
            added.extend(bind(&mut p, &hoa, Some(&coa)).add);
        }
        added.insert(p.decap_route());
        assert_eq!(p.desired(), added);
        assert_eq!(added.len(), 1 + 50 * 2 + 7);
    }
}
