//! The daemons' metrics as an operator sees them: every exposition passes `promtool check
//! metrics`, and a real Prometheus server (Debian package `prometheus`) scraping the whole
//! site (topology: `mipcast_netns_tests::site`) through an intra-site and an inter-site move
//! holds exactly what happened; the Grafana dashboard's queries run on it and name only
//! metrics the daemons export.
//!
//! Prometheus runs in a namespace of its own; each daemon's listener (`[::1]:964x` in the
//! daemon's namespace) is reached through a socat relay in Prometheus' namespace, so the
//! daemons run with their usual configuration.
//!
//! Runs the daemon binaries of the same build (`cargo build --workspace` first when running
//! this file alone).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mipcast_netns_tests::site::{addr, metrics_addr, Node, Site, SiteOptions};
use mipcast_netns_tests::wait::wait_for;
use mipcast_netns_tests::{require_root, Daemon, Netns};
use serde_json::Value;

/// Scrapes every half second keep the scenario short.
const SCRAPE_INTERVAL: &str = "500ms";
const PROMETHEUS_PORT: u16 = 9090;
/// Relay ports in Prometheus' namespace: RELAY_BASE + index of the node in `Node::ALL`.
const RELAY_BASE: u16 = 19600;
/// Quality of a link being left: usable, worse than the new one by more than the hysteresis.
const FADED: u8 = 30;

/// For tests marked `#[ignore = "needs ..."]`: fails (rather than passes untested) when run
/// without the tool.
fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "needs {tool} (Debian package {package}; .ci/run installs it)"
    );
}

fn daemon_nodes() -> impl Iterator<Item = (usize, Node, &'static str)> {
    Node::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.daemon().map(|d| (i, *n, d)))
}

/// The node's exposition, fetched in its namespace.
fn exposition(site: &Site, node: Node) -> String {
    let addr = metrics_addr(node.daemon().expect("a daemon node"));
    site.ns(node)
        .enter(|| mipcast_daemon::metrics::fetch(addr, "/metrics"))
        .unwrap_or_else(|e| panic!("{}: {e}", node.name()))
}

fn bound_with(st: &Value, peer: Ipv6Addr) -> bool {
    st["registrations"].as_array().is_some_and(|r| {
        r.iter()
            .any(|r| r["peer"] == peer.to_string() && r["state"] == "bound")
    })
}

/// Starts the site and waits until the terminal is registered at a1 through mma1.
fn registered_site(tag: &str) -> Site {
    let mut site = Site::build(&SiteOptions::new(tag)).unwrap_or_else(|e| panic!("{e}"));
    site.start_daemons().unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the terminal bound with mma1 and the home agent",
        Duration::from_secs(15),
        || {
            let st = site.status(Node::Mn).ok()?;
            (bound_with(&st, addr::MMA1) && bound_with(&st, addr::HA)).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    site
}

#[test]
#[ignore = "needs root and promtool"]
fn every_daemon_exposition_passes_promtool() {
    require_root();
    require_tool("promtool", "prometheus");
    let site = registered_site("ptool");
    for (_, node, daemon) in daemon_nodes() {
        let text = exposition(&site, node);
        assert!(text.contains("build_info{"), "{daemon}: {text}");
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // promtool exits 0 with lint findings printed, so any output is a failure too.
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool check metrics on {daemon} ({}):\n{report}\n--- exposition ---\n{text}",
            node.name()
        );
    }
}

/// Prometheus and its relays in a namespace of their own; killed (namespace deleted) on drop.
struct Prometheus {
    // Processes before their namespace: killed and reaped, then the namespace goes.
    _server: Daemon,
    _relays: Vec<Daemon>,
    ns: Netns,
    dir: PathBuf,
}

impl Prometheus {
    fn start(site: &Site) -> Prometheus {
        let ns = Netns::new("prom");
        let dir = site.dir.join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let mut relays = Vec::new();
        for (i, node, daemon) in daemon_nodes() {
            let port = RELAY_BASE + i as u16;
            let target = metrics_addr(daemon);
            relays.push(Daemon(ns.spawn(
                "socat",
                &[
                    &format!("TCP6-LISTEN:{port},bind=[::1],reuseaddr,fork"),
                    &format!(
                        "EXEC:ip netns exec {} socat STDIO TCP6\\:[{}]\\:{}",
                        site.ns(node).name(),
                        target.ip(),
                        target.port()
                    ),
                ],
                Some(&dir.join(format!("relay-{}.log", node.name()))),
            )));
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, scrape_config()).unwrap();
        let server = Daemon(ns.spawn(
            "prometheus",
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=[::1]:{PROMETHEUS_PORT}"),
                "--log.level=warn",
            ],
            Some(&dir.join("prometheus.log")),
        ));
        let p = Prometheus {
            _server: server,
            _relays: relays,
            ns,
            dir,
        };
        wait_for("Prometheus to answer", Duration::from_secs(30), || {
            p.get("/-/ready").ok()
        })
        .unwrap_or_else(|e| panic!("{e}: {}", p.log()));
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Result<String, String> {
        let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, PROMETHEUS_PORT));
        self.ns
            .enter(|| mipcast_daemon::metrics::fetch(addr, path))
            .map_err(|e| e.to_string())
    }

    /// An instant query; the result vector as (labels, value) pairs.
    fn query(&self, promql: &str) -> Result<Vec<(Value, f64)>, String> {
        let body = self.get(&format!("/api/v1/query?query={}", urlencode(promql)))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(body);
        }
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .into_iter()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect())
    }

    /// The single value of `promql` (a sum, say), None while Prometheus has no sample.
    fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql).ok()?.as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Waits until Prometheus holds `expected` for `promql`.
    fn wait_value(&self, promql: &str, expected: f64) {
        wait_for(
            &format!("Prometheus: {promql} == {expected}"),
            Duration::from_secs(10),
            || (self.value(promql) == Some(expected)).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}: have {:?}", self.query(promql)));
    }
}

/// The scrape configuration generated for the topology: one target per daemon, labelled with
/// its node and daemon (the labels the dashboard groups by).
fn scrape_config() -> String {
    let mut targets = String::new();
    for (i, node, daemon) in daemon_nodes() {
        targets.push_str(&format!(
            "      - targets: ['[::1]:{}']\n        labels: {{ node: {}, daemon: {daemon} }}\n",
            RELAY_BASE + i as u16,
            node.name()
        ));
    }
    format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: 400ms\n\
         scrape_configs:\n  - job_name: mipcast\n    static_configs:\n{targets}"
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn attachment_ifindex(site: &Site) -> Option<u64> {
    site.status(Node::Mn).ok()?["attachment"]["ifindex"].as_u64()
}

const BUS_SENT: &str =
    "sum(mobile_node_signalling_messages_total{direction=\"sent\",type=\"binding_update\"})";

fn handovers(kind: &str) -> String {
    format!("sum(mobile_node_handovers_total{{kind=\"{kind}\"}}) or vector(0)")
}

#[test]
#[ignore = "needs root and prometheus"]
fn prometheus_scrapes_the_site_through_intra_and_inter_site_moves() {
    require_root();
    require_tool("prometheus", "prometheus");
    require_tool("socat", "socat");
    let site = registered_site("prom");
    let prom = Prometheus::start(&site);

    // Every daemon's target is up.
    let daemons = daemon_nodes().count();
    wait_for("every target up", Duration::from_secs(15), || {
        (prom.value("sum(up)") == Some(daemons as f64)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", prom.query("up"), prom.log()));
    let up = prom.query("up").unwrap();
    let nodes: BTreeSet<String> = up
        .iter()
        .map(|(m, _)| m["node"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        nodes,
        daemon_nodes()
            .map(|(_, n, _)| n.name().to_owned())
            .collect(),
        "{up:?}"
    );

    // The registration as Prometheus saw it: one terminal at mma1 and one binding at the
    // home agent; nothing yet at mma2.
    prom.wait_value("mma_terminals{node=\"mma1\"}", 1.0);
    prom.wait_value("mma_terminals{node=\"mma2\"}", 0.0);
    prom.wait_value("home_agent_bindings", 1.0);
    let bus_registration = wait_for("BUs sent in Prometheus", Duration::from_secs(10), || {
        prom.value(BUS_SENT)
    })
    .unwrap();
    assert!(bus_registration >= 2.0, "MMA and home agent registrations");
    // The first attachment counts as an inter-site handover (from nowhere to site 1).
    let inter_before = prom.value(&handovers("inter_site")).unwrap();
    let intra_before = prom.value(&handovers("intra_site")).unwrap();
    assert_eq!(intra_before, 0.0);
    let ha_accepted = "sum(home_agent_binding_updates_received_total{outcome=\"accepted\"})";
    let ha_accepted_before = prom.value(ha_accepted).unwrap();

    // Intra-site move a1 -> a2: a handover, no Binding Update.
    let e2 = u64::from(site.ifindex(Node::Mn, "e2").unwrap());
    site.set_quality("e2", 100).unwrap();
    site.set_quality("e1", FADED).unwrap();
    wait_for("attachment on e2", Duration::from_secs(5), || {
        (attachment_ifindex(&site)? == e2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    prom.wait_value(&handovers("intra_site"), intra_before + 1.0);
    // Two more scrapes: a BU the move caused would show by now.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        prom.value(BUS_SENT),
        Some(bus_registration),
        "no Binding Update in an intra-site move"
    );
    assert_eq!(prom.value(ha_accepted), Some(ha_accepted_before));

    // Inter-site move a2 -> a3: one handover, three Binding Updates (new MMA, home agent,
    // old MMA with the forwarding request).
    let e3 = u64::from(site.ifindex(Node::Mn, "e3").unwrap());
    site.set_quality("e3", 100).unwrap();
    site.set_quality("e2", FADED).unwrap();
    wait_for("attachment on e3", Duration::from_secs(10), || {
        (attachment_ifindex(&site)? == e3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", site.status(Node::Mn)));
    prom.wait_value(&handovers("inter_site"), inter_before + 1.0);
    prom.wait_value(BUS_SENT, bus_registration + 3.0);
    prom.wait_value(ha_accepted, ha_accepted_before + 1.0);
    prom.wait_value(
        "sum(mma_binding_updates_total{node=\"mma2\",outcome=\"registered\"})",
        1.0,
    );
    prom.wait_value(
        "sum(mma_binding_updates_total{node=\"mma1\",outcome=\"forwarding\"})",
        1.0,
    );
    prom.wait_value("mma_terminals{node=\"mma2\"}", 1.0);
    prom.wait_value("sum(mma_forwarding_windows_active{node=\"mma1\"})", 1.0);
    prom.wait_value(&handovers("intra_site"), 1.0);
    // The signalling families agree across daemons: every BU the terminal sent was received
    // by an agent, every BAck an agent sent reached the terminal; pim-lite counts the MLD
    // reports and PIM Hellos of the tree.
    let agents = |direction: &str, kind: &str| {
        format!(
            "sum(home_agent_signalling_messages_total{{direction=\"{direction}\",type=\"{kind}\"}}) + sum(mma_signalling_messages_total{{direction=\"{direction}\",type=\"{kind}\"}})"
        )
    };
    prom.wait_value(
        &agents("received", "binding_update"),
        bus_registration + 3.0,
    );
    // Read together until they agree (a refresh may add a BAck between two queries).
    let mn_acks =
        "sum(mobile_node_signalling_messages_total{direction=\"received\",type=\"binding_ack\"})";
    let acks = wait_for(
        "BAcks sent = BAcks received",
        Duration::from_secs(10),
        || {
            let sent = prom.value(&agents("sent", "binding_ack"))?;
            (prom.value(mn_acks) == Some(sent)).then_some(sent)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: agents {:?}, terminal {:?}",
            prom.query(&agents("sent", "binding_ack")),
            prom.query(mn_acks)
        )
    });
    assert!(acks >= bus_registration + 3.0, "a BAck per BU: {acks}");
    for (direction, kind) in [
        ("received", "mld_report"),
        ("sent", "pim_hello"),
        ("sent", "router_advertisement"),
    ] {
        let series = format!(
            "sum(pim_lite_signalling_messages_total{{direction=\"{direction}\",type=\"{kind}\"}})"
        );
        assert!(
            prom.value(&series).is_some_and(|v| v > 0.0),
            "{series}: {:?}",
            prom.query(&series)
        );
    }
    assert_eq!(
        prom.value("sum(up)"),
        Some(daemons as f64),
        "every target still up"
    );

    // The dashboard over this Prometheus: each panel's queries run and name exported metrics.
    let exported: BTreeSet<String> = daemon_nodes()
        .flat_map(|(_, node, _)| exported_names(&exposition(&site, node)))
        .collect();
    check_dashboard(&prom, &exported);
}

/// Every sample name in a text-format (0.0.4) exposition: each `# TYPE` family, with the
/// suffixes of its samples for histograms.
fn exported_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        out.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    out
}

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/mipcast-site.json")
}

fn check_dashboard(prom: &Prometheus, exported: &BTreeSet<String>) {
    let text = std::fs::read_to_string(dashboard_path()).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let panels = mipcast_grafana::panels(&dash);
    assert!(panels.len() >= 8, "dashboard panels: {}", panels.len());
    for (title, exprs) in panels {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for expr in exprs {
            let names = mipcast_grafana::metric_names(&expr);
            assert!(!names.is_empty(), "panel {title:?}: {expr} names no metric");
            for name in &names {
                assert!(
                    name == "up" || exported.contains(name),
                    "panel {title:?}: {expr}: {name} is not exported by any daemon"
                );
            }
            // Grafana's variables, as Grafana would fill them in.
            let concrete = expr
                .replace("$__rate_interval", "5s")
                .replace("$__range", "1m")
                .replace("$node", ".*")
                .replace("$daemon", ".*");
            prom.query(&concrete)
                .unwrap_or_else(|e| panic!("panel {title:?}: {concrete}: {e}"));
        }
    }
}

/// Reading the dashboard JSON (kept here: only this test needs it).
mod mipcast_grafana {
    use serde_json::Value;

    /// (title, PromQL expressions) of every panel, rows' nested panels included.
    pub(crate) fn panels(dash: &Value) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut stack: Vec<&Value> = dash["panels"].as_array().into_iter().flatten().collect();
        while let Some(p) = stack.pop() {
            stack.extend(p["panels"].as_array().into_iter().flatten());
            if p["type"] == "row" {
                continue;
            }
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_owned))
                .collect();
            out.push((p["title"].as_str().unwrap_or("").to_owned(), exprs));
        }
        out
    }

    /// Keywords and aggregation operators (these may be followed by `by (...)` rather than
    /// by their parenthesis).
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];

    /// The metric names in a PromQL expression: identifiers outside label matchers, strings,
    /// ranges and Grafana variables that are neither functions nor keywords.
    pub(crate) fn metric_names(expr: &str) -> Vec<String> {
        let b = expr.as_bytes();
        let (mut i, mut out) = (0, Vec::new());
        let mut depth_brace = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b'{' => depth_brace += 1,
                b'}' => depth_brace -= 1,
                b'"' => {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'[' => {
                    while i < b.len() && b[i] != b']' {
                        i += 1;
                    }
                }
                b'$' => {
                    while i + 1 < b.len() && (b[i + 1].is_ascii_alphanumeric() || b[i + 1] == b'_')
                    {
                        i += 1;
                    }
                }
                _ if depth_brace == 0 && (c.is_ascii_alphabetic() || c == b'_' || c == b':') => {
                    let start = i;
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                    {
                        i += 1;
                    }
                    let word = &expr[start..i];
                    let next = expr[i..].trim_start();
                    // Function calls and the label lists of by/without/on are not metrics.
                    if !next.starts_with('(')
                        && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                        && !in_grouping_list(&expr[..start])
                    {
                        out.push(word.to_owned());
                    }
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// Whether the text before an identifier leaves it inside `by (...)` / `without (...)`.
    fn in_grouping_list(before: &str) -> bool {
        let Some(open) = before.rfind('(') else {
            return false;
        };
        if before[open..].contains(')') {
            return false;
        }
        let head = before[..open].trim_end();
        [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .iter()
        .any(|k| head.ends_with(k))
    }

    #[test]
    fn names_in_expressions() {
        assert_eq!(
            metric_names(
                "sum by (node, kind) (rate(mobile_node_handovers_total{kind=~\"a|b\"}[$__rate_interval])) / on (node) group_left up"
            ),
            ["mobile_node_handovers_total", "up"]
        );
        assert_eq!(
            metric_names("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"),
            ["x_bucket"]
        );
    }
}
