//! The bundle of ports the rest of the system uses, and how to build it.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{BlobStore, EventStore, FlagStore, Fleet, Intake, Ledger, Queue, Result, Secrets};

/// Every port, behind one cheap-to-clone handle.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The FIFO queue of envelopes, with its DLQ.
    pub queue: Arc<dyn Queue>,
    /// The ingress idempotency ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Ledger + queue as one "enqueue exactly once" call (the ingress path).
    pub intake: Arc<dyn Intake>,
    /// The event log and its projections.
    pub events: Arc<dyn EventStore>,
    /// Operator flags (kill switch, shadow mode...).
    pub flags: Arc<dyn FlagStore>,
    /// Secrets, behind a TTL cache.
    pub secrets: Secrets,
    /// Raw emails, limited to the allowed buckets.
    pub blobs: Arc<dyn BlobStore>,
    /// Leases and quota buckets shared with the other processes on this
    /// queue; `None` on a backend that is always one process (embedded).
    pub fleet: Option<Arc<dyn Fleet>>,
    /// One line naming the backend, for logs and `status`.
    pub description: String,
    /// The queue's `messaging.system` in trace spans (OpenTelemetry's
    /// messaging conventions): `aws_sqs`, or `switchyard_sqlite`.
    pub messaging_system: &'static str,
}

/// Deliveries before the queue itself dead-letters a message (SQS
/// `maxReceiveCount`). A backstop, not the retry policy: the worker holds a
/// conversation through transient failures with a growing backoff (about
/// 2 h over these deliveries, see `worker::backoff_for`) and dead-letters
/// a message itself, with its last reason, on its last delivery. Room is
/// left for the extra deliveries that crash recovery costs.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 20;

/// Settings of the embedded (SQLite) backend.
#[derive(Debug, Clone)]
pub struct EmbeddedSettings {
    /// Holds `switchyard.sqlite` (+ WAL), `blobs/` and `secrets/`.
    pub data_dir: PathBuf,
    /// Receives after which a message moves to the DLQ (SQS maxReceiveCount).
    pub max_receive_count: u32,
    /// Dedup window for queue sends (SQS: 5 minutes).
    pub dedup_window: Duration,
    /// Cache TTL for secrets.
    pub secrets_ttl: Duration,
    /// The only buckets raw emails are read from (under `blobs/`); default
    /// [`EMBEDDED_RAW_MAIL_BUCKET`].
    pub raw_mail_buckets: Vec<String>,
}

/// A file of this name in an embedded data dir marks it as a test target:
/// only there does `serve` accept fault injection that drops messages
/// (`SWITCHYARD_FAULT_DROP_EVERY`). The load harness writes it into the
/// temporary data dirs it creates.
pub const TEST_TARGET_MARKER: &str = "SWITCHYARD-TEST-TARGET";

/// The embedded backend's default raw-mail bucket.
pub const EMBEDDED_RAW_MAIL_BUCKET: &str = "raw-mail";

impl EmbeddedSettings {
    /// Defaults for a backend in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedSettings {
            data_dir: data_dir.into(),
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            dedup_window: Duration::from_secs(300),
            secrets_ttl: Duration::from_secs(300),
            raw_mail_buckets: vec![EMBEDDED_RAW_MAIL_BUCKET.to_owned()],
        }
    }
}

/// Settings of the AWS backend. Endpoints, region and credentials come from
/// the standard AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_SQS`, ...), so the same binary talks to AWS or to local
/// AWS-protocol servers.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Prefix of every queue, table and secret name, e.g. `switchyard-prod`.
    /// Names: `<prefix>-events.fifo`, `<prefix>-events-dlq.fifo`,
    /// `<prefix>-ledger`, `<prefix>-log`, `<prefix>-flags`; secrets
    /// `<prefix>/<name>`.
    pub prefix: String,
    /// Receives after which SQS moves a message to the DLQ
    /// (`maxReceiveCount` of the redrive policy).
    pub max_receive_count: u32,
    /// Cache TTL for secrets.
    pub secrets_ttl: Duration,
    /// The only S3 buckets raw emails are read from; default
    /// `<prefix>-raw-mail` ([`AwsSettings::default_raw_mail_bucket`]).
    pub raw_mail_buckets: Vec<String>,
    /// Secrets Manager ids (names or ARNs) of secrets kept elsewhere than
    /// `<prefix>/<name>`, keyed by the name's environment form
    /// (uppercased, `_` for every character outside `A-Z0-9`: `WEBHOOK_TOKEN`).
    pub secret_ids: BTreeMap<String, String>,
}

/// Prefix of the variables that name a secret's Secrets Manager id:
/// `SWITCHYARD_AWS_SECRET_ID_WEBHOOK_TOKEN=prod/richpanel-token` keeps the
/// `webhook-token` secret there instead of `<prefix>/webhook-token`.
pub const SECRET_ID_ENV_PREFIX: &str = "SWITCHYARD_AWS_SECRET_ID_";

impl AwsSettings {
    /// Defaults for the deployment named by `prefix`, with the secret ids
    /// of the non-empty [`SECRET_ID_ENV_PREFIX`] variables.
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let secret_ids = std::env::vars()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(SECRET_ID_ENV_PREFIX)?;
                let id = v.trim();
                (!key.is_empty() && !id.is_empty()).then(|| (key.to_owned(), id.to_owned()))
            })
            .collect();
        AwsSettings {
            raw_mail_buckets: vec![Self::default_raw_mail_bucket(&prefix)],
            prefix,
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            secrets_ttl: Duration::from_secs(300),
            secret_ids,
        }
    }

    /// The deployment's raw-mail bucket when none is configured.
    pub fn default_raw_mail_bucket(prefix: &str) -> String {
        format!("{prefix}-raw-mail")
    }
}

/// Which backend to run on: a closed set chosen at run time.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// SQLite and files in a data dir (the default).
    Embedded(EmbeddedSettings),
    /// SQS, DynamoDB, Secrets Manager and S3.
    Aws(AwsSettings),
}

impl BackendConfig {
    /// From the environment: `SWITCHYARD_BACKEND` = `embedded` (default) or
    /// `aws`; `SWITCHYARD_DATA_DIR` (default `./data`);
    /// `SWITCHYARD_AWS_PREFIX` (default `switchyard`);
    /// `SWITCHYARD_MAX_RECEIVE_COUNT` (default [`DEFAULT_MAX_RECEIVE_COUNT`]);
    /// `SWITCHYARD_RAW_MAIL_BUCKETS` (default: the backend's own bucket).
    pub fn from_env() -> Result<BackendConfig> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let max_receive_count = match var("SWITCHYARD_MAX_RECEIVE_COUNT") {
            Some(v) => v.parse().map_err(|_| {
                crate::PortError::Invalid(format!(
                    "SWITCHYARD_MAX_RECEIVE_COUNT={v:?} is not a number"
                ))
            })?,
            None => DEFAULT_MAX_RECEIVE_COUNT,
        };
        let buckets = var(crate::ENV_RAW_MAIL_BUCKETS)
            .map(|v| crate::parse_buckets(&v))
            .filter(|b| !b.is_empty());
        match var("SWITCHYARD_BACKEND").as_deref().unwrap_or("embedded") {
            "embedded" => {
                let mut s = EmbeddedSettings::new(
                    var("SWITCHYARD_DATA_DIR").unwrap_or_else(|| "data".into()),
                );
                s.max_receive_count = max_receive_count;
                if let Some(b) = buckets {
                    s.raw_mail_buckets = b;
                }
                Ok(BackendConfig::Embedded(s))
            }
            "aws" => {
                let mut s = AwsSettings::new(
                    var("SWITCHYARD_AWS_PREFIX").unwrap_or_else(|| "switchyard".into()),
                );
                s.max_receive_count = max_receive_count;
                if let Some(b) = buckets {
                    s.raw_mail_buckets = b;
                }
                Ok(BackendConfig::Aws(s))
            }
            other => Err(crate::PortError::Invalid(format!(
                "SWITCHYARD_BACKEND={other:?}: expected embedded or aws"
            ))),
        }
    }
}

impl Backend {
    /// Open the backend (embedded: create/migrate the data dir; AWS: resolve
    /// queue URLs and check the tables exist — run `init` first).
    pub async fn open(config: &BackendConfig) -> Result<Backend> {
        match config {
            BackendConfig::Embedded(s) => crate::embedded::open(s).await,
            BackendConfig::Aws(s) => crate::aws::open(s).await,
        }
    }

    /// Readiness: both the store and the queue answer.
    pub async fn ready(&self) -> Result<()> {
        self.flags.get_all().await?;
        self.queue.stats().await?;
        Ok(())
    }

    /// Create whatever is missing (idempotent). Returns one line per thing
    /// created or found, for `switchyard init`.
    pub async fn provision(config: &BackendConfig) -> Result<Vec<String>> {
        match config {
            BackendConfig::Embedded(s) => crate::embedded::provision(s).await,
            BackendConfig::Aws(s) => crate::aws::provision(s).await,
        }
    }
}
