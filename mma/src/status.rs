//! The `/status` page and its rendering by `mma status`.
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde::Serialize;

use crate::core::TerminalStatus;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub address: Ipv6Addr,
    pub uptime_s: u64,
    pub terminals_registered: usize,
    pub forwarding_windows: usize,
    pub terminals: Vec<TerminalStatus>,
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
    Ok(out)
}
