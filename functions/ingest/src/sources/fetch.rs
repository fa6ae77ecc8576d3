//! Where the sources configuration comes from, and keeping it fresh: keys and secrets rotate without a cold
//! start. [`Sources`] holds the parsed [`Registry`] and re-reads it through a [`SourcesFetch`] when it is older
//! than its maximum age (minutes), and at once when a request presents an API key it does not know (a key
//! minted a moment ago), at most once per [`MIN_REFRESH_GAP`] so that a flood of bad keys cannot flood the
//! secret store. A refresh that fails, or reads a configuration that does not parse, keeps the current one (and
//! says so in the logs): a bad edit of the secret never takes ingest down.
//!
//! The first read need not hold up the cold start ([`Sources::in_background`]): it runs while the runtime asks
//! for the first request, and that request waits for it. Until a configuration has been read, a request gets
//! [`SourcesUnavailable`] (ingest answers `503`, never `202` and never as an open source), and the read is tried
//! again, at most once per [`RETRY_GAP_UNREAD`].

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Registry;
use crate::config::{ConfigError, SourcesLocation};

/// The shortest time between two refreshes triggered by unknown API keys.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);

/// The shortest time between two attempts to read the configuration while none has been read yet: short, since
/// every request answers `503` meanwhile, but not per request, so that a broken secret is not read per request.
pub const RETRY_GAP_UNREAD: Duration = Duration::from_secs(1);

/// No sources configuration has been read yet (the secret could not be read, or does not parse): a request can
/// be neither authenticated nor refused on its merits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sources configuration could not be read")]
pub struct SourcesUnavailable;

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
            current: RwLock::new(Some(Arc::new(registry))),
            read: Mutex::new(Reads::done()),
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
    /// The configuration in force; `None` until one has been read.
    current: RwLock<Option<Arc<Registry>>>,
    /// Held while a read runs, so that concurrent requests wait for that one.
    read: Mutex<Reads>,
}

/// When the configuration was last read, and the first read if it runs in the background.
#[derive(Debug)]
struct Reads {
    /// The last attempt, whatever its outcome; `None`: never tried.
    at: Option<Instant>,
    /// The first read, started at cold start; the first request that needs the sources takes it.
    first: Option<JoinHandle<Result<String, ConfigError>>>,
}

impl Reads {
    fn done() -> Self {
        Self {
            at: Some(Instant::now()),
            first: None,
        }
    }
}

impl<F: SourcesFetch> Sources<F> {
    /// Reads the configuration once (a failure stops the cold start), then keeps it at most `max_age` old.
    pub async fn load(fetch: F, allow_open: bool, max_age: Duration) -> Result<Self, ConfigError> {
        let registry = Registry::parse(&fetch.fetch().await?, allow_open)?;
        Ok(Self {
            fetch,
            allow_open,
            max_age,
            current: RwLock::new(Some(Arc::new(registry))),
            read: Mutex::new(Reads::done()),
        })
    }

    /// Starts reading the configuration on the Tokio runtime and returns at once: the cold start does not wait
    /// for the secret store (a TLS handshake and a round trip). The first request waits for that read; a read
    /// that fails leaves requests answering [`SourcesUnavailable`] until one succeeds (see the module docs).
    pub fn in_background(fetch: F, allow_open: bool, max_age: Duration) -> Self
    where
        F: Clone + 'static,
    {
        let first = fetch.clone();
        Self {
            fetch,
            allow_open,
            max_age,
            current: RwLock::new(None),
            read: Mutex::new(Reads {
                at: None,
                first: Some(tokio::spawn(async move { first.fetch().await })),
            }),
        }
    }

    /// The sources, re-read first if they are older than their maximum age.
    pub async fn current(&self) -> Result<Arc<Registry>, SourcesUnavailable> {
        self.refresh_if_older_than(self.max_age).await
    }

    /// The sources, re-read first unless they were read within [`MIN_REFRESH_GAP`]: for a credential the current
    /// ones do not know.
    pub async fn refreshed(&self) -> Result<Arc<Registry>, SourcesUnavailable> {
        self.refresh_if_older_than(MIN_REFRESH_GAP).await
    }

    fn snapshot(&self) -> Option<Arc<Registry>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn refresh_if_older_than(
        &self,
        age: Duration,
    ) -> Result<Arc<Registry>, SourcesUnavailable> {
        let mut read = self.read.lock().await;
        if let Some(first) = read.first.take() {
            // The read started at cold start: this request waits for it instead of starting another.
            let fetched = first.await.unwrap_or_else(|e| {
                Err(ConfigError::Invalid {
                    name: "sources",
                    reason: format!("the first read did not finish: {e}"),
                })
            });
            read.at = Some(Instant::now());
            return self.install(fetched);
        }
        let current = self.snapshot();
        let gap = if current.is_some() {
            age
        } else {
            RETRY_GAP_UNREAD
        };
        if read.at.is_some_and(|at| at.elapsed() < gap) {
            return current.ok_or(SourcesUnavailable);
        }
        // Whatever happens, the next attempt waits a full period: a broken secret is not fetched per request.
        read.at = Some(Instant::now());
        let fetched = self.fetch.fetch().await;
        self.install(fetched)
    }

    /// Puts what a read returned in force if it parses; else keeps the configuration in force, if any.
    fn install(
        &self,
        fetched: Result<String, ConfigError>,
    ) -> Result<Arc<Registry>, SourcesUnavailable> {
        match fetched.and_then(|json| Registry::parse(&json, self.allow_open)) {
            Ok(registry) => {
                let registry = Arc::new(registry);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Arc::clone(&registry));
                tracing::debug!(sources = registry.len(), "sources read");
                Ok(registry)
            }
            Err(err) => match self.snapshot() {
                Some(previous) => {
                    tracing::error!(error = %err, "sources not re-read; the previous configuration stays in force");
                    Ok(previous)
                }
                None => {
                    tracing::error!(error = %err, "sources not read; requests are answered 503 until they are");
                    Err(SourcesUnavailable)
                }
            },
        }
    }
}
