//! The ingest Lambda: `POST /events` with one CloudEvent → validated → written to Kinesis → `202 Accepted`.
//!
//! The request goes through one pipeline, each step a gate that answers with the one error body on failure:
//! route → content type → size → parse and validate ([`Envelope::parse`]) → encode ([`codec::encode`]) →
//! [`Publisher::put_records`] → the record's own outcome. `202` is only ever sent for a record Kinesis
//! acknowledged with a sequence number; nothing is written for a request that fails a gate.

pub mod config;
pub mod error;

use lambda_http::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use time::OffsetDateTime;
use tubes_shared::codec::{self, EncodeError};
use tubes_shared::publish::PublishError;
use tubes_shared::{Envelope, PutOutcome, Publisher};

pub use config::Config;
pub use error::IngestError;

/// The one route.
pub const EVENTS_PATH: &str = "/events";

/// The ingest handler over a [`Publisher`].
#[derive(Debug, Clone)]
pub struct Ingest<P> {
    publisher: P,
    max_body_bytes: usize,
}

/// One accepted event in a `202` body.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
}

#[derive(Debug, Serialize)]
struct AcceptedBody<'a> {
    accepted: [Accepted<'a>; 1],
}

impl<P: Publisher> Ingest<P> {
    /// A handler writing through `publisher`, with the limits of `config`.
    pub fn new(publisher: P, config: &Config) -> Self {
        Self { publisher, max_body_bytes: config.max_body_bytes }
    }

    /// Handles one HTTP request; never fails (errors are responses).
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.try_handle(request).await.unwrap_or_else(IngestError::into_response)
    }

    async fn try_handle(&self, request: Request) -> Result<Response<Body>, IngestError> {
        if route_path(&request) != EVENTS_PATH {
            return Err(IngestError::NotFound);
        }
        if request.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        check_content_type(request.headers())?;
        let body: &[u8] = match request.body() {
            Body::Empty => &[],
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        };
        if body.len() > self.max_body_bytes {
            return Err(IngestError::PayloadTooLarge { size: body.len(), limit: self.max_body_bytes });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(IngestError::EmptyBody);
        }

        let envelope = Envelope::parse(body, OffsetDateTime::now_utc()).map_err(IngestError::Invalid)?;
        let record = codec::encode(&envelope).map_err(|err| match err {
            EncodeError::TooLarge { size } => IngestError::PayloadTooLarge { size, limit: codec::MAX_RECORD_BYTES },
            EncodeError::Serialize(e) => IngestError::Internal(e.to_string()),
        })?;

        let outcomes = self.publisher.put_records(std::slice::from_ref(&record)).await.map_err(|err| match err {
            PublishError::Throttled(m) => IngestError::Throttled(m),
            PublishError::Unavailable(m) => IngestError::Unavailable(m),
            PublishError::Protocol(m) => IngestError::Internal(m),
        })?;
        match outcomes.as_slice() {
            [PutOutcome::Accepted { shard_id, sequence_number }] => {
                tracing::info!(
                    event_id = envelope.id(),
                    event_type = envelope.event_type().as_str(),
                    shard_id = %shard_id,
                    sequence_number = %sequence_number,
                    "accepted"
                );
                let body = AcceptedBody {
                    accepted: [Accepted {
                        id: envelope.id(),
                        event_type: envelope.event_type().as_str(),
                        shard_id,
                        sequence_number,
                    }],
                };
                Ok(json_response(StatusCode::ACCEPTED, &body))
            }
            [failed @ PutOutcome::Failed { code, message }] => {
                let detail = format!("{code}: {message}");
                Err(if failed.is_throttled() { IngestError::Throttled(detail) } else { IngestError::Unavailable(detail) })
            }
            other => Err(IngestError::Internal(format!("{} outcomes for one record", other.len()))),
        }
    }
}

/// The request path as the client sent it, without an API Gateway stage prefix.
fn route_path(request: &Request) -> &str {
    let raw = request.raw_http_path();
    let path = if raw.is_empty() { request.uri().path() } else { raw };
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    let path = match stage {
        Some(stage) if stage != "$default" => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        _ => path,
    };
    path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path)
}

/// `application/json` or `application/cloudevents+json`, with at most a UTF-8 charset parameter.
fn check_content_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(IngestError::UnsupportedMediaType)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let essence_ok = essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/cloudevents+json");
    let params_ok = parts.all(|p| match p.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = value.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        Some(_) => true,
        None => p.trim().is_empty(),
    });
    if essence_ok && params_ok {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType)
    }
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(json) => {
            let mut response = Response::new(Body::Text(json));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => IngestError::Internal(err.to_string()).into_response(),
    }
}
