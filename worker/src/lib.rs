//! The worker: queue → enrich → the conversation aggregate → downstreams.
//!
//! One receive loop feeds per-conversation tasks (conversations run in
//! parallel; one conversation never has two messages in processing). Each
//! message is enriched into the messages it stands for; each of those is
//! decided by the aggregate (`conversation::decide`) and recorded in its
//! conversation's log atomically with the projection; then its actions are
//! performed through the downstream safety stack, each outcome recorded
//! (`conversation::outcome_events`) before the next action's call.
//!
//! # Layout
//! - `consumer.rs` — receive loop, per-group tasks, visibility heartbeat,
//!   backoff schedule, dead-lettering, graceful shutdown.
//! - `disposition.rs` — what becomes of a message: done, retry, dead letter.
//! - `lease.rs` — a conversation's lease across the processes of a fleet.
//! - `process.rs` — one message: decode, enrich, decide and record,
//!   perform pending actions.
//! - `enrich.rs` — fetch the ticket behind a minimal Richpanel webhook, the
//!   raw email behind an SES S3 pointer.
//! - `perform.rs` — perform one action through the downstream stack and
//!   map the answer to a domain `Outcome`.
//! - `faults.rs` — fault injection for tests.
//! - `metrics.rs` — the worker's metric names.
//! - `lambda.rs` — the SQS event-source entry point (batch item failures).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod consumer;
mod disposition;
mod enrich;
mod faults;
pub mod hold;
pub mod lambda;
mod lease;
pub mod metrics;
mod perform;
mod process;

use std::sync::Arc;
use std::time::Duration;

pub use consumer::{backoff_for, run};
pub use disposition::Disposition;
pub use faults::Faults;

use conversation::Rules;
use downstream::Clients;
use ports::Backend;

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
    /// The ports (queue, event log, blobs, flags, secrets).
    pub backend: Backend,
    /// The downstream clients behind their safety stack.
    pub downstreams: Clients,
    /// The decision rules.
    pub rules: Arc<Rules>,
    /// Tuning.
    pub config: WorkerConfig,
    /// How raw email fetched from the blob store is normalized.
    pub normalize: envelope::NormalizeConfig,
    /// Fault injection (tests only).
    pub faults: Arc<Faults>,
    /// Queue deletes still on their way (see `consumer::apply`); waited for
    /// at shutdown and at the end of a Lambda batch.
    pub deletes: tokio_util::task::TaskTracker,
    /// This process's name as a holder of conversation leases (random).
    pub instance: Arc<str>,
    /// Conversations held by a pause (`hold.rs`).
    pub holds: Arc<hold::Holds>,
}

impl Worker {
    /// A worker on `backend` with default normalization and no faults.
    pub fn new(backend: Backend, downstreams: Clients, rules: Rules, config: WorkerConfig) -> Self {
        Worker {
            backend,
            downstreams,
            rules: Arc::new(rules),
            config,
            normalize: envelope::NormalizeConfig::default(),
            faults: Arc::default(),
            deletes: tokio_util::task::TaskTracker::new(),
            instance: format!("{:032x}", rand::random::<u128>()).into(),
            holds: Arc::default(),
        }
    }
}

/// Build a worker on `backend` (the Lambda entry point's way, with
/// [`ports::BackendConfig::from_env`]): downstreams per
/// `downstream::DownstreamConfig::from_env`, rules from
/// `SWITCHYARD_RULES` (a TOML file) or the built-in default.
pub async fn from_env(
    backend: &ports::BackendConfig,
) -> Result<Worker, Box<dyn std::error::Error + Send + Sync>> {
    let backend = Backend::open(backend).await?;
    let rules = match std::env::var("SWITCHYARD_RULES") {
        Ok(path) if !path.is_empty() => Rules::load(std::path::Path::new(&path))?,
        _ => Rules::default_rules()?,
    };
    let downstreams = Clients::with_fleet(
        downstream::DownstreamConfig::from_env()?,
        backend.flags.clone(),
        backend.secrets.clone(),
        backend.fleet.clone(),
    );
    Ok(Worker::new(
        backend,
        downstreams,
        rules,
        WorkerConfig::default(),
    ))
}
