//! The local e-mail adapter: each e-mail is one JSON line of an outbox file (by default
//! `$TUBES_STATE_DIR/outbox.jsonl` on the local stack) that a person can read with `tail -f` and a test can
//! parse; a key already in the outbox is not written again, as a provider that honours idempotency keys would.

use std::collections::HashSet;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;

use super::{Email, MailError, Mailer};

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
                tracing::debug!(key = %email.idempotency_key, "e-mail written to the outbox")
            }
            Ok(false) => {
                tracing::debug!(key = %email.idempotency_key, "e-mail already in the outbox")
            }
            Err(e) => return Err(MailError::retryable(format!("outbox: {e}"))),
        }
        Ok(())
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
}
