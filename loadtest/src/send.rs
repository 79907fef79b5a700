//! The open-loop sender: requests leave at their intended times whatever
//! the server does, and latency counts from the intended time, so queueing
//! in a slow server shows up in the numbers (no coordinated omission).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::scenario::Resolved;
use crate::traffic::{Arrival, Generator, Kind, Request, Route};

/// What happened to one request. Times are offsets from the run start.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    pub route: Route,
    pub conversation: usize,
    pub duplicate: bool,
    pub intended: Duration,
    pub sent: Duration,
    pub done: Duration,
    /// HTTP status; 0 when no response arrived.
    pub status: u16,
    /// `event_id` of a 2xx answer.
    pub event_id: Option<String>,
    /// `status` word of a 2xx answer (`accepted`, `duplicate`, ...).
    pub word: Option<String>,
    /// `error` of a non-2xx answer, or the client-side failure.
    pub error: Option<String>,
    /// A non-2xx answer carried JSON `{error, reason}`.
    pub has_reason: bool,
}

impl Outcome {
    /// Latency from the intended send time.
    pub fn latency(&self) -> Duration {
        self.done.saturating_sub(self.intended)
    }
}

/// Counters the progress bar reads while the run goes on.
#[derive(Debug)]
pub struct Live {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub latency: std::sync::Mutex<Histogram<u64>>,
}

impl Live {
    pub fn new() -> Live {
        Live {
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::sync::Mutex::new(new_hist()),
        }
    }
    pub fn p99_ms(&self) -> f64 {
        let h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        h.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// A histogram of microseconds, 1 µs .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// `base` + each route's path, parsed once (richpanel, email, ses).
    urls: [reqwest::Url; 3],
    pub token: String,
    pub token_header: String,
    pub client: reqwest::Client,
    /// Without connection reuse, for malformed requests: a server may
    /// close a connection after refusing a body it did not read, and a
    /// pooled connection racing that close would fail a valid request.
    pub unpooled: reqwest::Client,
}

impl Target {
    pub fn new(
        base: &str,
        token: String,
        token_header: String,
        client: reqwest::Client,
        unpooled: reqwest::Client,
    ) -> anyhow::Result<Target> {
        let url = |r: Route| {
            reqwest::Url::parse(&format!("{base}{}", r.path()))
                .map_err(|e| anyhow::anyhow!("target {base:?}: {e}"))
        };
        Ok(Target {
            urls: [url(Route::Richpanel)?, url(Route::Email)?, url(Route::Ses)?],
            token,
            token_header,
            client,
            unpooled,
        })
    }

    fn url(&self, r: Route) -> reqwest::Url {
        let [richpanel, email, ses] = &self.urls;
        match r {
            Route::Richpanel => richpanel.clone(),
            Route::Email => email.clone(),
            Route::Ses => ses.clone(),
        }
    }
}

/// Planned number of arrivals of `phases`.
pub fn planned(phases: &[Resolved]) -> u64 {
    phases
        .iter()
        .map(|p| (p.rate * p.duration.as_secs_f64()).ceil() as u64)
        .sum()
}

/// Send every arrival of `phases` at its intended time; returns when all
/// answers are in. `max_in_flight` bounds open requests: an arrival that
/// finds none free is recorded as `client_saturated` (never delayed).
///
/// The schedule is kept by a thread of its own sleeping to each intended
/// time (the kernel's timers are precise to tens of µs; tokio's timer
/// wheel works in whole milliseconds, which sent requests in bursts up to
/// 1 ms late and counted that lateness as server latency). Requests are
/// then sent from the async runtime.
pub async fn run(
    phases: Vec<Resolved>,
    generator: Generator,
    target: Target,
    start: Instant,
    max_in_flight: usize,
    live: Arc<Live>,
) -> Vec<Outcome> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let collector = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        while let Some(outcome) = rx.recv().await {
            outcomes.push(outcome);
        }
        outcomes
    });
    let pacer = Pacer {
        runtime: tokio::runtime::Handle::current(),
        target: Arc::new(target),
        permits: Arc::new(Semaphore::new(max_in_flight)),
        start,
        live,
        tx,
    };
    let paced = std::thread::Builder::new()
        .name("loadtest-pacer".into())
        .spawn(move || pacer.pace(phases, generator));
    match paced {
        // The pacer drops its sender when done; the collector then ends
        // once every request task has dropped its clone.
        Ok(thread) => {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        Err(e) => eprintln!("loadtest: cannot start the pacer thread: {e}"),
    }
    collector.await.unwrap_or_default()
}

/// What the pacer thread needs to start requests on the runtime.
struct Pacer {
    runtime: tokio::runtime::Handle,
    target: Arc<Target>,
    permits: Arc<Semaphore>,
    start: Instant,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Outcome>,
}

impl Pacer {
    fn pace(self, phases: Vec<Resolved>, mut generator: Generator) {
        let start = self.start.into_std();
        let mut phase_start = Duration::ZERO;
        for phase in phases {
            let interval = 1.0 / phase.rate;
            let mut arrival_in_phase: u64 = 0;
            loop {
                let offset = Duration::from_secs_f64(arrival_in_phase as f64 * interval);
                if offset >= phase.duration {
                    break;
                }
                arrival_in_phase += 1;
                let intended = phase_start + offset;
                let late = start.elapsed();
                if intended > late {
                    std::thread::sleep(intended - late);
                }
                let (req, copies) = match generator.next_arrival() {
                    Arrival::One(request) => (request, 1),
                    Arrival::Concurrent(request) => (request, 2),
                };
                let req = Arc::new(req);
                for _ in 0..copies {
                    self.launch(Arc::clone(&req), intended);
                }
            }
            phase_start += phase.duration;
        }
    }

    fn launch(&self, req: Arc<Request>, intended: Duration) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let now = self.start.elapsed();
            self.live.done.fetch_add(1, Ordering::Relaxed);
            self.live.errors.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .tx
                .send(failed(&req, intended, now, "client_saturated"));
            return;
        };
        let (target, tx, live, start) = (
            Arc::clone(&self.target),
            self.tx.clone(),
            Arc::clone(&self.live),
            self.start,
        );
        self.runtime.spawn(async move {
            let outcome = send_one(&req, &target, start, intended).await;
            let latency_us = outcome.latency().as_micros().max(1) as u64;
            if let Ok(mut histogram) = live.latency.lock() {
                let _ = histogram.record(latency_us);
            }
            if !(200..300).contains(&outcome.status) && !outcome.kind.malformed() {
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
            live.done.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(outcome);
            drop(permit);
        });
    }
}

fn failed(req: &Request, intended: Duration, now: Duration, why: &str) -> Outcome {
    Outcome {
        kind: req.kind,
        route: req.route,
        conversation: req.conversation,
        duplicate: req.duplicate,
        intended,
        sent: now,
        done: now,
        status: 0,
        event_id: None,
        word: None,
        error: Some(why.to_owned()),
        has_reason: false,
    }
}

async fn send_one(req: &Request, target: &Target, start: Instant, intended: Duration) -> Outcome {
    let sent = start.elapsed();
    let token = if req.good_token {
        target.token.as_str()
    } else {
        "not-the-token"
    };
    let client = if req.kind.malformed() {
        &target.unpooled
    } else {
        &target.client
    };
    let mut builder = client
        .post(target.url(req.route))
        .header(reqwest::header::CONTENT_TYPE, req.content_type)
        .header(target.token_header.as_str(), token);
    if req.route == Route::Ses {
        // SNS names the message type in a header as well as in the body.
        builder = builder.header("x-amz-sns-message-type", "Notification");
    }
    let resp = builder.body(req.body.clone()).send().await;
    let mut outcome = failed(req, intended, sent, "");
    outcome.sent = sent;
    match resp {
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            if std::env::var_os("LOADTEST_DEBUG_ERRORS").is_some() {
                let mut chain = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(cause) = src {
                    chain = format!("{chain}: {cause}");
                    src = cause.source();
                }
                eprintln!("loadtest: {kind} error on {}: {chain}", req.route.path());
            }
            outcome.error = Some(kind.into());
        }
        Ok(response) => {
            outcome.status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            if (200..300).contains(&outcome.status) {
                outcome.error = None;
                outcome.event_id = field("event_id");
                outcome.word = field("status");
            } else {
                outcome.error =
                    Some(field("error").unwrap_or_else(|| format!("http_{}", outcome.status)));
                outcome.has_reason =
                    field("error").is_some() && field("reason").is_some_and(|r| !r.is_empty());
            }
        }
    }
    outcome.done = start.elapsed();
    outcome
}
