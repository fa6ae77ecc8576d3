//! The query API's errors, and the one place they become HTTP answers: the body of every error is the contract's
//! `{"error": {"code", "message", "field"}}`, as ingest's.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

/// What went wrong with a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No `Authorization: Bearer` key.
    #[error(
        "a read key is required: Authorization: Bearer tubes_{{reader}}.{{key id}}.{{secret}}"
    )]
    MissingCredentials,
    /// A key that is not a reader's current key.
    #[error("the key is not a valid read key")]
    InvalidCredentials,
    /// No such route.
    #[error("no such resource")]
    NotFound,
    /// The route exists, the method does not.
    #[error("this resource is read with GET or HEAD")]
    MethodNotAllowed,
    /// An id that no aggregate can have.
    #[error("{0} must be 1 to 128 printable ASCII characters")]
    InvalidId(&'static str),
    /// A source no event can have.
    #[error("/path/source must be 1 to 256 printable ASCII characters, percent-encoded as one path segment (%2F for /)")]
    InvalidSource,
    /// No consumer has a record of that event.
    #[error(
        "no consumer has a record of this event: not accepted, not reached yet, or older than the records (24 h by \
         default; the event store keeps every event)"
    )]
    NoSuchEvent,
    /// No document under that id.
    #[error("no {kind} {id}")]
    NoSuchDocument {
        /// `account`, `user`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The store behind the answer did not answer: the read models, or the consumers' records.
    #[error("the {0} are unavailable; retry")]
    Unavailable(&'static str),
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
}

/// Every (status, code) the query API answers errors with: what `openapi.yaml` must document, no more, no less
/// (checked by the contract test).
pub fn codes() -> Vec<(StatusCode, &'static str)> {
    [
        QueryError::MissingCredentials,
        QueryError::InvalidCredentials,
        QueryError::NotFound,
        QueryError::MethodNotAllowed,
        QueryError::InvalidId("/path/id"),
        QueryError::InvalidSource,
        QueryError::Unavailable("read models"),
    ]
    .iter()
    .map(|e| (e.status(), e.code()))
    .collect()
}

impl QueryError {
    /// Its stable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::MissingCredentials => "missing_credentials",
            QueryError::InvalidCredentials => "invalid_credentials",
            QueryError::NotFound | QueryError::NoSuchDocument { .. } | QueryError::NoSuchEvent => {
                "not_found"
            }
            QueryError::MethodNotAllowed => "method_not_allowed",
            QueryError::InvalidId(_) | QueryError::InvalidSource => "invalid_value",
            QueryError::Unavailable(_) => "unavailable",
        }
    }

    /// Its HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::MissingCredentials | QueryError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            QueryError::NotFound | QueryError::NoSuchDocument { .. } | QueryError::NoSuchEvent => {
                StatusCode::NOT_FOUND
            }
            QueryError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            QueryError::InvalidId(_) | QueryError::InvalidSource => StatusCode::BAD_REQUEST,
            QueryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The offending field (a JSON pointer into the request: `/path/id`), if one is to blame.
    fn field(&self) -> Option<&'static str> {
        match self {
            QueryError::InvalidId(field) => Some(field),
            QueryError::InvalidSource => Some("/path/source"),
            _ => None,
        }
    }

    /// The answer.
    pub fn response(&self) -> Response<Body> {
        let message = self.to_string();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: &message,
                field: self.field(),
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal_error","message":"internal error","field":null}}"#.into()
        });
        let mut response = Response::new(Body::Text(json));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            QueryError::MissingCredentials | QueryError::InvalidCredentials => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="tubes-query""#),
                );
            }
            QueryError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            QueryError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
