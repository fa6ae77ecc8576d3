//! Order per partition key on the real emulators: records put on kinesis-local and read back from its shard, the
//! harness claiming each in moto's DynamoDB and parking on moto's SQS. A transient failure on key X holds back
//! X's later records but not Y's, the response names X's failed sequence number, and the redelivery from there
//! has every effect once, in order per key. A record that keeps failing is parked after its last attempt, with
//! the attempt count, and its key moves on.

use std::collections::HashSet;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use tubes_contract::{Envelope, EventType};
use tubes_platform::dead_letters::{DeadLetterMessage, SqsDeadLetters};
use tubes_platform::harness::BatchReport;
use tubes_platform::idempotency::DynamoIdempotency;
use tubes_platform::idempotency::IdempotencyTimes;
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::{Classify, Consumer, Harness, KinesisBatch};
use tubes_tests::{signup_bytes, KinesisLocal, Moto};

#[derive(Debug, thiserror::Error)]
#[error("downstream unavailable")]
struct Unavailable;

impl Classify for Unavailable {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Records `(user, event id)` per effect; fails retryably on the event ids in `failing`.
#[derive(Default)]
struct Flaky {
    effects: Mutex<Vec<(String, String)>>,
    failing: Mutex<HashSet<String>>,
}

impl Flaky {
    fn effects_of(&self, user: &str) -> Vec<String> {
        let effects = self.effects.lock().unwrap();
        effects
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

impl Consumer for &Flaky {
    type Error = Unavailable;
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn subscriptions(&self) -> &'static [EventType] {
        EventType::ALL
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), Unavailable> {
        if self.failing.lock().unwrap().contains(envelope.id()) {
            return Err(Unavailable);
        }
        self.effects
            .lock()
            .unwrap()
            .push((envelope.subject().to_owned(), envelope.id().to_owned()));
        Ok(())
    }
}

/// What Lambda delivers when it resumes the shard at `from`: the shard's records from that sequence number on.
fn from(source: &BatchSource, records: &[StreamRecord], from: &str) -> KinesisBatch {
    let from = SequenceNumber::from(from);
    let rest: Vec<StreamRecord> = records
        .iter()
        .filter(|r| r.sequence_number >= from)
        .cloned()
        .collect();
    KinesisBatch::from_event(&kinesis_event(source, &rest)).unwrap()
}

fn failures(report: &BatchReport) -> Vec<String> {
    report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_transient_failure_holds_back_its_key_only_and_a_record_that_keeps_failing_is_parked() {
    let (moto, kinesis) = tokio::join!(Moto::start(), KinesisLocal::start());
    moto.create_table("idem", "key").await;
    let sqs = moto.sqs();
    let queue = sqs
        .create_queue()
        .queue_name("flaky-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = kinesis.create_stream("ordering", 1).await;
    // Given X's and Y's events interleaved on one shard.
    let client = kinesis.client();
    let mut sequence = std::collections::HashMap::new();
    for (id, user) in [
        ("x1", "usr_x"),
        ("y1", "usr_y"),
        ("x2", "usr_x"),
        ("x3", "usr_x"),
        ("y2", "usr_y"),
        ("x4", "usr_x"),
        ("x5", "usr_x"),
    ] {
        let put = client
            .put_record()
            .stream_name("ordering")
            .partition_key(user)
            .data(signup_bytes(id, user).into())
            .send()
            .await
            .unwrap();
        sequence.insert(id, put.sequence_number().to_owned());
    }
    let mut shards = kinesis.read_all("ordering", &arn).await;
    assert_eq!(shards.len(), 1);
    let (source, records) = shards.remove(0);
    let x4 = &sequence["x4"];
    let x4_seq = SequenceNumber::from(x4.as_str());
    let up_to_y2: Vec<StreamRecord> = records
        .iter()
        .filter(|r| r.sequence_number < x4_seq)
        .cloned()
        .collect();

    let flaky = Flaky::default();
    flaky.failing.lock().unwrap().insert("x2".into());
    let harness = Harness::new(&flaky, SqsDeadLetters::new(sqs.clone(), &queue))
        .with_idempotency(
            DynamoIdempotency::new(moto.dynamodb(), "idem"),
            IdempotencyTimes::default(),
        )
        .with_max_attempts(3);

    // When x2 fails transiently
    let batch = KinesisBatch::from_event(&kinesis_event(&source, &up_to_y2)).unwrap();
    let report = harness.run(batch).await;
    // Then x3 waits, Y goes on, and Lambda is told to resume at x2's sequence number
    assert_eq!(failures(&report), [sequence["x2"].clone()]);
    assert_eq!((report.handled, report.failed, report.held_back), (3, 1, 1));
    assert_eq!(flaky.effects_of("usr_x"), ["x1"]);
    assert_eq!(flaky.effects_of("usr_y"), ["y1", "y2"]);
    let item = |id: &str| {
        let dynamodb = moto.dynamodb();
        // `signup_bytes` events come from `/it`.
        let key = tubes_platform::idempotency::event_key("flaky", "/it", id);
        async move {
            dynamodb
                .get_item()
                .table_name("idem")
                .key("key", AttributeValue::S(key))
                .send()
                .await
                .unwrap()
                .item
        }
    };
    assert!(
        item("x3").await.is_none(),
        "a held-back record is not claimed"
    );
    let x2 = item("x2").await.unwrap();
    assert_eq!(x2["status"].as_s().unwrap(), "RELEASED");
    assert_eq!(x2["attempts"].as_n().unwrap(), "1");

    // When the cause is fixed and Lambda redelivers from x2
    flaky.failing.lock().unwrap().clear();
    let report = harness.run(from(&source, &up_to_y2, &sequence["x2"])).await;
    // Then x2 and x3 happen, in order, and y2 (already done) is skipped
    assert!(failures(&report).is_empty(), "{:?}", report.response);
    assert_eq!((report.handled, report.duplicates), (2, 1));
    assert_eq!(flaky.effects_of("usr_x"), ["x1", "x2", "x3"]);
    assert_eq!(flaky.effects_of("usr_y"), ["y1", "y2"]);

    // When x4 fails on every attempt
    flaky.failing.lock().unwrap().insert("x4".into());
    for attempt in 1..=2 {
        let report = harness.run(from(&source, &records, x4)).await;
        assert_eq!(
            failures(&report),
            std::slice::from_ref(x4),
            "attempt {attempt}"
        );
        assert_eq!(report.held_back, 1, "x5 waits (attempt {attempt})");
    }
    // Then its third attempt parks it, with its attempts and payload, and x5 goes on in the same invocation
    let report = harness.run(from(&source, &records, x4)).await;
    assert!(failures(&report).is_empty(), "{:?}", report.response);
    assert_eq!((report.dead_lettered, report.handled), (1, 1));
    assert_eq!(flaky.effects_of("usr_x"), ["x1", "x2", "x3", "x5"]);
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let [message] = received.messages() else {
        panic!("one dead letter: {:?}", received.messages());
    };
    let letter: DeadLetterMessage = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(letter.attempts, 3);
    assert_eq!(&letter.sequence_number, x4);
    assert_eq!(letter.partition_key, "usr_x");
    assert!(
        letter.reason.starts_with("gave up after 3 attempts"),
        "{}",
        letter.reason
    );
    let payload: serde_json::Value = serde_json::from_slice(&letter.payload().unwrap()).unwrap();
    assert_eq!(payload["id"], "x4");
    let attempts = message
        .message_attributes()
        .and_then(|a| a.get("attempts"))
        .and_then(|v| v.string_value());
    assert_eq!(attempts, Some("3"));
}
