//! Credentials for the sources (`tubes-keys`): API keys and Standard Webhooks signing secrets, minted from the
//! operating system's randomness, with the line to put in the sources configuration. The key itself is shown
//! once, to hand to the producer; the configuration keeps only its hash.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use tubes_ingest::credentials::api_key::{self, SECRET_BYTES};

/// A minted API key: the key (for the producer) and its hash (for the sources configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedKey {
    /// `tubes_{source}.{key id}.{secret}`: give it to the producer, once.
    pub key: String,
    /// `sha256:…`: goes under the source's `api_keys`, named by the key id.
    pub hash: String,
}

/// Fails only if the operating system has no randomness to give.
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("no randomness from the operating system: {e}"))?;
    Ok(bytes)
}

/// A new API key of `source` named `key_id`.
pub fn api_key(source: &str, key_id: &str) -> Result<MintedKey, String> {
    let (key, hash) = api_key::mint(source, key_id, random::<SECRET_BYTES>()?)
        .ok_or_else(|| "source names are 1-64 and key ids 1-32 of a-z 0-9 - _".to_owned())?;
    Ok(MintedKey {
        key,
        hash: hash.to_string(),
    })
}

/// A new Standard Webhooks signing secret (`whsec_` and 32 random bytes).
pub fn signing_secret() -> Result<String, String> {
    Ok(format!("whsec_{}", STANDARD.encode(random::<32>()?)))
}

/// A demo source for the local stack: an API key and a signing secret, allowed every producer type under any
/// CloudEvents source. Returns the sources JSON and the shell lines (`TUBES_API_KEY=…`) that hand the
/// credentials to a developer.
pub fn demo() -> Result<(String, String), String> {
    let key = api_key("demo", "k1")?;
    let secret = signing_secret()?;
    let sources = json!({"demo": {
        "api_keys": {"k1": key.hash},
        "signing_secrets": [secret],
        "event_types": ["*"],
        "ce_sources": ["*"],
    }});
    let env = format!(
        "TUBES_SOURCE=demo\nTUBES_API_KEY={}\nTUBES_SIGNING_SECRET={secret}\n",
        key.key
    );
    Ok((sources.to_string(), env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_are_what_ingest_reads_and_never_twice_the_same() {
        let a = api_key("shop", "2026-11").unwrap();
        let b = api_key("shop", "2026-11").unwrap();
        assert_ne!(a.key, b.key);
        let parsed = tubes_ingest::credentials::api_key::ApiKey::parse(&a.key).unwrap();
        let stored = tubes_ingest::credentials::api_key::KeyHash::parse(&a.hash).unwrap();
        assert!(parsed.matches(&stored));
        assert!(api_key("Shop", "k").is_err());
        let secret = signing_secret().unwrap();
        assert!(tubes_ingest::webhook::Secret::parse(&secret).is_ok());
        assert_ne!(secret, signing_secret().unwrap());
    }

    #[test]
    fn the_demo_source_parses_as_ingest_reads_it() {
        let (sources, env) = demo().unwrap();
        let registry = tubes_ingest::sources::Registry::parse(&sources, false).unwrap();
        let demo = registry.get("demo").unwrap();
        assert_eq!((demo.api_keys.len(), demo.signing_secrets.len()), (1, 1));
        assert!(env.contains("TUBES_API_KEY=tubes_demo.k1."));
        assert!(
            !sources.contains("tubes_demo.k1."),
            "only the key's hash is stored"
        );
    }
}
