//! Test harness: the two real backends, a switchable failing queue wrapper,
//! and an ingress served on a loopback port.
#![allow(dead_code, unused_macros, clippy::unwrap_used)]

/// One test per backend for each `async fn $name(tb: TestBackend)`:
/// `embedded::$name` runs always; `aws::$name` is ignored unless asked for
/// (`--include-ignored`, as `scripts/test` does) and then needs the local
/// AWS servers.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::common::embedded().await).await
            })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
            async fn $name() {
                super::$name(super::common::aws().await).await
            })*
        }
    };
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ingress::{Ingress, IngressConfig};
use ports::{
    AwsSettings, Backend, BackendConfig, DeadLetter, EmbeddedSettings, OutgoingMessage, PortError,
    Queue, QueueStats, ReceivedMessage, Redrive,
};

pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus");

/// A backend under test, and what keeps it alive.
pub struct TestBackend {
    pub name: &'static str,
    pub backend: Backend,
    /// The AWS name prefix (AWS backend only).
    pub prefix: Option<String>,
    pub _dir: Option<tempfile::TempDir>,
}

/// The embedded backend in a fresh temp dir.
pub async fn embedded() -> TestBackend {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BackendConfig::Embedded(EmbeddedSettings::new(dir.path()));
    let _ = Backend::provision(&cfg).await;
    let backend = Backend::open(&cfg).await.unwrap();
    TestBackend {
        name: "embedded",
        backend,
        prefix: None,
        _dir: Some(dir),
    }
}

/// The AWS backend under a unique prefix; panics unless the local servers
/// are configured (`SWITCHYARD_AWS_TESTS=1`).
pub async fn aws() -> TestBackend {
    ports::aws::require_local_servers();
    let prefix = format!(
        "swy-ing-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let cfg = BackendConfig::Aws(AwsSettings::new(prefix.clone()));
    Backend::provision(&cfg).await.unwrap();
    let backend = Backend::open(&cfg).await.unwrap();
    TestBackend {
        name: "aws",
        backend,
        prefix: Some(prefix),
        _dir: None,
    }
}

/// Wraps the real queue adapter; sends fail while `fail` is on.
#[derive(Debug)]
pub struct FlakyQueue {
    pub inner: Arc<dyn Queue>,
    pub fail: AtomicBool,
}

impl FlakyQueue {
    pub fn wrap(backend: &mut Backend) -> Arc<FlakyQueue> {
        let q = Arc::new(FlakyQueue {
            inner: backend.queue.clone(),
            fail: AtomicBool::new(false),
        });
        backend.queue = q.clone();
        // The intake must go through the flaky queue too: use the composed
        // claim → send → mark path (the embedded backend's fused path does
        // all three in one SQLite transaction, which fails whole or not at
        // all; the conformance suite covers it).
        backend.intake = Arc::new(ports::ComposedIntake {
            ledger: backend.ledger.clone(),
            queue: q.clone(),
        });
        q
    }
    pub fn set_failing(&self, on: bool) {
        self.fail.store(on, Ordering::SeqCst);
    }
}

#[async_trait]
impl Queue for FlakyQueue {
    fn max_receive(&self) -> u32 {
        self.inner.max_receive()
    }
    async fn send(&self, msg: OutgoingMessage) -> ports::Result<String> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::Unavailable("queue outage (test switch)".into()));
        }
        self.inner.send(msg).await
    }
    async fn receive(
        &self,
        max: u32,
        vis: Duration,
        wait: Duration,
    ) -> ports::Result<Vec<ReceivedMessage>> {
        self.inner.receive(max, vis, wait).await
    }
    async fn delete(&self, receipt: &str) -> ports::Result<()> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &str, vis: Duration) -> ports::Result<()> {
        self.inner.change_visibility(receipt, vis).await
    }
    async fn dead_letter(&self, msg: &ReceivedMessage, reason: &str) -> ports::Result<()> {
        self.inner.dead_letter(msg, reason).await
    }
    async fn dlq_list(
        &self,
        filter: &ports::DlqFilter,
        limit: usize,
    ) -> ports::Result<Vec<DeadLetter>> {
        self.inner.dlq_list(filter, limit).await
    }
    async fn dlq_redrive(&self, which: Redrive) -> ports::Result<usize> {
        self.inner.dlq_redrive(which).await
    }
    async fn stats(&self) -> ports::Result<QueueStats> {
        self.inner.stats().await
    }
}

/// An ingress served on 127.0.0.1:<random>.
pub struct App {
    pub base: String,
    pub token: String,
    pub backend: Backend,
    pub http: reqwest::Client,
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub const TOKEN: &str = "test-token-6f1c2a9e8b7d";

/// Serve an ingress over `backend` with `cfg` (token stored as a secret).
pub async fn serve(backend: Backend, cfg: IngressConfig) -> App {
    backend
        .secrets
        .store(ingress::SECRET_TOKEN, TOKEN)
        .await
        .unwrap();
    let ingress = Ingress::with_env_token(backend.clone(), cfg, None)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let router = ingress.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    App {
        base: format!("http://{addr}"),
        token: TOKEN.to_owned(),
        backend,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        server,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST a Richpanel body with the token.
    pub async fn richpanel(&self, body: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(self.url("/webhooks/richpanel"))
            .header("X-Switchyard-Token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        decode(resp).await
    }

    /// Messages waiting on the queue.
    pub async fn visible(&self) -> u64 {
        self.backend.queue.stats().await.unwrap().visible
    }
}

pub async fn decode(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// A Richpanel body for a fresh ticket.
pub fn ticket_body(ticket: &str, message_id: &str, text: &str) -> String {
    serde_json::json!({
        "ticket_id": ticket,
        "ticket_url": format!("https://app.richpanel.com/{ticket}"),
        "trigger": "customer_message",
        "message_id": message_id,
        "message": text,
        "channel": "email",
        "customer_email": "jane.doe.4711@example.com",
    })
    .to_string()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Bound a test step.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}
