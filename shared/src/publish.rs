//! The publisher port: writing records to the stream, with each record's own outcome.
//!
//! `PutRecords` succeeds as a call even when some of its records failed, so [`Publisher::put_records`] answers
//! one [`PutOutcome`] per record, in order, and callers treat a record as written only when its outcome says so.

use std::future::Future;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::codec::Record;

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
    /// Kinesis refused the record; nothing was written for it.
    Failed {
        /// Kinesis's error code, e.g. `ProvisionedThroughputExceededException` or `InternalFailure`.
        code: String,
        /// Kinesis's message.
        message: String,
    },
}

impl PutOutcome {
    /// Whether Kinesis refused the record because the shard is over its throughput.
    pub fn is_throttled(&self) -> bool {
        matches!(self, PutOutcome::Failed { code, .. } if code == "ProvisionedThroughputExceededException")
    }
}

/// The whole call failed: no record can be assumed written.
#[derive(Debug, thiserror::Error)]
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
}

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
                use aws_sdk_kinesis::error::ProvideErrorMetadata;
                let err = err.into_service_error();
                let message = format!(
                    "{}: {}",
                    err.code().unwrap_or("Unknown"),
                    err.message().unwrap_or_default()
                );
                if err.is_provisioned_throughput_exceeded_exception()
                    || err.code() == Some("LimitExceededException")
                {
                    PublishError::Throttled(message)
                } else {
                    PublishError::Unavailable(message)
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
                    (code, _, _) => PutOutcome::Failed {
                        code: code.unwrap_or("MissingSequenceNumber").to_owned(),
                        message: r.error_message().unwrap_or_default().to_owned(),
                    },
                },
            )
            .collect())
    }
}

/// An in-memory [`Publisher`] for tests: keeps what it accepted and fails on command.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    state: std::sync::Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    written: Vec<Record>,
    next: std::collections::VecDeque<MemoryFault>,
    calls: Vec<usize>,
}

/// A fault [`MemoryPublisher`] produces on one of its next calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryFault {
    /// Every record of the call fails with this Kinesis error code.
    FailEntries(&'static str),
    /// The call itself fails as throttled.
    ThrottleCall,
    /// The call itself fails as unavailable.
    FailCall,
    /// The records at these positions of the call fail with this code; the others are written.
    FailAt(Vec<usize>, &'static str),
}

impl MemoryPublisher {
    /// Queues a fault for the next call that has none queued before it.
    pub fn fail_next(&self, fault: MemoryFault) {
        self.lock().next.push_back(fault);
    }

    /// Every record written so far, in order.
    pub fn written(&self) -> Vec<Record> {
        self.lock().written.clone()
    }

    /// The number of records of each call so far.
    pub fn calls(&self) -> Vec<usize> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Publisher for MemoryPublisher {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
        let mut state = self.lock();
        state.calls.push(records.len());
        // Kinesis refuses a call over its limits; so does this stand-in, so tests catch a writer that exceeds them.
        let bytes: usize = records.iter().map(Record::billed_size).sum();
        if records.is_empty() || records.len() > MAX_RECORDS_PER_CALL || bytes > MAX_BYTES_PER_CALL
        {
            return Err(PublishError::Protocol(format!(
                "{} records / {bytes} bytes in one call",
                records.len()
            )));
        }
        let fault = state.next.pop_front();
        let failing: Vec<usize> = match &fault {
            Some(MemoryFault::ThrottleCall) => {
                return Err(PublishError::Throttled("injected".into()))
            }
            Some(MemoryFault::FailCall) => {
                return Err(PublishError::Unavailable("injected".into()))
            }
            Some(MemoryFault::FailEntries(_)) => (0..records.len()).collect(),
            Some(MemoryFault::FailAt(at, _)) => at.clone(),
            None => vec![],
        };
        let code = match fault {
            Some(MemoryFault::FailEntries(c) | MemoryFault::FailAt(_, c)) => c,
            _ => "",
        };
        let mut out = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            if failing.contains(&i) {
                out.push(PutOutcome::Failed {
                    code: code.to_owned(),
                    message: "injected".into(),
                });
            } else {
                state.written.push(record.clone());
                out.push(PutOutcome::Accepted {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: format!("{:056}", state.written.len()),
                });
            }
        }
        Ok(out)
    }
}

impl<P: Publisher> Publisher for &P {
    fn put_records(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<Vec<PutOutcome>, PublishError>> + Send {
        (**self).put_records(records)
    }
}
