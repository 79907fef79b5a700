//! Blobs on S3 (raw emails written by the SES S3 receipt action).
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::error::from_sdk;
use crate::{BlobStore, PortError, Result};

#[derive(Debug, Clone)]
pub(crate) struct AwsBlobs {
    s3: Client,
}

impl AwsBlobs {
    pub fn new(s3: Client) -> Self {
        AwsBlobs { s3 }
    }
}

#[async_trait]
impl BlobStore for AwsBlobs {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let out = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(from_sdk(&format!("s3 get from {bucket}"), e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| PortError::Unavailable(format!("s3 get from {bucket}: {e}")))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk(&format!("s3 put to {bucket}"), e))
    }
}
