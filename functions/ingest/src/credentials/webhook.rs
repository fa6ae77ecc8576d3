//! Standard Webhooks signatures (v1, symmetric): HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{raw body}`.
//!
//! Verification works on the raw bytes of the body, never on re-serialised JSON. `webhook-signature` may hold
//! several space-separated signatures (key rotation): the request is authentic when any `v1` signature matches
//! any active secret, compared in constant time. A signature that is empty or not exactly 32 bytes (`v1,`,
//! `v1,AAAA`) never matches: comparing a truncated prefix is a known bypass. The timestamp must be within
//! [`TOLERANCE_SECONDS`] of now, either way.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::header::HeaderName;
use lambda_http::http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far `webhook-timestamp` may be from now, in seconds (the spec's recommendation).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The headers, by their spec names.
pub const ID_HEADER: &str = "webhook-id";
/// See [`ID_HEADER`].
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// See [`ID_HEADER`].
pub const SIGNATURE_HEADER: &str = "webhook-signature";

const SIGNATURE_LEN: usize = 32;

/// The shortest and longest signing secrets Standard Webhooks allows, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;
/// See [`MIN_SECRET_BYTES`].
pub const MAX_SECRET_BYTES: usize = 64;

/// A signing secret: `whsec_` followed by base64 of 24 to 64 random bytes (the spec's range).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)") // never print key material
    }
}

/// A configured secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret must be `whsec_` followed by base64 of 24 to 64 bytes")]
pub struct SecretError;

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text.trim().strip_prefix("whsec_").ok_or(SecretError)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError);
        }
        Ok(Secret(key))
    }

    fn tag(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; SIGNATURE_LEN] {
        // HMAC accepts keys of any length, so this cannot fail; a zero tag would simply never match.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) else {
            return [0; SIGNATURE_LEN];
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` value a sender puts on `body` (`v1,<base64>`).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.tag(id, &timestamp.to_string(), body))
        )
    }
}

/// Why a request's signature was refused; each has its own stable code (all answered with `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A `webhook-*` header is missing or empty.
    #[error("the {0} header is required")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not whole seconds since the epoch.
    #[error("webhook-timestamp is not a number of seconds")]
    InvalidTimestamp,
    /// Older than the tolerance.
    #[error("webhook-timestamp is too old")]
    TimestampTooOld,
    /// Newer than the tolerance.
    #[error("webhook-timestamp is in the future")]
    TimestampInFuture,
    /// No signature with the `v1` prefix.
    #[error("no v1 signature in webhook-signature")]
    UnsupportedVersion,
    /// Every `v1` signature is empty, not base64, or not 32 bytes.
    #[error("malformed signature in webhook-signature")]
    Malformed,
    /// Well-formed signatures, none of which matches an active secret.
    #[error("no signature matches")]
    Mismatch,
    /// The source accepts no signatures (none configured) but the request carries one.
    #[error("this source has no signing secret configured")]
    NotConfigured,
}

impl SignatureError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing_signature_header",
            SignatureError::InvalidTimestamp => "invalid_signature_timestamp",
            SignatureError::TimestampTooOld => "signature_timestamp_too_old",
            SignatureError::TimestampInFuture => "signature_timestamp_in_future",
            SignatureError::UnsupportedVersion => "unsupported_signature_version",
            SignatureError::Malformed => "malformed_signature",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::NotConfigured => "signature_not_configured",
        }
    }

    /// The header at fault, as a field.
    pub fn field(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(h) => h,
            SignatureError::InvalidTimestamp
            | SignatureError::TimestampTooOld
            | SignatureError::TimestampInFuture => TIMESTAMP_HEADER,
            _ => SIGNATURE_HEADER,
        }
    }
}

/// Whether the request carries any Standard Webhooks header.
pub fn is_signed(headers: &HeaderMap) -> bool {
    // Names made once, not parsed again at each lookup (every request asks).
    const SIGNED: [HeaderName; 3] = [
        HeaderName::from_static(ID_HEADER),
        HeaderName::from_static(TIMESTAMP_HEADER),
        HeaderName::from_static(SIGNATURE_HEADER),
    ];
    SIGNED.iter().any(|h| headers.contains_key(h))
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeader(name))
}

/// Verifies a request against the active `secrets`; returns its `webhook-id`. `now` is seconds since the epoch.
pub fn verify<'h>(
    secrets: &[Secret],
    headers: &'h HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<&'h str, SignatureError> {
    let id = header(headers, ID_HEADER)?;
    let timestamp = header(headers, TIMESTAMP_HEADER)?;
    let signatures = header(headers, SIGNATURE_HEADER)?;
    if secrets.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::InvalidTimestamp)?;
    if now.saturating_sub(ts) > TOLERANCE_SECONDS {
        return Err(SignatureError::TimestampTooOld);
    }
    if ts.saturating_sub(now) > TOLERANCE_SECONDS {
        return Err(SignatureError::TimestampInFuture);
    }

    let mut candidates: Vec<[u8; SIGNATURE_LEN]> = Vec::new();
    let mut any_v1 = false;
    for token in signatures.split(' ').filter(|t| !t.is_empty()) {
        let Some(b64) = token.strip_prefix("v1,") else {
            continue;
        };
        any_v1 = true;
        if let Ok(bytes) = STANDARD.decode(b64) {
            if let Ok(sig) = <[u8; SIGNATURE_LEN]>::try_from(bytes.as_slice()) {
                candidates.push(sig);
            }
        }
    }
    if !any_v1 {
        return Err(SignatureError::UnsupportedVersion);
    }
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // Every secret against every candidate, without an early exit, so timing says nothing about which matched.
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = secret.tag(id, timestamp, body);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    if bool::from(matched) {
        Ok(id)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
