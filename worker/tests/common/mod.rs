//! Test harness shared by the worker's integration tests: a backend
//! (embedded in a temp dir, or AWS on the local servers with a unique
//! prefix), the fake downstream server, and a worker wired to both.
#![allow(dead_code, unused_macros)]

/// Run `$name(kind)` on the embedded backend, and on AWS: those tests are
/// ignored unless asked for (`--include-ignored`; `scripts/test` starts the
/// local servers and does), and fail when asked for without the servers.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("embedded").await })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
            async fn $name() {
                assert!(super::common::aws_enabled(), "{}", ports::aws::SERVERS_NOT_SET);
                super::$name("aws").await
            })*
        }
    };
}

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use conversation::Event;
use conversation::Rules;
use downstream::fake::{FakeConfig, FakeHandle, FakeServer};
use downstream::{ApiKey, Clients, Downstream, DownstreamConfig};
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings, OutgoingMessage};
use tempfile::TempDir;
use worker::{Worker, WorkerConfig};

pub struct Harness {
    pub backend: Backend,
    pub fake: FakeHandle,
    pub worker: Worker,
    _dir: Option<TempDir>,
}

/// Which backends to run on: embedded always; AWS when the test script
/// started the local servers (`SWITCHYARD_AWS_TESTS=1`).
pub fn aws_enabled() -> bool {
    std::env::var("SWITCHYARD_AWS_TESTS").is_ok_and(|v| v == "1")
}

pub async fn backend(kind: &str) -> (Backend, Option<TempDir>) {
    let config = match kind {
        "embedded" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut s = EmbeddedSettings::new(dir.path());
            s.max_receive_count = 4;
            s.raw_mail_buckets = vec![mail_bucket()];
            let config = BackendConfig::Embedded(s);
            Backend::provision(&config)
                .await
                .expect("provision embedded");
            let b = Backend::open(&config).await.expect("open embedded");
            return (b, Some(dir));
        }
        _ => {
            let prefix = format!("wk{}", &uuid_like()[..10]);
            let mut s = AwsSettings::new(prefix);
            s.max_receive_count = 4;
            s.raw_mail_buckets = vec![mail_bucket()];
            BackendConfig::Aws(s)
        }
    };
    Backend::provision(&config).await.expect("provision aws");
    (Backend::open(&config).await.expect("open aws"), None)
}

/// The raw-mail bucket the test backends allow (S3 names are lower case).
pub fn mail_bucket() -> String {
    format!("mail-{}", std::process::id())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    envelope::sha256_hex(format!("{t}-{n}-{}", std::process::id()).as_bytes())
}

pub async fn harness(kind: &str, fake_cfg: FakeConfig) -> Harness {
    let (backend, dir) = backend(kind).await;
    let fake = FakeServer::start(fake_cfg).await.expect("fake downstream");
    let mut cfg = DownstreamConfig::default().pointed_at(&fake.base_url());
    let rp = cfg.endpoint_mut(Downstream::Richpanel);
    rp.api_key = Some(ApiKey("test-key".into()));
    // The fake has no quota in these tests; don't throttle to Richpanel's
    // real 50 per 30 s either (the downstream crate tests the bucket).
    rp.quota = downstream::config::QuotaConfig {
        requests: 10_000,
        period_ms: 1_000,
        burst: 1_000,
    };
    let downstreams = Clients::new(cfg, backend.flags.clone(), backend.secrets.clone());
    let config = WorkerConfig {
        concurrency: 16,
        visibility: Duration::from_secs(10),
        receive_wait: Duration::from_secs(1),
        batch: 10,
        use_model: false,
        max_retry_delay: Duration::from_secs(12 * 3600),
    };
    let rules = Rules::default_rules().expect("rules");
    let worker = Worker::new(backend.clone(), downstreams, rules, config);
    Harness {
        backend,
        fake,
        worker,
        _dir: dir,
    }
}

/// A rich Richpanel webhook body.
pub fn richpanel_body(ticket: &str, message_id: &str, text: &str) -> Vec<u8> {
    serde_json::json!({
        "ticket_id": ticket,
        "message_id": message_id,
        "message": text,
        "channel": "email",
        "customer_email": "ana@example.com",
    })
    .to_string()
    .into_bytes()
}

pub fn envelope(ticket: &str, message_id: &str, text: &str) -> envelope::Envelope {
    envelope::normalize_richpanel(
        &richpanel_body(ticket, message_id, text),
        &envelope::NormalizeConfig::default(),
        Utc::now(),
    )
    .expect("normalizes")
}

/// Enqueue an envelope as the ingress would.
pub async fn enqueue(backend: &Backend, env: &envelope::Envelope) {
    enqueue_with_dedup(backend, env, &env.dedup_id()).await;
}

pub async fn enqueue_with_dedup(backend: &Backend, env: &envelope::Envelope, dedup: &str) {
    backend
        .queue
        .send(OutgoingMessage {
            group_id: env.group_id(),
            dedup_id: dedup.to_owned(),
            body: env.to_json(),
            attributes: Default::default(),
        })
        .await
        .expect("enqueue");
}

pub async fn events(backend: &Backend, stream: &str) -> Vec<Event> {
    conversation::read_events(backend.events.as_ref(), stream)
        .await
        .expect("read stream")
}

/// Poll until `check` holds, or panic after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing waiting and nothing in flight.
pub async fn drained(backend: &Backend) -> bool {
    backend
        .queue
        .stats()
        .await
        .is_ok_and(|s| s.visible == 0 && s.in_flight == 0)
}

pub async fn wait_drained(backend: &Backend, limit: Duration) {
    eventually(limit, "queue drained", || drained(backend)).await;
}

/// Stop the worker loop and wait (bounded) for it to finish in-flight work.
pub async fn stop_worker(
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("worker stops within 30 s")
        .expect("worker did not panic");
}

/// Start the worker loop; cancel the token to stop it.
pub fn spawn_worker(
    worker: &Worker,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let token = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(worker::run(worker.clone(), token.clone()));
    (token, handle)
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// Wraps a backend's queue and records every delivery (message id, receive
/// count), to prove what a consumer received and how often.
#[derive(Debug)]
pub struct CountingQueue {
    pub inner: Arc<dyn ports::Queue>,
    pub deliveries: std::sync::Mutex<Vec<(String, u32)>>,
}

impl CountingQueue {
    /// Put a counting wrapper in front of `backend`'s queue.
    pub fn wrap(backend: &mut Backend) -> Arc<CountingQueue> {
        let q = Arc::new(CountingQueue {
            inner: backend.queue.clone(),
            deliveries: Default::default(),
        });
        backend.queue = q.clone();
        q
    }

    /// The highest receive count any message was delivered with.
    pub fn max_receive_count(&self) -> u32 {
        self.deliveries
            .lock()
            .map(|d| d.iter().map(|(_, n)| *n).max().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl ports::Queue for CountingQueue {
    async fn send(&self, msg: OutgoingMessage) -> ports::Result<String> {
        self.inner.send(msg).await
    }
    fn max_receive(&self) -> u32 {
        self.inner.max_receive()
    }
    fn max_receive_count(&self) -> Option<u32> {
        self.inner.max_receive_count()
    }
    fn receives_outlive_their_caller(&self) -> bool {
        self.inner.receives_outlive_their_caller()
    }
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> ports::Result<Vec<ports::ReceivedMessage>> {
        let got = self.inner.receive(max, visibility, wait).await?;
        if let Ok(mut d) = self.deliveries.lock() {
            d.extend(got.iter().map(|m| (m.message_id.clone(), m.receive_count)));
        }
        Ok(got)
    }
    async fn delete(&self, receipt: &str) -> ports::Result<()> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> ports::Result<()> {
        self.inner.change_visibility(receipt, visibility).await
    }
    async fn dead_letter(&self, msg: &ports::ReceivedMessage, reason: &str) -> ports::Result<()> {
        self.inner.dead_letter(msg, reason).await
    }
    async fn dlq_list(
        &self,
        filter: &ports::DlqFilter,
        limit: usize,
    ) -> ports::Result<Vec<ports::DeadLetter>> {
        self.inner.dlq_list(filter, limit).await
    }
    async fn dlq_redrive(&self, which: ports::Redrive) -> ports::Result<usize> {
        self.inner.dlq_redrive(which).await
    }
    async fn stats(&self) -> ports::Result<ports::QueueStats> {
        self.inner.stats().await
    }
}

/// A fleet that records every lease call (key, owner, "lease"/"release")
/// and passes it on.
#[derive(Debug)]
pub struct RecordingFleet {
    pub inner: Arc<dyn ports::Fleet>,
    pub calls: std::sync::Mutex<Vec<(String, String, &'static str)>>,
}

impl RecordingFleet {
    /// Put a recording wrapper in front of `backend`'s fleet (AWS only).
    pub fn wrap(backend: &mut Backend) -> Arc<RecordingFleet> {
        let f = Arc::new(RecordingFleet {
            inner: backend.fleet.clone().expect("a backend with a fleet"),
            calls: Default::default(),
        });
        backend.fleet = Some(f.clone());
        f
    }

    /// The lease calls made for `key`, in order.
    pub fn calls_for(&self, key: &str) -> Vec<(String, &'static str)> {
        self.calls
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|(k, _, _)| k == key)
                    .map(|(_, o, op)| (o.clone(), *op))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl ports::Fleet for RecordingFleet {
    async fn lease(&self, key: &str, owner: &str, hold: Duration) -> ports::Result<bool> {
        if let Ok(mut c) = self.calls.lock() {
            c.push((key.to_owned(), owner.to_owned(), "lease"));
        }
        self.inner.lease(key, owner, hold).await
    }
    async fn release(&self, key: &str, owner: &str) -> ports::Result<()> {
        if let Ok(mut c) = self.calls.lock() {
            c.push((key.to_owned(), owner.to_owned(), "release"));
        }
        self.inner.release(key, owner).await
    }
    async fn take(
        &self,
        bucket: &str,
        want: u32,
        rate: ports::Rate,
    ) -> ports::Result<ports::Grant> {
        self.inner.take(bucket, want, rate).await
    }
    async fn pause(&self, bucket: &str, d: Duration) -> ports::Result<()> {
        self.inner.pause(bucket, d).await
    }
}

/// Receive the next message once (as another consumer would) and let its
/// visibility run out: what is received next is a redelivery.
pub async fn let_a_delivery_lapse(queue: &dyn ports::Queue) {
    let first = queue
        .receive(1, Duration::from_secs(1), Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
