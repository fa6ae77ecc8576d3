//! The sources: who may send events, how each proves who it is, and what each may send. A deployment is closed by
//! default: a source without a credential is a configuration error, unless it is explicitly `open` where open
//! sources are allowed at all (the local stack; never the template's default).
//!
//! The configuration is one JSON object, a source per member (in AWS the `SourcesSecret`, re-read while ingest
//! runs: see [`fetch`]):
//!
//! ```json
//! {"shop": {"api_keys": {"2026-11": "sha256:9f86d08…"},
//!           "signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
//!           "iam_principals": ["arn:aws:iam::123456789012:role/shop-producer"],
//!           "event_types": ["payment.received", "account.*"],
//!           "ce_sources": ["/shop", "/shop/*"]}}
//! ```
//!
//! - `api_keys`: key id → the SHA-256 of the key (`tubes_{source}.{key id}.{secret}`, see
//!   [`crate::credentials::api_key`]); several at once during a rotation. Keys are stored hashed, never in clear.
//! - `signing_secrets`: Standard Webhooks secrets (`whsec_` and 24 to 64 bytes), several during a rotation.
//! - `iam_principals`: the IAM roles or users whose SigV4-signed requests on the IAM route belong to this source.
//! - `event_types` (required): the types it may send: a type, a family (`account.*`) or `*`. Consumer-owned types
//!   ([`EventType::publisher`]) are never allowed: naming one is a configuration error, and wildcards skip them.
//! - `ce_sources`: the CloudEvents `source` values its events may carry (`/shop/checkout`, or a prefix
//!   `/shop/*`, or `*`): the event's `source` is bound to the authenticated sender. Default: `/{name}` and
//!   `/{name}/*`.
//! - `open: true`: no credential at all (local development and demos only).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use tubes_contract::EventType;

use crate::config::ConfigError;
use crate::credentials::api_key::KeyHash;
use crate::credentials::webhook::Secret;
use crate::credentials::{iam, is_name};

pub mod fetch;

pub use fetch::{
    AnySourcesFetch, FixedSources, SecretsManagerSources, Sources, SourcesFetch,
    SourcesUnavailable, MIN_REFRESH_GAP, RETRY_GAP_UNREAD,
};

/// Every configured source, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    sources: BTreeMap<String, Source>,
}

/// A sender of events: how it proves it is itself, and what it may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its name (`/sources/{name}/events`, and the middle of its API keys).
    pub name: String,
    /// Takes requests without a credential (local development only).
    pub open: bool,
    /// Active API keys, by key id.
    pub api_keys: BTreeMap<String, KeyHash>,
    /// Active Standard Webhooks secrets.
    pub signing_secrets: Vec<Secret>,
    /// IAM principals (role or user ARNs) that send as this source on the IAM route.
    pub iam_principals: Vec<String>,
    /// The event types it may send.
    pub event_types: BTreeSet<EventType>,
    /// The CloudEvents `source` values its events may carry.
    pub ce_sources: Vec<Pattern>,
}

/// A CloudEvents `source` pattern: a value, a prefix (`/shop/*`) or anything (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this value.
    Exact(String),
    /// Any value starting with this (the pattern without its `*`).
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(v) => v == value,
            Pattern::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

impl Source {
    /// Whether this source may send events of type `ty`.
    pub fn may_send(&self, ty: EventType) -> bool {
        self.event_types.contains(&ty)
    }

    /// Whether this source's events may carry the CloudEvents `source` `value`.
    pub fn may_speak_as(&self, value: &str) -> bool {
        self.ce_sources.iter().any(|p| p.matches(value))
    }

    /// Whether `principal` (an IAM ARN as API Gateway reports it) sends as this source.
    pub fn has_principal(&self, principal: &str) -> bool {
        self.iam_principals
            .iter()
            .any(|p| iam::same_principal(p, principal))
    }
}

impl Registry {
    /// The source named `name`.
    pub fn get(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    /// The source whose IAM principals include `principal`.
    pub fn by_principal(&self, principal: &str) -> Option<&Source> {
        self.sources.values().find(|s| s.has_principal(principal))
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there is none (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Parses the sources JSON (see the module docs); `allow_open` says whether `open` sources are allowed here.
    pub fn parse(json: &str, allow_open: bool) -> Result<Self, ConfigError> {
        let specs: BTreeMap<String, SourceSpec> = serde_json::from_str(json)
            .map_err(|e| invalid(format!("not a sources object: {e}")))?;
        let mut sources = BTreeMap::new();
        for (name, spec) in specs {
            let source = spec.resolve(&name, allow_open)?;
            sources.insert(name, source);
        }
        Ok(Self { sources })
    }
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        name: "sources",
        reason,
    }
}

/// A source as configured.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    #[serde(default)]
    open: bool,
    #[serde(default)]
    api_keys: BTreeMap<String, String>,
    #[serde(default)]
    signing_secrets: Vec<String>,
    #[serde(default)]
    iam_principals: Vec<String>,
    event_types: Vec<String>,
    #[serde(default)]
    ce_sources: Option<Vec<String>>,
}

impl SourceSpec {
    fn resolve(self, name: &str, allow_open: bool) -> Result<Source, ConfigError> {
        let fail = |reason: String| invalid(format!("source {name}: {reason}"));
        if !is_name(name, 64) {
            return Err(invalid(format!(
                "source name {name:?}: use 1-64 of a-z 0-9 - _"
            )));
        }
        let api_keys = self
            .api_keys
            .into_iter()
            .map(|(id, hash)| {
                if !is_name(&id, 32) {
                    return Err(fail(format!("key id {id:?}: use 1-32 of a-z 0-9 - _")));
                }
                KeyHash::parse(&hash)
                    .map(|h| (id.clone(), h))
                    .map_err(|e| fail(format!("api key {id}: {e}")))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let signing_secrets = self
            .signing_secrets
            .iter()
            .map(|s| Secret::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        for arn in &self.iam_principals {
            if !iam::is_principal_arn(arn) {
                return Err(fail(format!(
                    "{arn:?} is not an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME)"
                )));
            }
        }
        let has_credential =
            !api_keys.is_empty() || !signing_secrets.is_empty() || !self.iam_principals.is_empty();
        match (self.open, has_credential, allow_open) {
            (true, _, false) => {
                return Err(fail(
                    "open sources (no credential) are for local development only; \
                     give it api_keys, signing_secrets or iam_principals"
                        .into(),
                ))
            }
            (false, false, _) => {
                return Err(fail(
                    "no credential: give it api_keys, signing_secrets or iam_principals".into(),
                ))
            }
            _ => {}
        }
        let event_types = event_types(&self.event_types).map_err(fail)?;
        let ce_sources = match self.ce_sources {
            Some(list) if list.is_empty() => return Err(fail("ce_sources is empty".into())),
            Some(list) => {
                for p in &list {
                    if p != "*" && !p.starts_with('/') && !p.contains(':') {
                        return Err(fail(format!(
                            "ce_sources entry {p:?}: a URI-reference such as /{name}/checkout, a prefix \
                             such as /{name}/*, or *"
                        )));
                    }
                }
                list.iter().map(|p| Pattern::parse(p)).collect()
            }
            None => vec![
                Pattern::Exact(format!("/{name}")),
                Pattern::Prefix(format!("/{name}/")),
            ],
        };
        Ok(Source {
            name: name.to_owned(),
            open: self.open,
            api_keys,
            signing_secrets,
            iam_principals: self.iam_principals,
            event_types,
            ce_sources,
        })
    }
}

/// The types an `event_types` list allows: each entry a type, a family (`account.*`) or `*`.
fn event_types(list: &[String]) -> Result<BTreeSet<EventType>, String> {
    if list.is_empty() {
        return Err("event_types is required: the types this source may send".into());
    }
    let mut out = BTreeSet::new();
    for entry in list {
        if let Some(ty) = EventType::parse(entry) {
            if let Some(publisher) = ty.publisher() {
                return Err(format!(
                    "{entry} is published by the {publisher} consumer; no source may send it"
                ));
            }
            out.insert(ty);
            continue;
        }
        let prefix = match entry.as_str() {
            "*" => "",
            e => e
                .strip_suffix('*')
                .filter(|p| p.ends_with('.'))
                .ok_or_else(|| format!("{entry:?} is no event type, family (account.*) or *"))?,
        };
        let family: Vec<EventType> = EventType::ALL
            .iter()
            .copied()
            .filter(|t| t.as_str().starts_with(prefix))
            .collect();
        if family.is_empty() {
            return Err(format!("{entry:?} matches no event type"));
        }
        out.extend(family.into_iter().filter(|t| t.publisher().is_none()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
