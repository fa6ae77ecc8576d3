//! Replay from the event store (`tubes_ops::replay`) on real parts: the archive in moto's S3, written by the
//! archive function; read models in moto's DynamoDB; the stream on kinesis-local; the payments consumer with its
//! ledger and idempotency records on moto.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use serde_json::Value;
use tubes_archive::Archive;
use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::Payments;
use tubes_consumer_projections::Projections;
use tubes_contract::Envelope;
use tubes_ops::replay::{self, Ended, Plan, ReadModelSink, ReplayState, Selection, StreamSink};
use tubes_platform::archive::S3Objects;
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::{DynamoIdempotency, IdempotencyTimes};
use tubes_platform::lambda_event::{kinesis_event, SequenceNumber, StreamRecord};
use tubes_platform::publish::MemoryPublisher;
use tubes_platform::read_model::{DynamoReadModels, MemoryReadModels, ReadModelStore, Stored};
use tubes_platform::{Harness, KinesisBatch, KinesisPublisher};
use tubes_tests::{history, KinesisLocal, Moto};

const BUCKET: &str = "archive";

async fn archive(moto: &Moto, batches: &[KinesisBatch]) {
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let archive = Archive::new(S3Objects::new(s3, BUCKET));
    for batch in batches {
        let report = archive.run(batch).await;
        assert!(report.error.is_none(), "{:?}", report.error);
    }
}

fn state_file(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("replay-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn documents<S: ReadModelStore>(
    store: &S,
    keys: &[String],
    version: &str,
) -> BTreeMap<String, Stored> {
    let mut out = BTreeMap::new();
    for key in keys {
        for model in ["accounts", "users"] {
            let pk = format!("{model}#{version}#{key}");
            if let Some(doc) = store.get(&pk).await.unwrap() {
                out.insert(format!("{model}#{key}"), doc);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_10000_events_into_a_fresh_read_model_version_gives_the_live_models_state() {
    let moto = Moto::start().await;
    let events = history::workload(10_000, 200);
    let batches = history::batches(&events, 500);
    archive(&moto, &batches).await;

    // The live models, as the projections function folded the stream.
    let live = MemoryReadModels::default();
    let harness = Harness::new(Projections::new(&live), LogDeadLetters);
    for batch in batches {
        let report = harness.run(batch).await;
        assert_eq!(report.failed, 0);
    }

    // Rebuilt from the event store into v2 of the real table.
    moto.create_table("read-models", "pk").await;
    let store = DynamoReadModels::new(moto.dynamodb(), "read-models");
    let records = replay::read_archive(&moto.s3(), BUCKET, &Selection::default())
        .await
        .unwrap();
    let plan = Plan::new(records, &Selection::default());
    assert_eq!(plan.len(), 10_000);
    let sink = ReadModelSink::new(&store, "v2");
    let file = state_file("rebuild.json");
    let mut state = ReplayState {
        id: replay::new_id(),
        ..ReplayState::default()
    };
    let started = std::time::Instant::now();
    let ended = replay::run(
        &plan,
        &sink,
        &mut state,
        &file,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "rebuild: 10,000 archived events into a fresh version on moto in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(ended, Ended::Done);

    let keys: Vec<String> = (0..200)
        .map(|k| {
            if k % 4 == 3 {
                format!("usr_{k}")
            } else {
                format!("acc_{k}")
            }
        })
        .collect();
    let want = documents(&live, &keys, "v1").await;
    let got = documents(&store, &keys, "v2").await;
    assert_eq!(want.len(), 200);
    for (key, doc) in &want {
        let rebuilt = got
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from v2"));
        assert_eq!(
            (&rebuilt.doc, &rebuilt.seq, rebuilt.applied),
            (&doc.doc, &doc.seq, doc.applied),
            "{key}"
        );
    }
    assert_eq!(got.len(), want.len());

    // Made live: the pointers name v2 and readers read it (moto's scan and pointer items, for real).
    let report = replay::switch(
        &store,
        &["accounts", "users"],
        "v2",
        || async { Ok(()) },
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(report.rounds, 1);
    assert_eq!(store.documents("accounts", "v2").await.unwrap().len(), 150);
    assert_eq!(store.documents("users", "v2").await.unwrap().len(), 50);
    let pointer = store.pointer("accounts").await.unwrap().unwrap();
    assert_eq!((pointer.live.as_str(), pointer.paused), ("v2", false));
    let readers = tubes_platform::read_model::ReadModels::new(&store);
    let served = readers
        .document("accounts", "acc_0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served.version, "v2");
    assert_eq!(served.doc, want["accounts#acc_0"].doc);

    // Replayed again into the same version: every event already applied, nothing changes.
    let mut again = ReplayState::default();
    replay::run(
        &plan,
        &sink,
        &mut again,
        &state_file("again.json"),
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(documents(&store, &keys, "v2").await, got);
}

/// Every record of the stream, as (partition key, envelope), in each shard's order.
async fn stream_events(kinesis: &KinesisLocal, stream: &str, arn: &str) -> Vec<(String, Envelope)> {
    kinesis
        .read_all(stream, arn)
        .await
        .into_iter()
        .flat_map(|(_, records)| records)
        .map(|r| (r.partition_key.clone(), Envelope::decode(&r.data).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_onto_the_stream_stopped_and_resumed_sends_each_event_once_in_key_order_and_repeats_no_effect(
) {
    let moto = Moto::start().await;
    let kinesis = KinesisLocal::start().await;
    let arn = kinesis.create_stream("tubes", 2).await;
    let events: Vec<Value> = history::workload(600, 40)
        .into_iter()
        .filter(|e| {
            e["type"].as_str().unwrap().starts_with("account.") || e["type"] == "payment.received"
        })
        .collect();
    let batches = history::batches(&events, 100);
    archive(&moto, &batches).await;

    // The payments consumer handled the originals: ledger and idempotency records on moto.
    moto.create_table("ledger", "pk").await;
    moto.create_table("idempotency", "key").await;
    let published = MemoryPublisher::default();
    let harness = Harness::new(
        Payments::new(DynamoLedger::new(moto.dynamodb(), "ledger"), &published),
        LogDeadLetters,
    )
    .with_idempotency(
        DynamoIdempotency::new(moto.dynamodb(), "idempotency"),
        IdempotencyTimes::default(),
    );
    for batch in batches {
        let report = harness.run(batch).await;
        assert_eq!(report.failed + report.dead_lettered, 0);
    }
    let ledger_before = tubes_tests::scan_table(&moto.dynamodb(), "ledger").await;
    let outcomes_before = published.written().len();
    assert!(outcomes_before > 0, "the originals decided payments");

    // Replay the account events onto the stream, stopped after 150 and resumed.
    let selection = Selection::default();
    let records = replay::read_archive(&moto.s3(), BUCKET, &selection)
        .await
        .unwrap();
    let plan = Plan::new(records, &selection);
    let planned = plan.len();
    let sink = StreamSink::new(KinesisPublisher::new(kinesis.client(), "tubes"));
    let file = state_file("stream.json");
    let mut state = ReplayState {
        id: "rpl_test".into(),
        ..ReplayState::default()
    };
    let ended = replay::run(
        &plan,
        &sink,
        &mut state,
        &file,
        Some(150),
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(ended, Ended::Stopped);
    let first_part = state.events;
    assert!(first_part > 0 && first_part <= 150);
    let mut resumed = ReplayState::load(&file).unwrap().unwrap();
    let ended = replay::run(
        &plan,
        &sink,
        &mut resumed,
        &file,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((ended, resumed.events), (Ended::Done, planned));

    // On the stream: each archived event once, marked, and each key's in the original order.
    let replayed = stream_events(&kinesis, "tubes", &arn).await;
    assert_eq!(
        replayed.len(),
        planned,
        "each event sent once, stop and resume included"
    );
    let mut seen = HashSet::new();
    let mut last: HashMap<String, SequenceNumber> = HashMap::new();
    for (key, envelope) in &replayed {
        let (id, original) = envelope.replay().expect("marked replayed");
        assert_eq!(id, "rpl_test");
        assert!(seen.insert(original.to_owned()), "{original} twice");
        let original = SequenceNumber::from(original);
        if let Some(previous) = last.insert(key.clone(), original.clone()) {
            assert!(previous < original, "{key}: {previous} then {original}");
        }
    }

    // Planned again from the archive and the stream (which now holds the replayed records, marked): each event
    // once, at its original place.
    let both = Plan::from_sources(
        &moto.s3(),
        BUCKET,
        Some((&kinesis.client(), "tubes")),
        &selection,
    )
    .await
    .unwrap();
    assert_eq!(both.len(), planned);
    assert_eq!(both.by_key(), plan.by_key());

    // The consumer that handled them gets the replayed records: it skips every one, debits nothing, publishes
    // nothing (so notifications would e-mail nothing).
    let records: Vec<StreamRecord> = kinesis
        .read_all("tubes", &arn)
        .await
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    let replay_batch =
        KinesisBatch::from_event(&kinesis_event(&history::source(), &records)).unwrap();
    let report = harness.run(replay_batch).await;
    assert_eq!(report.duplicates, planned, "{report:?}");
    assert_eq!(report.replayed, planned, "counted apart (RecordsReplayed)");
    assert_eq!(report.handled, 0);
    assert_eq!(
        tubes_tests::scan_table(&moto.dynamodb(), "ledger").await,
        ledger_before
    );
    assert_eq!(published.written().len(), outcomes_before);
}

/// On the whole local stack: events the stream still retains (`read_stream`), replayed straight to the real
/// payments and notifications functions that handled them (`FunctionSink`, as `tubes-replay --to-function`
/// does): every one is skipped, nothing is debited or published again, no second e-mail goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_straight_to_the_functions_that_handled_the_events_debits_and_mails_nothing_again()
{
    use std::time::{Duration, Instant};

    use serde_json::json;
    use tubes_ops::replay::FunctionSink;
    use tubes_platform::mail::OutboxMailer;
    use tubes_tests::{LocalStack, REGION};

    const STREAM: &str = "tubes-EventStream";
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let http = reqwest::Client::new();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (account, payer) = (format!("acc_{run}"), format!("payer_{run}@example.com"));
    let source = "/it/replay-fn";
    for (ty, data) in [
        (
            "account.opened",
            json!({"account_id": account, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}),
        ),
        (
            "account.credited",
            json!({"credit_id": format!("cr_{run}"), "account_id": account, "amount": 5000,
                                    "currency": "EUR", "credited_at": "2026-11-22T09:30:00Z"}),
        ),
        (
            "payment.received",
            json!({"payment_id": format!("pay_{run}"), "account_id": account, "amount": 1250,
                                    "currency": "EUR", "payer_email": payer}),
        ),
    ] {
        stack
            .post_event(
                &http,
                &json!({"specversion": "1.0", "source": source, "type": ty, "subject": account, "data": data}),
            )
            .await;
    }
    // Handled: the payment debited and its receipt e-mailed, once.
    let outbox = OutboxMailer::new(stack.state.join("outbox.jsonl"));
    let mails = || outbox.read().iter().filter(|e| e.to == payer).count();
    let deadline = Instant::now() + Duration::from_secs(240);
    while mails() == 0 {
        assert!(Instant::now() < deadline, "the receipt never went out");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ddb = stack.dynamodb();
    let kinesis = stack.kinesis();
    let ledger = tubes_tests::scan_table(&ddb, "tubes-LedgerTable").await;
    assert!(
        ledger.keys().any(|k| k.contains(&account)),
        "the ledger holds the account"
    );
    let on_stream =
        |records: Vec<(tubes_platform::lambda_event::BatchSource, Vec<StreamRecord>)>| {
            records.iter().map(|(_, r)| r.len()).sum::<usize>()
        };
    let stream_before = on_stream(tubes_tests::read_stream(&kinesis, STREAM, "").await);

    // Replay the account's events, read from the stream, to payments, then to notifications.
    let selection = Selection {
        subject: Some(account.clone()),
        ..Selection::default()
    };
    let records = replay::read_stream(&kinesis, STREAM, &selection)
        .await
        .unwrap();
    let plan = Plan::new(records, &selection);
    let types = plan.by_type();
    assert_eq!(
        types.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "account.credited",
            "account.opened",
            "payment.processed",
            "payment.received"
        ],
        "what the senders posted and what payments published, each once"
    );
    let lambda = stack.lambda();
    for function in ["tubes-consumer-payments", "tubes-consumer-notifications"] {
        let sink = FunctionSink::new(lambda.clone(), function, "", REGION);
        let mut state = ReplayState {
            id: format!("rpl_{run}"),
            ..ReplayState::default()
        };
        let ended = replay::run(
            &plan,
            &sink,
            &mut state,
            &state_file(&format!("function-{function}-{run}.json")),
            None,
            &|| false,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(
            (ended, state.events),
            (Ended::Done, plan.len()),
            "{function}"
        );
    }
    // The functions got them (their logs say so) and skipped what they had handled.
    let skipped = stack.function_log(&[
        "duplicate: already handled",
        source,
        "tubes-consumer-payments",
    ]);
    assert_eq!(
        skipped.len(),
        3,
        "payments skipped the three it handled: {skipped:?}"
    );
    let receipts = stack.function_log(&[
        "duplicate: already handled",
        "payment.processed",
        "tubes-consumer-notifications",
    ]);
    assert_eq!(
        receipts.len(),
        1,
        "notifications skipped the outcome it e-mailed: {receipts:?}"
    );
    // A replay to a function that does not exist is a clear error.
    let missing = FunctionSink::new(lambda.clone(), "tubes-consumer-nope", "", REGION);
    let err = replay::run(
        &plan,
        &missing,
        &mut ReplayState::default(),
        &state_file(&format!("function-nope-{run}.json")),
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(err.contains("no function tubes-consumer-nope"), "{err}");

    // Nothing happened again: the ledger as it was, no new record on the stream, one e-mail.
    assert_eq!(
        tubes_tests::scan_table(&ddb, "tubes-LedgerTable").await,
        ledger
    );
    assert_eq!(
        on_stream(tubes_tests::read_stream(&kinesis, STREAM, "").await),
        stream_before
    );
    assert_eq!(mails(), 1);
}
