//! AWS adapters: SQS FIFO (queue + DLQ), DynamoDB (ledger, event log with
//! projections, flags), Secrets Manager (secrets) and S3 (blobs), all built
//! from one `aws_config::SdkConfig` loaded from the standard environment
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`),
//! so the same code talks to AWS or to local AWS-protocol servers.
//!
//! Every SDK error is translated once, in [`error`], into a [`PortError`].
//! Resource names and table layouts are documented in `docs/aws.md` and
//! mirrored by `deploy/template.yaml`.
//!
//! # Layout
//! - `error.rs` — SDK error → [`PortError`].
//! - `item.rs` — DynamoDB attribute helpers shared by the table adapters.
//! - `queue.rs` — [`crate::Queue`] on SQS FIFO + FIFO DLQ.
//! - `sqs.rs` — the SQS calls and message attributes that queue and its DLQ tools share.
//! - `dlq.rs` — the DLQ tools of that queue: list without consuming, redrive.
//! - `ledger.rs` — [`crate::Ledger`] on a DynamoDB table.
//! - `events.rs` — [`crate::EventStore`] on a DynamoDB table (`TransactWriteItems`).
//! - `flags.rs` — [`crate::FlagStore`] on a DynamoDB table.
//! - `fleet.rs` — [`crate::Fleet`] (leases, shared buckets) on a DynamoDB table.
//! - `secrets.rs` — [`crate::SecretSource`] on Secrets Manager.
//! - `blobs.rs` — [`crate::BlobStore`] on S3.
//! - `local.rs` — whether the local AWS-protocol servers of the tests are there.
//! - `provision.rs` — `switchyard init --backend aws`: create what is missing.
mod blobs;
mod dlq;
mod error;
mod events;
mod flags;
mod fleet;
mod item;
mod ledger;
mod local;
pub mod provision;
mod queue;
mod secrets;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};

use crate::{AwsSettings, Backend, PortError, Result, Secrets};

pub use local::{SERVERS_NOT_SET, TESTS_ENV, local_servers_configured, require_local_servers};
pub use provision::{ensure_bucket, provision};

/// Names of everything the AWS backend uses, derived from the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// FIFO queue of envelopes: `<prefix>-events.fifo`.
    pub queue: String,
    /// Its FIFO dead-letter queue: `<prefix>-events-dlq.fifo`.
    pub dlq: String,
    /// Idempotency ledger table: `<prefix>-ledger`.
    pub ledger_table: String,
    /// Event log + projections + event-id guards: `<prefix>-log`.
    pub log_table: String,
    /// Flags + audit trail: `<prefix>-flags`.
    pub flags_table: String,
    /// Conversation leases + shared quota buckets: `<prefix>-fleet`.
    pub fleet_table: String,
    /// Secrets Manager names are `<prefix>/<name>`.
    pub secret_prefix: String,
}

impl Names {
    /// Names for `prefix`; `Invalid` unless it is 1-60 of `[A-Za-z0-9_-]`
    /// (what SQS queue names and DynamoDB table names both accept, leaving
    /// room for the suffixes within SQS's 80 characters).
    pub fn new(prefix: &str) -> Result<Names> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 60
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !ok {
            return Err(PortError::Invalid(format!(
                "aws prefix {prefix:?} must be 1-60 of [A-Za-z0-9_-]"
            )));
        }
        Ok(Names {
            queue: format!("{prefix}-events.fifo"),
            dlq: format!("{prefix}-events-dlq.fifo"),
            ledger_table: format!("{prefix}-ledger"),
            log_table: format!("{prefix}-log"),
            flags_table: format!("{prefix}-flags"),
            fleet_table: format!("{prefix}-fleet"),
            secret_prefix: prefix.to_owned(),
        })
    }
}

/// One client per service, all from the same `SdkConfig`.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Load the shared config from the environment and build every client.
    pub async fn from_env() -> Clients {
        // Long polls wait up to 20 s, so one attempt may take that long.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build();
        // Stalled-stream protection watches every response body's
        // throughput with timers; these bodies are small JSON/XML
        // documents and every attempt is bounded by the timeout above.
        let config: SdkConfig = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .load()
            .await;
        // Local S3 servers (moto) on loopback only answer path-style
        // requests; AWS itself still accepts them too.
        let endpoint_overridden =
            config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(endpoint_overridden)
            .build();
        Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            ddb: aws_sdk_dynamodb::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}

/// Open the AWS backend: resolve the queue URLs and check the tables exist
/// (`NotFound` naming what is missing — run `switchyard init --backend aws`).
pub async fn open(s: &AwsSettings) -> Result<Backend> {
    let names = Names::new(&s.prefix)?;
    let clients = Clients::from_env().await;
    // Six independent checks; concurrently, for Lambda cold starts.
    let (queue_url, dlq_url, (), (), (), ()) = futures::try_join!(
        sqs::queue_url(&clients.sqs, &names.queue),
        sqs::queue_url(&clients.sqs, &names.dlq),
        provision::require_table(&clients.ddb, &names.ledger_table),
        provision::require_table(&clients.ddb, &names.log_table),
        provision::require_table(&clients.ddb, &names.flags_table),
        provision::require_table(&clients.ddb, &names.fleet_table),
    )?;
    let source = secrets::AwsSecrets::new(
        clients.secrets.clone(),
        &names.secret_prefix,
        s.secret_ids.clone(),
    );
    let queue: Arc<dyn crate::Queue> = Arc::new(sqs::AwsQueue::new(
        clients.sqs.clone(),
        queue_url,
        dlq_url,
        s.max_receive_count,
    ));
    let ledger: Arc<dyn crate::Ledger> = Arc::new(ledger::AwsLedger::new(
        clients.ddb.clone(),
        &names.ledger_table,
    ));
    Ok(Backend {
        // DynamoDB and SQS share no transaction: claim, send, mark.
        intake: Arc::new(crate::ComposedIntake {
            ledger: ledger.clone(),
            queue: queue.clone(),
        }),
        queue,
        ledger,
        events: Arc::new(events::AwsEventStore::new(
            clients.ddb.clone(),
            &names.log_table,
        )),
        flags: Arc::new(flags::AwsFlagStore::new(
            clients.ddb.clone(),
            &names.flags_table,
        )),
        secrets: Secrets::new(Arc::new(source), s.secrets_ttl),
        blobs: Arc::new(crate::AllowedBuckets::new(
            Arc::new(blobs::AwsBlobs::new(clients.s3.clone())),
            s.raw_mail_buckets.clone(),
        )),
        fleet: Some(Arc::new(fleet::AwsFleet::new(
            clients.ddb.clone(),
            &names.fleet_table,
        ))),
        messaging_system: "aws_sqs",
        description: format!(
            "aws (sqs {}, dynamodb {}-*, max receives {})",
            names.queue, s.prefix, s.max_receive_count
        ),
    })
}
