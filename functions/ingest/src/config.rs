//! Ingest's configuration, read once at cold start.

use std::env;

/// Largest request body accepted by default (one event is at most a few tens of KiB once valid).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// What ingest needs to know, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `STREAM_NAME`: the Kinesis stream events are written to.
    pub stream_name: String,
    /// `MAX_BODY_BYTES`: bodies above this get `413`.
    pub max_body_bytes: usize,
}

/// A setting is missing or malformed; the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
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
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let stream_name =
            lookup("STREAM_NAME").filter(|s| !s.trim().is_empty()).ok_or(ConfigError::Missing("STREAM_NAME"))?;
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
        Ok(Self { stream_name, max_body_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn reads_and_defaults() {
        let c = Config::from_lookup(lookup(&[("STREAM_NAME", "events")])).unwrap();
        assert_eq!(c, Config { stream_name: "events".into(), max_body_bytes: DEFAULT_MAX_BODY_BYTES });
        let c = Config::from_lookup(lookup(&[("STREAM_NAME", "e"), ("MAX_BODY_BYTES", "1024")])).unwrap();
        assert_eq!(c.max_body_bytes, 1024);
    }

    #[test]
    fn fails_fast() {
        assert!(matches!(Config::from_lookup(lookup(&[])), Err(ConfigError::Missing("STREAM_NAME"))));
        assert!(matches!(Config::from_lookup(lookup(&[("STREAM_NAME", " ")])), Err(ConfigError::Missing(_))));
        for bad in ["0", "-1", "lots", "999999999999"] {
            let r = Config::from_lookup(lookup(&[("STREAM_NAME", "e"), ("MAX_BODY_BYTES", bad)]));
            assert!(matches!(r, Err(ConfigError::Invalid { .. })), "{bad}");
        }
    }
}
