//! Figures of the local stack (`make bench-local`), each with a baseline measured in the same run:
//!
//! 1. time from `scripts/dev.sh` start (already built) to ready;
//! 2. latency from ingest's `202` to the start of the consumer invocation that carries the event, on an idle
//!    stream (p50, p99), with the template's batching window and (2b, on a second stack) with a 0 window on every
//!    mapping, against the mapping emulator's idle poll interval (`TUBES_IDLE_POLL_MS`, 200 ms);
//! 3. sustained events/s POSTed through the local stack for a period (default 60 s) with every accepted event
//!    counted as processed by its consumer (none lost), against direct `PutRecord` calls to the same emulator at
//!    the same concurrency;
//! 5. latency of the event-status view through the stack (`GET /events/{source}/{id}` of handled payments: one
//!    `BatchGetItem` of four consumers' records), against the same 401 baseline.
//! 4. latency of the query API through the stack (`GET /accounts/{id}` with the demo reader's key: router, query
//!    function, read model in moto), p50 and p99, against the same requests without a key (answered `401` by the
//!    function before any read: the stack's own round trip).
//!
//! Usage: cargo run --release -p tubes-tests --example local_stack_figures [-- SECONDS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_tests::LocalStack;

const CONCURRENCY: usize = 8;

/// The demo source's API key, read from the stack once it is up.
static API_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn payment(i: u64) -> String {
    json!({"specversion": "1.0", "source": "/bench", "type": "payment.received", "data": {
        "payment_id": format!("pay_{i}"), "account_id": format!("acc_{}", i % 64), "amount": 100 + i,
        "currency": "EUR", "payer_email": "bench@example.com"}})
    .to_string()
}

/// The `p` quantile of sorted durations, in milliseconds.
fn at(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn unix(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// Start times (unix seconds) of the invocations of `function`, per sequence number.
fn invocation_starts(stack: &LocalStack, function: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    for b in stack.json_lines("esm.jsonl") {
        if b["kind"] != "batch" || b["function"] != function {
            continue;
        }
        let at = OffsetDateTime::parse(b["at"].as_str().unwrap_or(""), &Rfc3339)
            .map(unix)
            .unwrap_or(0.0);
        let start = at - b["latency_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        for s in b["sequence_numbers"].as_array().into_iter().flatten() {
            out.entry(s.as_str().unwrap_or("").to_owned())
                .or_insert(start);
        }
    }
    out
}

fn processed(stack: &LocalStack, function: &str) -> u64 {
    stack
        .json_lines("esm.jsonl")
        .iter()
        .filter(|b| b["kind"] == "batch" && b["function"] == function)
        .map(|b| b["processed"].as_u64().unwrap_or(0))
        .sum()
}

/// POSTs one event with the demo source's key (the stack is closed by default) and returns its sequence number
/// and when the `202` came.
async fn post(http: &reqwest::Client, url: &str, body: String) -> Option<(String, f64)> {
    let key = API_KEY.get().expect("the demo key is read first");
    let resp = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    if resp.status() != 202 {
        return None;
    }
    let at = unix(OffsetDateTime::now_utc());
    let v: Value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
    Some((v["accepted"][0]["sequence_number"].as_str()?.to_owned(), at))
}

/// 500 requests of `url(i)` with the reader's key (each must answer 200), each followed by the same request
/// without a key (401, answered before any read): both latencies, sorted.
async fn timed_with_and_without_key(
    http: &reqwest::Client,
    read_key: &str,
    url: impl Fn(usize) -> String,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut with_read, mut without) = (Vec::new(), Vec::new());
    for i in 0..500usize {
        let url = url(i);
        let started = Instant::now();
        let resp = http
            .get(&url)
            .bearer_auth(read_key)
            .send()
            .await
            .expect("the query API answers");
        let status = resp.status();
        let _ = resp.bytes().await;
        with_read.push(started.elapsed());
        assert_eq!(status, 200, "{url}");
        let started = Instant::now();
        let resp = http.get(&url).send().await.expect("the query API answers");
        let status = resp.status();
        let _ = resp.bytes().await;
        without.push(started.elapsed());
        assert_eq!(status, 401);
    }
    with_read.sort();
    without.sort();
    (with_read, without)
}

/// The mapping emulator's idle poll interval (`TUBES_IDLE_POLL_MS`, as `tubes-local run` reads it).
fn poll_ms() -> u64 {
    std::env::var("TUBES_IDLE_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Latencies (ms, sorted) from ingest's 202 to the start of the payments invocation carrying the event, 40 events
/// one at a time, each after the previous was delivered; event numbers from `first * 1000`.
async fn idle_latencies(
    stack: &LocalStack,
    http: &reqwest::Client,
    url: &str,
    first: u64,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for i in first * 1000..first * 1000 + 40 {
        let (seq, acked_unix) = post(http, url, payment(i)).await.expect("202");
        let deadline = Instant::now() + Duration::from_secs(30);
        let start = loop {
            if let Some(s) = invocation_starts(stack, "PaymentsFunction").get(&seq) {
                break *s;
            }
            assert!(
                Instant::now() < deadline,
                "event {seq} not delivered in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        latencies.push(((start - acked_unix) * 1000.0).max(0.0));
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let tmp = std::env::temp_dir().join("tubes-local-figures");
    // A first start builds what changed; the second is the figure: a start with everything built.
    drop(LocalStack::start("template.yaml", &tmp));
    let started = Instant::now();
    let stack = LocalStack::start("template.yaml", &tmp);
    let ready = started.elapsed();
    println!("local stack: kinesis-local 0.6.2 (Kinesis), moto 5.2.5 (SQS), cargo-lambda 1.9.2 watch (debug builds)");
    println!(
        "1. dev.sh start → ready (already built): {:.1} s",
        ready.as_secs_f64()
    );

    let http = reqwest::Client::new();
    let url = format!("{}/events", stack.http);
    API_KEY.get_or_init(|| stack.demo_api_key());
    // Warm every function once, so the figures are of a running stack, not of first compiles.
    let (warm, _) = post(&http, &url, payment(0)).await.expect("202");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !invocation_starts(&stack, "PaymentsFunction").contains_key(&warm) {
        assert!(
            Instant::now() < deadline,
            "the warm-up event was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2. Idle-stream latency: one event at a time, each after the previous was delivered.
    let latencies = idle_latencies(&stack, &http, &url, 1).await;
    // The yardstick is the batching window plus the idle poll interval.
    println!(
        "2. 202 → consumer invocation, idle stream, 40 events, the template's 1 s batching window: p50 {:.0} ms, p99 {:.0} ms (poll interval {} ms)",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        poll_ms()
    );

    // 3. Sustained throughput through the stack, then the direct baseline.
    let before = processed(&stack, "PaymentsFunction");
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY as u64 {
        let (http, url, accepted, refused) =
            (http.clone(), url.clone(), accepted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 1_000_000 * (w + 1);
            while Instant::now() < until {
                i += 1;
                match post(&http, &url, payment(i)).await {
                    Some(_) => accepted.fetch_add(1, Ordering::Relaxed),
                    None => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let accepted = accepted.load(Ordering::Relaxed);
    let rate = accepted as f64 / seconds as f64;
    let drain = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = processed(&stack, "PaymentsFunction") - before;
    while done < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        done = processed(&stack, "PaymentsFunction") - before;
    }

    let kinesis = stack.kinesis();
    let stream = "tubes-EventStream";
    let direct = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds.min(20));
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY as u64 {
        let (kinesis, direct) = (kinesis.clone(), direct.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let put = kinesis
                    .put_record()
                    .stream_name(stream)
                    .partition_key(format!("direct_{w}_{i}"))
                    .data(Blob::new(b"{}".to_vec()))
                    .send()
                    .await;
                if put.is_ok() {
                    direct.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let direct_rate = direct.load(Ordering::Relaxed) as f64 / seconds.min(20) as f64;
    println!(
        "3. sustained {seconds} s, {CONCURRENCY} clients: {accepted} accepted ({rate:.0} events/s), {} refused; \
         processed by the payments consumer: {done} ({} lost), drained {:.1} s after the last POST",
        refused.load(Ordering::Relaxed),
        accepted.saturating_sub(done),
        drain.elapsed().as_secs_f64()
    );
    println!(
        "   baseline: direct PutRecord to kinesis-local, same concurrency: {direct_rate:.0} records/s → stack/direct = {:.2}",
        rate / direct_rate.max(1.0)
    );
    assert_eq!(done, accepted, "every accepted event was processed");

    // 4. Query latency through the stack, against the same requests answered before any read. The projections
    // consumer (its own batching window) may still be catching up, and a short run may not have reached every
    // account: one payment each, then every account is read once it is there.
    let read_key = stack.demo_read_key();
    for i in 0..64 {
        post(&http, &url, payment(5000 + i)).await.expect("202");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..64 {
        let url = format!("{}/accounts/acc_{i}", stack.http);
        while http
            .get(&url)
            .bearer_auth(&read_key)
            .send()
            .await
            .map(|r| r.status())
            .ok()
            != Some(reqwest::StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "{url} never answered 200");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (with_read, without) = timed_with_and_without_key(&http, &read_key, |i| {
        format!("{}/accounts/acc_{}", stack.http, i % 64)
    })
    .await;
    println!(
        "4. query GET /accounts/{{id}} through the stack, 500 requests: p50 {:.1} ms, p99 {:.1} ms; without a key \
         (401 before any read): p50 {:.1} ms, p99 {:.1} ms → {:.2}x at p50",
        at(&with_read, 0.5),
        at(&with_read, 0.99),
        at(&without, 0.5),
        at(&without, 0.99),
        at(&with_read, 0.5) / at(&without, 0.5)
    );

    // 5. The event-status view of 64 handled payments, through the stack, against the same 401 baseline.
    let mut ids = Vec::new();
    for i in 0..64u64 {
        let resp = http
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .bearer_auth(API_KEY.get().expect("the demo key"))
            .body(payment(10_000_000 + i))
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(resp.status(), 202);
        let body: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.expect("a body")).expect("JSON");
        ids.push(
            body["accepted"][0]["id"]
                .as_str()
                .expect("an id")
                .to_owned(),
        );
    }
    let status_url = |id: &str| format!("{}/events/%2Fbench/{id}", stack.http);
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let resp = http
                .get(status_url(id))
                .bearer_auth(&read_key)
                .send()
                .await
                .expect("the query API answers");
            let ok = resp.status() == 200;
            let body = resp.bytes().await.unwrap_or_default();
            let handled = ok
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|b| b["consumers"][0]["status"] == "handled");
            if handled {
                break;
            }
            assert!(Instant::now() < deadline, "payment {id} never handled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (with_read, without) =
        timed_with_and_without_key(&http, &read_key, |i| status_url(&ids[i % ids.len()])).await;
    println!(
        "5. event status GET /events/{{source}}/{{id}} through the stack, 500 requests: p50 {:.1} ms, p99 {:.1} ms; \
         without a key: p50 {:.1} ms, p99 {:.1} ms → {:.2}x at p50",
        at(&with_read, 0.5),
        at(&with_read, 0.99),
        at(&without, 0.5),
        at(&without, 0.99),
        at(&with_read, 0.5) / at(&without, 0.5)
    );

    // 2b. The same with a 0 batching window on every mapping (`TUBES_BATCHING_WINDOW_SECS=0`): what the emulator
    // itself adds, the poll and the invocation (target: p50 under 300 ms).
    // Restarted on its state: the same demo key.
    let stack = stack.restart(&[("TUBES_BATCHING_WINDOW_SECS", "0")]);
    let url = format!("{}/events", stack.http);
    idle_latencies(&stack, &http, &url, 2).await; // warm-up: the functions' first invocations
    let latencies = idle_latencies(&stack, &http, &url, 3).await;
    println!(
        "2b. 202 → consumer invocation, idle stream, 40 events, 0 batching window: p50 {:.0} ms, p99 {:.0} ms (poll interval {} ms)",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        poll_ms()
    );
}
