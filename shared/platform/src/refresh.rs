//! A configuration kept in a store (a Secrets Manager secret: ingest's sources, the query API's readers), read
//! without holding up the cold start and kept fresh, so that keys rotate without a redeploy.
//!
//! [`Refreshing`] holds the parsed value. The first read runs in the background from the cold start
//! ([`Refreshing::in_background`]): the runtime asks for the first request meanwhile, and that request waits for
//! the read. Until a value has been read every request gets [`Unavailable`] (the function answers `503`, never as
//! if no credential were valid), and the read is tried again at most once per [`RETRY_GAP_UNREAD`]. Once read,
//! the value is read again when it is older than its maximum age, and at once ([`Refreshing::refreshed`]) when a
//! request presents a key id the current value does not know (a key minted a moment ago), at most once per
//! [`MIN_REFRESH_GAP`], so that a flood of bad keys cannot flood the store. A read that fails, or a value that
//! does not parse, keeps the value in force (and says so in the logs): a bad edit of the secret takes nothing down.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The shortest time between two refreshes triggered by unknown keys.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);

/// The shortest time between two reads while none has succeeded yet: short, since every request answers `503`
/// meanwhile, but not per request, so that a broken secret is not read per request.
pub const RETRY_GAP_UNREAD: Duration = Duration::from_secs(1);

/// Nothing has been read yet: the configuration (named) can be neither used nor assumed empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} configuration could not be read")]
pub struct Unavailable(pub &'static str);

/// Reads the configuration from its store and parses it.
pub trait Read<T>: Send + Sync {
    /// The value now in the store; why not, for the logs.
    fn read(&self) -> impl Future<Output = Result<T, String>> + Send;
}

/// A configuration read through `R`, kept fresh (see the module docs).
#[derive(Debug)]
pub struct Refreshing<T, R> {
    /// What it is, for logs and [`Unavailable`]: `sources`, `readers`.
    what: &'static str,
    /// `None`: given at cold start, never read again.
    reader: Option<R>,
    max_age: Duration,
    current: RwLock<Option<Arc<T>>>,
    /// Held while a read runs, so that concurrent requests wait for that one.
    reads: Mutex<Reads<T>>,
}

/// When the value was last read (or tried), and the first read while it runs in the background.
#[derive(Debug)]
struct Reads<T> {
    at: Option<Instant>,
    first: Option<JoinHandle<Result<T, String>>>,
}

impl<T, R> Refreshing<T, R> {
    /// A value known at cold start (inline configuration, tests), never read again.
    pub fn fixed(what: &'static str, value: T) -> Self {
        Self::read_already(what, None, value, Duration::MAX)
    }

    /// A value just read through `reader`, read again once older than `max_age`.
    pub fn read_already(
        what: &'static str,
        reader: Option<R>,
        value: T,
        max_age: Duration,
    ) -> Self {
        Self {
            what,
            reader,
            max_age,
            current: RwLock::new(Some(Arc::new(value))),
            reads: Mutex::new(Reads {
                at: Some(Instant::now()),
                first: None,
            }),
        }
    }

    fn snapshot(&self) -> Option<Arc<T>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<T: Send + Sync + 'static, R: Read<T>> Refreshing<T, R> {
    /// Starts the first read on the Tokio runtime and returns at once; the first request waits for that read.
    pub fn in_background(what: &'static str, reader: R, max_age: Duration) -> Self
    where
        R: Clone + 'static,
    {
        let first = reader.clone();
        Self {
            what,
            reader: Some(reader),
            max_age,
            current: RwLock::new(None),
            reads: Mutex::new(Reads {
                at: None,
                first: Some(tokio::spawn(async move { first.read().await })),
            }),
        }
    }

    /// The value, read again first if it is older than the maximum age (or was never read).
    pub async fn current(&self) -> Result<Arc<T>, Unavailable> {
        self.refresh_if_older_than(self.max_age).await
    }

    /// The value, read again first unless it was read within [`MIN_REFRESH_GAP`]: for a key the current value
    /// does not know.
    pub async fn refreshed(&self) -> Result<Arc<T>, Unavailable> {
        self.refresh_if_older_than(MIN_REFRESH_GAP).await
    }

    async fn refresh_if_older_than(&self, age: Duration) -> Result<Arc<T>, Unavailable> {
        let current = self.snapshot();
        // The common case without the lock: read recently enough, or never to be read again.
        if current.is_some() && (self.reader.is_none() || age == Duration::MAX) {
            return current.ok_or(Unavailable(self.what));
        }
        let mut reads = self.reads.lock().await;
        if let Some(first) = reads.first.take() {
            // The read started at cold start: this request waits for it instead of starting another.
            let read = first
                .await
                .unwrap_or_else(|e| Err(format!("the first read did not finish: {e}")));
            reads.at = Some(Instant::now());
            return self.install(read);
        }
        // Another request may have read it while this one waited for the lock.
        let current = self.snapshot();
        let gap = if current.is_some() {
            age
        } else {
            RETRY_GAP_UNREAD
        };
        let Some(reader) = &self.reader else {
            return current.ok_or(Unavailable(self.what));
        };
        if reads.at.is_some_and(|at| at.elapsed() < gap) {
            return current.ok_or(Unavailable(self.what));
        }
        // Whatever happens, the next attempt waits a full period: a broken secret is not read per request.
        reads.at = Some(Instant::now());
        let read = reader.read().await;
        self.install(read)
    }

    /// Puts what a read returned in force; else keeps the value in force, if any.
    fn install(&self, read: Result<T, String>) -> Result<Arc<T>, Unavailable> {
        match read {
            Ok(value) => {
                let value = Arc::new(value);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::clone(&value));
                tracing::debug!(configuration = self.what, "read");
                Ok(value)
            }
            Err(error) => match self.snapshot() {
                Some(previous) => {
                    tracing::error!(configuration = self.what, %error, "not read again; the previous value stays in force");
                    Ok(previous)
                }
                None => {
                    tracing::error!(configuration = self.what, %error, "not read; requests are answered 503 until it is");
                    Err(Unavailable(self.what))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A store that answers what `answers` says, in turn (the last one again), counting reads.
    #[derive(Clone, Default)]
    struct Store {
        answers: Arc<std::sync::Mutex<Vec<Result<u32, String>>>>,
        reads: Arc<AtomicUsize>,
    }

    impl Store {
        fn answering(answers: Vec<Result<u32, String>>) -> Self {
            Self {
                answers: Arc::new(std::sync::Mutex::new(answers)),
                reads: Arc::default(),
            }
        }
        /// From now on, `answer`.
        fn then(&self, answer: Result<u32, String>) {
            *self.answers.lock().unwrap() = vec![answer];
        }
        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl Read<u32> for Store {
        async fn read(&self) -> Result<u32, String> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_waits_for_the_background_read_then_the_value_ages() {
        let store = Store::answering(vec![Ok(1)]);
        let config = Refreshing::in_background("test", store.clone(), Duration::from_secs(60));
        assert_eq!(*config.current().await.unwrap(), 1);
        assert_eq!(*config.current().await.unwrap(), 1);
        assert_eq!(store.reads(), 1, "read once while fresh");
        store.then(Ok(2));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(*config.current().await.unwrap(), 2, "read again once older");
    }

    #[tokio::test(start_paused = true)]
    async fn unread_is_unavailable_and_tried_again_at_most_once_per_gap() {
        let store = Store::answering(vec![Err("no secret".into())]);
        let config = Refreshing::in_background("readers", store.clone(), Duration::from_secs(60));
        assert_eq!(config.current().await.unwrap_err(), Unavailable("readers"));
        assert_eq!(config.current().await.unwrap_err(), Unavailable("readers"));
        assert_eq!(store.reads(), 1, "not read per request");
        store.then(Ok(7));
        tokio::time::advance(RETRY_GAP_UNREAD).await;
        assert_eq!(*config.current().await.unwrap(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_keeps_the_value_and_an_unknown_key_refreshes_at_most_once_per_gap() {
        let store = Store::answering(vec![Ok(1), Err("throttled".into())]);
        let config = Refreshing::in_background("sources", store.clone(), Duration::from_secs(300));
        assert_eq!(*config.current().await.unwrap(), 1);
        tokio::time::advance(MIN_REFRESH_GAP).await;
        assert_eq!(
            *config.refreshed().await.unwrap(),
            1,
            "kept through a failure"
        );
        assert_eq!(store.reads(), 2);
        store.then(Ok(3));
        assert_eq!(
            *config.refreshed().await.unwrap(),
            1,
            "within the gap: not read"
        );
        assert_eq!(store.reads(), 2);
        tokio::time::advance(MIN_REFRESH_GAP).await;
        assert_eq!(*config.refreshed().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_fixed_value_is_never_read() {
        let config: Refreshing<u32, Store> = Refreshing::fixed("test", 5);
        assert_eq!(*config.current().await.unwrap(), 5);
        assert_eq!(*config.refreshed().await.unwrap(), 5);
    }
}
