//! Ingest's configuration, read once at cold start. The sources (who may send what) are not here: they live in
//! their own secret and are re-read while ingest runs ([`crate::sources`]); this says where to find them.

use std::env;
use std::time::Duration;

/// Largest request body accepted by default: a full batch of ordinary events fits with room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest single event accepted by default (the catalogue's events are well under a KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;
/// Most events in one batch by default (one `PutRecords` call's worth).
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 500;
/// The variable naming an AWS Secrets Manager secret (id or ARN) whose value is the sources JSON.
pub const SOURCES_SECRET_VAR: &str = "SOURCES_SECRET_ID";
/// The variable holding the sources JSON itself (wins over the secret: a developer's local override).
pub const SOURCES_VAR: &str = "TUBES_SOURCES";

/// The most bytes of events ingest packs into one record by default ([`crate::pack`]), before deflating: with
/// [`crate::pack::MAX_PACK_EVENTS`] it makes records of up to 100 events, a few KiB once deflated, so a retried
/// pack costs its consumers little.
pub const DEFAULT_PACK_MAX_BYTES: usize = 64 * 1024;

/// How long ingest keeps retrying unacknowledged records by default, in milliseconds.
pub const DEFAULT_WRITE_DEADLINE_MS: u64 = 5_000;

/// How old the sources may get before they are re-read, by default: a rotated or revoked key takes effect
/// within this, without a cold start.
pub const DEFAULT_SOURCES_MAX_AGE: Duration = Duration::from_secs(5 * 60);

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
    /// `PACK_MAX_BYTES`: the most bytes of events packed into one record, before deflating (default 64 KiB); `0`
    /// writes every event as a record of its own.
    pub pack_max_bytes: usize,
    /// Where the sources are: `TUBES_SOURCES` (the JSON itself) or `SOURCES_SECRET_ID` (a secret). Neither: no
    /// source, every request is refused.
    pub sources: SourcesLocation,
    /// `SOURCES_MAX_AGE_SECS`: how old the sources may get before they are re-read (default 300).
    pub sources_max_age: Duration,
    /// `DEFAULT_SOURCE`: the source of signed (or, if it is open, credential-less) requests on `POST /events`.
    pub default_source: Option<String>,
    /// `ALLOW_OPEN_SOURCES=true`: sources without a credential may be configured (the local stack sets it; the
    /// template never does).
    pub allow_open_sources: bool,
}

/// Where the sources JSON is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesLocation {
    /// In the environment (`TUBES_SOURCES`): fixed for the life of the instance.
    Inline(String),
    /// In this AWS Secrets Manager secret (`SOURCES_SECRET_ID`): re-read while ingest runs.
    Secret(String),
    /// Nowhere: no source.
    None,
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
    /// Defaults for everything but the stream: no source.
    pub fn new(stream_name: impl Into<String>) -> Self {
        Self {
            stream_name: stream_name.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            write_deadline_ms: DEFAULT_WRITE_DEADLINE_MS,
            pack_max_bytes: DEFAULT_PACK_MAX_BYTES,
            sources: SourcesLocation::None,
            sources_max_age: DEFAULT_SOURCES_MAX_AGE,
            default_source: None,
            allow_open_sources: false,
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests); empty values count as
    /// unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let stream_name = lookup("STREAM_NAME").ok_or(ConfigError::Missing("STREAM_NAME"))?;
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
        let max_body_bytes = number(
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES as u64,
            10 * 1024 * 1024,
        )? as usize;
        let max_event_bytes = number(
            "MAX_EVENT_BYTES",
            DEFAULT_MAX_EVENT_BYTES as u64,
            1024 * 1024,
        )? as usize;
        let max_batch_events =
            number("MAX_BATCH_EVENTS", DEFAULT_MAX_BATCH_EVENTS as u64, 10_000)? as usize;
        let write_deadline_ms = number("WRITE_DEADLINE_MS", DEFAULT_WRITE_DEADLINE_MS, 25_000)?;
        let pack_max_bytes = match lookup("PACK_MAX_BYTES").as_deref().map(str::trim) {
            Some("0") => 0,
            _ => number(
                "PACK_MAX_BYTES",
                DEFAULT_PACK_MAX_BYTES as u64,
                tubes_contract::codec::MAX_RECORD_BYTES as u64,
            )? as usize,
        };
        let sources_max_age = Duration::from_secs(number(
            "SOURCES_MAX_AGE_SECS",
            DEFAULT_SOURCES_MAX_AGE.as_secs(),
            3_600,
        )?);
        let sources = match (lookup(SOURCES_VAR), lookup(SOURCES_SECRET_VAR)) {
            (Some(json), _) => SourcesLocation::Inline(json),
            (None, Some(id)) => SourcesLocation::Secret(id.trim().to_owned()),
            (None, None) => SourcesLocation::None,
        };
        let allow_open_sources = match lookup("ALLOW_OPEN_SOURCES").as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "ALLOW_OPEN_SOURCES",
                    reason: "must be true or false".into(),
                })
            }
        };
        let default_source = lookup("DEFAULT_SOURCE").map(|s| s.trim().to_owned());
        if let Some(name) = &default_source {
            if !crate::credentials::is_name(name, 64) {
                return Err(ConfigError::Invalid {
                    name: "DEFAULT_SOURCE",
                    reason: "a source name: 1-64 of a-z 0-9 - _".into(),
                });
            }
        }
        Ok(Self {
            stream_name,
            max_body_bytes,
            max_event_bytes,
            max_batch_events,
            write_deadline_ms,
            pack_max_bytes,
            sources,
            sources_max_age,
            default_source,
            allow_open_sources,
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
        let c =
            Config::from_lookup(lookup(&[("STREAM_NAME", "e"), ("PACK_MAX_BYTES", "0")])).unwrap();
        assert_eq!(c.pack_max_bytes, 0, "0 turns packing off");
        assert_eq!(Config::new("e").pack_max_bytes, DEFAULT_PACK_MAX_BYTES);
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
    fn where_the_sources_are() {
        let c = Config::from_lookup(lookup(&[
            ("STREAM_NAME", "events"),
            (
                SOURCES_SECRET_VAR,
                "arn:aws:secretsmanager:us-east-1:1:secret:s",
            ),
            ("DEFAULT_SOURCE", "shop"),
            ("SOURCES_MAX_AGE_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!(
            c.sources,
            SourcesLocation::Secret("arn:aws:secretsmanager:us-east-1:1:secret:s".into())
        );
        assert_eq!(c.default_source.as_deref(), Some("shop"));
        assert_eq!(c.sources_max_age, Duration::from_secs(60));
        assert!(!c.allow_open_sources, "closed unless said otherwise");
        // The inline JSON wins (a local override).
        let c = Config::from_lookup(lookup(&[
            ("STREAM_NAME", "events"),
            (SOURCES_SECRET_VAR, "s"),
            (SOURCES_VAR, "{}"),
            ("ALLOW_OPEN_SOURCES", "true"),
        ]))
        .unwrap();
        assert_eq!(c.sources, SourcesLocation::Inline("{}".into()));
        assert!(c.allow_open_sources);
        for (name, bad) in [
            ("ALLOW_OPEN_SOURCES", "yes"),
            ("DEFAULT_SOURCE", "Shop"),
            ("SOURCES_MAX_AGE_SECS", "0"),
            ("PACK_MAX_BYTES", "2000000"),
            ("PACK_MAX_BYTES", "-1"),
        ] {
            let r = Config::from_lookup(lookup(&[("STREAM_NAME", "e"), (name, bad)]));
            assert!(
                matches!(r, Err(ConfigError::Invalid { .. })),
                "{name}={bad}"
            );
        }
    }
}
