//! Idempotency records in DynamoDB: one item per key (`key`, the table's partition key), with its `status`,
//! payload `hash`, `attempts`, the claim's `lock_expires_ms` and `expires_at`, the table's TTL attribute. Each
//! write is one conditional request, so concurrent claimants never both win.
//!
//! A record also carries its work's notes (`notes`, a map: [`Notes`]), those of its first attempt (a redrive
//! does not move an event's acceptance), and, once its work was parked, the dead-letter queue (`parked`);
//! [`ReadRecords`] reads records with `BatchGetItem`.
//!
//! The common path is two `PutItem`s: the claim of a fresh key (`attribute_not_exists`) and the completion (the
//! whole record, known to its holder). A claim that finds a record decides from the old item the failure returns,
//! and only when that record could be taken (an expired lock, a release of the same payload, an expired record)
//! takes it with a conditional `UpdateItem`, whose condition is the rule itself. DynamoDB bills both kinds alike;
//! a `PutItem` skips the update expression, which halves the time of an emulator's request (README, "Soak").

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{
    millis, state, Attempt, Claim, Found, IdempotencyStore, Notes, ReadRecords, Record, StoreError,
    COMPLETED, IN_PROGRESS, RELEASED,
};
use crate::aws::{self, item_number as number, item_text as text, Item};

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

    /// A `PutItem` of the whole record of `key` (with no lock: a claim adds its own).
    fn put(
        &self,
        key: &str,
        status: &str,
        hash: &str,
        expires_at: i64,
        attempts: u32,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("status", s(status))
            .item("hash", s(hash))
            .item("expires_at", n(expires_at))
            .item("attempts", n(i64::from(attempts)))
    }

    /// An `UpdateItem` of `key` with `update` under `condition`; `values` name the expressions' values.
    fn update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        // DynamoDB refuses a name its expressions do not use: name only those that appear.
        let names = [
            ("#k", "key"),
            ("#s", "status"),
            ("#h", "hash"),
            ("#l", "lock_expires_ms"),
            ("#e", "expires_at"),
            ("#a", "attempts"),
            ("#n", "notes"),
            ("#p", "parked"),
        ]
        .into_iter()
        .filter(|(p, _)| update.contains(p) || condition.contains(p))
        .map(|(p, a)| (p.to_owned(), a.to_owned()))
        .collect();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The notes as one map attribute.
fn notes_value(notes: &Notes) -> AttributeValue {
    AttributeValue::M(
        notes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), s(value)))
            .collect(),
    )
}

/// A stored item as a reader sees it (`None` if it is no record: no known state).
fn record(item: &Item) -> Option<Record> {
    Some(Record {
        state: state(text(item, "status")?)?,
        attempts: number(item, "attempts")
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0),
        lock_expires_ms: number(item, "lock_expires_ms"),
        parked: text(item, "parked").map(str::to_owned),
        notes: item
            .get("notes")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The record a failed claim's answer returned.
fn found(old: &Item) -> Found<'_> {
    Found {
        status: text(old, "status"),
        hash: text(old, "hash"),
        lock_expires_ms: number(old, "lock_expires_ms"),
        expires_at_s: number(old, "expires_at"),
    }
}

fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl IdempotencyStore for DynamoIdempotency {
    async fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
        notes: &Notes,
    ) -> Result<Claim, StoreError> {
        let lock_expires = now_ms + millis(lock);
        // The lock also bounds the record's life, should the holder never complete nor release it.
        let expires_at = lock_expires / 1000 + 1;
        let fresh = self
            .put(key, IN_PROGRESS, hash, expires_at, 1)
            .item("lock_expires_ms", n(lock_expires))
            .item("notes", notes_value(notes))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", "key")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match fresh {
            Ok(_) => return Ok(Claim::Acquired { attempt: 1 }),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    if let Some(old) = c.item().map(found) {
                        if !old.takeable(hash, now_ms) {
                            return Ok(old.verdict(hash));
                        }
                    }
                    // Takeable, or no old item in the answer: the conditional update decides.
                }
                _ => return Err(StoreError(aws::describe("PutItem", err))),
            },
        }
        let result = self
            .update(
                key,
                "SET #s = :progress, #h = :h, #l = :lock, #e = :e, #n = if_not_exists(#n, :notes) \
                 ADD #a :one REMOVE #p",
                "attribute_not_exists(#k) OR (#s = :progress AND #l < :now) \
                 OR (#s = :released AND #h = :h) OR #e < :now_s",
                values([
                    (":progress", s(IN_PROGRESS)),
                    (":released", s(RELEASED)),
                    (":h", s(hash)),
                    (":lock", n(lock_expires)),
                    (":e", n(expires_at)),
                    (":one", n(1)),
                    (":notes", notes_value(notes)),
                    (":now", n(now_ms)),
                    (":now_s", n(now_ms / 1000)),
                ]),
            )
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let attempt = out
                    .attributes()
                    .and_then(|a| number(a, "attempts"))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| StoreError("UpdateItem: no attempts in the answer".into()))?;
                Ok(Claim::Acquired { attempt })
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(c.item().map(found).unwrap_or_default().verdict(hash))
                }
                _ => Err(StoreError(aws::describe("UpdateItem", err))),
            },
        }
    }

    async fn extend(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> Result<(), StoreError> {
        let lock_expires = now_ms + millis(lock);
        self.update(
            key,
            "SET #l = :lock, #e = :e",
            "#s = :progress AND #h = :h",
            values([
                (":progress", s(IN_PROGRESS)),
                (":h", s(hash)),
                (":lock", n(lock_expires)),
                (":e", n(lock_expires / 1000 + 1)),
            ]),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| StoreError(aws::describe("UpdateItem", e)))
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
        let expires_at = (now_ms + millis(ttl)) / 1000;
        if attempt > 1 {
            // A later attempt: the record keeps the notes of its first (the event's first acceptance, not the
            // redrive's), so only the state changes.
            return self
                .update(
                    key,
                    "SET #s = :completed, #e = :e, #a = :attempts REMOVE #l, #p",
                    "#h = :h",
                    values([
                        (":completed", s(COMPLETED)),
                        (":h", s(hash)),
                        (":e", n(expires_at)),
                        (":attempts", n(i64::from(attempt))),
                    ]),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| StoreError(aws::describe("UpdateItem", e)));
        }
        // The whole record, as its holder knows it: no lock any more.
        self.put(key, COMPLETED, hash, expires_at, attempt)
            .item("notes", notes_value(notes))
            .condition_expression("#h = :h")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":h", s(hash))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(aws::describe("PutItem", e)))
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
        let expires_at = (now_ms + millis(ttl)) / 1000;
        let mut values = values([
            (":progress", s(IN_PROGRESS)),
            (":released", s(RELEASED)),
            (":h", s(hash)),
            (":e", n(expires_at)),
        ]);
        let mut set = "SET #s = :released, #e = :e".to_owned();
        if attempt == Attempt::Forget {
            values.insert(":one".to_owned(), n(1));
            set.push_str(", #a = #a - :one");
        }
        if let Some(queue) = parked {
            values.insert(":parked".to_owned(), s(queue));
            set.push_str(", #p = :parked");
        }
        let update = format!("{set} REMOVE #l");
        let result = self
            .update(key, &update, "#s = :progress AND #h = :h", values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Not ours to release (completed, or someone else's): nothing to do.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(err) => Err(StoreError(aws::describe("UpdateItem", err))),
        }
    }
}

impl ReadRecords for DynamoIdempotency {
    async fn records(&self, keys: &[String]) -> Result<HashMap<String, Record>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = HashMap::new();
        let mut wanted: Vec<Item> = keys
            .iter()
            .map(|k| HashMap::from([("key".to_owned(), s(k))]))
            .collect();
        // DynamoDB may leave keys unprocessed under load: ask again for those, a few times.
        for _ in 0..5 {
            if wanted.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError(format!("BatchGetItem: {e}")))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| StoreError(aws::describe("BatchGetItem", e)))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                if let (Some(key), Some(record)) = (text(item, "key"), record(item)) {
                    found.insert(key.to_owned(), record);
                }
            }
            if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                wanted = left.keys().to_vec();
            }
        }
        if wanted.is_empty() {
            Ok(found)
        } else {
            Err(StoreError(format!(
                "BatchGetItem: {} keys left unprocessed",
                wanted.len()
            )))
        }
    }
}
