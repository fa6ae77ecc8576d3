//! The archive's objects in an S3 bucket (`PutObject`; the bucket encrypts them at rest).

use aws_sdk_s3::primitives::ByteStream;

use super::{ArchiveError, ObjectStore};
use crate::aws;

/// The archive in the S3 bucket `bucket`.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    /// Objects in `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

impl ObjectStore for S3Objects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ArchiveError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            // gzip by its name (`.gz`), as Athena and DuckDB read it; no Content-Encoding, so no client
            // decompresses it behind the reader's back.
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ArchiveError(aws::describe("PutObject", e)))?;
        Ok(())
    }
}
