//! The unsubscribes consumer (seed 000): `user.unsubscribed` → the user leaves the mailing list, and a
//! confirmation is sent once per unsubscribe event (its e-mail key is derived from the event id).

use tubes_contract::{Envelope, Event, EventType};
use tubes_platform::mail::{Email, MailError, Mailer};
use tubes_platform::users::{Directory, StoreError};
use tubes_platform::{Classify, Consumer};

/// The consumer's stable name (in logs, dead letters, idempotency and e-mail keys).
pub const NAME: &str = "unsubscribes";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::UserUnsubscribed];

/// The confirmation's idempotency key: one per unsubscribe event.
pub fn confirmation_key(event_id: &str) -> String {
    format!("{NAME}:confirmation:{event_id}")
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsubscribesError {
    /// The directory failed: retried.
    #[error(transparent)]
    Directory(#[from] StoreError),
    /// The e-mail failed: retried or parked, as the mailer says.
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl Classify for UnsubscribesError {
    fn is_retryable(&self) -> bool {
        match self {
            UnsubscribesError::Directory(e) => e.is_retryable(),
            UnsubscribesError::Mail(e) => e.is_retryable(),
        }
    }
}

/// The unsubscribes consumer.
#[derive(Debug)]
pub struct Unsubscribes<D, M> {
    directory: D,
    mailer: M,
}

impl<D: Directory, M: Mailer> Unsubscribes<D, M> {
    /// Lists in `directory`, e-mail through `mailer`.
    pub fn new(directory: D, mailer: M) -> Self {
        Self { directory, mailer }
    }
}

impl<D: Directory, M: Mailer> Consumer for Unsubscribes<D, M> {
    type Error = UnsubscribesError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        SUBSCRIPTIONS
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), UnsubscribesError> {
        let Event::UserUnsubscribed(left) = envelope.event() else {
            return Ok(());
        };
        let was_member = self
            .directory
            .unsubscribe(&left.list_id, &left.user_id)
            .await?;
        // Confirmed even if they were not on the list (any more): the person asked and gets an answer, once.
        self.mailer
            .send(&Email {
                to: left.email.clone(),
                subject: format!("You left the {} list", left.list_id),
                text: "You will not get these e-mails any more.".into(),
                idempotency_key: confirmation_key(envelope.id()),
            })
            .await?;
        tracing::info!(user_id = %left.user_id, list_id = %left.list_id, was_member, "unsubscribed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tubes_platform::dead_letters::LogDeadLetters;
    use tubes_platform::lambda_event::batch_of;
    use tubes_platform::mail::MemoryMailer;
    use tubes_platform::users::MemoryDirectory;
    use tubes_platform::Harness;

    use super::*;

    #[tokio::test]
    async fn an_unsubscribe_removes_the_member_and_confirms_once() {
        let (directory, mailer) = (MemoryDirectory::default(), MemoryMailer::default());
        directory
            .subscribe("news", "usr_1", "ada@example.com")
            .await
            .unwrap();
        let harness = Harness::new(Unsubscribes::new(&directory, &mailer), LogDeadLetters);
        let event = json!({"specversion": "1.0", "id": "u1", "source": "/web", "type": "user.unsubscribed",
            "subject": "usr_1", "time": "2026-11-22T10:00:00Z",
            "data": {"user_id": "usr_1", "email": "ada@example.com", "list_id": "news",
                     "unsubscribed_at": "2026-11-22T10:00:00Z"}});
        harness.run(batch_of(std::slice::from_ref(&event))).await;
        harness.run(batch_of(&[event])).await;
        assert!(!directory.is_member("news", "usr_1"));
        let sent = mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].idempotency_key, "unsubscribes:confirmation:u1");
    }
}
