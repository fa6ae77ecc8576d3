//! Where the sources configuration comes from, and keeping it fresh: keys and secrets rotate without a cold
//! start. [`Sources`] holds the parsed [`Registry`] and re-reads it through a [`SourcesFetch`] when it is older
//! than its maximum age (minutes), and at once when a request presents an API key it does not know (a key
//! minted a moment ago), at most once per [`MIN_REFRESH_GAP`] so that a flood of bad keys cannot flood the
//! secret store. A refresh that fails, or reads a configuration that does not parse, keeps the current one (and
//! says so in the logs): a bad edit of the secret never takes ingest down.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Registry;
use crate::config::{ConfigError, SourcesLocation};

/// The shortest time between two refreshes triggered by unknown API keys.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);

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
    /// Sources that never change: `json` parsed now (the environment's `TUBES_SOURCES`, tests).
    pub fn fixed(json: &str, allow_open: bool) -> Result<Self, ConfigError> {
        let registry = Registry::parse(json, allow_open)?;
        Ok(Self {
            fetch: FixedSources(json.to_owned()),
            allow_open,
            // Nothing to re-read: a fixed configuration only re-parses what it already has.
            max_age: Duration::MAX,
            current: RwLock::new(Arc::new(registry)),
            read_at: Mutex::new(Instant::now()),
        })
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

/// The sources, kept fresh (see the module docs).
#[derive(Debug)]
pub struct Sources<F> {
    fetch: F,
    allow_open: bool,
    max_age: Duration,
    current: RwLock<Arc<Registry>>,
    /// When the current registry was read; held while a refresh runs, so that concurrent requests wait for one.
    read_at: Mutex<Instant>,
}

impl<F: SourcesFetch> Sources<F> {
    /// Reads the configuration once (a failure stops the cold start), then keeps it at most `max_age` old.
    pub async fn load(fetch: F, allow_open: bool, max_age: Duration) -> Result<Self, ConfigError> {
        let registry = Registry::parse(&fetch.fetch().await?, allow_open)?;
        Ok(Self {
            fetch,
            allow_open,
            max_age,
            current: RwLock::new(Arc::new(registry)),
            read_at: Mutex::new(Instant::now()),
        })
    }

    /// The sources, re-read first if they are older than their maximum age.
    pub async fn current(&self) -> Arc<Registry> {
        self.refresh_if_older_than(self.max_age).await
    }

    /// The sources, re-read first unless they were read within [`MIN_REFRESH_GAP`]: for a credential the current
    /// ones do not know.
    pub async fn refreshed(&self) -> Arc<Registry> {
        self.refresh_if_older_than(MIN_REFRESH_GAP).await
    }

    fn snapshot(&self) -> Arc<Registry> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    async fn refresh_if_older_than(&self, age: Duration) -> Arc<Registry> {
        if self.read_at.lock().await.elapsed() < age {
            return self.snapshot();
        }
        let mut read_at = self.read_at.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if read_at.elapsed() < age {
            return self.snapshot();
        }
        // Whatever happens, the next attempt waits a full period: a broken secret is not fetched per request.
        *read_at = Instant::now();
        let parsed = match self.fetch.fetch().await {
            Ok(json) => Registry::parse(&json, self.allow_open),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(registry) => {
                let registry = Arc::new(registry);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&registry);
                tracing::debug!(sources = registry.len(), "sources re-read");
                registry
            }
            Err(err) => {
                tracing::error!(error = %err, "sources not re-read; the previous configuration stays in force");
                self.snapshot()
            }
        }
    }
}
