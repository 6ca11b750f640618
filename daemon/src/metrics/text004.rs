//! The Prometheus text format 0.0.4, for scrapers that do not ask for OpenMetrics.
//!
//! prometheus-client only encodes OpenMetrics. Prometheus itself asks for OpenMetrics, but
//! `promtool check metrics`, `curl` and older scrapers read the classic text format, which
//! differs from OpenMetrics' text in a few lines only; this rewrites those lines instead of
//! keeping a second encoder in step with the registry.
use std::collections::HashMap;

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites an OpenMetrics text exposition (as prometheus-client encodes it) to the classic
/// text format: counter families are named with their `_total` samples, info families become
/// `_info` gauges, `# UNIT`, `_created` samples, exemplars and `# EOF` go.
pub(super) fn from_openmetrics(om: &str) -> String {
    // Family name -> type, from the TYPE lines (HELP comes first, so look ahead).
    let types: HashMap<&str, &str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let renamed = |family: &str| -> String {
        match types.get(family) {
            Some(&"counter") => format!("{family}_total"),
            Some(&"info") => format!("{family}_info"),
            _ => family.to_owned(),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (family, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(family)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" | "stateset" => "gauge",
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(family)));
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        if line[..name_end].ends_with("_created") {
            continue;
        }
        // An exemplar follows the value after " # ".
        let sample = line.split(" # ").next().unwrap_or(line);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_counters_infos_and_eof() {
        let om = "# HELP build Daemon name.\n# TYPE build info\nbuild_info{daemon=\"x\"} 1\n\
                  # HELP bus Binding Updates.\n# TYPE bus counter\nbus_total{outcome=\"ok\"} 3\n\
                  bus_created 1.5\n# HELP t Seconds.\n# TYPE t histogram\n# UNIT t seconds\n\
                  t_bucket{le=\"+Inf\"} 1 # {trace=\"a\"} 0.1\nt_sum 0.1\nt_count 1\n# EOF\n";
        assert_eq!(
            from_openmetrics(om),
            "# HELP build_info Daemon name.\n# TYPE build_info gauge\nbuild_info{daemon=\"x\"} 1\n\
             # HELP bus_total Binding Updates.\n# TYPE bus_total counter\nbus_total{outcome=\"ok\"} 3\n\
             # HELP t Seconds.\n# TYPE t histogram\nt_bucket{le=\"+Inf\"} 1\nt_sum 0.1\nt_count 1\n"
        );
    }
}
