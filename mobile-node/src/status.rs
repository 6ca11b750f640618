//! `mobile-node status`: the /status document as a readable table.
use std::fmt::Write as _;

use serde_json::Value;

/// Attachment, links (score, quality, MMA) and registrations of a `/status` JSON document.
pub fn render(json: &str) -> Result<String, serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    // A missing field shows as "-": the table is for reading, the JSON is the contract.
    let s = |v: &Value, path: &[&str]| match path.iter().try_fold(v, |v, key| v.get(key)) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "mode           {}", s(&v, &["mode"]));
    let _ = writeln!(out, "home address   {}", s(&v, &["home_address"]));
    let _ = writeln!(out, "group          {}", s(&v, &["group"]));
    let _ = writeln!(out, "attachment     {}", s(&v, &["attachment"]));
    let _ = writeln!(out, "care-of        {}", s(&v, &["care_of_address"]));
    let _ = writeln!(
        out,
        "\n{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}",
        "LINK", "UP", "SCORE", "QUALITY", "ADDRESS", "MMA"
    );
    for l in v
        .get("links")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "{:<10} {:>4} {:>6} {:>7} {:<28} {:<28}",
            s(l, &["name"]),
            s(l, &["up"]),
            s(l, &["score"]),
            s(l, &["quality"]),
            s(l, &["address"]),
            s(l, &["router", "mma"])
        );
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:<10} {:<8} {:>6} {:>9}",
        "PEER", "KIND", "STATE", "SEQ", "LIFETIME"
    );
    for r in v
        .get("registrations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:<8} {:>6} {:>9}",
            s(r, &["peer"]),
            s(r, &["request", "kind"]),
            s(r, &["state"]),
            s(r, &["seq"]),
            s(r, &["granted_s"])
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn table_shows_fields_and_dashes_for_missing_ones() {
        let json = r#"{"mode":"site","home_address":"2001:db8:99::100","group":"ff35::1",
            "attachment":null,"links":[{"name":"e1","up":true,"score":150,"router":{"mma":"2001:db8:1::1"}}],
            "registrations":[{"peer":"2001:db8:1::1","request":{"kind":"mma"},"state":"bound","seq":3,"granted_s":60}]}"#;
        let t = render(json).unwrap();
        assert!(t.contains("home address   2001:db8:99::100"), "{t}");
        assert!(t.contains("attachment     -"), "{t}");
        let link = t.lines().find(|l| l.starts_with("e1")).unwrap();
        assert!(
            link.contains("150") && link.contains("2001:db8:1::1") && link.contains(" - "),
            "{link}"
        );
        let reg = t.lines().find(|l| l.starts_with("2001:db8:1::1")).unwrap();
        assert!(
            reg.contains("mma") && reg.contains("bound") && reg.contains("60"),
            "{reg}"
        );
        assert!(render("not json").is_err());
    }
}
