//! The archive's objects in an S3 bucket (`PutObject`; the bucket encrypts them at rest), and reading them back
//! ([`read_all`]).

use aws_sdk_s3::primitives::ByteStream;

use super::{decompress, parse_line, ArchiveError, ArchivedRecord, ObjectStore, PREFIX};
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

/// Every line of every object under [`PREFIX`] in `bucket` whose key `wanted` says may hold what the caller
/// looks for, read back in key order, with the key of its object: what replay and the reconciliations read.
pub async fn read_all(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, ArchivedRecord)>, ArchiveError> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(PREFIX)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| ArchiveError(aws::describe("ListObjectsV2", e)))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| wanted(k))
                .map(str::to_owned),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut records = Vec::new();
    for key in keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| ArchiveError(aws::describe("GetObject", e)))?
            .body
            .collect()
            .await
            .map_err(|e| ArchiveError(format!("{key}: {e}")))?
            .into_bytes();
        let lines = decompress(&body).map_err(|e| ArchiveError(format!("{key}: {e}")))?;
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record = parse_line(line).map_err(|e| ArchiveError(format!("{key}: {e}")))?;
            records.push((key.clone(), record));
        }
    }
    Ok(records)
}
