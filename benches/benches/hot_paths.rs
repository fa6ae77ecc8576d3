//! The hot paths of tubes, each as a ratio to a baseline in the same run (`make bench`).
//!
//! - **consumer batch**: a 10,000-record Kinesis event (bytes, as the runtime hands them over, members in AWS's
//!   order) decoded in one pass by [`KinesisBatch::from_payload`] as the consumer runtime does, every record
//!   validated and dispatched by the [`Harness`] to a consumer that does nothing, against the baseline of only
//!   deserialising the same bytes into `aws_lambda_events`' `KinesisEvent` (base64 decoded, no envelope parsing, no
//!   validation, no dispatch). Then the decoding alone against the same baseline, and `codec::decode` of the
//!   10,000 events alone (its floor).
//! - **ingest request**: one `POST /events` through the whole handler (routing, content type, parse, validate,
//!   encode, publish to a publisher that acknowledges at once, 202 body) against the baseline of parsing the same
//!   body into a `serde_json::Value`.
//! - **ingest invocation**: the whole invocation as the runtime runs it (the HTTP API v2 event's bytes →
//!   ingest's `HttpApiEvent`, which keeps only what ingest reads → the handler → the response serialised for the
//!   runtime) against the bare `serde_json` parse of the same bytes into `ApiGatewayV2httpRequest`. The event is
//!   written in the order AWS sends its keys ([`HTTP_API_EVENT`]), not through `json!` (which sorts them and makes
//!   parsing faster than on real payloads).
//! - **consumer batch with idempotency**: the same batch with every record claimed and completed in an in-memory
//!   store (payload hash, key, claim, completion), against the harness without idempotency: the harness's own
//!   cost of exactly-once bookkeeping, without the DynamoDB round trips (measured on the emulator in tests).
//! - **signed ingest** and **API-key ingest**: the same request from a source that signs (Standard Webhooks,
//!   HMAC-SHA256 over id, timestamp and body, checked against two active secrets as during a rotation) and from
//!   one with an API key (two active keys), each against the same request from an open source: the per-request
//!   cost of authentication (`make bench ARGS=auth`).
//! - **ingest batch**: a 500-event batch in one request, per event, against one event per request.
//! - **codec**: record bytes → validated envelope, against bytes → `serde_json::Value`.
//! - **metrics**: the consumer batch and the ingest request with the EMF recorder installed and flushed (per
//!   batch, per request, to a sink), against the same work with no recorder: what measuring costs. It runs last:
//!   it installs the process's recorder (`make bench ARGS=metrics`); and both metrics and JSON logs as deployed
//!   against neither.
//! - **logs**: the consumer batch and the ingest request with the JSON log subscriber at INFO (lines counted,
//!   then dropped) against the same subscriber with logging off (`make bench ARGS=logs`).
//! - **keys at once**: a 256-record batch over 97 partition keys to a consumer whose every record waits 1 ms (a
//!   store or provider round trip), with 8 keys at once against one record at a time: what per-key concurrency
//!   buys an I/O-bound consumer. And the 10,000-record batch to the no-op consumer, 8 keys at once against 1:
//!   what it costs when there is nothing to wait for.

use std::convert::Infallible;
use std::hint::black_box;

use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_http::{Body, Request};
use serde_json::json;
use tubes_bench::{compare, kinesis_event_bytes, payment_bytes, report};
use tubes_contract::{codec, EventType, Record};
use tubes_ingest::credentials::api_key;
use tubes_ingest::webhook::Secret;
use tubes_ingest::{Config, FixedSources, HttpApiEvent, Ingest, Sources};
use tubes_platform::consumer::{consumer_fn, Consumer};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::{IdempotencyTimes, MemoryIdempotency};
use tubes_platform::publish::PublishError;
use tubes_platform::telemetry::{logs, Emf};
use tubes_platform::{Harness, KinesisBatch, Publisher, PutOutcome};

/// Bytes the benchmarks' log lines came to: they are written (and counted), then dropped.
static LOGGED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A log writer that counts and drops.
struct LogBytes;

impl std::io::Write for LogBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGGED.fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON log subscriber as deployed (INFO) and the same subscriber with logging off, both writing to
/// [`LogBytes`]. Both must exist before any line is logged: tracing caches each call site's interest when it is
/// first hit, so a baseline run with no subscriber at all would leave the logged runs silent.
fn log_dispatches() -> (tracing::Dispatch, tracing::Dispatch) {
    let logged = |level: &str| {
        tracing::Dispatch::new(logs::subscriber(
            || LogBytes,
            Some("bench".into()),
            logs::filter(Some(level.into()), None),
        ))
    };
    (logged("info"), logged("off"))
}

/// The bytes `f` logs under `dispatch`.
fn bytes_logged<R>(dispatch: &tracing::Dispatch, f: impl FnOnce() -> R) -> usize {
    let before = LOGGED.load(std::sync::atomic::Ordering::Relaxed);
    tracing::dispatcher::with_default(dispatch, f);
    LOGGED.load(std::sync::atomic::Ordering::Relaxed) - before
}

/// Acknowledges every record at once: measures ingest's own work, not a network.
struct AckPublisher;

impl Publisher for AckPublisher {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
        Ok(records
            .iter()
            .map(|_| PutOutcome::Accepted {
                shard_id: "shardId-000000000000".into(),
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            })
            .collect())
    }
}

/// Handles every event by doing nothing: measures the harness, not a consumer.
fn noop() -> impl Consumer {
    consumer_fn("noop", EventType::ALL, |envelope| {
        black_box(envelope.id());
        std::future::ready(Ok::<(), Infallible>(()))
    })
}

/// Waits 1 ms per record, as a consumer waiting on a store or provider does.
fn waits() -> impl Consumer {
    consumer_fn("waits", EventType::ALL, |envelope| {
        black_box(envelope.id());
        async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok::<(), Infallible>(())
        }
    })
}

/// Runs `harness` over the Kinesis event `bytes`, as the runtime hands them over; how many records it handled.
fn handled<C: Consumer>(
    rt: &tokio::runtime::Runtime,
    harness: &Harness<C, LogDeadLetters>,
    bytes: &[u8],
) -> usize {
    let batch = KinesisBatch::from_payload(bytes).expect("batch");
    rt.block_on(harness.run(batch)).handled
}

fn payment(i: usize) -> serde_json::Value {
    json!({
        "specversion": "1.0", "id": format!("evt_{i:08}"), "source": "/shop/checkout", "type": "payment.received",
        "subject": format!("acc_{}", i % 97), "time": "2026-11-22T10:00:00Z", "datacontenttype": "application/json",
        "data": {"payment_id": format!("pay_{i}"), "account_id": format!("acc_{}", i % 97), "amount": 1250 + i,
                 "currency": "EUR", "payer_email": "ada@example.com"}
    })
}

/// An HTTP API (payload format 2.0) event for `POST /events`, keys in the order API Gateway sends them; `{body}`
/// is the body as a JSON string.
const HTTP_API_EVENT: &str = r#"{"version":"2.0","routeKey":"POST /events","rawPath":"/events","rawQueryString":"","headers":{"accept":"*/*","content-length":"{length}","content-type":"application/cloudevents+json","host":"abc123.execute-api.us-east-1.amazonaws.com","user-agent":"curl/8.5.0","x-amzn-trace-id":"Root=1-6756f2a1-0a1b2c3d4e5f60718293a4b5","x-forwarded-for":"203.0.113.7","x-forwarded-port":"443","x-forwarded-proto":"https"},"requestContext":{"accountId":"123456789012","apiId":"abc123","domainName":"abc123.execute-api.us-east-1.amazonaws.com","domainPrefix":"abc123","http":{"method":"POST","path":"/events","protocol":"HTTP/1.1","sourceIp":"203.0.113.7","userAgent":"curl/8.5.0"},"requestId":"CqPnhjbvoAMEVdQ=","routeKey":"POST /events","stage":"$default","time":"04/Dec/2026:10:00:00 +0000","timeEpoch":1796378400000},"body":{body},"isBase64Encoded":false}"#;

/// A `payment.received` event, members in the order a producer writes them.
const PAYMENT: &str = r#"{"specversion":"1.0","id":"evt_00000001","source":"/shop/checkout","type":"payment.received","subject":"acc_1","time":"2026-11-22T10:00:00Z","datacontenttype":"application/json","data":{"payment_id":"pay_1","account_id":"acc_1","amount":1251,"currency":"EUR","payer_email":"ada@example.com"}}"#;

/// [`HTTP_API_EVENT`] carrying `body`.
fn http_api_event(body: &str) -> Vec<u8> {
    HTTP_API_EVENT
        .replace("{length}", &body.len().to_string())
        .replace("{body}", &serde_json::to_string(body).expect("a string"))
        .into_bytes()
}

fn request(body: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/events")
        .header("content-type", "application/cloudevents+json")
        .body(Body::Text(body.to_owned()))
        .expect("valid request")
}

/// Signing secrets, and the API keys of the `keyed` source (their hashes are in [`sources`]).
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// An open source (the default of `POST /events`: the unauthenticated baseline), one that signs with two active
/// secrets, one with two active API keys: each as during a rotation.
fn sources() -> (Sources<FixedSources>, String) {
    let (old_key, old_hash) =
        api_key::mint("keyed", "k1", [1; api_key::SECRET_BYTES]).expect("key");
    let (new_key, new_hash) =
        api_key::mint("keyed", "k2", [2; api_key::SECRET_BYTES]).expect("key");
    drop(old_key);
    let json = format!(
        r#"{{"open": {{"open": true, "event_types": ["*"], "ce_sources": ["*"]}},
            "signed": {{"signing_secrets": ["{OLD_SECRET}", "{NEW_SECRET}"], "event_types": ["*"], "ce_sources": ["*"]}},
            "keyed": {{"api_keys": {{"k1": "{old_hash}", "k2": "{new_hash}"}}, "event_types": ["*"], "ce_sources": ["*"]}}}}"#
    );
    (Sources::fixed(&json, true).expect("sources"), new_key)
}

fn bench_config() -> Config {
    Config {
        max_body_bytes: 256 * 1024,
        default_source: Some("open".into()),
        ..Config::new("tubes-events")
    }
}

fn source_request(source: &str, body: &str, signature: Option<(&Secret, i64)>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example.com/sources/{source}/events"))
        .header("content-type", "application/json");
    if let Some((secret, ts)) = signature {
        builder = builder
            .header("webhook-id", "msg_2f9a1c")
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                secret.sign("msg_2f9a1c", ts, body.as_bytes()),
            );
    }
    builder
        .body(Body::Text(body.to_owned()))
        .expect("valid request")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, selects benchmarks by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let selected = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    // Timers on, as in the Lambda runtime: ingest bounds each PutRecords call with one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");

    println!("tubes hot paths (median of interleaved rounds; ratio = candidate / baseline)\n");

    if selected("consumer") {
        let bytes = kinesis_event_bytes(10_000);
        // Sanity: the input is in the order it comes in, and says what `payment` says.
        assert!(bytes.starts_with(
            br#"{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey""#
        ));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&payment_bytes(7)).expect("JSON"),
            payment(7)
        );
        let harness = Harness::new(noop(), LogDeadLetters);
        // Sanity: the candidate does the full job, or the figure means nothing.
        let batch = KinesisBatch::from_payload(&bytes).expect("batch");
        let checked = rt.block_on(harness.run(batch));
        assert_eq!(checked.handled, 10_000, "every record handled");
        let c = compare(
            15,
            3,
            || {
                serde_json::from_slice::<KinesisEvent>(&bytes)
                    .expect("event")
                    .records
                    .len()
            },
            || {
                let batch = KinesisBatch::from_payload(&bytes).expect("batch");
                rt.block_on(harness.run(batch)).handled
            },
        );
        let label = format!(
            "consumer batch (10,000 records, {:.1} MB)",
            bytes.len() as f64 / 1e6
        );
        report(&label, "KinesisEvent deserialise", &c);
        println!(
            "{:<44} {:>12.0} records/s per core",
            "",
            10_000.0 / c.candidate.as_secs_f64()
        );
        // The decoding alone (issue #15: at most 0.6x), and the share of it that is the events' own decoding and
        // validation (`codec::decode`, 10,000 times), which any decoding of the batch does.
        let c = compare(
            15,
            3,
            || {
                serde_json::from_slice::<KinesisEvent>(&bytes)
                    .expect("event")
                    .records
                    .len()
            },
            || {
                KinesisBatch::from_payload(&bytes)
                    .expect("batch")
                    .records
                    .len()
            },
        );
        report(
            "consumer decode (10,000 records)",
            "KinesisEvent deserialise",
            &c,
        );
        let events: Vec<Vec<u8>> = (0..10_000).map(payment_bytes).collect();
        let c = compare(
            15,
            3,
            || {
                serde_json::from_slice::<KinesisEvent>(&bytes)
                    .expect("event")
                    .records
                    .len()
            },
            || events.iter().filter(|e| codec::decode(e).is_ok()).count(),
        );
        report(
            "  of which codec::decode (10,000 events)",
            "KinesisEvent deserialise",
            &c,
        );
    }

    if selected("idempotency") {
        let bytes = kinesis_event_bytes(10_000);
        let plain = Harness::new(noop(), LogDeadLetters);
        let times = IdempotencyTimes::default();
        // A fresh store per run, so every record is claimed and completed (no duplicates to skip).
        let run_idempotent = || {
            let store = MemoryIdempotency::default();
            let harness = Harness::new(noop(), LogDeadLetters).with_idempotency(&store, times);
            let batch = KinesisBatch::from_payload(&bytes).expect("batch");
            rt.block_on(harness.run(batch)).handled
        };
        assert_eq!(run_idempotent(), 10_000, "every record claimed and handled");
        let c = compare(
            9,
            2,
            || {
                let batch = KinesisBatch::from_payload(&bytes).expect("batch");
                rt.block_on(plain.run(batch)).handled
            },
            run_idempotent,
        );
        report(
            "consumer batch with idempotency (10,000, in-memory store)",
            "the same harness without",
            &c,
        );
        println!(
            "{:<44} {:>12.0} records/s per core",
            "",
            10_000.0 / c.candidate.as_secs_f64()
        );
    }

    if selected("ingest") {
        let body = payment(1).to_string();
        let ingest = Ingest::new(AckPublisher, &bench_config(), sources().0);
        let status = rt.block_on(ingest.handle(request(&body))).status();
        assert_eq!(status, 202, "the candidate accepts the event");
        let c = compare(
            15,
            2_000,
            || {
                let req = request(&body);
                serde_json::from_slice::<serde_json::Value>(req.body().as_ref()).expect("json")
            },
            || rt.block_on(ingest.handle(request(&body))).status(),
        );
        report(
            "ingest request (1 event, POST → 202)",
            "build request + parse to Value",
            &c,
        );
    }

    if selected("ingest") || selected("invocation") {
        use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;

        let event = http_api_event(PAYMENT);
        let ingest = Ingest::new(AckPublisher, &bench_config(), sources().0);
        // What ingest's `main.rs` does with each event's bytes (the runtime hands them over unread): into ingest's
        // view of the HTTP API event, the handler, the answer serialised as the runtime serialises it.
        let invoke = || {
            let payload: HttpApiEvent =
                tubes_platform::runtime::deserialize(&event).expect("an HTTP API event");
            let response = rt.block_on(ingest.invoke(payload));
            serde_json::to_vec(&response).expect("serialisable")
        };
        let answer: serde_json::Value = serde_json::from_slice(&invoke()).expect("JSON");
        assert_eq!(
            answer["statusCode"], 202,
            "the candidate accepts the event: {answer}"
        );
        let c = compare(
            15,
            2_000,
            || {
                serde_json::from_slice::<ApiGatewayV2httpRequest>(&event)
                    .expect("an HTTP API event")
                    .body
                    .map(|b| b.len())
            },
            invoke,
        );
        report(
            "ingest invocation (HTTP API v2 event → 202)",
            "ApiGatewayV2httpRequest parse",
            &c,
        );
    }

    if selected("signed") || selected("auth") {
        // Authentication's cost per request: the same event from the open source (no credential), with an API
        // key, and signed, each in the same run.
        let body = payment(1).to_string();
        let (sources, key) = sources();
        let ingest = Ingest::new(AckPublisher, &bench_config(), sources);
        let new = Secret::parse(NEW_SECRET).expect("secret");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signed = || source_request("signed", &body, Some((&new, now)));
        let open = || source_request("open", &body, None);
        let keyed = || {
            let mut req = source_request("keyed", &body, None);
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {key}").parse().expect("header"),
            );
            req
        };
        assert_eq!(rt.block_on(ingest.handle(signed())).status(), 202);
        assert_eq!(rt.block_on(ingest.handle(open())).status(), 202);
        assert_eq!(rt.block_on(ingest.handle(keyed())).status(), 202);
        let c = compare(
            15,
            2_000,
            || rt.block_on(ingest.handle(open())).status(),
            || rt.block_on(ingest.handle(signed())).status(),
        );
        report(
            "signed ingest request (2 active secrets)",
            "same request, unauthenticated source",
            &c,
        );
        let c = compare(
            15,
            2_000,
            || rt.block_on(ingest.handle(open())).status(),
            || rt.block_on(ingest.handle(keyed())).status(),
        );
        report(
            "API-key ingest request (2 active keys)",
            "same request, unauthenticated source",
            &c,
        );
    }

    if selected("batch") {
        let events: Vec<serde_json::Value> = (0..500).map(payment).collect();
        let batch = serde_json::Value::from(events).to_string();
        let single = payment(1).to_string();
        let ingest = Ingest::new(AckPublisher, &bench_config(), sources().0);
        let batch_request = || {
            lambda_http::http::Request::builder()
                .method("POST")
                .uri("https://api.example.com/events")
                .header("content-type", "application/cloudevents-batch+json")
                .body(Body::Text(batch.clone()))
                .expect("valid request")
        };
        assert_eq!(rt.block_on(ingest.handle(batch_request())).status(), 202);
        let c = compare(
            15,
            4,
            || {
                for _ in 0..500 {
                    black_box(rt.block_on(ingest.handle(request(&single))).status());
                }
            },
            || rt.block_on(ingest.handle(batch_request())).status(),
        );
        report(
            "ingest batch (500 events, 1 request)",
            "500 single-event requests",
            &c,
        );
    }

    if selected("keys") {
        // payment(i) is keyed by its account, one of 97 (see `payment`): 2 or 3 records per key.
        let bytes = kinesis_event_bytes(256);
        let sequential = Harness::new(waits(), LogDeadLetters).with_concurrency(1);
        let concurrent = Harness::new(waits(), LogDeadLetters).with_concurrency(8);
        let run = |h| handled(&rt, h, &bytes);
        assert_eq!(run(&concurrent), 256, "every record handled");
        let c = compare(5, 1, || run(&sequential), || run(&concurrent));
        report(
            "I/O-bound batch (256 records, 97 keys, 8 at once)",
            "one record at a time",
            &c,
        );
        println!(
            "{:<44} {:>12.0} records/s per invocation (vs {:.0})",
            "",
            256.0 / c.candidate.as_secs_f64(),
            256.0 / c.baseline.as_secs_f64()
        );

        let bytes = kinesis_event_bytes(10_000);
        let sequential = Harness::new(noop(), LogDeadLetters).with_concurrency(1);
        let concurrent = Harness::new(noop(), LogDeadLetters).with_concurrency(8);
        let c = compare(
            9,
            2,
            || handled(&rt, &sequential, &bytes),
            || handled(&rt, &concurrent, &bytes),
        );
        report(
            "CPU-bound batch (10,000 records, 8 keys at once)",
            "one key at a time",
            &c,
        );
    }

    if selected("codec") {
        let bytes = serde_json::to_vec(&payment(7)).expect("serialisable");
        assert!(codec::decode(&bytes).is_ok());
        let c = compare(
            15,
            5_000,
            || serde_json::from_slice::<serde_json::Value>(&bytes).expect("json"),
            || codec::decode(&bytes).expect("valid"),
        );
        report("codec decode + validate (1 record)", "parse to Value", &c);
    }

    if selected("logs") {
        // The JSON log lines as deployed (INFO: one line per batch or request), to a sink, against the same
        // subscriber with logging off.
        let (subscriber, silent) = log_dispatches();
        let bytes = kinesis_event_bytes(10_000);
        let harness = Harness::new(noop(), LogDeadLetters);
        let run = || {
            let batch = KinesisBatch::from_payload(&bytes).expect("batch");
            rt.block_on(harness.run(batch)).handled
        };
        let c = compare(
            15,
            3,
            || tracing::dispatcher::with_default(&silent, run),
            || tracing::dispatcher::with_default(&subscriber, run),
        );
        report(
            "consumer batch with JSON logs at INFO (10,000)",
            "the same batch, logs off",
            &c,
        );
        let batch_bytes = bytes_logged(&subscriber, run);
        assert!(batch_bytes > 0, "the logged batch wrote its line");
        println!("  (a batch's log: {batch_bytes} bytes)");
        let body = payment(1).to_string();
        let ingest = Ingest::new(AckPublisher, &bench_config(), sources().0);
        let request_once = || rt.block_on(ingest.handle(request(&body))).status();
        let c = compare(
            15,
            2_000,
            || tracing::dispatcher::with_default(&silent, request_once),
            || tracing::dispatcher::with_default(&subscriber, request_once),
        );
        report(
            "ingest request with JSON logs at INFO",
            "the same request, logs off",
            &c,
        );
        let request_bytes = bytes_logged(&subscriber, request_once);
        assert!(request_bytes > 0, "the logged request wrote its line");
        println!("  (a request's log: {request_bytes} bytes)");
    }

    // Last: it installs the process's metrics recorder, which the benchmarks above run without.
    if selected("metrics") {
        let (subscriber, silent) = log_dispatches();
        let emf = Emf::install().expect("the EMF recorder installs");
        let unmeasured = metrics::NoopRecorder;
        let bytes = kinesis_event_bytes(10_000);
        let harness = Harness::new(noop(), LogDeadLetters);
        let run = || {
            let batch = KinesisBatch::from_payload(&bytes).expect("batch");
            rt.block_on(harness.run(batch)).handled
        };
        let measured_batch = || {
            let handled = run();
            emf.flush_to(std::io::sink()).expect("flushed");
            handled
        };
        assert_eq!(measured_batch(), 10_000, "every record handled");
        let c = compare(
            15,
            3,
            || metrics::with_local_recorder(&unmeasured, run),
            measured_batch,
        );
        report(
            "consumer batch with EMF metrics (10,000)",
            "the same batch, no recorder",
            &c,
        );

        let body = payment(1).to_string();
        let plain = Ingest::new(AckPublisher, &bench_config(), sources().0);
        let measured = Ingest::new(AckPublisher, &bench_config(), sources().0).measured();
        let meter = measured.meter().expect("measured");
        let unmeasured_request = || rt.block_on(plain.handle(request(&body))).status();
        let c = compare(15, 2_000, unmeasured_request, || {
            let status = rt.block_on(measured.handle(request(&body))).status();
            meter.drain();
            emf.flush_to(std::io::sink()).expect("flushed");
            status
        });
        report(
            "ingest request, metered, flushed per request",
            "the same request, unmetered",
            &c,
        );
        let c = compare(15, 2_000, unmeasured_request, || {
            let status = rt.block_on(measured.handle(request(&body))).status();
            emf.flush_at_most_every(std::time::Duration::from_secs(1), || meter.drain());
            status
        });
        report(
            "ingest request, metered, flushed ≤ 1/s (deployed)",
            "the same request, unmetered",
            &c,
        );

        // Both, as deployed: metrics flushed (per batch; ingest at most once a second) and JSON logs at INFO,
        // against neither.
        let c = compare(
            15,
            3,
            || {
                tracing::dispatcher::with_default(&silent, || {
                    metrics::with_local_recorder(&unmeasured, run)
                })
            },
            || tracing::dispatcher::with_default(&subscriber, measured_batch),
        );
        assert!(
            bytes_logged(&subscriber, measured_batch) > 0,
            "the batch was logged"
        );
        report(
            "consumer batch, EMF metrics + JSON logs (deployed)",
            "the same batch, neither (logs off)",
            &c,
        );
        let c = compare(
            15,
            2_000,
            || tracing::dispatcher::with_default(&silent, unmeasured_request),
            || {
                tracing::dispatcher::with_default(&subscriber, || {
                    let status = rt.block_on(measured.handle(request(&body))).status();
                    emf.flush_at_most_every(std::time::Duration::from_secs(1), || meter.drain());
                    status
                })
            },
        );
        report(
            "ingest request, EMF metrics + JSON logs (deployed)",
            "the same request, neither (logs off)",
            &c,
        );
    }
}
