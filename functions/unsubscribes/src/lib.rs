//! The unsubscribes consumer (seed 000): `user.unsubscribed` → the user leaves the mailing list as of the event's
//! `unsubscribed_at` (a tombstone: an older signup retried later does not put them back), and a confirmation goes
//! out when that actually took them off the list, once per such change (its e-mail key names the user, the list
//! and the time of the change, not the event: the same unsubscribe sent twice is confirmed once).

use tubes_contract::{Envelope, Event, EventType};
use tubes_platform::mail::{Email, MailError, Mailer};
use tubes_platform::users::{Directory, StoreError};
use tubes_platform::{Classify, Consumer, Dependency};

/// The consumer's stable name (in logs, dead letters, idempotency and e-mail keys).
pub const NAME: &str = "unsubscribes";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::UserUnsubscribed];

/// The confirmation's idempotency key: one per change of membership (user, list, and the change's time).
pub fn confirmation_key(user_id: &str, list_id: &str, at: time::OffsetDateTime) -> String {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    format!("{NAME}:confirmation:{user_id}:{list_id}:{millis}")
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

    fn dependency(&self) -> Option<Dependency> {
        match self {
            UnsubscribesError::Directory(e) => e.dependency(),
            UnsubscribesError::Mail(e) => e.dependency(),
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
        let membership = self
            .directory
            .unsubscribe(&left.list_id, &left.user_id, left.unsubscribed_at)
            .await?;
        // Confirmed when this unsubscribe took them off the list (now, or at an earlier delivery of it: the key
        // makes it once). Not when they were not on it, nor when a later change is in force.
        if membership.changed() {
            self.mailer
                .send(&Email {
                    to: left.email.clone(),
                    subject: format!("You left the {} list", left.list_id),
                    text: "You will not get these e-mails any more.".into(),
                    idempotency_key: confirmation_key(
                        &left.user_id,
                        &left.list_id,
                        left.unsubscribed_at,
                    ),
                })
                .await?;
        }
        tracing::debug!(user_id = %left.user_id, list_id = %left.list_id, ?membership, "unsubscribe handled");
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

    fn unsubscribed(id: &str, at: &str) -> serde_json::Value {
        json!({"specversion": "1.0", "id": id, "source": "/web", "type": "user.unsubscribed",
            "subject": "usr_1", "time": at,
            "data": {"user_id": "usr_1", "email": "ada@example.com", "list_id": "news", "unsubscribed_at": at}})
    }

    #[tokio::test]
    async fn an_unsubscribe_removes_the_member_and_confirms_once_per_change() {
        let (directory, mailer) = (MemoryDirectory::default(), MemoryMailer::default());
        let at = time::macros::datetime!(2026-11-22 09:00 UTC);
        directory
            .subscribe("news", "usr_1", "ada@example.com", at)
            .await
            .unwrap();
        let harness = Harness::new(Unsubscribes::new(&directory, &mailer), LogDeadLetters);
        let event = unsubscribed("u1", "2026-11-22T10:00:00Z");
        harness.run(batch_of(std::slice::from_ref(&event))).await;
        harness.run(batch_of(std::slice::from_ref(&event))).await;
        // The same unsubscribe sent again by its producer, under another id: the same change, confirmed once.
        harness
            .run(batch_of(&[unsubscribed(
                "u1-resent",
                "2026-11-22T10:00:00Z",
            )]))
            .await;
        assert!(!directory.is_member("news", "usr_1"));
        let sent = mailer.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            sent[0].idempotency_key,
            "unsubscribes:confirmation:usr_1:news:1795341600000"
        );
    }

    #[tokio::test]
    async fn a_non_member_is_not_confirmed_and_an_older_signup_retried_later_does_not_resubscribe()
    {
        let (directory, mailer) = (MemoryDirectory::default(), MemoryMailer::default());
        let harness = Harness::new(Unsubscribes::new(&directory, &mailer), LogDeadLetters);
        // Never on the list: nothing to confirm.
        harness
            .run(batch_of(&[unsubscribed("u0", "2026-11-22T08:00:00Z")]))
            .await;
        assert!(mailer.sent().is_empty());
        // Joined at 09:00 (the signups consumer's subscribe), left at 10:00, then the 09:00 signup is handled
        // again (a redrive): it does not put the user back.
        let joined = time::macros::datetime!(2026-11-22 09:00 UTC);
        let subscribe = || directory.subscribe("news", "usr_1", "ada@example.com", joined);
        assert!(subscribe().await.unwrap().changed());
        harness
            .run(batch_of(&[unsubscribed("u1", "2026-11-22T10:00:00Z")]))
            .await;
        assert_eq!(
            subscribe().await.unwrap(),
            tubes_platform::users::Membership::Superseded
        );
        assert!(!directory.is_member("news", "usr_1"));
        assert_eq!(mailer.sent().len(), 1);
    }
}
