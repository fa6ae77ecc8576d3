//! The payment pipeline on real stores: the ledger's rules and its exactly-once debit on DynamoDB (moto), and
//! the payments consumer end to end (idempotency records and ledger on moto, outcomes on kinesis-local).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::{Decision, Ledger, Payments, PaymentsError};
use tubes_contract::catalogue::{
    AccountCredited, AccountFrozen, AccountOpened, PaymentFailureReason, PaymentReceived,
};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::DynamoIdempotency;
use tubes_platform::idempotency::IdempotencyTimes;
use tubes_platform::lambda_event::kinesis_event;
use tubes_platform::{Harness, KinesisBatch, KinesisPublisher};
use tubes_tests::{KinesisLocal, Moto};

const T0: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

fn opened(account: &str, currency: &str, limit: Option<i64>) -> AccountOpened {
    AccountOpened {
        account_id: account.into(),
        currency: currency.into(),
        per_payment_limit: limit,
        opened_at: T0,
    }
}

fn credit(account: &str, id: &str, amount: i64) -> AccountCredited {
    AccountCredited {
        credit_id: id.into(),
        account_id: account.into(),
        amount,
        currency: "EUR".into(),
        credited_at: T0,
    }
}

fn payment(account: &str, id: &str, amount: i64) -> PaymentReceived {
    PaymentReceived {
        payment_id: id.into(),
        account_id: account.into(),
        amount,
        currency: "EUR".into(),
        payer_email: "ada@example.com".into(),
        description: None,
    }
}

fn refused(decision: Decision) -> Option<PaymentFailureReason> {
    match decision {
        Decision::Refused { reason, .. } => Some(reason),
        Decision::Processed { .. } => None,
    }
}

#[tokio::test]
async fn the_ledger_debits_each_payment_once_and_refuses_with_the_right_reason() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    moto.create_table("ledger", "pk").await;
    let ledger = DynamoLedger::new(client, "ledger");

    ledger
        .open(&opened("acc_1", "EUR", Some(5_000)))
        .await
        .unwrap();
    ledger.open(&opened("acc_1", "USD", None)).await.unwrap(); // already open: unchanged
    ledger.credit(&credit("acc_1", "c1", 5_000)).await.unwrap();
    ledger.credit(&credit("acc_1", "c1", 5_000)).await.unwrap(); // the same credit
    let account = ledger.account("acc_1").await.unwrap().unwrap();
    assert_eq!((account.currency.as_str(), account.balance), ("EUR", 5_000));

    // Eight attempts at one payment at once: one debit, one decision, the same answer for all.
    let pay = payment("acc_1", "pay_1", 1_250);
    let attempts = (0..8).map(|i| {
        let (ledger, pay) = (ledger.clone(), pay.clone());
        tokio::spawn(async move { ledger.debit(&pay, T0 + time::Duration::seconds(i)).await })
    });
    let mut decisions = Vec::new();
    for a in attempts {
        decisions.push(a.await.unwrap().unwrap());
    }
    assert!(
        decisions.iter().all(|d| *d == decisions[0]),
        "{decisions:?}"
    );
    assert!(matches!(decisions[0], Decision::Processed { .. }));
    assert_eq!(
        ledger.account("acc_1").await.unwrap().unwrap().balance,
        3_750
    );

    // The rules, each with its reason; nothing debited.
    let later = T0 + time::Duration::minutes(1);
    let big = payment("acc_1", "pay_big", 4_000);
    let mut usd = payment("acc_1", "pay_usd", 10);
    usd.currency = "USD".into();
    for (p, reason) in [
        (big.clone(), PaymentFailureReason::InsufficientFunds),
        (usd, PaymentFailureReason::CurrencyMismatch),
        (
            payment("acc_1", "pay_limit", 5_001),
            PaymentFailureReason::LimitExceeded,
        ),
        (
            payment("acc_404", "pay_404", 10),
            PaymentFailureReason::AccountNotFound,
        ),
    ] {
        let d = ledger.debit(&p, later).await.unwrap();
        assert_eq!(refused(d), Some(reason), "{}", p.payment_id);
    }
    assert_eq!(
        ledger.account("acc_1").await.unwrap().unwrap().balance,
        3_750
    );

    // A refusal stands: after a credit, the same payment is still refused, with its first time.
    ledger.credit(&credit("acc_1", "c2", 10_000)).await.unwrap();
    let again = ledger
        .debit(&big, later + time::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        again,
        Decision::Refused {
            reason: PaymentFailureReason::InsufficientFunds,
            at: later
        }
    );
    // A new payment of the same amount goes through now.
    let ok = ledger
        .debit(&payment("acc_1", "pay_2", 4_000), later)
        .await
        .unwrap();
    assert_eq!(ok, Decision::Processed { at: later });

    // Frozen: refused.
    ledger
        .freeze(&AccountFrozen {
            account_id: "acc_1".into(),
            reason: None,
            frozen_at: later,
        })
        .await
        .unwrap();
    let d = ledger
        .debit(&payment("acc_1", "pay_3", 1), later)
        .await
        .unwrap();
    assert_eq!(refused(d), Some(PaymentFailureReason::AccountFrozen));

    // Permanent errors: a payment id reused for another amount, a credit to no account or in another currency.
    let reused = ledger.debit(&payment("acc_1", "pay_1", 99), later).await;
    assert!(
        matches!(reused, Err(PaymentsError::PaymentIdReused(_))),
        "{reused:?}"
    );
    let nobody = ledger.credit(&credit("acc_404", "c3", 10)).await;
    assert!(
        matches!(nobody, Err(PaymentsError::UnknownAccount(_))),
        "{nobody:?}"
    );
    let mut dollars = credit("acc_1", "c4", 10);
    dollars.currency = "USD".into();
    let wrong = ledger.credit(&dollars).await;
    assert!(
        matches!(wrong, Err(PaymentsError::CurrencyMismatch(_))),
        "{wrong:?}"
    );
    assert_eq!(
        ledger.account("acc_1").await.unwrap().unwrap().balance,
        3_750 + 10_000 - 4_000
    );
}

fn event(id: &str, ty: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/bank", "type": ty, "subject": data["account_id"],
           "time": "2026-11-22T10:00:00Z", "data": data})
}

#[tokio::test]
async fn the_payments_consumer_on_real_stores_has_its_effects_once_and_publishes_each_outcome_once()
{
    let (moto, kinesis) = (Moto::start().await, KinesisLocal::start().await);
    let ddb = moto.dynamodb();
    moto.create_table("ledger", "pk").await;
    moto.create_table("idem", "key").await;
    let arn = kinesis.create_stream("events", 1).await;
    let ledger = DynamoLedger::new(ddb.clone(), "ledger");
    let harness = Harness::new(
        Payments::new(
            ledger.clone(),
            KinesisPublisher::new(kinesis.client(), "events"),
        ),
        LogDeadLetters,
    )
    .with_idempotency(
        DynamoIdempotency::new(ddb, "idem"),
        IdempotencyTimes::default(),
    );

    let events = [
        event(
            "e1",
            "account.opened",
            json!({"account_id": "acc_1", "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}),
        ),
        event(
            "e2",
            "account.credited",
            json!({"credit_id": "c1", "account_id": "acc_1", "amount": 1_000,
            "currency": "EUR", "credited_at": "2026-11-22T09:30:00Z"}),
        ),
        event(
            "e3",
            "payment.received",
            json!({"payment_id": "pay_ok", "account_id": "acc_1", "amount": 600,
            "currency": "EUR", "payer_email": "ada@example.com"}),
        ),
        event(
            "e4",
            "payment.received",
            json!({"payment_id": "pay_no", "account_id": "acc_1", "amount": 600,
            "currency": "EUR", "payer_email": "ada@example.com"}),
        ),
    ];
    let batch = || -> KinesisBatch { tubes_platform::lambda_event::batch_of(&events) };
    let first = harness.run(batch()).await;
    assert_eq!(first.handled, 4, "{first:?}");
    // Lambda delivers the batch again: nothing happens twice.
    let second = harness.run(batch()).await;
    assert_eq!((second.handled, second.duplicates), (0, 4));
    assert_eq!(ledger.account("acc_1").await.unwrap().unwrap().balance, 400);

    // On the stream: one outcome per payment, its id derived from the payment id.
    let (source, records) = kinesis.read_all("events", &arn).await.remove(0);
    let outcomes: BTreeMap<String, Value> = records
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.data).unwrap();
            (v["data"]["payment_id"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(records.len(), 2, "{outcomes:#?}");
    assert_eq!(outcomes["pay_ok"]["type"], "payment.processed");
    assert_eq!(outcomes["pay_no"]["type"], "payment.failed");
    assert_eq!(outcomes["pay_no"]["data"]["reason"], "insufficient_funds");
    assert_eq!(outcomes["pay_no"]["causationid"], "e4");
    let expected = tubes_contract::envelope::keyed_id(
        "payments",
        "pay_ok",
        tubes_contract::EventType::PaymentProcessed,
    );
    assert_eq!(outcomes["pay_ok"]["id"], expected.to_string());
    // They are events like any other: decodable, and on the account's key.
    let republished: KinesisBatch =
        KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap();
    assert!(republished
        .records
        .iter()
        .all(|r| r.envelope.is_ok() && r.partition_key == "acc_1"));
}
