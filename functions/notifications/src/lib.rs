//! The notifications consumer (seed 002's "notify"): `payment.processed` and `payment.failed` → the payer gets an
//! e-mail with the outcome, and for a refusal its reason, once per outcome event (the e-mail key is derived from
//! the event id, which the payments consumer derives from the payment's: a republished outcome is the same event).

use tubes_contract::catalogue::PaymentFailureReason;
use tubes_contract::{Envelope, Event, EventType};
use tubes_platform::mail::{Email, MailError, Mailer};
use tubes_platform::Consumer;

/// The consumer's stable name (in logs, dead letters, idempotency and e-mail keys).
pub const NAME: &str = "notifications";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[EventType::PaymentProcessed, EventType::PaymentFailed];

/// The e-mail key of the notification of outcome event `event_id`.
pub fn notification_key(event_id: &str) -> String {
    format!("{NAME}:payment_outcome:{event_id}")
}

/// Minor units as a decimal amount with its currency, e.g. `12.50 EUR` (two decimals: the usual exponent).
fn money(amount: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", amount / 100, amount % 100)
}

/// What the payer reads for a refusal.
fn explain(reason: PaymentFailureReason) -> &'static str {
    match reason {
        PaymentFailureReason::AccountNotFound => "we could not find the account",
        PaymentFailureReason::AccountFrozen => "the account is frozen",
        PaymentFailureReason::InsufficientFunds => "the balance was too low",
        PaymentFailureReason::CurrencyMismatch => "the account holds another currency",
        PaymentFailureReason::LimitExceeded => "the amount is above the account's limit",
    }
}

/// The notifications consumer.
#[derive(Debug)]
pub struct Notifications<M> {
    mailer: M,
}

impl<M: Mailer> Notifications<M> {
    /// E-mail through `mailer`.
    pub fn new(mailer: M) -> Self {
        Self { mailer }
    }
}

impl<M: Mailer> Consumer for Notifications<M> {
    type Error = MailError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        SUBSCRIPTIONS
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), MailError> {
        let email = match envelope.event() {
            Event::PaymentProcessed(p) => Email {
                to: p.payer_email.clone(),
                subject: format!("Payment {} processed", p.payment_id),
                text: format!("{} was paid.", money(p.amount, &p.currency)),
                idempotency_key: notification_key(envelope.id()),
            },
            Event::PaymentFailed(p) => Email {
                to: p.payer_email.clone(),
                subject: format!("Payment {} refused", p.payment_id),
                text: format!(
                    "{} was not paid: {} (reason: {}).",
                    money(p.amount, &p.currency),
                    explain(p.reason),
                    p.reason.as_str()
                ),
                idempotency_key: notification_key(envelope.id()),
            },
            _ => return Ok(()),
        };
        self.mailer.send(&email).await?;
        tracing::debug!(outcome = envelope.event_type().as_str(), "payer notified");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tubes_platform::dead_letters::LogDeadLetters;
    use tubes_platform::lambda_event::batch_of;
    use tubes_platform::mail::MemoryMailer;
    use tubes_platform::Harness;

    use super::*;

    #[tokio::test]
    async fn each_outcome_is_notified_once_with_its_reason() {
        let mailer = MemoryMailer::default();
        let harness = Harness::new(Notifications::new(&mailer), LogDeadLetters);
        let failed = json!({"specversion": "1.0", "id": "out-1", "source": "/consumers/payments",
            "type": "payment.failed", "subject": "acc_1", "time": "2026-11-22T10:00:00Z",
            "data": {"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250, "currency": "EUR",
                     "payer_email": "ada@example.com", "reason": "insufficient_funds",
                     "failed_at": "2026-11-22T10:00:01Z"}});
        let processed = json!({"specversion": "1.0", "id": "out-2", "source": "/consumers/payments",
            "type": "payment.processed", "subject": "acc_1", "time": "2026-11-22T10:00:00Z",
            "data": {"payment_id": "pay_2", "account_id": "acc_1", "amount": 5, "currency": "EUR",
                     "payer_email": "ada@example.com", "processed_at": "2026-11-22T10:00:01Z"}});
        let batch = || batch_of(&[failed.clone(), processed.clone(), failed.clone()]);
        assert_eq!(harness.run(batch()).await.handled, 3);
        let sent = mailer.sent();
        assert_eq!(sent.len(), 2, "{sent:#?}");
        assert_eq!(
            sent[0].idempotency_key,
            "notifications:payment_outcome:out-1"
        );
        assert!(sent[0].text.contains("12.50 EUR") && sent[0].text.contains("insufficient_funds"));
        assert_eq!(sent[1].subject, "Payment pay_2 processed");
        assert!(sent[1].text.starts_with("0.05 EUR"));
    }
}
