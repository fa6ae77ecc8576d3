//! The e-mail port: consumers ask for an e-mail with a deterministic idempotency key (`{consumer}:{event id}:{what}`),
//! so a redelivered event asks for the same e-mail under the same key and the adapter sends it once.
//!
//! - [`SesMailer`] (in [`crate::ses`]): Amazon SES v2, each key claimed in the idempotency table before it is
//!   sent.
//! - [`OutboxMailer`]: the local adapter. Each e-mail is one JSON line of an outbox file (by default
//!   `$TUBES_STATE_DIR/outbox.jsonl` on the local stack) that a person can read with `tail -f` and a test can
//!   parse; a key already in the outbox is not written again, as a provider that honours idempotency keys would.
//! - [`LogMailer`]: logs that an e-mail would go out (metadata only), where no provider is configured.
//! - [`MemoryMailer`]: keeps e-mails for unit tests, with the same once-per-key rule.
//!
//! [`AnyMailer::from_env`] chooses one of the first three ([`MailConfig`]).

use std::collections::HashSet;
use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::harness::Classify;
use crate::idempotency::DynamoIdempotency;
use crate::ses::SesMailer;

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

impl MailError {
    /// A failure that may pass: the record is retried.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that will not pass by retrying: the record is dead-lettered.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
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
///
/// Several processes may append to one outbox (`cargo lambda watch` runs each function in its own process), so
/// the check-then-append runs under an exclusive lock on the file. Each mailer remembers the keys it has read
/// and the byte offset it read up to, and reads only what was appended since: a send costs the new lines, not
/// the whole file.
#[derive(Debug)]
pub struct OutboxMailer {
    path: PathBuf,
    // Serialises sends within this process (the file lock is per open file, not per thread).
    seen: Mutex<Seen>,
}

/// What an outbox mailer has read of its file so far.
#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<String>,
    /// Bytes read.
    offset: u64,
    /// The file ends in the middle of a line (a writer died mid-line): the next line starts on a fresh one.
    torn: bool,
}

/// Only the key of an outbox line: the rest need not be parsed to check it.
#[derive(Deserialize)]
struct KeyOnly {
    idempotency_key: String,
}

impl Seen {
    /// Reads what was appended since the last call (the caller holds the file lock).
    fn catch_up(&mut self, file: &mut std::fs::File) -> std::io::Result<()> {
        if file.metadata()?.len() < self.offset {
            // Truncated or replaced (someone cleared the local state): start over.
            *self = Seen::default();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut new = Vec::new();
        file.read_to_end(&mut new)?;
        if let Some(&last) = new.last() {
            self.torn = last != b'\n';
        }
        for line in new.split(|&b| b == b'\n') {
            if let Ok(k) = serde_json::from_slice::<KeyOnly>(line) {
                self.keys.insert(k.idempotency_key);
            }
        }
        self.offset += new.len() as u64;
        Ok(())
    }
}

impl OutboxMailer {
    /// An outbox at `path` (created on the first e-mail).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Every e-mail in the outbox, in the order written (the whole file: for tests and people).
    pub fn read(&self) -> Vec<Email> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Appends `email` unless its key is in the outbox; `true` if it was appended.
    fn append_once(&self, email: &Email) -> std::io::Result<bool> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.keys.contains(&email.idempotency_key) {
            return Ok(false);
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        // Another process may be between its check and its append; the lock ends when `file` is dropped.
        file.lock()?;
        seen.catch_up(&mut file)?;
        if seen.keys.contains(&email.idempotency_key) {
            return Ok(false);
        }
        let mut line = Vec::with_capacity(256);
        if seen.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, email).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        seen.offset += line.len() as u64;
        seen.torn = false;
        seen.keys.insert(email.idempotency_key.clone());
        Ok(true)
    }
}

impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self.append_once(email) {
            Ok(true) => {
                tracing::info!(key = %email.idempotency_key, "e-mail written to the outbox")
            }
            Ok(false) => {
                tracing::info!(key = %email.idempotency_key, "e-mail already in the outbox")
            }
            Err(e) => return Err(MailError::retryable(format!("outbox: {e}"))),
        }
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

/// The e-mail configuration, from the environment ([`MailConfig::from_env`]), in this order:
///
/// - `TUBES_OUTBOX`: the outbox file at this path (the local stack sets it, so it wins there even when the
///   template's `MAIL_FROM` is resolved locally);
/// - `MAIL_FROM`: SES from this verified address, in the configuration set `SES_CONFIGURATION_SET` if set, each
///   key sent once under the guard of the idempotency records in `IDEMPOTENCY_TABLE` (without it, every attempt
///   sends: at least once);
/// - neither: e-mails are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailConfig {
    /// [`OutboxMailer`] at this path.
    Outbox(PathBuf),
    /// [`SesMailer`].
    Ses {
        /// The sender (`MAIL_FROM`), an SES-verified address or an address of a verified domain.
        from: String,
        /// `SES_CONFIGURATION_SET`.
        configuration_set: Option<String>,
        /// `IDEMPOTENCY_TABLE`: the guard's records.
        idempotency_table: Option<String>,
    },
    /// [`LogMailer`].
    Log,
}

impl MailConfig {
    /// From the process environment (see [`MailConfig`]).
    pub fn from_env() -> Result<Self, MailError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From `var` (a variable's value, if set); empty values count as unset. A `MAIL_FROM` that is no address
    /// is refused here, at cold start, rather than by SES for every e-mail.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, MailError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = var("TUBES_OUTBOX") {
            return Ok(MailConfig::Outbox(path.into()));
        }
        let Some(from) = var("MAIL_FROM") else {
            return Ok(MailConfig::Log);
        };
        if !from.contains('@') || from.chars().any(char::is_control) {
            return Err(MailError::permanent(
                "MAIL_FROM must be an e-mail address (an SES-verified identity)",
            ));
        }
        Ok(MailConfig::Ses {
            from,
            configuration_set: var("SES_CONFIGURATION_SET"),
            idempotency_table: var("IDEMPOTENCY_TABLE"),
        })
    }
}

/// The mailer the environment chooses ([`MailConfig`]).
#[derive(Debug)]
pub enum AnyMailer {
    /// The outbox file.
    Outbox(OutboxMailer),
    /// SES, once per key through the idempotency table.
    Ses(SesMailer<DynamoIdempotency>),
    /// SES without an idempotency table: at least once.
    SesUnguarded(SesMailer),
    /// Logs only.
    Log(LogMailer),
}

impl AnyMailer {
    /// The mailer of `consumer` (it names its idempotency records) that the environment configures
    /// ([`MailConfig::from_env`]); the AWS configuration is loaded only for SES.
    pub async fn from_env(consumer: &str) -> Result<Self, MailError> {
        Ok(match MailConfig::from_env()? {
            MailConfig::Outbox(path) => AnyMailer::Outbox(OutboxMailer::new(path)),
            MailConfig::Log => AnyMailer::Log(LogMailer),
            MailConfig::Ses {
                from,
                configuration_set,
                idempotency_table,
            } => {
                let aws = aws_config::load_from_env().await;
                let mut ses = SesMailer::from_sdk_config(&aws, consumer, from);
                if let Some(set) = configuration_set {
                    ses = ses.with_configuration_set(set);
                }
                match idempotency_table {
                    Some(table) => AnyMailer::Ses(ses.with_guard(DynamoIdempotency::new(
                        aws_sdk_dynamodb::Client::new(&aws),
                        table,
                    ))),
                    None => AnyMailer::SesUnguarded(ses),
                }
            }
        })
    }
}

impl Mailer for AnyMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            AnyMailer::Outbox(o) => o.send(email).await,
            AnyMailer::Ses(s) => s.send(email).await,
            AnyMailer::SesUnguarded(s) => s.send(email).await,
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

    #[test]
    fn two_outboxes_on_one_file_keep_each_key_once() {
        // Given two mailers on one file, as two `cargo lambda watch` processes would have.
        let path =
            std::env::temp_dir().join(format!("tubes-outbox-{}.jsonl", uuid::Uuid::now_v7()));
        let (a, b) = (OutboxMailer::new(&path), OutboxMailer::new(&path));
        let send = |m: &OutboxMailer, key: &str| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(m.send(&email(key)))
                .unwrap();
        };

        // When each sends what the other already wrote, one after the other…
        send(&a, "k1");
        send(&b, "k1");
        send(&b, "k2");
        send(&a, "k2");
        // … and then both the same 50 keys at once, each from its own thread.
        let keys: Vec<String> = (0..50).map(|i| format!("k{}", i % 25 + 3)).collect();
        std::thread::scope(|s| {
            for m in [&a, &b] {
                s.spawn(|| keys.iter().for_each(|k| send(m, k)));
            }
        });

        // Then the outbox holds every key once.
        let read = a.read();
        let mut written: Vec<&str> = read.iter().map(|e| e.idempotency_key.as_str()).collect();
        assert_eq!(written.len(), 27, "{written:?}");
        written.sort_unstable();
        written.dedup();
        assert_eq!(written.len(), 27);
        std::fs::remove_file(path).unwrap();
    }

    #[tokio::test]
    async fn a_torn_last_line_does_not_swallow_the_next_e_mail() {
        let path =
            std::env::temp_dir().join(format!("tubes-outbox-{}.jsonl", uuid::Uuid::now_v7()));
        std::fs::write(&path, b"{\"to\":\"ada@exa").unwrap();
        let outbox = OutboxMailer::new(&path);
        outbox.send(&email("k1")).await.unwrap();
        outbox.send(&email("k1")).await.unwrap();
        assert_eq!(outbox.read(), vec![email("k1")]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_outbox_wins_then_ses_then_logs() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let ses = MailConfig::Ses {
            from: "tubes@example.com".into(),
            configuration_set: Some("tubes".into()),
            idempotency_table: Some("idem".into()),
        };
        assert_eq!(
            MailConfig::from_vars(vars(&[
                ("MAIL_FROM", "tubes@example.com"),
                ("SES_CONFIGURATION_SET", "tubes"),
                ("IDEMPOTENCY_TABLE", "idem"),
            ])),
            Ok(ses)
        );
        assert_eq!(
            MailConfig::from_vars(vars(&[
                ("TUBES_OUTBOX", "/tmp/o.jsonl"),
                ("MAIL_FROM", "tubes@example.com"),
            ])),
            Ok(MailConfig::Outbox("/tmp/o.jsonl".into()))
        );
        // The template's empty defaults mean "not configured".
        assert_eq!(
            MailConfig::from_vars(vars(&[("MAIL_FROM", ""), ("SES_CONFIGURATION_SET", "")])),
            Ok(MailConfig::Log)
        );
        assert_eq!(
            MailConfig::from_vars(vars(&[("MAIL_FROM", "tubes@example.com")])),
            Ok(MailConfig::Ses {
                from: "tubes@example.com".into(),
                configuration_set: None,
                idempotency_table: None,
            })
        );
        assert!(MailConfig::from_vars(vars(&[("MAIL_FROM", "tubes")])).is_err());
    }
}
