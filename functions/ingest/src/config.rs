//! Ingest's configuration, read once at cold start.

use std::collections::BTreeMap;
use std::env;

use serde::Deserialize;

use crate::webhook::Secret;

/// Largest request body accepted by default: a full batch of ordinary events fits with room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest single event accepted by default (the catalogue's events are well under a KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;
/// Most events in one batch by default (one `PutRecords` call's worth).
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
/// The variable naming an AWS Secrets Manager secret (id or ARN) whose value is the `WEBHOOK_SOURCES` JSON.
pub const SOURCES_SECRET_VAR: &str = "WEBHOOK_SOURCES_SECRET_ID";

/// How long ingest keeps retrying unacknowledged records by default, in milliseconds.
pub const DEFAULT_WRITE_DEADLINE_MS: u64 = 5_000;

/// What ingest needs to know, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `STREAM_NAME`: the Kinesis stream events are written to.
    pub stream_name: String,
    /// `MAX_BODY_BYTES`: bodies above this get `413`.
    pub max_body_bytes: usize,
    /// `MAX_EVENT_BYTES`: an event (of a batch, or alone) above this gets `413`.
    pub max_event_bytes: usize,
    /// `MAX_BATCH_EVENTS`: batches with more events get `413`.
    pub max_batch_events: usize,
    /// `WRITE_DEADLINE_MS`: how long unacknowledged records are retried before the request answers.
    pub write_deadline_ms: u64,
    /// `WEBHOOK_SOURCES`: the sources events may come from, by name (`POST /sources/{name}/events`), each with
    /// its active signing secrets. JSON: `{"name": {"secrets": ["whsec_…"], "require_signature": true}}`.
    pub sources: BTreeMap<String, Source>,
    /// `DEFAULT_SOURCE`: the source `POST /events` belongs to. Unset: an open source with no secrets.
    pub default_source: Source,
}

/// A sender of events and how it authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Active secrets (several during a rotation); a signed request must match one of them.
    pub secrets: Vec<Secret>,
    /// Unsigned requests are refused.
    pub require_signature: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSpec {
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    require_signature: bool,
}

/// Parses `WEBHOOK_SOURCES` (see [`Config::sources`]).
pub fn parse_sources(json: &str) -> Result<BTreeMap<String, Source>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "WEBHOOK_SOURCES",
        reason,
    };
    let specs: BTreeMap<String, SourceSpec> =
        serde_json::from_str(json).map_err(|e| invalid(format!("not a sources object: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(invalid(format!(
                "source name {name:?}: use 1-64 of a-z 0-9 - _"
            )));
        }
        let secrets = spec
            .secrets
            .iter()
            .map(|s| Secret::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("source {name}: {e}")))?;
        if spec.require_signature && secrets.is_empty() {
            return Err(invalid(format!(
                "source {name} requires signatures but has no secret"
            )));
        }
        out.insert(
            name,
            Source {
                secrets,
                require_signature: spec.require_signature,
            },
        );
    }
    Ok(out)
}

/// A setting is missing or malformed; the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// The sources secret could not be read (its value is never part of the message).
    #[error("secret {id} ({SOURCES_SECRET_VAR}) could not be read: {reason}")]
    Secret {
        /// The secret's id or ARN.
        id: String,
        /// Why.
        reason: String,
    },
    /// A variable does not parse.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Defaults for everything but the stream: an open default source, no named sources.
    pub fn new(stream_name: impl Into<String>) -> Self {
        Self {
            stream_name: stream_name.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            write_deadline_ms: DEFAULT_WRITE_DEADLINE_MS,
            sources: BTreeMap::new(),
            default_source: Source::default(),
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration from the process environment, with the sources fetched once from AWS Secrets
    /// Manager when [`SOURCES_SECRET_VAR`] names a secret. A `WEBHOOK_SOURCES` variable, when set, wins: it is
    /// how a developer overrides the sources locally.
    pub async fn load(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let set = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
        let sources = match (set("WEBHOOK_SOURCES"), set(SOURCES_SECRET_VAR)) {
            (Some(json), _) => Some(json),
            (None, Some(id)) => Some(fetch_secret(aws, id.trim()).await?),
            (None, None) => None,
        };
        Self::from_lookup(|name| match name {
            "WEBHOOK_SOURCES" => sources.clone(),
            _ => env::var(name).ok(),
        })
    }
}

/// The string value of secret `id`.
async fn fetch_secret(aws: &aws_config::SdkConfig, id: &str) -> Result<String, ConfigError> {
    let failed = |reason: String| ConfigError::Secret {
        id: id.to_owned(),
        reason,
    };
    let output = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| failed(tubes_platform::aws::describe("GetSecretValue", e)))?;
    output
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| failed("the secret has no string value".into()))
}

impl Config {
    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let stream_name = lookup("STREAM_NAME")
            .filter(|s| !s.trim().is_empty())
            .ok_or(ConfigError::Missing("STREAM_NAME"))?;
        let max_body_bytes = match lookup("MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 && n <= 10 * 1024 * 1024 => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "MAX_BODY_BYTES",
                        reason: "must be a whole number of bytes between 1 and 10485760".into(),
                    })
                }
            },
        };
        let number = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= max => Ok(n),
                    _ => Err(ConfigError::Invalid {
                        name,
                        reason: format!("must be a whole number from 1 to {max}"),
                    }),
                },
            }
        };
        let max_event_bytes = number(
            "MAX_EVENT_BYTES",
            DEFAULT_MAX_EVENT_BYTES as u64,
            1024 * 1024,
        )? as usize;
        let max_batch_events =
            number("MAX_BATCH_EVENTS", DEFAULT_MAX_BATCH_EVENTS as u64, 10_000)? as usize;
        let write_deadline_ms = number("WRITE_DEADLINE_MS", DEFAULT_WRITE_DEADLINE_MS, 25_000)?;
        let sources = match lookup("WEBHOOK_SOURCES").filter(|s| !s.trim().is_empty()) {
            Some(json) => parse_sources(&json)?,
            None => BTreeMap::new(),
        };
        let default_source = match lookup("DEFAULT_SOURCE").filter(|s| !s.trim().is_empty()) {
            Some(name) => {
                sources
                    .get(name.trim())
                    .cloned()
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "DEFAULT_SOURCE",
                        reason: format!("{name:?} is not in WEBHOOK_SOURCES"),
                    })?
            }
            None => Source::default(),
        };
        Ok(Self {
            stream_name,
            max_body_bytes,
            max_event_bytes,
            max_batch_events,
            write_deadline_ms,
            sources,
            default_source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn reads_and_defaults() {
        let c = Config::from_lookup(lookup(&[("STREAM_NAME", "events")])).unwrap();
        assert_eq!(c, Config::new("events"));
        let c = Config::from_lookup(lookup(&[("STREAM_NAME", "e"), ("MAX_BODY_BYTES", "1024")]))
            .unwrap();
        assert_eq!(c.max_body_bytes, 1024);
    }

    #[test]
    fn fails_fast() {
        assert!(matches!(
            Config::from_lookup(lookup(&[])),
            Err(ConfigError::Missing("STREAM_NAME"))
        ));
        assert!(matches!(
            Config::from_lookup(lookup(&[("STREAM_NAME", " ")])),
            Err(ConfigError::Missing(_))
        ));
        for bad in ["0", "-1", "lots", "999999999999"] {
            let r = Config::from_lookup(lookup(&[("STREAM_NAME", "e"), ("MAX_BODY_BYTES", bad)]));
            assert!(matches!(r, Err(ConfigError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn sources_with_secrets_and_a_default() {
        let sources = r#"{"stripe": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "require_signature": true},
                          "internal": {}}"#;
        let c = Config::from_lookup(lookup(&[
            ("STREAM_NAME", "events"),
            ("WEBHOOK_SOURCES", sources),
            ("DEFAULT_SOURCE", "stripe"),
        ]))
        .unwrap();
        assert_eq!(c.sources.len(), 2);
        assert!(c.default_source.require_signature);
        assert_eq!(c.default_source.secrets.len(), 1);
        assert_eq!(c.sources["internal"], Source::default());
    }

    #[test]
    fn bad_sources_refuse_to_start() {
        for (sources, default) in [
            (r#"{"Bad Name": {}}"#, ""),
            (r#"{"s": {"secrets": ["nope"]}}"#, ""),
            (r#"{"s": {"require_signature": true}}"#, ""),
            (r#"{"s": {"typo": 1}}"#, ""),
            (r#"[1]"#, ""),
            (r#"{"s": {}}"#, "other"),
        ] {
            let r = Config::from_lookup(lookup(&[
                ("STREAM_NAME", "events"),
                ("WEBHOOK_SOURCES", sources),
                ("DEFAULT_SOURCE", default),
            ]));
            assert!(r.is_err(), "{sources} / {default}");
        }
    }
}
