//! The contract of tubes: what producers, ingest and consumers agree an event is. It knows nothing of how events
//! travel or are consumed (no AWS SDK, no Lambda runtime, no async runtime), so a producer, a fuzz target or the
//! schema generator can depend on it alone.
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope, parsed once into a validated [`Envelope`].
//! - [`catalogue`]: the event types ([`Event`], [`EventType`]); adding a type is one change there.
//! - [`validate`] and [`violation`]: the rules, and what a broken rule reports (a stable code and a JSON pointer).
//! - [`codec`]: envelope ↔ Kinesis record bytes and partition key; the one place that knows record encodings.
//! - [`trace`]: W3C `traceparent`, the trace context an event carries from the POST to every effect.
//! - [`schema`]: the JSON Schemas of the envelope of every event type, generated from these types (`schemas/`).
//! - [`json`]: the strict JSON scanner of the decoding fast paths (the envelope's here, the Kinesis batch's in the
//!   platform), which leave whatever it does not take to serde_json.

pub mod catalogue;
pub mod codec;
pub mod envelope;
pub mod json;
pub mod schema;
mod suggest;
#[cfg(test)]
mod test_rng;
pub mod trace;
pub mod validate;
pub mod violation;

pub use catalogue::{Event, EventType};
pub use codec::Record;
pub use envelope::Envelope;
pub use trace::TraceParent;
pub use violation::{Code, Violation, Violations};
