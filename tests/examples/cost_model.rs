//! The cost model (`make cost`): writes `docs/cost.md`, the AWS cost per million events of three ways of sending
//! them (single POSTs, 100-event batches one record per event, 100-event batches packed), on-demand and
//! provisioned, from what this program measures and the list prices in `docs/prices.json` (one file, dated).
//!
//! Measured here, in process, on the real code: the ingest handler's time per request and the records it writes
//! (their count and sizes, through the real packer); the consumer harness's time per batch over those records
//! (decoding and dispatch to a consumer that does nothing: what the platform costs, not a consumer's own work).
//! Read from `template.yaml`: the memory of the functions, the mappings, their batch sizes and type filters. Taken
//! from `docs/prices.json` as stated assumptions: the round trip of a `PutRecords` call in AWS and the bytes of
//! log a function writes per invocation besides its own lines.
//!
//! Usage: cargo run --release -p tubes-tests --example cost_model [-- OUT.md]

// A measurement program: a failed setup step is a failed run, with its message.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Instant;

use lambda_http::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tubes_contract::{EventType, Record};
use tubes_ingest::Ingest;
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::publish::MemoryPublisher;
use tubes_platform::{Harness, KinesisBatch};
use tubes_tests::{http_v2_post, open_ingest_config, open_sources, payment_sent, repo_root};

/// List prices and the stated assumptions (`docs/prices.json`).
#[derive(Debug, Deserialize)]
struct Prices {
    date: String,
    region: String,
    api_gateway_http_per_million_requests: f64,
    api_gateway_http_request_unit_bytes: f64,
    lambda_arm_per_gb_second: f64,
    lambda_per_million_requests: f64,
    kinesis_on_demand_stream_hour: f64,
    kinesis_on_demand_per_gb_in: f64,
    kinesis_on_demand_per_gb_out: f64,
    kinesis_on_demand_record_unit_bytes: f64,
    kinesis_shard_hour: f64,
    kinesis_per_million_put_payload_units: f64,
    kinesis_put_payload_unit_bytes: f64,
    cloudwatch_logs_per_gb_ingested: f64,
    assumptions: Assumptions,
}

#[derive(Debug, Deserialize)]
struct Assumptions {
    put_records_round_trip_ms: f64,
    platform_log_bytes_per_invocation: f64,
    own_log_bytes_per_invocation: f64,
}

/// A mapping of `template.yaml`: its batch size and whether the workload's type passes its filter.
#[derive(Debug)]
struct Mapping {
    function: String,
    batch_size: usize,
    takes_workload: bool,
}

/// The workload's events: a payment as a client sends it (about 200 bytes of JSON).
const WORKLOAD_TYPE: &str = "payment.received";

/// One way of sending events.
struct Way {
    name: &'static str,
    per_request: usize,
    packed: bool,
}

const WAYS: [Way; 3] = [
    Way {
        name: "single POSTs",
        per_request: 1,
        packed: false,
    },
    Way {
        name: "100-event batches, a record per event",
        per_request: 100,
        packed: false,
    },
    Way {
        name: "100-event batches, packed",
        per_request: 100,
        packed: true,
    },
];

/// What one way measured, per request and per batch.
struct Measured {
    body_bytes: f64,
    ingest_ms: f64,
    put_calls_per_request: f64,
    records_per_event: f64,
    record_bytes_per_event: f64,
    billed_kib_per_event: f64,
    events: f64,
    consumer_ms_per_batch: f64,
    event_bytes: f64,
    records: Vec<Record>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(way: &Way, requests: usize) -> Measured {
    let publisher = MemoryPublisher::default();
    let config = tubes_ingest::Config {
        pack_max_bytes: if way.packed {
            tubes_ingest::config::DEFAULT_PACK_MAX_BYTES
        } else {
            0
        },
        ..open_ingest_config("cost")
    };
    let ingest = Ingest::new(&publisher, &config, open_sources());
    let (content_type, per) = if way.per_request == 1 {
        ("application/cloudevents+json", 1)
    } else {
        ("application/cloudevents-batch+json", way.per_request)
    };
    let mut times = Vec::with_capacity(requests);
    let mut body_bytes = 0;
    for r in 0..requests {
        let events: Vec<Value> = (0..per)
            .map(|i| payment_sent(WORKLOAD_TYPE, r * per + i))
            .collect();
        let body = if per == 1 {
            events[0].to_string()
        } else {
            Value::Array(events).to_string()
        };
        body_bytes += body.len();
        let request = http_v2_post(content_type, &body);
        let started = Instant::now();
        let response = ingest.handle(request).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let calls = publisher.calls().len();
    let events = (requests * per) as f64;
    let records = publisher.written();
    let unit = 1024.0;
    let billed_kib: f64 = records
        .iter()
        .map(|r| (r.billed_size() as f64 / unit).ceil())
        .sum();
    let record_bytes: f64 = records.iter().map(|r| r.billed_size() as f64).sum();
    let event_bytes = publisher
        .written_events()
        .iter()
        .map(Vec::len)
        .sum::<usize>() as f64
        / events;
    Measured {
        body_bytes: body_bytes as f64 / requests as f64,
        ingest_ms: median(times),
        put_calls_per_request: calls as f64 / requests as f64,
        records_per_event: records.len() as f64 / events,
        record_bytes_per_event: record_bytes / events,
        billed_kib_per_event: billed_kib / events,
        events,
        consumer_ms_per_batch: 0.0,
        event_bytes,
        records,
    }
}

/// The harness's time over the records in batches of `batch_size` (a no-op consumer), per batch.
async fn consumer_ms(records: &[Record], batch_size: usize) -> f64 {
    let harness = Harness::new(
        consumer_fn("cost", EventType::ALL, |envelope| {
            std::hint::black_box(envelope.id());
            std::future::ready(Ok::<(), Infallible>(()))
        }),
        LogDeadLetters,
    );
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/cost".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::000000000000:role/cost".into(),
    };
    let stream: Vec<StreamRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| StreamRecord {
            sequence_number: SequenceNumber::from(format!("{:056}", i + 1)),
            partition_key: r.partition_key.clone(),
            data: r.data.clone(),
            arrival: 1_795_000_000.0,
        })
        .collect();
    let mut times = Vec::new();
    for chunk in stream.chunks(batch_size) {
        // The invocation's payload as Lambda delivers it: JSON bytes, decoded by the consumer runtime.
        let payload = serde_json::to_vec(&kinesis_event(&source, chunk)).unwrap();
        let started = Instant::now();
        let batch: KinesisBatch = serde_json::from_slice(&payload).unwrap();
        let report = harness.run(batch).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(report.response.batch_item_failures.is_empty());
    }
    median(times)
}

/// The mappings of `template.yaml` (text: each `Type: Kinesis` event's properties that follow it).
fn mappings(template: &str) -> Vec<Mapping> {
    let lines: Vec<&str> = template.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "Type: Kinesis" {
            continue;
        }
        let function = lines[..i]
            .iter()
            .rev()
            .find(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
            .map_or("?", |l| l.trim().trim_end_matches(':'))
            .to_owned();
        let props: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("          ") || l.trim().is_empty())
            .copied()
            .collect();
        let batch_size = props
            .iter()
            .find_map(|l| l.trim().strip_prefix("BatchSize:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(100);
        let patterns: Vec<&str> = props
            .iter()
            .filter(|l| l.contains("Pattern:"))
            .copied()
            .collect();
        let takes_workload =
            patterns.is_empty() || patterns.iter().any(|p| p.contains(WORKLOAD_TYPE));
        out.push(Mapping {
            function,
            batch_size,
            takes_workload,
        });
    }
    out
}

/// A line of a cost table: its name and dollars per million events.
type Line = (String, f64);

fn per_million(
    way: &Way,
    m: &Measured,
    maps: &[Mapping],
    memory_gb: f64,
    p: &Prices,
) -> (Vec<Line>, Vec<Line>) {
    let events = 1e6;
    let requests = events / way.per_request as f64;
    let gb = 1024.0 * 1024.0 * 1024.0;
    let api_units = (m.body_bytes / p.api_gateway_http_request_unit_bytes)
        .ceil()
        .max(1.0);
    let api = requests * api_units * p.api_gateway_http_per_million_requests / 1e6;
    let ingest_ms =
        (m.ingest_ms + m.put_calls_per_request * p.assumptions.put_records_round_trip_ms).ceil();
    let ingest = requests
        * (p.lambda_per_million_requests / 1e6
            + ingest_ms / 1000.0 * memory_gb * p.lambda_arm_per_gb_second);
    let records = events * m.records_per_event;
    let billed_gb = events * m.billed_kib_per_event * p.kinesis_on_demand_record_unit_bytes / gb;
    let data_in = billed_gb * p.kinesis_on_demand_per_gb_in;
    // Every mapping reads every record (filters apply after the read): retrieval is billed once per mapping.
    let data_out = billed_gb * maps.len() as f64 * p.kinesis_on_demand_per_gb_out;
    let units: f64 = m
        .records
        .iter()
        .map(|r| (r.billed_size() as f64 / p.kinesis_put_payload_unit_bytes).ceil())
        .sum();
    let put_units = events * units / m.events * p.kinesis_per_million_put_payload_units / 1e6;
    let mut invocations = 0.0;
    let mut consumer_gb_s = 0.0;
    for map in maps.iter().filter(|m| m.takes_workload) {
        let batches = (records / map.batch_size as f64).ceil();
        invocations += batches;
        // The measured time is per 100-record batch; a larger batch scales with its records.
        let ms = (m.consumer_ms_per_batch * map.batch_size as f64 / 100.0).ceil();
        consumer_gb_s += batches * ms / 1000.0 * memory_gb;
    }
    let consumers = invocations * p.lambda_per_million_requests / 1e6
        + consumer_gb_s * p.lambda_arm_per_gb_second;
    let log_bytes = (requests + invocations)
        * (p.assumptions.platform_log_bytes_per_invocation
            + p.assumptions.own_log_bytes_per_invocation);
    let logs = log_bytes / gb * p.cloudwatch_logs_per_gb_ingested;
    let common = vec![
        ("API Gateway (HTTP API)".to_owned(), api),
        ("ingest function".to_owned(), ingest),
        (
            "consumer functions (invocations of the mappings that take the type)".to_owned(),
            consumers,
        ),
        ("logs".to_owned(), logs),
    ];
    let mut on_demand = common.clone();
    on_demand.push((
        "Kinesis data in (each record rounded up to 1 KiB)".to_owned(),
        data_in,
    ));
    on_demand.push((
        format!(
            "Kinesis data out ({} mappings read every record)",
            maps.len()
        ),
        data_out,
    ));
    let mut provisioned = common;
    provisioned.push((
        "Kinesis PUT payload units (25 KB each)".to_owned(),
        put_units,
    ));
    (on_demand, provisioned)
}

fn total(lines: &[Line]) -> f64 {
    lines.iter().map(|(_, v)| v).sum()
}

#[tokio::main]
async fn main() {
    let out = std::env::args().nth(1).map_or_else(
        || repo_root().join("docs/cost.md"),
        std::path::PathBuf::from,
    );
    let prices: Prices = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("docs/prices.json")).unwrap(),
    )
    .unwrap();
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let maps = mappings(&template);
    assert!(maps.len() >= 2, "the template's mappings were not found");
    let memory_mb: f64 = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(256.0);
    let memory_gb = memory_mb / 1024.0;

    let mut measured = Vec::new();
    for way in &WAYS {
        let requests = 20_000 / way.per_request;
        let mut m = measure(way, requests).await;
        m.consumer_ms_per_batch = consumer_ms(&m.records, 100).await;
        eprintln!(
            "{}: {:.3} ms per request, {:.3} records and {:.2} billed KiB per event, {:.3} ms per 100-record batch",
            way.name, m.ingest_ms, m.records_per_event, m.billed_kib_per_event, m.consumer_ms_per_batch
        );
        measured.push(m);
    }

    let mut doc = String::new();
    let p = &prices;
    writeln!(doc, "# What a million events cost\n").unwrap();
    writeln!(
        doc,
        "Generated by `make cost` (`tests/examples/cost_model.rs`) from figures it measures on the real code and the \
         list prices in [`prices.json`](prices.json) ({}, {}, first tier). Do not edit by hand: change the prices or \
         the code and run it again.\n",
        p.region, p.date
    )
    .unwrap();
    writeln!(doc, "## The workload\n").unwrap();
    writeln!(
        doc,
        "`{WORKLOAD_TYPE}` events as a client sends them (about {:.0} bytes of JSON; {:.0} bytes each as ingest writes \
         it, with its id, time and trace), over 2,000 accounts; functions of {memory_mb:.0} MB (arm64), as the \
         template deploys them. Per million events written by ingest; an event a consumer publishes (a payment's \
         outcome) costs the stream and consumer lines again, not the API and ingest ones.\n",
        measured[0].body_bytes, measured[0].event_bytes
    )
    .unwrap();
    writeln!(
        doc,
        "| mapping | batch size | invoked for `{WORKLOAD_TYPE}` |\n|---|---:|:---:|"
    )
    .unwrap();
    for map in &maps {
        writeln!(
            doc,
            "| {} | {} | {} |",
            map.function,
            map.batch_size,
            if map.takes_workload { "yes" } else { "no" }
        )
        .unwrap();
    }
    writeln!(doc, "\n## Measured (this machine, in process)\n").unwrap();
    writeln!(doc, "| | ingest per request | `PutRecords` calls per request | records per event | record bytes per event | billed KiB per event | consumer per 100-record batch |\n|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (way, m) in WAYS.iter().zip(&measured) {
        writeln!(
            doc,
            "| {} | {:.3} ms | {:.2} | {:.3} | {:.0} | {:.3} | {:.3} ms |",
            way.name,
            m.ingest_ms,
            m.put_calls_per_request,
            m.records_per_event,
            m.record_bytes_per_event,
            m.billed_kib_per_event,
            m.consumer_ms_per_batch
        )
        .unwrap();
    }
    writeln!(
        doc,
        "\nAssumed (`prices.json`): a `PutRecords` round trip of {} ms in AWS, added to ingest's measured time per \
         call; {} bytes of platform log lines (START, END, REPORT) and {} bytes of the function's own per invocation \
         (one line per request or batch at INFO). Billed durations round up to the millisecond.\n",
        p.assumptions.put_records_round_trip_ms,
        p.assumptions.platform_log_bytes_per_invocation,
        p.assumptions.own_log_bytes_per_invocation
    )
    .unwrap();

    let mut summary = Vec::new();
    for (mode, fixed) in [
        (
            "on-demand",
            format!(
                "${:.2} a month per stream (${}/hour)",
                p.kinesis_on_demand_stream_hour * 730.0,
                p.kinesis_on_demand_stream_hour
            ),
        ),
        (
            "provisioned",
            format!(
                "${:.2} a month per shard (${}/hour); a shard takes 1,000 records/s and 1 MiB/s",
                p.kinesis_shard_hour * 730.0,
                p.kinesis_shard_hour
            ),
        ),
    ] {
        writeln!(doc, "## {mode}\n\nFixed, whatever the traffic: {fixed}.\n").unwrap();
        writeln!(
            doc,
            "| $ per million events | {} |\n|---|{}",
            WAYS.map(|w| w.name).join(" | "),
            "---:|".repeat(WAYS.len())
        )
        .unwrap();
        let tables: Vec<Vec<Line>> = WAYS
            .iter()
            .zip(&measured)
            .map(|(w, m)| {
                let (od, pr) = per_million(w, m, &maps, memory_gb, p);
                if mode == "on-demand" {
                    od
                } else {
                    pr
                }
            })
            .collect();
        for (i, (name, _)) in tables[0].iter().enumerate() {
            let cells: Vec<String> = tables.iter().map(|t| format!("{:.4}", t[i].1)).collect();
            writeln!(doc, "| {name} | {} |", cells.join(" | ")).unwrap();
        }
        let totals: Vec<f64> = tables.iter().map(|t| total(t)).collect();
        writeln!(
            doc,
            "| **total** | {} |\n",
            totals
                .iter()
                .map(|t| format!("**{t:.4}**"))
                .collect::<Vec<_>>()
                .join(" | ")
        )
        .unwrap();
        summary.push((mode, totals));
    }
    // Throughput a shard gives these events: the lower of its record and byte limits.
    writeln!(
        doc,
        "How much a pack deflates depends on the events: here their names, source, type and the request's trace \
         repeat, their ids, payment ids, amounts and payers do not.\n"
    )
    .unwrap();
    writeln!(doc, "## Events a shard takes per second\n\n| | records per event | events/s per shard |\n|---|---:|---:|").unwrap();
    for (way, m) in WAYS.iter().zip(&measured) {
        let by_records = 1000.0 / m.records_per_event;
        let by_bytes = 1024.0 * 1024.0 / m.record_bytes_per_event;
        writeln!(
            doc,
            "| {} | {:.3} | {:.0} |",
            way.name,
            m.records_per_event,
            by_records.min(by_bytes)
        )
        .unwrap();
    }
    let packed_on_demand = summary[0].1[2];
    let unpacked_on_demand = summary[0].1[1];
    let data = |m: &Measured| m.billed_kib_per_event;
    writeln!(
        doc,
        "\nPacked 100-event batches: **${packed_on_demand:.3} per million events** on-demand (target ≤ $0.15, the \
         stream's hourly charge aside), {:.1}× less than a record per event (${unpacked_on_demand:.3}); Kinesis data \
         per event {:.1}× smaller.",
        unpacked_on_demand / packed_on_demand,
        data(&measured[1]) / data(&measured[2])
    )
    .unwrap();
    std::fs::write(&out, doc).unwrap();
    println!(
        "wrote {}: packed batches ${packed_on_demand:.4} per million events on-demand",
        out.display()
    );
}
