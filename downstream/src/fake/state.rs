//! The fake's memory: request log, quota window, tickets written to.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::FakeConfig;

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// `GET`, `PUT`, `POST`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body, if it was JSON.
    pub body: Option<serde_json::Value>,
    /// Arrival, in milliseconds since the server started (or was reset).
    pub at_ms: f64,
    /// Status answered (0 while still being answered).
    pub status: u16,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// The `Retry-After` sent with a 429, in seconds.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// The W3C `traceparent` header, if sent.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl LoggedRequest {
    /// Whether it would change state downstream: anything but `GET` and chat
    /// completions.
    pub fn is_write(&self) -> bool {
        self.method != "GET" && !self.path.starts_with("/v1/chat/completions")
    }
}

#[derive(Debug, Default, Clone)]
pub struct TicketState {
    pub tags: BTreeSet<String>,
    pub status: Option<String>,
    pub assignee_id: Option<String>,
    pub comments: Vec<serde_json::Value>,
}

#[derive(Debug)]
pub struct FakeState {
    pub cfg: FakeConfig,
    pub started: Instant,
    pub log: Vec<LoggedRequest>,
    pub tickets: HashMap<String, TicketState>,
    /// Log indices of the requests still being answered.
    pub in_flight: BTreeSet<usize>,
    quota_hits: VecDeque<Instant>,
}

/// The quota's verdict on one request.
pub enum QuotaVerdict {
    Allowed { remaining: u32 },
    Limited { retry_after_secs: u64 },
}

impl FakeState {
    pub fn new(cfg: FakeConfig) -> Self {
        FakeState {
            cfg,
            started: Instant::now(),
            log: Vec::new(),
            tickets: HashMap::new(),
            in_flight: BTreeSet::new(),
            quota_hits: VecDeque::new(),
        }
    }

    pub fn reset(&mut self) {
        self.started = Instant::now();
        self.log.clear();
        self.tickets.clear();
        self.in_flight.clear();
        self.quota_hits.clear();
    }

    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Sliding window: count the request if under the limit.
    pub fn quota(&mut self, now: Instant) -> QuotaVerdict {
        let Some(q) = self.cfg.richpanel_quota else {
            return QuotaVerdict::Allowed {
                remaining: u32::MAX,
            };
        };
        let window = Duration::from_millis(q.window_ms);
        while self
            .quota_hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.quota_hits.pop_front();
        }
        if self.quota_hits.len() >= q.limit as usize {
            let oldest = self.quota_hits.front().copied().unwrap_or(now);
            let wait = (oldest + window).saturating_duration_since(now);
            // Whole seconds, rounded up, at least 1: as Richpanel sends it.
            let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
            return QuotaVerdict::Limited {
                retry_after_secs: secs,
            };
        }
        self.quota_hits.push_back(now);
        QuotaVerdict::Allowed {
            remaining: q.limit.saturating_sub(self.quota_hits.len() as u32),
        }
    }

    /// The status a fault rule imposes on a request arriving at `at_ms`.
    pub fn fault(&self, at_ms: f64) -> Option<u16> {
        if let Some(s) = self.cfg.force_status {
            return Some(s);
        }
        if let Some(o) = self
            .cfg
            .outages
            .iter()
            .find(|o| at_ms >= o.from_ms as f64 && at_ms < o.to_ms as f64)
        {
            return Some(o.status);
        }
        if self.cfg.error_rate > 0.0 && rand::random::<f64>() < self.cfg.error_rate {
            return Some(500);
        }
        None
    }
}
