//! Redrive on the real emulators (kinesis-local, moto's SQS and DynamoDB): a consumer parks a record it cannot
//! handle yet; after the fix, `tubes-dlq redrive` puts it back onto the stream and it is handled once. The event
//! source mapping's on-failure entries (a sequence range) are redriven from the stream's records. On the whole
//! local stack, `tubes-dlq redrive --to-function` hands a parked record straight to the real consumer function
//! instead: handled once, its message deleted only then, and nothing new on the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use serde_json::{json, Value};
use tubes_contract::{Envelope, EventType};
use tubes_ops::{DeadLetterQueue, Entry, OpsError};
use tubes_platform::dead_letters::SqsDeadLetters;
use tubes_platform::idempotency::DynamoIdempotency;
use tubes_platform::idempotency::IdempotencyTimes;
use tubes_platform::lambda_event::kinesis_event;
use tubes_platform::mail::OutboxMailer;
use tubes_platform::{Classify, Consumer, Harness, KinesisBatch};
use tubes_tests::{KinesisLocal, LocalStack, Moto, REGION};

#[derive(Debug, thiserror::Error)]
#[error("the welcome template is missing")]
struct NotYet;

impl Classify for NotYet {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Refuses `usr_bad` for good until fixed; records what it handled.
#[derive(Default)]
struct Fixable {
    fixed: AtomicBool,
    handled: Mutex<Vec<String>>,
}

impl Consumer for &Fixable {
    type Error = NotYet;
    fn name(&self) -> &'static str {
        "signups"
    }
    fn subscriptions(&self) -> &'static [EventType] {
        EventType::ALL
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), NotYet> {
        if envelope.subject() == "usr_bad" && !self.fixed.load(Ordering::SeqCst) {
            return Err(NotYet);
        }
        self.handled.lock().unwrap().push(envelope.id().to_owned());
        Ok(())
    }
}

fn signup(id: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/it", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}}))
    .unwrap()
}

/// The stream's records from index `from` on, as one Lambda batch.
async fn batch_from(kinesis: &KinesisLocal, stream: &str, arn: &str, from: usize) -> KinesisBatch {
    let mut shards = kinesis.read_all(stream, arn).await;
    assert_eq!(shards.len(), 1);
    let (source, records) = shards.remove(0);
    KinesisBatch::from_event(&kinesis_event(&source, &records[from.min(records.len())..])).unwrap()
}

#[tokio::test]
async fn a_parked_record_redriven_after_the_fix_has_its_effect_once() {
    let (moto, kinesis) = (Moto::start().await, KinesisLocal::start().await);
    let (sqs, ddb, k) = (moto.sqs(), moto.dynamodb(), kinesis.client());
    let arn = kinesis.create_stream("redrive", 1).await;
    moto.create_table("idem", "key").await;
    let url = sqs
        .create_queue()
        .queue_name("signups-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for (id, user) in [("evt_bad", "usr_bad"), ("evt_ok", "usr_ok")] {
        k.put_record()
            .stream_name("redrive")
            .partition_key(user)
            .data(Blob::new(signup(id, user)))
            .send()
            .await
            .unwrap();
    }
    let consumer = Fixable::default();
    let harness = Harness::new(&consumer, SqsDeadLetters::new(sqs.clone(), &url)).with_idempotency(
        DynamoIdempotency::new(ddb.clone(), "idem"),
        IdempotencyTimes::default(),
    );

    // The first delivery: evt_bad is parked, evt_ok handled, the batch succeeds.
    let report = harness
        .run(batch_from(&kinesis, "redrive", &arn, 0).await)
        .await;
    assert_eq!((report.handled, report.dead_lettered), (1, 1));
    assert!(report.response.batch_item_failures.is_empty());
    let dlq = DeadLetterQueue::new(sqs.clone(), k.clone(), &url);
    let listed = dlq.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    let Entry::Letter(letter) = &listed[0].entry else {
        panic!("a dead letter: {:?}", listed[0].entry)
    };
    assert_eq!(letter.event_id.as_deref(), Some("evt_bad"));
    assert_eq!(
        dlq.list().await.unwrap().len(),
        1,
        "listing consumes nothing"
    );

    // The fix is deployed, the record redriven: back on the stream, off the queue.
    consumer.fixed.store(true, Ordering::SeqCst);
    let redriven = dlq.redrive(None, None).await.unwrap();
    assert_eq!((redriven.letters, redriven.kept.len()), (1, 0));
    assert!(dlq.list().await.unwrap().is_empty());
    assert_eq!(
        dlq.redrive(None, None).await.unwrap().letters,
        0,
        "nothing twice"
    );

    // The mapping delivers what came after its checkpoint: the redriven record, handled now.
    let report = harness
        .run(batch_from(&kinesis, "redrive", &arn, 2).await)
        .await;
    assert_eq!((report.handled, report.dead_lettered), (1, 0));
    // A redelivery of everything changes nothing.
    let report = harness
        .run(batch_from(&kinesis, "redrive", &arn, 0).await)
        .await;
    assert_eq!((report.handled, report.duplicates), (0, 3));
    assert_eq!(*consumer.handled.lock().unwrap(), ["evt_ok", "evt_bad"]);

    // An on-failure entry of the mapping names a range: its records are fetched from the stream and put back.
    let shards = kinesis.read_all("redrive", &arn).await;
    let (source, records) = &shards[0];
    let entry = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "KinesisBatchInfo": {
            "shardId": source.shard_id, "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[1].sequence_number, "batchSize": 2, "streamArn": arn}});
    sqs.send_message()
        .queue_url(&url)
        .message_body(entry.to_string())
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("not ours")
        .send()
        .await
        .unwrap();
    // A range whose end is no longer readable (a sequence number past everything on the shard): all or nothing.
    let cut_short = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "KinesisBatchInfo": {
            "shardId": source.shard_id, "startSequenceNumber": records[1].sequence_number,
            "endSequenceNumber": format!("{}0", records[2].sequence_number), "batchSize": 9, "streamArn": arn}});
    sqs.send_message()
        .queue_url(&url)
        .message_body(cut_short.to_string())
        .send()
        .await
        .unwrap();
    let redriven = dlq.redrive(None, None).await.unwrap();
    assert_eq!(redriven.range_records, 2);
    assert_eq!(redriven.kept.len(), 2, "{:?}", redriven.kept);
    assert!(
        redriven
            .kept
            .iter()
            .any(|k| k.contains("only part of the range")),
        "{:?}",
        redriven.kept
    );
    let mut left = dlq.list().await.unwrap();
    assert_eq!(
        left.len(),
        2,
        "the unknown message and the cut-short range stay"
    );
    left.sort_by_key(|m| matches!(m.entry, Entry::Unknown(_)));
    assert!(matches!(left[0].entry, Entry::OnFailure { .. }));
    assert!(matches!(left[1].entry, Entry::Unknown(_)));
    let after = kinesis.read_all("redrive", &arn).await.remove(0).1;
    assert_eq!(after.len(), 5);
    assert_eq!(
        after[3].data, records[0].data,
        "the range, byte for byte, in order"
    );
    assert_eq!(after[4].data, records[1].data);
    assert_eq!(after[3].partition_key, "usr_bad");
    // Already handled: skipped.
    let report = harness
        .run(batch_from(&kinesis, "redrive", &arn, 3).await)
        .await;
    assert_eq!((report.handled, report.duplicates), (0, 2));
}

// ---- straight to the consumer function, on the whole local stack (template.yaml) ----

const DEADLINE: Duration = Duration::from_secs(240);
const STREAM: &str = "tubes-EventStream";
const QUEUE: &str = "tubes-SignupsDeadLetterQueue";
const SIGNUPS: &str = "tubes-consumer-signups";

/// A Lambda client for the stack's `cargo lambda watch` (its Invoke API).
fn signup_event(id: &str, user: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/it/redrive", "type": "user.signed_up", "data": {
        "user_id": user, "email": format!("{user}@example.com"), "name": "Ada", "marketing_opt_in": false,
        "signed_up_at": "2026-11-22T10:00:00Z"}})
}

/// Every record on the stream, all shards.
async fn stream_len(k: &aws_sdk_kinesis::Client) -> usize {
    tubes_tests::read_stream(k, STREAM, "")
        .await
        .iter()
        .map(|(_, records)| records.len())
        .sum()
}

/// Polls `check` until it answers `Some`, or fails the test with `what`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_redriven_to_its_function_after_the_fix_has_its_effect_once_and_never_touches_the_stream(
) {
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let (http, sqs, k, ddb) = (
        reqwest::Client::new(),
        stack.sqs(),
        stack.kinesis(),
        stack.dynamodb(),
    );
    let lambda = stack.lambda();
    let dlq = DeadLetterQueue::find(sqs.clone(), k.clone(), QUEUE)
        .await
        .unwrap();
    let outbox_path = stack.state.join("outbox.jsonl");
    let outbox = OutboxMailer::new(&outbox_path);
    let welcomes = |user: &str| {
        let key = tubes_consumer_signups::welcome_key(user);
        outbox
            .read()
            .iter()
            .filter(|e| e.idempotency_key == key)
            .count()
    };
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (early, first, late) = (
        format!("usr_early_{run}"),
        format!("usr_first_{run}"),
        format!("usr_late_{run}"),
    );
    let reused = format!("evt-reused-{run}");

    // Given: two signups handled by the real signups function (welcomed once each)…
    let early_event = format!("evt-early-{run}");
    let early_accepted = stack
        .post_event(&http, &signup_event(&early_event, &early))
        .await;
    stack
        .post_event(&http, &signup_event(&reused, &first))
        .await;
    until("both welcomed", || async {
        (welcomes(&early) == 1 && welcomes(&first) == 1).then_some(())
    })
    .await;
    // …and a third that reuses the second's event id for another user: refused for good, parked with its payload.
    stack.post_event(&http, &signup_event(&reused, &late)).await;
    let parked = until("the reused id parked", || async {
        dlq.list().await.unwrap().into_iter().find(
            |m| matches!(&m.entry, Entry::Letter(l) if l.partition_key == late && l.consumer == "signups"),
        )
    })
    .await;
    let Entry::Letter(letter) = &parked.entry else {
        unreachable!()
    };
    assert!(letter.reason.contains("reused"), "{}", letter.reason);
    let on_stream = stream_len(&k).await;
    assert_eq!(on_stream, 3);

    // The reuse is resolved (the first event's idempotency record expired; deleted here as its TTL would), but a
    // new cause appears: e-mail cannot go out (a directory where the outbox file was), a retryable failure.
    let key = tubes_platform::idempotency::event_key(
        tubes_consumer_signups::NAME,
        "/it/redrive",
        &reused,
    );
    ddb.delete_item()
        .table_name("tubes-IdempotencyTable")
        .key("key", AttributeValue::S(key.clone()))
        .send()
        .await
        .unwrap();
    let saved = stack.state.join("outbox.jsonl.saved");
    std::fs::rename(&outbox_path, &saved).unwrap();
    std::fs::create_dir(&outbox_path).unwrap();

    // When it is redriven to a function that does not exist: a clear error, and the message stays.
    let missing = dlq
        .redrive_to_function(None, &lambda, "tubes-consumer-nope")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, OpsError::FunctionNotFound { function } if function == "tubes-consumer-nope"),
        "{missing}"
    );
    assert!(missing.to_string().contains("tubes-consumer-nope"));
    // To a function that fails on the event (ingest takes HTTP requests, not Kinesis batches): a function error,
    // the message stays.
    let report = dlq
        .redrive_to_function(None, &lambda, "tubes-ingest")
        .await
        .unwrap();
    assert_eq!((report.letters, report.invocations), (0, 1), "{report:?}");
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(
        report.kept[0].contains(&parked.id) && report.kept[0].contains("function error"),
        "{report:?}"
    );
    // To signups while e-mail still fails: the function reports the record in batchItemFailures, the message stays.
    let report = dlq
        .redrive_to_function(None, &lambda, SIGNUPS)
        .await
        .unwrap();
    assert_eq!((report.letters, report.invocations), (0, 1), "{report:?}");
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(
        report.kept[0].contains("batchItemFailures")
            && report.kept[0].contains(&letter.sequence_number),
        "{report:?}"
    );
    let left: Vec<String> = dlq
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        left,
        std::slice::from_ref(&parked.id),
        "the same message, still there"
    );
    assert_eq!(welcomes(&late), 0);
    assert_eq!(stack.function_log(&["signup recorded", &late]).len(), 0);

    // Then: e-mail works again. The letter is also on the queue twice (as a redelivery would park it), and an
    // on-failure entry names the first signup's record (already handled).
    std::fs::remove_dir(&outbox_path).unwrap();
    std::fs::rename(&saved, &outbox_path).unwrap();
    sqs.send_message()
        .queue_url(dlq_url(&sqs).await)
        .message_body(&parked.body)
        .send()
        .await
        .unwrap();
    let range = json!({
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "KinesisBatchInfo": {
            "shardId": early_accepted["shard_id"], "startSequenceNumber": early_accepted["sequence_number"],
            "endSequenceNumber": early_accepted["sequence_number"], "batchSize": 1,
            "streamArn": letter.event_source_arn}});
    sqs.send_message()
        .queue_url(dlq_url(&sqs).await)
        .message_body(range.to_string())
        .send()
        .await
        .unwrap();
    let report = dlq
        .redrive_to_function(None, &lambda, SIGNUPS)
        .await
        .unwrap();
    assert_eq!(
        (report.letters, report.range_records, report.duplicates),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(report.kept.is_empty(), "{report:?}");
    assert!((1..=2).contains(&report.invocations), "{report:?}");

    // The late signup is handled once: welcomed once, recorded once, its idempotency record completed; the early
    // one is skipped as already handled; every message is gone; and the stream holds what it held.
    assert!(dlq.list().await.unwrap().is_empty());
    assert_eq!(welcomes(&late), 1);
    until("the late signup recorded", || async {
        (!stack.function_log(&["signup recorded", &late]).is_empty()).then_some(())
    })
    .await;
    until("the early signup skipped", || async {
        (!stack
            .function_log(&["duplicate: already handled", &early_event])
            .is_empty())
        .then_some(())
    })
    .await;
    assert_eq!(stack.function_log(&["signup recorded", &late]).len(), 1);
    assert_eq!(stack.function_log(&["signup recorded", &early]).len(), 1);
    let record = ddb
        .get_item()
        .table_name("tubes-IdempotencyTable")
        .key("key", AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the idempotency record");
    assert_eq!(record["status"].as_s().unwrap(), "COMPLETED");
    assert_eq!(stream_len(&k).await, on_stream, "nothing new on the stream");

    // Nothing is redriven twice.
    let again = dlq
        .redrive_to_function(None, &lambda, SIGNUPS)
        .await
        .unwrap();
    assert_eq!(again, tubes_ops::RedriveReport::default());
    // The same through the command (`make dlq` sets these variables for the local stack).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| tubes_tests::repo_root().join("target"), Into::into);
    let out = std::process::Command::new(target.join("debug/tubes-dlq"))
        .args(["redrive", QUEUE, "--to-function", SIGNUPS])
        .env("AWS_ENDPOINT_URL_SQS", &stack.sqs_endpoint)
        .env("AWS_ENDPOINT_URL_KINESIS", &stack.kinesis_endpoint)
        .env("AWS_ENDPOINT_URL_LAMBDA", &stack.http)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("tubes-dlq (built by the stack) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("redriven to tubes-consumer-signups: 0 dead letter(s)")
            && stdout.contains("0 kept"),
        "{stdout}"
    );
    assert_eq!(welcomes(&late), 1);
}

async fn dlq_url(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.get_queue_url()
        .queue_name(QUEUE)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test]
async fn listing_a_large_queue_sees_every_message_once_and_leaves_them_visible() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = sqs
        .create_queue()
        .queue_name("many-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..35 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("letter {i}"))
            .send()
            .await
            .unwrap();
    }
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new(REGION))
            .build(),
    );
    let dlq = DeadLetterQueue::new(sqs.clone(), kinesis, &url);
    let listed = dlq.list().await.unwrap();
    let bodies: std::collections::HashSet<&str> = listed.iter().map(|m| m.body.as_str()).collect();
    assert_eq!((listed.len(), bodies.len()), (35, 35), "each message once");
    // Visible again at once: a second listing sees them all too.
    assert_eq!(dlq.list().await.unwrap().len(), 35);
}
