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

/// The local stack's demo credentials, as their configurations and the shell lines that hand them to a developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// The sources JSON: the demo source.
    pub sources: String,
    /// The readers JSON (the query API): the demo reader.
    pub readers: String,
    /// `TUBES_API_KEY=…`, `TUBES_READ_KEY=…` lines.
    pub env: String,
}

/// A demo source for the local stack (an API key and a signing secret, allowed every producer type under any
/// CloudEvents source) and a demo reader of the query API (a read-only key).
pub fn demo() -> Result<Demo, String> {
    let key = api_key("demo", "k1")?;
    let read = api_key("demo-reader", "k1")?;
    let secret = signing_secret()?;
    let sources = json!({"demo": {
        "api_keys": {"k1": key.hash},
        "signing_secrets": [secret],
        "event_types": ["*"],
        "ce_sources": ["*"],
    }});
    let readers = json!({"demo-reader": {"api_keys": {"k1": read.hash}}});
    let env = format!(
        "TUBES_SOURCE=demo\nTUBES_API_KEY={}\nTUBES_SIGNING_SECRET={secret}\nTUBES_READ_KEY={}\n",
        key.key, read.key
    );
    Ok(Demo {
        sources: sources.to_string(),
        readers: readers.to_string(),
        env,
    })
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
        let Demo {
            sources,
            readers,
            env,
        } = demo().unwrap();
        let registry = tubes_ingest::sources::Registry::parse(&sources, false).unwrap();
        let demo = registry.get("demo").unwrap();
        assert_eq!((demo.api_keys.len(), demo.signing_secrets.len()), (1, 1));
        assert!(env.contains("TUBES_API_KEY=tubes_demo.k1."));
        assert!(env.contains("TUBES_READ_KEY=tubes_demo-reader.k1."));
        assert!(
            !sources.contains("tubes_demo.k1.") && !readers.contains("tubes_demo-reader.k1."),
            "only the keys' hashes are stored"
        );
    }
}
