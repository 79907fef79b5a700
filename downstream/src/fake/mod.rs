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
    pub limit: u32,
    pub window_ms: u64,
}

/// An outage window, in milliseconds since the server started (or was
/// reset): requests inside it get `status`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub from_ms: u64,
    pub to_ms: u64,
    #[serde(default = "default_outage_status")]
    pub status: u16,
}

fn default_outage_status() -> u16 {
    503
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
    pub outages: Vec<Outage>,
    /// Answer every request with this status (e.g. 500 for "down" until
    /// cleared). Checked before the quota.
    pub force_status: Option<u16>,
    /// Richpanel's quota on `/v1/tickets*` and `/v1/order*`; `None` = none.
    pub richpanel_quota: Option<FakeQuota>,
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

    /// The fake's clock: milliseconds since start (or reset), the time base
    /// of [`LoggedRequest::at_ms`].
    pub fn elapsed_ms(&self) -> f64 {
        self.lock().elapsed_ms()
    }

    pub fn config(&self) -> FakeConfig {
        self.lock().cfg.clone()
    }

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
