//! The consumer harness: from the Kinesis event Lambda delivers to a typed handler per record, and back to a
//! `KinesisEventResponse` with correct checkpoint semantics.
//!
//! - [`KinesisBatch`] decodes the invocation payload in one pass: each record's base64 `data` is decoded and
//!   parsed into a validated [`Envelope`] while the batch is read, and the fields the harness does not need are
//!   skipped without allocating. A bad record never fails the batch; it carries its own [`DecodeError`].
//! - [`Harness::run`] dispatches each record to the [`Consumer`]: the records of one partition key one after
//!   another, in shard order; different keys concurrently, at most [`Harness::with_concurrency`] at once (one
//!   task: no spawning, so a consumer needs no `'static` state). A **permanent** failure (undecodable bytes, an
//!   invalid event, an error the consumer classifies as permanent) goes to the [`DeadLetters`] port and the key
//!   moves on: a poison record never blocks the shard. A **retryable** failure holds back the later records of
//!   the same partition key (their order matters) but not other keys', and the response reports the lowest
//!   failed sequence number, from which Lambda redelivers; nothing after it is lost, and what was already done
//!   after it is skipped on redelivery by the idempotency records.
//!
//! - With [`Harness::with_idempotency`], each record is first claimed in an [`IdempotencyStore`] under
//!   `(consumer, event id)`: a record already completed is skipped (a redelivery), one in progress elsewhere is a
//!   retryable failure, and an id reused for another event (other source, type, subject or data; see
//!   [`Envelope::content_bytes`]) is a permanent one. A handled record is completed; a retryable failure or a
//!   dead-lettered record releases its claim (a redrive after the fix is then handled). A crash between the
//!   effect and the completion leaves the claim to expire, after which the record is handled again: effects that
//!   must happen once either commit with their completion (`DynamoIdempotency::completion`) or carry a
//!   deterministic idempotency key.
//! - Each claim counts an attempt. A dead letter says how many attempts its record had, and a record whose
//!   [`Harness::with_max_attempts`]-th attempt fails retryably is parked too (payload included), so it stops
//!   holding its key back before the event source mapping gives up on the whole batch.
//! - [`Harness::run_until`] takes the invocation's deadline: claims expire with the invocation, so a redelivery
//!   after a timeout or a crash is not locked out longer than the invocation could have lived.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use base64::Engine as _;
use futures_util::stream::{self, StreamExt as _};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::catalogue::EventType;
use crate::envelope::Envelope;
use crate::idempotency::{self, now_ms, Claim, IdempotencyStore, StoreError};
use crate::violation::Violations;

/// Whether an error may go away on a retry.
pub trait Classify {
    /// `true`: retry the record later (the shard waits for it). `false`: dead-letter it and move on.
    fn is_retryable(&self) -> bool;
}

/// A typed event handler: one per consumer function.
pub trait Consumer: Send + Sync {
    /// The consumer's errors, each classified as retryable or permanent.
    type Error: std::error::Error + Classify + Send;

    /// Stable name: in logs, dead letters and (later) idempotency keys.
    fn name(&self) -> &'static str;

    /// The event types this consumer handles. The event source mapping's filter should deliver nothing else;
    /// anything else that arrives is skipped (and counted), not failed.
    fn subscriptions(&self) -> &'static [EventType];

    /// Handles one valid event of a subscribed type.
    fn handle(&self, envelope: &Envelope) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A record that can never succeed, with what is needed to understand and redrive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The consumer that gave up.
    pub consumer: &'static str,
    /// The stream (from the batch), if known.
    pub event_source_arn: Option<String>,
    /// The shard (from the batch), if known.
    pub shard_id: Option<String>,
    /// The record's sequence number.
    pub sequence_number: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The event id, when the record decoded.
    pub event_id: Option<String>,
    /// The event type, when the record decoded.
    pub event_type: Option<&'static str>,
    /// Why it failed.
    pub reason: String,
    /// How many times the consumer tried the record, this time included, as its idempotency record counts them
    /// (1 without a store, or for a record that never reached the consumer).
    pub attempts: u32,
    /// The record's data (the full payload, for redrive).
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The letter for a decoded record at `(sequence number, partition key)` of the batch from
    /// `(stream ARN, shard)`.
    fn of(
        consumer: &'static str,
        (event_source_arn, shard_id): (&Option<String>, &Option<String>),
        (sequence_number, partition_key): (&str, &str),
        envelope: &Envelope,
        (reason, attempts): (String, u32),
    ) -> Self {
        Self {
            consumer,
            event_source_arn: event_source_arn.clone(),
            shard_id: shard_id.clone(),
            sequence_number: sequence_number.to_owned(),
            partition_key: partition_key.to_owned(),
            event_id: Some(envelope.id().to_owned()),
            event_type: Some(envelope.event_type().as_str()),
            reason,
            attempts,
            payload: serde_json::to_vec(envelope).unwrap_or_default(),
        }
    }
}

/// The dead-letter port could not take a letter; the record is then retried rather than lost.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter destination failed: {0}")]
pub struct DeadLetterError(pub String);

/// Where permanent failures go.
pub trait DeadLetters: Send + Sync {
    /// Stores one dead letter durably.
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

/// Dead letters as structured error logs (metadata only, never the payload): the adapter until the dead-letter
/// queue exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogDeadLetters;

impl DeadLetters for LogDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        tracing::error!(
            consumer = letter.consumer,
            shard_id = letter.shard_id.as_deref(),
            sequence_number = %letter.sequence_number,
            event_id = letter.event_id.as_deref(),
            event_type = letter.event_type,
            payload_bytes = letter.payload.len(),
            attempts = letter.attempts,
            reason = %letter.reason,
            "dead letter"
        );
        Ok(())
    }
}

/// Why a record's data did not become an envelope. Always permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `data` was not valid base64.
    #[error("record data is not base64: {0}")]
    Base64(String),
    /// The bytes are not a valid event.
    #[error("invalid event: {0}")]
    Invalid(Violations),
}

/// One Kinesis record of a batch, decoded.
#[derive(Debug)]
pub struct BatchRecord {
    /// Position in the shard; what `batchItemFailures` reports.
    pub sequence_number: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The decoded event, or why it could not be decoded (with the raw bytes, for the dead letter).
    pub envelope: Result<Envelope, (DecodeError, Vec<u8>)>,
}

/// The Kinesis event of one invocation, decoded in one pass (see the module docs).
#[derive(Debug, Default)]
pub struct KinesisBatch {
    /// The records, in shard order.
    pub records: Vec<BatchRecord>,
    /// The stream's ARN, from the first record.
    pub event_source_arn: Option<String>,
    /// The shard, from the first record's `eventID` (`shardId-…:sequence`).
    pub shard_id: Option<String>,
}

/// What a batch came to.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Records the consumer handled.
    pub handled: usize,
    /// Records of types the consumer does not subscribe to.
    pub skipped: usize,
    /// Records sent to the dead-letter port.
    pub dead_lettered: usize,
    /// Records that failed with a retryable error.
    pub failed: usize,
    /// Records not attempted because an earlier record of their key failed.
    pub held_back: usize,
    /// Records skipped because their idempotency record says they were already handled.
    pub duplicates: usize,
    /// The answer for Lambda.
    pub response: KinesisEventResponse,
}

/// No idempotency records: every record is handled (the harness without [`Harness::with_idempotency`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdempotency;

impl IdempotencyStore for NoIdempotency {
    fn keeps_records(&self) -> bool {
        false
    }
    async fn claim(&self, _: &str, _: &str, _: i64, _: Duration) -> Result<Claim, StoreError> {
        Ok(Claim::Acquired { attempt: 1 })
    }
    async fn complete(&self, _: &str, _: &str, _: i64, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn release(&self, _: &str, _: &str, _: i64, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How long claims and completed records last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyTimes {
    /// A claim's lock: at least the function's timeout, so a live holder never loses it.
    pub lock: Duration,
    /// How long a completed record is remembered (default 24 h): redeliveries within it are skipped.
    pub ttl: Duration,
}

impl Default for IdempotencyTimes {
    fn default() -> Self {
        Self {
            lock: Duration::from_secs(15 * 60),
            ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Runs a [`Consumer`] over batches.
#[derive(Debug, Clone)]
pub struct Harness<C, D, I = NoIdempotency> {
    consumer: C,
    dead_letters: D,
    idempotency: I,
    times: IdempotencyTimes,
    concurrency: usize,
    max_attempts: u32,
}

/// How many partition keys a batch works on at once unless told otherwise ([`Harness::with_concurrency`]).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// After how many attempts a record that keeps failing retryably is parked unless told otherwise
/// ([`Harness::with_max_attempts`]). Below the event source mapping's `MaximumRetryAttempts` (10 in
/// `template.yaml`), so the harness parks the record itself, payload included, before the mapping gives up on
/// the batch and sends only its sequence range to the on-failure destination.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

impl<C: Consumer, D: DeadLetters> Harness<C, D> {
    /// A harness for `consumer`, sending permanent failures to `dead_letters`.
    pub fn new(consumer: C, dead_letters: D) -> Self {
        Self {
            consumer,
            dead_letters,
            idempotency: NoIdempotency,
            times: IdempotencyTimes::default(),
            concurrency: DEFAULT_CONCURRENCY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The same harness, claiming each record in `store` first (see the module docs).
    pub fn with_idempotency<I: IdempotencyStore>(
        self,
        store: I,
        times: IdempotencyTimes,
    ) -> Harness<C, D, I> {
        Harness {
            consumer: self.consumer,
            dead_letters: self.dead_letters,
            idempotency: store,
            times,
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
        }
    }
}

/// The shortest lock a claim gets, however close the invocation's deadline.
const MIN_LOCK: Duration = Duration::from_secs(1);

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Handled,
    Skipped,
    Duplicate,
    DeadLettered,
    /// Retryable: this record and the later records of its key are redelivered.
    Failed,
}

/// Where the records of a batch came from: what a dead letter says about them.
#[derive(Clone, Copy)]
struct Origin<'a> {
    event_source_arn: &'a Option<String>,
    shard_id: &'a Option<String>,
}

impl BatchReport {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Handled => self.handled += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    fn merge(&mut self, other: &BatchReport) {
        self.handled += other.handled;
        self.skipped += other.skipped;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
        self.held_back += other.held_back;
        self.duplicates += other.duplicates;
    }
}

impl<C: Consumer, D: DeadLetters, I: IdempotencyStore> Harness<C, D, I> {
    /// The consumer.
    pub fn consumer(&self) -> &C {
        &self.consumer
    }

    /// The same harness, working on at most `keys` partition keys of a batch at once (at least 1; default
    /// [`DEFAULT_CONCURRENCY`]). The records of one key are always handled one after another, in shard order.
    pub fn with_concurrency(mut self, keys: usize) -> Self {
        self.concurrency = keys.max(1);
        self
    }

    /// The same harness, parking a record whose `attempts`-th attempt fails retryably (at least 1; default
    /// [`DEFAULT_MAX_ATTEMPTS`]). Attempts are counted by the idempotency records, so this needs
    /// [`Harness::with_idempotency`]: without a store every attempt looks like the first.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Handles a batch; see the module docs for the semantics. Claims hold for [`IdempotencyTimes::lock`].
    pub async fn run(&self, batch: KinesisBatch) -> BatchReport {
        self.run_with_lock(batch, self.times.lock).await
    }

    /// Handles a batch of an invocation that must end by `deadline_ms` (milliseconds since the Unix epoch, as the
    /// Lambda context gives it): claims expire with the invocation, so if it dies (a timeout, a crash) the
    /// redelivery can claim its records as soon as Lambda retries, not a fixed lock later.
    pub async fn run_until(&self, batch: KinesisBatch, deadline_ms: i64) -> BatchReport {
        let remaining = u64::try_from(deadline_ms.saturating_sub(now_ms())).unwrap_or(0);
        let lock = Duration::from_millis(remaining).clamp(MIN_LOCK, self.times.lock.max(MIN_LOCK));
        self.run_with_lock(batch, lock).await
    }

    async fn run_with_lock(&self, batch: KinesisBatch, lock: Duration) -> BatchReport {
        let KinesisBatch {
            records,
            event_source_arn,
            shard_id,
        } = batch;
        let origin = Origin {
            event_source_arn: &event_source_arn,
            shard_id: &shard_id,
        };
        // The records of each key, in shard order; keys in order of their first record. The keys are borrowed
        // while the groups are counted, then the records are moved: no key is copied.
        let slots: Vec<usize> = {
            let mut index: HashMap<&str, usize> = HashMap::new();
            records
                .iter()
                .map(|r| {
                    let next = index.len();
                    *index.entry(r.partition_key.as_str()).or_insert(next)
                })
                .collect()
        };
        let groups = slots.iter().max().map_or(0, |m| m + 1);
        let mut by_key: Vec<Vec<BatchRecord>> = (0..groups).map(|_| Vec::new()).collect();
        for (record, slot) in records.into_iter().zip(slots) {
            by_key[slot].push(record);
        }

        let mut report = BatchReport::default();
        let mut lowest_failure: Option<String> = None;
        let mut keys = stream::iter(by_key)
            .map(|records| self.run_key(records, origin, lock))
            .buffer_unordered(self.concurrency);
        while let Some((partial, failure)) = keys.next().await {
            report.merge(&partial);
            if let Some(seq) = failure {
                if lowest_failure
                    .as_deref()
                    .is_none_or(|l| sequence_lt(&seq, l))
                {
                    lowest_failure = Some(seq);
                }
            }
        }

        if let Some(seq) = lowest_failure {
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(seq);
            report.response.batch_item_failures.push(failure);
        }
        tracing::info!(
            consumer = self.consumer.name(),
            shard_id = shard_id.as_deref(),
            handled = report.handled,
            skipped = report.skipped,
            dead_lettered = report.dead_lettered,
            failed = report.failed,
            held_back = report.held_back,
            duplicates = report.duplicates,
            "batch done"
        );
        report
    }

    /// The records of one partition key, in order, until one fails retryably: the rest are held back. Returns
    /// the key's counts and the sequence number of its failed record, if any.
    async fn run_key(
        &self,
        records: Vec<BatchRecord>,
        origin: Origin<'_>,
        lock: Duration,
    ) -> (BatchReport, Option<String>) {
        let mut report = BatchReport::default();
        let total = records.len();
        for (done, record) in records.into_iter().enumerate() {
            let sequence_number = record.sequence_number.clone();
            let outcome = self.record(record, origin, lock).await;
            report.count(outcome);
            if outcome == Outcome::Failed {
                report.held_back += total - done - 1;
                return (report, Some(sequence_number));
            }
        }
        (report, None)
    }

    /// One record: decode, filter, claim, handle, complete (see the module docs).
    async fn record(&self, record: BatchRecord, origin: Origin<'_>, lock: Duration) -> Outcome {
        let name = self.consumer.name();
        let BatchRecord {
            sequence_number,
            partition_key,
            envelope,
        } = record;
        let at = (sequence_number.as_str(), partition_key.as_str());
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err((err, payload)) => {
                let letter = DeadLetter {
                    consumer: name,
                    event_source_arn: origin.event_source_arn.clone(),
                    shard_id: origin.shard_id.clone(),
                    sequence_number: sequence_number.clone(),
                    partition_key: partition_key.clone(),
                    event_id: None,
                    event_type: None,
                    reason: err.to_string(),
                    attempts: 1,
                    payload,
                };
                return self.dead_letter(letter).await;
            }
        };
        let ty = envelope.event_type();
        if !self.consumer.subscriptions().contains(&ty) {
            tracing::debug!(
                consumer = name,
                event_type = ty.as_str(),
                "skipped: not subscribed"
            );
            return Outcome::Skipped;
        }
        // The claim: skip what was done, wait for what is being done, refuse a reused id.
        // Without a store (`NoIdempotency`) there is nothing to hash or claim.
        let keeps = self.idempotency.keeps_records();
        let (claim_key, hash) = if keeps {
            (
                idempotency::key(name, envelope.id()),
                idempotency::payload_hash(&envelope.content_bytes()),
            )
        } else {
            (String::new(), String::new())
        };
        let claim = if keeps {
            self.idempotency
                .claim(&claim_key, &hash, now_ms(), lock)
                .await
        } else {
            Ok(Claim::Acquired { attempt: 1 })
        };
        let letter = |reason: String, attempts: u32| {
            DeadLetter::of(
                name,
                (origin.event_source_arn, origin.shard_id),
                at,
                &envelope,
                (reason, attempts),
            )
        };
        let attempt = match claim {
            Ok(Claim::Acquired { attempt }) => attempt,
            Ok(Claim::Completed) => {
                tracing::info!(
                    consumer = name,
                    event_id = envelope.id(),
                    "duplicate: already handled"
                );
                return Outcome::Duplicate;
            }
            Ok(Claim::InProgress) => {
                tracing::warn!(
                    consumer = name,
                    event_id = envelope.id(),
                    "in progress elsewhere; retried later"
                );
                return Outcome::Failed;
            }
            Ok(Claim::Conflict) => {
                return self
                    .dead_letter(letter("event id reused with a different payload".into(), 1))
                    .await;
            }
            Err(err) => {
                tracing::warn!(consumer = name, event_id = envelope.id(), error = %err, "idempotency store failed; retried later");
                return Outcome::Failed;
            }
        };
        // Handled: completed. Failed retryably: released for the redelivery. Failed for good: released too, once
        // the dead letter is stored, so that a redrive after the fix is handled, not skipped as done (a
        // redelivery by Lambda parks it again; `tubes-dlq redrive` puts such twins back once).
        match self.consumer.handle(&envelope).await {
            Ok(()) => {
                self.finish(&claim_key, &hash, true).await;
                Outcome::Handled
            }
            Err(err) if err.is_retryable() && attempt >= self.max_attempts && keeps => {
                // It kept failing: park it with its payload rather than let it hold its key back until the
                // event source mapping gives up on the whole batch.
                let reason = format!("gave up after {attempt} attempts: {err}");
                let outcome = self.dead_letter(letter(reason, attempt)).await;
                self.finish(&claim_key, &hash, false).await;
                outcome
            }
            Err(err) if err.is_retryable() => {
                self.finish(&claim_key, &hash, false).await;
                tracing::warn!(
                    consumer = name,
                    event_id = envelope.id(),
                    sequence_number = %sequence_number,
                    attempt,
                    error = %err,
                    "retryable failure: the record and later records of its key will be redelivered"
                );
                Outcome::Failed
            }
            Err(err) => {
                let outcome = self.dead_letter(letter(err.to_string(), attempt)).await;
                self.finish(&claim_key, &hash, false).await;
                outcome
            }
        }
    }

    /// Completes (`done`) or releases a claim. A failure here is logged, not fatal: a completion that did not
    /// land leaves the claim to expire; a release that did not land delays the redelivery until it does.
    async fn finish(&self, claim_key: &str, hash: &str, done: bool) {
        if !self.idempotency.keeps_records() {
            return;
        }
        let now = now_ms();
        let result = if done {
            self.idempotency
                .complete(claim_key, hash, now, self.times.ttl)
                .await
        } else {
            self.idempotency
                .release(claim_key, hash, now, self.times.ttl)
                .await
        };
        if let Err(err) = result {
            tracing::warn!(consumer = self.consumer.name(), key = claim_key, error = %err, "idempotency record not updated");
        }
    }

    /// Sends a dead letter: [`Outcome::DeadLettered`] when it is stored, else [`Outcome::Failed`] (never drop a
    /// record: if it cannot be parked, it is retried).
    async fn dead_letter(&self, letter: DeadLetter) -> Outcome {
        match self.dead_letters.send(letter).await {
            Ok(()) => Outcome::DeadLettered,
            Err(err) => {
                tracing::warn!(consumer = self.consumer.name(), error = %err, "dead letter not stored; retrying record");
                Outcome::Failed
            }
        }
    }
}

/// Orders Kinesis sequence numbers (decimal strings of up to 128 digits, no leading zeros) numerically.
pub fn sequence_lt(a: &str, b: &str) -> bool {
    (a.len(), a) < (b.len(), b)
}

// ---- one-pass decoding of the Lambda Kinesis event ----

impl<'de> Deserialize<'de> for KinesisBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;
        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = KinesisBatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kinesis event with Records")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KinesisBatch, A::Error> {
                let mut batch = KinesisBatch::default();
                let mut seen = false;
                while let Some(key) = map.next_key::<Key>()? {
                    if key.0 == KeyKind::Records {
                        map.next_value_seed(RecordsSeed(&mut batch))?;
                        seen = true;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                if !seen {
                    return Err(de::Error::missing_field("Records"));
                }
                Ok(batch)
            }
        }
        deserializer.deserialize_map(BatchVisitor)
    }
}

/// The keys the decoder looks at; the rest are skipped without allocating.
#[derive(PartialEq, Eq, Clone, Copy)]
enum KeyKind {
    Records,
    Kinesis,
    EventSourceArn,
    EventId,
    PartitionKey,
    SequenceNumber,
    Data,
    Other,
}

struct Key(KeyKind);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(match v {
                    "Records" => KeyKind::Records,
                    "kinesis" => KeyKind::Kinesis,
                    "eventSourceARN" => KeyKind::EventSourceArn,
                    "eventID" => KeyKind::EventId,
                    "partitionKey" => KeyKind::PartitionKey,
                    "sequenceNumber" => KeyKind::SequenceNumber,
                    "data" => KeyKind::Data,
                    _ => KeyKind::Other,
                }))
            }
        }
        deserializer.deserialize_identifier(V)
    }
}

struct RecordsSeed<'b>(&'b mut KinesisBatch);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Kinesis records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.records.reserve(n);
        }
        while let Some(record) = seq.next_element_seed(RecordSeed(self.0))? {
            self.0.records.push(record);
        }
        Ok(())
    }
}

struct RecordSeed<'b>(&'b mut KinesisBatch);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = BatchRecord;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<BatchRecord, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = BatchRecord;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kinesis event record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BatchRecord, A::Error> {
        let mut kinesis = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                KeyKind::Kinesis => kinesis = Some(map.next_value::<KinesisPart>()?),
                KeyKind::EventSourceArn if self.0.event_source_arn.is_none() => {
                    self.0.event_source_arn = Some(map.next_value::<String>()?);
                }
                KeyKind::EventId if self.0.shard_id.is_none() => {
                    let id = map.next_value::<String>()?;
                    self.0.shard_id = id.split_once(':').map(|(shard, _)| shard.to_owned());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kinesis = kinesis.ok_or_else(|| de::Error::missing_field("kinesis"))?;
        Ok(BatchRecord {
            sequence_number: kinesis.sequence_number,
            partition_key: kinesis.partition_key,
            envelope: kinesis.envelope,
        })
    }
}

struct KinesisPart {
    sequence_number: String,
    partition_key: String,
    envelope: Result<Envelope, (DecodeError, Vec<u8>)>,
}

impl<'de> Deserialize<'de> for KinesisPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KinesisPart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the kinesis member of a record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KinesisPart, A::Error> {
                let (mut seq, mut key, mut envelope) = (None, None, None);
                while let Some(k) = map.next_key::<Key>()? {
                    match k.0 {
                        KeyKind::SequenceNumber => seq = Some(map.next_value::<String>()?),
                        KeyKind::PartitionKey => key = Some(map.next_value::<String>()?),
                        KeyKind::Data => envelope = Some(map.next_value::<DataField>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(KinesisPart {
                    sequence_number: seq
                        .ok_or_else(|| de::Error::missing_field("sequenceNumber"))?,
                    partition_key: key.ok_or_else(|| de::Error::missing_field("partitionKey"))?,
                    envelope: envelope.ok_or_else(|| de::Error::missing_field("data"))?,
                })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The base64 `data` of a record, decoded and parsed as it is read.
struct DataField(Result<Envelope, (DecodeError, Vec<u8>)>);

impl<'de> Deserialize<'de> for DataField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DataField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64 record data")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DataField, E> {
                Ok(DataField(decode_data(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

fn decode_data(base64: &str) -> Result<Envelope, (DecodeError, Vec<u8>)> {
    let bytes = match base64::engine::general_purpose::STANDARD.decode(base64) {
        Ok(bytes) => bytes,
        Err(err) => {
            return Err((
                DecodeError::Base64(err.to_string()),
                base64.as_bytes().to_vec(),
            ))
        }
    };
    match Envelope::decode(&bytes) {
        Ok(envelope) => Ok(envelope),
        Err(violations) => Err((DecodeError::Invalid(violations), bytes)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_lambda_events::event::kinesis::KinesisEvent;
    use serde_json::{json, Value};

    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/kinesis-event.json");

    /// The AWS fixture, with its records replaced by `(partition key, data bytes)` pairs.
    fn event(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        let template = v["Records"][0].clone();
        let list = records
            .iter()
            .enumerate()
            .map(|(i, (key, data))| {
                let mut r = template.clone();
                let seq = format!(
                    "4956816737333333333333333333333333333333333333333333{:04}",
                    i + 1
                );
                r["kinesis"]["partitionKey"] = json!(key);
                r["kinesis"]["sequenceNumber"] = json!(seq);
                r["kinesis"]["data"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(data));
                r["eventID"] = json!(format!("shardId-000000000000:{seq}"));
                r
            })
            .collect();
        v["Records"] = Value::Array(list);
        serde_json::to_vec(&v).unwrap()
    }

    fn signup(user: &str, id: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "specversion": "1.0", "id": id, "source": "/test", "type": "user.signed_up", "subject": user,
            "time": "2026-11-22T10:00:00Z",
            "data": {"user_id": user, "email": "a@b.co", "name": "A", "signed_up_at": "2026-11-22T10:00:00Z"}
        }))
        .unwrap()
    }

    fn payment(account: &str, id: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "specversion": "1.0", "id": id, "source": "/test", "type": "payment.received", "subject": account,
            "time": "2026-11-22T10:00:00Z",
            "data": {"payment_id": id, "account_id": account, "amount": 100, "currency": "EUR", "payer_email": "a@b.co"}
        }))
        .unwrap()
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct TestError(&'static str, bool);

    impl Classify for TestError {
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    /// Handles user.signed_up; fails the event ids it is told to, retryably or not.
    #[derive(Default)]
    struct Recorder {
        handled: Mutex<Vec<String>>,
        retryable: Vec<&'static str>,
        permanent: Vec<&'static str>,
    }

    impl Consumer for Recorder {
        type Error = TestError;
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn subscriptions(&self) -> &'static [EventType] {
            &[EventType::UserSignedUp]
        }
        async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
            if self.retryable.contains(&envelope.id()) {
                return Err(TestError("transient", true));
            }
            if self.permanent.contains(&envelope.id()) {
                return Err(TestError("never", false));
            }
            self.handled.lock().unwrap().push(envelope.id().to_owned());
            Ok(())
        }
    }

    #[derive(Default)]
    struct MemoryDeadLetters {
        letters: Mutex<Vec<DeadLetter>>,
        broken: bool,
    }

    impl DeadLetters for &MemoryDeadLetters {
        async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
            if self.broken {
                return Err(DeadLetterError("down".into()));
            }
            self.letters.lock().unwrap().push(letter);
            Ok(())
        }
    }

    fn failures(report: &BatchReport) -> Vec<&str> {
        report
            .response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .collect()
    }

    fn seq(i: usize) -> String {
        format!("4956816737333333333333333333333333333333333333333333{i:04}")
    }

    #[test]
    fn decodes_what_aws_lambda_events_decodes() {
        let bytes = event(&[
            ("usr_1", signup("usr_1", "e1")),
            ("acc", payment("acc", "e2")),
        ]);
        let ours: KinesisBatch = serde_json::from_slice(&bytes).unwrap();
        let theirs: KinesisEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(ours.records.len(), theirs.records.len());
        for (o, t) in ours.records.iter().zip(&theirs.records) {
            assert_eq!(o.sequence_number, t.kinesis.sequence_number);
            assert_eq!(o.partition_key, t.kinesis.partition_key);
            let env = o.envelope.as_ref().unwrap();
            assert_eq!(env, &Envelope::decode(&t.kinesis.data.0).unwrap());
        }
        assert_eq!(
            ours.event_source_arn.as_deref(),
            theirs.records[0].event_source_arn.as_deref()
        );
        assert_eq!(ours.shard_id.as_deref(), Some("shardId-000000000000"));
    }

    #[test]
    fn a_batch_without_records_is_an_error_but_an_empty_one_is_not() {
        assert!(serde_json::from_slice::<KinesisBatch>(b"{}").is_err());
        assert!(serde_json::from_slice::<KinesisBatch>(br#"{"Records":[]}"#)
            .unwrap()
            .records
            .is_empty());
    }

    #[tokio::test]
    async fn the_aws_fixture_is_dead_lettered_not_failed() {
        // Given the AWS sample event, whose records hold "Hello World" (not an event)
        let batch: KinesisBatch = serde_json::from_str(FIXTURE).unwrap();
        let dlq = MemoryDeadLetters::default();
        // When the harness runs it
        let report = Harness::new(Recorder::default(), &dlq).run(batch).await;
        // Then both are dead letters with their payload, and the batch succeeds
        assert_eq!(report.dead_lettered, 2);
        assert!(failures(&report).is_empty());
        let letters = dlq.letters.lock().unwrap();
        assert_eq!(letters[0].payload, b"Hello World");
        assert!(
            letters[0].reason.contains("malformed_json"),
            "{}",
            letters[0].reason
        );
        assert_eq!(
            letters[1].sequence_number,
            "49568167373333333334444444444444444444444444444444444444"
        );
        assert_eq!(letters[0].shard_id.as_deref(), Some("shardId-000000000000"));
    }

    #[tokio::test]
    async fn handles_every_valid_record_in_order() {
        let bytes = event(&[
            ("u1", signup("u1", "a")),
            ("u2", signup("u2", "b")),
            ("u1", signup("u1", "c")),
        ]);
        let dlq = MemoryDeadLetters::default();
        let harness = Harness::new(Recorder::default(), &dlq);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        // Every record, and u1's in shard order (keys run concurrently, so b may come anywhere).
        let handled = harness.consumer().handled.lock().unwrap().clone();
        let mut sorted = handled.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c"]);
        let pos = |id: &str| handled.iter().position(|h| h == id).unwrap();
        assert!(pos("a") < pos("c"), "{handled:?}");
        assert_eq!((report.handled, report.dead_lettered), (3, 0));
        assert!(failures(&report).is_empty());
        let json = serde_json::to_value(&report.response).unwrap();
        assert_eq!(json, json!({"batchItemFailures": []}));
    }

    /// Counts how many records are in `handle` at once, overall and per key; yields inside `handle` so that
    /// concurrent keys really interleave.
    #[derive(Default)]
    struct Gauge {
        now: Mutex<(usize, HashMap<String, usize>)>,
        max: Mutex<(usize, usize)>,
        order: Mutex<Vec<(String, String)>>,
    }

    impl Consumer for Gauge {
        type Error = TestError;
        fn name(&self) -> &'static str {
            "gauge"
        }
        fn subscriptions(&self) -> &'static [EventType] {
            &[EventType::UserSignedUp]
        }
        async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
            let key = envelope.subject().to_owned();
            {
                let mut now = self.now.lock().unwrap();
                now.0 += 1;
                let per_key = now.1.entry(key.clone()).or_default();
                *per_key += 1;
                let per_key = *per_key;
                let mut max = self.max.lock().unwrap();
                *max = (max.0.max(now.0), max.1.max(per_key));
            }
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            let mut now = self.now.lock().unwrap();
            now.0 -= 1;
            *now.1.get_mut(&key).unwrap() -= 1;
            self.order
                .lock()
                .unwrap()
                .push((key, envelope.id().to_owned()));
            Ok(())
        }
    }

    #[tokio::test]
    async fn keys_run_concurrently_up_to_the_bound_and_each_key_in_order() {
        // 12 keys, 3 records each, interleaved as a shard would hold them.
        let records: Vec<(String, Vec<u8>)> = (0..36)
            .map(|i| {
                let user = format!("u{}", i % 12);
                let payload = signup(&user, &format!("e{i:02}"));
                (user, payload)
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = records
            .iter()
            .map(|(u, p)| (u.as_str(), p.clone()))
            .collect();
        let bytes = event(&refs);
        let dlq = MemoryDeadLetters::default();
        let harness = Harness::new(Gauge::default(), &dlq).with_concurrency(4);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!(report.handled, 36);
        let (overall, per_key) = *harness.consumer().max.lock().unwrap();
        assert!(
            (2..=4).contains(&overall),
            "at most 4 keys at once, and more than one: {overall}"
        );
        assert_eq!(per_key, 1, "one record of a key at a time");
        let order = harness.consumer().order.lock().unwrap().clone();
        for k in 0..12 {
            let key = format!("u{k}");
            let ids: Vec<&str> = order
                .iter()
                .filter(|(u, _)| *u == key)
                .map(|(_, id)| id.as_str())
                .collect();
            let expected: Vec<String> = (0..3).map(|r| format!("e{:02}", k + 12 * r)).collect();
            assert_eq!(ids, expected, "{key} in shard order");
        }

        // A bound of 1 is the plain sequential loop.
        let sequential = Harness::new(Gauge::default(), &dlq).with_concurrency(0);
        sequential
            .run(serde_json::from_slice(&bytes).unwrap())
            .await;
        assert_eq!(sequential.consumer().max.lock().unwrap().0, 1);
    }

    #[tokio::test]
    async fn a_retryable_failure_holds_back_its_key_and_reports_the_lowest_sequence() {
        // Given u1's second event fails transiently
        let bytes = event(&[
            ("u1", signup("u1", "a")),
            ("u1", signup("u1", "b")),
            ("u2", signup("u2", "c")),
            ("u1", signup("u1", "d")),
            ("u3", signup("u3", "e")),
        ]);
        let consumer = Recorder {
            retryable: vec!["b", "e"],
            ..Recorder::default()
        };
        let dlq = MemoryDeadLetters::default();
        // Without idempotency records there is no count of attempts: nothing is parked for them.
        let harness = Harness::new(consumer, &dlq).with_max_attempts(1);
        // When the batch runs
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert!(dlq.letters.lock().unwrap().is_empty());
        // Then u1's later event waits, u2 goes on, and Lambda is told to resume at b (the lowest failure)
        let mut handled = harness.consumer().handled.lock().unwrap().clone();
        handled.sort(); // keys run concurrently
        assert_eq!(handled, ["a", "c"]);
        assert_eq!((report.failed, report.held_back), (2, 1));
        assert_eq!(failures(&report), [seq(2).as_str()]);
        let json = serde_json::to_value(&report.response).unwrap();
        assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], seq(2));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_and_the_batch_goes_on() {
        let bytes = event(&[
            ("u1", signup("u1", "a")),
            ("u1", signup("u1", "b")),
            ("u1", b"{not json".to_vec()),
        ]);
        let consumer = Recorder {
            permanent: vec!["a"],
            ..Recorder::default()
        };
        let dlq = MemoryDeadLetters::default();
        let harness = Harness::new(consumer, &dlq);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!(*harness.consumer().handled.lock().unwrap(), ["b"]);
        assert_eq!(report.dead_lettered, 2);
        assert!(failures(&report).is_empty());
        let letters = dlq.letters.lock().unwrap();
        assert_eq!(letters[0].event_id.as_deref(), Some("a"));
        assert_eq!(letters[0].event_type, Some("user.signed_up"));
        assert_eq!(letters[0].reason, "never");
        assert_eq!(Envelope::decode(&letters[0].payload).unwrap().id(), "a");
        assert_eq!(letters[1].payload, b"{not json");
        assert_eq!(letters[1].sequence_number, seq(3));
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_stored_is_retried() {
        let bytes = event(&[("u1", b"garbage".to_vec()), ("u2", signup("u2", "b"))]);
        let dlq = MemoryDeadLetters {
            broken: true,
            ..MemoryDeadLetters::default()
        };
        let harness = Harness::new(Recorder::default(), &dlq);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!(failures(&report), [seq(1).as_str()]);
        assert_eq!(*harness.consumer().handled.lock().unwrap(), ["b"]);
    }

    #[tokio::test]
    async fn other_types_are_skipped() {
        let bytes = event(&[("acc", payment("acc", "p")), ("u1", signup("u1", "a"))]);
        let dlq = MemoryDeadLetters::default();
        let harness = Harness::new(Recorder::default(), &dlq);
        let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
        assert_eq!((report.skipped, report.handled), (1, 1));
    }

    #[test]
    fn bad_base64_is_a_record_error_not_a_batch_error() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["Records"][1]["kinesis"]["data"] = json!("%%%not base64");
        let batch: KinesisBatch = serde_json::from_value(v).unwrap();
        assert!(matches!(
            batch.records[1].envelope,
            Err((DecodeError::Base64(_), _))
        ));
    }

    #[test]
    fn sequence_numbers_order_numerically() {
        assert!(sequence_lt("9", "10"));
        assert!(sequence_lt(
            "49568167373333333333333333333333333333333333333333333333",
            "49568167373333333334444444444444444444444444444444444444"
        ));
        assert!(!sequence_lt("10", "10"));
        assert!(!sequence_lt("100", "99"));
    }

    mod idempotent {
        use super::*;
        use crate::idempotency::{key, payload_hash, MemoryIdempotency};

        fn hash_of(bytes: &[u8]) -> String {
            payload_hash(&Envelope::decode(bytes).unwrap().content_bytes())
        }

        fn now() -> i64 {
            now_ms()
        }

        #[tokio::test]
        async fn a_batch_delivered_twice_is_handled_once() {
            let bytes = event(&[("u1", signup("u1", "a")), ("u2", signup("u2", "b"))]);
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let harness = Harness::new(Recorder::default(), &dlq)
                .with_idempotency(&store, IdempotencyTimes::default());
            let first = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
            let second = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert_eq!((first.handled, first.duplicates), (2, 0));
            assert_eq!((second.handled, second.duplicates), (0, 2));
            let mut handled = harness.consumer().handled.lock().unwrap().clone();
            handled.sort(); // keys run concurrently
            assert_eq!(handled, ["a", "b"]);
            assert!(failures(&second).is_empty());
        }

        #[tokio::test]
        async fn a_record_in_progress_elsewhere_is_retried_and_holds_back_its_key_only() {
            let payload = signup("u1", "a");
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            // Another invocation holds u1's record.
            let held = store
                .claim(
                    &key("recorder", "a"),
                    &hash_of(&payload),
                    now(),
                    Duration::from_secs(60),
                )
                .await;
            assert_eq!(held, Ok(Claim::Acquired { attempt: 1 }));
            let bytes = event(&[
                ("u1", payload),
                ("u1", signup("u1", "b")),
                ("u2", signup("u2", "c")),
            ]);
            let harness = Harness::new(Recorder::default(), &dlq)
                .with_idempotency(&store, IdempotencyTimes::default());
            let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert_eq!(failures(&report), [seq(1)]);
            assert_eq!((report.failed, report.held_back, report.handled), (1, 1, 1));
            assert_eq!(*harness.consumer().handled.lock().unwrap(), ["c"]);
        }

        /// Looks, from inside `handle`, at how long its own claim holds: another claimant at `probe_ms`.
        struct LockProbe<'a> {
            store: &'a MemoryIdempotency,
            probe_ms: i64,
            seen: Mutex<Option<Claim>>,
        }

        impl Consumer for LockProbe<'_> {
            type Error = TestError;
            fn name(&self) -> &'static str {
                "recorder"
            }
            fn subscriptions(&self) -> &'static [EventType] {
                &[EventType::UserSignedUp]
            }
            async fn handle(&self, envelope: &Envelope) -> Result<(), TestError> {
                let claim = self
                    .store
                    .claim(
                        &key("recorder", envelope.id()),
                        &hash_of(&signup("u1", "a")),
                        self.probe_ms,
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                *self.seen.lock().unwrap() = Some(claim);
                Err(TestError("crash-like: leave the claim", true))
            }
        }

        #[tokio::test]
        async fn a_claim_expires_with_the_invocation_not_a_fixed_lock_later() {
            let bytes = event(&[("u1", signup("u1", "a"))]);
            let deadline = now() + 5_000;
            for (probe_ms, expected) in [
                (deadline - 1_000, Claim::InProgress),
                // The harness's claim was the first attempt; the probe's, after the lock, the second.
                (deadline + 2_000, Claim::Acquired { attempt: 2 }),
            ] {
                let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
                let probe = LockProbe {
                    store: &store,
                    probe_ms,
                    seen: Mutex::new(None),
                };
                // A 15-minute default lock, but the invocation ends in 5 s.
                let harness =
                    Harness::new(probe, &dlq).with_idempotency(&store, IdempotencyTimes::default());
                harness
                    .run_until(serde_json::from_slice(&bytes).unwrap(), deadline)
                    .await;
                assert_eq!(
                    *harness.consumer().seen.lock().unwrap(),
                    Some(expected.clone()),
                    "another claimant {} ms after the deadline",
                    probe_ms - deadline
                );
            }
        }

        #[tokio::test]
        async fn a_retryable_failure_releases_its_claim() {
            let payload = signup("u1", "b");
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let consumer = Recorder {
                retryable: vec!["b"],
                ..Recorder::default()
            };
            let harness =
                Harness::new(consumer, &dlq).with_idempotency(&store, IdempotencyTimes::default());
            let report = harness
                .run(serde_json::from_slice(&event(&[("u1", payload.clone())])).unwrap())
                .await;
            assert_eq!(report.failed, 1);
            let again = store
                .claim(
                    &key("recorder", "b"),
                    &hash_of(&payload),
                    now(),
                    Duration::from_secs(60),
                )
                .await;
            assert_eq!(
                again,
                Ok(Claim::Acquired { attempt: 2 }),
                "the redelivery can claim it at once, as a second attempt"
            );
        }

        #[tokio::test]
        async fn a_record_that_keeps_failing_is_parked_with_its_attempts() {
            let bytes = event(&[("u1", signup("u1", "b")), ("u1", signup("u1", "c"))]);
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let consumer = Recorder {
                retryable: vec!["b"],
                ..Recorder::default()
            };
            let harness = Harness::new(consumer, &dlq)
                .with_idempotency(&store, IdempotencyTimes::default())
                .with_max_attempts(3);
            // Two deliveries: b fails and holds c back.
            for _ in 0..2 {
                let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
                assert_eq!(failures(&report), [seq(1)]);
                assert_eq!((report.failed, report.held_back), (1, 1));
            }
            assert!(dlq.letters.lock().unwrap().is_empty());
            // The third attempt parks b and goes on to c.
            let report = harness.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert!(failures(&report).is_empty(), "{:?}", report.response);
            assert_eq!((report.dead_lettered, report.handled), (1, 1));
            assert_eq!(*harness.consumer().handled.lock().unwrap(), ["c"]);
            let letters = dlq.letters.lock().unwrap();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].attempts, 3);
            assert_eq!(letters[0].sequence_number, seq(1));
            assert!(
                letters[0].reason.starts_with("gave up after 3 attempts: "),
                "{}",
                letters[0].reason
            );
        }

        #[tokio::test]
        async fn a_permanent_failure_says_which_attempt_it_was() {
            let bytes = event(&[("u1", signup("u1", "x"))]);
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let flaky = Recorder {
                retryable: vec!["x"],
                ..Recorder::default()
            };
            Harness::new(flaky, &dlq)
                .with_idempotency(&store, IdempotencyTimes::default())
                .run(serde_json::from_slice(&bytes).unwrap())
                .await;
            let broken = Recorder {
                permanent: vec!["x"],
                ..Recorder::default()
            };
            Harness::new(broken, &dlq)
                .with_idempotency(&store, IdempotencyTimes::default())
                .run(serde_json::from_slice(&bytes).unwrap())
                .await;
            let letters = dlq.letters.lock().unwrap();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].attempts, 2);
        }

        #[tokio::test]
        async fn a_reused_id_with_another_payload_is_a_dead_letter() {
            let (dlq, store) = (MemoryDeadLetters::default(), MemoryIdempotency::default());
            let harness = Harness::new(Recorder::default(), &dlq)
                .with_idempotency(&store, IdempotencyTimes::default());
            harness
                .run(serde_json::from_slice(&event(&[("u1", signup("u1", "a"))])).unwrap())
                .await;
            // Same id "a", other user: another payload.
            let report = harness
                .run(serde_json::from_slice(&event(&[("u9", signup("u9", "a"))])).unwrap())
                .await;
            assert_eq!((report.dead_lettered, report.handled), (1, 0));
            assert!(
                failures(&report).is_empty(),
                "a poison record does not block the shard"
            );
            let letters = dlq.letters.lock().unwrap();
            assert!(letters[0].reason.contains("different payload"));
            assert_eq!(letters[0].partition_key, "u9");
        }

        #[tokio::test]
        async fn a_dead_lettered_record_is_handled_when_redriven_after_the_fix() {
            let bytes = event(&[("u1", signup("u1", "x"))]);
            let store = MemoryIdempotency::default();
            let dlq = MemoryDeadLetters::default();
            let broken = Recorder {
                permanent: vec!["x"],
                ..Recorder::default()
            };
            let report = Harness::new(broken, &dlq)
                .with_idempotency(&store, IdempotencyTimes::default())
                .run(serde_json::from_slice(&bytes).unwrap())
                .await;
            assert_eq!(report.dead_lettered, 1);
            // The fix is deployed; the redriven record arrives.
            let fixed = Harness::new(Recorder::default(), &dlq)
                .with_idempotency(&store, IdempotencyTimes::default());
            let report = fixed.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert_eq!((report.handled, report.duplicates), (1, 0));
            // And only once.
            let report = fixed.run(serde_json::from_slice(&bytes).unwrap()).await;
            assert_eq!((report.handled, report.duplicates), (0, 1));
            assert_eq!(*fixed.consumer().handled.lock().unwrap(), ["x"]);
        }

        #[tokio::test]
        async fn a_dead_letter_that_was_not_stored_is_not_marked_done() {
            let payload = signup("u1", "x");
            let store = MemoryIdempotency::default();
            let consumer = || Recorder {
                permanent: vec!["x"],
                ..Recorder::default()
            };
            let broken = MemoryDeadLetters {
                broken: true,
                ..MemoryDeadLetters::default()
            };
            let bytes = event(&[("u1", payload)]);
            let report = Harness::new(consumer(), &broken)
                .with_idempotency(&store, IdempotencyTimes::default())
                .run(serde_json::from_slice(&bytes).unwrap())
                .await;
            assert_eq!(failures(&report), [seq(1)]);
            // Redelivered once the queue works: dead-lettered now, not skipped as a duplicate.
            let dlq = MemoryDeadLetters::default();
            let report = Harness::new(consumer(), &dlq)
                .with_idempotency(&store, IdempotencyTimes::default())
                .run(serde_json::from_slice(&bytes).unwrap())
                .await;
            assert_eq!((report.dead_lettered, report.duplicates), (1, 0));
        }
    }
}
