//! The log lines as an operator reads them: JSON, one object per line, each with its timestamp, level and
//! function; a record's lines carry its event id and trace id, and the batch's line lists the traces it acted on.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};
use tubes_contract::EventType;
use tubes_platform::classify::Classify;
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::MemoryDeadLetters;
use tubes_platform::harness::Harness;
use tubes_platform::idempotency::{IdempotencyTimes, MemoryIdempotency};
use tubes_platform::lambda_event::KinesisBatch;
use tubes_platform::telemetry::logs;

const FIXTURE: &str = include_str!("../../../tests/fixtures/kinesis-event.json");
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(&'static str);

impl Classify for Failure {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Lines written, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lines lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn batch(records: &[Value]) -> KinesisBatch {
    let mut v: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let template = v["Records"][0].clone();
    v["Records"] = records
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let mut r = template.clone();
            let seq = format!(
                "4956816737333333333333333333333333333333333333333{:07}",
                i + 1
            );
            r["kinesis"]["partitionKey"] = event["subject"].clone();
            r["kinesis"]["sequenceNumber"] = json!(seq);
            r["kinesis"]["data"] = json!(base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(event).expect("serialisable")));
            r
        })
        .collect();
    serde_json::from_value(v).expect("a Kinesis event")
}

fn signup(user: &str, id: &str, traceparent: Option<&str>) -> Value {
    let mut v = json!({
        "specversion": "1.0", "id": id, "source": "/logs", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
    });
    if let Some(t) = traceparent {
        v["traceparent"] = json!(t);
    }
    v
}

/// Runs one batch (four records, one failing retryably) with the JSON subscriber at `level`; the lines.
async fn lines_at(level: &str) -> (String, Vec<Value>) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = logs::subscriber(
        move || writer.clone(),
        Some("tubes-consumer-logs".into()),
        logs::filter(Some(level.into()), None),
    );
    let _default = tracing::subscriber::set_default(subscriber);

    let consumer = consumer_fn("logs-test", &[EventType::UserSignedUp], |envelope| {
        let id = envelope.id().to_owned();
        async move {
            tracing::debug!(step = 1, "the consumer's own line");
            match id.as_str() {
                "flaky" => Err(Failure("try \"again\"\n")),
                _ => Ok(()),
            }
        }
    });
    let harness = Harness::new(consumer, MemoryDeadLetters::default())
        .with_idempotency(MemoryIdempotency::default(), IdempotencyTimes::default());
    let traced = format!("00-{TRACE}-00f067aa0ba902b7-01");
    harness
        .run(batch(&[
            signup("u1", "e1", Some(&traced)),
            signup("u2", "e2", None),
            signup("u3", "flaky", Some(&traced)),
            signup("u4", "e4", Some(&traced)),
        ]))
        .await;

    let text = String::from_utf8(lines.0.lock().expect("lines lock").clone()).expect("UTF-8");
    let parsed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &parsed {
        let stamp = line["timestamp"].as_str().expect("a timestamp");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
        assert!(stamp.ends_with('Z'), "UTC: {stamp}");
        assert_eq!(
            stamp.len(),
            24,
            "milliseconds, always three digits: {stamp}"
        );
        assert!(line["level"].is_string(), "{line}");
        assert_eq!(line["function"], "tubes-consumer-logs", "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    assert!(
        !text.contains("ada@example.com"),
        "no e-mail addresses in logs"
    );
    (text, parsed)
}

/// The checks that hold at every level: the warning names its record and trace; one line for the batch.
fn common_checks(text: &str, parsed: &[Value]) {
    let retried = parsed
        .iter()
        .find(|l| l["level"] == "WARN")
        .expect("the retryable failure is a warning");
    assert_eq!(retried["event_id"], "flaky");
    assert_eq!(retried["trace_id"], TRACE);
    assert_eq!(retried["source"], "/logs");
    assert_eq!(retried["event_type"], "user.signed_up");
    assert_eq!(
        retried["error"], "try \"again\"\n",
        "escaped and read back whole"
    );
    let done: Vec<&Value> = parsed
        .iter()
        .filter(|l| l["message"] == "batch done")
        .collect();
    assert_eq!(done.len(), 1, "one line for the batch: {text}");
    assert_eq!(done[0]["handled"], 3);
    assert_eq!(
        done[0]["trace_ids"], TRACE,
        "handled records' traces, each once"
    );
    assert!(
        done[0].get("event_id").is_none(),
        "the batch line is no record's"
    );
}

#[tokio::test]
async fn at_info_a_batch_is_one_line_and_its_warnings_name_their_record_and_trace() {
    let (text, parsed) = lines_at("info").await;
    common_checks(&text, &parsed);
    assert_eq!(parsed.len(), 2, "the warning and the batch line: {text}");
}

#[tokio::test]
async fn at_debug_every_line_about_a_record_names_its_event_and_trace() {
    let (text, parsed) = lines_at("debug").await;
    common_checks(&text, &parsed);
    let own: Vec<&Value> = parsed
        .iter()
        .filter(|l| l["message"] == "the consumer's own line")
        .collect();
    assert_eq!(own.len(), 4, "{text}");
    let of = |id: &str| own.iter().find(|l| l["event_id"] == id).copied();
    let e1 = of("e1").expect("e1's line names its event");
    assert_eq!(e1["trace_id"], TRACE);
    assert_eq!(e1["source"], "/logs");
    assert_eq!(e1["event_type"], "user.signed_up");
    assert_eq!(e1["step"], 1);
    assert!(of("e2").expect("e2's line").get("trace_id").is_none());
}

#[test]
fn a_scoped_subscriber_around_a_runtime_writes_the_batch_line() {
    let lines = Lines::default();
    let writer = lines.clone();
    let dispatch = tracing::Dispatch::new(logs::subscriber(
        move || writer.clone(),
        None,
        logs::filter(Some("info".into()), None),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let consumer = consumer_fn("scoped", &[EventType::UserSignedUp], |_| async {
        Ok::<(), Failure>(())
    });
    let harness = Harness::new(consumer, MemoryDeadLetters::default());
    tracing::dispatcher::with_default(&dispatch, || {
        rt.block_on(harness.run(batch(&[signup("u1", "e1", None)])))
    });
    let text = String::from_utf8(lines.0.lock().expect("lines lock").clone()).expect("UTF-8");
    assert!(text.contains("batch done"), "{text:?}");
}
