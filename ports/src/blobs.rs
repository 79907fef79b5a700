//! Blob store: raw emails written by the SES S3 receipt action.
use async_trait::async_trait;

use crate::Result;

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// `Ok(None)` when the object does not exist.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()>;
}
