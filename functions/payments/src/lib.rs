//! The payments consumer: `payment.received` → the payer's account is debited, the payer is notified of the outcome.
//!
//! The consumer decides which effects an event causes and asks the [`Effects`] port to carry them out, each with
//! a deterministic idempotency key; the port's adapter decides how (logged today, stores and providers later).

use tubes_shared::effects::{Effects, Plan};
use tubes_shared::EventType;

/// The consumer's stable name (in logs, dead letters and idempotency keys).
pub const NAME: &str = "payments";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::PaymentReceived];

/// The effects of one `payment.received` event, in the order they are carried out.
pub const EFFECTS: &[&str] = &["ledger.debit", "notification.payment_outcome"];

/// The payments consumer, carrying out its effects through `effects`.
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
    async fn a_payment_debits_the_ledger_then_notifies_the_payer() {
        let effects = MemoryEffects::default();
        let event = json!({"specversion": "1.0", "id": "e1", "source": "/shop", "type": "payment.received", "subject": "acc_1", "time": "2026-11-22T10:00:00Z",
               "data": {"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250, "currency": "EUR",
                        "payer_email": "ada@example.com"}});
        let report = Harness::new(consumer(&effects), LogDeadLetters)
            .run(batch_of(&[event]))
            .await;
        assert_eq!(report.handled, 1);
        let kinds: Vec<&str> = effects.applied().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, EFFECTS);
        assert_eq!(
            effects.applied()[0].idempotency_key,
            format!("payments:e1:{}", EFFECTS[0])
        );
    }
}
