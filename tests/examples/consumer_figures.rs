//! Consumer figures on the real stores (`make bench-consumer`): records/s per invocation of the consumer harness
//! over a 100-record batch (Lambda's default batch size for our mappings) to a consumer that does nothing, with
//! idempotency records in DynamoDB (moto: a claim and a completion per record) against the same harness without
//! them, each with 1 and 8 partition keys at once. Rounds alternate between candidate and baseline, and each
//! figure is the median; moto runs on this machine, so the round trips are loopback ones (a lower bound of what
//! DynamoDB costs from Lambda, where one is a few milliseconds).
//!
//! Usage: cargo run --release -p tubes-tests --example consumer_figures [-- ROUNDS]

// A measurement program: a failed setup step is a failed run, with its message.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Instant;

use serde_json::json;
use tubes_contract::EventType;
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::DynamoIdempotency;
use tubes_platform::idempotency::IdempotencyTimes;
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::{Consumer, Harness, KinesisBatch};
use tubes_tests::Moto;

/// Handles every event by doing nothing: the figures are the harness's and the store's.
fn noop() -> impl Consumer {
    consumer_fn("bench", EventType::ALL, |envelope| {
        std::hint::black_box(envelope.id());
        std::future::ready(Ok::<(), Infallible>(()))
    })
}

const RECORDS: usize = 100;

/// A 100-record batch whose event ids start at `round * RECORDS` (fresh ids: every record is claimed).
fn batch(round: usize) -> KinesisBatch {
    let records: Vec<StreamRecord> = (0..RECORDS)
        .map(|i| {
            let n = round * RECORDS + i;
            StreamRecord {
                sequence_number: SequenceNumber::from(format!("495903382714902566085596925383615710959215759891365{n:05}")),
                partition_key: format!("acc_{}", i % 25),
                data: serde_json::to_vec(&json!({
                    "specversion": "1.0", "id": format!("evt_{n}"), "source": "/bench", "type": "payment.received",
                    "subject": format!("acc_{}", i % 25), "time": "2026-11-22T10:00:00Z",
                    "data": {"payment_id": format!("pay_{n}"), "account_id": format!("acc_{}", i % 25),
                             "amount": 100, "currency": "EUR", "payer_email": "bench@example.com"}}))
                .unwrap(),
                arrival: 1_795_000_000.0,
            }
        })
        .collect();
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/bench".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::000000000000:role/bench".into(),
    };
    KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let moto = Moto::start().await;
    let ddb = moto.dynamodb();
    moto.create_table("idem", "key").await;

    println!(
        "consumer harness, {RECORDS}-record batches, {rounds} rounds (median; moto on loopback)\n"
    );
    let mut next = 0;
    for keys in [1, 8] {
        let plain = Harness::new(noop(), LogDeadLetters).with_concurrency(keys);
        let idempotent = Harness::new(noop(), LogDeadLetters)
            .with_concurrency(keys)
            .with_idempotency(
                DynamoIdempotency::new(ddb.clone(), "idem"),
                IdempotencyTimes::default(),
            );
        let (mut with, mut without, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=rounds {
            next += 1;
            let (b1, b2) = (batch(next), batch(next));
            let t = Instant::now();
            let r = plain.run(b1).await;
            let base = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let c = idempotent.run(b2).await;
            let cand = t.elapsed().as_secs_f64();
            assert_eq!(
                (r.handled, c.handled),
                (RECORDS, RECORDS),
                "every record handled"
            );
            if round == 0 {
                continue; // warm-up
            }
            without.push(RECORDS as f64 / base);
            with.push(RECORDS as f64 / cand);
            ratios.push(cand / base);
        }
        println!(
            "{keys} key(s) at once: with idempotency {:>8.0} records/s per invocation, without {:>9.0}; ratio {:.1}x",
            median(with),
            median(without),
            median(ratios)
        );
    }
}
