//! Ingest's errors and the one place that maps them to HTTP.
//!
//! Every error answers with one body shape: `{"error": {"code", "message", "field", "details"}}`. `code` is
//! stable, `field` is a JSON pointer to the offending member (or `null`), `details` lists every violation
//! when an event broke several rules. Internal failures are logged and answered without detail.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use tubes_contract::{Code, Violation, Violations};

use crate::auth::AuthError;
use crate::credentials::webhook::{self, SignatureError};
use crate::policy::Refusal;

/// Seconds a client should wait before retrying after throttling or unavailability.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Everything that can go wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No such route.
    #[error("no route for this path")]
    NotFound,
    /// No valid credential (`401`), one of another source or an IAM caller no source lists (`403`), or a route
    /// to no source (`404`).
    #[error("{0}")]
    Auth(AuthError),
    /// Events the authenticated source may not send (`403`): each one named. The whole request is refused.
    #[error("{} event(s) this source may not send", .0.len())]
    Forbidden(Vec<Refusal>),
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `Content-Type` is missing or not JSON.
    #[error("unsupported content type")]
    UnsupportedMediaType {
        /// The `Content-Type` received, if any, as [`received_media_type`] cleans it for the message.
        received: Option<String>,
    },
    /// The body is over the limit.
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    PayloadTooLarge {
        /// Bytes received.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// The body is empty.
    #[error("empty body")]
    EmptyBody,
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8 (at byte {offset})")]
    InvalidUtf8 {
        /// Bytes before the first invalid one.
        offset: usize,
    },
    /// The JSON nests deeper than allowed.
    #[error("the JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A batch without events.
    #[error("the batch has no events")]
    EmptyBatch,
    /// A batch with more events than allowed.
    #[error("the batch has {count} events; at most {limit} are accepted")]
    TooManyEvents {
        /// Events sent.
        count: usize,
        /// Events allowed.
        limit: usize,
    },
    /// One event is over the per-event limit.
    #[error("an event of {size} bytes exceeds the limit of {limit}")]
    EventTooLarge {
        /// Its position in the batch (`None` for a single event).
        index: Option<usize>,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The event is malformed or invalid.
    #[error("invalid event: {0}")]
    Invalid(Violations),
    /// The `Idempotency-Key` header is malformed.
    #[error("{0}")]
    InvalidIdempotencyKey(&'static str),
    /// Kinesis throttled the write; no event was acknowledged.
    #[error("throttled by the stream: {detail}")]
    Throttled {
        /// What Kinesis said (logged, not answered).
        detail: String,
        /// Every event of the request, with the id it got: any may have been written.
        events: Vec<Unacknowledged>,
    },
    /// The stream refused or could not be reached; no event was acknowledged.
    #[error("stream unavailable: {detail}")]
    Unavailable {
        /// What Kinesis said (logged, not answered).
        detail: String,
        /// Every event of the request, with the id it got: any may have been written.
        events: Vec<Unacknowledged>,
    },
    /// No sources configuration could be read yet (at cold start the secret is read in the background): the
    /// request can be neither authenticated nor refused on its merits; nothing was written.
    #[error("the sources configuration is not available")]
    SourcesUnavailable,
    /// A bug or an impossible state; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An event the stream did not acknowledge, as a `429` / `503` body lists it: a call whose answer was lost may
/// still have written it, so the sender resends it **with this id** (or resends the request with the same
/// `Idempotency-Key`), and consumers count it once either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unacknowledged {
    /// Its position in the batch (`None` for a single event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The id it was written under (the sender's, or the one ingest gave it).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: &'static str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    events: &'a [Unacknowledged],
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    details: &'a [Detail],
}

/// One problem of several, as `details` lists it: the shape of a [`Violation`].
#[derive(Debug, Serialize)]
struct Detail {
    code: String,
    message: String,
    field: Option<String>,
}

impl From<&Violation> for Detail {
    fn from(v: &Violation) -> Self {
        Self {
            code: v.code.as_str().to_owned(),
            message: v.message.clone(),
            field: v.field.clone(),
        }
    }
}

impl From<&Refusal> for Detail {
    fn from(r: &Refusal) -> Self {
        Self {
            code: r.code.to_owned(),
            message: r.message.clone(),
            field: Some(r.field.clone()),
        }
    }
}

impl IngestError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::NotFound | IngestError::Auth(AuthError::UnknownSource) => {
                StatusCode::NOT_FOUND
            }
            IngestError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            IngestError::Auth(_) => StatusCode::UNAUTHORIZED,
            IngestError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::PayloadTooLarge { .. }
            | IngestError::TooManyEvents { .. }
            | IngestError::EventTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::EmptyBody
            | IngestError::InvalidUtf8 { .. }
            | IngestError::TooDeep { .. }
            | IngestError::EmptyBatch
            | IngestError::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            IngestError::Invalid(v) => match v.first().code {
                Code::MalformedJson | Code::NotAnObject | Code::DuplicateMember => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            IngestError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable { .. } | IngestError::SourcesUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::NotFound => "not_found",
            IngestError::Auth(e) => e.code(),
            IngestError::Forbidden(refusals) => refusals.first().map_or("forbidden", |r| r.code),
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::UnsupportedMediaType { .. } => "unsupported_media_type",
            IngestError::PayloadTooLarge { .. } => "payload_too_large",
            IngestError::EmptyBody => "empty_body",
            IngestError::InvalidUtf8 { .. } => "invalid_utf8",
            IngestError::TooDeep { .. } => "nesting_too_deep",
            IngestError::EmptyBatch => "empty_batch",
            IngestError::TooManyEvents { .. } => "too_many_events",
            IngestError::EventTooLarge { .. } => "event_too_large",
            IngestError::Invalid(v) => v.first().code.as_str(),
            IngestError::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            IngestError::Throttled { .. } => "throttled",
            IngestError::Unavailable { .. } => "stream_unavailable",
            IngestError::SourcesUnavailable => "sources_unavailable",
            IngestError::Internal(_) => "internal_error",
        }
    }

    /// The response; the only place errors become HTTP.
    ///
    /// `401` answers carry `WWW-Authenticate` naming the schemes, as HTTP requires.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let (message, field, details): (String, Option<String>, Vec<Detail>) = match &self {
            IngestError::Invalid(v) => (
                v.first().message.clone(),
                v.first().field.clone(),
                v.as_slice().iter().map(Detail::from).collect(),
            ),
            IngestError::Forbidden(refusals) => (
                refusals
                    .first()
                    .map_or_else(String::new, |r| r.message.clone()),
                refusals.first().map(|r| r.field.clone()),
                refusals.iter().map(Detail::from).collect(),
            ),
            IngestError::UnsupportedMediaType { received } => (
                format!(
                    "Content-Type must be application/json, application/cloudevents+json or \
                     application/cloudevents-batch+json (charset utf-8); {}",
                    match received {
                        Some(received) => format!("received `{received}`"),
                        None => "none was sent".to_owned(),
                    }
                ),
                None,
                Vec::new(),
            ),
            IngestError::Throttled { .. } => (
                "the event stream is over capacity; resend after Retry-After, each event with the id listed in \
                 `events` (or the same request with the same Idempotency-Key)"
                    .into(),
                None,
                Vec::new(),
            ),
            IngestError::Unavailable { .. } => (
                "the event stream did not acknowledge the events, but may have written some: resend after \
                 Retry-After, each event with the id listed in `events` (or the same request with the same \
                 Idempotency-Key)"
                    .into(),
                None,
                Vec::new(),
            ),
            IngestError::InvalidIdempotencyKey(reason) => (
                (*reason).to_owned(),
                Some("/headers/idempotency-key".to_owned()),
                Vec::new(),
            ),
            IngestError::SourcesUnavailable => (
                "the sources configuration could not be read; nothing was written: resend after Retry-After"
                    .into(),
                None,
                Vec::new(),
            ),
            IngestError::Internal(_) => ("internal error".into(), None, Vec::new()),
            IngestError::Auth(e) => (e.to_string(), e.field().map(str::to_owned), Vec::new()),
            IngestError::EventTooLarge { index: Some(i), .. } => {
                (self.to_string(), Some(format!("/{i}")), Vec::new())
            }
            other => (other.to_string(), None, Vec::new()),
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        let events = match &self {
            IngestError::Throttled { events, .. } | IngestError::Unavailable { events, .. } => {
                events.as_slice()
            }
            _ => &[],
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
                field: field.as_deref(),
                details: &details,
            },
            events,
        };
        let json = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal_error","message":"internal error","field":null}}"#.into()
        });
        let mut response = Response::new(Body::Text(json));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(
            self,
            IngestError::Throttled { .. }
                | IngestError::Unavailable { .. }
                | IngestError::SourcesUnavailable
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::UNAUTHORIZED {
            if let IngestError::Auth(e) = &self {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(e.challenge()),
                );
            }
        }
        if matches!(self, IngestError::MethodNotAllowed) {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Every `(status, code)` ingest can answer with, from one value of each [`IngestError`], [`AuthError`],
/// [`SignatureError`], policy refusal and validation [`Code`] variant, through [`IngestError::status`] and
/// [`IngestError::code`]: what `openapi.yaml` must document (its contract test compares the two).
pub fn codes() -> Vec<(StatusCode, &'static str)> {
    // Exhaustive matches without a wildcard: a new variant does not compile until it is listed below.
    let _listed = |e: &IngestError, a: &AuthError, s: &SignatureError, c: Code| {
        match e {
            IngestError::NotFound
            | IngestError::Auth(_)
            | IngestError::Forbidden(_)
            | IngestError::MethodNotAllowed
            | IngestError::UnsupportedMediaType { .. }
            | IngestError::PayloadTooLarge { .. }
            | IngestError::EmptyBody
            | IngestError::InvalidUtf8 { .. }
            | IngestError::TooDeep { .. }
            | IngestError::EmptyBatch
            | IngestError::TooManyEvents { .. }
            | IngestError::EventTooLarge { .. }
            | IngestError::Invalid(_)
            | IngestError::InvalidIdempotencyKey(_)
            | IngestError::Throttled { .. }
            | IngestError::Unavailable { .. }
            | IngestError::SourcesUnavailable
            | IngestError::Internal(_) => {}
        }
        match a {
            AuthError::MissingCredentials
            | AuthError::InvalidApiKey
            | AuthError::UnknownKey
            | AuthError::Signature(_)
            | AuthError::AnotherSource { .. }
            | AuthError::IamPrincipalNotAllowed
            | AuthError::UnknownSource => {}
        }
        match s {
            SignatureError::MissingHeader(_)
            | SignatureError::InvalidTimestamp
            | SignatureError::TimestampTooOld
            | SignatureError::TimestampInFuture
            | SignatureError::UnsupportedVersion
            | SignatureError::Malformed
            | SignatureError::Mismatch
            | SignatureError::NotConfigured => {}
        }
        match c {
            Code::MalformedJson
            | Code::NotAnObject
            | Code::MissingField
            | Code::InvalidType
            | Code::InvalidValue
            | Code::UnsupportedSpecversion
            | Code::UnknownEventType
            | Code::UnsupportedDataContentType
            | Code::Empty
            | Code::TooLong
            | Code::InvalidIdentifier
            | Code::InvalidText
            | Code::InvalidEmail
            | Code::InvalidCurrency
            | Code::AmountNotPositive
            | Code::AmountTooLarge
            | Code::SubjectMismatch
            | Code::InvalidExtension
            | Code::DuplicateMember
            | Code::UnknownMember
            | Code::DuplicateId => {}
        }
    };
    let auth = [
        AuthError::MissingCredentials,
        AuthError::InvalidApiKey,
        AuthError::AnotherSource {
            route: String::new(),
        },
        AuthError::IamPrincipalNotAllowed,
        AuthError::UnknownSource,
    ];
    let refusals = crate::policy::CODES.map(|code| Refusal {
        code,
        message: String::new(),
        field: String::new(),
    });
    let signature = [
        SignatureError::MissingHeader(webhook::SIGNATURE_HEADER),
        SignatureError::InvalidTimestamp,
        SignatureError::TimestampTooOld,
        SignatureError::TimestampInFuture,
        SignatureError::UnsupportedVersion,
        SignatureError::Malformed,
        SignatureError::Mismatch,
        SignatureError::NotConfigured,
    ];
    let validation = [
        Code::MalformedJson,
        Code::NotAnObject,
        Code::MissingField,
        Code::InvalidType,
        Code::InvalidValue,
        Code::UnsupportedSpecversion,
        Code::UnknownEventType,
        Code::UnsupportedDataContentType,
        Code::Empty,
        Code::TooLong,
        Code::InvalidIdentifier,
        Code::InvalidText,
        Code::InvalidEmail,
        Code::InvalidCurrency,
        Code::AmountNotPositive,
        Code::AmountTooLarge,
        Code::SubjectMismatch,
        Code::InvalidExtension,
        Code::DuplicateMember,
        Code::UnknownMember,
        Code::DuplicateId,
    ];
    let (size, limit) = (0, 0);
    [
        IngestError::NotFound,
        IngestError::MethodNotAllowed,
        IngestError::UnsupportedMediaType { received: None },
        IngestError::PayloadTooLarge { size, limit },
        IngestError::EmptyBody,
        IngestError::InvalidUtf8 { offset: 0 },
        IngestError::TooDeep { limit },
        IngestError::EmptyBatch,
        IngestError::TooManyEvents { count: 0, limit },
        IngestError::EventTooLarge {
            index: None,
            size,
            limit,
        },
        IngestError::InvalidIdempotencyKey(""),
        IngestError::Throttled {
            detail: String::new(),
            events: Vec::new(),
        },
        IngestError::Unavailable {
            detail: String::new(),
            events: Vec::new(),
        },
        IngestError::SourcesUnavailable,
        IngestError::Internal(String::new()),
    ]
    .into_iter()
    .chain(auth.into_iter().map(IngestError::Auth))
    .chain(
        signature
            .into_iter()
            .map(|s| IngestError::Auth(AuthError::Signature(s))),
    )
    .chain(
        refusals
            .into_iter()
            .map(|r| IngestError::Forbidden(vec![r])),
    )
    .chain(
        validation
            .into_iter()
            .map(|c| IngestError::Invalid(Violations::one(Violation::whole(c, String::new())))),
    )
    .map(|e| (e.status(), e.code()))
    .collect()
}

/// Longest `Content-Type` quoted back in a `415` message, in characters.
const MAX_QUOTED_MEDIA_TYPE: usize = 100;

/// A received `Content-Type` as a `415` message quotes it: control characters removed (it goes into logs and
/// terminals), cut to [`MAX_QUOTED_MEDIA_TYPE`] characters, bytes that are not UTF-8 replaced.
pub(crate) fn received_media_type(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut chars = text.chars().filter(|c| !c.is_control());
    let mut quoted: String = chars.by_ref().take(MAX_QUOTED_MEDIA_TYPE).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}
