//! The real consumers on the local stack (`template.yaml`, as deployed): idempotency records and profiles in the
//! template's DynamoDB tables and dead letters on each consumer's SQS queue, all on moto, e-mail in the local
//! outbox, wired by the environment that `tubes-local provision` resolves from the template.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine as _;
use serde_json::{json, Value};
use tubes_tests::LocalStack;

const DEADLINE: Duration = Duration::from_secs(240);

fn signup(id: &str, user: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/e2e", "type": "user.signed_up", "data": {
        "user_id": user, "email": format!("{user}@example.com"), "name": "Ada", "marketing_opt_in": false,
        "signed_up_at": "2026-11-22T10:00:00Z"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_signup_has_its_effects_once_and_a_poison_record_is_parked_with_its_payload()
{
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let http = reqwest::Client::new();
    let ddb = stack.dynamodb();
    let id = format!("evt-{}", uuid::Uuid::now_v7());

    // The same event twice (a producer's retry that reached ingest twice): two records on the stream.
    let event = signup(&id, "usr_idem");
    stack.post_event(&http, &event).await;
    stack.post_event(&http, &event).await;

    // The first is handled and its record completed in the template's table…
    let key = tubes_platform::idempotency::event_key(tubes_consumer_signups::NAME, "/e2e", &id);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let item = ddb
            .get_item()
            .table_name("tubes-IdempotencyTable")
            .key("key", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .ok()
            .and_then(|o| o.item);
        let status = item
            .as_ref()
            .and_then(|i| i.get("status"))
            .and_then(|s| s.as_s().ok())
            .cloned();
        let duplicate = stack
            .function_log(&["duplicate: already handled"])
            .iter()
            .any(|l| l.contains(&id));
        if status.as_deref() == Some("COMPLETED") && duplicate {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no completed record and duplicate for {key} (status {status:?}, duplicate seen: {duplicate})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // …and the second was skipped: one profile in the template's users table, one welcome e-mail in the outbox.
    let profile = ddb
        .get_item()
        .table_name("tubes-UsersTable")
        .key("pk", AttributeValue::S("profile#usr_idem".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the profile");
    assert_eq!(profile["email"].as_s().unwrap(), "usr_idem@example.com");
    let outbox = tubes_platform::mail::OutboxMailer::new(stack.state.join("outbox.jsonl")).read();
    let welcomes: Vec<_> = outbox
        .iter()
        .filter(|e| e.idempotency_key == tubes_consumer_signups::welcome_key("usr_idem"))
        .collect();
    assert_eq!(welcomes.len(), 1, "{outbox:#?}");
    assert_eq!(welcomes[0].to, "usr_idem@example.com");
    assert_eq!(
        stack
            .function_log(&["signup recorded"])
            .iter()
            .filter(|l| l.contains(&id))
            .count(),
        1
    );

    // A record that passes the mapping's filter but is no valid event: parked with its bytes, the shard goes on.
    let poison = json!({"specversion": "1.0", "id": "poison-1", "type": "user.signed_up", "data": {"user_id": 7}});
    let poison_bytes = serde_json::to_vec(&poison).unwrap();
    stack
        .kinesis()
        .put_record()
        .stream_name("tubes-EventStream")
        .partition_key("usr_poison")
        .data(aws_sdk_kinesis::primitives::Blob::new(poison_bytes.clone()))
        .send()
        .await
        .unwrap();
    let after = signup(&format!("evt-{}", uuid::Uuid::now_v7()), "usr_poison");
    stack.post_event(&http, &after).await;

    let sqs = stack.sqs();
    let queue = sqs
        .get_queue_url()
        .queue_name("tubes-SignupsDeadLetterQueue")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let letter: Value = loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let found = received.messages().iter().find_map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap_or_default()).ok()?;
            (body["partition_key"] == "usr_poison").then_some(body)
        });
        if let Some(letter) = found {
            break letter;
        }
        assert!(
            Instant::now() < deadline,
            "the poison record was not parked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(letter["consumer"], "signups", "{letter}");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid event"),
        "{letter}"
    );
    let payload = base64::engine::general_purpose::STANDARD
        .decode(letter["payload_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload, poison_bytes, "the full payload, for redrive");

    // The next record of the same key was not blocked by it.
    let after_id = after["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + DEADLINE;
    while !stack
        .function_log(&["signup recorded"])
        .iter()
        .any(|l| l.contains(&after_id))
    {
        assert!(
            Instant::now() < deadline,
            "the record after the poison one was not handled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A payload that is no Kinesis event at all (a mapping never sends one; a hand-made Invoke may): the
    // invocation fails as the Lambda runtime reports a payload it cannot deserialise, with the JSON path of the
    // fault; and the same function instance serves the next invocation (`cargo lambda watch` would not start
    // another).
    let invoke = format!(
        "{}/2015-03-31/functions/tubes-consumer-signups/invocations",
        stack.http
    );
    let answer = http
        .post(&invoke)
        .body(r#"{"Records":[{"kinesis":{"partitionKey":"usr_x","sequenceNumber":"1","data":7}}]}"#)
        .send()
        .await
        .unwrap();
    // `cargo lambda watch` answers a function error with a 500 and the runtime's error document.
    assert!(answer.status().is_server_error(), "{}", answer.status());
    let error: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(
        error["errorType"], "lambda_runtime::deserializer::DeserializeError",
        "{error}"
    );
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("Records[0].kinesis.data"),
        "the path of the fault: {error}"
    );
    let answer = http
        .post(&invoke)
        .body(r#"{"Records":[]}"#)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let empty: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(empty, json!({"batchItemFailures": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_over_the_balance_is_refused_with_its_reason_and_the_payer_is_told_once() {
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let http = reqwest::Client::new();
    let account = format!("acc_{}", uuid::Uuid::now_v7().simple());
    let event = |id: &str, ty: &str, data: Value| json!({"specversion": "1.0", "id": id, "source": "/e2e/bank", "type": ty, "data": data});
    let pay_id = format!("pay-{account}");
    for e in [
        event(
            &format!("open-{account}"),
            "account.opened",
            json!({"account_id": account, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}),
        ),
        event(
            &format!("credit-{account}"),
            "account.credited",
            json!({"credit_id": "c1", "account_id": account, "amount": 500, "currency": "EUR",
                   "credited_at": "2026-11-22T09:30:00Z"}),
        ),
        event(
            &pay_id,
            "payment.received",
            json!({"payment_id": "p1", "account_id": account, "amount": 1_250, "currency": "EUR",
                   "payer_email": "payer@example.com"}),
        ),
    ] {
        stack.post_event(&http, &e).await;
    }
    // The payment is posted twice (a producer's retry): still one decision, one outcome, one e-mail.
    stack
        .post_event(
            &http,
            &event(
            &pay_id,
            "payment.received",
            json!({"payment_id": "p1", "account_id": account, "amount": 1_250, "currency": "EUR",
                   "payer_email": "payer@example.com"}),
        ),
    )
    .await;

    // payments refuses it and publishes payment.failed; notifications tells the payer, through the outbox.
    // Its id is the payment's (once per payment), not the event's that asked.
    let outcome = tubes_contract::envelope::keyed_id(
        tubes_consumer_payments::NAME,
        "p1",
        tubes_contract::EventType::PaymentFailed,
    );
    let key = tubes_consumer_notifications::notification_key(&outcome.to_string());
    let outbox = tubes_platform::mail::OutboxMailer::new(stack.state.join("outbox.jsonl"));
    let deadline = Instant::now() + DEADLINE;
    let email = loop {
        if let Some(e) = outbox.read().into_iter().find(|e| e.idempotency_key == key) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no notification {key}; outbox: {:#?}",
            outbox.read()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(email.to, "payer@example.com");
    assert!(email.text.contains("insufficient_funds"), "{}", email.text);
    assert!(email.text.contains("12.50 EUR"), "{}", email.text);

    // Nothing was debited, and the decision is recorded once.
    let ddb = stack.dynamodb();
    let get = |pk: String| {
        let ddb = ddb.clone();
        async move {
            ddb.get_item()
                .table_name("tubes-LedgerTable")
                .key("pk", AttributeValue::S(pk))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap_or_default()
        }
    };
    let balance = get(format!("account#{account}")).await;
    assert_eq!(balance["balance"].as_n().unwrap(), "500");
    let decision = get("payment#p1".into()).await;
    assert_eq!(decision["outcome"].as_s().unwrap(), "failed");
    assert_eq!(decision["reason"].as_s().unwrap(), "insufficient_funds");
    // Let the second delivery of the payment be handled too, then: still one e-mail for the outcome.
    let deadline = Instant::now() + DEADLINE;
    while stack
        .function_log(&["duplicate: already handled"])
        .iter()
        .filter(|l| l.contains(&pay_id))
        .count()
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the second delivery of {pay_id} was not skipped"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let emails = outbox
        .read()
        .into_iter()
        .filter(|e| e.idempotency_key == key)
        .count();
    assert_eq!(emails, 1);
}
