//! The archive function: every record of the stream, kept in the event store ([`tubes_platform::archive`]).
//! Its mapping has no filter, so it sees every record any producer wrote, valid or not.
//!
//! A batch becomes one object per (event type, arrival hour), named after the batch (shard and first sequence
//! number), written all or nothing: if any object fails, the whole batch is reported failed from its first
//! record, and Lambda delivers it again from there, which rewrites the same objects with the same bytes. So
//! the event store never holds a record twice and never misses one the stream delivered. This needs the retry
//! to start at the batch's first record and cover at least its records, which is why the template's mapping
//! does not bisect failed batches.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use futures_util::stream::{self, StreamExt as _};
use tubes_platform::archive::{self, ArchiveError, Coordinates, ObjectStore};
use tubes_platform::telemetry;
use tubes_platform::KinesisBatch;

/// The archive's name, as the consumers' metrics and logs name a consumer.
pub const NAME: &str = "archive";

/// Objects written at once.
const PUT_CONCURRENCY: usize = 8;

/// The shard named in object keys when the event names none (Lambda always does).
const UNKNOWN_SHARD: &str = "shardId-unknown";

/// What one batch came to.
#[derive(Debug, Default)]
pub struct ArchiveReport {
    /// Records in the batch.
    pub records: usize,
    /// Of which no valid event (kept under [`archive::UNDECODABLE`]).
    pub undecodable: usize,
    /// Objects written (all of the batch's, or, on failure, those that were written before it).
    pub objects: usize,
    /// Their compressed size.
    pub bytes: usize,
    /// The first failure, if any: then the whole batch is retried.
    pub error: Option<ArchiveError>,
    /// The longest time from a record's arrival on the stream to its object being written, if written.
    pub lag_ms: Option<f64>,
    /// The answer to Lambda: no failures, or the batch's first record.
    pub response: KinesisEventResponse,
}

impl ArchiveReport {
    /// Records the batch in the consumers' metrics (dimension `Consumer` = `archive`): the records kept count as
    /// handled, a failed batch's as retried.
    pub fn record_metrics(&self) {
        let consumer = telemetry::CONSUMER;
        let (name, count) = if self.error.is_some() {
            (telemetry::RECORDS_RETRIED, self.records)
        } else {
            (telemetry::RECORDS_HANDLED, self.records)
        };
        if count > 0 {
            metrics::counter!(name, consumer => NAME).increment(count as u64);
        }
        if let Some(lag) = self.lag_ms {
            metrics::histogram!(telemetry::LAG, consumer => NAME).record(lag.max(0.0));
        }
    }
}

/// The archive over an object store.
#[derive(Debug)]
pub struct Archive<S> {
    store: S,
}

impl<S: ObjectStore> Archive<S> {
    /// Keeps batches in `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The object store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Writes `batch` to the event store, all or nothing (see the crate docs).
    pub async fn run(&self, batch: &KinesisBatch) -> ArchiveReport {
        let started = Instant::now();
        let mut report = ArchiveReport {
            records: batch.records.len(),
            ..ArchiveReport::default()
        };
        let Some(first) = batch.records.first() else {
            return report;
        };
        let shard = batch.shard_id.as_deref().unwrap_or(UNKNOWN_SHARD);
        let first_sequence = first.sequence_number.as_str();
        let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut earliest_arrival: Option<f64> = None;
        for record in &batch.records {
            let at = Coordinates {
                partition_key: record.partition_key.clone(),
                shard_id: shard.to_owned(),
                sequence_number: record.sequence_number.as_str().to_owned(),
                sub_sequence_number: record.sub_sequence_number,
                arrival: Coordinates::arrival_from(record.arrival),
            };
            if let Some(arrival) = record.arrival {
                earliest_arrival = Some(earliest_arrival.map_or(arrival, |e: f64| e.min(arrival)));
            }
            match &record.envelope {
                Ok(envelope) => {
                    let key = archive::object_key(
                        envelope.event_type().as_str(),
                        at.arrival,
                        shard,
                        first_sequence,
                    );
                    archive::event_line(envelope, &at, objects.entry(key).or_default());
                }
                Err((error, raw)) => {
                    report.undecodable += 1;
                    let key = archive::object_key(
                        archive::UNDECODABLE,
                        at.arrival,
                        shard,
                        first_sequence,
                    );
                    archive::undecodable_line(
                        raw,
                        &error.to_string(),
                        &at,
                        objects.entry(key).or_default(),
                    );
                }
            }
        }
        let mut writes = stream::iter(objects)
            .map(|(key, lines)| async move {
                let body = archive::compress(&lines);
                let size = body.len();
                self.store.put(&key, body).await.map(|()| size)
            })
            .buffer_unordered(PUT_CONCURRENCY);
        while let Some(written) = writes.next().await {
            match written {
                Ok(size) => {
                    report.objects += 1;
                    report.bytes += size;
                }
                Err(e) => {
                    report.error.get_or_insert(e);
                }
            }
        }
        if let Some(error) = &report.error {
            tracing::warn!(
                shard,
                first_sequence,
                records = report.records,
                error = %error,
                "batch not archived: delivered again from its first record"
            );
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(first_sequence.to_owned());
            report.response.batch_item_failures.push(failure);
        } else {
            let now_ms = tubes_platform::clock::now_ms();
            #[allow(clippy::cast_precision_loss)]
            let lag = earliest_arrival.map(|a| now_ms as f64 - a * 1000.0);
            report.lag_ms = lag;
            tracing::info!(
                shard,
                first_sequence,
                records = report.records,
                undecodable = report.undecodable,
                objects = report.objects,
                bytes = report.bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch archived"
            );
        }
        report
    }
}

/// Serves the archive on the Lambda runtime API until the runtime stops: one batch per invocation, answered
/// with no failures or with the batch's first record, and one metrics document per invocation.
pub async fn serve<S: ObjectStore>(archive: Archive<S>) -> Result<(), lambda_runtime::Error> {
    // Metrics are a view, never a reason not to run.
    let emf = telemetry::Emf::install()
        .inspect_err(|err| tracing::warn!(error = %err, "no metrics recorder"))
        .ok();
    let archive = &archive;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<KinesisBatch>| async move {
            let report = archive.run(&event.payload).await;
            report.record_metrics();
            if let Some(emf) = emf {
                emf.flush();
            }
            Ok::<KinesisEventResponse, lambda_runtime::Error>(report.response)
        },
    ))
    .await
}

#[cfg(test)]
mod tests;
