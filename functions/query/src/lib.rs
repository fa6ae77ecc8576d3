//! The query API (seeds: CQRS's read side): answers from the read models the projections function keeps.
//!
//! - `GET /accounts/{id}`: an account's status, currency, balance and last payments;
//! - `GET /users/{id}`: a user's profile and mailing lists.
//!
//! Every request carries a reader's key (`Authorization: Bearer tubes_{reader}.{key id}.{secret}`), kept hashed
//! in the readers configuration ([`Readers`]): read-only credentials, apart from the sources that write. Answers
//! carry a strong `ETag` (the document's version and last applied sequence number), so `If-None-Match` gets
//! `304`; errors have the contract's body ([`error`]).

use std::collections::BTreeMap;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tubes_platform::api_key::{is_name, ApiKey, KeyHash};
use tubes_platform::read_model::{Document, ReadModelStore, ReadModels};

pub mod error;

pub use error::QueryError;

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

    /// Whether `key` is one of its reader's keys.
    pub fn admits(&self, key: &ApiKey<'_>) -> bool {
        self.keys
            .get(key.source)
            .and_then(|keys| keys.get(key.key_id))
            .is_some_and(|stored| key.matches(stored))
    }
}

/// What a path asks for: a model and an aggregate id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'p> {
    /// The read model (`accounts`, `users`).
    pub model: &'static str,
    /// How errors name one of its documents.
    pub kind: &'static str,
    /// The id in the path.
    pub id: &'p str,
}

/// The resource of a request path (`404` for any other path).
pub fn route(path: &str) -> Result<Resource<'_>, QueryError> {
    let path = path.strip_suffix('/').unwrap_or(path);
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
    Ok(Resource { model, kind, id })
}

/// Ids as the catalogue allows them: 1 to 128 printable ASCII characters.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

/// The strong entity tag of a document: it changes exactly when the document's version or last applied record
/// does.
pub fn etag(document: &Document) -> String {
    let mut hash = Sha256::new();
    for part in [&document.version, &document.seq, &document.doc] {
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

/// The query API over read models in `S`.
#[derive(Debug)]
pub struct Query<S> {
    models: ReadModels<S>,
    readers: Readers,
}

impl<S: ReadModelStore> Query<S> {
    /// Answers from `store` for `readers`.
    pub fn new(store: S, readers: Readers) -> Self {
        Self {
            models: ReadModels::new(store),
            readers,
        }
    }

    /// Answers one request; never fails (every error is an answer). A `HEAD` gets the headers `GET` would get.
    pub async fn handle(&self, request: &Request) -> Response<Body> {
        let mut response = match self.answer(request).await {
            Ok(response) => response,
            Err(err) => {
                if matches!(err, QueryError::Unavailable) {
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
        match ApiKey::from_authorization(authorization) {
            None => return Err(QueryError::MissingCredentials),
            Some(Some(key)) if self.readers.admits(&key) => {}
            Some(_) => return Err(QueryError::InvalidCredentials),
        }
        if !valid_id(resource.id) {
            return Err(QueryError::InvalidId("/path/id"));
        }
        let document = self
            .models
            .document(resource.model, resource.id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "read models unavailable");
                QueryError::Unavailable
            })?
            .ok_or_else(|| QueryError::NoSuchDocument {
                kind: resource.kind,
                id: resource.id.to_owned(),
            })?;
        let tag = etag(&document);
        let fresh = not_modified(request.headers().get(header::IF_NONE_MATCH), &tag);
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Body::Empty)
        } else if head {
            (StatusCode::OK, Body::Empty)
        } else {
            (StatusCode::OK, Body::Text(document.doc))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::ETAG, value);
        }
        // Always revalidate: the document changes with every event of its aggregate.
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
