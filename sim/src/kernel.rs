//! A fake kernel per node: the routes, rules, proxy entries, addresses, MFC entries,
//! memberships and nftables marks it holds, changed with the semantics of Linux (add of an
//! existing key → `EEXIST`, delete of a missing one → `ESRCH`/`ENOENT`, replace takes the place
//! of the route with the same identity or creates it), plus injected refusals.
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnetwork::Ipv6Network;
use mipcast_proto::{KObject, Outcome};
use serde::Serialize;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Create; fails with "exists" if the key is taken.
    Add,
    /// Create or take the place of the object with the same key.
    Replace,
    Delete,
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Object(KObject),
    /// An (S, G) MFC entry.
    Mfc {
        source: Ipv6Addr,
        group: Ipv6Addr,
    },
    /// A source-specific membership held by a socket.
    Membership {
        ifindex: u32,
        group: Ipv6Addr,
        source: Ipv6Addr,
    },
    /// A group in the nftables set that marks multicast-tunnelled packets.
    Mark(Ipv6Addr),
    /// An interface held administratively up (a mobile node's prepared candidate).
    LinkUp(u32),
}

/// One change as the fake kernel sees it, whichever core asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Op {
    pub verb: Verb,
    pub target: Target,
}

/// Refuses the next `remaining` changes for which `matches` is true.
pub struct Fault {
    pub remaining: usize,
    pub matches: Box<dyn Fn(&Op) -> bool>,
    /// errno to answer with (ENOBUFS, EINVAL...).
    pub errno: i32,
}

/// Kernel identity of an object: two objects with one key cannot coexist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Route {
        table: u32,
        dst: Ipv6Network,
        src: Option<Ipv6Network>,
    },
    /// Rules: the kernel refuses an identical rule with NLM_F_EXCL; every field is the key.
    Rule(KObject),
    Proxy {
        addr: Ipv6Addr,
        ifindex: u32,
    },
    Address {
        addr: Ipv6Addr,
        ifindex: u32,
    },
}

fn key(o: &KObject) -> Key {
    match *o {
        KObject::EncapRoute {
            dst, src, table, ..
        } => Key::Route {
            table,
            dst: mipcast_proto::masked(dst),
            src: src.map(mipcast_proto::masked),
        },
        KObject::GatewayRoute { dst, table, .. } => Key::Route {
            table,
            dst: mipcast_proto::masked(dst),
            src: None,
        },
        KObject::DecapRoute { local, table, .. } => Key::Route {
            table,
            dst: mipcast_proto::host_net(local),
            src: None,
        },
        KObject::Rule { .. } => Key::Rule(o.normalized()),
        KObject::ProxyNeigh { addr, ifindex } => Key::Proxy { addr, ifindex },
        KObject::Address { addr, ifindex, .. } => Key::Address { addr, ifindex },
    }
}

fn oif(o: &KObject) -> Option<u32> {
    match *o {
        KObject::EncapRoute { oif, .. }
        | KObject::DecapRoute { oif, .. }
        | KObject::GatewayRoute { oif, .. } => Some(oif),
        _ => None,
    }
}

/// Whether a delete naming `asked` removes `held` (same key): as `ip route del`, a device of
/// 0 matches any device, a named one must match; the encapsulation is not compared.
fn delete_matches(asked: &KObject, held: &KObject) -> bool {
    if key(asked) != key(held) {
        return false;
    }
    // A gatewayed route's delete names its gateway, and only that route goes.
    if let (KObject::GatewayRoute { gateway: a, .. }, KObject::GatewayRoute { gateway: h, .. }) =
        (asked, held)
    {
        if a != h {
            return false;
        }
    }
    match (oif(asked), oif(held)) {
        (Some(0), _) | (None, _) => true,
        (Some(a), Some(h)) => a == h,
        (Some(_), None) => false,
    }
}

const EEXIST: i32 = 17;

/// One node's kernel.
#[derive(Default)]
pub struct FakeKernel {
    /// Objects present from the start (not installed by the core); never owned by a binding.
    pub constant: BTreeSet<KObject>,
    pub objects: BTreeSet<KObject>,
    pub mfc: BTreeSet<(Ipv6Addr, Ipv6Addr)>,
    pub memberships: BTreeSet<(u32, Ipv6Addr, Ipv6Addr)>,
    pub marks: BTreeSet<Ipv6Addr>,
    /// Interfaces a mobile node brought up administratively.
    pub links_up: BTreeSet<u32>,
    pub faults: Vec<Fault>,
    /// Changes applied (any outcome), for assertions.
    pub applied: usize,
    /// When (virtual ms) the last change was refused; set by the world.
    pub last_refusal_ms: Option<u64>,
}

impl FakeKernel {
    /// A kernel holding `constant` objects, which the daemon would install at start.
    pub fn with_constant(constant: impl IntoIterator<Item = KObject>) -> FakeKernel {
        let constant: BTreeSet<KObject> = constant.into_iter().collect();
        FakeKernel {
            objects: constant.clone(),
            constant,
            ..FakeKernel::default()
        }
    }

    /// Refuses the next `n` changes matching `matches` with `errno`.
    pub fn refuse_next(&mut self, n: usize, errno: i32, matches: impl Fn(&Op) -> bool + 'static) {
        self.faults.push(Fault {
            remaining: n,
            matches: Box::new(matches),
            errno,
        });
    }

    /// Objects that are not constant.
    pub fn dynamic_objects(&self) -> impl Iterator<Item = &KObject> {
        self.objects.iter().filter(|o| !self.constant.contains(o))
    }

    /// True when nothing but the constant objects is left.
    pub fn is_pristine(&self) -> bool {
        self.objects == self.constant
            && self.mfc.is_empty()
            && self.memberships.is_empty()
            && self.marks.is_empty()
            && self.links_up.is_empty()
    }

    /// The interface went down: Linux drops the routes through it.
    pub fn link_down(&mut self, ifindex: u32) {
        self.objects.retain(|o| oif(o) != Some(ifindex));
    }

    /// Applies `op` and returns what the kernel answered.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        self.applied += 1;
        if let Some(f) = self
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && (f.matches)(op))
        {
            f.remaining -= 1;
            let errno = f.errno;
            self.faults.retain(|f| f.remaining > 0);
            return Outcome::Refused {
                errno: Some(errno),
                reason: format!("injected refusal (errno {errno})"),
            };
        }
        match (op.verb, op.target) {
            (Verb::Add, Target::Object(o)) => {
                let k = key(&o);
                if self.objects.iter().any(|h| key(h) == k) {
                    Outcome::AlreadyPresent
                } else {
                    self.objects.insert(o.normalized());
                    Outcome::Applied
                }
            }
            (Verb::Replace, Target::Object(o)) => {
                let k = key(&o);
                if matches!(k, Key::Rule(_)) && self.objects.contains(&o.normalized()) {
                    return Outcome::AlreadyPresent;
                }
                self.objects.retain(|h| key(h) != k);
                self.objects.insert(o.normalized());
                Outcome::Applied
            }
            (Verb::Delete, Target::Object(o)) => {
                let o = o.normalized();
                let before = self.objects.len();
                let mut removed = false;
                self.objects.retain(|h| {
                    if !removed && delete_matches(&o, h) {
                        removed = true;
                        false
                    } else {
                        true
                    }
                });
                if self.objects.len() < before {
                    Outcome::Applied
                } else {
                    Outcome::AlreadyGone
                }
            }
            // MRT6_ADD_MFC updates an existing entry silently.
            (Verb::Add | Verb::Replace, Target::Mfc { source, group }) => {
                self.mfc.insert((source, group));
                Outcome::Applied
            }
            (Verb::Delete, Target::Mfc { source, group }) => {
                gone(self.mfc.remove(&(source, group)))
            }
            // A second join of the same (S, G) on one socket: EADDRINUSE, reported as present.
            (
                Verb::Add | Verb::Replace,
                Target::Membership {
                    ifindex,
                    group,
                    source,
                },
            ) => {
                if self.memberships.insert((ifindex, group, source)) {
                    Outcome::Applied
                } else {
                    Outcome::AlreadyPresent
                }
            }
            (
                Verb::Delete,
                Target::Membership {
                    ifindex,
                    group,
                    source,
                },
            ) => gone(self.memberships.remove(&(ifindex, group, source))),
            (Verb::Add | Verb::Replace, Target::Mark(g)) => {
                self.marks.insert(g);
                Outcome::Applied
            }
            (Verb::Delete, Target::Mark(g)) => gone(self.marks.remove(&g)),
            (Verb::Add | Verb::Replace, Target::LinkUp(i)) => {
                if self.links_up.insert(i) {
                    Outcome::Applied
                } else {
                    Outcome::AlreadyPresent
                }
            }
            (Verb::Delete, Target::LinkUp(i)) => gone(self.links_up.remove(&i)),
        }
    }
}

fn gone(removed: bool) -> Outcome {
    if removed {
        Outcome::Applied
    } else {
        Outcome::AlreadyGone
    }
}

/// The refusal an "exists" error would give a core that cannot tell (for tests).
pub fn eexist() -> Outcome {
    Outcome::Refused {
        errno: Some(EEXIST),
        reason: "File exists".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, seg: &str, oif: u32) -> KObject {
        KObject::EncapRoute {
            dst: dst.parse().unwrap(),
            src: None,
            tunnel_dst: seg.parse().unwrap(),
            oif,
            table: 254,
        }
    }

    #[test]
    fn linux_semantics() {
        let mut k = FakeKernel::default();
        let add = |o| Op {
            verb: Verb::Add,
            target: Target::Object(o),
        };
        let r1 = route("2001:db8::1/128", "ff35::1", 3);
        assert_eq!(k.apply(&add(r1)), Outcome::Applied);
        // Same identity, other tunnel: exists.
        assert_eq!(
            k.apply(&add(route("2001:db8::1/128", "2001:db8::9", 2))),
            Outcome::AlreadyPresent
        );
        let r2 = route("2001:db8::1/128", "2001:db8::9", 2);
        let rep = Op {
            verb: Verb::Replace,
            target: Target::Object(r2),
        };
        assert_eq!(k.apply(&rep), Outcome::Applied);
        assert_eq!(k.objects.iter().collect::<Vec<_>>(), vec![&r2]);
        // A delete naming another device misses; device 0 matches any.
        let del = |o| Op {
            verb: Verb::Delete,
            target: Target::Object(o),
        };
        assert_eq!(
            k.apply(&del(route("2001:db8::1/128", "::", 7))),
            Outcome::AlreadyGone
        );
        assert_eq!(
            k.apply(&del(route("2001:db8::1/128", "::", 0))),
            Outcome::Applied
        );
        assert!(k.is_pristine());
        k.refuse_next(1, 105, |op| op.verb == Verb::Add);
        assert!(matches!(
            k.apply(&add(r1)),
            Outcome::Refused {
                errno: Some(105),
                ..
            }
        ));
        assert_eq!(k.apply(&add(r1)), Outcome::Applied);
    }
}
