//! Packing on the Kinesis emulator (`make bench-packing`): ingest, in process, writes 100-event batches of
//! `payment.received` (about 200 bytes each as sent) to a one-shard kinesis-local stream through the real
//! `KinesisPublisher`, first a record per event, then packed, for the same number of requests, 4 at once; then it
//! reads the shard back. Kinesis caps a shard at 1,000 records/s and 1 MiB/s; the emulator caps nothing, so the
//! figure that matters is how many events a shard takes under those caps given the records and bytes each event
//! took here, beside what this machine pushed through.
//!
//! Usage: cargo run --release -p tubes-tests --example packing_figures [-- REQUESTS]

// A measurement program: a failed setup step is a failed run, with its message.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use futures_util::stream::{self, StreamExt as _};
use lambda_http::http::StatusCode;
use serde_json::Value;
use tubes_ingest::{Config, Ingest};
use tubes_platform::KinesisPublisher;
use tubes_tests::{http_v2_post, open_ingest_config, open_sources, payment_sent, KinesisLocal};

const PER_REQUEST: usize = 100;

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let kinesis = KinesisLocal::start().await;
    println!("{requests} requests of {PER_REQUEST} payment.received events to a one-shard stream, 4 at once\n");
    println!("| | events/s here | records per event | bytes per event | events/s a shard takes (1,000 rec/s, 1 MiB/s) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, pack_max_bytes) in [
        ("a record per event", 0),
        ("packed", tubes_ingest::config::DEFAULT_PACK_MAX_BYTES),
    ] {
        let stream = format!("packing-{pack_max_bytes}");
        let arn = kinesis.create_stream(&stream, 1).await;
        let config = Config {
            pack_max_bytes,
            ..open_ingest_config(&stream)
        };
        let ingest = Ingest::new(
            KinesisPublisher::new(kinesis.client(), &stream),
            &config,
            open_sources(),
        );
        let bodies: Vec<String> = (0..requests)
            .map(|r| {
                Value::Array(
                    (0..PER_REQUEST)
                        .map(|i| payment_sent("payment.received", r * PER_REQUEST + i))
                        .collect(),
                )
                .to_string()
            })
            .collect();
        let started = Instant::now();
        let statuses: Vec<StatusCode> = stream::iter(&bodies)
            .map(|body| {
                let ingest = &ingest;
                async move {
                    ingest
                        .handle(http_v2_post("application/cloudevents-batch+json", body))
                        .await
                        .status()
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
            "{statuses:?}"
        );
        let records: Vec<_> = kinesis
            .read_all(&stream, &arn)
            .await
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect();
        let events = (requests * PER_REQUEST) as f64;
        let per_event = records.len() as f64 / events;
        let bytes = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum::<usize>() as f64
            / events;
        let takes = (1000.0 / per_event).min(1024.0 * 1024.0 / bytes);
        println!(
            "| {name} | {:.0} | {per_event:.3} | {bytes:.0} | {takes:.0} |",
            events / seconds
        );
    }
}
