//! The shared crate of tubes: everything the ingest function and the consumers agree on.
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope, parsed once into a validated [`Envelope`].
//! - [`catalogue`]: the event types ([`Event`], [`EventType`]); adding a type is one change there.
//! - [`validate`] and [`violation`]: the rules, and what a broken rule reports (a stable code and a JSON pointer).
//! - [`codec`]: envelope ↔ Kinesis record.
//! - [`schema`]: the JSON Schemas of the envelope of every event type, generated from these types (`schemas/`).
//! - [`publish`]: the [`Publisher`] port and its Kinesis adapter, which checks every `PutRecords` entry.
//! - [`effects`]: the port through which consumers act on the world, with deterministic idempotency keys.
//! - [`dlq`]: dead letters as SQS messages (the consumers' dead-letter queues).
//! - [`mail`]: the e-mail port (an outbox file locally), once per idempotency key; [`ses`]: its SES v2 adapter.
//! - [`users`]: the users directory of the signup flow (profiles, mailing lists), in DynamoDB.
//! - [`idempotency`]: claim / complete records per `(consumer, event id)`, in DynamoDB, so effects happen once.
//! - [`harness`]: decode a Lambda Kinesis batch, dispatch to a typed [`Consumer`], answer with checkpoints;
//!   [`runtime::serve`] runs one as a Lambda function.
//! - [`lambda_event`]: the Kinesis event JSON Lambda sends, built from records read off a stream.
//! - [`aws`]: one way to describe a failed AWS call.

pub mod aws;
pub mod catalogue;
pub mod codec;
pub mod dlq;
pub mod effects;
pub mod envelope;
pub mod harness;
pub mod idempotency;
pub mod lambda_event;
pub mod mail;
pub mod publish;
pub mod runtime;
pub mod schema;
pub mod ses;
pub mod users;
pub mod validate;
pub mod violation;

pub use catalogue::{Event, EventType};
pub use codec::Record;
pub use effects::{Effect, EffectError, Effects};
pub use envelope::Envelope;
pub use harness::{Classify, Consumer, DeadLetters, Harness, KinesisBatch};
pub use publish::{KinesisPublisher, Publisher, PutOutcome};
pub use violation::{Code, Violation, Violations};
