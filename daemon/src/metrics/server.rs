use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::status::{StatusDesk, Unavailable};

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client that never finishes its request headers must not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failed accept (e.g. out of file descriptors) instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

struct Shared {
    registry: Arc<Registry>,
    status: StatusDesk,
}

/// A bound HTTP/1 listener; nothing is answered until [`MetricsServer::run`] is polled.
pub struct MetricsServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port, see [`MetricsServer::local_addr`]).
    ///
    /// `/status` is asked of the daemon's event loop through `status` (see
    /// [`crate::status`]).
    pub async fn bind(
        addr: SocketAddr,
        registry: Arc<Registry>,
        status: StatusDesk,
    ) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            // Status pages name every terminal and its addresses; metrics show load. Serving
            // them beyond the host is a choice an operator should have made on purpose.
            tracing::warn!(
                %addr,
                "metrics and /status listen beyond loopback: anyone who can reach this address                  can read them; bind to ::1 or 127.0.0.1 unless a firewall guards it"
            );
        }
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            shared: Arc::new(Shared { registry, status }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until the future is dropped (spawn it next to the daemon's main loop).
    pub async fn run(self) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(%err, "metrics listener: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            };
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(respond(&shared, &request).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(err) = connection.await {
                    tracing::debug!(%err, "metrics connection ended with an error");
                }
            });
        }
    }
}

async fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let mut body = String::new();
            let openmetrics = request.headers().get_all(ACCEPT).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.contains("application/openmetrics-text"))
            });
            match prometheus_client::encoding::text::encode(&mut body, &shared.registry) {
                Ok(()) if openmetrics => reply(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, body),
                Ok(()) => reply(
                    StatusCode::OK,
                    super::TEXT_CONTENT_TYPE,
                    super::text004::from_openmetrics(&body),
                ),
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "metrics encoding failed\n".into(),
                ),
            }
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/status" => match shared.status.fetch().await {
            Ok(json) => reply(StatusCode::OK, "application/json", json),
            Err(Unavailable::Busy) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "the daemon is busy; try again\n".into(),
            ),
            Err(Unavailable::Gone) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no status: the daemon is stopping\n".into(),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
