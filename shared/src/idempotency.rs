//! Idempotency records: a consumer claims `(consumer, event id)` before an effect and completes the claim after
//! it, so that a record Lambda delivers again (a retried batch, a redelivery from a checkpoint) has its effect
//! once.
//!
//! A claim is a conditional write. It succeeds when there is no record yet, when a previous holder's lock has
//! expired (it crashed or timed out mid-effect), or when a completed record has outlived its TTL. Otherwise the
//! existing record answers: completed (skip), in progress elsewhere (retry later), or the same id with another
//! payload (a poison record: the producer reused an id). Times are passed in, so the rules are testable
//! without waiting.
//!
//! [`DynamoIdempotency`] keeps the records in DynamoDB (`key` the partition key; `expires_at` the TTL
//! attribute); [`DynamoIdempotency::completion`] gives the completing write as a `TransactWriteItem`, so that
//! an effect which is itself a DynamoDB write commits in the same transaction as its idempotency record.
//! [`MemoryIdempotency`] has the same rules, for unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the record until its lock expires: do the effect, then complete.
    Acquired,
    /// The effect already happened: skip the record.
    Completed,
    /// Another invocation holds the record: retry the record later.
    InProgress,
    /// The id was used before for a different payload: a permanent failure.
    Conflict,
}

/// The store could not be reached or answered oddly; the record is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct StoreError(pub String);

/// The key of a record: which consumer, which event.
pub fn key(consumer: &str, event_id: &str) -> String {
    format!("{consumer}#{event_id}")
}

/// The hash that tells a redelivery (same payload) from a reused id (another payload): SHA-256, hex.
pub fn payload_hash(payload: &[u8]) -> String {
    Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where idempotency records live. `now_ms` is milliseconds since the Unix epoch.
pub trait IdempotencyStore: Send + Sync {
    /// `false` for a store that keeps nothing, so callers can skip hashing payloads for it.
    fn keeps_records(&self) -> bool {
        true
    }

    /// Claims `key` for `lock` (the invocation's remaining time).
    fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks a claimed record completed; it is remembered for `ttl`.
    fn complete(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claim back after a retryable failure, so the redelivery can claim it at once.
    fn release(&self, key: &str, hash: &str)
        -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: IdempotencyStore> IdempotencyStore for &S {
    fn keeps_records(&self) -> bool {
        (**self).keeps_records()
    }

    fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(key, hash, now_ms, lock)
    }

    fn complete(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(key, hash, now_ms, ttl)
    }

    fn release(
        &self,
        key: &str,
        hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(key, hash)
    }
}

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What an existing record means for a claim that could not take it.
fn verdict(status: Option<&str>, stored_hash: Option<&str>, hash: &str) -> Claim {
    if stored_hash.is_some_and(|h| h != hash) {
        Claim::Conflict
    } else if status == Some(COMPLETED) {
        Claim::Completed
    } else {
        Claim::InProgress
    }
}

/// Idempotency records in a DynamoDB table with a string partition key `key` and TTL on `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoIdempotency {
    /// Records in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The write that completes `key`, for a `TransactWriteItems` that also carries the effect.
    pub fn completion(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        let (update, names, values) = completion_parts(hash, now_ms, ttl);
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression(update)
            .condition_expression("#h = :h")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(update)
            .build())
    }
}

type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

fn completion_parts(hash: &str, now_ms: i64, ttl: Duration) -> (&'static str, Names, Values) {
    let expires_at = (now_ms + millis(ttl)) / 1000;
    let names = HashMap::from([
        ("#s".to_owned(), "status".to_owned()),
        ("#h".to_owned(), "hash".to_owned()),
        ("#e".to_owned(), "expires_at".to_owned()),
        ("#l".to_owned(), "lock_expires_ms".to_owned()),
    ]);
    let values = HashMap::from([
        (":done".to_owned(), AttributeValue::S(COMPLETED.into())),
        (":h".to_owned(), AttributeValue::S(hash.to_owned())),
        (":e".to_owned(), AttributeValue::N(expires_at.to_string())),
    ]);
    ("SET #s = :done, #e = :e REMOVE #l", names, values)
}

fn dynamo_error<E: std::error::Error + 'static>(
    what: &str,
    err: aws_sdk_dynamodb::error::SdkError<E>,
) -> StoreError {
    StoreError(format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(err)
    ))
}

impl IdempotencyStore for DynamoIdempotency {
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> Result<Claim, StoreError> {
        let lock_expires = now_ms + millis(lock);
        // The lock also bounds the record's life, should the holder never complete nor release it.
        let expires_at = lock_expires / 1000 + 1;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(key.to_owned()))
            .item("status", AttributeValue::S(IN_PROGRESS.into()))
            .item("hash", AttributeValue::S(hash.to_owned()))
            .item(
                "lock_expires_ms",
                AttributeValue::N(lock_expires.to_string()),
            )
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression(
                "attribute_not_exists(#k) OR (#s = :progress AND #l < :now) OR #e < :now_s",
            )
            .expression_attribute_names("#k", "key")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#l", "lock_expires_ms")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_values(":progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let old = match e {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    };
                    let text = |name: &str| {
                        old.and_then(|o| o.get(name))
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                    };
                    Ok(verdict(text("status"), text("hash"), hash))
                }
                _ => Err(dynamo_error("PutItem", err)),
            },
        }
    }

    async fn complete(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (update, names, values) = completion_parts(hash, now_ms, ttl);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression(update)
            .condition_expression("#h = :h")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| dynamo_error("UpdateItem", e))
    }

    async fn release(&self, key: &str, hash: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .condition_expression("#s = :progress AND #h = :h")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":h", AttributeValue::S(hash.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours to release (completed, or someone else's): nothing to do.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(dynamo_error("DeleteItem", err)),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    completed: bool,
    hash: String,
    lock_expires_ms: i64,
    expires_at_ms: i64,
}

/// In-memory idempotency records with the rules of [`DynamoIdempotency`], for unit tests.
#[derive(Debug, Default)]
pub struct MemoryIdempotency {
    entries: std::sync::Mutex<HashMap<String, Entry>>,
}

impl MemoryIdempotency {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> Result<Claim, StoreError> {
        let mut entries = self.lock();
        let free = match entries.get(key) {
            None => true,
            Some(e) => {
                (!e.completed && e.lock_expires_ms < now_ms) || e.expires_at_ms < now_ms - 999
            }
        };
        if !free {
            let e = &entries[key];
            let status = if e.completed { COMPLETED } else { IN_PROGRESS };
            return Ok(verdict(Some(status), Some(&e.hash), hash));
        }
        let lock_expires_ms = now_ms + millis(lock);
        entries.insert(
            key.to_owned(),
            Entry {
                completed: false,
                hash: hash.to_owned(),
                lock_expires_ms,
                expires_at_ms: (lock_expires_ms / 1000 + 1) * 1000,
            },
        );
        Ok(Claim::Acquired)
    }

    async fn complete(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self.lock().get_mut(key) {
            Some(e) if e.hash == hash => {
                e.completed = true;
                e.expires_at_ms = (now_ms + millis(ttl)) / 1000 * 1000;
                Ok(())
            }
            _ => Err(StoreError(format!(
                "{key}: no claim of this payload to complete"
            ))),
        }
    }

    async fn release(&self, key: &str, hash: &str) -> Result<(), StoreError> {
        let mut entries = self.lock();
        if entries
            .get(key)
            .is_some_and(|e| !e.completed && e.hash == hash)
        {
            entries.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: Duration = Duration::from_secs(30);
    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn the_rules_in_memory() {
        let s = MemoryIdempotency::default();
        let (k, h) = (key("payments", "evt_1"), payload_hash(b"{}"));
        let t = 1_800_000_000_000;
        assert_eq!(s.claim(&k, &h, t, LOCK).await, Ok(Claim::Acquired));
        assert_eq!(s.claim(&k, &h, t + 1, LOCK).await, Ok(Claim::InProgress));
        assert_eq!(s.claim(&k, "other", t + 1, LOCK).await, Ok(Claim::Conflict));
        // The holder died: after its lock, the record can be claimed again.
        assert_eq!(s.claim(&k, &h, t + 30_001, LOCK).await, Ok(Claim::Acquired));
        s.complete(&k, &h, t + 30_002, DAY).await.unwrap();
        assert_eq!(
            s.claim(&k, &h, t + 40_000, LOCK).await,
            Ok(Claim::Completed)
        );
        // Past its TTL a completed record is forgotten.
        assert_eq!(
            s.claim(&k, &h, t + 30_002 + 86_401_000, LOCK).await,
            Ok(Claim::Acquired)
        );
        s.release(&k, &h).await.unwrap();
        assert_eq!(
            s.claim(&k, &h, t + 30_002 + 86_401_001, LOCK).await,
            Ok(Claim::Acquired)
        );
    }

    #[test]
    fn the_payload_hash_is_sha256_hex() {
        assert_eq!(
            payload_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
