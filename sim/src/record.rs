//! Runs as data: every input a core received, every output it gave and every kernel outcome
//! it was told, as JSON lines; and the replay that feeds a recording's inputs and outcomes to
//! fresh cores and checks that they give the same outputs.
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use mipcast_proto::{next_step, Machine, Now, Outcome, Output, OutputOf, Step};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pim::{self, RouterId};
use crate::topology::{self, SimConfig, WALL0_MS};

/// A node of the simulated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    Ha,
    Mma(usize),
    Mn(usize),
    /// A pim-lite router of the multicast last hop.
    Router(RouterId),
}

/// One input to a core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum In {
    /// A Mobility Header message (bytes in hex).
    Message {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: String,
    },
    Timeout,
    /// The home agent's shell found the interface toward a care-of address.
    Resolve {
        coa: Ipv6Addr,
        oif: u32,
    },
    Link {
        ifindex: u32,
        up: bool,
    },
    RouterAdvert {
        ifindex: u32,
        src: Ipv6Addr,
        bytes: String,
    },
    /// An MLD, PIM or ND message reaching a pim-lite router (bytes in hex).
    Mcast {
        proto: pim_lite::core::Proto,
        ifindex: u32,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        bytes: String,
    },
    /// The answer to a pim-lite router's RPF lookup: the interface (and next hop) toward
    /// `source`, none when there is no route.
    Rpf {
        source: Ipv6Addr,
        ifindex: Option<u32>,
        gateway: Option<Ipv6Addr>,
    },
    /// The operator advises the terminals on a site link to leave it (MMA input).
    Advise {
        prefix: Ipv6Addr,
        prefix_len: u8,
        reason: u8,
        avoid_secs: Option<u16>,
    },
}

/// A kernel outcome, as data (the contract's type only serializes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecOutcome {
    Applied,
    AlreadyPresent,
    AlreadyGone,
    Refused { errno: Option<i32>, reason: String },
}

impl From<&Outcome> for RecOutcome {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Applied => RecOutcome::Applied,
            Outcome::AlreadyPresent => RecOutcome::AlreadyPresent,
            Outcome::AlreadyGone => RecOutcome::AlreadyGone,
            Outcome::Refused { errno, reason } => RecOutcome::Refused {
                errno: *errno,
                reason: reason.clone(),
            },
        }
    }
}

impl From<RecOutcome> for Outcome {
    fn from(o: RecOutcome) -> Self {
        match o {
            RecOutcome::Applied => Outcome::Applied,
            RecOutcome::AlreadyPresent => Outcome::AlreadyPresent,
            RecOutcome::AlreadyGone => Outcome::AlreadyGone,
            RecOutcome::Refused { errno, reason } => Outcome::Refused { errno, reason },
        }
    }
}

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Virtual time, ms.
    pub t: u64,
    pub node: NodeId,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dir", rename_all = "snake_case")]
pub enum What {
    In { input: In },
    Out { output: Value },
    Kernel { outcome: RecOutcome },
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex length {}", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

/// The clock reading at virtual time `t`.
pub fn now_at(t: u64) -> Now {
    Now::from_unix(t, std::time::Duration::from_millis(WALL0_MS + t))
}

/// What the harness needs of a core beyond the contract: its outputs as JSON.
pub trait SimCore: Machine {
    fn send_json(send: &Self::Send) -> Value;
    fn change_json(change: &Self::Change) -> Value;
    fn event_json(event: &Self::Event) -> Value {
        serde_json::to_value(event).unwrap_or(Value::Null)
    }
    fn output_json(o: &OutputOf<Self>) -> Value {
        match o {
            Output::Send(s) => serde_json::json!({ "send": Self::send_json(s) }),
            Output::Kernel(c) => serde_json::json!({ "kernel": Self::change_json(c) }),
            Output::Event(e) => serde_json::json!({ "event": Self::event_json(e) }),
        }
    }
}

fn mh_json(src: Ipv6Addr, dst: Ipv6Addr, bytes: &[u8]) -> Value {
    serde_json::json!({ "src": src, "dst": dst, "bytes": hex(bytes) })
}

impl SimCore for home_agent::core::Core {
    fn send_json(s: &Self::Send) -> Value {
        mh_json(s.src, s.dst, &s.bytes)
    }
    fn change_json(c: &Self::Change) -> Value {
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
}

impl SimCore for mma::core::Core {
    fn send_json(s: &Self::Send) -> Value {
        mh_json(s.src, s.dst, &s.bytes)
    }
    fn change_json(c: &Self::Change) -> Value {
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
}

impl SimCore for mobile_node::core::Core {
    fn send_json(s: &Self::Send) -> Value {
        match s {
            mobile_node::core::Send::Rs { ifindex } => serde_json::json!({ "rs": ifindex }),
            mobile_node::core::Send::Bu(o) => mh_json(o.src, o.peer, &o.bytes),
        }
    }
    fn change_json(c: &Self::Change) -> Value {
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
}

impl SimCore for pim_lite::core::Router {
    fn send_json(p: &Self::Send) -> Value {
        serde_json::json!({
            "proto": p.proto,
            "ifindex": p.ifindex,
            "src": p.source,
            "dst": p.destination,
            "bytes": hex(&p.bytes),
        })
    }
    fn change_json(c: &Self::Change) -> Value {
        serde_json::to_value(c).unwrap_or(Value::Null)
    }
}

/// Drives `core` until it is idle with the one burst rule ([`next_step`]): each kernel change
/// goes to `kernel`, whose outcome is fed back before what followed the batch; every output
/// and outcome is passed to `log`. Returns the outputs other than kernel changes, in order.
pub fn drive<M: SimCore>(
    core: &mut M,
    now: Now,
    kernel: &mut dyn FnMut(&M::Change) -> Outcome,
    log: &mut dyn FnMut(What),
) -> Vec<OutputOf<M>> {
    let mut out = Vec::new();
    let emit = |o: OutputOf<M>, log: &mut dyn FnMut(What), out: &mut Vec<OutputOf<M>>| {
        log(What::Out {
            output: M::output_json(&o),
        });
        out.push(o);
    };
    loop {
        match next_step(core) {
            Step::Idle => return out,
            Step::Output(o) => emit(o, log, &mut out),
            Step::Apply { changes, then } => {
                for change in changes {
                    log(What::Out {
                        output: serde_json::json!({ "kernel": M::change_json(&change) }),
                    });
                    let outcome = kernel(&change);
                    log(What::Kernel {
                        outcome: RecOutcome::from(&outcome),
                    });
                    core.kernel_result(now, &change, outcome);
                }
                if let Some(o) = then {
                    emit(o, log, &mut out);
                }
            }
        }
    }
}

/// Parses a JSON-lines recording.
pub fn parse_jsonl(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

pub fn to_jsonl(records: &[Record]) -> String {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r).unwrap_or_default());
        s.push('\n');
    }
    s
}

/// One node's recording split for replay.
struct Stream {
    inputs: Vec<(u64, In)>,
    outcomes: VecDeque<RecOutcome>,
    outputs: Vec<Value>,
}

/// Replays `records` (made by a world built from `cfg`) against fresh cores: each node's
/// recorded inputs are fed in order, its kernel outcomes given back in order, and the outputs
/// it gives must be the recorded ones. Returns the number of outputs compared.
pub fn replay(cfg: &SimConfig, records: &[Record]) -> Result<usize, String> {
    let mut nodes: std::collections::BTreeMap<NodeId, Stream> = Default::default();
    for r in records {
        let s = nodes.entry(r.node).or_insert_with(|| Stream {
            inputs: Vec::new(),
            outcomes: VecDeque::new(),
            outputs: Vec::new(),
        });
        match &r.what {
            What::In { input } => s.inputs.push((r.t, input.clone())),
            What::Kernel { outcome } => s.outcomes.push_back(outcome.clone()),
            What::Out { output } => s.outputs.push(output.clone()),
        }
    }
    let mut compared = 0;
    for (node, mut stream) in nodes {
        let produced = match node {
            NodeId::Ha => replay_node(&mut topology::ha_core(cfg), &mut stream, feed_ha),
            NodeId::Mma(s) => replay_node(&mut topology::mma_core(cfg, s), &mut stream, feed_mma),
            NodeId::Mn(t) => replay_node(&mut topology::mn_core(cfg, t), &mut stream, feed_mn),
            NodeId::Router(id) => {
                replay_node(&mut pim::router_core(cfg, id), &mut stream, pim::feed_pim)
            }
        }
        .map_err(|e| format!("{node:?}: {e}"))?;
        if produced.len() != stream.outputs.len() {
            return Err(format!(
                "{node:?}: {} outputs replayed, {} recorded",
                produced.len(),
                stream.outputs.len()
            ));
        }
        for (i, (a, b)) in produced.iter().zip(&stream.outputs).enumerate() {
            if a != b {
                return Err(format!(
                    "{node:?}: output {i} differs:\n replayed {a}\n recorded {b}"
                ));
            }
        }
        compared += produced.len();
    }
    Ok(compared)
}

type Feed<M> = fn(&mut M, Now, &In) -> Result<(), String>;

fn replay_node<M: SimCore>(
    core: &mut M,
    stream: &mut Stream,
    feed: Feed<M>,
) -> Result<Vec<Value>, String> {
    let mut produced = Vec::new();
    let inputs = std::mem::take(&mut stream.inputs);
    for (i, (t, input)) in inputs.iter().enumerate() {
        let now = now_at(*t);
        feed(core, now, input)?;
        // A resolution belongs to the round of the input before it: drive after the last.
        if matches!(inputs.get(i + 1), Some((_, In::Resolve { .. }))) {
            continue;
        }
        let mut missing = false;
        let outcomes = &mut stream.outcomes;
        drive(
            core,
            now,
            &mut |_| match outcomes.pop_front() {
                Some(o) => o.into(),
                None => {
                    missing = true;
                    Outcome::Applied
                }
            },
            &mut |w| {
                if let What::Out { output } = w {
                    produced.push(output);
                }
            },
        );
        if missing {
            return Err(format!(
                "more kernel changes than recorded outcomes at {t} ms"
            ));
        }
    }
    Ok(produced)
}

pub fn feed_ha(core: &mut home_agent::core::Core, now: Now, input: &In) -> Result<(), String> {
    match input {
        In::Message { src, dst, bytes } => {
            let bytes = unhex(bytes)?;
            core.handle_input(
                now,
                home_agent::core::Input {
                    src: *src,
                    dst: *dst,
                    bytes: &bytes,
                },
            );
        }
        In::Timeout => core.handle_timeout(now),
        In::Resolve { coa, oif } => core.resolve(*coa, *oif),
        other => return Err(format!("not a home agent input: {other:?}")),
    }
    Ok(())
}

pub fn feed_mma(core: &mut mma::core::Core, now: Now, input: &In) -> Result<(), String> {
    match input {
        In::Message { src, dst, bytes } => {
            let bytes = unhex(bytes)?;
            core.handle_input(
                now,
                mma::core::Input::Mobility(mma::core::Received {
                    src: *src,
                    dst: *dst,
                    bytes: &bytes,
                }),
            );
        }
        In::Timeout => core.handle_timeout(now),
        In::Advise {
            prefix,
            prefix_len,
            reason,
            avoid_secs,
        } => core.handle_input(
            now,
            mma::core::Input::Advise(mma::core::Advise {
                prefix: (*prefix, *prefix_len),
                reason: *reason,
                avoid_secs: *avoid_secs,
            }),
        ),
        other => return Err(format!("not an MMA input: {other:?}")),
    }
    Ok(())
}

pub fn feed_mn(core: &mut mobile_node::core::Core, now: Now, input: &In) -> Result<(), String> {
    use mobile_node::core::Event;
    match input {
        In::Message { src, bytes, .. } => {
            let bytes = unhex(bytes)?;
            core.handle_input(
                now,
                Event::Mobility {
                    src: *src,
                    bytes: &bytes,
                },
            );
        }
        In::Timeout => core.handle_timeout(now),
        In::Link { ifindex, up } => core.handle_input(
            now,
            Event::Link {
                ifindex: *ifindex,
                up: *up,
            },
        ),
        In::RouterAdvert {
            ifindex,
            src,
            bytes,
        } => {
            let bytes = unhex(bytes)?;
            core.handle_input(
                now,
                Event::RouterAdvert {
                    ifindex: *ifindex,
                    src: *src,
                    hop_limit: 255,
                    bytes: &bytes,
                },
            );
        }
        other => return Err(format!("not a mobile node input: {other:?}")),
    }
    Ok(())
}
