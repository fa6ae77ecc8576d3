//! The unsubscribes consumer: `user.unsubscribed` → the address leaves the mailing list, a confirmation is sent.
//!
//! The consumer decides which effects an event causes and asks the [`Effects`] port to carry them out, each with
//! a deterministic idempotency key; the port's adapter decides how (logged today, stores and providers later).

use tubes_shared::effects::{Effects, Plan};
use tubes_shared::EventType;

/// The consumer's stable name (in logs, dead letters and idempotency keys).
pub const NAME: &str = "unsubscribes";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::UserUnsubscribed];

/// The effects of one `user.unsubscribed` event, in the order they are carried out.
pub const EFFECTS: &[&str] = &["mailing_list.remove", "email.unsubscribe_confirmation"];

/// The unsubscribes consumer, carrying out its effects through `effects`.
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
    async fn an_unsubscribe_leaves_the_list_then_confirms() {
        let effects = MemoryEffects::default();
        let event = json!({"specversion": "1.0", "id": "e1", "source": "/mail", "type": "user.unsubscribed", "subject": "usr_1", "time": "2026-11-22T10:00:00Z",
               "data": {"user_id": "usr_1", "email": "ada@example.com", "list_id": "newsletter",
                        "unsubscribed_at": "2026-11-22T10:00:00Z"}});
        let report = Harness::new(consumer(&effects), LogDeadLetters)
            .run(batch_of(&[event]))
            .await;
        assert_eq!(report.handled, 1);
        let kinds: Vec<&str> = effects.applied().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, EFFECTS);
        assert_eq!(
            effects.applied()[0].idempotency_key,
            format!("unsubscribes:e1:{}", EFFECTS[0])
        );
    }
}
