//! The e-mail port: consumers ask for an e-mail with a deterministic idempotency key (`{consumer}:{event id}:{what}`),
//! so a redelivered event asks for the same e-mail under the same key and the adapter sends it once.
//!
//! - [`OutboxMailer`]: the local adapter. Each e-mail is one JSON line of an outbox file (by default
//!   `$TUBES_STATE_DIR/outbox.jsonl` on the local stack) that a person can read with `tail -f` and a test can
//!   parse; a key already in the outbox is not written again, as a provider that honours idempotency keys would.
//! - [`LogMailer`]: logs that an e-mail would go out (metadata only), where no provider is configured.
//! - [`MemoryMailer`]: keeps e-mails for unit tests, with the same once-per-key rule.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::harness::Classify;

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The same for every attempt at this e-mail; the adapter sends each key once.
    pub idempotency_key: String,
}

/// An e-mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("e-mail not sent: {message}")]
pub struct MailError {
    /// Why (no addresses or bodies: they are personal data).
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
}

impl Classify for MailError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Sends e-mail.
pub trait Mailer: Send + Sync {
    /// Sends `email`, once per idempotency key.
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send;
}

impl<M: Mailer> Mailer for &M {
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send {
        (**self).send(email)
    }
}

/// E-mails as lines of an outbox file.
#[derive(Debug)]
pub struct OutboxMailer {
    path: PathBuf,
    // Serialises check-then-append within this process; O_APPEND keeps each line whole across processes.
    lock: Mutex<()>,
}

impl OutboxMailer {
    /// An outbox at `path` (created on the first e-mail).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// Every e-mail in the outbox, in the order written.
    pub fn read(&self) -> Vec<Email> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if self
            .read()
            .iter()
            .any(|e| e.idempotency_key == email.idempotency_key)
        {
            tracing::info!(key = %email.idempotency_key, "e-mail already in the outbox");
            return Ok(());
        }
        let mut line = serde_json::to_vec(email).map_err(|e| MailError {
            message: e.to_string(),
            retryable: false,
        })?;
        line.push(b'\n');
        let io = |e: std::io::Error| MailError {
            message: format!("outbox: {e}"),
            retryable: true,
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(io)?;
        tracing::info!(key = %email.idempotency_key, "e-mail written to the outbox");
        Ok(())
    }
}

/// Logs e-mails (never their address or body) instead of sending them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        tracing::info!(key = %email.idempotency_key, subject = %email.subject, "e-mail (not sent: no mailer configured)");
        Ok(())
    }
}

/// E-mails in memory, once per key, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Email>>,
}

impl MemoryMailer {
    fn lock(&self) -> MutexGuard<'_, Vec<Email>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<Email> {
        self.lock().clone()
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let mut sent = self.lock();
        if !sent
            .iter()
            .any(|e| e.idempotency_key == email.idempotency_key)
        {
            sent.push(email.clone());
        }
        Ok(())
    }
}

/// The mailer the environment chooses: an outbox at `TUBES_OUTBOX` (the local stack sets it), else logs.
#[derive(Debug)]
pub enum AnyMailer {
    /// The outbox file.
    Outbox(OutboxMailer),
    /// Logs only.
    Log(LogMailer),
}

impl AnyMailer {
    /// From `TUBES_OUTBOX`.
    pub fn from_env() -> Self {
        match std::env::var("TUBES_OUTBOX") {
            Ok(path) if !path.is_empty() => AnyMailer::Outbox(OutboxMailer::new(path)),
            _ => AnyMailer::Log(LogMailer),
        }
    }
}

impl Mailer for AnyMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            AnyMailer::Outbox(o) => o.send(email).await,
            AnyMailer::Log(l) => l.send(email).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(key: &str) -> Email {
        Email {
            to: "ada@example.com".into(),
            subject: "Welcome".into(),
            text: "Hello Ada".into(),
            idempotency_key: key.into(),
        }
    }

    #[tokio::test]
    async fn the_outbox_keeps_each_key_once_and_can_be_read_back() {
        let path =
            std::env::temp_dir().join(format!("tubes-outbox-{}.jsonl", uuid::Uuid::now_v7()));
        let outbox = OutboxMailer::new(&path);
        outbox.send(&email("signups:e1:welcome")).await.unwrap();
        outbox.send(&email("signups:e1:welcome")).await.unwrap();
        outbox.send(&email("signups:e2:welcome")).await.unwrap();
        let read = OutboxMailer::new(&path).read();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], email("signups:e1:welcome"));
        std::fs::remove_file(path).unwrap();
    }
}
