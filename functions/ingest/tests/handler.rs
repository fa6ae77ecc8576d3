//! The ingest handler fed with real API Gateway / function URL events (fixtures from the Lambda runtime crate),
//! over an in-memory publisher.
// Test helpers outside `#[test]` functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use tubes_contract::{codec, Envelope, EventType};
use tubes_ingest::{Config, FixedSources, Ingest, Sources};
use tubes_platform::publish::{MemoryFault, MemoryPublisher};

mod common;

use common::*;

/// An open source that may send anything as anyone: these tests are about everything but authentication
/// (tests/auth.rs).
const OPEN: &str = r#"{"demo": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}}"#;

fn open_sources() -> Sources<FixedSources> {
    Sources::fixed(OPEN, true).unwrap()
}

fn ingest(publisher: &MemoryPublisher) -> Ingest<&MemoryPublisher> {
    Ingest::new(
        publisher,
        &Config {
            max_body_bytes: 64 * 1024,
            // Short, so that tests of "Kinesis never acknowledged" give up quickly.
            write_deadline_ms: 200,
            default_source: Some("demo".into()),
            ..Config::new("events")
        },
        open_sources(),
    )
}

/// Asserts a 4xx with the error body, and that nothing was written.
async fn assert_rejected(
    publisher: &MemoryPublisher,
    req: Request,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    let response = ingest(publisher).handle(req).await;
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = body_json(&response);
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(
        publisher.written().is_empty(),
        "nothing may be written for a rejected request"
    );
}

#[tokio::test]
async fn accepts_a_valid_event_from_every_front_door() {
    for source in ALL_SOURCES {
        let publisher = MemoryPublisher::default();
        for ct in [
            "application/json",
            "application/cloudevents+json; charset=utf-8",
        ] {
            let response = ingest(&publisher)
                .handle(post(source, ct, &signed_up().to_string()))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{source:?}");
            let body = body_json(&response);
            let accepted = &body["accepted"][0];
            assert_eq!(accepted["type"], "user.signed_up");
            assert_eq!(accepted["shard_id"], "shardId-000000000000");
            assert_eq!(accepted["sequence_number"].as_str().unwrap().len(), 56);
            // The record written is the validated envelope, keyed by its aggregate.
            let written = publisher.written();
            let record = written.last().unwrap();
            assert_eq!(record.partition_key, "usr_1");
            let envelope = codec::decode(&record.data).unwrap();
            assert_eq!(envelope.id(), accepted["id"].as_str().unwrap());
            assert_eq!(envelope.event_type(), EventType::UserSignedUp);
        }
        assert_eq!(publisher.written().len(), 2);
    }
}

#[tokio::test]
async fn assigns_a_uuid_v7_id_and_the_receive_time() {
    let publisher = MemoryPublisher::default();
    let before = time::OffsetDateTime::now_utc();
    let response = ingest(&publisher)
        .handle(post(
            Source::HttpV2,
            "application/json",
            &signed_up().to_string(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let envelope = Envelope::decode(&publisher.written()[0].data).unwrap();
    let id = uuid::Uuid::parse_str(envelope.id()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(envelope.time() >= before - time::Duration::seconds(1));
}

#[tokio::test]
async fn keeps_a_client_id() {
    let publisher = MemoryPublisher::default();
    let mut event = signed_up();
    event["id"] = json!("client-chosen-1");
    let response = ingest(&publisher)
        .handle(post(Source::RestV1, "application/json", &event.to_string()))
        .await;
    assert_eq!(body_json(&response)["accepted"][0]["id"], "client-chosen-1");
}

#[tokio::test]
async fn accepts_a_base64_encoded_body() {
    let mut v: Value = serde_json::from_str(HTTP_V2).unwrap();
    v["requestContext"]["http"]["method"] = json!("POST");
    v["rawPath"] = json!("/events");
    v["headers"]["content-type"] = json!("application/json");
    v["body"] = json!(base64::engine::general_purpose::STANDARD.encode(signed_up().to_string()));
    v["isBase64Encoded"] = json!(true);
    let req = lambda_http::request::from_str(&v.to_string()).unwrap();
    let publisher = MemoryPublisher::default();
    assert_eq!(
        ingest(&publisher).handle(req).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn every_bad_input_gets_its_error_and_writes_nothing() {
    for source in ALL_SOURCES {
        let p = MemoryPublisher::default();
        let ok = signed_up().to_string();
        assert_rejected(
            &p,
            post(source, "text/plain", &ok),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        )
        .await;
        assert_rejected(
            &p,
            request(source, "POST", "/events", None, &ok),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        )
        .await;
        assert_rejected(
            &p,
            post(source, "application/json; charset=latin1", &ok),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        )
        .await;
        assert_rejected(
            &p,
            post(source, "application/json", "{\"specversion\":"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        )
        .await;
        assert_rejected(
            &p,
            post(source, "application/json", "[1,2]"),
            StatusCode::BAD_REQUEST,
            "not_an_object",
            Some("/0"),
        )
        .await;
        assert_rejected(
            &p,
            post(source, "application/json", ""),
            StatusCode::BAD_REQUEST,
            "empty_body",
            None,
        )
        .await;

        let mut missing = signed_up();
        missing["data"].as_object_mut().unwrap().remove("email");
        assert_rejected(
            &p,
            post(source, "application/json", &missing.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            Some("/data/email"),
        )
        .await;

        let mut unknown = signed_up();
        unknown["type"] = json!("user.teleported");
        assert_rejected(
            &p,
            post(source, "application/json", &unknown.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_event_type",
            Some("/type"),
        )
        .await;

        let mut bad_email = signed_up();
        bad_email["data"]["email"] = json!("ada-at-example");
        assert_rejected(
            &p,
            post(source, "application/json", &bad_email.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            Some("/data/email"),
        )
        .await;

        let mut bad_version = signed_up();
        bad_version["specversion"] = json!("0.3");
        assert_rejected(
            &p,
            post(source, "application/json", &bad_version.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_specversion",
            Some("/specversion"),
        )
        .await;

        let mut oversized = signed_up();
        oversized["data"]["name"] = json!("x".repeat(70 * 1024));
        assert_rejected(
            &p,
            post(source, "application/json", &oversized.to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        )
        .await;

        assert_rejected(
            &p,
            request(source, "GET", "/events", None, ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        )
        .await;
        assert_rejected(
            &p,
            request(source, "POST", "/elsewhere", Some("application/json"), &ok),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        )
        .await;
    }
}

#[tokio::test]
async fn lists_every_violation_in_details() {
    let p = MemoryPublisher::default();
    let mut event = signed_up();
    event["data"]["email"] = json!("nope");
    event["data"]["name"] = json!("");
    let response = ingest(&p)
        .handle(post(Source::HttpV2, "application/json", &event.to_string()))
        .await;
    let body = body_json(&response);
    let details: Vec<(&str, &str)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        details,
        [("invalid_email", "/data/email"), ("empty", "/data/name")]
    );
    // No value of the request is echoed back.
    assert!(!body.to_string().contains("nope"));
}

#[tokio::test]
async fn an_unknown_data_member_is_refused_with_the_member_meant() {
    for source in ALL_SOURCES {
        // Given a signup whose opt-in is misspelt (today's typo would lose the opt-in and answer 202)
        let p = MemoryPublisher::default();
        let mut event = signed_up();
        event["data"]["marketing_optin"] = json!(true);
        // Then it is refused, nothing is written, and the answer names the member and the one meant
        let request = post(source, "application/json", &event.to_string());
        assert_rejected(
            &p,
            request,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_member",
            Some("/data/marketing_optin"),
        )
        .await;
        let response = ingest(&p)
            .handle(post(source, "application/json", &event.to_string()))
            .await;
        let body = body_json(&response);
        assert_eq!(
            body["error"]["message"],
            "`user.signed_up` data has no such member; did you mean `marketing_opt_in`?"
        );
        assert_eq!(
            details(&body),
            pairs(&[("unknown_member", "/data/marketing_optin")])
        );
        // An extension attribute beside `data` is still welcome.
        let mut event = signed_up();
        event["marketingoptin"] = json!(true);
        let response = ingest(&p)
            .handle(post(source, "application/json", &event.to_string()))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{source:?}");
    }
}

#[tokio::test]
async fn every_problem_of_an_event_is_in_one_answer_and_nothing_is_written() {
    let p = MemoryPublisher::default();
    // Given an event with an envelope problem, a missing, a wrongly typed and an unknown member, and a bad
    // timestamp
    let event = json!({
        "specversion": "1.0", "source": "", "type": "payment.received", "subject": "acc_1",
        "data": {"payment_id": "pay_1", "account_id": "acc_1", "amount": "12.50", "currency": "EUR",
                 "payer": "ada@example.com", "description": 7}
    });
    let response = ingest(&p)
        .handle(post(Source::HttpV2, "application/json", &event.to_string()))
        .await;
    // Then one 422 names all of them, the first at the top (data's members in document order: `Value` writes
    // them sorted)
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body_json(&response);
    assert_eq!(
        details(&body),
        pairs(&[
            ("empty", "/source"),
            ("invalid_type", "/data/amount"),
            ("invalid_type", "/data/description"),
            ("unknown_member", "/data/payer"),
            ("missing_field", "/data/payer_email"),
        ]),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "empty");
    assert_eq!(body["error"]["field"], "/source");
    assert!(p.written().is_empty(), "nothing may be written");

    // And in a batch, every problem of every event, by index.
    let mut typo = user(0);
    typo["data"]["nmae"] = json!("Ada");
    typo["data"].as_object_mut().unwrap().remove("name");
    let mut values = json!({"specversion": "1.0", "source": "/pay", "type": "payment.failed",
        "data": {"payment_id": "p", "account_id": "a", "amount": 5, "currency": "EUR", "payer_email": "a@b.co",
                 "reason": "bored", "failed_at": "yesterday"}});
    values["id"] = json!("evt-9");
    let response = batch_ingest(&p, 10)
        .handle(batch_post(&[typo, user(1), values]))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body_json(&response);
    assert_eq!(
        details(&body),
        pairs(&[
            ("unknown_member", "/0/data/nmae"),
            ("missing_field", "/0/data/name"),
            ("invalid_value", "/2/data/failed_at"),
            ("invalid_value", "/2/data/reason"),
        ]),
        "{body}"
    );
    let text = body.to_string();
    assert!(text.contains("did you mean `name`?"), "{text}");
    assert!(
        !text.contains("bored") && !text.contains("yesterday"),
        "no value is echoed: {text}"
    );
    assert!(p.written().is_empty(), "the batch is all or nothing");
}

/// The top-level message of the answer to `request`, which must be `status` with `code`.
async fn message_of(request: Request, status: StatusCode, code: &str) -> String {
    let p = MemoryPublisher::default();
    let response = ingest(&p).handle(request).await;
    assert_eq!(response.status(), status);
    let body = body_json(&response);
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(p.written().is_empty());
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn messages_say_what_to_fix() {
    let ok = signed_up().to_string();
    const EXPECTED: &str =
        "Content-Type must be application/json, application/cloudevents+json or \
        application/cloudevents-batch+json (charset utf-8)";
    let unsupported = StatusCode::UNSUPPORTED_MEDIA_TYPE;

    // 415: what was received, cleaned and cut; or that nothing was.
    let m = message_of(
        post(Source::HttpV2, "text/plain", &ok),
        unsupported,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(m, format!("{EXPECTED}; received `text/plain`"));
    let no_type = request(Source::RestV1, "POST", "/events", None, &ok);
    let m = message_of(no_type, unsupported, "unsupported_media_type").await;
    assert_eq!(m, format!("{EXPECTED}; none was sent"));
    let long = format!("application/json;\tcharset=latin1;x={}", "y".repeat(500));
    let m = message_of(
        post(Source::FunctionUrl, &long, &ok),
        unsupported,
        "unsupported_media_type",
    )
    .await;
    let quoted = m.split_once("received `").unwrap().1;
    assert!(
        quoted.starts_with("application/json;charset=latin1;x=yyy"),
        "{m}"
    );
    assert_eq!(quoted.chars().count(), 100 + "…`".chars().count(), "{m}");
    assert!(!m.contains(&ok), "never the body");

    // malformed_json: line and column.
    let m = message_of(
        post(
            Source::HttpV2,
            "application/json",
            "{\n  \"specversion\": \"1.0\",\n  \"type\" 1\n}",
        ),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    assert_eq!(m, "expected `:` (line 3, column 10)");

    // unknown_event_type: the nearest type.
    let mut event = signed_up();
    event["type"] = json!("user.signedup");
    let m = message_of(
        post(Source::HttpV2, "application/json", &event.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_event_type",
    )
    .await;
    assert_eq!(
        m,
        "is not an event type of the catalogue; did you mean `user.signed_up`?"
    );

    // subject_mismatch: the subject expected.
    let mut event = signed_up();
    event["subject"] = json!("usr_2");
    let m = message_of(
        post(Source::HttpV2, "application/json", &event.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "subject_mismatch",
    )
    .await;
    assert_eq!(m, "must equal data.user_id, usr_1 (or be left out)");

    // A bad timestamp inside data: the rule, not the parser's words.
    let mut event = signed_up();
    event["data"]["signed_up_at"] = json!("2026-11-22 10:00");
    let m = message_of(
        post(Source::HttpV2, "application/json", &event.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
    )
    .await;
    assert_eq!(
        m,
        "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z"
    );
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_method() {
    let p = MemoryPublisher::default();
    let response = ingest(&p)
        .handle(request(
            Source::HttpV2,
            "PUT",
            "/events",
            Some("application/json"),
            "{}",
        ))
        .await;
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn never_202_unless_kinesis_acknowledged_the_record() {
    let cases = [
        (
            MemoryFault::FailEntries("ProvisionedThroughputExceededException"),
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
        ),
        (
            MemoryFault::FailEntries("InternalFailure"),
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_unavailable",
        ),
        (
            MemoryFault::ThrottleCall,
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
        ),
        (
            MemoryFault::FailCall,
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_unavailable",
        ),
    ];
    for (fault, status, code) in cases {
        let p = MemoryPublisher::default();
        // Failing every attempt until the write deadline: the retries cannot save it.
        for _ in 0..10_000 {
            p.fail_next(fault.clone());
        }
        let response = ingest(&p)
            .handle(post(
                Source::HttpV2,
                "application/json",
                &signed_up().to_string(),
            ))
            .await;
        assert_eq!(response.status(), status, "{fault:?}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body = body_json(&response);
        assert_eq!(body["error"]["code"], code);
        // The detail of the failure is logged, not returned.
        assert!(!body.to_string().contains("injected"));
        assert!(p.written().is_empty());
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signing_ingest(publisher: &MemoryPublisher) -> Ingest<&MemoryPublisher> {
    let sources = Sources::fixed(
        &format!(
            r#"{{"stripe": {{"signing_secrets": ["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "{SECRET}"],
                            "event_types": ["*"], "ce_sources": ["*"]}},
                "internal": {{"open": true, "event_types": ["*"], "ce_sources": ["*"]}}}}"#
        ),
        true,
    )
    .unwrap();
    let config = Config {
        default_source: Some("internal".into()),
        ..Config::new("events")
    };
    Ingest::new(publisher, &config, sources)
}

/// A request to `path` signed with `secret` at `timestamp` (the signature over the exact body bytes).
fn signed(path: &str, body: &str, id: &str, timestamp: i64, signature: Option<String>) -> Request {
    let mut req = request(Source::HttpV2, "POST", path, Some("application/json"), body);
    let secret = tubes_ingest::webhook::Secret::parse(SECRET).unwrap();
    let sig = signature.unwrap_or_else(|| secret.sign(id, timestamp, body.as_bytes()));
    let headers = req.headers_mut();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    headers.insert("webhook-signature", sig.parse().unwrap());
    req
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn a_signed_webhook_is_accepted_under_its_webhook_id() {
    let publisher = MemoryPublisher::default();
    let body = signed_up().to_string();
    let response = signing_ingest(&publisher)
        .handle(signed(
            "/sources/stripe/events",
            &body,
            "msg_2Xk9",
            now(),
            None,
        ))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        body_json(&response)
    );
    assert_eq!(body_json(&response)["accepted"][0]["id"], "msg_2Xk9");
    let envelope = codec::decode(&publisher.written()[0].data).unwrap();
    assert_eq!(
        envelope.id(),
        "msg_2Xk9",
        "a sender's retry keeps its id downstream"
    );
    // An open source takes unsigned events; the default route stays open.
    let open = signing_ingest(&publisher);
    let r = open
        .handle(request(
            Source::HttpV2,
            "POST",
            "/sources/internal/events",
            Some("application/json"),
            &body,
        ))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = open
        .handle(post(Source::HttpV2, "application/json", &body))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unauthentic_webhooks_get_401_and_write_nothing() {
    let body = signed_up().to_string();
    let path = "/sources/stripe/events";
    let cases: Vec<(Request, &str, &str)> = vec![
        (
            // Nothing at all: no credential (a source that signs takes no unsigned request).
            request(
                Source::HttpV2,
                "POST",
                path,
                Some("application/json"),
                &body,
            ),
            "missing_credentials",
            "/headers/authorization",
        ),
        (
            signed(path, &body, "msg_1", now(), Some("v1,".into())),
            "malformed_signature",
            "/headers/webhook-signature",
        ),
        (
            signed(path, &body, "msg_1", now(), Some("v1,AAAA".into())),
            "malformed_signature",
            "/headers/webhook-signature",
        ),
        (
            signed(
                path,
                &body,
                "msg_1",
                now(),
                Some("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into()),
            ),
            "unsupported_signature_version",
            "/headers/webhook-signature",
        ),
        (
            signed(
                path,
                &body,
                "msg_1",
                now(),
                Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into()),
            ),
            "signature_mismatch",
            "/headers/webhook-signature",
        ),
        (
            signed(path, &body, "msg_1", now() - 301, None),
            "signature_timestamp_too_old",
            "/headers/webhook-timestamp",
        ),
        (
            signed(path, &body, "msg_1", now() + 301, None),
            "signature_timestamp_in_future",
            "/headers/webhook-timestamp",
        ),
    ];
    for (req, code, field) in cases {
        let publisher = MemoryPublisher::default();
        let response = signing_ingest(&publisher).handle(req).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{code}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("Webhook-Signature"), "{challenge}");
        let b = body_json(&response);
        assert_eq!(
            (b["error"]["code"].as_str(), b["error"]["field"].as_str()),
            (Some(code), Some(field)),
            "{b}"
        );
        assert!(publisher.written().is_empty(), "{code}: nothing written");
    }
    // The signature covers the exact bytes: the same JSON re-serialised (a space removed) no longer verifies.
    let publisher = MemoryPublisher::default();
    let mut req = signed(path, &body, "msg_1", now(), None);
    *req.body_mut() = Body::Text(body.replacen(':', ": ", 1));
    let response = signing_ingest(&publisher).handle(req).await;
    assert_eq!(body_json(&response)["error"]["code"], "signature_mismatch");
    // An unknown source.
    let response = signing_ingest(&publisher)
        .handle(request(
            Source::HttpV2,
            "POST",
            "/sources/nobody/events",
            Some("application/json"),
            &body,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(&response)["error"]["code"], "unknown_source");
    assert!(publisher.written().is_empty());
}

/// Ingest writing one record per event (`PACK_MAX_BYTES=0`): these tests are about records, chunks and each
/// record's own outcome; packing has its own below.
fn batch_ingest(publisher: &MemoryPublisher, max_batch_events: usize) -> Ingest<&MemoryPublisher> {
    let config = Config {
        pack_max_bytes: 0,
        max_batch_events,
        write_deadline_ms: 200,
        max_body_bytes: 4 << 20,
        default_source: Some("demo".into()),
        ..Config::new("events")
    };
    Ingest::new(publisher, &config, open_sources())
}

fn user(i: usize) -> Value {
    let mut e = signed_up();
    e["data"]["user_id"] = json!(format!("usr_{i}"));
    e
}

fn batch_post(events: &[Value]) -> Request {
    let body = Value::Array(events.to_vec()).to_string();
    request(
        Source::HttpV2,
        "POST",
        "/events",
        Some("application/cloudevents-batch+json"),
        &body,
    )
}

#[tokio::test]
async fn a_batch_is_written_in_chunks_and_every_event_reported() {
    let p = MemoryPublisher::default();
    let events: Vec<Value> = (0..1_200).map(user).collect();
    let response = batch_ingest(&p, 2_000).handle(batch_post(&events)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body = body_json(&response);
    let accepted = body["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 1_200);
    assert!(accepted.iter().enumerate().all(|(i, a)| a["index"] == i));
    assert_eq!(
        p.calls(),
        [500, 500, 200],
        "PutRecords within Kinesis's 500-record limit"
    );
    let keys: Vec<String> = p.written().into_iter().map(|r| r.partition_key).collect();
    assert_eq!(keys[..3], ["usr_0", "usr_1", "usr_2"]);
    // A JSON array sent as application/json is a batch too.
    let r = batch_ingest(&p, 10)
        .handle(request(
            Source::RestV1,
            "POST",
            "/events",
            Some("application/json"),
            &json!([user(1)]).to_string(),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn one_invalid_event_rejects_the_batch_and_names_each_problem() {
    let p = MemoryPublisher::default();
    let mut bad_source = user(1);
    bad_source.as_object_mut().unwrap().remove("source");
    let mut bad_currency = json!({"specversion": "1.0", "source": "/shop", "type": "payment.received",
        "data": {"payment_id": "p", "account_id": "a", "amount": 5, "currency": "EURO", "payer_email": "a@b.co"}});
    bad_currency["id"] = json!("pay-1");
    let response = batch_ingest(&p, 10)
        .handle(batch_post(&[user(0), bad_source, bad_currency]))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body_json(&response);
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["/1/source", "/2/data/currency"], "{body}");
    assert_eq!(body["error"]["field"], "/1/source");
    assert!(
        p.written().is_empty(),
        "valid siblings are not written: the batch is all or nothing"
    );
}

#[tokio::test]
async fn two_events_of_a_batch_under_one_id_are_refused_naming_both() {
    let with_id = |i: usize, id: &str, source: &str| {
        let mut e = user(i);
        e["id"] = json!(id);
        e["source"] = json!(source);
        e
    };
    let p = MemoryPublisher::default();
    let response = batch_ingest(&p, 10)
        .handle(batch_post(&[
            with_id(0, "evt-1", "/shop/web"),
            with_id(1, "evt-2", "/shop/web"),
            with_id(2, "evt-1", "/shop/web"),
            with_id(3, "evt-2", "/shop/web"),
        ]))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = body_json(&response);
    assert_eq!(body["error"]["code"], "duplicate_id");
    assert_eq!(
        details(&body),
        pairs(&[("duplicate_id", "/2/id"), ("duplicate_id", "/3/id")])
    );
    let message = body["error"]["details"][1]["message"].as_str().unwrap();
    assert!(message.contains("event 1 "), "names the first: {message}");
    assert!(p.written().is_empty());

    // Ids are unique per source: the same id from two sources is two events.
    let response = batch_ingest(&p, 10)
        .handle(batch_post(&[
            with_id(0, "evt-1", "/shop/web"),
            with_id(1, "evt-1", "/shop/app"),
        ]))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_partially_acknowledged_batch_gets_207_with_each_outcome() {
    let p = MemoryPublisher::default();
    p.fail_next(MemoryFault::FailAt(
        vec![1],
        "ProvisionedThroughputExceededException",
    ));
    for _ in 0..10_000 {
        // Its retries carry only the failed record, at position 0.
        p.fail_next(MemoryFault::FailAt(
            vec![0],
            "ProvisionedThroughputExceededException",
        ));
    }
    let response = batch_ingest(&p, 10)
        .handle(batch_post(&[user(0), user(1), user(2)]))
        .await;
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = body_json(&response);
    let accepted: Vec<u64> = body["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["index"].as_u64().unwrap())
        .collect();
    assert_eq!(accepted, [0, 2]);
    let failed = &body["failed"][0];
    assert_eq!(
        (failed["index"].as_u64(), failed["error"]["code"].as_str()),
        (Some(1), Some("throttled"))
    );
    assert_eq!(body["failed"].as_array().unwrap().len(), 1);
    // Exactly what was acknowledged was reported as accepted.
    let written: Vec<String> = p.written().into_iter().map(|r| r.partition_key).collect();
    assert_eq!(written, ["usr_0", "usr_2"]);
}

#[tokio::test]
async fn batch_and_body_limits_each_have_their_error() {
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let mut big = user(1);
    big["data"]["name"] = json!("x".repeat(70 * 1024));
    let cases: Vec<(Request, StatusCode, &str, Option<&str>)> = vec![
        (
            batch_post(&(0..11).map(user).collect::<Vec<_>>()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            None,
        ),
        (
            batch_post(&[]),
            StatusCode::BAD_REQUEST,
            "empty_batch",
            None,
        ),
        (
            batch_post(&[user(0), big]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
            Some("/1"),
        ),
        (
            post(Source::HttpV2, "application/json", &deep),
            StatusCode::BAD_REQUEST,
            "nesting_too_deep",
            None,
        ),
        (
            request(
                Source::HttpV2,
                "POST",
                "/events",
                Some("application/cloudevents+json"),
                &json!([user(0)]).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "not_an_object",
            None,
        ),
        (
            request(
                Source::HttpV2,
                "POST",
                "/events",
                Some("application/cloudevents-batch+json"),
                &user(0).to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            None,
        ),
    ];
    for (req, status, code, field) in cases {
        let p = MemoryPublisher::default();
        let response = batch_ingest(&p, 10).handle(req).await;
        let body = body_json(&response);
        assert_eq!(response.status(), status, "{code}: {body}");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["field"].as_str(), field, "{body}");
        assert!(p.written().is_empty(), "{code}: nothing written");
    }
    // Strict UTF-8: a body with an invalid byte (sent base64-encoded, as API Gateway does for binary bodies).
    let p = MemoryPublisher::default();
    let mut req = post(Source::HttpV2, "application/json", "{}");
    *req.body_mut() = Body::Binary(b"{\"specversion\": \"1.0\xff\"}".to_vec());
    let response = batch_ingest(&p, 10).handle(req).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(&response)["error"]["code"], "invalid_utf8");
}

#[tokio::test]
async fn a_signed_batch_gets_ids_from_its_webhook_id() {
    let p = MemoryPublisher::default();
    let body = json!([user(0), user(1)]).to_string();
    let mut req = signed("/sources/stripe/events", &body, "msg_batch", now(), None);
    req.headers_mut().insert(
        "content-type",
        "application/cloudevents-batch+json".parse().unwrap(),
    );
    let response = signing_ingest(&p).handle(req).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let ids: Vec<String> = p
        .written_events()
        .iter()
        .map(|e| codec::decode(e).unwrap().id().to_owned())
        .collect();
    assert_eq!(ids, ["msg_batch-0", "msg_batch-1"]);
}

fn post_with_key(body: &str, content_type: &str, key: Option<&str>) -> Request {
    request_with(
        Source::HttpV2,
        "POST",
        "/events",
        Some(content_type),
        body,
        |v| {
            if let Some(key) = key {
                v["headers"]["idempotency-key"] = json!(key);
            }
        },
    )
}

fn written_ids(p: &MemoryPublisher) -> Vec<String> {
    p.written_events()
        .iter()
        .map(|e| codec::decode(e).unwrap().id().to_owned())
        .collect()
}

#[tokio::test]
async fn a_resend_under_the_same_idempotency_key_is_the_same_events() {
    let mut own = user(3);
    own["id"] = json!("mine");
    let body = json!([user(1), user(2), own]).to_string();
    let p = MemoryPublisher::default();
    let send = |key: Option<&'static str>| {
        let p = &p;
        let body = body.clone();
        async move {
            let response = batch_ingest(p, 10)
                .handle(post_with_key(
                    &body,
                    "application/cloudevents-batch+json",
                    key,
                ))
                .await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            body_json(&response)["accepted"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let first = send(Some("\"order-77-attempt\"")).await;
    let again = send(Some("order-77-attempt")).await;
    assert_eq!(first, again, "the same key, quoted or bare: the same ids");
    assert_eq!(first[2], "mine", "an event's own id is kept");
    assert_ne!(first[0], first[1]);
    let other = send(Some("order-78")).await;
    assert_ne!(other[..2], first[..2], "another key, other ids");
    let unkeyed = send(None).await;
    let unkeyed_again = send(None).await;
    assert_ne!(unkeyed[..2], unkeyed_again[..2], "no key: fresh ids");
    // What the stream got carries the ids the answers named.
    assert_eq!(written_ids(&p)[..3], first[..]);
    assert_eq!(written_ids(&p)[3..6], first[..]);

    // A single event too.
    let single = signed_up().to_string();
    let ids: Vec<String> = twice_under_one_key(&p, &single).await;
    assert_eq!(ids[0], ids[1]);
}

async fn twice_under_one_key(p: &MemoryPublisher, body: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = ingest(p)
            .handle(post_with_key(body, "application/json", Some("one-event")))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        ids.push(
            body_json(&response)["accepted"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_and_writes_nothing() {
    let long = "k".repeat(256);
    for key in ["\"\"", "\"open", "a\"b", "  ", long.as_str()] {
        let p = MemoryPublisher::default();
        assert_rejected(
            &p,
            post_with_key(&signed_up().to_string(), "application/json", Some(key)),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            Some("/headers/idempotency-key"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_unacknowledged_write_lists_every_event_with_the_id_to_resend_it_under() {
    let p = MemoryPublisher::default();
    for _ in 0..10_000 {
        p.fail_next(MemoryFault::FailCall);
    }
    let body = json!([user(1), user(2)]).to_string();
    let response = batch_ingest(&p, 10)
        .handle(post_with_key(
            &body,
            "application/cloudevents-batch+json",
            Some("req-9"),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused = body_json(&response);
    assert_eq!(refused["error"]["code"], "stream_unavailable");
    let listed = refused["events"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{refused}");
    assert_eq!(listed[1]["index"], 1);
    assert_eq!(listed[1]["type"], "user.signed_up");

    // The stream is back: the same request under the same key is accepted under the ids listed.
    let healthy = MemoryPublisher::default();
    let response = batch_ingest(&healthy, 10)
        .handle(post_with_key(
            &body,
            "application/cloudevents-batch+json",
            Some("req-9"),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted = body_json(&response)["accepted"].clone();
    for i in 0..2 {
        assert_eq!(accepted[i]["id"], listed[i]["id"]);
    }

    // A single event is listed without an index.
    let p = MemoryPublisher::default();
    for _ in 0..10_000 {
        p.fail_next(MemoryFault::ThrottleCall);
    }
    let response = ingest(&p)
        .handle(post(
            Source::HttpV2,
            "application/json",
            &signed_up().to_string(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let refused = body_json(&response);
    assert_eq!(refused["events"].as_array().unwrap().len(), 1);
    assert!(refused["events"][0].get("index").is_none());
    assert!(refused["events"][0]["id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_name_that_reads_as_another_is_refused() {
    let mut event = signed_up();
    // "Ada" followed by a right-to-left override: shows reversed text after it in an e-mail or a dashboard.
    event["data"]["name"] = json!("Ada\u{202E}nimda");
    let p = MemoryPublisher::default();
    assert_rejected(
        &p,
        post(Source::HttpV2, "application/json", &event.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text",
        Some("/data/name"),
    )
    .await;
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn with_traceparent(mut req: Request, value: &str) -> Request {
    req.headers_mut()
        .insert("traceparent", value.parse().unwrap());
    req
}

/// POSTs `batch` with a `traceparent` of trace [`TRACE`]; asserts it was accepted.
async fn post_traced_batch(publisher: &MemoryPublisher, batch: &str) {
    let response = ingest(publisher)
        .handle(with_traceparent(
            post(Source::HttpV2, "application/cloudevents-batch+json", batch),
            &format!("00-{TRACE}-00f067aa0ba902b7-01"),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// The trace id of a `traceparent`/`traceresponse` value.
fn trace_of(value: &str) -> &str {
    value.split('-').nth(1).unwrap()
}

/// The `traceparent` of each event written.
fn written_traces(publisher: &MemoryPublisher) -> Vec<String> {
    publisher
        .written_events()
        .iter()
        .map(|e| {
            let e = Envelope::decode(e).unwrap();
            e.traceparent()
                .expect("every event carries a trace")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn the_callers_trace_goes_on_every_event_and_comes_back_in_traceresponse() {
    let publisher = MemoryPublisher::default();
    let caller = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let batch = json!([signed_up(), signed_up()]).to_string();
    let response = ingest(&publisher)
        .handle(with_traceparent(
            post(Source::HttpV2, "application/cloudevents-batch+json", &batch),
            &caller,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answered = response.headers()["traceresponse"].to_str().unwrap();
    assert_eq!(trace_of(answered), TRACE);
    assert_ne!(
        answered, caller,
        "ingest's own span is the parent downstream"
    );
    assert_eq!(written_traces(&publisher), [answered, answered]);
}

#[tokio::test]
async fn without_a_valid_traceparent_a_trace_is_started_and_the_request_is_not_refused() {
    for header in [
        None,
        Some("garbage"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ] {
        let publisher = MemoryPublisher::default();
        let mut req = post(Source::RestV1, "application/json", &signed_up().to_string());
        if let Some(h) = header {
            req = with_traceparent(req, h);
        }
        let response = ingest(&publisher).handle(req).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{header:?}");
        let answered = response.headers()["traceresponse"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            tubes_contract::TraceParent::parse(&answered).is_some(),
            "{answered}"
        );
        assert_eq!(written_traces(&publisher), [answered], "{header:?}");
    }
    // Two requests, two traces.
    let publisher = MemoryPublisher::default();
    let one = ingest(&publisher)
        .handle(post(
            Source::RestV1,
            "application/json",
            &signed_up().to_string(),
        ))
        .await;
    let two = ingest(&publisher)
        .handle(post(
            Source::RestV1,
            "application/json",
            &signed_up().to_string(),
        ))
        .await;
    assert_ne!(
        trace_of(one.headers()["traceresponse"].to_str().unwrap()),
        trace_of(two.headers()["traceresponse"].to_str().unwrap())
    );
}

#[tokio::test]
async fn an_events_own_traceparent_is_kept_and_a_broken_one_is_refused() {
    let publisher = MemoryPublisher::default();
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let mut traced = signed_up();
    traced["traceparent"] = json!(own);
    let batch = json!([traced, signed_up()]).to_string();
    post_traced_batch(&publisher, &batch).await;
    let traces = written_traces(&publisher);
    assert_eq!(traces[0], own, "the producer's context comes first");
    assert_eq!(trace_of(&traces[1]), TRACE);

    let mut broken = signed_up();
    broken["traceparent"] = json!("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01");
    assert_rejected(
        &MemoryPublisher::default(),
        post(Source::HttpV2, "application/json", &broken.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_value",
        Some("/traceparent"),
    )
    .await;
}

/// Log lines written, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn at_info_a_request_is_one_json_line_with_its_counts_and_trace_and_never_its_body() {
    let lines = Lines::default();
    let writer = lines.clone();
    let _logging = tracing::subscriber::set_default(tubes_platform::telemetry::logs::subscriber(
        move || writer.clone(),
        Some("tubes-ingest".into()),
        tubes_platform::telemetry::logs::filter(Some("info".into()), None),
    ));
    // Each log call site caches whether any subscriber wants it; the other tests of this binary run at once
    // without one, and a call site they registered first may not know this one yet (seen once in 16 runs).
    tracing::callsite::rebuild_interest_cache();
    let publisher = MemoryPublisher::default();
    let batch = json!([signed_up(), signed_up()]).to_string();
    post_traced_batch(&publisher, &batch).await;
    let mut broken = signed_up();
    broken["data"]["email"] = json!("not an address");
    let refused = ingest(&publisher)
        .handle(post(
            Source::HttpV2,
            "application/json",
            &broken.to_string(),
        ))
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let logged = lines.parsed();
    assert_eq!(logged.len(), 2, "{logged:#?}");
    let answered = &logged[0];
    assert_eq!(answered["message"], "answered");
    assert_eq!(answered["level"], "INFO");
    assert_eq!(answered["function"], "tubes-ingest");
    assert_eq!(answered["status"], 202);
    assert_eq!(answered["events"], 2);
    assert_eq!(answered["accepted"], 2);
    assert_eq!(answered["trace_id"], TRACE);
    // Counts that are zero are left out (a line is billed by the byte).
    assert!(answered.get("throttled").is_none() && answered.get("retried").is_none());
    let stamp = answered["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(),
        "{stamp}"
    );
    let refused = &logged[1];
    assert_eq!(refused["message"], "refused");
    assert_eq!(refused["status"], 422);
    assert_eq!(refused["code"], "invalid_email");
    // No body, no address, in any line.
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("ada@example.com")
            && !text.contains("not an address")
            && !text.contains("Ada"),
        "{text}"
    );
}
