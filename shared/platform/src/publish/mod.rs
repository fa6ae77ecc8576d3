//! The publisher port: writing records to the stream, with each record's own outcome.
//!
//! `PutRecords` succeeds as a call even when some of its records failed, so [`Publisher::put_records`] answers
//! one [`PutOutcome`] per record, in order, and callers treat a record as written only when its outcome says so.
//! A refused record says why as a [`FailureKind`] (throttled, unavailable, internal), read from Kinesis's error
//! codes in one place ([`FailureKind::of_code`]).
//!
//! - [`KinesisPublisher`] ([`kinesis`]): `PutRecords` on the stream, and its open shards
//!   ([`Publisher::open_shards`], [`shards`]: where Kinesis puts a record, for a writer that packs events per
//!   shard);
//! - `MemoryPublisher` (`memory`, feature `test-util`): keeps what it accepted and fails on command, for tests.

use std::future::Future;

use tubes_contract::Record;

pub mod kinesis;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod shards;

pub use kinesis::KinesisPublisher;
#[cfg(any(test, feature = "test-util"))]
pub use memory::{MemoryFault, MemoryPublisher};
pub use shards::{hash_key, Shard, ShardMap};

/// Kinesis's limit on records per `PutRecords` call.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Kinesis's limit on bytes per `PutRecords` call (data plus partition keys).
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Kinesis acknowledged the record.
    Accepted {
        /// The shard it went to.
        shard_id: String,
        /// Its sequence number in that shard.
        sequence_number: String,
    },
    /// Kinesis did not acknowledge the record: it was refused, or its call failed or got no answer.
    Failed {
        /// Why, as a caller acts on it.
        kind: FailureKind,
        /// Kinesis's error code and message, or what happened to the call.
        message: String,
    },
}

impl PutOutcome {
    /// Whether Kinesis refused the record because the stream is over its throughput.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            PutOutcome::Failed {
                kind: FailureKind::Throttled,
                ..
            }
        )
    }
}

/// Why a record was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The stream (or its KMS key) is over its throughput: slow down, then retry.
    Throttled,
    /// The stream could not be reached, failed, or gave no answer in time: retry.
    Unavailable,
    /// The answer made no sense (a record without a sequence number, results that do not match the request).
    Internal,
}

impl FailureKind {
    /// The kind of a Kinesis error code (a `PutRecords` entry's `ErrorCode`, or a failed call's).
    pub fn of_code(code: &str) -> Self {
        match code {
            "ProvisionedThroughputExceededException" | "LimitExceededException" => {
                FailureKind::Throttled
            }
            // `InternalFailure`, the KMS errors of an encrypted stream, anything new: Kinesis's side, retried.
            _ => FailureKind::Unavailable,
        }
    }
}

/// The whole call failed: no record can be assumed written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The stream throttled the call.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The stream could not be reached or answered an error.
    #[error("stream unavailable: {0}")]
    Unavailable(String),
    /// The answer did not match the request (one outcome per record).
    #[error("unexpected response: {0}")]
    Protocol(String),
}

/// Writes records to the event stream.
pub trait Publisher: Send + Sync {
    /// Writes at most [`MAX_RECORDS_PER_CALL`] records in one call; one outcome per record, in order.
    fn put_records(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<PutOutcome>, PublishError>> + Send;

    /// The stream's open shards (every page), for a writer that packs the events of one shard into one record;
    /// `None` when this publisher cannot tell (then nothing is packed).
    fn open_shards(&self) -> impl Future<Output = Result<Option<Vec<Shard>>, PublishError>> + Send {
        std::future::ready(Ok(None))
    }
}

impl PublishError {
    /// Why, as a caller acts on it.
    pub fn kind(&self) -> FailureKind {
        match self {
            PublishError::Throttled(_) => FailureKind::Throttled,
            PublishError::Unavailable(_) => FailureKind::Unavailable,
            PublishError::Protocol(_) => FailureKind::Internal,
        }
    }

    /// What this failure means for each record of the call.
    pub fn outcome(&self) -> PutOutcome {
        PutOutcome::Failed {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

impl<P: Publisher> Publisher for &P {
    fn put_records(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<PutOutcome>, PublishError>> + Send {
        (**self).put_records(records)
    }

    fn open_shards(&self) -> impl Future<Output = Result<Option<Vec<Shard>>, PublishError>> + Send {
        (**self).open_shards()
    }
}
