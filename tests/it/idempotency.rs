//! Idempotency records on a real DynamoDB emulator (moto): the claim rules, one winner among concurrent claims,
//! TTL attributes, and the harness over them.

use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tubes_contract::EventType;
use tubes_platform::consumer::{consumer_fn, Consumer};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::{
    key, payload_hash, Attempt, Claim, DynamoIdempotency, IdempotencyStore, IdempotencyTimes,
};
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::{Harness, KinesisBatch};
use tubes_tests::Moto;

const LOCK: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(86_400);
const T: i64 = 1_800_000_000_000;

#[tokio::test]
async fn claims_follow_the_rules_on_dynamodb() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    moto.create_table("idem", "key").await;
    let store = DynamoIdempotency::new(client.clone(), "idem");
    let (k, h) = (key("payments", "evt_1"), payload_hash(b"{\"a\":1}"));

    let acquired = |attempt| Ok(Claim::Acquired { attempt });
    assert_eq!(store.claim(&k, &h, T, LOCK, &[]).await, acquired(1));
    assert_eq!(
        store.claim(&k, &h, T + 1, LOCK, &[]).await,
        Ok(Claim::InProgress)
    );
    assert_eq!(
        store.claim(&k, "other", T + 1, LOCK, &[]).await,
        Ok(Claim::Conflict)
    );
    // The holder crashed: once its lock expired, a redelivery takes the record over (a second attempt).
    assert_eq!(
        store.claim(&k, &h, T + 30_001, LOCK, &[]).await,
        acquired(2)
    );
    store
        .complete(&k, &h, 2, T + 30_002, DAY, &[])
        .await
        .unwrap();
    assert_eq!(
        store.claim(&k, &h, T + 40_000, LOCK, &[]).await,
        Ok(Claim::Completed)
    );
    assert_eq!(
        store.claim(&k, "other", T + 40_000, LOCK, &[]).await,
        Ok(Claim::Conflict)
    );

    let item = client
        .get_item()
        .table_name("idem")
        .key("key", AttributeValue::S(k.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
    let ttl: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(
        ttl,
        (T + 30_002 + 86_400_000) / 1000,
        "TTL in epoch seconds"
    );
    assert!(!item.contains_key("lock_expires_ms"));

    assert_eq!(item["attempts"].as_n().unwrap(), "2");

    // A released claim (retryable failure) is free at once and kept for the TTL, so the attempts count on;
    // releasing a completed record does nothing.
    let k2 = key("payments", "evt_2");
    assert_eq!(store.claim(&k2, &h, T, LOCK, &[]).await, acquired(1));
    store
        .release(&k2, &h, T + 1, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    let released = client
        .get_item()
        .table_name("idem")
        .key("key", AttributeValue::S(k2.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(released["status"].as_s().unwrap(), "RELEASED");
    assert_eq!(
        released["expires_at"].as_n().unwrap(),
        &((T + 1 + 86_400_000) / 1000).to_string()
    );
    // Not by another event under the same id, though: a reused id, whatever became of the first.
    assert_eq!(
        store.claim(&k2, "other", T + 2, LOCK, &[]).await,
        Ok(Claim::Conflict)
    );
    assert_eq!(store.claim(&k2, &h, T + 2, LOCK, &[]).await, acquired(2));
    // Someone else's hash cannot release it.
    store
        .release(&k2, "other", T + 3, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    assert_eq!(
        store.claim(&k2, &h, T + 4, LOCK, &[]).await,
        Ok(Claim::InProgress)
    );
    store
        .release(&k, &h, T + 40_001, DAY, Attempt::Keep, None)
        .await
        .unwrap();
    assert_eq!(
        store.claim(&k, &h, T + 40_001, LOCK, &[]).await,
        Ok(Claim::Completed)
    );
    // Past its TTL (DynamoDB deletes expired items late), a completed record is taken as if it were gone, and
    // its attempts count on.
    assert_eq!(
        store
            .claim(&k, &h, T + 30_002 + 86_401_000, LOCK, &[])
            .await,
        acquired(3)
    );
}

/// What the event-status view reads: a record's notes (its first attempt's), the queue it was parked in until
/// the next claim, its state and attempts, through `BatchGetItem` on moto.
#[tokio::test]
async fn records_carry_their_first_notes_and_their_parked_queue_on_dynamodb() {
    use tubes_platform::idempotency::{ReadRecords, State};
    let acquired = |attempt| Ok(Claim::Acquired { attempt });
    let moto = Moto::start().await;
    moto.create_table("idem", "key").await;
    let store = DynamoIdempotency::new(moto.dynamodb(), "idem");
    let (k, h) = (key("payments", "event /shop e1"), payload_hash(b"e1"));
    let first = [
        ("sequence_number", "41".to_owned()),
        ("shard_id", "s0".to_owned()),
    ];
    let redrive = [
        ("sequence_number", "99".to_owned()),
        ("shard_id", "s1".to_owned()),
    ];
    assert_eq!(store.claim(&k, &h, T, LOCK, &first).await, acquired(1));
    store
        .release(
            &k,
            &h,
            T + 1,
            DAY,
            Attempt::Keep,
            Some("tubes-PaymentsDeadLetterQueue"),
        )
        .await
        .unwrap();
    let other = key("signups", "event /shop e1");
    let read = store.records(&[k.clone(), other.clone()]).await.unwrap();
    assert!(!read.contains_key(&other), "no record, no entry");
    let parked = &read[&k];
    assert_eq!(
        (
            parked.state,
            parked.attempts,
            parked.parked.as_deref(),
            parked.lock_expires_ms
        ),
        (
            State::Released,
            1,
            Some("tubes-PaymentsDeadLetterQueue"),
            None
        )
    );
    assert_eq!(parked.notes["sequence_number"], "41");

    // A redrive claims it from elsewhere: the parked mark goes, the first notes stay, through completion.
    assert_eq!(
        store.claim(&k, &h, T + 2, LOCK, &redrive).await,
        acquired(2)
    );
    let working = &store.records(std::slice::from_ref(&k)).await.unwrap()[&k];
    assert_eq!(
        (
            working.state,
            working.parked.as_deref(),
            working.lock_expires_ms
        ),
        (State::InProgress, None, Some(T + 2 + 30_000))
    );
    store
        .complete(&k, &h, 2, T + 3, DAY, &redrive)
        .await
        .unwrap();
    let done = &store.records(std::slice::from_ref(&k)).await.unwrap()[&k];
    assert_eq!(
        (done.state, done.attempts, done.parked.as_deref()),
        (State::Completed, 2, None)
    );
    assert_eq!(
        (
            done.notes["sequence_number"].as_str(),
            done.notes["shard_id"].as_str()
        ),
        ("41", "s0")
    );
    // A first attempt's completion writes its notes whole.
    let k2 = key("payments", "event /shop e2");
    assert_eq!(store.claim(&k2, &h, T, LOCK, &[]).await, acquired(1));
    store
        .complete(&k2, &h, 1, T + 1, DAY, &first)
        .await
        .unwrap();
    let read = store.records(std::slice::from_ref(&k2)).await.unwrap();
    assert_eq!(read[&k2].notes["shard_id"], "s0");
}

#[tokio::test]
async fn of_concurrent_claims_exactly_one_wins() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    moto.create_table("idem", "key").await;
    let store = DynamoIdempotency::new(client, "idem");
    let (k, h) = (key("signups", "evt_race"), payload_hash(b"x"));
    let claims = futures_join(&store, &k, &h, 16).await;
    let first = Ok(Claim::Acquired { attempt: 1 });
    let won = claims.iter().filter(|c| **c == first).count();
    assert_eq!(won, 1, "{claims:?}");
    assert!(claims
        .iter()
        .all(|c| *c == first || *c == Ok(Claim::InProgress)));
}

async fn futures_join(
    store: &DynamoIdempotency,
    k: &str,
    h: &str,
    n: usize,
) -> Vec<Result<Claim, tubes_platform::idempotency::StoreError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, k, h) = (store.clone(), k.to_owned(), h.to_owned());
        tasks.spawn(async move { store.claim(&k, &h, T, LOCK, &[]).await });
    }
    tasks.join_all().await
}

/// A consumer that records the id of each event it handles in `seen`, after `wait` (a round trip).
fn counter(seen: &Mutex<Vec<String>>, wait: Duration) -> impl Consumer + '_ {
    consumer_fn("counter", EventType::ALL, move |envelope| {
        let id = envelope.id().to_owned();
        async move {
            tokio::time::sleep(wait).await;
            seen.lock().unwrap().push(id);
            Ok::<(), Infallible>(())
        }
    })
}

fn batch(ids: &[&str]) -> KinesisBatch {
    let records: Vec<StreamRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| StreamRecord {
            sequence_number: SequenceNumber::from(format!("4959033827149025660855969253836157109592157598913658{i:04}")),
            partition_key: format!("usr_{id}"),
            data: serde_json::to_vec(&serde_json::json!({
                "specversion": "1.0", "id": id, "source": "/it", "type": "user.signed_up", "subject": format!("usr_{id}"),
                "time": "2026-11-22T10:00:00Z",
                "data": {"user_id": format!("usr_{id}"), "email": "ada@example.com", "name": "Ada",
                         "signed_up_at": "2026-11-22T10:00:00Z"}}))
            .unwrap(),
            arrival: 1_795_000_000.123,
        })
        .collect();
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes".into(),
    };
    KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap()
}

#[tokio::test]
async fn the_harness_handles_a_redelivered_batch_once() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    moto.create_table("idem", "key").await;
    let seen = Mutex::default();
    let harness = Harness::new(counter(&seen, Duration::ZERO), LogDeadLetters).with_idempotency(
        DynamoIdempotency::new(client, "idem"),
        IdempotencyTimes::default(),
    );
    let first = harness.run(batch(&["a", "b", "c"])).await;
    // Lambda redelivers from a checkpoint: the batch again, with one new record.
    let second = harness.run(batch(&["a", "b", "c", "d"])).await;
    assert_eq!((first.handled, first.duplicates), (3, 0));
    assert_eq!((second.handled, second.duplicates), (1, 3));
    // Each once (keys run concurrently, so their order may vary).
    let mut handled = seen.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn two_invocations_of_the_same_batch_have_each_effect_once() {
    let moto = Moto::start().await;
    moto.create_table("idem", "key").await;
    // Each record takes a while: the two invocations overlap for real.
    let seen = Mutex::default();
    // Two invocations at once on one batch (a retry after a timeout while the first still runs), each with its
    // own client, as two Lambda instances would have.
    let harness = || {
        Harness::new(counter(&seen, Duration::from_millis(30)), LogDeadLetters).with_idempotency(
            DynamoIdempotency::new(moto.dynamodb(), "idem"),
            IdempotencyTimes::default(),
        )
    };
    let (one, two) = (harness(), harness());
    let ids = ["a", "b", "c", "d", "e", "f"];
    let (r1, r2) = tokio::join!(one.run(batch(&ids)), two.run(batch(&ids)));
    let mut handled = seen.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ids, "each record once across both invocations");
    assert_eq!(r1.handled + r2.handled, ids.len());
    // What one found in progress at the other, it reported for redelivery; the redelivery skips it.
    assert_eq!(
        r1.failed + r2.failed + r1.duplicates + r2.duplicates,
        ids.len(),
        "every record the loser met was done or in progress elsewhere"
    );
    let again = harness().run(batch(&ids)).await;
    assert_eq!((again.handled, again.duplicates), (0, ids.len()));

    // A crash after the effects and their completions, before Lambda got the answer: the batch comes again and
    // nothing happens twice.
    let crashed = harness().run(batch(&["g"])).await;
    drop(crashed);
    let redelivered = harness().run(batch(&["g"])).await;
    assert_eq!((redelivered.handled, redelivered.duplicates), (0, 1));
    assert_eq!(seen.lock().unwrap().len(), ids.len() + 1);
}

/// A consumer that never finishes: the invocation dies (here: is dropped) between the claim and the completion.
fn hangs() -> impl Consumer {
    consumer_fn("counter", EventType::ALL, |_| {
        std::future::pending::<Result<(), Infallible>>()
    })
}

#[tokio::test]
async fn a_record_held_by_a_dead_invocation_is_handled_once_its_claim_lapses_without_a_failure() {
    let moto = Moto::start().await;
    moto.create_table("idem", "key").await;
    let times = IdempotencyTimes {
        lock: Duration::from_secs(2),
        ..IdempotencyTimes::default()
    };
    // Given an invocation that claimed record "a" and died before completing it (its future dropped mid-work)
    let dying = Harness::new(hangs(), LogDeadLetters)
        .with_idempotency(DynamoIdempotency::new(moto.dynamodb(), "idem"), times);
    let deadline = tubes_platform::clock::now_ms() + 60_000;
    let died = tokio::time::timeout(
        Duration::from_millis(500),
        dying.run_until(batch(&["a"]), deadline),
    )
    .await;
    assert!(died.is_err(), "the first invocation never finished");
    let key = key("counter", "event /it a");
    let record = moto
        .dynamodb()
        .get_item()
        .table_name("idem")
        .key("key", AttributeValue::S(key))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(record["status"].as_s().unwrap(), "IN_PROGRESS");

    // When Lambda retries the batch while the dead claim still holds
    let seen = Mutex::default();
    let retry = Harness::new(counter(&seen, Duration::ZERO), LogDeadLetters)
        .with_idempotency(DynamoIdempotency::new(moto.dynamodb(), "idem"), times);
    let deadline = tubes_platform::clock::now_ms() + 60_000;
    let report = retry.run_until(batch(&["a", "b"]), deadline).await;

    // Then the retry waits for the claim to lapse and handles the record: no failure reported, so none of the
    // mapping's retries is spent, and each record's effect happens once.
    assert!(
        report.response.batch_item_failures.is_empty(),
        "{:?}",
        report.response
    );
    assert_eq!((report.handled, report.failed), (2, 0));
    let mut handled = seen.lock().unwrap().clone();
    handled.sort();
    assert_eq!(handled, ["a", "b"]);
}
