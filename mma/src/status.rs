//! The `/status` page and its rendering by `mma status`.
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde::Serialize;

use crate::core::{ContextStatus, TerminalStatus};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub address: Ipv6Addr,
    pub uptime_s: u64,
    pub terminals_registered: usize,
    pub forwarding_windows: usize,
    pub terminals: Vec<TerminalStatus>,
    /// Contexts requested from or received from previous MMAs (issue 12 §3).
    pub contexts: Vec<ContextStatus>,
}

/// A readable table of a `/status` JSON document.
pub fn render(json: &str) -> Result<String, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    // A field of `v` as text; "-" when absent or null (an older daemon's page).
    let s = |v: &serde_json::Value, key: &str| match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        None | Some(serde_json::Value::Null) => "-".to_owned(),
        Some(other) => other.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "MMA {}  up {}s  terminals {}  forwarding {}",
        s(&v, "address"),
        s(&v, "uptime_s"),
        s(&v, "terminals_registered"),
        s(&v, "forwarding_windows")
    );
    let _ = writeln!(
        out,
        "{:<28} {:<28} {:<24} {:<26} {:<10} {:<24} {:>7}",
        "HOME ADDRESS", "GROUP", "HOME AGENT", "ON-LINK", "STATE", "FORWARD TO", "EXPIRES"
    );
    for t in v
        .get("terminals")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "{:<28} {:<28} {:<24} {:<26} {:<10} {:<24} {:>6}s",
            s(t, "hoa"),
            s(t, "group"),
            s(t, "home_agent"),
            s(t, "on_link"),
            s(t, "state"),
            s(t, "forward_to"),
            s(t, "expires_in_s")
        );
    }
    let contexts = v.get("contexts").and_then(|c| c.as_array());
    if let Some(contexts) = contexts.filter(|c| !c.is_empty()) {
        let _ = writeln!(
            out,
            "\n{:<28} {:<24} {:<10} {:>8} {:>7}  CORRESPONDENTS",
            "CONTEXT OF", "FROM", "STATE", "RTT", "LEFT"
        );
        for c in contexts {
            let corr: Vec<String> = c
                .get("correspondents")
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
                .map(|x| {
                    format!(
                        "{} ({}s, seq {})",
                        s(x, "addr"),
                        s(x, "lifetime_left_s"),
                        s(x, "seq")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<28} {:<24} {:<10} {:>6}ms {:>6}s  {}",
                s(c, "hoa"),
                s(c, "from"),
                s(c, "state"),
                s(c, "rtt_ms"),
                s(c, "lifetime_left_s"),
                if corr.is_empty() {
                    "-".to_owned()
                } else {
                    corr.join(", ")
                }
            );
        }
    }
    Ok(out)
}
