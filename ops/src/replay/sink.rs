//! Where a replay sends a wave: onto the stream, straight to one consumer function, or into a read model version.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{self, TryStreamExt as _};
use tubes_consumer_projections::Projections;
use tubes_contract::codec;
use tubes_platform::clock;
use tubes_platform::lambda_event::{
    chunks, event_size, BatchSource, StreamRecord, DEFAULT_BATCH_SIZE, MAX_PAYLOAD_BYTES,
};
use tubes_platform::publish::{MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
use tubes_platform::read_model::ReadModelStore;
use tubes_platform::{Publisher, PutOutcome};

use super::Item;
use crate::invoke::{invoke, Answer};

/// How often a wave's unacknowledged (or, to a function, unhandled) records are sent again before the replay
/// stops (its state is saved, so running it again resumes at this wave).
const PUT_ATTEMPTS: u32 = 8;

/// Before the `attempt`-th sending of a wave's leftovers: nothing before the first, then 200 ms doubling to 6.4 s.
async fn backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
    }
}

/// Read-model writes at once (different keys: one wave holds one event per key).
const FOLD_CONCURRENCY: usize = 16;

/// Where a replay sends: one wave (at most one event per partition key) at a time, done only when every event of
/// it got there.
pub trait Sink: Send + Sync {
    /// Sends `wave`, marked as replay `replay_id`.
    fn send(
        &self,
        replay_id: &str,
        wave: &[&Item],
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Onto the stream, through a publisher: each event marked replayed, under its original partition key.
#[derive(Debug)]
pub struct StreamSink<P> {
    publisher: P,
}

impl<P: Publisher> StreamSink<P> {
    /// Sends through `publisher`.
    pub fn new(publisher: P) -> Self {
        Self { publisher }
    }
}

impl<P: Publisher> Sink for StreamSink<P> {
    async fn send(&self, replay_id: &str, wave: &[&Item]) -> Result<(), String> {
        let mut pending = Vec::with_capacity(wave.len());
        for item in wave {
            let marked = item
                .envelope
                .clone()
                .replayed(replay_id, item.sequence.as_str());
            let mut record =
                codec::encode(&marked).map_err(|e| format!("event {}: {e}", item.envelope.id()))?;
            record.partition_key.clone_from(&item.partition_key);
            pending.push(record);
        }
        for attempt in 0..PUT_ATTEMPTS {
            backoff(attempt).await;
            let mut failed = Vec::new();
            let mut chunk = Vec::new();
            let mut bytes = 0;
            let mut chunks = Vec::new();
            for record in pending.drain(..) {
                let size = record.billed_size();
                if !chunk.is_empty()
                    && (chunk.len() == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)
                {
                    chunks.push(std::mem::take(&mut chunk));
                    bytes = 0;
                }
                bytes += size;
                chunk.push(record);
            }
            if !chunk.is_empty() {
                chunks.push(chunk);
            }
            for chunk in chunks {
                match self.publisher.put_records(&chunk).await {
                    Ok(outcomes) => {
                        for (record, outcome) in chunk.into_iter().zip(outcomes) {
                            if !matches!(outcome, PutOutcome::Accepted { .. }) {
                                failed.push(record);
                            }
                        }
                    }
                    Err(_) => failed.extend(chunk),
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            pending = failed;
        }
        Err(format!(
            "{} events of this wave were not acknowledged after {PUT_ATTEMPTS} attempts",
            pending.len()
        ))
    }
}

/// Straight into one version of the read models, without the stream.
#[derive(Debug)]
pub struct ReadModelSink<S> {
    projections: Projections<S>,
    version: String,
}

impl<S: ReadModelStore> ReadModelSink<S> {
    /// Folds into `version` of the read models in `store`.
    pub fn new(store: S, version: impl Into<String>) -> Self {
        Self {
            projections: Projections::new(store),
            version: version.into(),
        }
    }

    /// The projections it folds with.
    pub fn projections(&self) -> &Projections<S> {
        &self.projections
    }
}

impl<S: ReadModelStore> Sink for ReadModelSink<S> {
    async fn send(&self, _replay_id: &str, wave: &[&Item]) -> Result<(), String> {
        stream::iter(wave.iter().map(Ok::<_, String>))
            .try_for_each_concurrent(FOLD_CONCURRENCY, |item| async move {
                self.projections
                    .apply_into(&self.version, &item.envelope, &item.sequence)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
    }
}

/// Straight to one consumer function, without the stream (its other consumers do not see the events again): each
/// wave as Kinesis events of at most [`DEFAULT_BATCH_SIZE`] records and [`MAX_PAYLOAD_BYTES`], invoked
/// synchronously and read as the event source mapping reads the answer (`tubes-dlq redrive --to-function` does
/// the same); what the function reports failed is sent again. Each event is marked replayed, under its original
/// partition key and sequence number, so the function skips what it handled and its read models place it.
#[derive(Debug)]
pub struct FunctionSink {
    lambda: aws_sdk_lambda::Client,
    function: String,
    source: BatchSource,
}

impl FunctionSink {
    /// Invokes `function`; its batches name the stream `stream_arn` (the events' stream, if known: a record it
    /// parks is then redriven like any other) and the shard `replay`.
    pub fn new(
        lambda: aws_sdk_lambda::Client,
        function: impl Into<String>,
        stream_arn: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            lambda,
            function: function.into(),
            source: BatchSource {
                event_source_arn: stream_arn.into(),
                shard_id: "replay".to_owned(),
                aws_region: region.into(),
                invoke_identity_arn: String::new(),
            },
        }
    }
}

impl Sink for FunctionSink {
    async fn send(&self, replay_id: &str, wave: &[&Item]) -> Result<(), String> {
        let mut records = wave
            .iter()
            .map(|item| {
                let marked = item
                    .envelope
                    .clone()
                    .replayed(replay_id, item.sequence.as_str());
                let data = codec::encode(&marked)
                    .map_err(|e| format!("event {}: {e}", item.envelope.id()))?
                    .data;
                Ok(StreamRecord {
                    sequence_number: item.sequence.clone(),
                    partition_key: item.partition_key.clone(),
                    data,
                    arrival: clock::now_secs(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        // The function reports the lowest sequence number it did not handle: in sequence order, the records from
        // it on are what to send again (those it handled among them it skips).
        records.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
        let mut why = String::new();
        for attempt in 0..PUT_ATTEMPTS {
            backoff(attempt).await;
            let mut left = Vec::new();
            for range in chunks(&records, DEFAULT_BATCH_SIZE, MAX_PAYLOAD_BYTES) {
                let chunk = &records[range];
                let bytes = event_size(chunk);
                if bytes > MAX_PAYLOAD_BYTES {
                    return Err(format!(
                        "an event of {bytes} bytes is over the {MAX_PAYLOAD_BYTES} of an Invoke: replay it onto \
                         the stream"
                    ));
                }
                match invoke(&self.lambda, &self.function, &self.source, chunk).await {
                    Answer::Handled => {}
                    Answer::FailedFrom(seq) => {
                        why = format!("{} reported record {seq} failed", self.function);
                        left.extend(chunk.iter().filter(|r| r.sequence_number >= seq).cloned());
                    }
                    Answer::Failed(reason) => {
                        why = reason;
                        left.extend(chunk.iter().cloned());
                    }
                    Answer::Missing => return Err(format!("no function {}", self.function)),
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            records = left;
        }
        Err(format!(
            "{} events of this wave were not handled after {PUT_ATTEMPTS} attempts ({why})",
            records.len()
        ))
    }
}
