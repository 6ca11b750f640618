//! What must hold of the whole system, checked from the outside: the fake kernels against
//! the cores' own views, and the delivery path of every registered terminal.
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, Millis, RT_TABLE_MAIN};
use mobile_node::core::reg::{PeerKind, State};
use mobile_node::core::Attach;

use crate::kernel::FakeKernel;
use crate::record::NodeId;
use crate::topology as topo;
use crate::world::World;

fn host(a: Ipv6Addr) -> Ipv6Network {
    Ipv6Network::from(a)
}

/// No kernel object without an owner: every object the home agent or an MMA installed
/// serves a binding its core holds (and is in the core's desired set); every MFC entry is a
/// served terminal's; each mobile node's kernel is exactly what its core believes it holds.
pub fn ownership(w: &World) -> Result<(), String> {
    let now = crate::record::now_at(w.now);
    let ha_bindings = w.ha.core.status(now);
    let hoas: BTreeSet<Ipv6Addr> = ha_bindings.iter().map(|b| b.hoa).collect();
    let mut coas: BTreeSet<Ipv6Addr> = ha_bindings.iter().map(|b| b.coa).collect();
    // A previous care-of address in its window after a move or a deregistration is owned by
    // the window, which is bounded.
    let window = w.ha.core.plan().previous_coa_window_ms();
    for (hoa, previous, until) in w.ha.core.plan().lingers() {
        if until > now.mono.plus_ms(window) {
            return Err(format!(
                "home agent accepts {previous}, previous CoA of {hoa}, until {until:?}: beyond the {window} ms window"
            ));
        }
        coas.insert(previous);
    }
    let desired: BTreeSet<KObject> =
        w.ha.core
            .desired()
            .into_iter()
            .map(|o| o.normalized())
            .collect();
    for o in w.ha.kernel.dynamic_objects() {
        // A delete the kernel refused: the core holds it as stale and deletes it again.
        if w.ha.core.stale().any(|s| s.normalized() == *o) {
            continue;
        }
        let owned = match *o {
            KObject::EncapRoute { dst, .. } => hoas.contains(&dst.ip()),
            KObject::ProxyNeigh { addr, .. } => hoas.contains(&addr),
            KObject::Rule { from: Some(f), .. } => coas.contains(&f.ip()),
            _ => false,
        };
        if !owned || !desired.contains(o) {
            return Err(format!(
                "home agent kernel holds {o} that no binding owns (bindings: {ha_bindings:?})"
            ));
        }
    }
    for (s, m) in w.mmas.iter().enumerate() {
        let terminals: BTreeSet<Ipv6Addr> = m.core.terminals().map(|b| b.hoa).collect();
        let desired: BTreeSet<KObject> = m
            .core
            .desired_objects()
            .into_iter()
            .map(|o| o.normalized())
            .collect();
        for o in m.kernel.dynamic_objects() {
            let owner = mma::core::plan::terminal_of(o);
            if !owner.is_some_and(|h| terminals.contains(&h)) || !desired.contains(o) {
                return Err(format!(
                    "MMA {s} kernel holds {o} that no terminal owns (terminals: {terminals:?})"
                ));
            }
        }
        let groups: BTreeSet<Ipv6Addr> = m.core.desired_groups().into_iter().collect();
        for (source, group) in &m.kernel.mfc {
            if *source != topo::mma_addr(s) || !groups.contains(group) {
                return Err(format!(
                    "MMA {s} kernel holds MFC ({source}, {group}) that no served terminal owns"
                ));
            }
        }
    }
    for (t, mn) in w.mns.iter().enumerate() {
        mn_matches_core(t, &mn.kernel, mn.core.applied())?;
    }
    Ok(())
}

/// The mobile node's kernel is what its core recorded as applied: nothing it does not know of,
/// nothing it believes in vain.
fn mn_matches_core(
    t: usize,
    k: &FakeKernel,
    applied: &mobile_node::core::kernel::Desired,
) -> Result<(), String> {
    let mut believed: BTreeSet<KObject> = applied.objects.iter().map(|o| o.normalized()).collect();
    believed.extend(applied.addresses.iter().map(|a| a.object()));
    believed.extend(applied.default_route.map(|r| r.object().normalized()));
    if believed != k.objects {
        return Err(format!(
            "terminal {t}: kernel objects {:?} but the core believes {:?}",
            k.objects, believed
        ));
    }
    let members: BTreeSet<(u32, Ipv6Addr, Ipv6Addr)> = applied
        .memberships
        .iter()
        .map(|m| (m.ifindex, m.group, m.source))
        .collect();
    if members != k.memberships {
        return Err(format!(
            "terminal {t}: kernel memberships {:?} but the core believes {members:?}",
            k.memberships
        ));
    }
    if applied.marked_groups != k.marks {
        return Err(format!(
            "terminal {t}: kernel marks {:?} but the core believes {:?}",
            k.marks, applied.marked_groups
        ));
    }
    Ok(())
}

/// The mobile node core's interval between retries of refused kernel changes.
const KERNEL_RETRY_MS: u64 = 1000;

/// Where a terminal is, as far as its registrations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Registered in site `site` through radio `ifindex`, every registration acknowledged.
    InSite { site: usize, ifindex: u32 },
    /// At home, every deregistration acknowledged.
    Home,
    /// Moving, waiting for an acknowledgement, or in a state that is not an end state.
    NotSettled,
}

/// Whether terminal `t` believes it is registered (or home) and the world agrees that its
/// radio is where it believes.
pub fn settled(w: &World, t: usize) -> Settled {
    let st = w.mns[t].core.status(Millis(w.now));
    // A change its kernel refused is asked for again at the next event, at the latest 1 s
    // later (the core's retry timer): until then the terminal is not settled.
    let retrying = w.mns[t]
        .kernel
        .last_refusal_ms
        .is_some_and(|at| w.now < at + KERNEL_RETRY_MS + 10);
    if retrying || st.registrations.iter().any(|r| r.state != State::Bound) {
        return Settled::NotSettled;
    }
    match st.attachment {
        Attach::Site { ifindex, mma } => {
            let Some(site) = (0..w.mmas.len()).find(|s| topo::mma_addr(*s) == mma) else {
                return Settled::NotSettled;
            };
            let radio = (ifindex - topo::IF_A) as usize;
            let on_site = w.mns[t]
                .radios
                .get(radio)
                .copied()
                .flatten()
                .is_some_and(|l| w.links[l].site == Some(site));
            let mma_ok = st.registrations.iter().any(|r| {
                r.peer == mma && r.request.kind == PeerKind::Mma && r.request.lifetime_s > 0
            });
            let ha_ok = st.registrations.iter().any(|r| {
                r.peer == topo::ha_addr()
                    && r.request.kind == PeerKind::HomeAgent
                    && r.request.lifetime_s > 0
                    && r.request.alt_coa == st.care_of_address
            });
            if on_site && mma_ok && ha_ok {
                Settled::InSite { site, ifindex }
            } else {
                Settled::NotSettled
            }
        }
        Attach::Home { ifindex } => {
            let radio = (ifindex - topo::IF_A) as usize;
            let home = w.mns[t].radios.get(radio).copied().flatten() == Some(0);
            if home && st.registrations.is_empty() {
                Settled::Home
            } else {
                Settled::NotSettled
            }
        }
        _ => Settled::NotSettled,
    }
}

/// Every settled terminal has exactly one delivery path: the home agent's route HoA → its
/// site's MMA, that MMA's route HoA → G and its (MMA, G) MFC entry, and the terminal's (G, MMA)
/// membership on a radio that is on a link of that site; no membership from another MMA. A
/// terminal settled at home has no binding, route or proxy entry at the home agent.
pub fn delivery(w: &World) -> Result<(), String> {
    for t in 0..w.mns.len() {
        match settled(w, t) {
            Settled::InSite { site, .. } => delivery_in_site(w, t, site)?,
            Settled::Home => {
                let hoa = topo::hoa(t);
                // (A delete the kernel refused is retried within a second: that window is
                // the home agent's to close, and the ownership check follows it.)
                let stale = |o: &KObject| w.ha.core.stale().any(|s| s.normalized() == *o);
                if w.ha.kernel.dynamic_objects().any(|o| match *o {
                    KObject::EncapRoute { dst, .. } => dst == host(hoa) && !stale(o),
                    KObject::ProxyNeigh { addr, .. } => addr == hoa && !stale(o),
                    _ => false,
                }) {
                    return Err(format!(
                        "terminal {t} is home but the home agent still tunnels it"
                    ));
                }
                if !w.mns[t].kernel.memberships.is_empty() {
                    return Err(format!("terminal {t} is home but holds memberships"));
                }
            }
            Settled::NotSettled => {}
        }
    }
    Ok(())
}

fn delivery_in_site(w: &World, t: usize, site: usize) -> Result<(), String> {
    let (hoa, g, mma) = (topo::hoa(t), topo::group(t), topo::mma_addr(site));
    let tunnel = w.ha.kernel.objects.iter().find_map(|o| match *o {
        KObject::EncapRoute {
            dst,
            tunnel_dst,
            table: RT_TABLE_MAIN,
            src: None,
            ..
        } if dst == host(hoa) => Some(tunnel_dst),
        _ => None,
    });
    if tunnel != Some(mma) {
        return Err(format!(
            "terminal {t} registered in site {site}: home agent tunnels {hoa} to {tunnel:?}, not {mma}"
        ));
    }
    let k = &w.mmas[site].kernel;
    let to_group = k.objects.iter().any(|o| {
        matches!(*o, KObject::EncapRoute { dst, tunnel_dst, src: None, .. }
            if dst == host(hoa) && tunnel_dst == g)
    });
    if !to_group || !k.mfc.contains(&(mma, g)) {
        return Err(format!(
            "terminal {t} registered in site {site}: MMA lacks HoA→G ({to_group}) or MFC (MMA, G) ({})",
            k.mfc.contains(&(mma, g))
        ));
    }
    let mk = &w.mns[t].kernel;
    let receiving = mk
        .memberships
        .iter()
        .filter(|(ifindex, group, source)| {
            let radio = (*ifindex - topo::IF_A) as usize;
            *group == g
                && *source == mma
                && w.mns[t]
                    .radios
                    .get(radio)
                    .copied()
                    .flatten()
                    .is_some_and(|l| w.links[l].site == Some(site))
        })
        .count();
    if receiving == 0 {
        return Err(format!(
            "terminal {t} registered in site {site}: no (G, MMA) membership on a radio in the site ({:?})",
            mk.memberships
        ));
    }
    if let Some(other) = mk.memberships.iter().find(|(_, _, s)| *s != mma) {
        return Err(format!(
            "terminal {t} registered in site {site} also joined {other:?}"
        ));
    }
    // Another MMA's multicast path would deliver a second copy if the terminal were there;
    // the terminal only joins its MMA's, so that is not a second path. Nothing more to check.
    Ok(())
}

/// After everything deregistered or expired: no binding anywhere, nothing but the constant
/// objects in the home agent's and the MMAs' kernels.
pub fn pristine(w: &World) -> Result<(), String> {
    let now = crate::record::now_at(w.now);
    if !w.ha.core.status(now).is_empty() || !w.ha.kernel.is_pristine() {
        return Err(format!(
            "home agent not clean: bindings {:?}, kernel {:?}",
            w.ha.core.status(now),
            w.ha.kernel.dynamic_objects().collect::<Vec<_>>()
        ));
    }
    for (s, m) in w.mmas.iter().enumerate() {
        if m.core.terminals().next().is_some() || !m.kernel.is_pristine() {
            return Err(format!(
                "MMA {s} not clean: terminals {:?}, kernel {:?}, mfc {:?}",
                m.core.terminal_status(Millis(w.now)),
                m.kernel.dynamic_objects().collect::<Vec<_>>(),
                m.kernel.mfc
            ));
        }
    }
    Ok(())
}

/// Both instant invariants.
pub fn check(w: &World) -> Result<(), String> {
    ownership(w)?;
    delivery(w)
}

/// For reports: which node a failure is about.
pub fn describe(w: &World, node: NodeId) -> String {
    match node {
        NodeId::Ha => format!("{:?}", w.ha.core.status(crate::record::now_at(w.now))),
        NodeId::Mma(s) => format!("{:?}", w.mmas[s].core.terminal_status(Millis(w.now))),
        NodeId::Mn(t) => format!("{:?}", w.mn_status(t)),
        NodeId::Router(id) => format!("{:?}", w.router(id).mfc),
    }
}

/// Runs `ms` of virtual time checking the instant invariants after every event; a broken one
/// fails the test, naming the time.
pub fn run_checked(w: &mut World, ms: u64) {
    let end = w.now + ms;
    w.run_until_with(end, &mut |w| {
        if let Err(e) = check(w) {
            panic!("t={} ms: {e}", w.now);
        }
    });
}

/// Runs (checked) until terminal `t` is settled and returns how long it took; past
/// `limit_ms` the test fails with the state of the terminal, the home agent and the MMAs.
pub fn run_until_settled(w: &mut World, t: usize, limit_ms: u64) -> u64 {
    let start = w.now;
    while settled(w, t) == Settled::NotSettled {
        if w.now - start >= limit_ms {
            let mut nodes = vec![NodeId::Mn(t), NodeId::Ha];
            nodes.extend((0..w.mmas.len()).map(NodeId::Mma));
            let states: Vec<String> = nodes.into_iter().map(|n| describe(w, n)).collect();
            panic!(
                "terminal {t} not settled after {limit_ms} ms:\n{}",
                states.join("\n")
            );
        }
        run_checked(w, 5);
    }
    w.now - start
}
