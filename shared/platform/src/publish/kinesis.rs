//! The Kinesis adapter of the publisher port: one `PutRecords` call per batch, every entry's result read.

use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tubes_contract::Record;

use super::{FailureKind, PublishError, Publisher, PutOutcome, Shard};
use crate::aws;

/// The Kinesis adapter of [`Publisher`].
#[derive(Debug, Clone)]
pub struct KinesisPublisher {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
}

impl KinesisPublisher {
    /// A publisher writing to `stream_name` through `client`.
    pub fn new(client: aws_sdk_kinesis::Client, stream_name: impl Into<String>) -> Self {
        Self {
            client,
            stream_name: stream_name.into(),
        }
    }
}

impl Publisher for KinesisPublisher {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
        let entries = records
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&r.partition_key)
                    .data(Blob::new(r.data.clone()))
                    .build()
                    .map_err(|e| PublishError::Protocol(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|err| {
                let code = err
                    .as_service_error()
                    .and_then(|e| e.code())
                    .unwrap_or_default();
                let message = aws::describe("PutRecords", &err);
                match FailureKind::of_code(code) {
                    FailureKind::Throttled => PublishError::Throttled(message),
                    _ => PublishError::Unavailable(message),
                }
            })?;
        let results = output.records();
        if results.len() != records.len() {
            return Err(PublishError::Protocol(format!(
                "{} results for {} records",
                results.len(),
                records.len()
            )));
        }
        Ok(results
            .iter()
            .map(
                |r| match (r.error_code(), r.shard_id(), r.sequence_number()) {
                    (None, Some(shard), Some(seq)) => PutOutcome::Accepted {
                        shard_id: shard.to_owned(),
                        sequence_number: seq.to_owned(),
                    },
                    (Some(code), _, _) => PutOutcome::Failed {
                        kind: FailureKind::of_code(code),
                        message: format!("{code}: {}", r.error_message().unwrap_or_default()),
                    },
                    (None, _, _) => PutOutcome::Failed {
                        kind: FailureKind::Internal,
                        message: "acknowledged without a shard and sequence number".into(),
                    },
                },
            )
            .collect())
    }

    async fn open_shards(&self) -> Result<Option<Vec<Shard>>, PublishError> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // The stream name goes with the first page only; later pages are named by their token alone.
            let request = match &next {
                None => self.client.list_shards().stream_name(&self.stream_name),
                Some(token) => self.client.list_shards().next_token(token),
            };
            let page = request
                .send()
                .await
                .map_err(|err| PublishError::Unavailable(aws::describe("ListShards", &err)))?;
            for shard in page.shards() {
                // A closed shard (split or merged away) has an ending sequence number: nothing goes there.
                let closed = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                let range = shard.hash_key_range();
                let parse = |v: Option<&str>| v.and_then(|v| v.parse::<u128>().ok());
                match (
                    closed,
                    parse(range.map(|r| r.starting_hash_key())),
                    parse(range.map(|r| r.ending_hash_key())),
                ) {
                    (false, Some(start), Some(end)) => shards.push(Shard {
                        id: shard.shard_id().to_owned(),
                        start,
                        end,
                    }),
                    (false, _, _) => {
                        return Err(PublishError::Protocol(format!(
                            "shard {} has no readable hash key range",
                            shard.shard_id()
                        )))
                    }
                    (true, _, _) => {}
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(Some(shards)),
            }
        }
    }
}
