//! Event store and read side figures on the real stores (`make bench-event-store`): moto's S3 and DynamoDB and
//! kinesis-local on this machine, so every round trip is a loopback one.
//!
//! - **Archive**: the archive function over `EVENTS` events in batches of 1,000 (the template's `BatchSize`):
//!   time per invocation (median, p99) against the baseline of the same invocation that writes nowhere (its
//!   objects built and compressed, not put): what S3 adds; records/s per invocation; objects and bytes per 10,000
//!   events.
//! - **Rebuild**: every archived event folded into a fresh read model version (`tubes-replay --to-read-model`):
//!   the time to read and plan the archive, and to fold it, in events/s.
//! - **Replay onto the stream**: `REPLAYED` of them (`tubes-replay --to-stream`, waves of one event per key).
//! - **Query**: `GET /accounts/{id}` answered by the query handler over the rebuilt table, p50 and p99 of 2,000
//!   requests, against a `GetItem` of the same document (the baseline: what the table itself costs).
//!
//! Usage: cargo run --release -p tubes-tests --example event_store_figures [-- EVENTS [REPLAYED]]

// A measurement program: a failed setup step is a failed run, with its message.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use lambda_http::Request;
use serde_json::json;
use tubes_archive::Archive;
use tubes_ops::replay::{self, Plan, ReadModelSink, ReplayState, Selection, StreamSink};
use tubes_platform::archive::{ArchiveError, ObjectStore, S3Objects};
use tubes_platform::read_model::{DynamoReadModels, ReadModelStore};
use tubes_platform::KinesisPublisher;
use tubes_query::{Query, Readers};
use tubes_tests::{history, KinesisLocal, Moto};

/// An object store that takes every object and keeps none: the baseline invocation.
struct Nowhere;

impl ObjectStore for Nowhere {
    async fn put(&self, _key: &str, body: Vec<u8>) -> Result<(), ArchiveError> {
        std::hint::black_box(body);
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let replayed: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket("archive").send().await.unwrap();
    let workload = history::workload(events, 2_000);
    let batches = history::batches(&workload, 1_000);

    // Archive: candidate (S3) and baseline (nowhere), alternating per batch.
    let archive = Archive::new(S3Objects::new(s3.clone(), "archive"));
    let baseline = Archive::new(Nowhere);
    let (mut with_s3, mut without) = (Vec::new(), Vec::new());
    let (mut objects, mut bytes) = (0, 0);
    for batch in &batches {
        let started = Instant::now();
        let report = baseline.run(batch).await;
        without.push(started.elapsed());
        assert!(report.error.is_none());
        let started = Instant::now();
        let report = archive.run(batch).await;
        with_s3.push(started.elapsed());
        assert!(report.error.is_none(), "{:?}", report.error);
        objects += report.objects;
        bytes += report.bytes;
    }
    with_s3.sort();
    without.sort();
    let per_10k = |n: usize| n as f64 * 10_000.0 / events as f64;
    println!(
        "archive: {} invocations of 1,000 records: {:.1} ms median, {:.1} ms p99 ({:.0} records/s per invocation); \
         without S3 {:.1} ms median: S3 is {:.2}x; {:.1} objects and {:.0} KiB per 10,000 events",
        batches.len(),
        ms(percentile(&with_s3, 0.5)),
        ms(percentile(&with_s3, 0.99)),
        1_000.0 / percentile(&with_s3, 0.5).as_secs_f64(),
        ms(percentile(&without, 0.5)),
        percentile(&with_s3, 0.5).as_secs_f64() / percentile(&without, 0.5).as_secs_f64(),
        per_10k(objects),
        per_10k(bytes) / 1024.0
    );

    // Rebuild: read + plan, then fold into a fresh version.
    moto.create_table("read-models", "pk").await;
    let store = DynamoReadModels::new(moto.dynamodb(), "read-models");
    let started = Instant::now();
    let records = replay::read_archive(&s3, "archive", &Selection::default())
        .await
        .unwrap();
    let plan = Plan::new(records, &Selection::default());
    let read = started.elapsed();
    assert_eq!(plan.len(), events);
    let state_file =
        std::env::temp_dir().join(format!("tubes-figures-{}.json", std::process::id()));
    let sink = ReadModelSink::new(&store, "v1");
    let mut state = ReplayState::default();
    let started = Instant::now();
    replay::run(
        &plan,
        &sink,
        &mut state,
        &state_file,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let fold = started.elapsed();
    println!(
        "rebuild: {events} archived events read and planned in {:.1} s ({:.0} events/s), folded into a fresh \
         version in {:.1} s ({:.0} events/s); {:.1} s in all",
        read.as_secs_f64(),
        events as f64 / read.as_secs_f64(),
        fold.as_secs_f64(),
        events as f64 / fold.as_secs_f64(),
        (read + fold).as_secs_f64()
    );

    // Replay onto the stream: the first `replayed` events of the plan's keys.
    let kinesis = KinesisLocal::start().await;
    kinesis.create_stream("tubes", 4).await;
    let part = Plan::new(
        history::batches(&workload[..replayed.min(events)], 1_000)
            .into_iter()
            .flat_map(|b| {
                b.records
                    .into_iter()
                    .map(|r| tubes_platform::archive::ArchivedRecord {
                        at: tubes_platform::archive::Coordinates {
                            partition_key: r.partition_key,
                            shard_id: "shardId-000000000000".into(),
                            sequence_number: r.sequence_number.into_string(),
                            sub_sequence_number: None,
                            arrival: tubes_platform::archive::Coordinates::arrival_from(r.arrival),
                        },
                        content: r
                            .envelope
                            .map_err(|_| tubes_platform::archive::Undecodable {
                                raw: Vec::new(),
                                error: String::new(),
                            }),
                    })
            }),
        &Selection::default(),
    );
    let sink = StreamSink::new(KinesisPublisher::new(kinesis.client(), "tubes"));
    let mut state = ReplayState {
        id: "rpl_figures".into(),
        ..ReplayState::default()
    };
    let _ = std::fs::remove_file(&state_file);
    let started = Instant::now();
    replay::run(
        &part,
        &sink,
        &mut state,
        &state_file,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let sent = started.elapsed();
    println!(
        "replay onto the stream: {} events over {} keys in {:.1} s ({:.0} events/s)",
        part.len(),
        part.by_key().len(),
        sent.as_secs_f64(),
        part.len() as f64 / sent.as_secs_f64()
    );
    let _ = std::fs::remove_file(&state_file);

    // Query: the handler over the rebuilt table, against GetItem of the same document.
    let (key, hash) = tubes_platform::api_key::mint("bench", "k1", [3; 32]).unwrap();
    let readers =
        Readers::parse(&json!({"bench": {"api_keys": {"k1": hash.to_string()}}}).to_string())
            .unwrap();
    let query = Query::new(&store, readers);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/apigw-http-v2-request.json")).unwrap();
    let request = |path: &str| -> Request {
        let mut v = fixture.clone();
        v["requestContext"]["http"]["method"] = json!("GET");
        v["requestContext"]["http"]["path"] = json!(path);
        v["rawPath"] = json!(path);
        v["body"] = serde_json::Value::Null;
        v["headers"]["authorization"] = json!(format!("Bearer {key}"));
        lambda_http::request::from_str(&v.to_string()).unwrap()
    };
    let (mut handler, mut get) = (Vec::new(), Vec::new());
    for i in 0..2_000 {
        let account = format!("acc_{}", (i * 7) % 2_000 / 4 * 4);
        let req = request(&format!("/accounts/{account}"));
        let started = Instant::now();
        let response = query.handle(&req).await;
        handler.push(started.elapsed());
        assert_eq!(response.status(), 200, "{account}");
        let started = Instant::now();
        let doc = store.get(&format!("accounts#v1#{account}")).await.unwrap();
        get.push(started.elapsed());
        assert!(doc.is_some());
    }
    handler.sort();
    get.sort();
    println!(
        "query: GET /accounts/{{id}} p50 {:.2} ms, p99 {:.2} ms; GetItem of the same document p50 {:.2} ms, \
         p99 {:.2} ms: the handler is {:.2}x the read at p50",
        ms(percentile(&handler, 0.5)),
        ms(percentile(&handler, 0.99)),
        ms(percentile(&get, 0.5)),
        ms(percentile(&get, 0.99)),
        percentile(&handler, 0.5).as_secs_f64() / percentile(&get, 0.5).as_secs_f64()
    );
}
