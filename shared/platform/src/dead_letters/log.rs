//! Dead letters as structured error logs: metadata only, never the payload (it may hold personal data). Where no
//! dead-letter queue is configured; such a letter cannot be redriven.

use super::{DeadLetter, DeadLetterError, DeadLetters};

/// Dead letters as error logs (metadata only).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDeadLetters;

impl DeadLetters for LogDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        tracing::error!(
            consumer = letter.consumer,
            shard_id = letter.shard_id.as_deref(),
            sequence_number = %letter.sequence_number,
            event_source = letter.event_source.as_deref(),
            event_id = letter.event_id.as_deref(),
            event_type = letter.event_type,
            payload_bytes = letter.payload.len(),
            attempts = letter.attempts,
            reason = %letter.reason,
            "dead letter"
        );
        Ok(())
    }

    /// No queue: the function's log.
    fn destination(&self) -> &str {
        "log"
    }
}
