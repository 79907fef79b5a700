//! Durable primitives of switchyard as small async traits (ports), each with
//! two adapters: an embedded SQLite one (the default, one machine) and an AWS
//! one (SQS FIFO, DynamoDB, Secrets Manager, S3). The rest of the system only
//! sees [`Backend`], chosen at run time from [`BackendConfig`].
//!
//! # Layout
//! - `error.rs` — [`PortError`], the one error every port returns.
//! - `queue.rs` — [`Queue`]: FIFO groups, visibility, DLQ, redrive.
//! - `ledger.rs` — [`Ledger`]: the ingress idempotency ledger.
//! - `intake.rs` — [`Intake`]: ledger claim + queue send + mark as one call.
//! - `events.rs` — [`EventStore`]: per-conversation streams + projections.
//! - `flags.rs` — [`FlagStore`] and the typed view [`Flags`] of its values.
//! - `fleet.rs` — [`Fleet`]: leases and quota buckets shared by a fleet of processes.
//! - `secrets.rs` — [`SecretSource`] and the TTL cache [`Secrets`].
//! - `blobs.rs` — [`BlobStore`]: raw emails referenced by the SES S3 action.
//! - `backend.rs` — [`Backend`] (the bundle) and [`BackendConfig`].
//! - `metrics.rs` — the crate's metric names and their recording helpers.
//! - `telemetry.rs` — the Lambda entry points' log subscriber and EMF metrics.
//! - `embedded/` — SQLite adapters (WAL, group commit on one writer thread).
//! - `aws/` — AWS SDK adapters; SDK errors are translated there, once.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aws;
mod backend;
mod blobs;
pub mod embedded;
mod error;
mod events;
mod flags;
mod fleet;
mod intake;
mod ledger;
pub mod metrics;
pub mod otel;
mod queue;
mod secrets;
pub mod telemetry;

pub use backend::{
    AwsSettings, Backend, BackendConfig, DEFAULT_MAX_RECEIVE_COUNT, EMBEDDED_RAW_MAIL_BUCKET,
    EmbeddedSettings, SECRET_ID_ENV_PREFIX, TEST_TARGET_MARKER,
};
pub use blobs::{AllowedBuckets, BlobStore, ENV_RAW_MAIL_BUCKETS, parse_buckets};
pub use error::{PortError, Result};
pub use events::{
    EventStore, MAX_EVENTS, MAX_LOG_KEY_BYTES, NewEvent, StoredEvent, StoredProjection,
};
pub use flags::{AuditEntry, FlagSet, FlagStore, Flags, KillSwitch};
pub use fleet::{BucketState, Fleet, Grant, Rate};
pub use intake::{ComposedIntake, EnqueueOnce, EnqueueOutcome, Intake};
pub use ledger::{CreateOutcome, Ledger, LedgerRecord, LedgerState, MAX_KEY_BYTES};
pub use queue::{
    ATTR_SOURCE, DeadLetter, DlqFilter, MAX_MESSAGE_BYTES, OutgoingMessage, Queue, QueueStats,
    ReceivedMessage, Redrive,
};
pub use secrets::{SecretSource, Secrets};
