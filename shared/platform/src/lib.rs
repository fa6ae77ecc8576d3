//! The platform of tubes: what runs the contract ([`tubes_contract`]) on AWS. Ports are folders, each with its
//! adapters beside it; the harness drives them and the runtime drives the harness.
//!
//! | Module | What lives there |
//! |---|---|
//! | [`consumer`], [`classify`] | the [`Consumer`] port (and [`consumer_fn`](consumer::consumer_fn)); whether an error is retryable |
//! | [`lambda_event`] | Lambda's Kinesis wire contract: the event, its one-pass decoding, the function's answer, the on-failure message |
//! | [`dead_letters`] | the dead-letter port: SQS and log adapters, and the dispatch enum |
//! | [`idempotency`] | the idempotency protocol ([`Guard`](idempotency::Guard)) over its store port: DynamoDB and memory |
//! | [`mail`] | the e-mail port: SES, outbox and log adapters, and the dispatch enum |
//! | [`users`] | the users directory port of the signup flow: DynamoDB and memory |
//! | [`read_model`] | read models: folds applied in stream order, once, under a live version; DynamoDB and memory |
//! | [`archive`] | the event store: its layout and line format, over the object store port: S3 and memory |
//! | [`publish`] | the publisher port: Kinesis `PutRecords` with every entry checked, and memory |
//! | [`harness`] | runs a consumer over a batch with checkpoint semantics: per-key order, dead letters, idempotency |
//! | [`runtime`] | the composition root ([`Env`](runtime::Env)) and [`serve`](runtime::serve) on the Lambda runtime |
//! | [`telemetry`] | metrics in CloudWatch's Embedded Metric Format: what the harness records per batch |
//! | [`api_key`] | API keys (`tubes_{owner}.{key id}.{secret}`): parsed, minted, checked against stored hashes |
//! | [`refresh`] | a configuration in a secret (sources, readers): read in the background, kept fresh, kept on a bad read |
//! | [`aws`], [`clock`] | one way to describe a failed AWS call; one clock |
//!
//! The in-memory adapters are for tests: they compile with the feature `test-util`.

pub mod api_key;
pub mod archive;
pub mod aws;
pub mod classify;
pub mod clock;
pub mod consumer;
pub mod dead_letters;
pub mod harness;
pub mod idempotency;
pub mod lambda_event;
pub mod mail;
pub mod publish;
pub mod read_model;
pub mod refresh;
pub mod runtime;
pub mod telemetry;
pub mod users;

pub use classify::{Classify, Dependency};
pub use consumer::Consumer;
pub use harness::Harness;
pub use lambda_event::KinesisBatch;
pub use publish::{KinesisPublisher, Publisher, PutOutcome};
