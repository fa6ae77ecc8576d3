//! The deployed entry point ([`Ingest::invoke`]: the HTTP API event's bytes → [`HttpApiEvent`], which keeps only
//! what ingest reads → the answer API Gateway reads back) answers every request exactly as the handler does
//! through `lambda_http`'s request: same status, headers and body, for real HTTP API and function URL events
//! (tests/fixtures) with API keys, signatures, the IAM authorizer's caller, base64 bodies, stages and refusals.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use lambda_http::http::HeaderMap;
use lambda_http::Body;
use serde_json::{json, Value};
use tubes_ingest::credentials::api_key::{mint, SECRET_BYTES};
use tubes_ingest::webhook::Secret;
use tubes_ingest::{Config, HttpApiEvent, Ingest, Sources};
use tubes_platform::publish::MemoryPublisher;

mod common;

use common::{FUNCTION_URL, HTTP_V2};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROLE: &str = "arn:aws:iam::123456789012:role/shop-producer";

/// `shop` signs, has an API key and an IAM role; `open` takes anything (the default source of `POST /events`).
fn sources_json() -> (String, String) {
    let (key, hash) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
    let json = json!({
        "shop": {"api_keys": {"k1": hash.to_string()}, "signing_secrets": [SECRET], "iam_principals": [ROLE],
                 "event_types": ["*"], "ce_sources": ["*"]},
        "open": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}
    })
    .to_string();
    (json, key)
}

fn ingest<'p>(publisher: &'p MemoryPublisher, json: &str) -> Ingest<&'p MemoryPublisher> {
    Ingest::new(
        publisher,
        &Config {
            default_source: Some("open".into()),
            ..Config::new("events")
        },
        Sources::fixed(json, true).unwrap(),
    )
}

fn event(id: &str) -> String {
    json!({"specversion": "1.0", "id": id, "source": "/shop/web", "type": "user.signed_up",
           "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada",
                    "signed_up_at": "2026-11-22T10:00:00Z"}})
    .to_string()
}

/// A real event of `fixture`, as `method path` with `headers` (replacing the fixture's) and `body`.
fn http_event(
    fixture: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let mut v: Value = serde_json::from_str(fixture).unwrap();
    v["requestContext"]["http"]["method"] = json!(method);
    v["requestContext"]["http"]["path"] = json!(path);
    v["rawPath"] = json!(path);
    let h = v["headers"].as_object_mut().unwrap();
    h.retain(|k, _| {
        !["content-type", "authorization"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(k))
    });
    for (name, value) in headers {
        h.insert((*name).to_owned(), json!(value));
    }
    v["body"] = body.map_or(Value::Null, |b| json!(b));
    v["isBase64Encoded"] = json!(false);
    v
}

/// What both entry points answered: status, headers, body. The trace response is kept only as the trace id the
/// caller sent (its span is ingest's own, and without a `traceparent` the whole trace is new each time).
type Answer = (u16, HeaderMap, Option<String>);

fn sent_trace_only(headers: &mut HeaderMap, sent: bool) {
    let value = headers.remove("traceresponse").expect("a trace response");
    if sent {
        let trace = value
            .to_str()
            .unwrap()
            .split('-')
            .nth(1)
            .unwrap()
            .to_owned();
        headers.insert("traceresponse", trace.parse().unwrap());
    }
}

fn text(body: Option<Body>) -> Option<String> {
    body.map(|b| match b {
        Body::Text(t) => t,
        other => panic!("a text body, not {other:?}"),
    })
}

/// The same event through [`Ingest::invoke`] (from its bytes, as the runtime hands them over) and through
/// `lambda_http`'s request into [`Ingest::handle`], each over its own publisher.
async fn both(json: &str, v: &Value) -> (Answer, Answer) {
    let bytes = serde_json::to_vec(v).unwrap();
    let traced = v["headers"].get("traceparent").is_some();
    let (p1, p2) = (MemoryPublisher::default(), MemoryPublisher::default());
    let event: HttpApiEvent = serde_json::from_slice(&bytes).unwrap();
    let mut invoked = ingest(&p1, json).invoke(event).await;
    sent_trace_only(&mut invoked.headers, traced);
    let request = lambda_http::request::from_str(&v.to_string()).unwrap();
    let (mut parts, body) = ingest(&p2, json).handle(request).await.into_parts();
    sent_trace_only(&mut parts.headers, traced);
    // As many records (their trace spans differ: each request starts its own).
    assert_eq!(
        p1.written().len(),
        p2.written().len(),
        "the same records written"
    );
    (
        (invoked.status_code, invoked.headers, text(invoked.body)),
        (parts.status.as_u16(), parts.headers, text(Some(body))),
    )
}

#[tokio::test]
async fn an_invocation_answers_as_the_handler_does() {
    let (json, key) = sources_json();
    let secret = Secret::parse(SECRET).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = event("evt_1");
    let signature = secret.sign("msg_1", now, body.as_bytes());
    let bearer = format!("Bearer {key}");
    let ce = ("content-type", "application/cloudevents+json");
    let traceparent = (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let b = Some(body.as_str());
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "open",
            http_event(HTTP_V2, "POST", "/events", &[ce, traceparent], b),
            202,
        ),
        (
            "api key",
            http_event(
                HTTP_V2,
                "POST",
                "/events",
                &[ce, ("authorization", &bearer)],
                b,
            ),
            202,
        ),
        (
            "wrong api key",
            http_event(
                HTTP_V2,
                "POST",
                "/sources/shop/events",
                &[ce, ("authorization", "Bearer tubes_shop.k1.AAAA")],
                b,
            ),
            401,
        ),
        (
            "signed",
            http_event(
                HTTP_V2,
                "POST",
                "/sources/shop/events",
                &[
                    ce,
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", &now.to_string()),
                    ("webhook-signature", &signature),
                ],
                b,
            ),
            202,
        ),
        (
            "signature of another body",
            http_event(
                HTTP_V2,
                "POST",
                "/sources/shop/events",
                &[
                    ce,
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", &now.to_string()),
                    ("webhook-signature", &signature),
                ],
                Some(&event("evt_2")),
            ),
            401,
        ),
        (
            "idempotency key, header names as sent",
            http_event(
                HTTP_V2,
                "POST",
                "/events",
                &[
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", "key-1"),
                ],
                Some(
                    r#"[{"specversion":"1.0","source":"/shop/web","type":"user.signed_up","data":{"user_id":"usr_1","email":"ada@example.com","name":"Ada","signed_up_at":"2026-11-22T10:00:00Z"}}]"#,
                ),
            ),
            202,
        ),
        (
            "function URL",
            http_event(FUNCTION_URL, "POST", "/events", &[ce], b),
            202,
        ),
        (
            "media type",
            http_event(
                HTTP_V2,
                "POST",
                "/events",
                &[("content-type", "text/plain")],
                b,
            ),
            415,
        ),
        (
            "method",
            http_event(HTTP_V2, "GET", "/events", &[ce], None),
            405,
        ),
        (
            "path",
            http_event(HTTP_V2, "POST", "/nowhere", &[ce], b),
            404,
        ),
        (
            "no body",
            http_event(HTTP_V2, "POST", "/events", &[ce], None),
            400,
        ),
        (
            "invalid event",
            http_event(
                HTTP_V2,
                "POST",
                "/events",
                &[ce],
                Some(r#"{"specversion":"1.0"}"#),
            ),
            422,
        ),
        (
            "IAM route without the authorizer",
            http_event(HTTP_V2, "POST", "/iam/events", &[ce], b),
            401,
        ),
    ];
    let mut cases = cases;
    let mut base64 = http_event(HTTP_V2, "POST", "/events", &[ce], None);
    base64["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    base64["isBase64Encoded"] = json!(true);
    cases.push(("base64 body", base64, 202));
    let mut staged = http_event(HTTP_V2, "POST", "/prod/events/", &[ce], b);
    staged["requestContext"]["stage"] = json!("prod");
    cases.push(("named stage", staged, 202));
    for (caller, status) in [(ROLE, 202), ("arn:aws:iam::123456789012:role/other", 403)] {
        let mut iam = http_event(HTTP_V2, "POST", "/iam/events", &[ce], b);
        iam["requestContext"]["authorizer"] = json!({"iam": {"accountId": "123456789012", "userArn": caller, "callerId": "AROAEXAMPLE"}});
        cases.push(("IAM caller", iam, status));
    }

    for (name, v, status) in &cases {
        let (invoked, handled) = both(&json, v).await;
        assert_eq!(invoked.0, *status, "{name}: {:?}", invoked.2);
        assert_eq!(invoked, handled, "{name}");
    }
}

#[tokio::test]
async fn the_answer_is_an_http_api_response() {
    let (json, _) = sources_json();
    let v = http_event(
        HTTP_V2,
        "POST",
        "/events",
        &[("content-type", "application/cloudevents+json")],
        Some(&event("evt_1")),
    );
    let p = MemoryPublisher::default();
    let event: HttpApiEvent = serde_json::from_value(v).unwrap();
    let answer = serde_json::to_value(ingest(&p, &json).invoke(event).await).unwrap();
    assert_eq!(answer["statusCode"], 202);
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert_eq!(answer["isBase64Encoded"], false);
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["accepted"][0]["id"], "evt_1");
}

/// The lean answer is what `aws_lambda_events`' own response type writes for the same response (less its empty
/// `multiValueHeaders`), and read back as that type: for a 202, a refusal, a 207 with `Retry-After`, a binary and an empty body.
#[tokio::test]
async fn the_answer_serialises_as_api_gateway_v2_http_response_does() {
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
    use lambda_http::http::{HeaderValue, Response, StatusCode};

    let (json, _) = sources_json();
    let p = MemoryPublisher::default();
    let mut responses = Vec::new();
    for (content_type, body) in [
        ("application/cloudevents+json", event("evt_1")),
        (
            "application/cloudevents+json",
            "{\"not\": \"an event\"}".to_owned(),
        ),
        ("text/plain", "ü".to_owned()),
    ] {
        let v = http_event(
            HTTP_V2,
            "POST",
            "/events",
            &[("content-type", content_type)],
            Some(&body),
        );
        let request = lambda_http::request::from_str(&v.to_string()).unwrap();
        responses.push(ingest(&p, &json).handle(request).await);
    }
    let mut multi = Response::new(Body::Text("{\"accepted\":[]}".into()));
    *multi.status_mut() = StatusCode::MULTI_STATUS;
    multi
        .headers_mut()
        .append("retry-after", HeaderValue::from_static("1"));
    multi
        .headers_mut()
        .append("vary", HeaderValue::from_static("a"));
    multi
        .headers_mut()
        .append("vary", HeaderValue::from_static("b"));
    responses.push(multi);
    responses.push(Response::new(Body::Binary(vec![0, 159, 146, 150])));
    let mut empty = Response::new(Body::Empty);
    *empty.status_mut() = StatusCode::NO_CONTENT;
    responses.push(empty);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [202, 422, 415, 207, 200, 204]);

    for response in responses {
        let (parts, body) = response.into_parts();
        let rebuilt = || {
            let mut r = Response::new(body.clone());
            *r.status_mut() = parts.status;
            *r.headers_mut() = parts.headers.clone();
            r
        };
        let lean = serde_json::to_value(tubes_ingest::event::answer(rebuilt())).unwrap();
        let mut theirs = ApiGatewayV2httpResponse::default();
        theirs.status_code = i64::from(parts.status.as_u16());
        theirs.headers = parts.headers.clone();
        theirs.is_base64_encoded = matches!(body, Body::Binary(_));
        theirs.body = (!matches!(body, Body::Empty)).then(|| body.clone());
        let mut theirs = serde_json::to_value(theirs).unwrap();
        let members = theirs.as_object_mut().unwrap();
        assert_eq!(members.remove("multiValueHeaders"), Some(json!({})));
        assert_eq!(lean, theirs, "{}", parts.status);
        // What reads an answer as that type (`cargo lambda watch` does) reads ours.
        let read: ApiGatewayV2httpResponse = serde_json::from_value(lean).unwrap();
        assert_eq!(read.status_code, i64::from(parts.status.as_u16()));
    }
}

/// An invocation that is not an HTTP request (a Kinesis batch redriven to ingest by mistake) does not parse: the
/// runtime reports a function error, and nothing is answered as a success (a redrive would delete its letter).
#[test]
fn a_kinesis_batch_is_not_an_http_api_event() {
    let kinesis = r#"{"Records":[{"kinesis":{"partitionKey":"k","data":"e30=","sequenceNumber":"1"},"eventSource":"aws:kinesis"}]}"#;
    let err = serde_json::from_str::<HttpApiEvent>(kinesis).unwrap_err();
    assert!(err.to_string().contains("requestContext"), "{err}");
}
