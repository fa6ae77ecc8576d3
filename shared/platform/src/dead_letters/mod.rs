//! The dead-letter port: where a record goes that can never succeed (undecodable, invalid, refused for good, or
//! failing on every attempt), with everything needed to understand and redrive it, so that it never blocks its
//! shard and is never lost.
//!
//! - [`SqsDeadLetters`] ([`sqs`]): one message per letter on the consumer's SQS dead-letter queue
//!   ([`DeadLetterMessage`], which `tubes-dlq` reads);
//! - [`LogDeadLetters`] ([`log`]): metadata only, as error logs, where no queue is configured;
//! - `MemoryDeadLetters` (`memory`, feature `test-util`): kept in memory, for tests.
//!
//! [`AnyDeadLetters`] is the one the runtime configures.

use std::future::Future;

use tubes_contract::Envelope;

use crate::lambda_event::SequenceNumber;

pub mod log;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod sqs;

pub use log::LogDeadLetters;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryDeadLetters;
pub use sqs::{DeadLetterMessage, SqsDeadLetters, KIND};

/// A record that can never succeed, with what is needed to understand and redrive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The consumer that gave up.
    pub consumer: &'static str,
    /// The stream (from the batch), if known.
    pub event_source_arn: Option<String>,
    /// The shard (from the batch), if known.
    pub shard_id: Option<String>,
    /// The record's place in its shard.
    pub sequence_number: SequenceNumber,
    /// The event's place in its packed or KPL-aggregated record; `None` for a record that is one event.
    pub sub_sequence_number: Option<u64>,
    /// The record's partition key.
    pub partition_key: String,
    /// The event's source (its ids are unique per source), when the record decoded.
    pub event_source: Option<String>,
    /// The event id, when the record decoded.
    pub event_id: Option<String>,
    /// The event type, when the record decoded.
    pub event_type: Option<&'static str>,
    /// Why it failed.
    pub reason: String,
    /// How many times the consumer tried the record, this time included, as its idempotency record counts them
    /// (1 without idempotency records, or for a record that never reached the consumer).
    pub attempts: u32,
    /// The event's data (the full payload, for redrive): of a packed or aggregated record, this event's alone.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The letter for the decoded record `envelope`; its place (stream, shard, sequence number, partition key)
    /// is filled in by the caller.
    pub fn of_event(
        consumer: &'static str,
        envelope: &Envelope,
        reason: String,
        attempts: u32,
    ) -> Self {
        Self {
            consumer,
            event_source_arn: None,
            shard_id: None,
            sequence_number: SequenceNumber::default(),
            sub_sequence_number: None,
            partition_key: String::new(),
            event_source: Some(envelope.source().to_owned()),
            event_id: Some(envelope.id().to_owned()),
            event_type: Some(envelope.event_type().as_str()),
            reason,
            attempts,
            payload: serde_json::to_vec(envelope).unwrap_or_default(),
        }
    }
}

/// The dead-letter port could not take a letter; the record is then retried rather than lost.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter destination failed: {0}")]
pub struct DeadLetterError(pub String);

/// Where permanent failures go.
pub trait DeadLetters: Send + Sync {
    /// Stores one dead letter durably.
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), DeadLetterError>> + Send;

    /// Where letters go, as a reader names it (the queue's name): a parked record's idempotency record says so,
    /// for the event-status view.
    fn destination(&self) -> &str;
}

impl<D: DeadLetters> DeadLetters for &D {
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), DeadLetterError>> + Send {
        (**self).send(letter)
    }

    fn destination(&self) -> &str {
        (**self).destination()
    }
}

/// The dead-letter adapter the environment chose.
#[derive(Debug, Clone)]
pub enum AnyDeadLetters {
    /// The consumer's SQS dead-letter queue.
    Queue(SqsDeadLetters),
    /// Logs only (no queue configured).
    Log(LogDeadLetters),
}

impl DeadLetters for AnyDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            AnyDeadLetters::Queue(q) => q.send(letter).await,
            AnyDeadLetters::Log(l) => l.send(letter).await,
        }
    }

    fn destination(&self) -> &str {
        match self {
            AnyDeadLetters::Queue(q) => q.destination(),
            AnyDeadLetters::Log(l) => l.destination(),
        }
    }
}
