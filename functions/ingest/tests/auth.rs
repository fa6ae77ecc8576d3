//! Closed by default, through the whole handler: every refusal an unauthenticated or unauthorized request can get
//! (status, code, pointer, `WWW-Authenticate`), and that none of them writes anything. Requests are real API
//! Gateway HTTP API events (tests/fixtures), over an in-memory publisher.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tubes_ingest::config::ConfigError;
use tubes_ingest::credentials::api_key::{mint, SECRET_BYTES};
use tubes_ingest::sources::{MIN_REFRESH_GAP, RETRY_GAP_UNREAD};
use tubes_ingest::{Config, Ingest, Sources, SourcesFetch};
use tubes_platform::publish::MemoryPublisher;

mod common;

use common::{body_json, details, pairs, request, request_with, signed_up, Source};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The sources of these tests: `shop` (API keys k1, k2; signatures; an IAM role) may send user and payment
/// events as `/shop/…`; `crm` (an API key) may send user events as `/crm/…`.
struct Keys {
    shop_k1: String,
    shop_k2: String,
    crm: String,
}

fn keys() -> (Keys, String) {
    let (shop_k1, h1) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
    let (shop_k2, h2) = mint("shop", "k2", [2; SECRET_BYTES]).unwrap();
    let (crm, hc) = mint("crm", "k1", [3; SECRET_BYTES]).unwrap();
    let json = sources_json(
        &[("k1", &h1.to_string()), ("k2", &h2.to_string())],
        &hc.to_string(),
    );
    (
        Keys {
            shop_k1,
            shop_k2,
            crm,
        },
        json,
    )
}

/// The sources JSON with `shop`'s active keys `shop_keys` (id, hash).
fn sources_json(shop_keys: &[(&str, &str)], crm_hash: &str) -> String {
    let shop_keys: serde_json::Map<String, Value> = shop_keys
        .iter()
        .map(|(id, hash)| ((*id).to_owned(), json!(hash)))
        .collect();
    json!({
        "shop": {"api_keys": shop_keys, "signing_secrets": [SECRET],
                 "iam_principals": ["arn:aws:iam::123456789012:role/shop-producer"],
                 "event_types": ["user.*", "payment.*"], "ce_sources": ["/shop/*"]},
        "crm": {"api_keys": {"k1": crm_hash}, "event_types": ["user.*"]}
    })
    .to_string()
}

fn ingest<'p>(publisher: &'p MemoryPublisher, json: &str) -> Ingest<&'p MemoryPublisher> {
    Ingest::new(
        publisher,
        &Config::new("events"),
        Sources::fixed(json, false).unwrap(),
    )
}

fn event(ty: &str, ce_source: &str) -> Value {
    let mut e = signed_up();
    e["source"] = json!(ce_source);
    if ty != "user.signed_up" {
        e["type"] = json!(ty);
        e["subject"] = json!("acc_1");
        e["data"] = match ty {
            "payment.received" => json!({"payment_id": "p1", "account_id": "acc_1", "amount": 100,
                                          "currency": "EUR", "payer_email": "ada@example.com"}),
            "payment.processed" => json!({"payment_id": "p1", "account_id": "acc_1", "amount": 100,
                                           "currency": "EUR", "payer_email": "ada@example.com",
                                           "processed_at": "2026-11-22T10:00:00Z"}),
            "account.opened" => json!({"account_id": "acc_1", "currency": "EUR",
                                        "opened_at": "2026-11-22T10:00:00Z"}),
            other => panic!("no example of {other}"),
        };
    }
    e
}

fn post(path: &str, key: Option<&str>, body: &Value) -> Request {
    let mut req = request(
        Source::HttpV2,
        "POST",
        path,
        Some("application/json"),
        &body.to_string(),
    );
    if let Some(key) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    req
}

/// `POST /iam/events` as API Gateway hands it over after its IAM authorizer verified `caller`.
fn post_iam(caller: Option<&str>, body: &Value) -> Request {
    request_with(
        Source::HttpV2,
        "POST",
        "/iam/events",
        Some("application/json"),
        &body.to_string(),
        |v| match caller {
            Some(arn) => {
                v["requestContext"]["authorizer"] = json!({"iam": {"accountId": "123456789012", "userArn": arn, "callerId": "AROAEXAMPLE"}})
            }
            None => {
                v["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("authorizer");
            }
        },
    )
}

/// Asserts the refusal `status` / `code` / `field`, and that nothing reached the stream.
fn refused(
    publisher: &MemoryPublisher,
    response: &Response<Body>,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    let body = body_json(response);
    assert_eq!(response.status(), status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    assert!(
        publisher.written().is_empty(),
        "a refused request wrote to the stream"
    );
}

#[tokio::test]
async fn an_anonymous_request_is_a_401_that_names_the_schemes() {
    let (_, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    for path in ["/events", "/sources/shop/events", "/iam/events"] {
        let response = ingest
            .handle(post(path, None, &event("user.signed_up", "/shop/web")))
            .await;
        refused(
            &p,
            &response,
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            Some("/headers/authorization"),
        );
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("Bearer") && challenge.contains("Webhook-Signature"),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn a_wrong_or_malformed_key_is_a_401() {
    let (_, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    let (wrong_secret, _) = mint("shop", "k1", [9; SECRET_BYTES]).unwrap();
    let (unknown_id, _) = mint("shop", "k9", [1; SECRET_BYTES]).unwrap();
    for key in [
        wrong_secret.as_str(),
        unknown_id.as_str(),
        "nope",
        "tubes_shop.k1.short",
    ] {
        let response = ingest
            .handle(post(
                "/events",
                Some(key),
                &event("user.signed_up", "/shop/web"),
            ))
            .await;
        refused(
            &p,
            &response,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            Some("/headers/authorization"),
        );
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        // The key is never echoed.
        assert!(!body_json(&response).to_string().contains(key), "{key}");
    }
}

#[tokio::test]
async fn a_key_names_its_source_on_any_route_but_anothers() {
    let (keys, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    let crm_on_shop = ingest
        .handle(post(
            "/sources/shop/events",
            Some(&keys.crm),
            &event("user.signed_up", "/crm/web"),
        ))
        .await;
    refused(
        &p,
        &crm_on_shop,
        StatusCode::FORBIDDEN,
        "credential_for_another_source",
        Some("/path/source"),
    );
    let unknown = ingest
        .handle(post(
            "/sources/nobody/events",
            Some(&keys.crm),
            &event("user.signed_up", "/crm/web"),
        ))
        .await;
    refused(
        &p,
        &unknown,
        StatusCode::NOT_FOUND,
        "unknown_source",
        Some("/path/source"),
    );
    for path in ["/events", "/sources/shop/events"] {
        let ok = ingest
            .handle(post(
                path,
                Some(&keys.shop_k1),
                &event("user.signed_up", "/shop/web"),
            ))
            .await;
        assert_eq!(
            ok.status(),
            StatusCode::ACCEPTED,
            "{path}: {}",
            body_json(&ok)
        );
    }
    assert_eq!(p.written().len(), 2);
}

#[tokio::test]
async fn a_source_sends_only_its_types_never_a_consumer_owned_one_and_only_as_itself() {
    let (keys, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    let cases = [
        // crm may send user events only.
        (
            &keys.crm,
            event("payment.received", "/crm/web"),
            "event_type_not_allowed",
            "/type",
        ),
        (
            &keys.crm,
            event("account.opened", "/crm/web"),
            "event_type_not_allowed",
            "/type",
        ),
        // payment.processed is the payments consumer's own output: nobody sends it through ingest.
        (
            &keys.shop_k1,
            event("payment.processed", "/shop/web"),
            "reserved_event_type",
            "/type",
        ),
        // shop speaks as /shop/…, never as another producer.
        (
            &keys.shop_k1,
            event("user.signed_up", "/crm/web"),
            "source_not_allowed",
            "/source",
        ),
        (
            &keys.crm,
            event("user.signed_up", "/shop/web"),
            "source_not_allowed",
            "/source",
        ),
    ];
    for (key, body, code, field) in cases {
        let response = ingest.handle(post("/events", Some(key), &body)).await;
        refused(&p, &response, StatusCode::FORBIDDEN, code, Some(field));
        let message = body_json(&response)["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        if field == "/type" {
            assert!(
                message.contains(body["type"].as_str().unwrap()),
                "the type is named: {message}"
            );
        }
    }
}

#[tokio::test]
async fn one_disallowed_event_refuses_the_whole_batch_and_each_is_named() {
    let (keys, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    let batch = json!([
        event("user.signed_up", "/crm/web"),
        event("payment.received", "/crm/web"),
        event("user.signed_up", "/shop/web"),
        event("payment.processed", "/shop/x"),
    ]);
    let mut req = post("/events", Some(&keys.crm), &batch);
    req.headers_mut().insert(
        "content-type",
        "application/cloudevents-batch+json".parse().unwrap(),
    );
    let response = ingest.handle(req).await;
    refused(
        &p,
        &response,
        StatusCode::FORBIDDEN,
        "event_type_not_allowed",
        Some("/1/type"),
    );
    assert_eq!(
        details(&body_json(&response)),
        pairs(&[
            ("event_type_not_allowed", "/1/type"),
            ("source_not_allowed", "/2/source"),
            ("reserved_event_type", "/3/type"),
            ("source_not_allowed", "/3/source"),
        ])
    );
}

#[tokio::test]
async fn iam_callers_are_their_sources_and_nobody_else_is() {
    let (_, json) = keys();
    let p = MemoryPublisher::default();
    let ingest = ingest(&p, &json);
    let body = event("payment.received", "/shop/checkout");
    let stranger = ingest
        .handle(post_iam(
            Some("arn:aws:sts::123456789012:assumed-role/other/i-1"),
            &body,
        ))
        .await;
    refused(
        &p,
        &stranger,
        StatusCode::FORBIDDEN,
        "iam_principal_not_allowed",
        None,
    );
    // The path alone is no credential: without the authorizer's caller, the IAM route is closed.
    let no_caller = ingest.handle(post_iam(None, &body)).await;
    refused(
        &p,
        &no_caller,
        StatusCode::UNAUTHORIZED,
        "missing_credentials",
        Some("/headers/authorization"),
    );
    let shop = ingest
        .handle(post_iam(
            Some("arn:aws:sts::123456789012:assumed-role/shop-producer/i-1"),
            &body,
        ))
        .await;
    assert_eq!(shop.status(), StatusCode::ACCEPTED, "{}", body_json(&shop));
    assert_eq!(p.written().len(), 1);
}

/// Sources whose JSON a test changes, as an operator changes the secret.
#[derive(Clone, Default)]
struct Rotating(Arc<Mutex<String>>);

impl SourcesFetch for Rotating {
    async fn fetch(&self) -> Result<String, ConfigError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

#[tokio::test(start_paused = true)]
async fn keys_rotate_without_a_cold_start() {
    let (keys, json) = keys();
    let (_, crm_hash) = mint("crm", "k1", [3; SECRET_BYTES]).unwrap();
    let secret = Rotating::default();
    *secret.0.lock().unwrap() = json;
    let max_age = Duration::from_secs(60);
    let sources = Sources::load(secret.clone(), false, max_age).await.unwrap();
    let p = MemoryPublisher::default();
    let ingest = Ingest::new(&p, &Config::new("events"), sources);
    let send = |key: &str| post("/events", Some(key), &event("user.signed_up", "/shop/web"));
    let status = |r: Response<Body>| r.status();
    assert_eq!(
        status(ingest.handle(send(&keys.shop_k1)).await),
        StatusCode::ACCEPTED
    );

    // The operator revokes k1 (k2 stays) and mints k3.
    let (k3, h3) = mint("shop", "k3", [4; SECRET_BYTES]).unwrap();
    let (_, h2) = mint("shop", "k2", [2; SECRET_BYTES]).unwrap();
    *secret.0.lock().unwrap() = sources_json(
        &[("k2", &h2.to_string()), ("k3", &h3.to_string())],
        &crm_hash.to_string(),
    );

    // A new key is read as soon as it is presented (after the short gap between re-reads)…
    tokio::time::advance(MIN_REFRESH_GAP).await;
    assert_eq!(status(ingest.handle(send(&k3)).await), StatusCode::ACCEPTED);
    // … and the revoked one is refused once the sources are re-read, without a restart.
    tokio::time::advance(max_age).await;
    let revoked = ingest.handle(send(&keys.shop_k1)).await;
    let written = p.written().len();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(&revoked)["error"]["code"], "invalid_api_key");
    assert_eq!(
        status(ingest.handle(send(&keys.shop_k2)).await),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        p.written().len(),
        written + 1,
        "the revoked key wrote nothing"
    );

    // A broken edit of the secret keeps the last good sources in force.
    *secret.0.lock().unwrap() = "{not json".into();
    tokio::time::advance(max_age).await;
    assert_eq!(
        status(ingest.handle(send(&keys.shop_k2)).await),
        StatusCode::ACCEPTED
    );
}

#[tokio::test(start_paused = true)]
async fn sources_read_in_the_background_serve_the_first_request_and_until_then_nothing_is_open() {
    // Given a secret that cannot be read yet (empty: not a sources object), read in the background at cold start.
    let (keys, json) = keys();
    let secret = Rotating::default();
    let sources = Sources::in_background(secret.clone(), false, Duration::from_secs(60));
    let p = MemoryPublisher::default();
    let ingest = Ingest::new(&p, &Config::new("events"), sources);
    let send = || {
        post(
            "/events",
            Some(&keys.shop_k1),
            &event("user.signed_up", "/shop/web"),
        )
    };

    // When a request comes before any configuration could be read, then it is a 503 with the error body, its
    // Retry-After, and nothing written: never accepted, never taken as an open source.
    let early = ingest.handle(send()).await;
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(&early)["error"]["code"], "sources_unavailable");
    assert!(early.headers().contains_key("retry-after"));
    let anonymous = post("/events", None, &event("user.signed_up", "/shop/web"));
    assert_eq!(
        ingest.handle(anonymous).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(p.written().is_empty());

    // When the secret becomes readable, then the next request after the short gap reads it and is accepted.
    *secret.0.lock().unwrap() = json;
    tokio::time::advance(RETRY_GAP_UNREAD).await;
    assert_eq!(ingest.handle(send()).await.status(), StatusCode::ACCEPTED);
    assert_eq!(p.written().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_first_request_waits_for_the_read_started_at_cold_start() {
    let (keys, json) = keys();
    let secret = Rotating::default();
    *secret.0.lock().unwrap() = json;
    let sources = Sources::in_background(secret, false, Duration::from_secs(60));
    let p = MemoryPublisher::default();
    let ingest = Ingest::new(&p, &Config::new("events"), sources);
    let request = post(
        "/events",
        Some(&keys.shop_k1),
        &event("user.signed_up", "/shop/web"),
    );
    assert_eq!(ingest.handle(request).await.status(), StatusCode::ACCEPTED);
}
