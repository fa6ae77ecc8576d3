//! The shared crate of tubes: everything the ingest function and the consumers agree on.
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope, parsed once into a validated [`Envelope`].
//! - [`catalogue`]: the event types ([`Event`], [`EventType`]); adding a type is one change there.
//! - [`validate`] and [`violation`]: the rules, and what a broken rule reports (a stable code and a JSON pointer).
//! - [`codec`]: envelope ↔ Kinesis record.
//! - [`publish`]: the [`Publisher`] port and its Kinesis adapter, which checks every `PutRecords` entry.
//! - [`harness`]: decode a Lambda Kinesis batch, dispatch to a typed [`Consumer`], answer with checkpoints.

pub mod catalogue;
pub mod codec;
pub mod envelope;
pub mod harness;
pub mod publish;
pub mod validate;
pub mod violation;

pub use catalogue::{Event, EventType};
pub use codec::Record;
pub use envelope::Envelope;
pub use harness::{Classify, Consumer, DeadLetters, Harness, KinesisBatch};
pub use publish::{KinesisPublisher, PutOutcome, Publisher};
pub use violation::{Code, Violation, Violations};
