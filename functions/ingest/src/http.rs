//! The HTTP gates before any event is read: the route, the media type, the nesting depth, and whether the body is
//! one event or a batch; and the one view of a request they read ([`Incoming`]), whatever carried it.

use lambda_http::http::{header, HeaderMap, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use tubes_contract::{Code, Violation, Violations};

use crate::auth::Route;
use crate::error::IngestError;

/// `POST /events`: the API key's source, or the default source.
pub const EVENTS_PATH: &str = "/events";

/// `POST /sources/{source}/events`: a named source.
pub const SOURCES_PREFIX: &str = "/sources/";

/// `POST /iam/events`: callers the HTTP API's IAM authorizer verified.
pub const IAM_PATH: &str = "/iam/events";

/// Deepest JSON nesting accepted (catalogue events need 3 levels).
pub const MAX_DEPTH: usize = 32;

/// The route of a request path (`404` for any other path).
pub fn route(path: &str) -> Result<Route<'_>, IngestError> {
    match path {
        EVENTS_PATH => Ok(Route::Events),
        IAM_PATH => Ok(Route::Iam),
        _ => path
            .strip_prefix(SOURCES_PREFIX)
            .and_then(|rest| rest.strip_suffix(EVENTS_PATH))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(Route::Source)
            .ok_or(IngestError::NotFound),
    }
}

/// One request as the handler reads it: borrowed from what carried it (an HTTP API event or `lambda_http`'s
/// request), so its body is neither copied nor parsed again. [`crate::event::HttpApiEvent::incoming`] makes one of
/// an invocation's event.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'r> {
    /// The request method.
    pub method: &'r Method,
    /// The path as the client sent it, without an API Gateway stage prefix ([`route_path`]).
    pub path: &'r str,
    /// The request headers (names lower case).
    pub headers: &'r HeaderMap,
    /// The raw body, base64 decoded if it came encoded (signatures are over these bytes).
    pub body: &'r [u8],
    /// The caller API Gateway's IAM authorizer verified, if the request went through it.
    pub iam_caller: Option<&'r str>,
}

impl<'r> Incoming<'r> {
    /// The request `lambda_http` built (any front door it parses).
    pub fn from_request(request: &'r Request) -> Self {
        let body: &[u8] = match request.body() {
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        };
        Incoming {
            method: request.method(),
            path: route_path(request),
            headers: request.headers(),
            body,
            iam_caller: crate::credentials::iam::caller(request),
        }
    }
}

/// The request path as the client sent it, without an API Gateway stage prefix.
pub fn route_path(request: &Request) -> &str {
    let raw = request.raw_http_path();
    let path = if raw.is_empty() {
        request.uri().path()
    } else {
        raw
    };
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    without_stage(path, stage)
}

/// `path` without the prefix of a named `stage` (HTTP API paths carry it; `$default` has none) or a trailing `/`.
pub(crate) fn without_stage<'p>(path: &'p str, stage: Option<&str>) -> &'p str {
    let path = match stage {
        Some(stage) if stage != "$default" => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    };
    path.strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path)
}

/// The media type a request declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// `application/json`: one event or an array.
    Json,
    /// `application/cloudevents+json`: one event.
    CloudEvent,
    /// `application/cloudevents-batch+json`: an array.
    Batch,
}

/// `application/json`, `application/cloudevents+json` or `application/cloudevents-batch+json`, with at most a
/// UTF-8 charset parameter.
pub fn check_content_type(headers: &HeaderMap) -> Result<Declared, IngestError> {
    let received = headers.get(header::CONTENT_TYPE);
    let unsupported = || IngestError::UnsupportedMediaType {
        received: received.map(|v| crate::error::received_media_type(v.as_bytes())),
    };
    let value = received
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let declared = [
        ("application/json", Declared::Json),
        ("application/cloudevents+json", Declared::CloudEvent),
        ("application/cloudevents-batch+json", Declared::Batch),
    ]
    .into_iter()
    .find(|(name, _)| essence.eq_ignore_ascii_case(name))
    .map(|(_, d)| d);
    let params_ok = parts.all(|p| match p.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = value.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        Some(_) => true,
        None => p.trim().is_empty(),
    });
    match declared {
        Some(d) if params_ok => Ok(d),
        _ => Err(unsupported()),
    }
}

/// What the body holds, from its content type and first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json` or `application/cloudevents+json`.
    Single,
    /// `application/cloudevents-batch+json`, or a JSON array as `application/json`.
    Batch,
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`] before any parser sees it (a cheap scan, strings skipped).
pub fn check_depth(text: &str) -> Result<(), IngestError> {
    // Nesting deeper than the limit needs more openers than the limit: a cheap count (memchr's SIMD search,
    // stopped past the limit) lets ordinary events skip the scan.
    if memchr::memchr2_iter(b'[', b'{', text.as_bytes())
        .nth(MAX_DEPTH)
        .is_none()
    {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(IngestError::TooDeep { limit: MAX_DEPTH });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Single event or batch, from the declared content type and the body's first byte.
pub fn kind_of(declared: Declared, text: &str) -> Result<Kind, IngestError> {
    let array = text.trim_start().starts_with('[');
    match (declared, array) {
        (Declared::Batch, true) | (Declared::Json, true) => Ok(Kind::Batch),
        (Declared::Json, false) | (Declared::CloudEvent, false) => Ok(Kind::Single),
        (Declared::Batch, false) => Err(IngestError::Invalid(Violations::one(Violation::whole(Code::InvalidType, "application/cloudevents-batch+json must be a JSON array of events",
        )))),
        (Declared::CloudEvent, true) => Err(IngestError::Invalid(Violations::one(Violation::whole(Code::NotAnObject, "application/cloudevents+json is one event; send batches as application/cloudevents-batch+json",
        )))),
    }
}
