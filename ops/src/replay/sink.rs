//! Where a replay sends a wave: onto the stream, or into a read model version.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{self, TryStreamExt as _};
use tubes_consumer_projections::Projections;
use tubes_contract::codec;
use tubes_platform::publish::{MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
use tubes_platform::read_model::ReadModelStore;
use tubes_platform::{Publisher, PutOutcome};

use super::Item;

/// How often a wave's unacknowledged records are sent again before the replay stops (its state is saved, so
/// running it again resumes at this wave).
const PUT_ATTEMPTS: u32 = 8;

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
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
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
