//! The payments consumer (seed 002: validate → process → notify, with an error path), as a consumer-producer:
//!
//! - `account.opened`, `account.credited`, `account.frozen` keep each account's currency, limit, balance and state
//!   in the [`Ledger`];
//! - `payment.received` is validated against the account (it exists, is not frozen, the currency matches, the
//!   amount is within its per-payment limit and its balance) and debited **exactly once per payment id**: the
//!   ledger records the decision with the debit in one transaction, so a redelivery, a retry after a crash, or a
//!   second invocation on the same record finds the decision instead of debiting again;
//! - the outcome is published: `payment.processed`, or `payment.failed` with a machine-readable reason. It is
//!   published once per payment ([`Envelope::once_per_key`]): its id is derived from the payment id, not from
//!   the event that asked, and its time and data from the stored decision, so a retried publication, a second
//!   event about the same payment, a redrive or a replay is the same event, and downstream (the notifications
//!   consumer) e-mails the payer once.
//!
//! All of an account's events share its partition key (the account id), so they reach this consumer in order.

pub mod dynamo;
pub mod error;
pub mod ledger;

use tubes_contract::catalogue::{PaymentFailed, PaymentFailureReason, PaymentProcessed};
use tubes_contract::{codec, Envelope, Event, EventType};
use tubes_platform::{clock, Consumer, Publisher, PutOutcome};

pub use error::PaymentsError;
pub use ledger::{Decision, Ledger, MemoryLedger};

/// The consumer's stable name (in logs, dead letters, idempotency keys and derived event ids).
pub const NAME: &str = "payments";

/// The event types it handles; `template.yaml` filters its event source mapping to the same.
pub const SUBSCRIPTIONS: &[EventType] = &[
    EventType::AccountOpened,
    EventType::AccountCredited,
    EventType::AccountFrozen,
    EventType::PaymentReceived,
];

/// The payments consumer over a ledger and a publisher.
#[derive(Debug)]
pub struct Payments<L, P> {
    ledger: L,
    publisher: P,
}

impl<L: Ledger, P: Publisher> Payments<L, P> {
    /// A consumer keeping accounts in `ledger` and publishing outcomes through `publisher`.
    pub fn new(ledger: L, publisher: P) -> Self {
        Self { ledger, publisher }
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), PaymentsError> {
        let record = codec::encode(envelope).map_err(|e| PaymentsError::Invalid(e.to_string()))?;
        let outcomes = self
            .publisher
            .put_records(std::slice::from_ref(&record))
            .await
            .map_err(|e| PaymentsError::Publish(e.to_string()))?;
        // Only an acknowledged record counts: anything else is retried (the same event, by its derived id).
        match outcomes.first() {
            Some(PutOutcome::Accepted { .. }) => Ok(()),
            Some(PutOutcome::Failed { message, .. }) => {
                Err(PaymentsError::Publish(message.clone()))
            }
            None => Err(PaymentsError::Publish("no outcome for the record".into())),
        }
    }
}

/// What a refused payment's `detail` says (no amounts or balances: those are for the account holder's view).
fn detail(reason: PaymentFailureReason) -> &'static str {
    match reason {
        PaymentFailureReason::AccountNotFound => "no open account has this id",
        PaymentFailureReason::AccountFrozen => "the account is frozen",
        PaymentFailureReason::InsufficientFunds => "the balance is below the amount",
        PaymentFailureReason::CurrencyMismatch => "the account holds another currency",
        PaymentFailureReason::LimitExceeded => {
            "the amount is above the account's per-payment limit"
        }
    }
}

impl<L: Ledger, P: Publisher> Consumer for Payments<L, P> {
    type Error = PaymentsError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        SUBSCRIPTIONS
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), PaymentsError> {
        match envelope.event() {
            Event::AccountOpened(opened) => self.ledger.open(opened).await,
            Event::AccountCredited(credit) => self.ledger.credit(credit).await,
            Event::AccountFrozen(frozen) => self.ledger.freeze(frozen).await,
            Event::PaymentReceived(payment) => {
                let decision = self.ledger.debit(payment, clock::now()).await?;
                let (outcome, at): (Event, _) = match decision {
                    Decision::Processed { at } => (
                        PaymentProcessed {
                            payment_id: payment.payment_id.clone(),
                            account_id: payment.account_id.clone(),
                            amount: payment.amount,
                            currency: payment.currency.clone(),
                            payer_email: payment.payer_email.clone(),
                            processed_at: at,
                        }
                        .into(),
                        at,
                    ),
                    Decision::Refused { reason, at } => (
                        PaymentFailed {
                            payment_id: payment.payment_id.clone(),
                            account_id: payment.account_id.clone(),
                            amount: payment.amount,
                            currency: payment.currency.clone(),
                            payer_email: payment.payer_email.clone(),
                            reason,
                            detail: Some(detail(reason).to_owned()),
                            failed_at: at,
                        }
                        .into(),
                        at,
                    ),
                };
                // Once per payment, whatever event asked: the outcome is a function of the stored decision, so
                // a second event about this payment, a redrive or a replay publishes the very same event.
                let published =
                    Envelope::once_per_key(envelope, NAME, &payment.payment_id, at, outcome)
                        .map_err(|v| PaymentsError::Invalid(v.to_string()))?;
                self.publish(&published).await?;
                tracing::debug!(
                    payment_id = %payment.payment_id,
                    outcome = published.event_type().as_str(),
                    published_id = published.id(),
                    "payment decided"
                );
                Ok(())
            }
            // The mapping's filter delivers nothing else; the harness skips other types before this.
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use tubes_contract::codec;
    use tubes_platform::dead_letters::LogDeadLetters;
    use tubes_platform::lambda_event::batch_of;
    use tubes_platform::publish::{MemoryFault, MemoryPublisher};
    use tubes_platform::Harness;

    use super::*;

    fn event(id: &str, ty: &str, data: Value) -> Value {
        json!({"specversion": "1.0", "id": id, "source": "/bank", "type": ty, "subject": data["account_id"],
               "time": "2026-11-22T10:00:00Z", "data": data})
    }

    fn opened(account: &str) -> Value {
        event(
            &format!("open-{account}"),
            "account.opened",
            json!({"account_id": account, "currency": "EUR", "per_payment_limit": 100_000,
                   "opened_at": "2026-11-22T09:00:00Z"}),
        )
    }

    fn credited(account: &str, credit: &str, amount: i64) -> Value {
        event(
            &format!("credit-{credit}"),
            "account.credited",
            json!({"credit_id": credit, "account_id": account, "amount": amount, "currency": "EUR",
                   "credited_at": "2026-11-22T09:30:00Z"}),
        )
    }

    fn payment(account: &str, id: &str, amount: i64, currency: &str) -> Value {
        event(
            &format!("evt-{id}"),
            "payment.received",
            json!({"payment_id": id, "account_id": account, "amount": amount, "currency": currency,
                   "payer_email": "ada@example.com"}),
        )
    }

    /// The published events, decoded: (type, data).
    fn published(publisher: &MemoryPublisher) -> Vec<(String, Value)> {
        publisher
            .written()
            .iter()
            .map(|r| {
                let e = codec::decode(&r.data).unwrap();
                let v = serde_json::to_value(&e).unwrap();
                (e.event_type().as_str().to_owned(), v["data"].clone())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_payment_is_processed_or_refused_with_its_reason_and_the_outcome_published() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let harness = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters);
        let report = harness
            .run(batch_of(&[
                opened("acc_1"),
                credited("acc_1", "c1", 5_000),
                payment("acc_1", "pay_ok", 1_250, "EUR"),
                payment("acc_1", "pay_big", 10_000, "EUR"),
                payment("acc_1", "pay_usd", 100, "USD"),
                payment("acc_1", "pay_limit", 100_001, "EUR"),
                payment("acc_404", "pay_nobody", 100, "EUR"),
            ]))
            .await;
        assert_eq!(report.handled, 7, "{report:?}");
        assert_eq!(ledger.balance("acc_1"), Some(3_750));
        // Per payment (accounts are handled concurrently, so the order across accounts may vary).
        let outcomes: std::collections::BTreeMap<String, (String, Value)> = published(&publisher)
            .into_iter()
            .map(|(t, d)| {
                (
                    d["payment_id"].as_str().unwrap().to_owned(),
                    (t, d["reason"].clone()),
                )
            })
            .collect();
        let expected = [
            ("pay_big", "payment.failed", json!("insufficient_funds")),
            ("pay_limit", "payment.failed", json!("limit_exceeded")),
            ("pay_nobody", "payment.failed", json!("account_not_found")),
            ("pay_ok", "payment.processed", Value::Null),
            ("pay_usd", "payment.failed", json!("currency_mismatch")),
        ];
        assert_eq!(outcomes.len(), expected.len());
        for (id, ty, reason) in expected {
            assert_eq!(outcomes[id], (ty.to_owned(), reason), "{id}");
        }
    }

    #[tokio::test]
    async fn a_frozen_account_refuses_payments() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let harness = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters);
        let frozen = event(
            "freeze-1",
            "account.frozen",
            json!({"account_id": "acc_1", "frozen_at": "2026-11-22T09:45:00Z"}),
        );
        harness
            .run(batch_of(&[
                opened("acc_1"),
                credited("acc_1", "c1", 5_000),
                frozen,
                payment("acc_1", "pay_1", 100, "EUR"),
            ]))
            .await;
        assert_eq!(published(&publisher)[0].1["reason"], "account_frozen");
        assert_eq!(ledger.balance("acc_1"), Some(5_000));
    }

    #[tokio::test]
    async fn a_retry_after_a_failed_publication_debits_once_and_publishes_the_same_event() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let harness = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters);
        harness
            .run(batch_of(&[opened("acc_1"), credited("acc_1", "c1", 5_000)]))
            .await;
        // The debit commits, then the publication fails: the record is retried.
        publisher.fail_next(MemoryFault::FailEntries(
            "ProvisionedThroughputExceededException",
        ));
        let first = harness
            .run(batch_of(&[payment("acc_1", "pay_1", 1_000, "EUR")]))
            .await;
        assert_eq!((first.failed, first.handled), (1, 0));
        // The redelivery finds the decision: no second debit, the outcome published now.
        let second = harness
            .run(batch_of(&[payment("acc_1", "pay_1", 1_000, "EUR")]))
            .await;
        assert_eq!(second.handled, 1);
        assert_eq!(ledger.balance("acc_1"), Some(4_000));
        // And a third delivery (no idempotency records here) republishes the very same bytes.
        harness
            .run(batch_of(&[payment("acc_1", "pay_1", 1_000, "EUR")]))
            .await;
        let written = publisher.written();
        assert_eq!(written.len(), 2);
        assert_eq!(
            written[0].data, written[1].data,
            "same id, same time, same bytes"
        );
        assert_eq!(ledger.balance("acc_1"), Some(4_000));
    }

    #[tokio::test]
    async fn one_payment_under_two_event_ids_is_debited_once_and_has_one_outcome() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let harness = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters);
        harness
            .run(batch_of(&[opened("acc_1"), credited("acc_1", "c1", 5_000)]))
            .await;
        // The producer sends payment pay_1 twice, under two event ids (and at two times).
        let mut again = payment("acc_1", "pay_1", 1_000, "EUR");
        again["id"] = json!("evt-pay_1-resent");
        again["time"] = json!("2026-11-22T10:05:00Z");
        harness
            .run(batch_of(&[payment("acc_1", "pay_1", 1_000, "EUR"), again]))
            .await;
        assert_eq!(ledger.balance("acc_1"), Some(4_000), "debited once");
        // Both publications are one event: same id (the payment's, not the cause's), same time (the decision's),
        // same data; only the causation differs, which downstream's duplicate check does not look at.
        let outcomes: Vec<Envelope> = publisher
            .written()
            .iter()
            .map(|r| codec::decode(&r.data).unwrap())
            .collect();
        assert_eq!(outcomes.len(), 2);
        assert_eq!(outcomes[0].id(), outcomes[1].id());
        assert_eq!(outcomes[0].time(), outcomes[1].time());
        assert_eq!(outcomes[0].content_bytes(), outcomes[1].content_bytes());
        assert_eq!(
            outcomes[0].id(),
            tubes_contract::envelope::keyed_id(NAME, "pay_1", EventType::PaymentProcessed)
                .to_string()
        );
        let Event::PaymentProcessed(p) = outcomes[0].event() else {
            panic!("processed");
        };
        assert_eq!(
            outcomes[0].time(),
            p.processed_at,
            "the envelope's time is the decision's"
        );
    }

    #[tokio::test]
    async fn a_credit_counts_once_and_a_refusal_stays_refused() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let harness = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters);
        harness
            .run(batch_of(&[
                opened("acc_1"),
                credited("acc_1", "c1", 500),
                credited("acc_1", "c1", 500),
                payment("acc_1", "pay_1", 800, "EUR"),
                credited("acc_1", "c2", 1_000),
                payment("acc_1", "pay_1", 800, "EUR"),
            ]))
            .await;
        assert_eq!(ledger.balance("acc_1"), Some(1_500));
        let reasons: Vec<Value> = published(&publisher)
            .iter()
            .map(|(_, d)| d["reason"].clone())
            .collect();
        assert_eq!(
            reasons,
            [json!("insufficient_funds"), json!("insufficient_funds")]
        );
    }

    #[tokio::test]
    async fn a_credit_to_an_unknown_account_is_a_dead_letter_not_a_retry() {
        let (ledger, publisher) = (MemoryLedger::default(), MemoryPublisher::default());
        let report = Harness::new(Payments::new(&ledger, &publisher), LogDeadLetters)
            .run(batch_of(&[credited("acc_9", "c1", 500)]))
            .await;
        assert_eq!((report.dead_lettered, report.failed), (1, 0));
    }
}
