//! Redrive on the real emulators (kinesis-local, moto's SQS and DynamoDB): a consumer parks a record it cannot
//! handle yet; after the fix, `tubes-dlq redrive` puts it back onto the stream and it is handled once. The event
//! source mapping's on-failure entries (a sequence range) are redriven from the stream's records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use aws_sdk_kinesis::primitives::Blob;
use serde_json::json;
use tubes_ops::{DeadLetterQueue, Entry};
use tubes_shared::dlq::SqsDeadLetters;
use tubes_shared::harness::IdempotencyTimes;
use tubes_shared::idempotency::DynamoIdempotency;
use tubes_shared::lambda_event::kinesis_event;
use tubes_shared::{Classify, Consumer, Envelope, EventType, Harness, KinesisBatch};
use tubes_tests::{KinesisLocal, Moto};

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
    serde_json::from_value(kinesis_event(&source, &records[from.min(records.len())..])).unwrap()
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
    let redriven = dlq.redrive(None, None).await.unwrap();
    assert_eq!(redriven.range_records, 2);
    assert_eq!(redriven.kept.len(), 1, "{:?}", redriven.kept);
    let left = dlq.list().await.unwrap();
    assert_eq!(left.len(), 1, "the unknown message stays");
    assert!(matches!(left[0].entry, Entry::Unknown(_)));
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
