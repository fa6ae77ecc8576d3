//! What the ingest handler tests share: real API Gateway / function URL events as fixtures, turned into requests.
// Each test crate uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

pub const REST_V1: &str = include_str!("../../../../tests/fixtures/apigw-rest-v1-request.json");
pub const HTTP_V2: &str = include_str!("../../../../tests/fixtures/apigw-http-v2-request.json");
pub const FUNCTION_URL: &str = include_str!("../../../../tests/fixtures/function-url-request.json");

/// The front doors a request can come through.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// API Gateway REST (v1).
    RestV1,
    /// API Gateway HTTP API (v2): the template's.
    HttpV2,
    /// A function URL.
    FunctionUrl,
}

pub const ALL_SOURCES: [Source; 3] = [Source::RestV1, Source::HttpV2, Source::FunctionUrl];

/// A real event of `source`, turned into `method path` with these headers and body.
pub fn request(
    source: Source,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Request {
    request_with(source, method, path, content_type, body, |_| {})
}

/// [`request`], with the event's JSON changed by `edit` first (e.g. an authorizer's context).
pub fn request_with(
    source: Source,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    edit: impl FnOnce(&mut Value),
) -> Request {
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
    edit(&mut v);
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

pub fn post(source: Source, content_type: &str, body: &str) -> Request {
    request(source, "POST", "/events", Some(content_type), body)
}

pub fn signed_up() -> Value {
    json!({
        "specversion": "1.0",
        "source": "/shop/web",
        "type": "user.signed_up",
        "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

pub fn body_json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// `(code, field)` of every entry of an error body's `details`.
pub fn details(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(code, field)` pairs, owned, to compare with [`details`].
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, f)| ((*c).to_owned(), (*f).to_owned()))
        .collect()
}
