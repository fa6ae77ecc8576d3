//! Where the readers configuration comes from. Inline (`READERS`) it is parsed at cold start; in a secret
//! (`READERS_SECRET_ARN`) it is read in the background ([`ReadersSource::in_background`]), as ingest reads its
//! sources: the cold start does not wait for the secret store, the first request waits for that read, and until
//! a configuration has been read every request is answered `503 unavailable` (never as if no key were valid), the
//! read being tried again at most once per [`RETRY_GAP_UNREAD`]. Once read, the readers stay as they are until the
//! next cold start.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{ConfigError, Readers};

/// The shortest time between two attempts to read the readers while none have been read: every request answers
/// `503` meanwhile, but a broken secret is not read per request.
pub const RETRY_GAP_UNREAD: Duration = Duration::from_secs(1);

/// No readers configuration has been read yet: no key can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the readers configuration could not be read")]
pub struct ReadersUnavailable;

/// Reads the readers JSON.
pub trait ReadersFetch: Send + Sync {
    /// The current JSON.
    fn fetch(&self) -> impl Future<Output = Result<String, ConfigError>> + Send;
}

/// The readers in an AWS Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretReaders {
    client: aws_sdk_secretsmanager::Client,
    id: String,
}

impl SecretReaders {
    /// The secret `id` (a name or an ARN), read with `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, id: impl Into<String>) -> Self {
        Self {
            client,
            id: id.into(),
        }
    }
}

impl ReadersFetch for SecretReaders {
    async fn fetch(&self) -> Result<String, ConfigError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| {
                ConfigError(format!(
                    "secret {}: {}",
                    self.id,
                    tubes_platform::aws::describe("GetSecretValue", e)
                ))
            })?;
        output
            .secret_string
            .ok_or_else(|| ConfigError(format!("secret {}: no string value", self.id)))
    }
}

/// The readers: read already, or being read (see the module docs).
#[derive(Debug)]
pub struct ReadersSource<F = SecretReaders> {
    /// `None`: given at cold start, never read.
    fetch: Option<F>,
    /// Set once, by the first read that parses: requests then read it without a lock.
    current: OnceLock<Readers>,
    /// Held while a read runs, so that concurrent requests wait for that one.
    read: Mutex<Reads>,
}

/// When the readers were last tried, and the first read while it runs in the background.
#[derive(Debug, Default)]
struct Reads {
    at: Option<Instant>,
    first: Option<JoinHandle<Result<String, ConfigError>>>,
}

impl<F> ReadersSource<F> {
    /// Readers known at cold start (`READERS`, tests).
    pub fn ready(readers: Readers) -> Self {
        Self {
            fetch: None,
            current: OnceLock::from(readers),
            read: Mutex::new(Reads::default()),
        }
    }
}

impl<F: ReadersFetch> ReadersSource<F> {
    /// Starts reading the readers on the Tokio runtime and returns at once; the first request waits for that read.
    pub fn in_background(fetch: F) -> Self
    where
        F: Clone + 'static,
    {
        let first = fetch.clone();
        Self {
            fetch: Some(fetch),
            current: OnceLock::new(),
            read: Mutex::new(Reads {
                at: None,
                first: Some(tokio::spawn(async move { first.fetch().await })),
            }),
        }
    }

    /// The readers, read first if they have not been yet (waiting for the background read, or trying again at
    /// most once per [`RETRY_GAP_UNREAD`]).
    pub async fn current(&self) -> Result<&Readers, ReadersUnavailable> {
        if let Some(readers) = self.current.get() {
            return Ok(readers);
        }
        let mut read = self.read.lock().await;
        // Another request may have read them while this one waited for the lock.
        if let Some(readers) = self.current.get() {
            return Ok(readers);
        }
        let fetched = if let Some(first) = read.first.take() {
            first
                .await
                .unwrap_or_else(|e| Err(ConfigError(format!("the first read did not finish: {e}"))))
        } else if read.at.is_some_and(|at| at.elapsed() < RETRY_GAP_UNREAD) {
            return Err(ReadersUnavailable);
        } else {
            match &self.fetch {
                Some(fetch) => fetch.fetch().await,
                None => return Err(ReadersUnavailable),
            }
        };
        // Whatever happened, the next attempt waits a full gap.
        read.at = Some(Instant::now());
        match fetched.and_then(|json| Readers::parse(&json)) {
            Ok(readers) => {
                tracing::debug!("readers read");
                Ok(self.current.get_or_init(|| readers))
            }
            Err(err) => {
                tracing::error!(error = %err, "readers not read; requests are answered 503 until they are");
                Err(ReadersUnavailable)
            }
        }
    }
}
