//! A fake of the three downstreams on one local HTTP server: the Richpanel,
//! OpenAI-compatible and Shopify shapes the clients use, with configurable
//! latency, error rate, outage windows and Richpanel's quota (50 requests
//! per 30 s by default; 429 + `Retry-After` + `X-RateLimit-Remaining`; the
//! window is configurable so tests can scale it down).
//!
//! Every request (except `/_fake/*`) is logged with its arrival time, so a
//! test can assert "zero writes happened" or "nothing arrived before
//! Retry-After": in process with [`FakeHandle::requests`] /
//! [`FakeHandle::writes`], or over HTTP from another process:
//! `GET /_fake/requests`, `GET|POST /_fake/config` (POST a [`FakeConfig`];
//! missing fields take their defaults), `POST /_fake/reset`.
//!
//! Slow writes: with [`FakeConfig::write_latency`] a write is applied as
//! it arrives and answered only after a random delay, so a client that
//! dies or gives up while waiting leaves an effect behind it never learned
//! of; [`FakeConfig::late_answer_rate`] answers some writes after
//! [`FakeConfig::late_answer_ms`] (set it past the client's timeout) for
//! the same ambiguous outcome without a crash. [`FakeHandle::in_flight`]
//! lists the requests still being answered.
//!
//! Tickets: any id returns a deterministic ticket with two customer
//! messages; tags, status, assignee and comments written with `PUT` are
//! remembered and returned by later reads.
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use state::FakeState;
pub use state::LoggedRequest;

/// Richpanel-style quota: at most `limit` requests in any `window_ms`
/// (sliding window); further requests get 429.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FakeQuota {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window's length.
    pub window_ms: u64,
}

/// An outage window, in milliseconds since the server started (or was
/// reset): requests inside it get `status`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// Start.
    pub from_ms: u64,
    /// End.
    pub to_ms: u64,
    /// The status answered inside (default 503).
    #[serde(default = "default_outage_status")]
    pub status: u16,
}

fn default_outage_status() -> u16 {
    503
}

/// A uniformly random delay, `min_ms..=max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyRange {
    /// Shortest delay.
    pub min_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
}

impl LatencyRange {
    /// One draw (an inverted range gives `min_ms`).
    pub fn sample(&self) -> u64 {
        if self.max_ms <= self.min_ms {
            return self.min_ms;
        }
        rand::random_range(self.min_ms..=self.max_ms)
    }
}

/// Faults and quota. Change at run time with [`FakeHandle::set_config`] or
/// `POST /_fake/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FakeConfig {
    /// Added before answering every request.
    pub latency_ms: u64,
    /// Share (0–1) of requests answered 500 at random.
    pub error_rate: f64,
    /// Windows in which every request gets the outage's status.
    pub outages: Vec<Outage>,
    /// Answer every request with this status (e.g. 500 for "down" until
    /// cleared). Checked before the quota.
    pub force_status: Option<u16>,
    /// Richpanel's quota on `/v1/tickets*` and `/v1/order*`; `None` = none.
    pub richpanel_quota: Option<FakeQuota>,
    /// Writes only (see [`LoggedRequest::is_write`]): applied on arrival,
    /// then answered after a random delay in this range (after
    /// `latency_ms`). `None`: writes are answered like reads.
    pub write_latency: Option<LatencyRange>,
    /// Share (0–1) of writes applied on arrival and answered only after
    /// `late_answer_ms`: past the client's timeout, an ambiguous outcome.
    pub late_answer_rate: f64,
    /// How late a late answer comes.
    pub late_answer_ms: u64,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            latency_ms: 0,
            error_rate: 0.0,
            outages: Vec::new(),
            force_status: None,
            richpanel_quota: Some(FakeQuota {
                limit: 50,
                window_ms: 30_000,
            }),
            write_latency: None,
            late_answer_rate: 0.0,
            late_answer_ms: 0,
        }
    }
}

/// Starts fake servers.
#[derive(Debug)]
pub struct FakeServer;

impl FakeServer {
    /// Bind `127.0.0.1:0` and serve in the background.
    pub async fn start(cfg: FakeConfig) -> std::io::Result<FakeHandle> {
        Self::start_on("127.0.0.1:0", cfg).await
    }

    /// Bind `addr` and serve in the background until the handle is dropped
    /// or [`FakeHandle::shutdown`] is called.
    pub async fn start_on(addr: &str, cfg: FakeConfig) -> std::io::Result<FakeHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FakeState::new(cfg)));
        let app = routes::router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "fake downstream server failed");
            }
        });
        Ok(FakeHandle {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running fake server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeHandle {
    /// `http://127.0.0.1:<port>`: pass to `DownstreamConfig::pointed_at`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Requests that would change state downstream (everything but `GET`
    /// and chat completions), whatever status they got.
    pub fn writes(&self) -> Vec<LoggedRequest> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.is_write())
            .cloned()
            .collect()
    }

    /// Requests arrived and not yet answered (nor given up by their
    /// client), oldest first.
    pub fn in_flight(&self) -> Vec<LoggedRequest> {
        let s = self.lock();
        s.in_flight
            .iter()
            .filter_map(|i| s.log.get(*i).cloned())
            .collect()
    }

    /// The fake's clock: milliseconds since start (or reset), the time base
    /// of [`LoggedRequest::at_ms`].
    pub fn elapsed_ms(&self) -> f64 {
        self.lock().elapsed_ms()
    }

    /// The faults and quota in force.
    pub fn config(&self) -> FakeConfig {
        self.lock().cfg.clone()
    }

    /// Replace the faults and quota.
    pub fn set_config(&self, cfg: FakeConfig) {
        self.lock().cfg = cfg;
    }

    /// Forget requests, tickets and quota usage; outage times restart at 0.
    pub fn reset(&self) {
        self.lock().reset();
    }

    /// Stop serving and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A slow write is in place before its answer, and a client that gives
    /// up waiting leaves it applied and no longer in flight.
    #[tokio::test]
    async fn slow_writes_are_applied_before_they_are_answered() {
        let fake = FakeServer::start(FakeConfig {
            richpanel_quota: None,
            write_latency: Some(LatencyRange {
                min_ms: 2_000,
                max_ms: 2_000,
            }),
            ..FakeConfig::default()
        })
        .await
        .expect("fake starts");
        let client = reqwest::Client::new();
        let url = format!("{}/v1/tickets/T1", fake.base_url());
        let put = client
            .put(&url)
            .json(&serde_json::json!({"ticket": {"comment": {"body": "hello", "public": true}}}))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(
            put.is_err_and(|e| e.is_timeout()),
            "the answer must be late"
        );
        let ticket: serde_json::Value = client
            .get(&url)
            .send()
            .await
            .expect("read answers")
            .json()
            .await
            .expect("json");
        let bodies: Vec<&str> = ticket["ticket"]["comments"]
            .as_array()
            .expect("comments")
            .iter()
            .filter_map(|c| c["plain_body"].as_str())
            .collect();
        assert!(bodies.contains(&"hello"), "{bodies:?}");
        // The read itself is answered at once; the abandoned write is gone.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !fake.in_flight().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(fake.in_flight().is_empty(), "{:?}", fake.in_flight());
        let log = fake.requests();
        assert_eq!(log[0].status, 0, "never answered: the client left");
    }
}
