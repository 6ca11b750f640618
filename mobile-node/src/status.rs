//! `mobile-node status`: the /status document as a readable table.
use std::fmt::Write as _;

use serde_json::Value;

/// Attachment, links (score, quality, MMA) and registrations of a `/status` JSON document.
pub fn render(json: &str) -> Result<String, serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    let s = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "mode           {}", s(&v["mode"]));
    let _ = writeln!(out, "home address   {}", s(&v["home_address"]));
    let _ = writeln!(out, "group          {}", s(&v["group"]));
    let _ = writeln!(out, "attachment     {}", s(&v["attachment"]));
    let _ = writeln!(out, "care-of        {}", s(&v["care_of_address"]));
    let _ = writeln!(
        out,
        "\n{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}",
        "LINK", "UP", "SCORE", "QUALITY", "ADDRESS", "MMA"
    );
    for l in v["links"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}",
            s(&l["name"]),
            s(&l["up"]),
            s(&l["score"]),
            s(&l["quality"]),
            s(&l["address"]),
            s(&l["router"]["mma"])
        );
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:<10} {:<8} {:>6} {:>9}",
        "PEER", "KIND", "STATE", "SEQ", "LIFETIME"
    );
    for r in v["registrations"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:<8} {:>6} {:>9}",
            s(&r["peer"]),
            s(&r["request"]["kind"]),
            s(&r["state"]),
            s(&r["seq"]),
            s(&r["granted_s"])
        );
    }
    Ok(out)
}
