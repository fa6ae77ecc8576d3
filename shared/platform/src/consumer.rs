//! The consumer port: a typed event handler, one per consumer function. The harness runs one over each batch
//! Lambda delivers; [`consumer_fn`] makes one from a closure, as `lambda_runtime::service_fn` makes a service.

use std::future::Future;

use tubes_contract::{Envelope, EventType};

use crate::classify::Classify;
use crate::lambda_event::SequenceNumber;

/// Where the record being handled is on the stream, for consumers that order by it (read models).
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// The record's partition key.
    pub partition_key: &'a str,
    /// Its sequence number in its shard.
    pub sequence_number: &'a SequenceNumber,
}

impl Position<'_> {
    /// The sequence number that places `envelope` among its partition key's events: for a replayed record, the
    /// original record's (its `replayseq`), so that a replay is recognised as what was already applied; else the
    /// record's own.
    pub fn order(&self, envelope: &Envelope) -> SequenceNumber {
        match envelope.replay() {
            Some((_, original))
                if !original.is_empty() && original.bytes().all(|b| b.is_ascii_digit()) =>
            {
                SequenceNumber::from(original)
            }
            _ => self.sequence_number.clone(),
        }
    }
}

/// A typed event handler: one per consumer function.
pub trait Consumer: Send + Sync {
    /// The consumer's errors, each classified as retryable or permanent.
    type Error: std::error::Error + Classify + Send;

    /// Stable name: in logs, dead letters and idempotency keys.
    fn name(&self) -> &'static str;

    /// The event types this consumer handles. The event source mapping's filter should deliver nothing else;
    /// anything else that arrives is skipped (and counted), not failed.
    fn subscriptions(&self) -> &'static [EventType];

    /// Handles one valid event of a subscribed type.
    fn handle(&self, envelope: &Envelope) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Handles one valid event of a subscribed type at its place on the stream: what the harness calls. A consumer
    /// whose state orders events by their stream position (a read model) implements this; the others
    /// implement [`Consumer::handle`], which this calls by default.
    fn handle_at(
        &self,
        envelope: &Envelope,
        position: Position<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = position;
        self.handle(envelope)
    }
}

impl<C: Consumer> Consumer for &C {
    type Error = C::Error;

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn subscriptions(&self) -> &'static [EventType] {
        (**self).subscriptions()
    }

    fn handle(&self, envelope: &Envelope) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).handle(envelope)
    }

    fn handle_at(
        &self,
        envelope: &Envelope,
        position: Position<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).handle_at(envelope, position)
    }
}

/// A [`Consumer`] made of a name, its subscriptions and a closure ([`consumer_fn`]).
#[derive(Debug, Clone)]
pub struct ConsumerFn<F> {
    name: &'static str,
    subscriptions: &'static [EventType],
    handle: F,
}

/// A consumer named `name`, subscribed to `subscriptions`, that handles each event with `handle`.
///
/// ```
/// use std::convert::Infallible;
/// use tubes_contract::EventType;
/// use tubes_platform::consumer::{consumer_fn, Consumer};
///
/// let logger = consumer_fn("logger", &[EventType::UserSignedUp], |envelope| {
///     let id = envelope.id().to_owned();
///     async move {
///         println!("{id}");
///         Ok::<(), Infallible>(())
///     }
/// });
/// assert_eq!(logger.name(), "logger");
/// ```
pub fn consumer_fn<F, Fut, E>(
    name: &'static str,
    subscriptions: &'static [EventType],
    handle: F,
) -> ConsumerFn<F>
where
    F: Fn(&Envelope) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Classify + Send,
{
    ConsumerFn {
        name,
        subscriptions,
        handle,
    }
}

impl<F, Fut, E> Consumer for ConsumerFn<F>
where
    F: Fn(&Envelope) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Classify + Send,
{
    type Error = E;

    fn name(&self) -> &'static str {
        self.name
    }

    fn subscriptions(&self) -> &'static [EventType] {
        self.subscriptions
    }

    fn handle(&self, envelope: &Envelope) -> impl Future<Output = Result<(), E>> + Send {
        (self.handle)(envelope)
    }
}
