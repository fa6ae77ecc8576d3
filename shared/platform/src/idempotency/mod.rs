//! Idempotency: a unit of work (a consumer's record, an e-mail) is claimed under a key before it is done and
//! completed after, so that work delivered again (a retried batch, a redelivery from a checkpoint, a resend) is
//! done once.
//!
//! - [`Guard`] ([`guard`]) is **the protocol**, written once: claim → act → complete or release, the lock and
//!   TTL rules, the minimum lock, conflicts and attempt counting. The consumer harness and the SES mailer both use
//!   it; "no idempotency records" is the absence of a guard.
//! - [`IdempotencyStore`] is what a backend provides: three conditional writes, with the times passed in (so the
//!   rules are testable without waiting). [`DynamoIdempotency`] ([`dynamo`]) keeps the records in DynamoDB;
//!   `MemoryIdempotency` (`memory`, feature `test-util`) has the same rules in memory.
//!
//! - [`ReadRecords`] reads records as they stand ([`Record`]), for the event-status view of the query API: each
//!   record carries its work's [`Notes`] (for an event: its place in the stream) and, once its work was parked,
//!   the dead-letter queue it went to.
//!
//! A claim succeeds when there is no record yet, when a previous holder's lock has expired (it crashed or timed
//! out mid-work), when the record was released after a failure (by a claim of the same payload: the key stays
//! bound to its content, whatever became of it), or when a completed record has outlived its TTL. Each successful
//! claim counts an attempt on the record (a released record is kept for the TTL for this count). Otherwise the
//! existing record answers: completed (skip), in progress elsewhere (retry later), or the same key with another
//! payload (a conflict: the producer reused an id).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::classify::{Classify, Dependency};

pub mod dynamo;
pub mod guard;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use dynamo::DynamoIdempotency;
pub use guard::{Entry, Guard, IdempotencyTimes, Ticket, MIN_LOCK};
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryIdempotency;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the record until its lock expires: do the work, then complete. `attempt` counts the
    /// claims of this record so far, this one included (1 on the first).
    Acquired {
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// The work was done: skip it.
    Completed,
    /// Another invocation holds the record: retry later.
    InProgress,
    /// The key was used before for a different payload: a permanent failure.
    Conflict,
}

/// The store could not be reached or answered oddly; the work is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct StoreError(pub String);

impl Classify for StoreError {
    fn is_retryable(&self) -> bool {
        true
    }

    fn dependency(&self) -> Option<Dependency> {
        Some(Dependency::IDEMPOTENCY)
    }
}

/// The key of a record: which consumer, which work (`event {source} {id}`, `mail {key}`). It starts with
/// `{consumer}#`, the prefix each consumer's IAM policy allows (`dynamodb:LeadingKeys`).
pub fn key(consumer: &str, work: &str) -> String {
    format!("{consumer}#{work}")
}

/// The key of `consumer`'s record of the event `id` from `source`: event ids are unique per source (CloudEvents),
/// so two producers' `42` are two events. Neither part holds whitespace (both are validated identifiers), so the
/// space separates them unambiguously, and the word `event` keeps these keys apart from other kinds of work.
pub fn event_key(consumer: &str, source: &str, id: &str) -> String {
    key(consumer, &format!("event {source} {id}"))
}

/// The hash that tells a redelivery (same payload) from a reused key (another payload): SHA-256, hex.
pub fn payload_hash(payload: &[u8]) -> String {
    Sha256::digest(payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where idempotency records live: the three conditional writes a backend provides. `now_ms` is milliseconds
/// since the Unix epoch. Call them through a [`Guard`], which applies the rules of time.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `lock`, writing `notes` on a record that has none (a record keeps its first attempt's:
    /// a redrive does not move an event's acceptance) and clearing a parked mark (the work is tried again).
    fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
        notes: &Notes,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Extends the lock of a claim this holder still has (in progress, same payload) to `lock` from now; an
    /// error if it does not hold it any more.
    fn extend(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks a claimed record completed; it is remembered for `ttl`. `attempt` is the holder's claim's (kept on
    /// the record); `notes` are written with a first attempt's completion (a later one keeps the record's).
    fn complete(
        &self,
        key: &str,
        hash: &str,
        attempt: u32,
        now_ms: i64,
        ttl: Duration,
        notes: &Notes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claim back after a failure, so the redelivery (or a redrive) can claim it at once. The record is
    /// kept, released, for `ttl`, so the next claim counts on from its attempts; with [`Attempt::Forget`] this
    /// claim's attempt is taken back (the failure was a dependency's, not the work's). `parked` names the
    /// dead-letter queue the work went to, if it was parked (until the next claim).
    fn release(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
        attempt: Attempt,
        parked: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: IdempotencyStore> IdempotencyStore for &S {
    fn claim(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
        notes: &Notes,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(key, hash, now_ms, lock, notes)
    }

    fn extend(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        lock: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).extend(key, hash, now_ms, lock)
    }

    fn complete(
        &self,
        key: &str,
        hash: &str,
        attempt: u32,
        now_ms: i64,
        ttl: Duration,
        notes: &Notes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(key, hash, attempt, now_ms, ttl, notes)
    }

    fn release(
        &self,
        key: &str,
        hash: &str,
        now_ms: i64,
        ttl: Duration,
        attempt: Attempt,
        parked: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(key, hash, now_ms, ttl, attempt, parked)
    }
}

/// No store can be made of this type: it names "no idempotency records" in a type parameter (a harness or a
/// mailer without a [`Guard`]), where no method is ever called.
impl IdempotencyStore for Infallible {
    async fn claim(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: Duration,
        _: &Notes,
    ) -> Result<Claim, StoreError> {
        match *self {}
    }

    async fn extend(&self, _: &str, _: &str, _: i64, _: Duration) -> Result<(), StoreError> {
        match *self {}
    }

    async fn complete(
        &self,
        _: &str,
        _: &str,
        _: u32,
        _: i64,
        _: Duration,
        _: &Notes,
    ) -> Result<(), StoreError> {
        match *self {}
    }

    async fn release(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: Duration,
        _: Attempt,
        _: Option<&str>,
    ) -> Result<(), StoreError> {
        match *self {}
    }
}

/// What a record says about its work beside the protocol's state, for a reader: named strings (for an event, its
/// place in the stream: [`crate::harness`] writes them). They are kept apart from the protocol's attributes (in
/// DynamoDB, one map attribute `notes`), so no note can change a rule.
pub type Notes = [(&'static str, String)];

/// A record's state, as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Claimed; the holder works on it until its lock expires.
    InProgress,
    /// Done.
    Completed,
    /// Given back after a failure: it is tried again (or was parked: [`Record::parked`]).
    Released,
}

/// One record as it stands, for a reader ([`ReadRecords`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its state.
    pub state: State,
    /// Claims counted so far (a dependency's failures are not counted).
    pub attempts: u32,
    /// Until when the holder of a record in progress holds it (milliseconds since the Unix epoch).
    pub lock_expires_ms: Option<i64>,
    /// The dead-letter queue its work was parked in, if it was and has not been claimed since.
    pub parked: Option<String>,
    /// Its work's notes ([`Notes`]).
    pub notes: BTreeMap<String, String>,
}

/// Reads records as they stand: the event-status view's port (a reader needs no claim).
pub trait ReadRecords: Send + Sync {
    /// The records of `keys` that exist, by key (at most 100 keys per call).
    fn records(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Record>, StoreError>> + Send;
}

impl<R: ReadRecords> ReadRecords for &R {
    fn records(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Record>, StoreError>> + Send {
        (**self).records(keys)
    }
}

/// What a release does to the attempt its claim counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// It counts: the work failed.
    Keep,
    /// It is taken back: a dependency failed, not the work, so the attempt says nothing about the work (a
    /// record is never parked for an outage).
    Forget,
}

/// A record's states, as the backends store them.
const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";
const RELEASED: &str = "RELEASED";

/// A stored state as a reader sees it.
fn state(stored: &str) -> Option<State> {
    match stored {
        IN_PROGRESS => Some(State::InProgress),
        COMPLETED => Some(State::Completed),
        RELEASED => Some(State::Released),
        _ => None,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An existing record as a claim finds it: what both backends read theirs into, so that the rules below are
/// written once (DynamoDB's claim condition states [`Found::takeable`] again, as an expression).
#[derive(Debug, Default, Clone, Copy)]
struct Found<'a> {
    status: Option<&'a str>,
    hash: Option<&'a str>,
    lock_expires_ms: Option<i64>,
    /// The TTL, in epoch seconds (as DynamoDB compares it).
    expires_at_s: Option<i64>,
}

impl Found<'_> {
    /// Whether a claim of `hash` at `now_ms` may take the record: its holder's lock has expired, it was released
    /// and is claimed by the same payload, or it has outlived its TTL.
    fn takeable(&self, hash: &str, now_ms: i64) -> bool {
        (self.status == Some(IN_PROGRESS) && self.lock_expires_ms.is_some_and(|l| l < now_ms))
            || (self.status == Some(RELEASED) && self.hash == Some(hash))
            || self.expires_at_s.is_some_and(|e| e < now_ms / 1000)
    }

    /// What the record means for a claim of `hash` that could not take it.
    fn verdict(&self, hash: &str) -> Claim {
        if self.hash.is_some_and(|h| h != hash) {
            Claim::Conflict
        } else if self.status == Some(COMPLETED) {
            Claim::Completed
        } else {
            Claim::InProgress
        }
    }
}

#[cfg(test)]
mod tests;
