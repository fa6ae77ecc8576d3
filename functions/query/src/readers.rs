//! Where the readers configuration comes from. Inline (`READERS`) it is parsed at cold start and kept; in a
//! secret (`READERS_SECRET_ARN`) it is read and kept fresh as ingest's sources are
//! ([`tubes_platform::refresh::Refreshing`]): read in the background ([`ReadersSource::in_background`]) so the
//! cold start does not wait for the secret store, the first request waiting for that read; `503 unavailable`
//! until one succeeds (never as if no key were valid), tried again at most once per [`RETRY_GAP_UNREAD`]; then
//! read again when older than `READERS_MAX_AGE_SECS` (300 by default) and at once, at most once per
//! [`MIN_REFRESH_GAP`], when a request presents a key id no reader has (a key minted a moment ago): reader keys
//! rotate without a cold start. A read that fails or does not parse keeps the readers in force.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tubes_platform::refresh::{Read, Refreshing};
pub use tubes_platform::refresh::{
    Unavailable as ReadersUnavailable, MIN_REFRESH_GAP, RETRY_GAP_UNREAD,
};

use crate::{ConfigError, Readers};

/// How old the readers may get before they are read again, unless `READERS_MAX_AGE_SECS` says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

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
pub struct ReadersSource<F = SecretReaders>(Refreshing<Readers, ReadersRead<F>>);

/// Reads the readers JSON through `F` and parses it.
#[derive(Debug, Clone)]
pub struct ReadersRead<F>(F);

impl<F: ReadersFetch> Read<Readers> for ReadersRead<F> {
    async fn read(&self) -> Result<Readers, String> {
        let json = self.0.fetch().await.map_err(|e| e.to_string())?;
        Readers::parse(&json).map_err(|e| e.to_string())
    }
}

impl<F> ReadersSource<F> {
    /// Readers known at cold start (`READERS`, tests), kept as they are.
    pub fn ready(readers: Readers) -> Self {
        Self(Refreshing::fixed("readers", readers))
    }
}

impl<F: ReadersFetch> ReadersSource<F> {
    /// Starts reading the readers on the Tokio runtime and returns at once; the first request waits for that read.
    /// Then they are read again once older than `max_age`.
    pub fn in_background(fetch: F, max_age: Duration) -> Self
    where
        F: Clone + 'static,
    {
        Self(Refreshing::in_background(
            "readers",
            ReadersRead(fetch),
            max_age,
        ))
    }

    /// The readers, read first if they have not been yet or are older than the maximum age.
    pub async fn current(&self) -> Result<Arc<Readers>, ReadersUnavailable> {
        self.0.current().await
    }

    /// The readers, read again first unless they were read within [`MIN_REFRESH_GAP`]: for a key id no reader
    /// has.
    pub async fn refreshed(&self) -> Result<Arc<Readers>, ReadersUnavailable> {
        self.0.refreshed().await
    }
}
