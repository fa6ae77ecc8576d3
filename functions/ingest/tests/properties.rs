//! The ingest handler and the signature verifier over arbitrary requests: never a panic, every answer is a
//! documented status with the one error body, nothing is written for a refused request, and what is written is
//! exactly what the 202 lists.
#![allow(clippy::unwrap_used)]

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lambda_http::{Body, Request};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use serde_json::{json, Value};
use tubes_contract::Envelope;
use tubes_ingest::webhook::{verify, Secret};
use tubes_ingest::{Config, FixedSources, Ingest, Sources};
use tubes_platform::publish::{MemoryFault, MemoryPublisher};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn valid_event(i: u32) -> Value {
    json!({
        "specversion": "1.0",
        "source": "/shop/web",
        "type": "user.signed_up",
        "data": {"user_id": format!("usr_{i}"), "email": "ada@example.com", "name": "Ada",
                 "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

/// Bodies from raw noise to nearly valid: arbitrary bytes, arbitrary text, valid events and batches with a
/// byte changed, cut short or left alone.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        (0u32..1000).prop_map(|i| valid_event(i).to_string()),
        prop::collection::vec(0u32..1000, 0..7)
            .prop_map(
                |ids| Value::from(ids.into_iter().map(valid_event).collect::<Vec<_>>()).to_string()
            ),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        ".{0,128}".prop_map(String::into_bytes),
        valid.clone().prop_map(String::into_bytes),
        (valid.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(text, at, byte)| {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes
        }),
        (valid, any::<prop::sample::Index>()).prop_map(|(text, at)| {
            let mut bytes = text.into_bytes();
            bytes.truncate(at.index(bytes.len()));
            bytes
        }),
        (1usize..64)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "v1,[A-Za-z0-9+/=]{0,48}",
        "[0-9]{1,12}",
        Just(String::new())
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<String>,
    webhook: Option<(String, Option<String>, Option<String>)>,
    sign: bool,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let path = prop_oneof![
        Just("/events".to_owned()),
        Just("/events/".to_owned()),
        Just("/sources/partner/events".to_owned()),
        Just("/sources/open/events".to_owned()),
        "/sources/[a-z0-9_-]{0,10}/events",
        "/[a-zA-Z0-9/._~%-]{0,30}",
    ];
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("application/cloudevents+json; charset=utf-8".to_owned()),
        Just("application/cloudevents-batch+json".to_owned()),
        "[ -~]{0,40}",
    ]);
    let webhook = prop::option::of((
        "[ -~]{0,40}",
        prop::option::of(header_value()),
        prop::option::of(header_value()),
    ));
    (
        prop::sample::select(vec![
            "POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS",
        ]),
        path,
        content_type,
        webhook,
        any::<bool>(),
        body(),
    )
        .prop_map(|(method, path, content_type, webhook, sign, body)| Case {
            method,
            path,
            content_type,
            webhook,
            sign,
            body,
        })
}

fn request(case: &Case) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(case.method)
        .uri(format!("https://example.com{}", case.path));
    let headers = builder.headers_mut().unwrap();
    if let Some(ct) = &case.content_type {
        if let Ok(v) = HeaderValue::from_str(ct) {
            headers.insert("content-type", v);
        }
    }
    if let Some((id, timestamp, signature)) = &case.webhook {
        let timestamp = timestamp.clone().unwrap_or_else(|| now().to_string());
        let signature = match signature {
            Some(s) if !case.sign => s.clone(),
            _ => {
                Secret::parse(SECRET)
                    .unwrap()
                    .sign(id, timestamp.parse().unwrap_or(0), &case.body)
            }
        };
        for (name, value) in [
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
    }
    builder.body(Body::Binary(case.body.clone())).unwrap()
}

/// A source that signs (`partner`, which may speak only as `/partner/…`: the generated events, from `/shop/web`,
/// are refused when signed for it) and an open one (`open`, the default of `POST /events`, allowed everything).
fn sources() -> Sources<FixedSources> {
    let json = format!(
        r#"{{"partner": {{"signing_secrets": ["{SECRET}"], "event_types": ["*"]}},
            "open": {{"open": true, "event_types": ["*"], "ce_sources": ["*"]}}}}"#
    );
    Sources::fixed(&json, true).unwrap()
}

fn ingest(publisher: &MemoryPublisher) -> Ingest<&MemoryPublisher> {
    Ingest::new(
        publisher,
        &Config {
            max_body_bytes: 2048,
            max_event_bytes: 512,
            max_batch_events: 4,
            default_source: Some("open".into()),
            ..Config::new("events")
        },
        sources(),
    )
}

/// The statuses possible when the publisher acknowledges everything (the stream-side ones are tested elsewhere).
const DOCUMENTED: [u16; 9] = [202, 400, 401, 403, 404, 405, 413, 415, 422];

fn check(case: &Case, runtime: &tokio::runtime::Runtime) {
    let publisher = MemoryPublisher::default();
    let response = runtime.block_on(ingest(&publisher).handle(request(case)));
    let status = response.status();
    assert!(
        DOCUMENTED.contains(&status.as_u16()),
        "undocumented status {status}"
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    };
    let written = publisher.written_events();
    if status == StatusCode::ACCEPTED {
        let accepted = body["accepted"].as_array().unwrap();
        assert_eq!(accepted.len(), written.len());
        for (a, event) in accepted.iter().zip(&written) {
            let envelope = Envelope::decode(event).unwrap();
            assert_eq!(a["id"], envelope.id());
        }
    } else {
        assert!(written.is_empty(), "a refused request wrote {written:?}");
        let error = &body["error"];
        assert!(
            error["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{body}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        // Always present: a JSON pointer, or null when the error is about the request as a whole.
        let field = &error["field"];
        assert!(
            field.is_null() || field.as_str().is_some_and(|f| f.starts_with('/')),
            "{body}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_request_gets_a_documented_answer(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        check(&case, &runtime);
    }

    #[test]
    fn the_verifier_never_panics(
        headers in prop::collection::vec((prop::sample::select(vec!["webhook-id", "webhook-timestamp", "webhook-signature"]), header_value()), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        skew in -1_000i64..1_000,
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                map.append(HeaderName::from_static(name), v);
            }
        }
        let secrets = [Secret::parse(SECRET).unwrap()];
        // Noise never verifies: a forged signature is 2^-256 likely.
        prop_assert!(verify(&secrets, &map, &body, now() + skew).is_err());
    }

    #[test]
    fn a_signature_covers_every_byte(
        id in "[!-~]{1,40}",
        body in prop::collection::vec(any::<u8>(), 1..128),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let secret = Secret::parse(SECRET).unwrap();
        let ts = now();
        let mut map = HeaderMap::new();
        map.insert("webhook-id", HeaderValue::from_str(&id).unwrap());
        map.insert("webhook-timestamp", HeaderValue::from(ts));
        map.insert("webhook-signature", HeaderValue::from_str(&secret.sign(&id, ts, &body)).unwrap());
        let secrets = [secret];
        prop_assert_eq!(verify(&secrets, &map, &body, ts), Ok(id.as_str()));
        let mut changed = body.clone();
        let i = at.index(changed.len());
        changed[i] ^= flip;
        prop_assert!(verify(&secrets, &map, &changed, ts).is_err());
    }
}

/// The generator reaches every answer, including acceptance: a property that only ever saw 415s would say little.
#[test]
fn the_generated_requests_reach_every_answer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = case();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4000 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let publisher = MemoryPublisher::default();
        let response = runtime.block_on(ingest(&publisher).handle(request(&case)));
        seen.insert(response.status().as_u16());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), DOCUMENTED);
}

fn fault() -> impl Strategy<Value = MemoryFault> {
    let code = prop::sample::select(vec![
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "KMSThrottlingException",
    ]);
    prop_oneof![
        code.clone().prop_map(MemoryFault::FailEntries),
        Just(MemoryFault::ThrottleCall),
        Just(MemoryFault::FailCall),
        (prop::collection::vec(0usize..12, 0..6), code)
            .prop_map(|(at, c)| MemoryFault::FailAt(at, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever Kinesis does to a batch, the answer lists as accepted exactly the events it acknowledged, each
    /// once, and the status follows: all → 202, some → 207, none → 429/503.
    #[test]
    fn nothing_unacknowledged_is_reported_accepted(
        n in 1usize..12,
        faults in prop::collection::vec(fault(), 0..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let publisher = MemoryPublisher::default();
        for f in faults {
            publisher.fail_next(f);
        }
        let events: Vec<Value> = (0..n as u32).map(valid_event).collect();
        let case = Case {
            method: "POST",
            path: "/events".into(),
            content_type: Some("application/json".into()),
            webhook: None,
            sign: false,
            body: Value::from(events).to_string().into_bytes(),
        };
        let config = Config {
            default_source: Some("open".into()),
            ..Config::new("events")
        };
        let ingest = Ingest::new(&publisher, &config, sources());
        let response = runtime.block_on(ingest.handle(request(&case)));
        let body: Value = match response.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("expected a text body, got {other:?}"),
        };
        // Events, whether written one per record or packed.
        let written: Vec<String> = publisher
            .written_events()
            .iter()
            .map(|e| Envelope::decode(e).unwrap().id().to_owned())
            .collect();
        let accepted: Vec<String> = body["accepted"]
            .as_array()
            .map(|a| a.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let mut sorted_written = written.clone();
        sorted_written.sort();
        sorted_written.dedup();
        prop_assert_eq!(sorted_written.len(), written.len(), "an event was written twice");
        let mut sorted_accepted = accepted.clone();
        sorted_accepted.sort();
        prop_assert_eq!(&sorted_accepted, &sorted_written);
        let status = response.status().as_u16();
        match written.len() {
            w if w == n => prop_assert_eq!(status, 202),
            0 => {
                prop_assert!(status == 429 || status == 503, "{}", status);
                prop_assert!(response.headers().contains_key("retry-after"));
            }
            _ => {
                prop_assert_eq!(status, 207);
                prop_assert!(response.headers().contains_key("retry-after"));
                let failed = body["failed"].as_array().unwrap();
                prop_assert_eq!(failed.len() + accepted.len(), n);
                for f in failed {
                    let code = f["error"]["code"].as_str().unwrap();
                    prop_assert!(code == "throttled" || code == "stream_unavailable", "{}", code);
                }
            }
        }
    }
}
