//! The idempotency protocol, written once, over any [`IdempotencyStore`]: claim → act → complete or release.
//!
//! [`Guard::claim`] asks the store for the key and answers an [`Entry`]: a [`Ticket`] to do the work under (its
//! attempt number counts the claims so far), or why not: done already, in progress elsewhere, or a conflict. The
//! holder then either [`Ticket::complete`]s (done: the key is skipped for the TTL) or [`Ticket::release`]s (not
//! done: the next claim may take it at once, and counts on). A holder that dies does neither; its claim expires
//! after its lock. A failure to complete or release is logged, never the caller's failure: the work is done (or
//! not) whatever the record says, and the lock bounds what a lost write costs.
//!
//! The lock is short ([`IdempotencyTimes::lock`], shortened to the caller's deadline, never below [`MIN_LOCK`]),
//! and a holder doing long work keeps it by [`Ticket::hold`], which extends it while the work runs: a live holder
//! never loses its claim, and a dead one's claim ends one lock after it died. A claimant with a deadline that
//! finds the key in progress waits for it, within its deadline ([`Guard::claim`]): a record held by a crashed
//! invocation is handled as soon as the claim expires, without spending the event source mapping's retries.

use std::future::Future;
use std::time::Duration;

use super::{Attempt, Claim, IdempotencyStore, Notes, StoreError};
use crate::clock;

/// The shortest lock a claim gets, however close its deadline.
pub const MIN_LOCK: Duration = Duration::from_secs(1);

/// What a claimant that waits for a key in progress keeps of its deadline for the work itself.
pub const WORK_MARGIN: Duration = Duration::from_secs(3);

/// The longest pause between two looks at a key in progress.
const MAX_POLL: Duration = Duration::from_secs(1);

/// How long claims and completed records last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyTimes {
    /// A claim's lock when no deadline shortens it: how long a dead holder's claim blocks the key. A live holder
    /// keeps it however long its work takes ([`Ticket::hold`]); work done without holding must fit in it.
    pub lock: Duration,
    /// How long a completed (or released) record is remembered (default 24 h): the work is skipped within it.
    pub ttl: Duration,
}

impl Default for IdempotencyTimes {
    fn default() -> Self {
        Self {
            lock: Duration::from_secs(10),
            ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The protocol over the store `S`, with its times.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    store: S,
    times: IdempotencyTimes,
}

/// What a claim found.
#[derive(Debug)]
pub enum Entry<'g, S> {
    /// The caller holds the key: do the work, then complete or release the ticket.
    Acquired(Ticket<'g, S>),
    /// The work was done: skip it.
    Completed,
    /// Another holder has the key: retry later.
    InProgress,
    /// The key is bound to another payload: a permanent failure.
    Conflict,
}

/// A held claim. Finish it with [`Ticket::complete`] or [`Ticket::release`]; dropped unfinished, it holds the
/// key until its lock expires (as a crash would).
#[derive(Debug)]
#[must_use = "a claim holds its key until it is completed or released"]
pub struct Ticket<'g, S> {
    guard: &'g Guard<S>,
    key: String,
    hash: String,
    attempt: u32,
    notes: Vec<(&'static str, String)>,
}

impl<S: IdempotencyStore> Guard<S> {
    /// The protocol over `store`, with `times`.
    pub fn new(store: S, times: IdempotencyTimes) -> Self {
        Self { store, times }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The times.
    pub fn times(&self) -> IdempotencyTimes {
        self.times
    }

    /// The lock a claim made at `now_ms` takes: the guard's lock, shortened to what remains until `deadline_ms`
    /// (milliseconds since the Unix epoch), never below [`MIN_LOCK`].
    pub fn lock(&self, now_ms: i64, deadline_ms: Option<i64>) -> Duration {
        let most = self.times.lock.max(MIN_LOCK);
        match deadline_ms {
            None => most,
            Some(deadline) => {
                let remaining = u64::try_from(deadline.saturating_sub(now_ms)).unwrap_or(0);
                Duration::from_millis(remaining).clamp(MIN_LOCK, most)
            }
        }
    }

    /// Claims `key` for work whose content hashes to `hash` ([`super::payload_hash`]), until `deadline_ms` if
    /// the caller has one (see [`Guard::lock`]). A caller with a deadline that finds the key in progress looks
    /// again, backing off, as long as [`WORK_MARGIN`] of its deadline would be left for the work: a holder that
    /// died frees the key within one lock, and a live one completes (the key is then done) or releases it.
    /// `notes` go on the record ([`Notes`]): a record keeps its first attempt's.
    pub async fn claim(
        &self,
        key: String,
        hash: String,
        deadline_ms: Option<i64>,
        notes: Vec<(&'static str, String)>,
    ) -> Result<Entry<'_, S>, StoreError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let entry = self.claim_once(&key, &hash, deadline_ms, &notes).await?;
            let Some(deadline) = deadline_ms else {
                return Ok(self.entry(entry, key, hash, notes));
            };
            let waited_until = clock::now_ms()
                + i64::try_from((pause + WORK_MARGIN).as_millis()).unwrap_or(i64::MAX);
            if entry != Claim::InProgress || waited_until > deadline {
                return Ok(self.entry(entry, key, hash, notes));
            }
            tracing::debug!(key = %key, pause_ms = pause.as_millis(), "in progress elsewhere; waiting for it");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn claim_once(
        &self,
        key: &str,
        hash: &str,
        deadline_ms: Option<i64>,
        notes: &Notes,
    ) -> Result<Claim, StoreError> {
        let now = clock::now_ms();
        self.store
            .claim(key, hash, now, self.lock(now, deadline_ms), notes)
            .await
    }

    fn entry(
        &self,
        claim: Claim,
        key: String,
        hash: String,
        notes: Vec<(&'static str, String)>,
    ) -> Entry<'_, S> {
        match claim {
            Claim::Acquired { attempt } => Entry::Acquired(Ticket {
                guard: self,
                key,
                hash,
                attempt,
                notes,
            }),
            Claim::Completed => Entry::Completed,
            Claim::InProgress => Entry::InProgress,
            Claim::Conflict => Entry::Conflict,
        }
    }
}

impl<S: IdempotencyStore> Ticket<'_, S> {
    /// Which claim of the key this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Runs `work` while keeping the claim: its lock is extended every half lock until `work` ends, so a live
    /// holder keeps the key however long the work takes. (A failed extension is logged: the claim may then lapse
    /// and another claimant do the work again, as after a crash.)
    pub async fn hold<T>(&self, work: impl Future<Output = T>) -> T {
        let lock = self.guard.times.lock.max(MIN_LOCK);
        let keep = async {
            #[allow(clippy::infinite_loop)]
            loop {
                tokio::time::sleep(lock / 2).await;
                if let Err(err) = self
                    .guard
                    .store
                    .extend(&self.key, &self.hash, clock::now_ms(), lock)
                    .await
                {
                    tracing::warn!(key = %self.key, error = %err, "claim not extended: it may lapse while the work runs");
                }
            }
        };
        let work = std::pin::pin!(work);
        let keep = std::pin::pin!(keep);
        match futures_util::future::select(work, keep).await {
            futures_util::future::Either::Left((done, _)) => done,
            // The keeper never ends; should it, the work still finishes.
            futures_util::future::Either::Right(((), work)) => work.await,
        }
    }

    /// The work is done: the key is skipped for the TTL.
    pub async fn complete(self) {
        self.finish(None, None).await;
    }

    /// The work is not done: the key may be claimed again at once, by the same payload only. With
    /// [`Attempt::Forget`], this attempt does not count (a dependency failed, not the work).
    pub async fn release(self, attempt: Attempt) {
        self.finish(Some(attempt), None).await;
    }

    /// The work was parked in the dead-letter queue `queue`: released (its attempt counts), and the record says
    /// where it went until a redrive claims it again.
    pub async fn park(self, queue: &str) {
        self.finish(Some(Attempt::Keep), Some(queue)).await;
    }

    async fn finish(self, released: Option<Attempt>, parked: Option<&str>) {
        let (store, ttl, now) = (&self.guard.store, self.guard.times.ttl, clock::now_ms());
        let done = released.is_none();
        let written = match released {
            None => {
                store
                    .complete(&self.key, &self.hash, self.attempt, now, ttl, &self.notes)
                    .await
            }
            Some(attempt) => {
                store
                    .release(&self.key, &self.hash, now, ttl, attempt, parked)
                    .await
            }
        };
        if let Err(err) = written {
            if done {
                tracing::warn!(key = %self.key, error = %err, "done, but not recorded as done: it may be done again after the lock");
            } else {
                tracing::warn!(key = %self.key, error = %err, "claim not released: it is free again after its lock");
            }
        }
    }
}
