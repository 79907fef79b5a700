//! The worker: queue → event log → projection → decision → actions.
//!
//! One receive loop feeds per-conversation tasks (conversations run in
//! parallel; one conversation never has two messages in processing). Each
//! message is turned into events appended to its conversation's stream
//! atomically with the projection, then its actions are performed through
//! the downstream safety stack, each outcome recorded as an event.
//!
//! # Layout
//! - `consumer.rs` — receive loop, per-group tasks, visibility heartbeat,
//!   backoff schedule, graceful shutdown.
//! - `process.rs` — one message: decode, expand, decide, append, act.
//! - `expand.rs` — enrichment: fetch the ticket behind a minimal Richpanel
//!   webhook, the raw email behind an SES S3 pointer.
//! - `act.rs` — perform one action through the downstream stack and turn
//!   the result into events.
//! - `stream.rs` — a loaded conversation stream that appends with the
//!   expected version and folds the projection.
//! - `decide.rs`, `rules.rs` — deterministic decisions from the rules file.
//! - `handback.rs` — an operator hands a conversation back to automation.
//! - `lambda.rs` — the SQS event-source entry point (batch item failures).
#![forbid(unsafe_code)]

mod act;
mod consumer;
pub mod decide;
mod expand;
mod handback;
pub mod lambda;
mod process;
pub mod rules;
mod stream;

use std::sync::Arc;
use std::time::Duration;

pub use consumer::{backoff_for, run};
pub use handback::{HandBack, hand_back};
pub use process::{Disposition, Faults};
pub use stream::{Stream, read_events, rebuild};

use downstream::Downstreams;
use ports::Backend;
use rules::Rules;

/// A file of this name in an embedded data dir marks it as a test target:
/// only there does `serve` accept fault injection that drops messages
/// (`SWITCHYARD_FAULT_DROP_EVERY`). The load harness writes it into the
/// temporary data dirs it creates.
pub const TEST_TARGET_MARKER: &str = "SWITCHYARD-TEST-TARGET";

/// Errors of the worker crate.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The rules file is invalid. Caller: refuse to start; fix the file.
    #[error("rules {source_name}: {reason}")]
    Rules { source_name: String, reason: String },
    /// A port failed. Caller: transient ones are retried via visibility.
    #[error(transparent)]
    Port(#[from] ports::PortError),
    /// A stored event or projection could not be decoded. Caller: surface
    /// it (`switchyard replay --verify` names the stream); never skip.
    #[error("stream {stream}: {reason}")]
    Corrupt { stream: String, reason: String },
}

/// Tuning of the worker. Defaults suit one machine and SQS alike.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Conversations processed at once.
    pub concurrency: usize,
    /// Visibility timeout of a received message; extended by a heartbeat
    /// every third of it while the message is worked on.
    pub visibility: Duration,
    /// Long-poll wait of one receive.
    pub receive_wait: Duration,
    /// Most messages per receive (the queue may allow fewer: SQS 10).
    pub batch: u32,
    /// Ask the OpenAI-compatible classifier (when configured) before the
    /// rules decide; any failure falls back to the rules.
    pub use_model: bool,
    /// Longest retry delay after a transient failure ([`backoff_for`] up to
    /// this; tests shorten it).
    pub max_retry_delay: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 64,
            visibility: Duration::from_secs(30),
            receive_wait: Duration::from_secs(2),
            batch: 100,
            use_model: true,
            max_retry_delay: Duration::from_secs(12 * 3600),
        }
    }
}

/// Everything a message needs to be processed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Worker {
    pub backend: Backend,
    pub downstreams: Downstreams,
    pub rules: Arc<Rules>,
    pub config: WorkerConfig,
    pub normalize: envelope::NormalizeConfig,
    pub faults: Arc<Faults>,
    /// Queue deletes still on their way (see `consumer::apply`); waited for
    /// at shutdown and at the end of a Lambda batch.
    pub deletes: tokio_util::task::TaskTracker,
}

impl Worker {
    pub fn new(
        backend: Backend,
        downstreams: Downstreams,
        rules: Rules,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            backend,
            downstreams,
            rules: Arc::new(rules),
            config,
            normalize: envelope::NormalizeConfig::default(),
            faults: Arc::default(),
            deletes: tokio_util::task::TaskTracker::new(),
        }
    }
}

/// Build a worker from the environment (the Lambda entry point's way):
/// backend per [`ports::BackendConfig::from_env`], downstreams per
/// `downstream::DownstreamConfig::from_env`, rules from
/// `SWITCHYARD_RULES` (a TOML file) or the built-in default.
pub async fn from_env() -> Result<Worker, Box<dyn std::error::Error + Send + Sync>> {
    let backend = Backend::open(&ports::BackendConfig::from_env()?).await?;
    let rules = match std::env::var("SWITCHYARD_RULES") {
        Ok(path) if !path.is_empty() => Rules::load(std::path::Path::new(&path))?,
        _ => Rules::default_rules()?,
    };
    let downstreams = Downstreams::new(
        downstream::DownstreamConfig::from_env()?,
        backend.flags.clone(),
        backend.secrets.clone(),
    );
    Ok(Worker::new(
        backend,
        downstreams,
        rules,
        WorkerConfig::default(),
    ))
}
