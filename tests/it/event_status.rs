//! `GET /events/{source}/{id}` on the whole local stack (ingest, kinesis-local, the real payments function under
//! `cargo lambda watch`, moto's DynamoDB and SQS, the query function): a credit for an account not opened yet is
//! parked by payments, and the view says so, with the queue and the stream place ingest answered; once the account
//! is opened and the letter redriven to the function, the view says handled.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tubes_ops::{DeadLetterQueue, Entry};
use tubes_tests::LocalStack;

const DEADLINE: Duration = Duration::from_secs(240);
const QUEUE: &str = "tubes-PaymentsDeadLetterQueue";
const PAYMENTS: &str = "tubes-consumer-payments";
const SOURCE: &str = "/it/status";

/// `GET` the status of the event `id` of [`SOURCE`]: the status code, the ETag and the body.
async fn status(
    http: &reqwest::Client,
    stack: &LocalStack,
    key: &str,
    id: &str,
    if_none_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = http
        .get(format!("{}/events/%2Fit%2Fstatus/{id}", stack.http))
        .bearer_auth(key);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let resp = request.send().await.unwrap();
    let code = resp.status().as_u16();
    let tag = resp
        .headers()
        .get("etag")
        .map(|t| t.to_str().unwrap().to_owned());
    let body = resp.bytes().await.unwrap();
    (
        code,
        tag,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Polls the status of `id` until payments' line satisfies `wanted`; returns the whole answer.
async fn until_payments(
    http: &reqwest::Client,
    stack: &LocalStack,
    key: &str,
    id: &str,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> (Value, Option<String>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (code, tag, body) = status(http, stack, key, id, None).await;
        if code == 200 {
            let payments = body["consumers"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["consumer"] == "payments"));
            if payments.is_some_and(&wanted) {
                return (body, tag);
            }
        } else {
            assert_eq!(code, 404, "{body}");
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what} (last: {code} {body})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_shows_as_parked_and_after_its_redrive_as_handled() {
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let http = reqwest::Client::new();
    let key = stack.demo_read_key();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let account = format!("acc_{run}");
    let credit = format!("credit-{run}");

    // Nothing yet: 404 in the contract's body; and a reader's key is needed.
    let (code, _, body) = status(&http, &stack, &key, &credit, None).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let anonymous = http
        .get(format!("{}/events/%2Fit%2Fstatus/{credit}", stack.http))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A credit for an account never opened: payments parks it for an operator.
    let accepted = stack
        .post_event(
            &http,
            &json!({"specversion": "1.0", "id": credit, "source": SOURCE, "type": "account.credited",
                    "subject": account, "data": {"credit_id": format!("cr_{run}"), "account_id": account,
                    "amount": 250, "currency": "EUR", "credited_at": "2026-11-22T09:30:00Z"}}),
        )
        .await;
    let (parked, tag) = until_payments(
        &http,
        &stack,
        &key,
        &credit,
        "payments parks the credit",
        |p| p["status"] == "parked",
    )
    .await;
    assert_eq!(
        parked["consumers"],
        json!([{"consumer": "payments", "status": "parked", "attempts": 1, "dead_letter_queue": QUEUE}]),
        "only payments takes account.credited"
    );
    assert_eq!(
        (&parked["source"], &parked["id"], &parked["type"]),
        (&json!(SOURCE), &json!(credit), &json!("account.credited"))
    );
    // The place is the one ingest answered the 202 with.
    assert_eq!(parked["accepted"]["shard_id"], accepted["shard_id"]);
    assert_eq!(
        parked["accepted"]["sequence_number"],
        accepted["sequence_number"]
    );
    assert_eq!(parked["accepted"]["partition_key"], json!(account));
    assert!(
        parked["accepted"]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{parked}"
    );
    let tag = tag.expect("an ETag");
    let (code, _, _) = status(&http, &stack, &key, &credit, Some(&tag)).await;
    assert_eq!(code, 304, "unchanged: not modified");

    // The letter is where the view says.
    let dlq = DeadLetterQueue::find(stack.sqs(), stack.kinesis(), QUEUE)
        .await
        .unwrap();
    let letters = dlq.list().await.unwrap();
    assert!(
        letters.iter().any(|m| matches!(&m.entry, Entry::Letter(l) if l.event_id.as_deref() == Some(credit.as_str()))),
        "the credit's letter is on {QUEUE}"
    );

    // The fix: the account is opened (handled by payments), then the letter is redriven to the function.
    let opened = format!("open-{run}");
    stack
        .post_event(
            &http,
            &json!({"specversion": "1.0", "id": opened, "source": SOURCE, "type": "account.opened",
                    "subject": account, "data": {"account_id": account, "currency": "EUR",
                    "opened_at": "2026-11-22T09:00:00Z"}}),
        )
        .await;
    until_payments(
        &http,
        &stack,
        &key,
        &opened,
        "payments opens the account",
        |p| p["status"] == "handled",
    )
    .await;
    let report = dlq
        .redrive_to_function(None, &stack.lambda(), PAYMENTS)
        .await
        .unwrap();
    assert!(report.kept.is_empty(), "{report:?}");
    let (handled, new_tag) = until_payments(
        &http,
        &stack,
        &key,
        &credit,
        "the redriven credit handled",
        |p| p["status"] == "handled",
    )
    .await;
    assert_eq!(
        handled["consumers"],
        json!([{"consumer": "payments", "status": "handled", "attempts": 2}]),
        "handled on the second attempt; the queue is forgotten"
    );
    assert_eq!(
        handled["accepted"], parked["accepted"],
        "the same acceptance"
    );
    assert_ne!(
        new_tag.as_deref(),
        Some(tag.as_str()),
        "a new status, a new tag"
    );
    assert!(dlq.list().await.unwrap().is_empty());
}
