//! The signups consumer (seeds 003, 004): `user.signed_up` → the profile is created if absent, the user joins the
//! `news` list if they opted in, a welcome e-mail is sent once per user, and the signup is recorded (a structured
//! log line, without the address).
//!
//! Each step is idempotent on its own (a conditional write, a set membership, an e-mail key per user), so a
//! redelivery or a retry after a crash between steps finishes the work without doing any of it twice.

use tubes_contract::{Envelope, Event, EventType};
use tubes_platform::mail::{Email, MailError, Mailer};
use tubes_platform::users::{Directory, StoreError};
use tubes_platform::{Classify, Consumer, Dependency};

/// The consumer's stable name (in logs, dead letters, idempotency and e-mail keys).
pub const NAME: &str = "signups";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::UserSignedUp];

/// The list users who opt in to marketing join.
pub const NEWS_LIST: &str = "news";

/// The welcome e-mail's idempotency key: one per user, whatever the number of signup events.
pub fn welcome_key(user_id: &str) -> String {
    format!("{NAME}:welcome:{user_id}")
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignupsError {
    /// The directory failed: retried.
    #[error(transparent)]
    Directory(#[from] StoreError),
    /// The e-mail failed: retried or parked, as the mailer says.
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl Classify for SignupsError {
    fn is_retryable(&self) -> bool {
        match self {
            SignupsError::Directory(e) => e.is_retryable(),
            SignupsError::Mail(e) => e.is_retryable(),
        }
    }

    fn dependency(&self) -> Option<Dependency> {
        match self {
            SignupsError::Directory(e) => e.dependency(),
            SignupsError::Mail(e) => e.dependency(),
        }
    }
}

/// The signups consumer.
#[derive(Debug)]
pub struct Signups<D, M> {
    directory: D,
    mailer: M,
}

impl<D: Directory, M: Mailer> Signups<D, M> {
    /// Profiles in `directory`, e-mail through `mailer`.
    pub fn new(directory: D, mailer: M) -> Self {
        Self { directory, mailer }
    }
}

impl<D: Directory, M: Mailer> Consumer for Signups<D, M> {
    type Error = SignupsError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        SUBSCRIPTIONS
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), SignupsError> {
        let Event::UserSignedUp(signup) = envelope.event() else {
            return Ok(());
        };
        let created = self.directory.create_profile(signup).await?;
        // As of the signup's own time: a signup retried after the user unsubscribed does not undo that.
        let joined = if signup.marketing_opt_in {
            self.directory
                .subscribe(
                    NEWS_LIST,
                    &signup.user_id,
                    &signup.email,
                    signup.signed_up_at,
                )
                .await?
                .changed()
        } else {
            false
        };
        self.mailer
            .send(&Email {
                to: signup.email.clone(),
                subject: "Welcome to tubes".into(),
                text: format!("Hello {}, your account is ready.", signup.name),
                idempotency_key: welcome_key(&signup.user_id),
            })
            .await?;
        tracing::debug!(
            user_id = %signup.user_id,
            profile_created = created,
            opted_in = signup.marketing_opt_in,
            joined,
            "signup recorded"
        );
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

    fn signed_up(id: &str, user: &str, opt_in: bool) -> serde_json::Value {
        json!({"specversion": "1.0", "id": id, "source": "/web", "type": "user.signed_up", "subject": user,
               "time": "2026-11-22T10:00:00Z",
               "data": {"user_id": user, "email": "ada@example.com", "name": "Ada", "marketing_opt_in": opt_in,
                        "signed_up_at": "2026-11-22T10:00:00Z"}})
    }

    #[tokio::test]
    async fn a_signup_creates_the_profile_and_welcomes_once_however_often_it_arrives() {
        let (directory, mailer) = (MemoryDirectory::default(), MemoryMailer::default());
        let harness = Harness::new(Signups::new(&directory, &mailer), LogDeadLetters);
        let batch = || {
            batch_of(&[
                signed_up("e1", "usr_1", true),
                signed_up("e2", "usr_1", true), // a second signup event for the same user
                signed_up("e3", "usr_2", false),
            ])
        };
        assert_eq!(harness.run(batch()).await.handled, 3);
        assert_eq!(
            harness.run(batch()).await.handled,
            3,
            "no idempotency records here"
        );
        let sent = mailer.sent();
        let keys: Vec<&str> = sent.iter().map(|e| e.idempotency_key.as_str()).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&"signups:welcome:usr_1") && keys.contains(&"signups:welcome:usr_2"));
        assert_eq!(directory.profile("usr_1").unwrap().name, "Ada");
        assert!(directory.is_member(NEWS_LIST, "usr_1"));
        assert!(!directory.is_member(NEWS_LIST, "usr_2"));
    }
}
