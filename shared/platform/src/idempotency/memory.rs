//! In-memory idempotency records with the rules of [`DynamoIdempotency`](super::DynamoIdempotency), for tests
//! (feature `test-util`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{
    millis, Attempt, Claim, Found, IdempotencyStore, Notes, ReadRecords, Record, State, StoreError,
    COMPLETED, IN_PROGRESS, RELEASED,
};

use State as Status;

fn owned(notes: &Notes) -> BTreeMap<String, String> {
    notes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[derive(Debug, Clone)]
struct Entry {
    status: Status,
    hash: String,
    lock_expires_ms: i64,
    expires_at_ms: i64,
    attempts: u32,
    parked: Option<String>,
    notes: BTreeMap<String, String>,
}

/// In-memory idempotency records with the rules of the DynamoDB backend.
#[derive(Debug, Default)]
pub struct MemoryIdempotency {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryIdempotency {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
        notes: &Notes,
    ) -> Result<Claim, StoreError> {
        let mut entries = self.lock();
        let lock_expires_ms = now_ms + millis(lock);
        let entry = entries.entry(key.to_owned()).or_insert_with(|| Entry {
            status: Status::Released,
            hash: hash.to_owned(),
            lock_expires_ms,
            expires_at_ms: i64::MAX,
            attempts: 0,
            parked: None,
            notes: BTreeMap::new(),
        });
        let found = Found {
            status: Some(match entry.status {
                Status::InProgress => IN_PROGRESS,
                Status::Completed => COMPLETED,
                Status::Released => RELEASED,
            }),
            hash: Some(&entry.hash),
            lock_expires_ms: Some(entry.lock_expires_ms),
            // DynamoDB compares `expires_at` in whole seconds.
            expires_at_s: Some(entry.expires_at_ms / 1000),
        };
        if !found.takeable(hash, now_ms) {
            return Ok(found.verdict(hash));
        }
        entry.status = Status::InProgress;
        hash.clone_into(&mut entry.hash);
        entry.lock_expires_ms = lock_expires_ms;
        entry.expires_at_ms = (lock_expires_ms / 1000 + 1) * 1000;
        entry.attempts += 1;
        entry.parked = None;
        if entry.notes.is_empty() {
            entry.notes = owned(notes);
        }
        Ok(Claim::Acquired {
            attempt: entry.attempts,
        })
    }

    async fn extend(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> Result<(), StoreError> {
        match self.lock().get_mut(key) {
            Some(e) if e.status == Status::InProgress && e.hash == hash => {
                e.lock_expires_ms = now_ms + millis(lock);
                e.expires_at_ms = (e.lock_expires_ms / 1000 + 1) * 1000;
                Ok(())
            }
            _ => Err(StoreError(format!(
                "{key}: no claim of this payload to extend"
            ))),
        }
    }

    async fn complete(
        &self,
        key: &str,
        hash: &str,
        attempt: u32,
        now_ms: i64,
        ttl: Duration,
        notes: &Notes,
    ) -> Result<(), StoreError> {
        match self.lock().get_mut(key) {
            Some(e) if e.hash == hash => {
                e.status = Status::Completed;
                e.attempts = attempt;
                e.parked = None;
                if attempt <= 1 {
                    e.notes = owned(notes);
                }
                e.expires_at_ms = (now_ms + millis(ttl)) / 1000 * 1000;
                Ok(())
            }
            _ => Err(StoreError(format!(
                "{key}: no claim of this payload to complete"
            ))),
        }
    }

    async fn release(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
        attempt: Attempt,
        parked: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(e) = self.lock().get_mut(key) {
            if e.status == Status::InProgress && e.hash == hash {
                e.status = Status::Released;
                e.parked = parked.map(str::to_owned);
                e.expires_at_ms = (now_ms + millis(ttl)) / 1000 * 1000;
                if attempt == Attempt::Forget {
                    e.attempts = e.attempts.saturating_sub(1);
                }
            }
        }
        Ok(())
    }
}

impl ReadRecords for MemoryIdempotency {
    async fn records(&self, keys: &[String]) -> Result<HashMap<String, Record>, StoreError> {
        let entries = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| {
                let e = entries.get(k)?;
                Some((
                    k.clone(),
                    Record {
                        state: e.status,
                        attempts: e.attempts,
                        lock_expires_ms: (e.status == Status::InProgress)
                            .then_some(e.lock_expires_ms),
                        parked: e.parked.clone(),
                        notes: e.notes.clone(),
                    },
                ))
            })
            .collect())
    }
}
