//! The query API (seeds: CQRS's read side): answers from the read models the projections function keeps.
//!
//! - `GET /accounts/{id}`: an account's status, currency, balance and last payments;
//! - `GET /users/{id}`: a user's profile and mailing lists;
//! - `GET /events/{source}/{id}`: what happened to one event ([`events`]): accepted when and where, and per
//!   consumer handled, in progress, retrying (attempts), parked (in which dead-letter queue) or pending. The
//!   source is one path segment, percent-encoded (`/events/%2Fshop/evt_1` for the source `/shop`).
//!
//! Every request carries a reader's key (`Authorization: Bearer tubes_{reader}.{key id}.{secret}`), kept hashed
//! in the readers configuration ([`Readers`]): read-only credentials, apart from the sources that write. Answers
//! carry a strong `ETag` (of the document's version and last applied sequence number, or of the event's status),
//! so `If-None-Match` gets `304`; errors have the contract's body ([`error`]).

use std::collections::BTreeMap;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tubes_contract::validate::{Checker, MAX_ID_LEN, MAX_SOURCE_LEN};
use tubes_platform::api_key::{is_name, ApiKey, KeyHash};
use tubes_platform::idempotency::{ReadRecords, Record, StoreError};
use tubes_platform::read_model::{Document, ReadModelStore, ReadModels};

pub mod error;
pub mod events;
pub mod readers;

pub use error::QueryError;
pub use events::{Consumers, EventStatus};
pub use readers::{ReadersFetch, ReadersSource, SecretReaders};

/// The readers and their keys: `{"dashboard": {"api_keys": {"2026-11": "sha256:…"}}}` (several keys per reader
/// during a rotation; `tubes-keys` mints them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readers {
    keys: BTreeMap<String, BTreeMap<String, KeyHash>>,
}

/// The readers configuration cannot be used; the function refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("readers configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReaderSpec {
    api_keys: BTreeMap<String, String>,
}

impl Readers {
    /// Reads the configuration; every reader needs a key, every key a valid hash.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let specs: BTreeMap<String, ReaderSpec> = serde_json::from_str(json)
            .map_err(|e| ConfigError(format!("not a readers object: {e}")))?;
        let mut keys = BTreeMap::new();
        for (reader, spec) in specs {
            if !is_name(&reader, 64) {
                return Err(ConfigError(format!(
                    "reader name {reader:?}: use 1-64 of a-z 0-9 - _"
                )));
            }
            if spec.api_keys.is_empty() {
                return Err(ConfigError(format!("reader {reader}: no api_keys")));
            }
            let mut hashes = BTreeMap::new();
            for (id, hash) in spec.api_keys {
                let parsed = KeyHash::parse(&hash)
                    .map_err(|e| ConfigError(format!("reader {reader}, key {id}: {e}")))?;
                hashes.insert(id, parsed);
            }
            keys.insert(reader, hashes);
        }
        Ok(Self { keys })
    }

    /// Whether `key`'s reader has a key of its id (whatever its secret).
    pub fn knows(&self, key: &ApiKey<'_>) -> bool {
        self.keys
            .get(key.source)
            .is_some_and(|keys| keys.contains_key(key.key_id))
    }

    /// Whether `key` is one of its reader's keys.
    pub fn admits(&self, key: &ApiKey<'_>) -> bool {
        self.keys
            .get(key.source)
            .and_then(|keys| keys.get(key.key_id))
            .is_some_and(|stored| key.matches(stored))
    }
}

/// What a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'p> {
    /// A read model's document.
    Document {
        /// The read model (`accounts`, `users`).
        model: &'static str,
        /// How errors name one of its documents.
        kind: &'static str,
        /// The id in the path.
        id: &'p str,
    },
    /// An event's status.
    Event {
        /// The event's source, as in the path (percent-encoded).
        source: &'p str,
        /// The event's id, as in the path (percent-encoded).
        id: &'p str,
    },
}

/// The resource of a request path (`404` for any other path).
pub fn route(path: &str) -> Result<Resource<'_>, QueryError> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if let Some(rest) = path.strip_prefix("/events/") {
        // The id is the last segment, the source all before it: `%2Fshop/e1` as sent, and `/shop/e1` should a
        // proxy decode the `%2F` on the way, both name the event `e1` of `/shop`.
        let (source, id) = rest.rsplit_once('/').ok_or(QueryError::NotFound)?;
        return Ok(Resource::Event { source, id });
    }
    let (model, kind, id) = if let Some(id) = path.strip_prefix("/accounts/") {
        ("accounts", "account", id)
    } else if let Some(id) = path.strip_prefix("/users/") {
        ("users", "user", id)
    } else {
        return Err(QueryError::NotFound);
    };
    if id.contains('/') {
        return Err(QueryError::NotFound);
    }
    Ok(Resource::Document { model, kind, id })
}

/// Whether `value` is an identifier events may carry, at most `max` long: the contract's rule
/// ([`Checker::id_max`]), so that no id or source the API could accept is refused here.
fn identifier(value: &str, max: usize) -> bool {
    let mut checker = Checker::new();
    checker.id_max("", value, max);
    checker.into_violations().is_empty()
}

/// The strong entity tag of a document: it changes exactly when the document's version or last applied record
/// does.
pub fn etag(document: &Document) -> String {
    tag_of(&[&document.version, &document.seq, &document.doc])
}

/// A strong entity tag of `parts`: each length-prefixed, so that no two lists of parts share one.
fn tag_of(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether `If-None-Match` names `tag` (or is `*`): the client's copy is current.
fn not_modified(if_none_match: Option<&HeaderValue>, tag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        // If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix does not matter.
        candidate == "*" || candidate.trim_start_matches("W/") == tag
    })
}

/// No idempotency records to read: a query API without `GET /events/...` (it answers `404`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecords;

impl ReadRecords for NoRecords {
    async fn records(
        &self,
        _: &[String],
    ) -> Result<std::collections::HashMap<String, Record>, StoreError> {
        Ok(std::collections::HashMap::new())
    }
}

/// The query API over read models in `S`, for the readers read through `F` and, for events' status, the
/// consumers' idempotency records in `R`.
#[derive(Debug)]
pub struct Query<S, R = NoRecords, F = SecretReaders> {
    models: ReadModels<S>,
    readers: ReadersSource<F>,
    events: Option<(R, Consumers)>,
}

impl<S: ReadModelStore> Query<S> {
    /// Answers from `store` for `readers` (without events' status until [`Query::with_events`]).
    pub fn new(store: S, readers: Readers) -> Self {
        Self::reading(store, ReadersSource::ready(readers))
    }
}

impl<S: ReadModelStore, F> Query<S, NoRecords, F> {
    /// Answers from `store` for the readers of `readers`, which may still be being read
    /// ([`ReadersSource::in_background`]).
    pub fn reading(store: S, readers: ReadersSource<F>) -> Self {
        Self {
            models: ReadModels::new(store),
            readers,
            events: None,
        }
    }

    /// The same API, answering `GET /events/{source}/{id}` from the idempotency records in `records` of
    /// `consumers`.
    pub fn with_events<R: ReadRecords>(self, records: R, consumers: Consumers) -> Query<S, R, F> {
        Query {
            models: self.models,
            readers: self.readers,
            events: Some((records, consumers)),
        }
    }
}

impl<S: ReadModelStore, R: ReadRecords, F: ReadersFetch> Query<S, R, F> {
    /// Answers one request; never fails (every error is an answer). A `HEAD` gets the headers `GET` would get.
    pub async fn handle(&self, request: &Request) -> Response<Body> {
        let mut response = match self.answer(request).await {
            Ok(response) => response,
            Err(err) => {
                if matches!(err, QueryError::Unavailable(_)) {
                    tracing::warn!(code = err.code(), "query not answered");
                }
                err.response()
            }
        };
        if request.method() == Method::HEAD {
            *response.body_mut() = Body::Empty;
        }
        response
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, QueryError> {
        let raw = request.raw_http_path();
        let path = if raw.is_empty() {
            request.uri().path()
        } else {
            raw
        };
        let resource = route(path)?;
        let head = request.method() == Method::HEAD;
        if request.method() != Method::GET && !head {
            return Err(QueryError::MethodNotAllowed);
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let unavailable = |_| QueryError::Unavailable("readers");
        let mut readers = self.readers.current().await.map_err(unavailable)?;
        match ApiKey::from_authorization(authorization) {
            None => return Err(QueryError::MissingCredentials),
            Some(Some(key)) => {
                // A key id no reader has may be one minted a moment ago: the readers are read again first (at
                // most once per MIN_REFRESH_GAP, whatever the requests).
                if !readers.knows(&key) {
                    readers = self.readers.refreshed().await.map_err(unavailable)?;
                }
                if !readers.admits(&key) {
                    return Err(QueryError::InvalidCredentials);
                }
            }
            Some(None) => return Err(QueryError::InvalidCredentials),
        }
        let (tag, body) = match resource {
            Resource::Document { model, kind, id } => {
                if !identifier(id, MAX_ID_LEN) {
                    return Err(QueryError::InvalidId("/path/id"));
                }
                let document = self
                    .models
                    .document(model, id)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "read models unavailable");
                        QueryError::Unavailable("read models")
                    })?
                    .ok_or_else(|| QueryError::NoSuchDocument {
                        kind,
                        id: id.to_owned(),
                    })?;
                (etag(&document), document.doc)
            }
            Resource::Event { source, id } => {
                let source = events::decode_segment(source)
                    .filter(|s| identifier(s, MAX_SOURCE_LEN))
                    .ok_or(QueryError::InvalidSource)?;
                let id = events::decode_segment(id)
                    .filter(|i| identifier(i, MAX_ID_LEN))
                    .ok_or(QueryError::InvalidId("/path/id"))?;
                let Some((records, consumers)) = &self.events else {
                    return Err(QueryError::NotFound);
                };
                let status = events::status(records, consumers, &source, &id)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "idempotency records unavailable");
                        QueryError::Unavailable("consumers' records")
                    })?
                    .ok_or(QueryError::NoSuchEvent)?;
                let body = serde_json::to_string(&status)
                    .map_err(|_| QueryError::Unavailable("consumers' records"))?;
                (tag_of(&["event", &body]), body)
            }
        };
        let fresh = not_modified(request.headers().get(header::IF_NONE_MATCH), &tag);
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Body::Empty)
        } else if head {
            (StatusCode::OK, Body::Empty)
        } else {
            (StatusCode::OK, Body::Text(body))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::ETAG, value);
        }
        // Always revalidate: a document changes with every event of its aggregate, a status with every attempt.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if status == StatusCode::OK {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests;
