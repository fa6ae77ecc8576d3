//! What a batch came to: per-record outcomes, counted, and the answer for Lambda.

use aws_lambda_events::event::streams::KinesisEventResponse;

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
    /// The answer for Lambda.
    pub response: KinesisEventResponse,
}

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
    }
}
