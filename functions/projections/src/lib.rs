//! The projections function (seeds: event sourcing and CQRS): the read models the query API serves, folded from
//! the stream. It has no other effect: no e-mail, no event published, nothing but its documents.
//!
//! - [`accounts`]: per account, status, currency, balance and the last payments with their outcome;
//! - [`users`]: per user, the profile and the mailing lists they are on.
//!
//! Each record is applied to each model that looks at it, in its partition key's order, once: the documents
//! keep the last sequence number they applied ([`tubes_platform::read_model`]), so a redelivery or a replay is
//! skipped without idempotency records (`main.rs` runs the harness without them).

use tubes_contract::{Envelope, EventType};
use tubes_platform::consumer::Position;
use tubes_platform::lambda_event::SequenceNumber;
use tubes_platform::read_model::{Projected, Projector, ReadModelError, ReadModelStore};
use tubes_platform::Consumer;

pub mod accounts;
pub mod users;

pub use accounts::Account;
pub use users::User;

/// The consumer's stable name (in logs, metrics and dead letters).
pub const NAME: &str = "projections";

/// The event types it folds: every type one of its models looks at. `template.yaml` filters its mapping to
/// these.
pub const SUBSCRIPTIONS: &[EventType] = &[
    EventType::AccountOpened,
    EventType::AccountCredited,
    EventType::AccountFrozen,
    EventType::PaymentReceived,
    EventType::PaymentProcessed,
    EventType::PaymentFailed,
    EventType::UserSignedUp,
    EventType::UserUnsubscribed,
];

/// The read models over one store.
#[derive(Debug)]
pub struct Projections<S> {
    projector: Projector<S>,
}

impl<S: ReadModelStore> Projections<S> {
    /// Read models in `store`.
    pub fn new(store: S) -> Self {
        Self {
            projector: Projector::new(store),
        }
    }

    /// The projector (the store, the live versions).
    pub fn projector(&self) -> &Projector<S> {
        &self.projector
    }

    /// Applies one event to every model that looks at it: what a record, a replay and a rebuild all go through.
    pub async fn apply(
        &self,
        envelope: &Envelope,
        position: Position<'_>,
    ) -> Result<[Projected; 2], ReadModelError> {
        let accounts = self
            .projector
            .project::<Account>(envelope, position)
            .await?;
        let users = self.projector.project::<User>(envelope, position).await?;
        Ok([accounts, users])
    }
}

impl<S: ReadModelStore> Projections<S> {
    /// Applies one event whose place among its key's events is `order` to `version` of every model that looks
    /// at it: a rebuild folds the event store into a new version this way.
    pub async fn apply_into(
        &self,
        version: &str,
        envelope: &Envelope,
        order: &SequenceNumber,
    ) -> Result<[Projected; 2], ReadModelError> {
        let accounts = self
            .projector
            .project_into::<Account>(version, envelope, order)
            .await?;
        let users = self
            .projector
            .project_into::<User>(version, envelope, order)
            .await?;
        Ok([accounts, users])
    }
}

impl<S: ReadModelStore> Consumer for Projections<S> {
    type Error = ReadModelError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        SUBSCRIPTIONS
    }

    /// Without a position the event cannot be placed: the harness always calls [`Consumer::handle_at`].
    async fn handle(&self, envelope: &Envelope) -> Result<(), ReadModelError> {
        Err(ReadModelError(format!(
            "event {} has no stream position: read models apply records only",
            envelope.id()
        )))
    }

    async fn handle_at(
        &self,
        envelope: &Envelope,
        position: Position<'_>,
    ) -> Result<(), ReadModelError> {
        let outcome = self.apply(envelope, position).await?;
        tracing::debug!(
            accounts = ?outcome[0],
            users = ?outcome[1],
            replay = envelope.replay().map(|(id, _)| id),
            "projected"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
