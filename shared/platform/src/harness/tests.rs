use std::sync::Mutex;

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use serde_json::{json, Value};
use tubes_contract::{Envelope, EventType};

use super::*;
use crate::dead_letters::MemoryDeadLetters;

const FIXTURE: &str = include_str!("../../../../tests/fixtures/kinesis-event.json");

/// The AWS fixture, with its records replaced by `(partition key, data bytes)` pairs.
fn event(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    let template = v["Records"][0].clone();
    let list = records
        .iter()
        .enumerate()
        .map(|(i, (key, data))| {
            let mut r = template.clone();
            let seq = format!(
                "4956816737333333333333333333333333333333333333333333{:04}",
                i + 1
            );
            r["kinesis"]["partitionKey"] = json!(key);
            r["kinesis"]["sequenceNumber"] = json!(seq);
            r["kinesis"]["data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
            r["eventID"] = json!(format!("shardId-000000000000:{seq}"));
            r
        })
        .collect();
    v["Records"] = Value::Array(list);
    serde_json::to_vec(&v).unwrap()
}

fn signup(user: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/test", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "a@b.co", "name": "A", "signed_up_at": "2026-11-22T10:00:00Z"}
    }))
    .unwrap()
}

fn payment(account: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/test", "type": "payment.received", "subject": account,
        "time": "2026-11-22T10:00:00Z",
        "data": {"payment_id": id, "account_id": account, "amount": 100, "currency": "EUR", "payer_email": "a@b.co"}
    }))
    .unwrap()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TestError(&'static str, bool);

impl Classify for TestError {
    fn is_retryable(&self) -> bool {
        self.1
    }
}

/// Handles user.signed_up; fails the event ids it is told to, retryably or not.
#[derive(Default)]
struct Recorder {
    handled: Mutex<Vec<String>>,
    retryable: Vec<&'static str>,
    permanent: Vec<&'static str>,
}

impl Consumer for Recorder {
    type Error = TestError;
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn subscriptions(&self) -> &'static [EventType] {
        &[EventType::UserSignedUp]
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
        if self.retryable.contains(&envelope.id()) {
            return Err(TestError("transient", true));
        }
        if self.permanent.contains(&envelope.id()) {
            return Err(TestError("never", false));
        }
        self.handled.lock().unwrap().push(envelope.id().to_owned());
        Ok(())
    }
}

fn failures(report: &BatchReport) -> Vec<&str> {
    report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.as_deref())
        .collect()
}

fn seq(i: usize) -> String {
    format!("4956816737333333333333333333333333333333333333333333{i:04}")
}

#[test]
fn decodes_what_aws_lambda_events_decodes() {
    let bytes = event(&[
        ("usr_1", signup("usr_1", "e1")),
        ("acc", payment("acc", "e2")),
    ]);
    let ours: KinesisBatch = serde_json::from_slice(&bytes).unwrap();
    let theirs: KinesisEvent = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(ours.records.len(), theirs.records.len());
    for (o, t) in ours.records.iter().zip(&theirs.records) {
        assert_eq!(o.sequence_number, t.kinesis.sequence_number);
        assert_eq!(o.partition_key, t.kinesis.partition_key);
        let env = o.envelope.as_ref().unwrap();
        assert_eq!(env, &Envelope::decode(&t.kinesis.data.0).unwrap());
    }
    assert_eq!(
        ours.event_source_arn.as_deref(),
        theirs.records[0].event_source_arn.as_deref()
    );
    assert_eq!(ours.shard_id.as_deref(), Some("shardId-000000000000"));
}

#[test]
fn a_batch_without_records_is_an_error_but_an_empty_one_is_not() {
    assert!(serde_json::from_slice::<KinesisBatch>(b"{}").is_err());
    assert!(serde_json::from_slice::<KinesisBatch>(br#"{"Records":[]}"#)
        .unwrap()
        .records
        .is_empty());
}

#[tokio::test]
async fn the_aws_fixture_is_dead_lettered_not_failed() {
    // Given the AWS sample event, whose records hold "Hello World" (not an event)
    let batch: KinesisBatch = serde_json::from_str(FIXTURE).unwrap();
    let dlq = MemoryDeadLetters::default();
    // When the harness runs it
    let report = Harness::new(Recorder::default(), &dlq).run(batch).await;
    // Then both are dead letters with their payload, and the batch succeeds
    assert_eq!(report.dead_lettered, 2);
    assert!(failures(&report).is_empty());
    let letters = dlq.letters();
    assert_eq!(letters[0].payload, b"Hello World");
    assert!(
        letters[0].reason.contains("malformed_json"),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        letters[1].sequence_number,
        "49568167373333333334444444444444444444444444444444444444"
    );
    assert_eq!(letters[0].shard_id.as_deref(), Some("shardId-000000000000"));
}

#[tokio::test]
async fn handles_every_valid_record_in_order() {
    let bytes = event(&[
        ("u1", signup("u1", "a")),
        ("u2", signup("u2", "b")),
        ("u1", signup("u1", "c")),
    ]);
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(Recorder::default(), &dlq);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    // Every record, and u1's in shard order (keys run concurrently, so b may come anywhere).
    let handled = harness.consumer().handled.lock().unwrap().clone();
    let mut sorted = handled.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"]);
    let pos = |id: &str| handled.iter().position(|h| h == id).unwrap();
    assert!(pos("a") < pos("c"), "{handled:?}");
    assert_eq!((report.handled, report.dead_lettered), (3, 0));
    assert!(failures(&report).is_empty());
    let json = serde_json::to_value(&report.response).unwrap();
    assert_eq!(json, json!({"batchItemFailures": []}));
}

/// Counts how many records are in `handle` at once, overall and per key; yields inside `handle` so that
/// concurrent keys really interleave.
#[derive(Default)]
struct Gauge {
    now: Mutex<(usize, HashMap<String, usize>)>,
    max: Mutex<(usize, usize)>,
    order: Mutex<Vec<(String, String)>>,
}

impl Consumer for Gauge {
    type Error = TestError;
    fn name(&self) -> &'static str {
        "gauge"
    }
    fn subscriptions(&self) -> &'static [EventType] {
        &[EventType::UserSignedUp]
    }
    async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
        let key = envelope.subject().to_owned();
        {
            let mut now = self.now.lock().unwrap();
            now.0 += 1;
            let per_key = now.1.entry(key.clone()).or_default();
            *per_key += 1;
            let per_key = *per_key;
            let mut max = self.max.lock().unwrap();
            *max = (max.0.max(now.0), max.1.max(per_key));
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let mut now = self.now.lock().unwrap();
        now.0 -= 1;
        *now.1.get_mut(&key).unwrap() -= 1;
        self.order
            .lock()
            .unwrap()
            .push((key, envelope.id().to_owned()));
        Ok(())
    }
}

#[tokio::test]
async fn keys_run_concurrently_up_to_the_bound_and_each_key_in_order() {
    // 12 keys, 3 records each, interleaved as a shard would hold them.
    let records: Vec<(String, Vec<u8>)> = (0..36)
        .map(|i| {
            let user = format!("u{}", i % 12);
            let payload = signup(&user, &format!("e{i:02}"));
            (user, payload)
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = records
        .iter()
        .map(|(u, p)| (u.as_str(), p.clone()))
        .collect();
    let bytes = event(&refs);
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(Gauge::default(), &dlq).with_concurrency(4);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    assert_eq!(report.handled, 36);
    let (overall, per_key) = *harness.consumer().max.lock().unwrap();
    assert!(
        (2..=4).contains(&overall),
        "at most 4 keys at once, and more than one: {overall}"
    );
    assert_eq!(per_key, 1, "one record of a key at a time");
    let order = harness.consumer().order.lock().unwrap().clone();
    for k in 0..12 {
        let key = format!("u{k}");
        let ids: Vec<&str> = order
            .iter()
            .filter(|(u, _)| *u == key)
            .map(|(_, id)| id.as_str())
            .collect();
        let expected: Vec<String> = (0..3).map(|r| format!("e{:02}", k + 12 * r)).collect();
        assert_eq!(ids, expected, "{key} in shard order");
    }

    // A bound of 1 is the plain sequential loop.
    let sequential = Harness::new(Gauge::default(), &dlq).with_concurrency(0);
    sequential
        .run(serde_json::from_slice(&bytes).unwrap())
        .await;
    assert_eq!(sequential.consumer().max.lock().unwrap().0, 1);
}

#[tokio::test]
async fn a_retryable_failure_holds_back_its_key_and_reports_the_lowest_sequence() {
    // Given u1's second event fails transiently
    let bytes = event(&[
        ("u1", signup("u1", "a")),
        ("u1", signup("u1", "b")),
        ("u2", signup("u2", "c")),
        ("u1", signup("u1", "d")),
        ("u3", signup("u3", "e")),
    ]);
    let consumer = Recorder {
        retryable: vec!["b", "e"],
        ..Recorder::default()
    };
    let dlq = MemoryDeadLetters::default();
    // Without idempotency records there is no count of attempts: nothing is parked for them.
    let harness = Harness::new(consumer, &dlq).with_max_attempts(1);
    // When the batch runs
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    assert!(dlq.letters().is_empty());
    // Then u1's later event waits, u2 goes on, and Lambda is told to resume at b (the lowest failure)
    let mut handled = harness.consumer().handled.lock().unwrap().clone();
    handled.sort(); // keys run concurrently
    assert_eq!(handled, ["a", "c"]);
    assert_eq!((report.failed, report.held_back), (2, 1));
    assert_eq!(failures(&report), [seq(2).as_str()]);
    let json = serde_json::to_value(&report.response).unwrap();
    assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], seq(2));
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_and_the_batch_goes_on() {
    let bytes = event(&[
        ("u1", signup("u1", "a")),
        ("u1", signup("u1", "b")),
        ("u1", b"{not json".to_vec()),
    ]);
    let consumer = Recorder {
        permanent: vec!["a"],
        ..Recorder::default()
    };
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(consumer, &dlq);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    assert_eq!(*harness.consumer().handled.lock().unwrap(), ["b"]);
    assert_eq!(report.dead_lettered, 2);
    assert!(failures(&report).is_empty());
    let letters = dlq.letters();
    assert_eq!(letters[0].event_id.as_deref(), Some("a"));
    assert_eq!(letters[0].event_type, Some("user.signed_up"));
    assert_eq!(letters[0].reason, "never");
    assert_eq!(Envelope::decode(&letters[0].payload).unwrap().id(), "a");
    assert_eq!(letters[1].payload, b"{not json");
    assert_eq!(letters[1].sequence_number, seq(3));
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_stored_is_retried() {
    let bytes = event(&[("u1", b"garbage".to_vec()), ("u2", signup("u2", "b"))]);
    let dlq = MemoryDeadLetters::broken();
    let harness = Harness::new(Recorder::default(), &dlq);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    assert_eq!(failures(&report), [seq(1).as_str()]);
    assert_eq!(*harness.consumer().handled.lock().unwrap(), ["b"]);
}

#[tokio::test]
async fn other_types_are_skipped() {
    let bytes = event(&[("acc", payment("acc", "p")), ("u1", signup("u1", "a"))]);
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(Recorder::default(), &dlq);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    assert_eq!((report.skipped, report.handled), (1, 1));
}

/// One packed record of `events` (single-event JSON, with their types), as ingest packs them for the fixture's
/// shard.
fn packed(events: &[(EventType, Vec<u8>)]) -> Vec<u8> {
    packed_for("shardId-000000000000", events)
}

fn packed_for(shard: &str, events: &[(EventType, Vec<u8>)]) -> Vec<u8> {
    let records: Vec<tubes_contract::Record> = events
        .iter()
        .map(|(_, data)| tubes_contract::Record {
            partition_key: String::new(),
            data: data.clone(),
        })
        .collect();
    let items: Vec<_> = events.iter().map(|(t, _)| *t).zip(&records).collect();
    tubes_contract::codec::pack(&items, shard, "lane").data
}

#[tokio::test]
async fn a_pack_meant_for_another_shard_is_left_out_and_counted() {
    // A writer with a stale shard map meant the second pack for shard 1; Kinesis put it on shard 0 (this
    // batch's), and the writer wrote its events again on shard 1.
    let here = packed(&[(EventType::UserSignedUp, signup("u1", "a"))]);
    let elsewhere = packed_for(
        "shardId-000000000001",
        &[
            (EventType::UserSignedUp, signup("u2", "b")),
            (EventType::UserSignedUp, signup("u1", "c")),
        ],
    );
    let bytes = event(&[("u1", here), ("u2", elsewhere), ("u3", signup("u3", "d"))]);
    let batch: KinesisBatch = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((batch.records.len(), batch.misplaced), (2, 2));
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(Recorder::default(), &dlq);
    let report = harness.run(batch).await;
    let mut handled = harness.consumer().handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "d"]);
    assert_eq!((report.misplaced, report.records()), (2, 4));
    assert!(failures(&report).is_empty());
}

#[tokio::test]
async fn a_packed_record_is_handled_event_by_event_each_under_its_own_key() {
    // One record packs u1's a and b, a payment (not subscribed), u2's c, and bytes that are no event.
    let pack = packed(&[
        (EventType::UserSignedUp, signup("u1", "a")),
        (EventType::UserSignedUp, signup("u1", "b")),
        (EventType::PaymentReceived, payment("acc", "p")),
        (EventType::UserSignedUp, signup("u2", "c")),
        (EventType::UserSignedUp, b"{\"nope\":1}".to_vec()),
    ]);
    let bytes = event(&[("u1", pack), ("u3", signup("u3", "d"))]);
    let batch: KinesisBatch = serde_json::from_slice(&bytes).unwrap();
    let places: Vec<_> = batch
        .records
        .iter()
        .map(|r| (r.partition_key.as_str(), r.sub_sequence_number))
        .collect();
    // Each event under its own subject; what did not decode under the record's key.
    assert_eq!(
        places,
        [
            ("u1", Some(0)),
            ("u1", Some(1)),
            ("acc", Some(2)),
            ("u2", Some(3)),
            ("u1", Some(4)),
            ("u3", None)
        ]
    );
    let consumer = Recorder {
        retryable: vec!["b"],
        ..Recorder::default()
    };
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(consumer, &dlq);
    let report = harness.run(batch).await;
    // b fails: u1's later events wait, the others go on; Lambda redelivers from the packed record.
    let mut handled = harness.consumer().handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "c", "d"]);
    assert_eq!((report.failed, report.held_back, report.skipped), (1, 1, 1));
    assert_eq!(failures(&report), [seq(1).as_str()]);
    assert!(
        dlq.letters().is_empty(),
        "the bad event is u1's, held back behind b"
    );
}

#[tokio::test]
async fn a_dead_letter_from_a_pack_or_an_aggregate_carries_its_event_alone_and_its_place() {
    let pack = packed(&[
        (EventType::UserSignedUp, signup("u1", "a")),
        (EventType::UserSignedUp, signup("u2", "b")),
    ]);
    let aggregate =
        crate::lambda_event::kpl::aggregate(&[("k1", &signup("u3", "c")), ("k2", b"not an event")]);
    let mut damaged = aggregate.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let bytes = event(&[("u1", pack), ("k1", aggregate), ("k9", damaged.clone())]);
    let consumer = Recorder {
        permanent: vec!["b"],
        ..Recorder::default()
    };
    let dlq = MemoryDeadLetters::default();
    let harness = Harness::new(consumer, &dlq);
    let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
    let mut handled = harness.consumer().handled.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "c"]);
    assert_eq!(report.dead_lettered, 3);
    let mut letters = dlq.letters();
    letters.sort_by_key(|l| (l.sequence_number.clone(), l.sub_sequence_number));
    let places: Vec<_> = letters
        .iter()
        .map(|l| {
            (
                l.sequence_number.to_string(),
                l.sub_sequence_number,
                l.partition_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            (seq(1), Some(1), "u2"),
            (seq(2), Some(1), "k2"),
            (seq(3), None, "k9")
        ]
    );
    // Each letter's payload is its event alone, redrivable as a record of its own.
    assert_eq!(Envelope::decode(&letters[0].payload).unwrap().id(), "b");
    assert_eq!(letters[1].payload, b"not an event");
    // A damaged aggregate is parked whole, saying why.
    assert_eq!(letters[2].payload, damaged);
    assert!(letters[2].reason.contains("MD5"), "{}", letters[2].reason);
}

mod idempotent {
    use super::*;
    use std::time::Duration;

    use crate::idempotency::{event_key, payload_hash, Claim, IdempotencyStore, MemoryIdempotency};

    fn hash_of(bytes: &[u8]) -> String {
        payload_hash(&Envelope::decode(bytes).unwrap().content_bytes())
    }

    fn now() -> i64 {
        crate::clock::now_ms()
    }

    #[tokio::test]
    async fn a_batch_delivered_twice_is_handled_once() {
        let bytes = event(&[("u1", signup("u1", "a")), ("u2", signup("u2", "b"))]);
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let harness = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        let first = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        let second = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!((first.handled, first.duplicates), (2, 0));
        assert_eq!((second.handled, second.duplicates), (0, 2));
        let mut handled = harness.consumer().handled.lock().unwrap().clone();
        handled.sort(); // keys run concurrently
        assert_eq!(handled, ["a", "b"]);
        assert!(failures(&second).is_empty());
    }

    /// A packed record redelivered after one of its events failed: the events already handled are skipped,
    /// the failed one handled, each once.
    #[tokio::test]
    async fn a_redelivered_pack_handles_only_what_was_not_handled() {
        let pack = packed(&[
            (EventType::UserSignedUp, signup("u1", "a")),
            (EventType::UserSignedUp, signup("u2", "b")),
            (EventType::UserSignedUp, signup("u1", "c")),
        ]);
        let bytes = event(&[("u1", pack)]);
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let failing = Recorder {
            retryable: vec!["a"],
            ..Recorder::default()
        };
        let first = Harness::new(failing, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        assert_eq!((first.handled, first.failed, first.held_back), (1, 1, 1));
        assert_eq!(failures(&first), [seq(1).as_str()]);
        let fixed = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        let second = fixed.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!((second.handled, second.duplicates), (2, 1));
        assert_eq!(*fixed.consumer().handled.lock().unwrap(), ["a", "c"]);
        assert!(failures(&second).is_empty());
        let key = event_key("recorder", "/test", "c");
        let records = crate::idempotency::ReadRecords::records(&store, std::slice::from_ref(&key))
            .await
            .unwrap();
        assert_eq!(records[&key].notes["sub_sequence_number"], "2");
    }

    /// The event-status view reads what the records say: a parked record names its queue and its place in the
    /// stream; the redrive that handles it leaves it completed, the queue forgotten.
    #[tokio::test]
    async fn a_parked_record_says_where_it_went_until_it_is_handled() {
        use crate::idempotency::{ReadRecords, State};
        let bytes = event(&[("u1", signup("u1", "a"))]);
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let key = event_key("recorder", "/test", "a");
        let failing = Recorder {
            permanent: vec!["a"],
            ..Recorder::default()
        };
        let harness =
            Harness::new(failing, &dlq).with_idempotency(&store, IdempotencyTimes::default());
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!(report.dead_lettered, 1);
        let records = store.records(std::slice::from_ref(&key)).await.unwrap();
        let parked = &records[&key];
        assert_eq!(parked.state, State::Released);
        assert_eq!(parked.parked.as_deref(), Some("memory"));
        assert_eq!(parked.attempts, 1);
        assert_eq!(parked.notes["event_type"], "user.signed_up");
        assert_eq!(parked.notes["partition_key"], "u1");
        assert_eq!(parked.notes["sequence_number"], seq(1));
        assert_eq!(parked.notes["shard_id"], "shardId-000000000000");
        assert!(parked.notes["arrival_ms"].parse::<i64>().unwrap() > 1_400_000_000_000);

        // The fix is deployed and the letter redriven (onto the stream: another place): handled, and the record
        // says so, with the event's first acceptance.
        let redriven = event(&[("u2", signup("u2", "b")), ("u1", signup("u1", "a"))]);
        let fixed = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        let report = fixed.run(serde_json::from_slice(&redriven).unwrap()).await;
        assert_eq!(report.handled, 2);
        let records = store.records(std::slice::from_ref(&key)).await.unwrap();
        let handled = &records[&key];
        assert_eq!(
            (handled.state, handled.parked.as_deref(), handled.attempts),
            (State::Completed, None, 2)
        );
        assert_eq!(handled.notes["sequence_number"], seq(1));
    }

    #[tokio::test]
    async fn a_record_in_progress_elsewhere_is_retried_and_holds_back_its_key_only() {
        let payload = signup("u1", "a");
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        // Another invocation holds u1's record.
        let held = store
            .claim(
                &event_key("recorder", "/test", "a"),
                &hash_of(&payload),
                now(),
                Duration::from_secs(60),
                &[],
            )
            .await;
        assert_eq!(held, Ok(Claim::Acquired { attempt: 1 }));
        let bytes = event(&[
            ("u1", payload),
            ("u1", signup("u1", "b")),
            ("u2", signup("u2", "c")),
        ]);
        let harness = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!(failures(&report), [seq(1)]);
        assert_eq!((report.failed, report.held_back, report.handled), (1, 1, 1));
        assert_eq!(*harness.consumer().handled.lock().unwrap(), ["c"]);
    }

    /// Looks, from inside `handle`, at how long its own claim holds: another claimant at `probe_ms`.
    struct LockProbe<'a> {
        store: &'a MemoryIdempotency,
        probe_ms: i64,
        seen: Mutex<Option<Claim>>,
    }

    impl Consumer for LockProbe<'_> {
        type Error = TestError;
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn subscriptions(&self) -> &'static [EventType] {
            &[EventType::UserSignedUp]
        }
        async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
            let claim = self
                .store
                .claim(
                    &event_key("recorder", envelope.source(), envelope.id()),
                    &hash_of(&signup("u1", "a")),
                    self.probe_ms,
                    Duration::from_secs(60),
                    &[],
                )
                .await
                .unwrap();
            *self.seen.lock().unwrap() = Some(claim);
            Err(TestError("crash-like: leave the claim", true))
        }
    }

    #[tokio::test]
    async fn a_claim_expires_with_the_invocation_not_a_fixed_lock_later() {
        let bytes = event(&[("u1", signup("u1", "a"))]);
        let deadline = now() + 5_000;
        for (probe_ms, expected) in [
            (deadline - 1_000, Claim::InProgress),
            // The harness's claim was the first attempt; the probe's, after the lock, the second.
            (deadline + 2_000, Claim::Acquired { attempt: 2 }),
        ] {
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let probe = LockProbe {
                store: &store,
                probe_ms,
                seen: Mutex::new(None),
            };
            // A 15-minute default lock, but the invocation ends in 5 s.
            let harness =
                Harness::new(probe, &dlq).with_idempotency(&store, IdempotencyTimes::default());
            harness
                .run_until(serde_json::from_slice(&bytes).unwrap(), deadline)
                .await;
            assert_eq!(
                *harness.consumer().seen.lock().unwrap(),
                Some(expected.clone()),
                "another claimant {} ms after the deadline",
                probe_ms - deadline
            );
        }
    }

    #[tokio::test]
    async fn a_retryable_failure_releases_its_claim() {
        let payload = signup("u1", "b");
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let consumer = Recorder {
            retryable: vec!["b"],
            ..Recorder::default()
        };
        let harness =
            Harness::new(consumer, &dlq).with_idempotency(&store, IdempotencyTimes::default());
        let report = harness
            .run(serde_json::from_slice(&event(&[("u1", payload.clone())])).unwrap())
            .await;
        assert_eq!(report.failed, 1);
        let again = store
            .claim(
                &event_key("recorder", "/test", "b"),
                &hash_of(&payload),
                now(),
                Duration::from_secs(60),
                &[],
            )
            .await;
        assert_eq!(
            again,
            Ok(Claim::Acquired { attempt: 2 }),
            "the redelivery can claim it at once, as a second attempt"
        );
    }

    #[tokio::test]
    async fn a_record_that_keeps_failing_is_parked_with_its_attempts() {
        let bytes = event(&[("u1", signup("u1", "b")), ("u1", signup("u1", "c"))]);
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let consumer = Recorder {
            retryable: vec!["b"],
            ..Recorder::default()
        };
        let harness = Harness::new(consumer, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .with_max_attempts(3);
        // Two deliveries: b fails and holds c back.
        for _ in 0..2 {
            let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert_eq!(failures(&report), [seq(1)]);
            assert_eq!((report.failed, report.held_back), (1, 1));
        }
        assert!(dlq.letters().is_empty());
        // The third attempt parks b and goes on to c.
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert!(failures(&report).is_empty(), "{:?}", report.response);
        assert_eq!((report.dead_lettered, report.handled), (1, 1));
        assert_eq!(*harness.consumer().handled.lock().unwrap(), ["c"]);
        let letters = dlq.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 3);
        assert_eq!(letters[0].sequence_number, seq(1));
        assert!(
            letters[0].reason.starts_with("gave up after 3 attempts: "),
            "{}",
            letters[0].reason
        );
    }

    #[tokio::test]
    async fn a_permanent_failure_says_which_attempt_it_was() {
        let bytes = event(&[("u1", signup("u1", "x"))]);
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let flaky = Recorder {
            retryable: vec!["x"],
            ..Recorder::default()
        };
        Harness::new(flaky, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        let broken = Recorder {
            permanent: vec!["x"],
            ..Recorder::default()
        };
        Harness::new(broken, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        let letters = dlq.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 2);
    }

    #[tokio::test]
    async fn a_reused_id_with_another_payload_is_a_dead_letter() {
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let harness = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        harness
            .run(serde_json::from_slice(&event(&[("u1", signup("u1", "a"))])).unwrap())
            .await;
        // Same id "a", other user: another payload.
        let report = harness
            .run(serde_json::from_slice(&event(&[("u9", signup("u9", "a"))])).unwrap())
            .await;
        assert_eq!((report.dead_lettered, report.handled), (1, 0));
        assert!(
            failures(&report).is_empty(),
            "a poison record does not block the shard"
        );
        let letters = dlq.letters();
        assert!(letters[0].reason.contains("different payload"));
        assert_eq!(letters[0].partition_key, "u9");
    }

    #[tokio::test]
    async fn a_dead_lettered_record_is_handled_when_redriven_after_the_fix() {
        let bytes = event(&[("u1", signup("u1", "x"))]);
        let store = MemoryIdempotency::default();
        let dlq = MemoryDeadLetters::default();
        let broken = Recorder {
            permanent: vec!["x"],
            ..Recorder::default()
        };
        let report = Harness::new(broken, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        assert_eq!(report.dead_lettered, 1);
        // The fix is deployed; the redriven record arrives.
        let fixed = Harness::new(Recorder::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default());
        let report = fixed.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!((report.handled, report.duplicates), (1, 0));
        // And only once.
        let report = fixed.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!((report.handled, report.duplicates), (0, 1));
        assert_eq!(*fixed.consumer().handled.lock().unwrap(), ["x"]);
    }

    #[tokio::test]
    async fn a_dead_letter_that_was_not_stored_is_not_marked_done() {
        let payload = signup("u1", "x");
        let store = MemoryIdempotency::default();
        let consumer = || Recorder {
            permanent: vec!["x"],
            ..Recorder::default()
        };
        let broken = MemoryDeadLetters::broken();
        let bytes = event(&[("u1", payload)]);
        let report = Harness::new(consumer(), &broken)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        assert_eq!(failures(&report), [seq(1)]);
        // Redelivered once the queue works: dead-lettered now, not skipped as a duplicate.
        let dlq = MemoryDeadLetters::default();
        let report = Harness::new(consumer(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        assert_eq!((report.dead_lettered, report.duplicates), (1, 0));
    }
}

/// An outage is not a record's fault (module docs, "An outage is not the record's fault").
mod outage {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::classify::Dependency;
    use crate::idempotency::{event_key, payload_hash, IdempotencyStore, MemoryIdempotency};

    const LEDGER: Dependency = Dependency::named("ledger");

    #[derive(Debug, thiserror::Error)]
    #[error("ledger unavailable")]
    struct Down;

    impl Classify for Down {
        fn is_retryable(&self) -> bool {
            true
        }
        fn dependency(&self) -> Option<Dependency> {
            Some(LEDGER)
        }
    }

    /// Handles user.signed_up while its ledger is up; counts the records it was given.
    #[derive(Default)]
    struct Ledgered {
        down: AtomicBool,
        tried: AtomicUsize,
        handled: Mutex<Vec<String>>,
    }

    impl Consumer for Ledgered {
        type Error = Down;
        fn name(&self) -> &'static str {
            "ledgered"
        }
        fn subscriptions(&self) -> &'static [EventType] {
            &[EventType::UserSignedUp]
        }
        async fn handle(&self, envelope: &Envelope) -> Result<(), Down> {
            self.tried.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(Down);
            }
            self.handled.lock().unwrap().push(envelope.id().to_owned());
            Ok(())
        }
    }

    /// Ten keys with two records each: `k{n}` holds `a{n}` then `b{n}`.
    fn batch() -> KinesisBatch {
        let records: Vec<(String, Vec<u8>)> = (0..20)
            .map(|i| {
                let key = format!("k{}", i % 10);
                let id = format!("{}{}", if i < 10 { "a" } else { "b" }, i % 10);
                let payload = signup(&key, &id);
                (key, payload)
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = records
            .iter()
            .map(|(k, p)| (k.as_str(), p.clone()))
            .collect();
        serde_json::from_slice(&event(&refs)).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_stops_the_batch_early_and_waits_before_answering() {
        let dlq = MemoryDeadLetters::default();
        let harness = Harness::new(Ledgered::default(), &dlq).with_concurrency(1);
        harness.consumer().down.store(true, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        let report = harness.run(batch()).await;
        // Three records failed (the threshold), then nothing else started.
        assert_eq!(harness.consumer().tried.load(Ordering::SeqCst), 3);
        assert_eq!((report.failed, report.held_back), (3, 17));
        assert_eq!(failures(&report), [seq(1).as_str()], "from the lowest");
        assert!(dlq.letters().is_empty());
        // It answered only after the cooldown (the backoff of Lambda's retry).
        assert!(started.elapsed() >= BreakerPolicy::default().cooldown);

        // A retry while still down is one probe, which fails: a longer wait.
        let started = tokio::time::Instant::now();
        let report = harness.run(batch()).await;
        assert_eq!(harness.consumer().tried.load(Ordering::SeqCst), 4);
        assert_eq!(failures(&report), [seq(1).as_str()]);
        assert!(started.elapsed() >= 2 * BreakerPolicy::default().cooldown);

        // Back up: the probe is handled, the circuit closes, and the batch runs, every key in order.
        harness.consumer().down.store(false, Ordering::SeqCst);
        let report = harness.run(batch()).await;
        assert_eq!(report.handled, 20);
        assert!(failures(&report).is_empty());
        let handled = harness.consumer().handled.lock().unwrap().clone();
        for k in 0..10 {
            let pos = |id: String| handled.iter().position(|h| *h == id).unwrap();
            assert!(pos(format!("a{k}")) < pos(format!("b{k}")), "{handled:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_the_attempts_parks_nothing_and_loses_nothing() {
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let harness = Harness::new(Ledgered::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .with_max_attempts(2);
        harness.consumer().down.store(true, Ordering::SeqCst);
        // Twenty redeliveries of the batch during the outage, ten times the attempts that would park a record.
        for _ in 0..20 {
            let report = harness.run(batch()).await;
            assert_eq!(report.handled + report.dead_lettered, 0);
            assert!(!failures(&report).is_empty());
        }
        assert!(dlq.letters().is_empty(), "{:?}", dlq.letters());
        // The attempts were given back: the first record's next claim is still its first attempt.
        let first = Envelope::decode(&signup("k0", "a0")).unwrap();
        let claim = store
            .claim(
                &event_key("ledgered", first.source(), first.id()),
                &payload_hash(&first.content_bytes()),
                crate::clock::now_ms(),
                Duration::from_secs(1),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(claim, crate::idempotency::Claim::Acquired { attempt: 1 });
        store
            .release(
                &event_key("ledgered", first.source(), first.id()),
                &payload_hash(&first.content_bytes()),
                crate::clock::now_ms(),
                Duration::from_secs(60),
                Attempt::Forget,
                None,
            )
            .await
            .unwrap();

        // The dependency is back: every record once, nothing parked.
        harness.consumer().down.store(false, Ordering::SeqCst);
        tokio::time::sleep(BreakerPolicy::default().max_cooldown).await;
        let report = harness.run(batch()).await;
        assert_eq!((report.handled, report.dead_lettered), (20, 0));
        assert!(failures(&report).is_empty());
    }

    #[tokio::test]
    async fn a_record_that_keeps_ending_its_invocation_is_parked_unhandled() {
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let payload = signup("u1", "killer");
        let envelope = Envelope::decode(&payload).unwrap();
        let (key, hash) = (
            event_key("ledgered", envelope.source(), envelope.id()),
            payload_hash(&envelope.content_bytes()),
        );
        // Three invocations claimed it and died on it (no completion, no release): their locks lapsed.
        let long_ago = crate::clock::now_ms() - 3_600_000;
        for i in 0..3 {
            store
                .claim(
                    &key,
                    &hash,
                    long_ago + i * 60_000,
                    Duration::from_secs(1),
                    &[],
                )
                .await
                .unwrap();
        }
        let harness = Harness::new(Ledgered::default(), &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .with_max_attempts(3);
        let bytes = event(&[("u1", payload), ("u1", signup("u1", "next"))]);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        // The fourth is not tried: parked with its payload, and its key moves on.
        assert_eq!(harness.consumer().tried.load(Ordering::SeqCst), 1);
        assert_eq!(*harness.consumer().handled.lock().unwrap(), ["next"]);
        assert_eq!((report.dead_lettered, report.handled), (1, 1));
        let letters = dlq.letters();
        assert_eq!(letters[0].event_id.as_deref(), Some("killer"));
        assert_eq!(letters[0].attempts, 3);
        assert!(
            letters[0].reason.contains("ended without an outcome"),
            "{}",
            letters[0].reason
        );
        assert_eq!(Envelope::decode(&letters[0].payload).unwrap(), envelope);
    }

    #[tokio::test]
    async fn the_records_own_retryable_failures_still_park_it() {
        // A failure without a dependency counts, as before: parked at the limit.
        let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
        let consumer = Recorder {
            retryable: vec!["a"],
            ..Recorder::default()
        };
        let harness = Harness::new(consumer, &dlq)
            .with_idempotency(&store, IdempotencyTimes::default())
            .with_max_attempts(2);
        let bytes = event(&[("u1", signup("u1", "a"))]);
        for _ in 0..2 {
            harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        }
        assert_eq!(dlq.letters().len(), 1);
        assert!(dlq.letters()[0]
            .reason
            .starts_with("gave up after 2 attempts"));
    }
}
