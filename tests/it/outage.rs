//! An outage of a dependency on the real stores: the payments ledger's DynamoDB (moto) stops answering while the
//! idempotency records (another moto) work. Nothing is parked however long it lasts, no attempt is counted
//! against the records, and once it is back every payment is decided once, in order.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::Payments;
use tubes_platform::dead_letters::MemoryDeadLetters;
use tubes_platform::harness::BreakerPolicy;
use tubes_platform::idempotency::{event_key, DynamoIdempotency, IdempotencyTimes};
use tubes_platform::lambda_event::batch_of;
use tubes_platform::publish::MemoryPublisher;
use tubes_platform::Harness;
use tubes_tests::Moto;

fn event(id: &str, ty: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/bank", "type": ty, "subject": data["account_id"],
           "time": "2026-11-22T10:00:00Z", "data": data})
}

fn payment(id: &str, account: &str, amount: i64) -> Value {
    event(
        id,
        "payment.received",
        json!({"payment_id": id, "account_id": account, "amount": amount, "currency": "EUR",
               "payer_email": "ada@example.com"}),
    )
}

#[tokio::test]
async fn a_ledger_outage_parks_nothing_counts_no_attempt_and_loses_nothing() {
    let (idem_moto, ledger_moto) = tokio::join!(Moto::start(), Moto::start());
    idem_moto.create_table("idem", "key").await;
    ledger_moto.create_table("ledger", "pk").await;
    // The ledger's client fails a call that gets no answer in a second, as the consumers' clients do in ten
    // (`tubes_platform::runtime::sdk_timeouts`).
    let ledger_client = aws_sdk_dynamodb::Client::from_conf(
        ledger_moto
            .dynamodb()
            .config()
            .to_builder()
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(300))
                    .operation_timeout(Duration::from_secs(1))
                    .build(),
            )
            .build(),
    );
    let ledger = DynamoLedger::new(ledger_client, "ledger");
    let (dlq, publisher) = (MemoryDeadLetters::default(), MemoryPublisher::default());
    let harness = Harness::new(Payments::new(ledger.clone(), &publisher), &dlq)
        .with_idempotency(
            DynamoIdempotency::new(idem_moto.dynamodb(), "idem"),
            IdempotencyTimes::default(),
        )
        .with_max_attempts(2)
        .with_breakers(BreakerPolicy {
            threshold: 3,
            cooldown: Duration::from_millis(200),
            max_cooldown: Duration::from_secs(1),
        });

    // Three accounts, opened and credited while the ledger is up.
    let accounts = ["acc_1", "acc_2", "acc_3"];
    let setup: Vec<Value> = accounts
        .iter()
        .flat_map(|a| {
            [
                event(
                    &format!("open-{a}"),
                    "account.opened",
                    json!({"account_id": a, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}),
                ),
                event(
                    &format!("credit-{a}"),
                    "account.credited",
                    json!({"credit_id": format!("c-{a}"), "account_id": a, "amount": 1_000,
                           "currency": "EUR", "credited_at": "2026-11-22T09:30:00Z"}),
                ),
            ]
        })
        .collect();
    assert_eq!(harness.run(batch_of(&setup)).await.handled, 6);

    // Each account gets two payments; the second of acc_1 is more than what the first leaves.
    let payments: Vec<Value> = vec![
        payment("p1a", "acc_1", 700),
        payment("p2a", "acc_2", 100),
        payment("p3a", "acc_3", 100),
        payment("p1b", "acc_1", 700),
        payment("p2b", "acc_2", 100),
        payment("p3b", "acc_3", 100),
    ];

    // The ledger stops answering. Lambda redelivers the batch far more often than the attempts that would park
    // a record that fails for its own reasons.
    ledger_moto.pause();
    for round in 0..6 {
        let report = harness.run(batch_of(&payments)).await;
        assert_eq!(
            (report.handled, report.dead_lettered),
            (0, 0),
            "round {round}: {report:?}"
        );
        assert!(
            !report.response.batch_item_failures.is_empty(),
            "round {round}: the batch is retried"
        );
    }
    assert!(dlq.letters().is_empty(), "{:?}", dlq.letters());
    // No attempt was counted against the records the ledger failed: their claims were given back uncounted.
    let item = idem_moto
        .dynamodb()
        .get_item()
        .table_name("idem")
        .key(
            "key",
            AttributeValue::S(event_key("payments", "/bank", "p1a")),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("p1a was claimed during the outage");
    assert_eq!(item["status"].as_s().unwrap(), "RELEASED");
    assert_eq!(item["attempts"].as_n().unwrap(), "0");

    // The ledger is back: every payment is decided once, in each account's order.
    ledger_moto.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = harness.run(batch_of(&payments)).await;
        if report.response.batch_item_failures.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still failing: {report:?}"
        );
    }
    assert!(dlq.letters().is_empty(), "{:?}", dlq.letters());
    let balance = |a: &'static str| {
        let ledger = ledger.clone();
        async move { ledger.account(a).await.unwrap().unwrap().balance }
    };
    assert_eq!(balance("acc_1").await, 300, "p1a processed, p1b refused");
    assert_eq!(balance("acc_2").await, 800);
    assert_eq!(balance("acc_3").await, 800);
    let outcomes: Vec<(String, String)> = publisher
        .written()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.data).unwrap();
            (
                v["data"]["payment_id"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("p1a".to_owned(), "payment.processed".to_owned()),
            ("p1b".to_owned(), "payment.failed".to_owned()),
            ("p2a".to_owned(), "payment.processed".to_owned()),
            ("p2b".to_owned(), "payment.processed".to_owned()),
            ("p3a".to_owned(), "payment.processed".to_owned()),
            ("p3b".to_owned(), "payment.processed".to_owned()),
        ],
        "one outcome per payment"
    );
}
