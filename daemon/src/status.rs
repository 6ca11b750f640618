//! `/status`, built when asked: the metrics server's task asks the event loop for a
//! [`Snapshot`] of its daemon, then finishes it (encodes it, adds what is read outside the
//! loop) on the blocking pool. Nothing rebuilds a status document periodically, and a large
//! one (100,000 bindings) costs the loop only the copy of its rows.
//!
//! [`status_channel`] makes the two ends: the [`StatusDesk`] for the server, the
//! [`StatusRequests`] for [`crate::driver::run`], which answers each request with
//! [`crate::driver::Shell::status`].
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// How long a request waits for the loop (a loop busy with a large burst answers late, a
/// stuck one never).
const STATUS_WAIT: Duration = Duration::from_secs(2);
/// Requests queued for the loop beyond this are answered "busy" at once.
const QUEUE: usize = 16;

/// A daemon's status, taken on the loop; finished into JSON off it.
pub struct Snapshot(Box<dyn FnOnce() -> Option<String> + Send>);

impl Snapshot {
    /// A document encoded as it is.
    pub fn json<T: Serialize + Send + 'static>(document: T) -> Snapshot {
        Snapshot(Box::new(move || encode(&document)))
    }

    /// A document that `finish` completes and encodes off the loop (kernel counters read
    /// there, for instance). It runs on the blocking pool.
    pub fn finish_with(finish: impl FnOnce() -> Option<String> + Send + 'static) -> Snapshot {
        Snapshot(Box::new(finish))
    }
}

/// Encodes `document`; a document that cannot be encoded is logged and not served.
pub fn encode<T: Serialize>(document: &T) -> Option<String> {
    match serde_json::to_string(document) {
        Ok(json) => Some(json),
        Err(e) => {
            tracing::warn!("cannot encode /status: {e}");
            None
        }
    }
}

type Request = oneshot::Sender<Snapshot>;

/// The metrics server's end.
#[derive(Clone)]
pub struct StatusDesk {
    requests: mpsc::Sender<Request>,
}

/// Why `/status` has no document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The loop did not answer in time, or too many requests wait for it.
    Busy,
    /// The loop has stopped (shutdown), or the document could not be encoded.
    Gone,
}

impl StatusDesk {
    /// The daemon's status document, as JSON.
    pub async fn fetch(&self) -> Result<String, Unavailable> {
        let (reply, answer) = oneshot::channel();
        self.requests.try_send(reply).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Unavailable::Busy,
            mpsc::error::TrySendError::Closed(_) => Unavailable::Gone,
        })?;
        let snapshot = match tokio::time::timeout(STATUS_WAIT, answer).await {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(_)) => return Err(Unavailable::Gone),
            Err(_) => {
                tracing::warn!(
                    wait_s = STATUS_WAIT.as_secs(),
                    "/status: no snapshot from the event loop in time"
                );
                return Err(Unavailable::Busy);
            }
        };
        tokio::task::spawn_blocking(snapshot.0)
            .await
            .ok()
            .flatten()
            .ok_or(Unavailable::Gone)
    }
}

/// The event loop's end.
pub struct StatusRequests {
    requests: Option<mpsc::Receiver<Request>>,
}

impl StatusRequests {
    /// The next request. Cancel-safe. Once the server is gone, never: a closed channel would
    /// otherwise wake the loop at once on every turn.
    pub async fn next(&mut self) -> oneshot::Sender<Snapshot> {
        loop {
            let Some(requests) = self.requests.as_mut() else {
                return std::future::pending().await;
            };
            match requests.recv().await {
                Some(request) => return request,
                None => {
                    tracing::warn!("the metrics server has stopped: /status is no longer served");
                    self.requests = None;
                }
            }
        }
    }

    /// An end that never has a request (a daemon run without a metrics server, tests).
    pub fn none() -> StatusRequests {
        StatusRequests { requests: None }
    }
}

/// The two ends of `/status`.
pub fn status_channel() -> (StatusDesk, StatusRequests) {
    let (requests, rx) = mpsc::channel(QUEUE);
    (
        StatusDesk { requests },
        StatusRequests { requests: Some(rx) },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_request_is_answered_with_the_loops_snapshot_encoded_off_it() {
        let (desk, mut requests) = status_channel();
        let loop_side = tokio::spawn(async move {
            let reply = requests.next().await;
            let _ = reply.send(Snapshot::json(vec![1, 2, 3]));
            let reply = requests.next().await;
            let _ = reply.send(Snapshot::finish_with(|| Some("{\"late\":true}".into())));
        });
        assert_eq!(desk.fetch().await.unwrap(), "[1,2,3]");
        assert_eq!(desk.fetch().await.unwrap(), "{\"late\":true}");
        loop_side.await.unwrap();
        // The loop is gone: no document, and no wait for one.
        assert_eq!(desk.fetch().await, Err(Unavailable::Gone));
    }

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_does_not_answer_is_busy_after_the_wait() {
        let (desk, _requests) = status_channel();
        assert_eq!(desk.fetch().await, Err(Unavailable::Busy));
    }

    #[tokio::test]
    async fn requests_beyond_the_queue_are_busy_at_once() {
        let (desk, _requests) = status_channel();
        let mut waiting = Vec::new();
        for _ in 0..QUEUE {
            let (reply, answer) = oneshot::channel();
            desk.requests.try_send(reply).unwrap();
            waiting.push(answer);
        }
        assert_eq!(desk.fetch().await, Err(Unavailable::Busy));
    }
}
