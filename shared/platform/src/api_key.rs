//! API keys: `Authorization: Bearer tubes_{owner}.{key id}.{secret}`, where the owner is a source (ingest: a
//! producer that cannot sign) or a reader (the query API's read-only credentials).
//!
//! A key names its source and its key id, so ingest finds the one stored hash to compare with; the secret is 32
//! random bytes (base64url), so a plain SHA-256 is enough to store it (no password-style stretching is needed
//! for a key nobody chose). Keys are stored only as [`KeyHash`]es and compared in constant time. Several keys of
//! one source are active at once during a rotation: mint a new key id, hand it out, then drop the old one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `name` is a source name, a reader name or a key id: 1 to `max` of `a-z 0-9 - _`.
pub fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// What every key starts with (secret scanners look for it).
pub const PREFIX: &str = "tubes_";

/// The bytes of randomness in a key's secret.
pub const SECRET_BYTES: usize = 32;

/// An API key as presented: which source and key id it names. The key itself is kept only to be hashed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApiKey<'a> {
    /// The source it names.
    pub source: &'a str,
    /// Its key id.
    pub key_id: &'a str,
    token: &'a str,
}

impl std::fmt::Debug for ApiKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "ApiKey({}.{})", self.source, self.key_id)
    }
}

impl<'a> ApiKey<'a> {
    /// Reads a key (`tubes_{source}.{key id}.{secret}`); `None` if it has not that shape.
    pub fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.strip_prefix(PREFIX)?.split('.');
        let (source, key_id, secret) = (parts.next()?, parts.next()?, parts.next()?);
        let secret_ok = secret.len() == SECRET_BYTES.div_ceil(3) * 4 - 1
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (parts.next().is_none() && is_name(source, 64) && is_name(key_id, 32) && secret_ok)
            .then_some(Self {
                source,
                key_id,
                token,
            })
    }

    /// The key presented as `Authorization: Bearer …`, if the header is there (`Some(None)`: there, but no key).
    pub fn from_authorization(value: Option<&'a str>) -> Option<Option<Self>> {
        let value = value?.trim();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        Some(token.and_then(Self::parse))
    }

    /// Its hash, as stored.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.token.as_bytes()).into())
    }

    /// Whether this key is the one `stored` is the hash of (in constant time).
    pub fn matches(&self, stored: &KeyHash) -> bool {
        bool::from(self.hash().0.ct_eq(&stored.0))
    }
}

/// A new key for `source` and `key_id` from `secret` (the caller's 32 random bytes), and its hash to store;
/// `None` if the source or key id is not a name (1-64 and 1-32 of `a-z 0-9 - _`).
pub fn mint(source: &str, key_id: &str, secret: [u8; SECRET_BYTES]) -> Option<(String, KeyHash)> {
    let token = format!(
        "{PREFIX}{source}.{key_id}.{}",
        URL_SAFE_NO_PAD.encode(secret)
    );
    let hash = ApiKey::parse(&token)?.hash();
    Some((token, hash))
}

/// The stored form of a key: `sha256:` and the SHA-256 of the whole key, in hex.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

impl std::fmt::Display for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A stored key hash that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a stored API key must be `sha256:` and 64 hex digits (the hash of the key, never the key)"
)]
pub struct KeyHashError;

impl KeyHash {
    /// Reads `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, KeyHashError> {
        let hex = text.trim().strip_prefix("sha256:").ok_or(KeyHashError)?;
        if hex.len() != 64 {
            return Err(KeyHashError);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or(KeyHashError)?, 16)
                .map_err(|_| KeyHashError)?;
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_reads_back_and_matches_only_its_hash() {
        let (token, hash) = mint("shop", "2026-11", [7; SECRET_BYTES]).unwrap();
        assert!(token.starts_with("tubes_shop.2026-11."), "{token}");
        let key = ApiKey::parse(&token).unwrap();
        assert_eq!((key.source, key.key_id), ("shop", "2026-11"));
        assert!(key.matches(&hash));
        assert_eq!(KeyHash::parse(&hash.to_string()), Ok(hash.clone()));
        let (other, other_hash) = mint("shop", "2026-11", [8; SECRET_BYTES]).unwrap();
        assert!(!ApiKey::parse(&other).unwrap().matches(&hash));
        assert!(!key.matches(&other_hash));
        // Nothing secret in debug output.
        assert_eq!(format!("{key:?}"), "ApiKey(shop.2026-11)");
        assert_eq!(format!("{hash:?}"), "KeyHash(…)");
    }

    #[test]
    fn only_keys_of_the_right_shape_are_read() {
        let (token, _) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
        for bad in [
            "",
            "tubes_",
            "shop.k1.AAAA",
            &token.replacen("tubes_", "tubez_", 1),
            &format!("{token}.x"),
            &token[..token.len() - 1],
            &token.replacen("shop", "Shop", 1),
            &token.replacen(".k1.", "..", 1),
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?}");
        }
        assert!(mint("Shop", "k1", [0; SECRET_BYTES]).is_none());
        assert!(mint("shop", "", [0; SECRET_BYTES]).is_none());
    }

    #[test]
    fn the_authorization_header_carries_a_bearer_key() {
        let (token, _) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(
            ApiKey::from_authorization(Some(&bearer))
                .flatten()
                .map(|k| k.key_id),
            Some("k1")
        );
        let lower = format!("bearer  {token} ");
        assert!(ApiKey::from_authorization(Some(&lower)).flatten().is_some());
        assert_eq!(ApiKey::from_authorization(None), None);
        assert_eq!(
            ApiKey::from_authorization(Some("Basic dXNlcjpwYXNz")),
            Some(None)
        );
        assert_eq!(ApiKey::from_authorization(Some("Bearer nope")), Some(None));
    }

    #[test]
    fn stored_hashes_are_sha256_hex() {
        assert!(KeyHash::parse("sha256:").is_err());
        assert!(KeyHash::parse(&format!("sha256:{}", "g".repeat(64))).is_err());
        assert!(KeyHash::parse(&format!("md5:{}", "0".repeat(64))).is_err());
        assert!(KeyHash::parse(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(KeyHash::parse(&format!("sha256:{}é", "0".repeat(62))).is_err());
    }
}
