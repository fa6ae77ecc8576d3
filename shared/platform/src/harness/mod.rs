//! The consumer harness: from the Kinesis batch Lambda delivers ([`KinesisBatch`]) to a typed [`Consumer`] per
//! record, and back to a `KinesisEventResponse` with correct checkpoint semantics. It is the top of the platform:
//! it drives the ports (dead letters, idempotency) and nothing but the runtime drives it.
//!
//! - [`Harness::run`] dispatches each record to the consumer: the records of one partition key one after
//!   another, in shard order; different keys concurrently, at most [`Harness::with_concurrency`] at once (one
//!   task: no spawning, so a consumer needs no `'static` state). A **permanent** failure (undecodable bytes, an
//!   invalid event, an error the consumer classifies as permanent) goes to the [`DeadLetters`] port and the key
//!   moves on: a poison record never blocks the shard. A **retryable** failure holds back the later records of
//!   the same partition key (their order matters) but not other keys', and the response reports the lowest
//!   failed sequence number, from which Lambda redelivers; nothing after it is lost, and what was already done
//!   after it is skipped on redelivery by the idempotency records.
//! - With [`Harness::with_idempotency`], each record is handled under the idempotency protocol ([`Guard`]), keyed
//!   `(consumer, event source, event id)`: a record already completed is skipped (a redelivery), one in progress elsewhere is a
//!   retryable failure, and an id reused for another event (other source, type, subject or data; see
//!   [`Envelope::content_bytes`](tubes_contract::Envelope::content_bytes)) is a permanent one. A handled record is completed; a retryable failure or a
//!   dead-lettered record releases its claim (a redrive after the fix is then handled). A crash between the
//!   effect and the completion leaves the claim to expire, after which the record is handled again: effects that
//!   must happen once commit with a decision of their own (the payments ledger) or carry a deterministic
//!   idempotency key (e-mails).
//! - Each claim counts an attempt. A dead letter says how many attempts its record had, and a record whose
//!   [`Harness::with_max_attempts`]-th attempt fails retryably is parked too (payload included), so it stops
//!   holding its key back before the event source mapping gives up on the whole batch.
//! - Claims are short and kept alive while the consumer works ([`Ticket::hold`]): a crashed invocation's claim
//!   lapses within one lock (seconds). [`Harness::run_until`] takes the invocation's deadline: a redelivery that
//!   finds a record in progress waits for it within that deadline instead of failing it, so waiting for a dead
//!   invocation's claim never spends the event source mapping's retries. A record whose claims keep ending
//!   without an outcome (its invocation crashes or times out on it) is parked, unhandled, once it has had
//!   [`Harness::with_max_attempts`] of them: a record that kills its consumer cannot hold its shard forever.
//! - **An outage is not the record's fault.** A failure a dependency owns ([`Classify::dependency`]: a store or
//!   service that did not answer, throttled or answered 5xx) never parks a record, and its attempt is taken
//!   back. A circuit breaker per dependency ([`breaker`]) counts these across records: once one is open, no
//!   record starts (the batch stops early and reports its lowest unfinished record), the invocation waits out
//!   the cooldown within its deadline before answering, so Lambda's retries come with backoff, and one probe
//!   record at a time tells when the dependency is back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::streams::KinesisBatchItemFailure;
use futures_util::stream::{self, StreamExt as _};
use tracing::Instrument as _;

use crate::classify::{Classify, Dependency};
use crate::clock;
use crate::consumer::{Consumer, Position};
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::idempotency::{self, Attempt, Entry, Guard, IdempotencyStore, IdempotencyTimes, Ticket};
use crate::lambda_event::{BatchRecord, KinesisBatch, SequenceNumber};

pub mod breaker;
mod report;

pub use breaker::BreakerPolicy;
use breaker::{Admission, Breakers, Verdict};
pub use report::BatchReport;
use report::Outcome;

/// How many partition keys a batch works on at once unless told otherwise ([`Harness::with_concurrency`]).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// After how many attempts a record that keeps failing (retryably, for its own reasons, or by ending its
/// invocation) is parked unless told otherwise ([`Harness::with_max_attempts`]). The harness parks such a record
/// itself, payload included, so the event source mapping never has to give up on a batch (`template.yaml` lets
/// it retry until the records expire: only an outage holds a shard that long).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// What an invocation keeps for answering: it stops waiting out an open circuit this long before its deadline.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Where the records of a batch came from, and until when its invocation runs.
#[derive(Clone, Copy)]
struct Batch<'a> {
    event_source_arn: &'a Option<String>,
    shard_id: &'a Option<String>,
    deadline_ms: Option<i64>,
}

/// Runs a [`Consumer`] over batches, parking permanent failures in `D`, with idempotency records in `S` if
/// given any ([`Harness::with_idempotency`]).
#[derive(Debug, Clone)]
pub struct Harness<C, D, S = Infallible> {
    consumer: C,
    dead_letters: D,
    guard: Option<Guard<S>>,
    concurrency: usize,
    max_attempts: u32,
    /// Shared by clones: the breakers describe the dependencies, not one harness value.
    breakers: Arc<Breakers>,
}

impl<C: Consumer, D: DeadLetters> Harness<C, D> {
    /// A harness for `consumer`, sending permanent failures to `dead_letters`, without idempotency records:
    /// every record is handled as delivered (at least once).
    pub fn new(consumer: C, dead_letters: D) -> Self {
        Self {
            consumer,
            dead_letters,
            guard: None,
            concurrency: DEFAULT_CONCURRENCY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            breakers: Arc::new(Breakers::new(BreakerPolicy::default())),
        }
    }

    /// The same harness, handling each record under the idempotency protocol with records in `store` (see the
    /// module docs).
    pub fn with_idempotency<S: IdempotencyStore>(
        self,
        store: S,
        times: IdempotencyTimes,
    ) -> Harness<C, D, S> {
        Harness {
            consumer: self.consumer,
            dead_letters: self.dead_letters,
            guard: Some(Guard::new(store, times)),
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
            breakers: self.breakers,
        }
    }
}

impl<C: Consumer, D: DeadLetters, S: IdempotencyStore> Harness<C, D, S> {
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
    /// [`Harness::with_idempotency`]: without them every attempt looks like the first.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The same harness, with circuit breakers following `policy` (default [`BreakerPolicy::default`]).
    pub fn with_breakers(mut self, policy: BreakerPolicy) -> Self {
        self.breakers = Arc::new(Breakers::new(policy));
        self
    }

    /// Handles a batch; see the module docs for the semantics. Claims hold for [`IdempotencyTimes::lock`].
    pub async fn run(&self, batch: KinesisBatch) -> BatchReport {
        self.run_batch(batch, None).await
    }

    /// Handles a batch of an invocation that must end by `deadline_ms` (milliseconds since the Unix epoch, as the
    /// Lambda context gives it): claims expire with the invocation, so if it dies (a timeout, a crash) the
    /// redelivery can claim its records as soon as Lambda retries, not a fixed lock later.
    pub async fn run_until(&self, batch: KinesisBatch, deadline_ms: i64) -> BatchReport {
        self.run_batch(batch, Some(deadline_ms)).await
    }

    async fn run_batch(&self, batch: KinesisBatch, deadline_ms: Option<i64>) -> BatchReport {
        let misplaced = batch.misplaced;
        let KinesisBatch {
            records,
            event_source_arn,
            shard_id,
            ..
        } = batch;
        let origin = Batch {
            event_source_arn: &event_source_arn,
            shard_id: &shard_id,
            deadline_ms,
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

        let mut report = BatchReport {
            misplaced,
            ..BatchReport::default()
        };
        let mut lowest_failure: Option<SequenceNumber> = None;
        let mut keys = stream::iter(by_key)
            .map(|records| self.run_key(records, origin))
            .buffer_unordered(self.concurrency);
        while let Some((partial, failure)) = keys.next().await {
            report.merge(&partial);
            lowest_failure = lowest_failure.into_iter().chain(failure).min();
        }

        if let Some(seq) = lowest_failure {
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(seq.into_string());
            report.response.batch_item_failures.push(failure);
            self.wait_out_open_circuit(deadline_ms).await;
        }
        tracing::info!(
            consumer = self.consumer.name(),
            shard_id = shard_id.as_deref(),
            handled = report.handled,
            skipped = report.skipped,
            misplaced = report.misplaced,
            dead_lettered = report.dead_lettered,
            failed = report.failed,
            held_back = report.held_back,
            duplicates = report.duplicates,
            trace_ids = report.trace_ids.join(" "),
            "batch done"
        );
        report.record_metrics(self.consumer.name());
        report
    }

    /// Before answering with a failure while a breaker is open: wait for it to half-open, within the
    /// invocation's deadline, so that Lambda's retry comes after a backoff instead of at once.
    async fn wait_out_open_circuit(&self, deadline_ms: Option<i64>) {
        let Some(until) = self.breakers.open_until() else {
            return;
        };
        let until = match deadline_ms {
            Some(deadline) => {
                let left = u64::try_from(deadline - clock::now_ms()).unwrap_or(0);
                let latest = tokio::time::Instant::now()
                    + Duration::from_millis(left).saturating_sub(ANSWER_MARGIN);
                until.min(latest)
            }
            None => until,
        };
        tracing::info!(
            consumer = self.consumer.name(),
            wait_ms = until
                .saturating_duration_since(tokio::time::Instant::now())
                .as_millis() as u64,
            "circuit open: waiting before Lambda retries"
        );
        tokio::time::sleep_until(until).await;
    }

    /// The records of one partition key, in order, until one fails retryably or a breaker stops the batch: the
    /// rest are held back. Returns the key's counts and the sequence number to redeliver from, if any.
    async fn run_key(
        &self,
        records: Vec<BatchRecord>,
        batch: Batch<'_>,
    ) -> (BatchReport, Option<SequenceNumber>) {
        let mut report = BatchReport::default();
        let total = records.len();
        for (done, record) in records.into_iter().enumerate() {
            let sequence_number = record.sequence_number.clone();
            let admission = self.breakers.admit().await;
            if admission == Admission::Stop {
                report.held_back += total - done;
                return (report, Some(sequence_number));
            }
            let (outcome, verdict) = self.record(record, batch, &mut report).await;
            self.breakers.record(verdict, admission == Admission::Probe);
            report.count(outcome);
            if outcome == Outcome::Failed {
                report.held_back += total - done - 1;
                return (report, Some(sequence_number));
            }
        }
        (report, None)
    }

    /// One record: decode, filter, claim, handle, complete or release (see the module docs). Returns what became
    /// of it, and what that says about its dependencies.
    async fn record(
        &self,
        record: BatchRecord,
        batch: Batch<'_>,
        report: &mut BatchReport,
    ) -> (Outcome, Verdict) {
        let name = self.consumer.name();
        let BatchRecord {
            sequence_number,
            sub_sequence_number,
            partition_key,
            arrival,
            envelope,
        } = record;
        // A letter about this record, at its place in the batch.
        let place = |mut letter: DeadLetter| {
            letter.event_source_arn.clone_from(batch.event_source_arn);
            letter.shard_id.clone_from(batch.shard_id);
            letter.sequence_number = sequence_number.clone();
            letter.sub_sequence_number = sub_sequence_number;
            letter.partition_key.clone_from(&partition_key);
            letter
        };
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err((err, payload)) => {
                let letter = DeadLetter {
                    consumer: name,
                    event_source: None,
                    event_id: None,
                    event_type: None,
                    reason: err.to_string(),
                    attempts: 1,
                    payload,
                    event_source_arn: None,
                    shard_id: None,
                    sequence_number: SequenceNumber::default(),
                    sub_sequence_number: None,
                    partition_key: String::new(),
                };
                return self.dead_letter(place(letter)).await;
            }
        };
        // Replayed records are counted apart, whatever becomes of them (most are duplicates by design).
        if envelope.replay().is_some() {
            report.replayed += 1;
        }
        let ty = envelope.event_type();
        if !self.consumer.subscriptions().contains(&ty) {
            tracing::debug!(
                consumer = name,
                event_type = ty.as_str(),
                "skipped: not subscribed"
            );
            return (Outcome::Skipped, Verdict::Inconclusive);
        }
        // On the stack: no allocation per record for a field most records never log.
        let trace_hex = envelope.traceparent().map(|t| t.trace_id().to_hex());
        let trace_id = trace_hex.as_ref().map(|t| t.as_str());
        // A span naming the record's event and trace, so that every line about it (the harness's and the
        // consumer's own) says which. Only when per-record lines are logged (DEBUG), or around a warning or a
        // parked record (`record_scope`): at INFO a span per record would cost a quarter of the batch
        // (`make bench ARGS=logs`).
        let record_span = || {
            let span = tracing::info_span!(
                "record",
                event_id = envelope.id(),
                source = envelope.source(),
                event_type = ty.as_str(),
                trace_id = tracing::field::Empty,
            );
            if let Some(trace_id) = trace_id {
                span.record("trace_id", trace_id);
            }
            span
        };
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            record_span()
        } else {
            tracing::Span::none()
        };
        let spanned = !span.is_disabled();
        // The span for a rare line about this record (a warning, a dead letter): the record span, unless the
        // record is already in it.
        let record_scope = || {
            if !spanned {
                record_span()
            } else {
                tracing::Span::none()
            }
        };
        async {
        let letter = |reason: String, attempts: u32| {
            place(DeadLetter::of_event(name, &envelope, reason, attempts))
        };
        // The claim: skip what was done, wait for what is being done, refuse a reused id.
        let ticket = match &self.guard {
            None => None,
            Some(guard) => {
                let key = idempotency::event_key(name, envelope.source(), envelope.id());
                let hash = idempotency::payload_hash(&envelope.content_bytes());
                let notes = place_notes(ty.as_str(), &partition_key, batch, (&sequence_number, sub_sequence_number), arrival);
                match guard.claim(key, hash, batch.deadline_ms, notes).await {
                    Ok(Entry::Acquired(ticket)) => Some(ticket),
                    Ok(Entry::Completed) => {
                        tracing::debug!(consumer = name, "duplicate: already handled");
                        return (Outcome::Duplicate, Verdict::Inconclusive);
                    }
                    Ok(Entry::InProgress) => {
                        record_scope().in_scope(|| {
                            tracing::warn!(consumer = name, "in progress elsewhere; retried later");
                        });
                        return (Outcome::Failed, Verdict::Inconclusive);
                    }
                    Ok(Entry::Conflict) => {
                        let reason = "event id reused with a different payload".to_owned();
                        return self
                            .dead_letter(letter(reason, 1))
                            .instrument(record_scope())
                            .await;
                    }
                    Err(err) => {
                        record_scope().in_scope(|| {
                            tracing::warn!(
                                consumer = name,
                                error = %err,
                                "idempotency store failed; retried later"
                            );
                        });
                        return (Outcome::Failed, Verdict::Failed(Dependency::IDEMPOTENCY));
                    }
                }
            }
        };
        let attempt = ticket.as_ref().map_or(1, Ticket::attempt);
        if attempt > self.max_attempts {
            // Each earlier claim ended without an outcome (no completion, no release): the record crashes or
            // times out its invocation. Park it unhandled rather than let it hold its shard forever.
            let reason = format!(
                "not handled again: its last {} attempts ended without an outcome (the invocation crashed or \
                 timed out)",
                attempt - 1
            );
            let parked = self
                .dead_letter(letter(reason, attempt - 1))
                .instrument(record_scope())
                .await;
            if let Some(ticket) = ticket {
                self.finish_parked(ticket, parked.0, Attempt::Keep).await;
            }
            return parked;
        }
        // Handled: completed. Failed retryably: released for the redelivery. Failed for good: released too, once
        // the dead letter is stored, so that a redrive after the fix is handled, not skipped as done (a
        // redelivery by Lambda parks it again; `tubes-dlq redrive` puts such twins back once).
        // A held claim is kept alive while the consumer works; without records, the consumer just works.
        let started = std::time::Instant::now();
        let position = Position {
            partition_key: &partition_key,
            sequence_number: &sequence_number,
        };
        let handled = match &ticket {
            Some(ticket) => {
                ticket
                    .hold(self.consumer.handle_at(&envelope, position))
                    .await
            }
            None => self.consumer.handle_at(&envelope, position).await,
        };
        let mut release = Attempt::Keep;
        let outcome = match handled {
            Ok(()) => {
                let now = clock::now_secs();
                report.time(
                    arrival.map(|a| (now - a) * 1000.0),
                    (now - clock::seconds(envelope.time())) * 1000.0,
                    started.elapsed().as_secs_f64() * 1000.0,
                );
                if let Some(ticket) = ticket {
                    ticket.complete().await;
                }
                if let Some(trace_id) = trace_id {
                    report.traced(trace_id);
                }
                tracing::debug!(consumer = name, "handled");
                return (Outcome::Handled, Verdict::Handled);
            }
            Err(err) => match (err.is_retryable(), err.dependency()) {
                (true, Some(dependency)) => {
                    // A dependency's failure: not this record's. It is retried, never parked for it, and the
                    // attempt does not count.
                    record_scope().in_scope(|| {
                        tracing::warn!(
                            consumer = name,
                            sequence_number = %sequence_number,
                            dependency = dependency.name(),
                            error = %err,
                            "dependency failed: the record and later records of its key will be redelivered"
                        );
                    });
                    release = Attempt::Forget;
                    (Outcome::Failed, Verdict::Failed(dependency))
                }
                (true, None) if ticket.is_some() && attempt >= self.max_attempts => {
                    // It kept failing: park it with its payload rather than let it hold its key back until the
                    // event source mapping gives up on the whole batch.
                    let reason = format!("gave up after {attempt} attempts: {err}");
                    self.dead_letter(letter(reason, attempt))
                        .instrument(record_scope())
                        .await
                }
                (true, None) => {
                    record_scope().in_scope(|| {
                        tracing::warn!(
                            consumer = name,
                            sequence_number = %sequence_number,
                            attempt,
                            error = %err,
                            "retryable failure: the record and later records of its key will be redelivered"
                        );
                    });
                    (Outcome::Failed, Verdict::Inconclusive)
                }
                (false, _) => {
                    self.dead_letter(letter(err.to_string(), attempt))
                        .instrument(record_scope())
                        .await
                }
            },
        };
        if let Some(ticket) = ticket {
            self.finish_parked(ticket, outcome.0, release).await;
        }
        outcome
        }
        .instrument(span)
        .await
    }

    /// Gives a claim back after a record was not handled: parked (its record names the dead-letter queue, for
    /// the event-status view) if it was dead-lettered, else released for the redelivery.
    async fn finish_parked(&self, ticket: Ticket<'_, S>, outcome: Outcome, release: Attempt) {
        if outcome == Outcome::DeadLettered {
            ticket.park(self.dead_letters.destination()).await;
        } else {
            ticket.release(release).await;
        }
    }

    /// Sends a dead letter: [`Outcome::DeadLettered`] when it is stored, else [`Outcome::Failed`] (never drop a
    /// record: if it cannot be parked, it is retried), a failure of the dead-letter port.
    async fn dead_letter(&self, letter: DeadLetter) -> (Outcome, Verdict) {
        match self.dead_letters.send(letter).await {
            Ok(()) => (Outcome::DeadLettered, Verdict::Inconclusive),
            Err(err) => {
                tracing::warn!(consumer = self.consumer.name(), error = %err, "dead letter not stored; retrying record");
                (Outcome::Failed, Verdict::Failed(Dependency::DEAD_LETTERS))
            }
        }
    }
}

/// What a consumer's idempotency record says about its event (the event-status view reads it): the type, and
/// where and when the stream took the record.
fn place_notes(
    event_type: &str,
    partition_key: &str,
    batch: Batch<'_>,
    (sequence_number, sub_sequence_number): (&SequenceNumber, Option<u64>),
    arrival: Option<f64>,
) -> Vec<(&'static str, String)> {
    let mut notes = vec![
        ("event_type", event_type.to_owned()),
        ("partition_key", partition_key.to_owned()),
        ("sequence_number", sequence_number.as_str().to_owned()),
    ];
    if let Some(sub) = sub_sequence_number {
        notes.push(("sub_sequence_number", sub.to_string()));
    }
    if let Some(shard) = batch.shard_id {
        notes.push(("shard_id", shard.clone()));
    }
    if let Some(seconds) = arrival {
        // Kinesis gives arrival in seconds with millisecond precision.
        notes.push(("arrival_ms", format!("{:.0}", seconds * 1000.0)));
    }
    notes
}

#[cfg(test)]
mod tests;
