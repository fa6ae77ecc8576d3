//! The signups consumer: `user.signed_up` → the profile is created, a welcome e-mail is sent, the signup is recorded.
//!
//! The consumer decides which effects an event causes and asks the [`Effects`] port to carry them out, each with
//! a deterministic idempotency key; the port's adapter decides how (logged today, stores and providers later).

use tubes_shared::effects::{Effects, Plan};
use tubes_shared::EventType;

/// The consumer's stable name (in logs, dead letters and idempotency keys).
pub const NAME: &str = "signups";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::UserSignedUp];

/// The effects of one `user.signed_up` event, in the order they are carried out.
pub const EFFECTS: &[&str] = &["profile.create", "email.welcome", "signup.record"];

/// The signups consumer, carrying out its effects through `effects`.
pub fn consumer<E: Effects>(effects: E) -> Plan<E> {
    Plan::new(NAME, SUBSCRIPTIONS, EFFECTS, effects)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tubes_shared::effects::MemoryEffects;
    use tubes_shared::harness::LogDeadLetters;
    use tubes_shared::lambda_event::batch_of;
    use tubes_shared::Harness;

    use super::*;

    #[tokio::test]
    async fn a_signup_gets_a_profile_a_welcome_email_and_a_record() {
        let effects = MemoryEffects::default();
        let event = json!({"specversion": "1.0", "id": "e1", "source": "/signup", "type": "user.signed_up", "subject": "usr_1", "time": "2026-11-22T10:00:00Z",
               "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada",
                        "signed_up_at": "2026-11-22T10:00:00Z"}});
        let report = Harness::new(consumer(&effects), LogDeadLetters)
            .run(batch_of(&[event]))
            .await;
        assert_eq!(report.handled, 1);
        let kinds: Vec<&str> = effects.applied().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, EFFECTS);
        assert_eq!(
            effects.applied()[0].idempotency_key,
            format!("signups:e1:{}", EFFECTS[0])
        );
    }
}
