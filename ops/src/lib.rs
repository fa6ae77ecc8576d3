//! Dead letters you can act on. A consumer's dead-letter queue holds two kinds of message:
//!
//! - **dead letters** ([`DeadLetterMessage`], `kind: tubes.dead_letter`): one poison record, parked by the consumer
//!   harness with its full payload, the reason, the consumer, the shard and the sequence number;
//! - **on-failure entries** of the event source mapping (`KinesisBatchInfo`): a batch whose retries ran out, as a
//!   shard and a sequence range only. Redriving one fetches those records from the stream, which works while the
//!   stream still retains them (24 h by default, `RetentionHours`).
//!
//! [`DeadLetterQueue::list`] reads the queue without consuming it. A redrive sends the records to one of two
//! places, and deletes each message only once all of its records got there:
//!
//! - [`DeadLetterQueue::redrive`]: back onto their stream (under their partition key, so every consumer of the
//!   stream sees them again, after the records written since), once Kinesis acknowledged them;
//! - [`DeadLetterQueue::redrive_to_function`]: straight to one consumer function, as the Kinesis event the event
//!   source mapping would send (synchronous `Invoke`, in sequence order per shard, at most
//!   [`MAX_INVOKE_RECORDS`] records and [`MAX_INVOKE_BYTES`] per invocation), once the function handled them:
//!   the other consumers of the stream do not see them twice. The function's `batchItemFailures` count as the
//!   event source mapping counts them: a record at or after the lowest reported sequence number is not redriven,
//!   and a function error or a failed `Invoke` fails its whole invocation; a shard stops at its first failure,
//!   so a key's records are never handled out of order.
//!
//! Consumers that already handled a record skip it by its idempotency record; the consumer that parked it handles
//! it again, so redrive after the fix.
//!
//! | Module | What it does |
//! |---|---|
//! | `queue` | the queue: reading every message without consuming it, hiding, showing again, deleting |
//! | `entry` | what a message holds: a dead letter, an on-failure entry (Lambda's message), or neither |
//! | `redrive` | reading an on-failure range off its shard; redrive onto the stream (`stream`) or to a function (`function`) |
//! | [`keys`] | minting API keys and signing secrets for the sources and readers (`tubes-keys`) |
//! | [`replay`] | replaying the event store onto the stream or into a read model version (`tubes-replay`) |

pub mod dev;
mod entry;
mod error;
mod invoke;
pub mod keys;
mod queue;
mod redrive;
pub mod replay;
mod shard;

/// The Lambda SDK, re-exported: [`DeadLetterQueue::redrive_to_function`] takes its client.
pub use aws_sdk_lambda;
pub use entry::{Entry, Message};
pub use error::OpsError;
pub use queue::DeadLetterQueue;
pub use redrive::RedriveReport;
