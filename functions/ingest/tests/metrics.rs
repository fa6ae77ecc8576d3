//! Ingest's metrics as CloudWatch reads them: after each request, the EMF documents say how many events Kinesis
//! accepted or throttled, which code refused a request, and how long it took. Its own test binary: the recorder
//! is the process's one global recorder.
// Test helpers outside `#[test]` functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tubes_ingest::{Config, Ingest, Sources};
use tubes_platform::publish::{MemoryFault, MemoryPublisher};
use tubes_platform::telemetry::{self, Emf};

mod common;

use common::*;

const OPEN: &str = r#"{"demo": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}}"#;

/// The documents flushed now, each checked for the members EMF requires.
fn flushed(emf: Emf) -> Vec<Value> {
    let mut out = Vec::new();
    emf.flush_to(&mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).unwrap();
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert!(doc["_aws"]["Timestamp"].is_u64(), "{line}");
            assert_eq!(directive["Namespace"], telemetry::NAMESPACE, "{line}");
            for name in directive["Dimensions"][0].as_array().unwrap() {
                assert!(doc[name.as_str().unwrap()].is_string(), "{line}");
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(doc[name].is_number() || doc[name].is_array(), "{line}");
            }
            doc
        })
        .collect()
}

/// The value of `metric` in the documents whose dimensions are `dims`, summed (a histogram's values counted).
fn value(docs: &[Value], metric: &str, dims: &[(&str, &str)]) -> Option<f64> {
    docs.iter()
        .filter(|d| dims.iter().all(|(k, v)| d[*k] == *v))
        .filter_map(|d| match &d[metric] {
            Value::Number(n) => n.as_f64(),
            Value::Array(values) => Some(values.iter().filter_map(Value::as_f64).sum()),
            _ => None,
        })
        .reduce(|a, b| a + b)
}

/// Asserts the value of `metric` in the documents whose dimensions are `dims`.
fn expect(docs: &[Value], metric: &str, dims: &[(&str, &str)], want: Option<f64>) {
    assert_eq!(
        value(docs, metric, dims),
        want,
        "{metric} {dims:?} in {docs:?}"
    );
}

#[tokio::test]
async fn each_request_yields_emf_counts_of_accepted_throttled_and_refused_events() {
    let emf = Emf::install().unwrap();
    let publisher = MemoryPublisher::default();
    let ingest = Ingest::new(
        &publisher,
        &Config {
            write_deadline_ms: 200,
            default_source: Some("demo".into()),
            ..Config::new("events")
        },
        Sources::fixed(OPEN, true).unwrap(),
    )
    .measured();
    let meter = ingest.meter().unwrap();
    let ingest_dim = [(telemetry::FUNCTION, "ingest")];

    // Two events accepted.
    let batch = json!([signed_up(), signed_up()]).to_string();
    let response = ingest
        .handle(post(
            Source::HttpV2,
            "application/cloudevents-batch+json",
            &batch,
        ))
        .await;
    assert_eq!(response.status(), 202);
    meter.drain();
    let docs = flushed(emf);
    expect(&docs, telemetry::EVENTS_ACCEPTED, &ingest_dim, Some(2.0));
    expect(&docs, telemetry::EVENTS_PER_REQUEST, &ingest_dim, Some(2.0));
    assert!(value(&docs, telemetry::REQUEST_LATENCY, &ingest_dim).is_some_and(|ms| ms >= 0.0));
    expect(&docs, telemetry::REQUESTS_REFUSED, &ingest_dim, None);

    // A malformed body: refused by its code, nothing written.
    let response = ingest
        .handle(post(
            Source::HttpV2,
            "application/cloudevents+json",
            "{not json",
        ))
        .await;
    assert_eq!(response.status(), 400);
    let code = body_json(&response)["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    meter.drain();
    let docs = flushed(emf);
    let refused = [
        (telemetry::FUNCTION, "ingest"),
        (telemetry::CODE, code.as_str()),
    ];
    expect(&docs, telemetry::REQUESTS_REFUSED, &refused, Some(1.0));
    expect(&docs, telemetry::EVENTS_ACCEPTED, &ingest_dim, None);

    // Kinesis throttles every entry of every call: the events are counted throttled, the request 5xx or 429.
    for _ in 0..20 {
        publisher.fail_next(MemoryFault::FailEntries(
            "ProvisionedThroughputExceededException",
        ));
    }
    let response = ingest
        .handle(post(
            Source::HttpV2,
            "application/cloudevents+json",
            &signed_up().to_string(),
        ))
        .await;
    assert!(
        response.status() == 429 || response.status().is_server_error(),
        "{}",
        response.status()
    );
    meter.drain();
    let docs = flushed(emf);
    expect(&docs, telemetry::EVENTS_THROTTLED, &ingest_dim, Some(1.0));
    expect(&docs, telemetry::EVENTS_ACCEPTED, &ingest_dim, None);
}
