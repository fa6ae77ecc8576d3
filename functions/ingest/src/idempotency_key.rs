//! `Idempotency-Key` ([draft-ietf-httpapi-idempotency-key-header]): a request may name itself, so that a blind
//! resend of it (the same body under the same key, after a `503`, a timeout or a dropped connection) is the same
//! events, however many times it is sent.
//!
//! Ingest keeps no state for it. An event sent without an `id` gets one derived from (the authenticated source,
//! the key, the event's index in the request): the resend carries the same ids, and consumers, which count each
//! (source, id) once, apply it once. An event with its own `id` keeps it (it was safe to resend already). A
//! verified `webhook-id` wins over both (the Standard Webhooks sender's own retry key).
//!
//! Never reuse a key for another request: its events would get the first request's ids, and consumers refuse
//! an id that comes back with another payload (they park it as a dead letter rather than apply it).
//!
//! [draft-ietf-httpapi-idempotency-key-header]: https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/

use lambda_http::http::header::HeaderName;
use lambda_http::http::HeaderMap;
use uuid::Uuid;

use crate::error::IngestError;

/// The header, as `http` names it.
pub const HEADER: &str = "idempotency-key";

/// The longest key accepted, in characters.
pub const MAX_LEN: usize = 255;

/// The namespace of the derived ids' UUIDv5s. Never change it: a resend across the change would get other ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x5d2c_8e41_a7f3_5b96_8c10_3fe4_92d7_6a05);

/// A request's idempotency key, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of a request, if it sent one: a Structured Field string (`"…"`, as the draft has it) or the bare
    /// value many clients send, of 1 to [`MAX_LEN`] printable ASCII characters. Anything else is
    /// `400 invalid_idempotency_key`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, IngestError> {
        // The name made once, not parsed again at each lookup.
        const NAME: HeaderName = HeaderName::from_static(HEADER);
        let mut values = headers.get_all(NAME).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(IngestError::InvalidIdempotencyKey(
                "send one Idempotency-Key header, not several",
            ));
        }
        let bytes = value.as_bytes();
        let inner = match bytes {
            [b'"', inner @ .., b'"'] => inner,
            [b'"', ..] => {
                return Err(IngestError::InvalidIdempotencyKey(
                    "Idempotency-Key opens a quoted string it does not close",
                ))
            }
            bare => bare,
        };
        if inner.len() > MAX_LEN {
            return Err(IngestError::InvalidIdempotencyKey(
                "Idempotency-Key is longer than 255 characters",
            ));
        }
        if !inner
            .iter()
            .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\')
        {
            return Err(IngestError::InvalidIdempotencyKey(
                "Idempotency-Key must be printable ASCII, without quotes or backslashes inside",
            ));
        }
        // Checked above: ASCII only. Empty, or only spaces, is no key.
        let key = String::from_utf8_lossy(inner).trim().to_owned();
        if key.is_empty() {
            return Err(IngestError::InvalidIdempotencyKey(
                "Idempotency-Key is empty",
            ));
        }
        Ok(Some(IdempotencyKey(key)))
    }

    /// The id of the `index`-th event of the request (0 for a single event) that `source` sent without one.
    pub fn event_id(&self, source: &str, index: usize) -> String {
        let index = index.to_string();
        let mut name = Vec::with_capacity(source.len() + self.0.len() + index.len() + 24);
        // Length-prefixed parts: no two (source, key, index) triples meet.
        for part in [source, self.0.as_str(), index.as_str()] {
            name.extend_from_slice(&(part.len() as u64).to_be_bytes());
            name.extend_from_slice(part.as_bytes());
        }
        Uuid::new_v5(&NAMESPACE, &name).to_string()
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn key(values: &[&[u8]]) -> Result<Option<IdempotencyKey>, IngestError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        IdempotencyKey::from_headers(&headers)
    }

    #[test]
    fn a_quoted_or_bare_key_is_taken_and_anything_else_refused() {
        assert_eq!(key(&[]).unwrap(), None);
        let quoted = key(&[b"\"8e03978e-40d5-43e8-bc93-6894a57f9324\""]).unwrap();
        let bare = key(&[b"8e03978e-40d5-43e8-bc93-6894a57f9324"]).unwrap();
        assert_eq!(quoted, bare, "the same key, quoted or not");
        assert_eq!(
            quoted.unwrap().as_str(),
            "8e03978e-40d5-43e8-bc93-6894a57f9324"
        );
        let long = vec![b'k'; MAX_LEN + 1];
        for bad in [
            &b"\"\""[..],
            b"\"open",
            b"\"a\\\"b\"",
            b"a\"b",
            b"caf\xc3\xa9",
            &long,
            b"   ",
        ] {
            let err = key(&[bad]).unwrap_err();
            assert_eq!(err.code(), "invalid_idempotency_key", "{bad:?}");
            assert_eq!(err.status(), 400);
        }
        assert!(key(&[b"a", b"b"]).is_err(), "two keys");
    }

    #[test]
    fn ids_are_stable_and_differ_by_source_key_and_index() {
        let k = |s: &str| IdempotencyKey(s.to_owned());
        let id = k("req-1").event_id("shop", 0);
        // Pinned: a change here would make a resend across a deploy a new event.
        assert_eq!(id, "9598f70d-e32b-5872-89d5-2db35307c9fe");
        assert_eq!(id, k("req-1").event_id("shop", 0));
        assert_ne!(id, k("req-1").event_id("shop", 1));
        assert_ne!(id, k("req-1").event_id("crm", 0));
        assert_ne!(id, k("req-2").event_id("shop", 0));
        // Length prefixes: moving characters between parts is another id.
        assert_ne!(k("1").event_id("shop", 10), k("11").event_id("shop", 0));
        assert!(Uuid::parse_str(&id).is_ok());
    }
}
