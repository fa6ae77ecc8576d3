//! Where the sources configuration comes from, and keeping it fresh: keys and secrets rotate without a cold
//! start. [`Sources`] holds the parsed [`Registry`], read through a [`SourcesFetch`] and kept fresh by
//! [`tubes_platform::refresh::Refreshing`]: re-read when older than its maximum age (minutes), and at once when a
//! request presents an API key it does not know (a key minted a moment ago), at most once per
//! [`MIN_REFRESH_GAP`]; a refresh that fails, or reads a configuration that does not parse, keeps the current one
//! (and says so in the logs): a bad edit of the secret never takes ingest down.
//!
//! The first read need not hold up the cold start ([`Sources::in_background`]): it runs while the runtime asks
//! for the first request, and that request waits for it. Until a configuration has been read, a request gets
//! [`SourcesUnavailable`] (ingest answers `503`, never `202` and never as an open source), and the read is tried
//! again, at most once per [`RETRY_GAP_UNREAD`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tubes_platform::refresh::{Read, Refreshing};
pub use tubes_platform::refresh::{
    Unavailable as SourcesUnavailable, MIN_REFRESH_GAP, RETRY_GAP_UNREAD,
};

use super::Registry;
use crate::config::{ConfigError, SourcesLocation};

/// Reads the sources JSON.
pub trait SourcesFetch: Send + Sync {
    /// The current JSON.
    fn fetch(&self) -> impl Future<Output = Result<String, ConfigError>> + Send;
}

/// A configuration that never changes (`TUBES_SOURCES` in the environment, tests).
#[derive(Debug, Clone)]
pub struct FixedSources(pub String);

impl SourcesFetch for FixedSources {
    async fn fetch(&self) -> Result<String, ConfigError> {
        Ok(self.0.clone())
    }
}

/// The configuration in an AWS Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretsManagerSources {
    client: aws_sdk_secretsmanager::Client,
    id: String,
}

impl SecretsManagerSources {
    /// The secret `id` (a name or an ARN), read with `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, id: impl Into<String>) -> Self {
        Self {
            client,
            id: id.into(),
        }
    }
}

impl SourcesFetch for SecretsManagerSources {
    async fn fetch(&self) -> Result<String, ConfigError> {
        let failed = |reason: String| ConfigError::Secret {
            id: self.id.clone(),
            reason,
        };
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| failed(tubes_platform::aws::describe("GetSecretValue", e)))?;
        output
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| failed("the secret has no string value".into()))
    }
}

impl Sources<FixedSources> {
    /// Sources given as JSON (tests, benchmarks), parsed now and never re-read.
    pub fn fixed(json: &str, allow_open: bool) -> Result<Self, ConfigError> {
        Ok(Self(Refreshing::fixed(
            "sources",
            Registry::parse(json, allow_open)?,
        )))
    }
}

/// The fetch the configuration chooses ([`SourcesLocation`]).
#[derive(Debug, Clone)]
pub enum AnySourcesFetch {
    /// A fixed JSON (the environment), or none (`{}`: every request refused).
    Fixed(FixedSources),
    /// The sources secret.
    SecretsManager(SecretsManagerSources),
}

impl AnySourcesFetch {
    /// The fetch for `location`; the secret is read with a client made from `aws`.
    pub fn new(location: &SourcesLocation, aws: &aws_config::SdkConfig) -> Self {
        match location {
            SourcesLocation::Inline(json) => AnySourcesFetch::Fixed(FixedSources(json.clone())),
            SourcesLocation::None => AnySourcesFetch::Fixed(FixedSources("{}".into())),
            SourcesLocation::Secret(id) => AnySourcesFetch::SecretsManager(
                SecretsManagerSources::new(aws_sdk_secretsmanager::Client::new(aws), id),
            ),
        }
    }
}

impl SourcesFetch for AnySourcesFetch {
    async fn fetch(&self) -> Result<String, ConfigError> {
        match self {
            AnySourcesFetch::Fixed(f) => f.fetch().await,
            AnySourcesFetch::SecretsManager(s) => s.fetch().await,
        }
    }
}

/// The sources configuration, read through `F` and kept fresh (see the module docs).
#[derive(Debug)]
pub struct Sources<F>(Refreshing<Registry, SourcesRead<F>>);

/// Reads the sources JSON through `F` and parses it.
#[derive(Debug, Clone)]
pub struct SourcesRead<F> {
    fetch: F,
    allow_open: bool,
}

impl<F: SourcesFetch> Read<Registry> for SourcesRead<F> {
    async fn read(&self) -> Result<Registry, String> {
        let json = self.fetch.fetch().await.map_err(|e| e.to_string())?;
        Registry::parse(&json, self.allow_open).map_err(|e| e.to_string())
    }
}

impl<F: SourcesFetch> Sources<F> {
    /// Reads the sources now (a failure stops the cold start), then keeps them fresh: re-read when older than
    /// `max_age`.
    pub async fn load(fetch: F, allow_open: bool, max_age: Duration) -> Result<Self, ConfigError> {
        let registry = Registry::parse(&fetch.fetch().await?, allow_open)?;
        let read = SourcesRead { fetch, allow_open };
        Ok(Self(Refreshing::read_already(
            "sources",
            Some(read),
            registry,
            max_age,
        )))
    }

    /// Starts reading the sources on the Tokio runtime and returns at once; the first request waits for that read.
    pub fn in_background(fetch: F, allow_open: bool, max_age: Duration) -> Self
    where
        F: Clone + 'static,
    {
        Self(Refreshing::in_background(
            "sources",
            SourcesRead { fetch, allow_open },
            max_age,
        ))
    }

    /// The sources, re-read first if they are older than the maximum age (or were never read).
    pub async fn current(&self) -> Result<Arc<Registry>, SourcesUnavailable> {
        self.0.current().await
    }

    /// The sources, re-read first unless they were read within [`MIN_REFRESH_GAP`]: for a credential the current
    /// ones do not know.
    pub async fn refreshed(&self) -> Result<Arc<Registry>, SourcesUnavailable> {
        self.0.refreshed().await
    }
}
