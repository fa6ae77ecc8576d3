//! Ingest's errors and the one place that maps them to HTTP.
//!
//! Every error answers with one body shape: `{"error": {"code", "message", "field", "details"}}`. `code` is
//! stable, `field` is a JSON pointer to the offending member (or `null`), `details` lists every violation
//! when an event broke several rules. Internal failures are logged and answered without detail.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use tubes_shared::{Code, Violation, Violations};

/// Seconds a client should wait before retrying after throttling or unavailability.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Everything that can go wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No such route.
    #[error("no route for this path")]
    NotFound,
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `Content-Type` is missing or not JSON.
    #[error("unsupported content type")]
    UnsupportedMediaType,
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
    /// The event is malformed or invalid.
    #[error("invalid event: {0}")]
    Invalid(Violations),
    /// Kinesis throttled the write; nothing was accepted.
    #[error("throttled by the stream: {0}")]
    Throttled(String),
    /// The stream refused or could not be reached; nothing was accepted.
    #[error("stream unavailable: {0}")]
    Unavailable(String),
    /// A bug or an impossible state; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    details: &'a [Violation],
}

impl IngestError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::NotFound => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::EmptyBody => StatusCode::BAD_REQUEST,
            IngestError::Invalid(v) => match v.first().code {
                Code::MalformedJson | Code::NotAnObject | Code::DuplicateMember => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            IngestError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::NotFound => "not_found",
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::UnsupportedMediaType => "unsupported_media_type",
            IngestError::PayloadTooLarge { .. } => "payload_too_large",
            IngestError::EmptyBody => "empty_body",
            IngestError::Invalid(v) => v.first().code.as_str(),
            IngestError::Throttled(_) => "throttled",
            IngestError::Unavailable(_) => "stream_unavailable",
            IngestError::Internal(_) => "internal_error",
        }
    }

    /// The response; the only place errors become HTTP.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let (message, field, details): (String, Option<&str>, &[Violation]) = match &self {
            IngestError::Invalid(v) => (v.first().message.clone(), v.first().field.as_deref(), v.as_slice()),
            IngestError::UnsupportedMediaType => (
                "Content-Type must be application/json or application/cloudevents+json (charset utf-8)".into(),
                None,
                &[],
            ),
            IngestError::Throttled(_) => ("the event stream is over capacity; retry later".into(), None, &[]),
            IngestError::Unavailable(_) => ("the event stream is unavailable; retry later".into(), None, &[]),
            IngestError::Internal(_) => ("internal error".into(), None, &[]),
            other => (other.to_string(), None, &[]),
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            tracing::error!(code = self.code(), error = %self, "request failed");
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code(), message: &message, field, details } };
        let json = serde_json::to_string(&body).unwrap_or_else(|_| r#"{"error":{"code":"internal_error","message":"internal error","field":null}}"#.into());
        let mut response = Response::new(Body::Text(json));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if matches!(self, IngestError::Throttled(_) | IngestError::Unavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if matches!(self, IngestError::MethodNotAllowed) {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}
