//! The harness's metrics as CloudWatch reads them: the EMF documents the installed recorder writes follow the
//! Embedded Metric Format specification, and a batch's record counts add up to its records.
//!
//! Its own test binary: the recorder is the process's one global recorder.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{json, Value};
use tubes_contract::EventType;
use tubes_platform::classify::Classify;
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::MemoryDeadLetters;
use tubes_platform::harness::Harness;
use tubes_platform::idempotency::{IdempotencyTimes, MemoryIdempotency};
use tubes_platform::lambda_event::KinesisBatch;
use tubes_platform::telemetry::{self, Emf};

const FIXTURE: &str = include_str!("../../../tests/fixtures/kinesis-event.json");

/// The units EMF accepts (CloudWatch's `StandardUnit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(&'static str, bool);

impl Classify for Failure {
    fn is_retryable(&self) -> bool {
        self.1
    }
}

/// The AWS fixture with `(partition key, event)` records, each arrived at the fixture's time.
fn batch(records: &[(&str, Value)]) -> KinesisBatch {
    let mut v: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let template = v["Records"][0].clone();
    v["Records"] = records
        .iter()
        .enumerate()
        .map(|(i, (key, event))| {
            let mut r = template.clone();
            let seq = format!(
                "49568167373333333333333333333333333333333333333333{:06}",
                i + 1
            );
            r["kinesis"]["partitionKey"] = json!(key);
            r["kinesis"]["sequenceNumber"] = json!(seq);
            r["kinesis"]["data"] = json!(base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(event).expect("serialisable")));
            r["eventID"] = json!(format!("shardId-000000000000:{seq}"));
            r
        })
        .collect();
    serde_json::from_value(v).expect("a Kinesis event")
}

fn signup(user: &str, id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/emf", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "a@b.co", "name": "A", "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

fn credit(account: &str, id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/emf", "type": "account.credited", "subject": account,
        "time": "2026-11-22T10:00:00Z",
        "data": {"credit_id": id, "account_id": account, "amount": 100, "currency": "EUR",
                 "credited_at": "2026-11-22T10:00:00Z"}
    })
}

/// Checks one document against the EMF specification and returns it.
fn emf_document(line: &str) -> Value {
    let doc: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].is_u64(),
        "Timestamp must be epoch milliseconds: {line}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics array");
    assert!(!directives.is_empty(), "{line}");
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert!((1..=255).contains(&namespace.len()), "{line}");
        for set in directive["Dimensions"]
            .as_array()
            .expect("Dimensions array")
        {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "{line}");
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                assert!(
                    doc[name].is_string(),
                    "dimension {name} has no string value: {line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics array");
        assert!(metrics.len() <= 100, "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().expect("Unit is a string");
                assert!(
                    UNITS.contains(&unit),
                    "unit {unit} is not one EMF knows: {line}"
                );
            }
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100, "{line}");
                    assert!(values.iter().all(Value::is_number), "{line}");
                }
                other => panic!("metric {name} has no numeric value ({other}): {line}"),
            }
        }
    }
    doc
}

/// The documents of `consumer` that the recorder flushes now.
fn flushed(emf: Emf, consumer: &str) -> Vec<Value> {
    let mut out = Vec::new();
    emf.flush_to(&mut out).expect("flushed");
    String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(emf_document)
        .filter(|d| d[telemetry::CONSUMER] == consumer)
        .collect()
}

fn count(docs: &[Value], metric: &str) -> u64 {
    docs.iter().filter_map(|d| d[metric].as_u64()).sum()
}

#[tokio::test]
async fn a_batch_yields_emf_documents_whose_record_counts_add_up_to_the_batch() {
    let emf = Emf::install().expect("the recorder installs");
    assert!(
        Emf::install().is_ok(),
        "installing again answers the same recorder"
    );
    let consumer = consumer_fn("emf-test", &[EventType::UserSignedUp], |envelope| {
        let id = envelope.id().to_owned();
        async move {
            match id.as_str() {
                "bad" => Err(Failure("refused", false)),
                "flaky" => Err(Failure("try again", true)),
                _ => Ok(()),
            }
        }
    });
    let harness = Harness::new(consumer, MemoryDeadLetters::default())
        .with_idempotency(MemoryIdempotency::default(), IdempotencyTimes::default());
    let records = [
        ("u1", signup("u1", "e1")),
        ("u2", signup("u2", "e2")),
        ("u3", signup("u3", "e3")),
        ("u4", signup("u4", "bad")),
        ("u5", signup("u5", "flaky")),
        ("u5", signup("u5", "e6")),
        ("a1", credit("a1", "e7")),
        ("u1", signup("u1", "e8")),
    ];

    let report = harness.run(batch(&records)).await;
    let docs = flushed(emf, "emf-test");
    assert_eq!(
        docs.len(),
        1,
        "one document per consumer and flush: {docs:?}"
    );
    let doc = &docs[0];
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        telemetry::NAMESPACE
    );
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([[telemetry::CONSUMER]])
    );
    let counts = [
        telemetry::RECORDS_HANDLED,
        telemetry::RECORDS_DUPLICATE,
        telemetry::RECORDS_FILTERED,
        telemetry::RECORDS_RETRIED,
        telemetry::RECORDS_HELD_BACK,
        telemetry::RECORDS_PARKED,
    ];
    let total: u64 = counts.iter().map(|m| count(&docs, m)).sum();
    assert_eq!(total, records.len() as u64, "{doc}");
    assert_eq!(report.records(), records.len());
    assert_eq!(count(&docs, telemetry::RECORDS_HANDLED), 4, "{doc}");
    assert_eq!(count(&docs, telemetry::RECORDS_PARKED), 1, "{doc}");
    assert_eq!(count(&docs, telemetry::RECORDS_RETRIED), 1, "{doc}");
    assert_eq!(count(&docs, telemetry::RECORDS_HELD_BACK), 1, "{doc}");
    assert_eq!(count(&docs, telemetry::RECORDS_FILTERED), 1, "{doc}");
    // The fixture's records arrived in 2016, the events are of 2026-11-22: both times are long gone.
    let ms = |name: &str| doc[name][0].as_f64().or(doc[name].as_f64());
    assert!(ms(telemetry::LAG).is_some_and(|lag| lag > 3.0e11), "{doc}");
    assert!(
        ms(telemetry::EVENT_AGE).is_some_and(|age| age > 0.0),
        "{doc}"
    );
    assert!(
        ms(telemetry::EFFECT_TIME).is_some_and(|t| t >= 0.0),
        "{doc}"
    );
    let units: HashSet<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["Unit"].as_str())
        .collect();
    assert_eq!(units, HashSet::from(["Count", "Milliseconds"]), "{doc}");

    // Delivered again: what was handled is counted as duplicates, and nothing new is flushed twice.
    let again = harness.run(batch(&records)).await;
    let docs = flushed(emf, "emf-test");
    assert_eq!(count(&docs, telemetry::RECORDS_DUPLICATE), 4, "{docs:?}");
    assert_eq!(again.duplicates, 4);
    let total: u64 = counts.iter().map(|m| count(&docs, m)).sum();
    assert_eq!(total, records.len() as u64, "{docs:?}");
    assert!(
        flushed(emf, "emf-test").is_empty(),
        "a flush with nothing new writes nothing"
    );
}
