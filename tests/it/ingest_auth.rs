//! Closed by default on the real emulators: ingest reads its sources from Secrets Manager (moto) and writes to
//! kinesis-local. Every refusal leaves the stream as it was; a revoked key stops working once the sources are
//! re-read, without a restart; and two producers that both send id `42` send two events, each handled once by a
//! consumer keeping its idempotency records in DynamoDB (moto).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tubes_ingest::credentials::api_key::{mint, SECRET_BYTES};
use tubes_ingest::sources::SecretsManagerSources;
use tubes_ingest::{Config, Ingest, Sources};
use tubes_platform::consumer::consumer_fn;
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::idempotency::{DynamoIdempotency, IdempotencyTimes};
use tubes_platform::lambda_event::kinesis_event;
use tubes_platform::{Harness, KinesisBatch, KinesisPublisher};
use tubes_tests::{KinesisLocal, Moto};

const HTTP_V2: &str = include_str!("../fixtures/apigw-http-v2-request.json");

/// A real HTTP API (v2) event for `POST /events` with the API key `key`.
fn post(key: Option<&str>, body: &Value) -> Request {
    let mut v: Value = serde_json::from_str(HTTP_V2).unwrap();
    v["requestContext"]["http"]["method"] = json!("POST");
    v["requestContext"]["http"]["path"] = json!("/events");
    v["rawPath"] = json!("/events");
    v["headers"]["content-type"] = json!("application/json");
    if let Some(key) = key {
        v["headers"]["authorization"] = json!(format!("Bearer {key}"));
    }
    v["body"] = json!(body.to_string());
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

fn signup(id: &str, source: &str, user: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": source, "type": "user.signed_up", "data": {
        "user_id": user, "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}})
}

fn code(response: &Response<Body>) -> (u16, String) {
    let body: Value = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("not a text body: {other:?}"),
    };
    (
        response.status().as_u16(),
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// The sources secret: `shop` with the keys `shop_keys` (id → hash), `crm` with one key; both user events only.
fn sources(shop_keys: &[(&str, String)], crm_hash: &str) -> String {
    let keys: serde_json::Map<String, Value> = shop_keys
        .iter()
        .map(|(id, h)| ((*id).to_owned(), json!(h)))
        .collect();
    json!({"shop": {"api_keys": keys, "event_types": ["user.*"]},
           "crm": {"api_keys": {"k1": crm_hash}, "event_types": ["user.*"]}})
    .to_string()
}

#[tokio::test]
async fn closed_by_default_on_the_real_emulators() {
    // Given the sources in Secrets Manager, a stream, and ingest re-reading the sources every second.
    let (moto, kinesis) = tokio::join!(Moto::start(), KinesisLocal::start());
    let arn = kinesis.create_stream("auth", 1).await;
    let (k1, h1) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
    let (k2, h2) = mint("shop", "k2", [2; SECRET_BYTES]).unwrap();
    let (crm, hc) = mint("crm", "k1", [3; SECRET_BYTES]).unwrap();
    let sm = moto.secrets_manager();
    let secret = sm
        .create_secret()
        .name("tubes-SourcesSecret")
        .secret_string(sources(
            &[("k1", h1.to_string()), ("k2", h2.to_string())],
            &hc.to_string(),
        ))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let fetch = SecretsManagerSources::new(sm.clone(), &secret);
    let sources_in_force = Sources::load(fetch, false, Duration::from_secs(1))
        .await
        .unwrap();
    let ingest = Ingest::new(
        KinesisPublisher::new(kinesis.client(), "auth"),
        &Config::new("auth"),
        sources_in_force,
    );
    let on_stream = || async { kinesis.read_all("auth", &arn).await[0].1.len() };

    // Every refusal: its status and code, and nothing written.
    let refusals = [
        (
            None,
            signup("a", "/shop/web", "usr_a"),
            (401, "missing_credentials"),
        ),
        (
            Some("nope"),
            signup("a", "/shop/web", "usr_a"),
            (401, "invalid_api_key"),
        ),
        (
            Some(k1.as_str()),
            json!({"specversion": "1.0", "source": "/shop/web", "type": "account.opened", "subject": "acc_1",
                   "data": {"account_id": "acc_1", "currency": "EUR", "opened_at": "2026-11-22T10:00:00Z"}}),
            (403, "event_type_not_allowed"),
        ),
        (
            Some(k1.as_str()),
            json!({"specversion": "1.0", "source": "/shop/web", "type": "payment.failed", "subject": "acc_1",
                   "data": {"payment_id": "p", "account_id": "acc_1", "amount": 1, "currency": "EUR",
                            "payer_email": "ada@example.com", "reason": "account_not_found",
                            "failed_at": "2026-11-22T10:00:00Z"}}),
            (403, "reserved_event_type"),
        ),
        (
            Some(k1.as_str()),
            signup("a", "/crm/web", "usr_a"),
            (403, "source_not_allowed"),
        ),
    ];
    for (key, body, expected) in &refusals {
        let (status, c) = code(&ingest.handle(post(*key, body)).await);
        assert_eq!((status, c.as_str()), *expected, "{body}");
    }
    assert_eq!(on_stream().await, 0, "no refusal wrote anything");

    // Two producers, one id: both accepted, two events.
    for (key, source, user) in [
        (&k1, "/shop/web", "usr_shop"),
        (&crm, "/crm/web", "usr_crm"),
    ] {
        let response = ingest
            .handle(post(Some(key), &signup("42", source, user)))
            .await;
        assert_eq!(response.status(), 202, "{source}");
    }
    assert_eq!(on_stream().await, 2);

    // The operator revokes k1 (k2 stays): without a restart, k1 is refused once the sources are re-read.
    sm.put_secret_value()
        .secret_id(&secret)
        .secret_string(sources(&[("k2", h2.to_string())], &hc.to_string()))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = ingest
            .handle(post(Some(&k1), &signup("b", "/shop/web", "usr_b")))
            .await;
        if code(&response) == (401, "invalid_api_key".into()) {
            break;
        }
        assert_eq!(
            response.status(),
            202,
            "k1 works until the sources are re-read"
        );
        assert!(
            Instant::now() < deadline,
            "k1 still works after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted_meanwhile = on_stream().await;
    let response = ingest
        .handle(post(Some(&k2), &signup("c", "/shop/web", "usr_c")))
        .await;
    assert_eq!(response.status(), 202, "k2 stays valid");
    assert_eq!(on_stream().await, accepted_meanwhile + 1);

    // Both events "42" are handled, each once, by a consumer whose idempotency records key on (source, id).
    moto.create_table("idem", "key").await;
    let handled = Mutex::new(Vec::new());
    let consumer = consumer_fn("signups", &[tubes_contract::EventType::UserSignedUp], |e| {
        handled
            .lock()
            .unwrap()
            .push(format!("{} {}", e.source(), e.id()));
        std::future::ready(Ok::<(), std::convert::Infallible>(()))
    });
    let harness = Harness::new(consumer, LogDeadLetters).with_idempotency(
        DynamoIdempotency::new(moto.dynamodb(), "idem"),
        IdempotencyTimes::default(),
    );
    let (source, records) = kinesis.read_all("auth", &arn).await.remove(0);
    let batch = || KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap();
    let first = harness.run(batch()).await;
    let again = harness.run(batch()).await;
    // The stream holds "42" twice (one per producer), "c", and "b" as often as the polling above got it
    // accepted before the revocation took hold (a sender's resends: the same event; none if the sources were
    // re-read before the first poll): three or four events.
    let resends_of_b = records.len() - 3;
    let events = 3 + resends_of_b.min(1);
    assert_eq!(
        (first.handled, first.duplicates),
        (events, records.len() - events),
        "{records:?}"
    );
    assert_eq!((again.handled, again.duplicates), (0, records.len()));
    let mut handled = handled.into_inner().unwrap();
    handled.sort();
    let mut expected = vec!["/crm/web 42", "/shop/web 42", "/shop/web c"];
    if resends_of_b > 0 {
        expected.insert(2, "/shop/web b");
    }
    assert_eq!(handled, expected);
}
