//! The ingest handler fed with real API Gateway / function URL events (fixtures from the Lambda runtime crate),
//! over an in-memory publisher.

use base64::Engine as _;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tubes_ingest::{Config, Ingest};
use tubes_shared::publish::{MemoryFault, MemoryPublisher};
use tubes_shared::{codec, Envelope, EventType};

const REST_V1: &str = include_str!("../../../tests/fixtures/apigw-rest-v1-request.json");
const HTTP_V2: &str = include_str!("../../../tests/fixtures/apigw-http-v2-request.json");
const FUNCTION_URL: &str = include_str!("../../../tests/fixtures/function-url-request.json");

#[derive(Clone, Copy, Debug)]
enum Source {
    RestV1,
    HttpV2,
    FunctionUrl,
}

const ALL_SOURCES: [Source; 3] = [Source::RestV1, Source::HttpV2, Source::FunctionUrl];

/// A real event of `source`, turned into `method path` with these headers and body.
fn request(source: Source, method: &str, path: &str, content_type: Option<&str>, body: &str) -> Request {
    let fixture = match source {
        Source::RestV1 => REST_V1,
        Source::HttpV2 => HTTP_V2,
        Source::FunctionUrl => FUNCTION_URL,
    };
    let mut v: Value = serde_json::from_str(fixture).unwrap();
    let headers = v["headers"].as_object_mut().unwrap();
    headers.retain(|k, _| !k.eq_ignore_ascii_case("content-type"));
    if let Some(ct) = content_type {
        headers.insert("content-type".into(), json!(ct));
    }
    match source {
        Source::RestV1 => {
            v["httpMethod"] = json!(method);
            v["requestContext"]["httpMethod"] = json!(method);
            v["path"] = json!(path);
            v["resource"] = json!(path);
            v["multiValueHeaders"] = json!({});
        }
        Source::HttpV2 | Source::FunctionUrl => {
            v["requestContext"]["http"]["method"] = json!(method);
            v["requestContext"]["http"]["path"] = json!(path);
            v["rawPath"] = json!(path);
        }
    }
    v["body"] = json!(body);
    v["isBase64Encoded"] = json!(false);
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

fn post(source: Source, content_type: &str, body: &str) -> Request {
    request(source, "POST", "/events", Some(content_type), body)
}

fn signed_up() -> Value {
    json!({
        "specversion": "1.0",
        "source": "/shop/web",
        "type": "user.signed_up",
        "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

fn ingest(publisher: &MemoryPublisher) -> Ingest<&MemoryPublisher> {
    Ingest::new(publisher, &Config { stream_name: "events".into(), max_body_bytes: 64 * 1024 })
}

fn body_json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// Asserts a 4xx with the error body, and that nothing was written.
async fn assert_rejected(publisher: &MemoryPublisher, req: Request, status: StatusCode, code: &str, field: Option<&str>) {
    let response = ingest(publisher).handle(req).await;
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = body_json(&response);
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(publisher.written().is_empty(), "nothing may be written for a rejected request");
}

#[tokio::test]
async fn accepts_a_valid_event_from_every_front_door() {
    for source in ALL_SOURCES {
        let publisher = MemoryPublisher::default();
        for ct in ["application/json", "application/cloudevents+json; charset=utf-8"] {
            let response = ingest(&publisher).handle(post(source, ct, &signed_up().to_string())).await;
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
    let response = ingest(&publisher).handle(post(Source::HttpV2, "application/json", &signed_up().to_string())).await;
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
    let response = ingest(&publisher).handle(post(Source::RestV1, "application/json", &event.to_string())).await;
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
    assert_eq!(ingest(&publisher).handle(req).await.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn every_bad_input_gets_its_error_and_writes_nothing() {
    for source in ALL_SOURCES {
        let p = MemoryPublisher::default();
        let ok = signed_up().to_string();
        assert_rejected(&p, post(source, "text/plain", &ok), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
        assert_rejected(&p, request(source, "POST", "/events", None, &ok), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
        assert_rejected(&p, post(source, "application/json; charset=latin1", &ok), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", None).await;
        assert_rejected(&p, post(source, "application/json", "{\"specversion\":"), StatusCode::BAD_REQUEST, "malformed_json", None).await;
        assert_rejected(&p, post(source, "application/json", "[1,2]"), StatusCode::BAD_REQUEST, "not_an_object", None).await;
        assert_rejected(&p, post(source, "application/json", ""), StatusCode::BAD_REQUEST, "empty_body", None).await;

        let mut missing = signed_up();
        missing["data"].as_object_mut().unwrap().remove("email");
        assert_rejected(&p, post(source, "application/json", &missing.to_string()), StatusCode::UNPROCESSABLE_ENTITY, "missing_field", Some("/data/email")).await;

        let mut unknown = signed_up();
        unknown["type"] = json!("user.teleported");
        assert_rejected(&p, post(source, "application/json", &unknown.to_string()), StatusCode::UNPROCESSABLE_ENTITY, "unknown_event_type", Some("/type")).await;

        let mut bad_email = signed_up();
        bad_email["data"]["email"] = json!("ada-at-example");
        assert_rejected(&p, post(source, "application/json", &bad_email.to_string()), StatusCode::UNPROCESSABLE_ENTITY, "invalid_email", Some("/data/email")).await;

        let mut bad_version = signed_up();
        bad_version["specversion"] = json!("0.3");
        assert_rejected(&p, post(source, "application/json", &bad_version.to_string()), StatusCode::UNPROCESSABLE_ENTITY, "unsupported_specversion", Some("/specversion")).await;

        let mut oversized = signed_up();
        oversized["data"]["name"] = json!("x".repeat(70 * 1024));
        assert_rejected(&p, post(source, "application/json", &oversized.to_string()), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None).await;

        assert_rejected(&p, request(source, "GET", "/events", None, ""), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None).await;
        assert_rejected(&p, request(source, "POST", "/elsewhere", Some("application/json"), &ok), StatusCode::NOT_FOUND, "not_found", None).await;
    }
}

#[tokio::test]
async fn lists_every_violation_in_details() {
    let p = MemoryPublisher::default();
    let mut event = signed_up();
    event["data"]["email"] = json!("nope");
    event["data"]["name"] = json!("");
    let response = ingest(&p).handle(post(Source::HttpV2, "application/json", &event.to_string())).await;
    let body = body_json(&response);
    let details: Vec<(&str, &str)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["field"].as_str().unwrap()))
        .collect();
    assert_eq!(details, [("invalid_email", "/data/email"), ("empty", "/data/name")]);
    // No value of the request is echoed back.
    assert!(!body.to_string().contains("nope"));
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_method() {
    let p = MemoryPublisher::default();
    let response = ingest(&p).handle(request(Source::HttpV2, "PUT", "/events", Some("application/json"), "{}")).await;
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn never_202_unless_kinesis_acknowledged_the_record() {
    let cases = [
        (MemoryFault::FailEntries("ProvisionedThroughputExceededException"), StatusCode::TOO_MANY_REQUESTS, "throttled"),
        (MemoryFault::FailEntries("InternalFailure"), StatusCode::SERVICE_UNAVAILABLE, "stream_unavailable"),
        (MemoryFault::ThrottleCall, StatusCode::TOO_MANY_REQUESTS, "throttled"),
        (MemoryFault::FailCall, StatusCode::SERVICE_UNAVAILABLE, "stream_unavailable"),
    ];
    for (fault, status, code) in cases {
        let p = MemoryPublisher::default();
        p.fail_next(fault.clone());
        let response = ingest(&p).handle(post(Source::HttpV2, "application/json", &signed_up().to_string())).await;
        assert_eq!(response.status(), status, "{fault:?}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body = body_json(&response);
        assert_eq!(body["error"]["code"], code);
        // The detail of the failure is logged, not returned.
        assert!(!body.to_string().contains("injected"));
        assert!(p.written().is_empty());
    }
}
