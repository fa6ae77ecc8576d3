//! Ingest against the real Kinesis emulator with faults injected in front of it (`FaultProxy`): partial
//! `PutRecords` failures, a hot shard, throttling and unavailability. Whatever happens, the events reported
//! accepted are exactly the events on the stream, each once.

use std::collections::BTreeSet;
use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tubes_ingest::{Config, Ingest};
use tubes_platform::lambda_event::record_events;
use tubes_platform::KinesisPublisher;
use tubes_tests::fault_proxy::{Fault, FaultProxy};
use tubes_tests::KinesisLocal;

fn event(i: usize) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("evt_{i:03}"),
        "source": "/shop/web",
        "type": "user.signed_up",
        "data": {"user_id": format!("usr_{i:03}"), "email": "ada@example.com", "name": "Ada",
                 "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

fn batch(n: usize) -> Request {
    let body = Value::from((0..n).map(event).collect::<Vec<_>>()).to_string();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.com/events")
        .header("content-type", "application/cloudevents-batch+json")
        .body(Body::Text(body))
        .unwrap()
}

fn json_body(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

struct Setup {
    emulator: KinesisLocal,
    proxy: FaultProxy,
    stream: String,
    arn: String,
}

async fn setup(name: &str) -> Setup {
    let emulator = KinesisLocal::start().await;
    let arn = emulator.create_stream(name, 2).await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    Setup {
        emulator,
        proxy,
        stream: name.to_owned(),
        arn,
    }
}

impl Setup {
    /// Ingest writing a record per event (`PACK_MAX_BYTES=0`): these tests are about entries; packed writes have
    /// their own below.
    fn ingest(&self, deadline_ms: u64) -> Ingest<KinesisPublisher> {
        self.ingest_packing(deadline_ms, 0)
    }

    fn ingest_packing(&self, deadline_ms: u64, pack_max_bytes: usize) -> Ingest<KinesisPublisher> {
        let publisher = KinesisPublisher::new(self.proxy.client(), &self.stream);
        Ingest::new(
            publisher,
            &Config {
                write_deadline_ms: deadline_ms,
                pack_max_bytes,
                ..tubes_tests::open_ingest_config(&self.stream)
            },
            tubes_tests::open_sources(),
        )
    }

    /// The event ids on the stream, in no particular order.
    async fn on_stream(&self) -> Vec<String> {
        self.emulator
            .read_all(&self.stream, &self.arn)
            .await
            .into_iter()
            .flat_map(|(source, records)| {
                records.into_iter().flat_map(move |r| {
                    record_events(r.data)
                        .for_shard(r.partition_key, &source.shard_id)
                        .into_iter()
                        .map(|(_, _, e)| e.unwrap().id().to_owned())
                })
            })
            .collect()
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn failed_entries_are_retried_alone_and_every_event_lands_once() {
    let s = setup("faults-partial").await;
    s.proxy.set(Fault::FailOnce(
        vec![1, 4, 7],
        "ProvisionedThroughputExceededException",
    ));
    let response = s.ingest(5_000).handle(batch(10)).await;
    assert_eq!(response.status(), 202, "{}", json_body(&response));
    let accepted = ids(&json_body(&response)["accepted"]);
    assert_eq!(accepted.len(), 10);
    assert_eq!(
        s.proxy.calls(),
        [10, 3],
        "only the three failed entries went again"
    );
    let on_stream = s.on_stream().await;
    assert_eq!(sorted(on_stream), sorted(accepted));
}

#[tokio::test]
async fn a_failed_pack_is_retried_alone_and_every_event_lands_once() {
    let s = setup("faults-packed").await;
    // Two shards, 40 events: a pack or more per shard; the first entry of the first call fails.
    s.proxy.set(Fault::FailOnce(vec![0], "InternalFailure"));
    let response = s
        .ingest_packing(5_000, tubes_ingest::config::DEFAULT_PACK_MAX_BYTES)
        .handle(batch(40))
        .await;
    assert_eq!(response.status(), 202, "{}", json_body(&response));
    let accepted = ids(&json_body(&response)["accepted"]);
    assert_eq!(accepted.len(), 40);
    let calls = s.proxy.calls();
    assert!(
        calls[0] < 40 && calls[1] == 1,
        "{calls:?}: packs, then the failed one alone"
    );
    assert_eq!(sorted(s.on_stream().await), sorted(accepted));
}

#[tokio::test]
async fn a_hot_shard_gets_207_and_only_acknowledged_events_are_reported() {
    let s = setup("faults-hot").await;
    // Partition keys are the subjects; signups' subject is the user id.
    let hot: BTreeSet<String> = ["usr_002", "usr_005"]
        .into_iter()
        .map(String::from)
        .collect();
    s.proxy.set(Fault::FailKeys(
        hot,
        "ProvisionedThroughputExceededException",
    ));
    // The hot keys fail to the deadline; it is long enough for a retry even on a loaded machine.
    let response = s.ingest(2_000).handle(batch(8)).await;
    assert_eq!(response.status(), 207);
    assert!(response.headers().contains_key("retry-after"));
    let body = json_body(&response);
    let accepted = ids(&body["accepted"]);
    let failed: Vec<(u64, String)> = body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["index"].as_u64().unwrap(),
                f["error"]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [(2, "throttled".to_owned()), (5, "throttled".to_owned())]
    );
    assert_eq!(accepted.len(), 6);
    assert!(s.proxy.calls().len() > 1, "it retried before answering");
    assert_eq!(sorted(s.on_stream().await), sorted(accepted));
}

#[tokio::test]
async fn throttling_and_unavailability_never_get_202_and_write_nothing() {
    let s = setup("faults-none").await;
    for (fault, status, code) in [
        (Fault::ThrottleCalls, 429, "throttled"),
        (Fault::FailCalls, 503, "stream_unavailable"),
    ] {
        s.proxy.set(fault);
        let started = std::time::Instant::now();
        let response = s.ingest(300).handle(batch(3)).await;
        assert_eq!(response.status(), status);
        assert_eq!(json_body(&response)["error"]["code"], code);
        assert!(response.headers().contains_key("retry-after"));
        // The deadline bounds the request, the SDK's own retries included.
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert!(s.on_stream().await.is_empty());
    // And once the stream recovers, the same request goes through.
    s.proxy.set(Fault::None);
    assert_eq!(s.ingest(300).handle(batch(3)).await.status(), 202);
    assert_eq!(s.on_stream().await.len(), 3);
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_resent_under_the_same_ids() {
    let s = setup("faults-lost-answers").await;
    // Events without ids, sent under an Idempotency-Key.
    let body = Value::from(
        (0..3)
            .map(|i| {
                let mut e = event(i);
                e.as_object_mut().unwrap().remove("id");
                e
            })
            .collect::<Vec<_>>(),
    )
    .to_string();
    let request = || {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://example.com/events")
            .header("content-type", "application/cloudevents-batch+json")
            .header("idempotency-key", "\"checkout-4711\"")
            .body(Body::Text(body.clone()))
            .unwrap()
    };
    // Kinesis writes every call but the answers never arrive: no 202, and every event is listed with its id.
    s.proxy.set(Fault::LoseAnswers);
    let response = s.ingest(300).handle(request()).await;
    assert_eq!(response.status(), 503);
    let refused = json_body(&response);
    let listed = ids(&refused["events"]);
    assert_eq!(listed.len(), 3, "{refused}");
    let written = s.on_stream().await;
    assert!(
        written.len() >= 3,
        "the lost answers hid real writes: {written:?}"
    );
    assert_eq!(
        written.iter().cloned().collect::<BTreeSet<_>>(),
        listed.iter().cloned().collect(),
        "every copy on the stream carries an id the 503 listed"
    );

    // The sender resends the same request under the same key: the same ids, which consumers count once.
    s.proxy.set(Fault::None);
    let response = s.ingest(300).handle(request()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(ids(&json_body(&response)["accepted"]), listed);
    let written = s.on_stream().await;
    assert_eq!(
        written.iter().cloned().collect::<BTreeSet<_>>().len(),
        3,
        "three events, however many copies: {written:?}"
    );
}
