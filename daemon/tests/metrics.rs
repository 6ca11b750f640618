#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // a test fails by panicking
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mipcast_daemon::metrics::{
    fetch, register_build_info, FetchError, MetricsServer, OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};
use mipcast_daemon::status::{status_channel, Snapshot};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// A raw HTTP/1.1 exchange, so the test sees the status line and headers on the wire.
fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn serves_metrics_health_status_and_404() {
    let mut registry = Registry::default();
    let updates = Counter::<u64>::default();
    registry.register(
        "binding_updates",
        "Binding updates received",
        updates.clone(),
    );
    register_build_info(&mut registry, "mma", "0.1.0");
    updates.inc_by(42);

    let (desk, mut requests) = status_channel();
    let server = MetricsServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(registry),
        desk,
    )
    .await
    .expect("bind");
    // The event loop's part: each request is answered with a snapshot of "the daemon".
    let event_loop = tokio::spawn(async move {
        loop {
            let reply = requests.next().await;
            let _ = reply.send(Snapshot::json(vec![("hoa", "2001:db8::1")]));
        }
    });
    let addr = server.local_addr().expect("local addr");
    assert_ne!(addr.port(), 0);
    let task = tokio::spawn(server.run());

    let checks = tokio::task::spawn_blocking(move || {
        // Prometheus asks for OpenMetrics and gets it.
        let metrics = raw(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n",
        );
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert_eq!(
            header(&metrics, "content-type"),
            Some(OPENMETRICS_CONTENT_TYPE)
        );
        assert!(
            metrics.contains("\nbinding_updates_total 42\n"),
            "{metrics}"
        );
        assert!(
            metrics
                .contains("\nbuild_info{daemon=\"mma\",version=\"0.1.0\",commit=\"unknown\"} 1\n"),
            "{metrics}"
        );
        assert!(metrics.ends_with("# EOF\n"), "{metrics}");

        // Anything else (promtool, curl) gets the classic text format.
        let text = get(addr, "/metrics");
        assert_eq!(header(&text, "content-type"), Some(TEXT_CONTENT_TYPE));
        assert!(
            text.contains("\n# TYPE binding_updates_total counter\nbinding_updates_total 42\n"),
            "{text}"
        );
        assert!(text.contains("\n# TYPE build_info gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");

        let health = get(addr, "/healthz");
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

        let status = get(addr, "/status?verbose=1");
        assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
        assert_eq!(header(&status, "content-type"), Some("application/json"));
        assert!(
            status.ends_with("\r\n\r\n[[\"hoa\",\"2001:db8::1\"]]"),
            "{status}"
        );

        let missing = get(addr, "/bindings");
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );

        let post = raw(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert_eq!(header(&post, "allow"), Some("GET"));
    });
    checks.await.expect("raw HTTP checks");

    // The registry is live: a later increment shows in the next scrape, read through `fetch`.
    updates.inc();
    let fetched = tokio::task::spawn_blocking(move || {
        (
            fetch(addr, "/metrics"),
            fetch(addr, "/status"),
            fetch(addr, "/nope"),
        )
    })
    .await
    .expect("fetch thread");
    let metrics = fetched.0.expect("fetch /metrics");
    assert!(
        metrics.contains("\nbinding_updates_total 43\n"),
        "{metrics}"
    );
    assert_eq!(
        fetched.1.expect("fetch /status"),
        r#"[["hoa","2001:db8::1"]]"#
    );
    match fetched.2 {
        Err(FetchError::Status {
            status: 404, body, ..
        }) => assert_eq!(body, "not found"),
        other => panic!("expected a 404, got {other:?}"),
    }

    // The loop has stopped (shutdown): /status says so instead of hanging.
    event_loop.abort();
    let _ = event_loop.await;
    let gone = tokio::task::spawn_blocking(move || get(addr, "/status"))
        .await
        .expect("get thread");
    assert!(
        gone.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{gone}"
    );
    task.abort();
}

#[test]
fn fetch_reports_a_refused_connection() {
    // Bind then drop a listener to get a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let err = fetch(addr, "/status").expect_err("nothing listens");
    assert!(matches!(err, FetchError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("http://{addr}/status: ")),
        "{err}"
    );
}
