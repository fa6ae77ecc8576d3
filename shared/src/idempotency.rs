//! Idempotency records: a consumer claims `(consumer, event id)` before an effect and completes the claim after
//! it, so that a record Lambda delivers again (a retried batch, a redelivery from a checkpoint) has its effect
//! once.
//!
//! A claim is a conditional write. It succeeds when there is no record yet, when a previous holder's lock has
//! expired (it crashed or timed out mid-effect), when the record was released after a failure (by a claim of
//! the same payload: the id stays bound to its event, whatever became of it), or when a completed record has
//! outlived its TTL. Each successful claim counts an attempt on the record, so a dead letter can say how often
//! its record was tried and a consumer can give up on one that keeps failing (a released record is kept for the
//! TTL for this count). Otherwise the existing record answers: completed (skip), in progress elsewhere (retry
//! later), or the same id with another payload (a poison record: the producer reused an id). Times are passed
//! in, so the rules are testable without waiting.
//!
//! [`DynamoIdempotency`] keeps the records in DynamoDB (`key` the partition key; `expires_at` the TTL
//! attribute); [`DynamoIdempotency::completion`] gives the completing write as a `TransactWriteItem`, so that
//! an effect which is itself a DynamoDB write commits in the same transaction as its idempotency record.
//! [`MemoryIdempotency`] has the same rules, for unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the record until its lock expires: do the effect, then complete. `attempt` counts the
    /// claims of this record so far, this one included (1 on the first).
    Acquired {
        /// Which attempt this is, from 1.
        attempt: u32,
    },
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

/// Milliseconds since the Unix epoch, now: the clock of the records' times (`now_ms` below).
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
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

    /// Gives a claim back after a failure, so the redelivery (or a redrive) can claim it at once. The record
    /// is kept, released, for `ttl`, so the next claim counts on from its attempts.
    fn release(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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
        now_ms: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(key, hash, now_ms, ttl)
    }
}

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
const RELEASED: &str = "RELEASED";

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
    StoreError(crate::aws::describe(what, err))
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
            .update_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression("SET #s = :progress, #h = :h, #l = :lock, #e = :e ADD #a :one")
            .condition_expression(
                "attribute_not_exists(#k) OR (#s = :progress AND #l < :now) OR (#s = :released AND #h = :h) OR #e < :now_s",
            )
            .expression_attribute_names("#k", "key")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_names("#l", "lock_expires_ms")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_names("#a", "attempts")
            .expression_attribute_values(":progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":released", AttributeValue::S(RELEASED.into()))
            .expression_attribute_values(":h", AttributeValue::S(hash.to_owned()))
            .expression_attribute_values(":lock", AttributeValue::N(lock_expires.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let attempt = out
                    .attributes()
                    .and_then(|a| a.get("attempts"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| StoreError("UpdateItem: no attempts in the answer".into()))?;
                Ok(Claim::Acquired { attempt })
            }
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let old = match e {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    };
                    let text = |name: &str| {
                        old.and_then(|o| o.get(name))
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                    };
                    Ok(verdict(text("status"), text("hash"), hash))
                }
                _ => Err(dynamo_error("UpdateItem", err)),
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

    async fn release(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let expires_at = (now_ms + millis(ttl)) / 1000;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression("SET #s = :released, #e = :e REMOVE #l")
            .condition_expression("#s = :progress AND #h = :h")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_names("#e", "expires_at")
            .expression_attribute_names("#l", "lock_expires_ms")
            .expression_attribute_values(":progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":released", AttributeValue::S(RELEASED.into()))
            .expression_attribute_values(":h", AttributeValue::S(hash.to_owned()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
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
            Err(err) => Err(dynamo_error("UpdateItem", err)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InProgress,
    Completed,
    Released,
}

#[derive(Debug, Clone)]
struct Entry {
    status: Status,
    hash: String,
    lock_expires_ms: i64,
    expires_at_ms: i64,
    attempts: u32,
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
        let lock_expires_ms = now_ms + millis(lock);
        let entry = entries.entry(key.to_owned()).or_insert_with(|| Entry {
            status: Status::Released,
            hash: hash.to_owned(),
            lock_expires_ms,
            expires_at_ms: i64::MAX,
            attempts: 0,
        });
        // DynamoDB compares `expires_at` in whole seconds.
        let free = (entry.status == Status::Released && entry.hash == hash)
            || (entry.status == Status::InProgress && entry.lock_expires_ms < now_ms)
            || entry.expires_at_ms < now_ms - 999;
        if !free {
            let status = match entry.status {
                Status::Completed => COMPLETED,
                _ => IN_PROGRESS,
            };
            return Ok(verdict(Some(status), Some(&entry.hash), hash));
        }
        entry.status = Status::InProgress;
        hash.clone_into(&mut entry.hash);
        entry.lock_expires_ms = lock_expires_ms;
        entry.expires_at_ms = (lock_expires_ms / 1000 + 1) * 1000;
        entry.attempts += 1;
        Ok(Claim::Acquired {
            attempt: entry.attempts,
        })
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
                e.status = Status::Completed;
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
    ) -> Result<(), StoreError> {
        if let Some(e) = self.lock().get_mut(key) {
            if e.status == Status::InProgress && e.hash == hash {
                e.status = Status::Released;
                e.expires_at_ms = (now_ms + millis(ttl)) / 1000 * 1000;
            }
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
        let acquired = |attempt| Ok(Claim::Acquired { attempt });
        assert_eq!(s.claim(&k, &h, t, LOCK).await, acquired(1));
        assert_eq!(s.claim(&k, &h, t + 1, LOCK).await, Ok(Claim::InProgress));
        assert_eq!(s.claim(&k, "other", t + 1, LOCK).await, Ok(Claim::Conflict));
        // The holder died: after its lock, the record can be claimed again: a second attempt.
        assert_eq!(s.claim(&k, &h, t + 30_001, LOCK).await, acquired(2));
        // Released after a failure: claimable at once, and the attempts count on.
        s.release(&k, &h, t + 30_002, DAY).await.unwrap();
        // But not by another event under the same id: that is still a reused id.
        assert_eq!(
            s.claim(&k, "other", t + 30_002, LOCK).await,
            Ok(Claim::Conflict)
        );
        assert_eq!(s.claim(&k, &h, t + 30_003, LOCK).await, acquired(3));
        // A release with another payload's hash is not ours: the claim stands.
        s.release(&k, "other", t + 30_004, DAY).await.unwrap();
        assert_eq!(
            s.claim(&k, &h, t + 30_005, LOCK).await,
            Ok(Claim::InProgress)
        );
        s.complete(&k, &h, t + 30_006, DAY).await.unwrap();
        assert_eq!(
            s.claim(&k, &h, t + 40_000, LOCK).await,
            Ok(Claim::Completed)
        );
        // A completed record cannot be released.
        s.release(&k, &h, t + 40_001, DAY).await.unwrap();
        assert_eq!(
            s.claim(&k, &h, t + 40_002, LOCK).await,
            Ok(Claim::Completed)
        );
        // Past its TTL a completed record is forgotten.
        assert_eq!(
            s.claim(&k, &h, t + 30_006 + 86_401_000, LOCK).await,
            acquired(4)
        );
        // Another record has its own count.
        let k2 = key("payments", "evt_2");
        assert_eq!(s.claim(&k2, &h, t, LOCK).await, acquired(1));
    }

    #[test]
    fn the_payload_hash_is_sha256_hex() {
        assert_eq!(
            payload_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
