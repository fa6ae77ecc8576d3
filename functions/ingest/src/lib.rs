//! The ingest Lambda: `POST /events` (or `/sources/{source}/events`) with one CloudEvent or a batch →
//! authenticated → validated → written to Kinesis → `202 Accepted`.
//!
//! The request goes through one pipeline, each step a gate that answers with the one error body on failure:
//! route → method → content type → body size → signature ([`webhook`]) → UTF-8 and nesting depth → parse and
//! validate every event ([`Envelope::parse`]) → encode ([`codec::encode`]) → [`write::write_all`] → each
//! record's own outcome. Nothing is written for a request that fails a gate, and **a batch is validated as a
//! whole**: one invalid event rejects the request (`400`/`422`, every problem listed by index and field) and
//! none of its valid siblings is written, so a client can fix and resend the same batch.
//!
//! Outcomes: `202` when Kinesis acknowledged every event; `207` with each event's outcome when it acknowledged
//! some (retry the failed ones); `429` (throttled) or `503` (unavailable) with `Retry-After` when none.

pub mod config;
pub mod error;
pub mod webhook;
pub mod write;

use lambda_http::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use time::OffsetDateTime;
use tubes_contract::codec;
use tubes_contract::codec::EncodeError;
use tubes_contract::{Code, Envelope, Violation, Violations};
use tubes_platform::{clock, Publisher, PutOutcome};

pub use config::{Config, Source};
pub use error::IngestError;

/// The route of the default source.
pub const EVENTS_PATH: &str = "/events";

/// `POST /sources/{source}/events`: a named source, with its own secrets.
pub const SOURCES_PREFIX: &str = "/sources/";

/// The ingest handler over a [`Publisher`].
#[derive(Debug, Clone)]
pub struct Ingest<P> {
    publisher: P,
    max_body_bytes: usize,
    max_event_bytes: usize,
    max_batch_events: usize,
    retry: write::RetryPolicy,
    sources: std::collections::BTreeMap<String, Source>,
    default_source: Source,
}

/// Deepest JSON nesting accepted (catalogue events need 3 levels).
pub const MAX_DEPTH: usize = 32;

/// One accepted event in a `202` / `207` body.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
}

/// One event Kinesis did not acknowledge, in a `207` body.
#[derive(Debug, Serialize)]
struct Failed<'a> {
    index: usize,
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    error: ItemError<'a>,
}

#[derive(Debug, Serialize)]
struct ItemError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct WriteBody<'a> {
    accepted: Vec<Accepted<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<Failed<'a>>,
}

/// What the body holds, from its content type and first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `application/json` or `application/cloudevents+json`.
    Single,
    /// `application/cloudevents-batch+json`, or a JSON array as `application/json`.
    Batch,
}

impl<P: Publisher> Ingest<P> {
    /// A handler writing through `publisher`, with the limits of `config`.
    pub fn new(publisher: P, config: &Config) -> Self {
        Self {
            publisher,
            max_body_bytes: config.max_body_bytes,
            max_event_bytes: config.max_event_bytes,
            max_batch_events: config.max_batch_events,
            retry: write::RetryPolicy {
                deadline: std::time::Duration::from_millis(config.write_deadline_ms),
                ..write::RetryPolicy::default()
            },
            sources: config.sources.clone(),
            default_source: config.default_source.clone(),
        }
    }

    /// Handles one HTTP request; never fails (errors are responses).
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.try_handle(request)
            .await
            .unwrap_or_else(IngestError::into_response)
    }

    async fn try_handle(&self, request: Request) -> Result<Response<Body>, IngestError> {
        let source = self.source(route_path(&request))?;
        if request.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        let declared = check_content_type(request.headers())?;
        let body: &[u8] = match request.body() {
            Body::Empty => &[],
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            _ => &[],
        };
        if body.len() > self.max_body_bytes {
            return Err(IngestError::PayloadTooLarge {
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(IngestError::EmptyBody);
        }

        // Authenticate before parsing: an unauthenticated body costs nothing more than its HMAC.
        let now = clock::now();
        let webhook_id = authenticate(source, request.headers(), body, now.unix_timestamp())?;
        let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        check_depth(text)?;
        let kind = kind_of(declared, text)?;
        let envelopes = match kind {
            Kind::Single => {
                if text.len() > self.max_event_bytes {
                    return Err(IngestError::EventTooLarge {
                        index: None,
                        size: text.len(),
                        limit: self.max_event_bytes,
                    });
                }
                vec![Envelope::parse(body, now).map_err(IngestError::Invalid)?]
            }
            Kind::Batch => self.parse_batch(text, now)?,
        };
        let envelopes = match webhook_id {
            // The sender's retries carry the same webhook-id: the same event ids downstream.
            Some(id) => with_webhook_id(envelopes, id, kind)?,
            None => envelopes,
        };
        let records = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| {
                codec::encode(e).map_err(|err| match err {
                    EncodeError::TooLarge { size } => IngestError::EventTooLarge {
                        index: (kind == Kind::Batch).then_some(i),
                        size,
                        limit: codec::MAX_RECORD_BYTES,
                    },
                    EncodeError::Serialize(e) => IngestError::Internal(e.to_string()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let outcomes = write::write_all(&self.publisher, &records, self.retry).await;
        respond(kind, &envelopes, &outcomes)
    }

    /// Parses and validates every event of a batch; any invalid event rejects the whole batch.
    fn parse_batch(&self, text: &str, now: OffsetDateTime) -> Result<Vec<Envelope>, IngestError> {
        let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| {
            IngestError::Invalid(Violations::one(Violation::whole(
                Code::MalformedJson,
                format!("the batch is not a JSON array of events: {e}"),
            )))
        })?;
        if raw.is_empty() {
            return Err(IngestError::EmptyBatch);
        }
        if raw.len() > self.max_batch_events {
            return Err(IngestError::TooManyEvents {
                count: raw.len(),
                limit: self.max_batch_events,
            });
        }
        if let Some((index, event)) = raw
            .iter()
            .enumerate()
            .find(|(_, r)| r.get().len() > self.max_event_bytes)
        {
            return Err(IngestError::EventTooLarge {
                index: Some(index),
                size: event.get().len(),
                limit: self.max_event_bytes,
            });
        }
        let mut envelopes = Vec::with_capacity(raw.len());
        let mut problems = Vec::new();
        for (i, event) in raw.iter().enumerate() {
            match Envelope::parse(event.get().as_bytes(), now) {
                Ok(e) => envelopes.push(e),
                Err(v) => problems.extend(v.as_slice().iter().map(|v| Violation {
                    field: Some(format!("/{i}{}", v.field.as_deref().unwrap_or(""))),
                    ..v.clone()
                })),
            }
        }
        match Violations::from_vec(problems) {
            Some(v) => Err(IngestError::Invalid(v)),
            None => Ok(envelopes),
        }
    }
}

/// The event ids of a signed request: the `webhook-id` itself, or `{webhook-id}-{index}` in a batch.
fn with_webhook_id(
    envelopes: Vec<Envelope>,
    id: &str,
    kind: Kind,
) -> Result<Vec<Envelope>, IngestError> {
    envelopes
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let event_id = match kind {
                Kind::Single => id.to_owned(),
                Kind::Batch => format!("{id}-{i}"),
            };
            e.with_id(event_id).map_err(|_| {
                let v = Violation::at(
                    Code::InvalidIdentifier,
                    "/headers/webhook-id",
                    "webhook-id must be printable ASCII, short enough to serve as the event id",
                );
                IngestError::Invalid(Violations::one(v))
            })
        })
        .collect()
}

/// The answer for what Kinesis did with each record.
fn respond(
    kind: Kind,
    envelopes: &[Envelope],
    outcomes: &[PutOutcome],
) -> Result<Response<Body>, IngestError> {
    let index = |i: usize| (kind == Kind::Batch).then_some(i);
    let mut accepted = Vec::new();
    let mut failed = Vec::new();
    let mut throttled_only = true;
    for (i, (e, outcome)) in envelopes.iter().zip(outcomes).enumerate() {
        match outcome {
            PutOutcome::Accepted {
                shard_id,
                sequence_number,
            } => {
                tracing::info!(
                    event_id = e.id(),
                    event_type = e.event_type().as_str(),
                    shard_id = %shard_id,
                    sequence_number = %sequence_number,
                    "accepted"
                );
                accepted.push(Accepted {
                    index: index(i),
                    id: e.id(),
                    event_type: e.event_type().as_str(),
                    shard_id,
                    sequence_number,
                });
            }
            PutOutcome::Failed { kind, message } => {
                throttled_only &= outcome.is_throttled();
                tracing::warn!(event_id = e.id(), ?kind, kinesis_message = %message, "not accepted");
                let (code, message) = if outcome.is_throttled() {
                    (
                        "throttled",
                        "the event stream is over capacity; retry this event",
                    )
                } else {
                    (
                        "stream_unavailable",
                        "the event stream did not accept this event; retry it",
                    )
                };
                failed.push(Failed {
                    index: i,
                    id: e.id(),
                    event_type: e.event_type().as_str(),
                    error: ItemError { code, message },
                });
            }
        }
    }
    if accepted.is_empty() {
        let detail = format!("none of {} records acknowledged", outcomes.len());
        return Err(if throttled_only {
            IngestError::Throttled(detail)
        } else {
            IngestError::Unavailable(detail)
        });
    }
    let status = if failed.is_empty() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut response = json_response(status, &WriteBody { accepted, failed });
    if status == StatusCode::MULTI_STATUS {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(error::RETRY_AFTER_SECONDS),
        );
    }
    Ok(response)
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`] before any parser sees it (a cheap scan, strings skipped).
fn check_depth(text: &str) -> Result<(), IngestError> {
    // Nesting deeper than the limit needs more openers than the limit: a cheap count (it vectorises) lets
    // ordinary events skip the scan.
    let openers = text.bytes().filter(|&b| b == b'[' || b == b'{').count();
    if openers <= MAX_DEPTH {
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
fn kind_of(declared: Declared, text: &str) -> Result<Kind, IngestError> {
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

impl<P> Ingest<P> {
    /// The source a path belongs to: `/events` is the default source, `/sources/{name}/events` a named one.
    fn source(&self, path: &str) -> Result<&Source, IngestError> {
        if path == EVENTS_PATH {
            return Ok(&self.default_source);
        }
        let name = path
            .strip_prefix(SOURCES_PREFIX)
            .and_then(|rest| rest.strip_suffix(EVENTS_PATH))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .ok_or(IngestError::NotFound)?;
        self.sources.get(name).ok_or(IngestError::UnknownSource)
    }
}

/// Checks a request against its source: a signed request must verify; an unsigned one is refused when the
/// source requires signatures. Returns the verified `webhook-id`, if signed.
fn authenticate<'h>(
    source: &Source,
    headers: &'h HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Option<&'h str>, IngestError> {
    if !webhook::is_signed(headers) {
        if source.require_signature {
            let missing = webhook::SignatureError::MissingHeader(webhook::SIGNATURE_HEADER);
            return Err(IngestError::Signature(missing));
        }
        return Ok(None);
    }
    webhook::verify(&source.secrets, headers, body, now)
        .map(Some)
        .map_err(IngestError::Signature)
}

/// The request path as the client sent it, without an API Gateway stage prefix.
fn route_path(request: &Request) -> &str {
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
enum Declared {
    Json,
    CloudEvent,
    Batch,
}

/// `application/json`, `application/cloudevents+json` or `application/cloudevents-batch+json`, with at most a
/// UTF-8 charset parameter.
fn check_content_type(headers: &HeaderMap) -> Result<Declared, IngestError> {
    let received = headers.get(header::CONTENT_TYPE);
    let unsupported = || IngestError::UnsupportedMediaType {
        received: received.map(|v| error::received_media_type(v.as_bytes())),
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

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(json) => {
            let mut response = Response::new(Body::Text(json));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => IngestError::Internal(err.to_string()).into_response(),
    }
}
