//! Dead letters on a real SQS emulator (moto): a poison record lands in the queue with its full payload, its
//! reason and where it came from, and the records after it are handled.

use tubes_contract::EventType;
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::{DeadLetterMessage, SqsDeadLetters, KIND};
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::{Classify, Consumer, Harness, KinesisBatch};
use tubes_tests::{signup_bytes as signup, Moto};

#[derive(Debug, thiserror::Error)]
#[error("account frozen forever")]
struct Frozen;

impl Classify for Frozen {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// Refuses user `usr_bad` for good; handles the others.
fn picky() -> impl Consumer {
    consumer_fn("picky", EventType::ALL, |envelope| {
        std::future::ready(if envelope.subject() == "usr_bad" {
            Err(Frozen)
        } else {
            Ok(())
        })
    })
}

fn record(i: usize, user: &str, data: Vec<u8>) -> StreamRecord {
    StreamRecord {
        sequence_number: SequenceNumber::from(format!(
            "4959033827149025660855969253836157109592157598913658{i:04}"
        )),
        partition_key: user.to_owned(),
        data,
        arrival: 1_795_000_000.123,
    }
}

#[tokio::test]
async fn poison_records_land_in_the_queue_with_their_payload_and_do_not_block() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = sqs
        .create_queue()
        .queue_name("picky-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let records = vec![
        record(1, "usr_bad", signup("evt_bad", "usr_bad")),
        record(2, "usr_x", b"\xff not an event".to_vec()),
        record(3, "usr_ok", signup("evt_ok", "usr_ok")),
    ];
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000003".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes".into(),
    };
    let batch: KinesisBatch = KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap();
    let report = Harness::new(picky(), SqsDeadLetters::new(sqs.clone(), &url))
        .run(batch)
        .await;
    assert_eq!((report.dead_lettered, report.handled), (2, 1));
    assert!(report.response.batch_item_failures.is_empty());

    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let mut letters: Vec<(DeadLetterMessage, Option<String>)> = received
        .messages()
        .iter()
        .map(|m| {
            let consumer = m
                .message_attributes()
                .and_then(|a| a.get("consumer"))
                .and_then(|v| v.string_value())
                .map(str::to_owned);
            (serde_json::from_str(m.body().unwrap()).unwrap(), consumer)
        })
        .collect();
    letters.sort_by(|a, b| a.0.sequence_number.cmp(&b.0.sequence_number));
    assert_eq!(letters.len(), 2);
    let (bad, attr) = &letters[0];
    assert_eq!(bad.kind, KIND);
    assert_eq!(attr.as_deref(), Some("picky"));
    assert_eq!(bad.event_id.as_deref(), Some("evt_bad"));
    assert_eq!(bad.event_type.as_deref(), Some("user.signed_up"));
    assert_eq!(bad.reason, "account frozen forever");
    assert_eq!(bad.attempts, 1, "parked at its first attempt");
    assert_eq!(bad.shard_id.as_deref(), Some("shardId-000000000003"));
    assert_eq!(bad.partition_key, "usr_bad");
    let payload: serde_json::Value = serde_json::from_slice(&bad.payload().unwrap()).unwrap();
    assert_eq!(payload["id"], "evt_bad");
    let (undecodable, _) = &letters[1];
    assert_eq!(undecodable.payload().unwrap(), b"\xff not an event");
    assert!(undecodable.event_id.is_none());
    assert!(
        undecodable.reason.contains("invalid event"),
        "{}",
        undecodable.reason
    );
}
