//! What a batch came to: per-record outcomes, counted, and the answer for Lambda.

use aws_lambda_events::event::streams::KinesisEventResponse;

use crate::telemetry::{
    CONSUMER, EFFECT_TIME, EVENT_AGE, LAG, RECORDS_DUPLICATE, RECORDS_FILTERED, RECORDS_HANDLED,
    RECORDS_HELD_BACK, RECORDS_PARKED, RECORDS_REPLAYED, RECORDS_RETRIED,
};

/// What a batch came to.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Records the consumer handled.
    pub handled: usize,
    /// Records of types the consumer does not subscribe to.
    pub skipped: usize,
    /// Records sent to the dead-letter port.
    pub dead_lettered: usize,
    /// Records that failed with a retryable error.
    pub failed: usize,
    /// Records not attempted because an earlier record of their key failed.
    pub held_back: usize,
    /// Records skipped because their idempotency record says they were already handled.
    pub duplicates: usize,
    /// Events of packed records meant for another shard, left out (their writer wrote them again where they
    /// belong; see [`KinesisBatch::misplaced`](crate::lambda_event::KinesisBatch::misplaced)). Counted as filtered
    /// in the metrics.
    pub misplaced: usize,
    /// Records that were replays (`replayid`), whatever became of them: also counted in one of the above.
    pub replayed: usize,
    /// Of the handled records, the longest time from the stream's arrival (`approximateArrivalTimestamp`) to the
    /// end of its effect, in milliseconds: the consumer's lag.
    pub lag_ms: Option<f64>,
    /// Of the handled records, the longest time from the event's own `time` to the end of its effect, in
    /// milliseconds: the lead time from the event to its effect (it includes the sender's and ingest's part).
    pub event_age_ms: Option<f64>,
    /// The time the consumer's effects took, summed over the handled records, in milliseconds.
    pub effect_ms: f64,
    /// The trace ids of the handled records' events, each once, in order of first appearance: the batch's log
    /// line lists them, so that one trace id finds the invocations that acted on it.
    pub trace_ids: Vec<String>,
    /// The answer for Lambda.
    pub response: KinesisEventResponse,
}

/// The most trace ids a batch's log line lists.
pub const MAX_TRACE_IDS: usize = 100;

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Handled,
    Skipped,
    Duplicate,
    DeadLettered,
    /// Retryable: this record and the later records of its key are redelivered.
    Failed,
}

impl BatchReport {
    pub(super) fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Handled => self.handled += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    pub(super) fn merge(&mut self, other: &BatchReport) {
        self.handled += other.handled;
        self.skipped += other.skipped;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
        self.held_back += other.held_back;
        self.duplicates += other.duplicates;
        self.replayed += other.replayed;
        self.lag_ms = max(self.lag_ms, other.lag_ms);
        self.event_age_ms = max(self.event_age_ms, other.event_age_ms);
        self.effect_ms += other.effect_ms;
        for id in &other.trace_ids {
            self.traced(id);
        }
    }

    /// Notes the trace id of a handled record's event (at most [`MAX_TRACE_IDS`] of them: a log line stays small
    /// whatever the batch size; a Kinesis batch of tubes' mappings holds 100 records).
    pub(super) fn traced(&mut self, trace_id: &str) {
        if self.trace_ids.len() < MAX_TRACE_IDS && !self.trace_ids.iter().any(|t| t == trace_id) {
            self.trace_ids.push(trace_id.to_owned());
        }
    }

    /// Records the times of one handled record: its lag, its event's age and its effect's duration.
    pub(super) fn time(&mut self, lag_ms: Option<f64>, event_age_ms: f64, effect_ms: f64) {
        self.lag_ms = max(self.lag_ms, lag_ms);
        self.event_age_ms = max(self.event_age_ms, Some(event_age_ms));
        self.effect_ms += effect_ms;
    }

    /// Records what the batch came to as `consumer`'s metrics (see [`crate::telemetry`]). Without an installed
    /// recorder it costs next to nothing.
    pub fn record_metrics(&self, consumer: &'static str) {
        let counts = [
            (RECORDS_HANDLED, self.handled),
            (RECORDS_DUPLICATE, self.duplicates),
            (RECORDS_FILTERED, self.skipped + self.misplaced),
            (RECORDS_RETRIED, self.failed),
            (RECORDS_HELD_BACK, self.held_back),
            (RECORDS_PARKED, self.dead_lettered),
            (RECORDS_REPLAYED, self.replayed),
        ];
        for (name, count) in counts {
            if count > 0 {
                metrics::counter!(name, CONSUMER => consumer).increment(count as u64);
            }
        }
        if let Some(lag) = self.lag_ms {
            metrics::histogram!(LAG, CONSUMER => consumer).record(lag.max(0.0));
        }
        if let Some(age) = self.event_age_ms {
            metrics::histogram!(EVENT_AGE, CONSUMER => consumer).record(age.max(0.0));
        }
        if self.handled > 0 {
            #[allow(clippy::cast_precision_loss)]
            let mean = self.effect_ms / self.handled as f64;
            metrics::histogram!(EFFECT_TIME, CONSUMER => consumer).record(mean);
        }
    }

    /// How many records the batch had: every record ends in exactly one of the counts.
    pub fn records(&self) -> usize {
        self.handled
            + self.skipped
            + self.misplaced
            + self.duplicates
            + self.dead_lettered
            + self.failed
            + self.held_back
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
