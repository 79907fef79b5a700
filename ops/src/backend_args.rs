//! The backend flags every command shares. They are global: accepted
//! before the command, between command and subcommand, or at the end.
use std::path::PathBuf;

use anyhow::Context;
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Where the state lives: `embedded` (SQLite in --data-dir) or `aws`
    /// (SQS FIFO + DynamoDB + Secrets Manager + S3, from the AWS environment).
    #[arg(long, global = true, env = "SWITCHYARD_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
    pub backend: String,
    /// Data directory of the embedded backend.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_DATA_DIR",
        default_value = "data"
    )]
    pub data_dir: PathBuf,
    /// Name prefix of the AWS queues, tables and secrets.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_AWS_PREFIX",
        default_value = "switchyard"
    )]
    pub aws_prefix: String,
    /// Deliveries before the queue dead-letters a message (a backstop: the
    /// worker holds a conversation through transient failures and
    /// dead-letters with the reason on the last delivery).
    #[arg(long, global = true, env = "SWITCHYARD_MAX_RECEIVE_COUNT", default_value_t = ports::DEFAULT_MAX_RECEIVE_COUNT)]
    pub max_receive_count: u32,
    /// The only buckets raw emails are read from (comma-separated).
    /// Default: `raw-mail` (embedded, under the data dir's `blobs/`), or
    /// `<aws-prefix>-raw-mail`.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_RAW_MAIL_BUCKETS",
        value_delimiter = ','
    )]
    pub raw_mail_buckets: Vec<String>,
}

impl BackendArgs {
    pub fn config(&self) -> BackendConfig {
        if self.backend == "aws" {
            let mut settings = AwsSettings::new(self.aws_prefix.clone());
            settings.max_receive_count = self.max_receive_count;
            if let Some(buckets) = self.buckets() {
                settings.raw_mail_buckets = buckets;
            }
            BackendConfig::Aws(settings)
        } else {
            let mut settings = EmbeddedSettings::new(self.data_dir.clone());
            settings.max_receive_count = self.max_receive_count;
            if let Some(buckets) = self.buckets() {
                settings.raw_mail_buckets = buckets;
            }
            BackendConfig::Embedded(settings)
        }
    }

    fn buckets(&self) -> Option<Vec<String>> {
        let buckets: Vec<String> = self
            .raw_mail_buckets
            .iter()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        (!buckets.is_empty()).then_some(buckets)
    }

    /// Open the backend. The embedded one is provisioned on the fly (it is
    /// a local file); AWS needs `switchyard init --backend aws` first.
    pub async fn open(&self) -> anyhow::Result<Backend> {
        let config = self.config();
        if let BackendConfig::Embedded(_) = &config {
            Backend::provision(&config)
                .await
                .with_context(|| format!("preparing data dir {}", self.data_dir.display()))?;
        }
        Backend::open(&config).await.context("opening the backend")
    }
}
