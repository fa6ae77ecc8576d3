//! The whole ingest handler on arbitrary requests. The first bytes choose the path, the content type and the
//! webhook headers; the rest is the body. No panic; a refused request writes nothing; a 202 lists exactly what
//! was written.
#![no_main]

use std::sync::OnceLock;

use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use tubes_ingest::{Config, Ingest, Sources};
use tubes_platform::publish::MemoryPublisher;

const PATHS: [&str; 4] = ["/events", "/sources/partner/events", "/sources/nope/events", "/x"];
const TYPES: [&str; 4] = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "text/plain",
];

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config {
            default_source: Some("open".into()),
            max_body_bytes: 8 * 1024,
            max_event_bytes: 2 * 1024,
            max_batch_events: 8,
            write_deadline_ms: 50,
            ..Config::new("events")
        }
    })
}

/// A source that signs, and an open one (the default of `POST /events`) that may send anything.
const SOURCES: &str = r#"{"partner": {"signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "event_types": ["*"]},
                          "open": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Optional webhook headers: the next three NUL-terminated fields.
    let mut fields = rest.splitn(4, |&b| b == 0);
    let (id, ts, sig, body) = if selector & 0x10 != 0 {
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(a), Some(b), Some(c), Some(d)) => (Some(a), Some(b), Some(c), d),
            _ => (None, None, None, rest),
        }
    } else {
        (None, None, None, rest)
    };
    let mut builder = lambda_http::http::Request::builder()
        .method(if selector & 0x20 != 0 { "GET" } else { "POST" })
        .uri(format!("https://example.com{}", PATHS[(selector & 3) as usize]))
        .header("content-type", TYPES[((selector >> 2) & 3) as usize]);
    for (name, value) in [("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            builder = builder.header(name, v);
        }
    }
    let request: Request = builder.body(Body::Binary(body.to_vec())).expect("request");

    let publisher = MemoryPublisher::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let sources = Sources::fixed(SOURCES, true).expect("sources");
    let response = runtime.block_on(Ingest::new(&publisher, config(), sources).handle(request));
    let text = match response.body() {
        Body::Text(t) => t.clone(),
        other => panic!("not a text body: {other:?}"),
    };
    let json: serde_json::Value = serde_json::from_str(&text).expect("a JSON body");
    if response.status() == 202 {
        // Events, whether written a record each or packed.
        assert_eq!(
            json["accepted"].as_array().map(Vec::len),
            Some(publisher.written_events().len())
        );
    } else {
        assert!(publisher.written().is_empty(), "refused but written");
        assert!(json["error"]["code"].is_string(), "{text}");
    }
});
