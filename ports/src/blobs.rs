//! Blob store: raw emails written by the SES S3 receipt action.
//!
//! An envelope names the bucket and key of its raw email, and anyone who
//! can get a message into the queue chooses that name: every backend's
//! store is wrapped in [`AllowedBuckets`], so only the deployment's own
//! raw-mail buckets can be read or written.
use std::sync::Arc;

use async_trait::async_trait;

use crate::{PortError, Result};

/// `SWITCHYARD_RAW_MAIL_BUCKETS`: comma-separated bucket names.
pub const ENV_RAW_MAIL_BUCKETS: &str = "SWITCHYARD_RAW_MAIL_BUCKETS";

/// The buckets in a comma-separated list (blanks dropped).
pub fn parse_buckets(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Objects by bucket and key: where raw emails wait (the SES S3 action).
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// The object's bytes; `Ok(None)` when the object does not exist.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Store `bytes` under `key` in `bucket`, replacing any object there.
    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()>;
}

/// A blob store that serves only the listed buckets; any other bucket is
/// [`PortError::Invalid`] (permanent: no retry can make it allowed).
#[derive(Debug, Clone)]
pub struct AllowedBuckets {
    inner: Arc<dyn BlobStore>,
    buckets: Arc<[String]>,
}

impl AllowedBuckets {
    /// `inner`, limited to `buckets`.
    pub fn new(inner: Arc<dyn BlobStore>, buckets: Vec<String>) -> Self {
        AllowedBuckets {
            inner,
            buckets: buckets.into(),
        }
    }

    fn check(&self, bucket: &str) -> Result<()> {
        if self.buckets.iter().any(|b| b == bucket) {
            Ok(())
        } else {
            // Bucket names carry no customer data; the key is left out.
            Err(PortError::Invalid(format!(
                "bucket {bucket:?} is not a raw-mail bucket of this deployment \
                 (allowed: {}; set {ENV_RAW_MAIL_BUCKETS})",
                self.buckets.join(", ")
            )))
        }
    }
}

#[async_trait]
impl BlobStore for AllowedBuckets {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.check(bucket)?;
        self.inner.get(bucket, key).await
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.check(bucket)?;
        self.inner.put(bucket, key, bytes).await
    }
}
