//! Writing a request's records: `PutRecords` in chunks within Kinesis's limits, retrying only the entries that
//! failed, with exponential backoff and full jitter, until a deadline well under API Gateway's 29 s timeout.
//!
//! **Order per partition key holds through retries.** Kinesis keeps the order of the entries of one call only as
//! far as they all succeed: when an entry fails and a later entry of the same key does not, retrying the first puts
//! it behind the second. So a request with several records of one key is written in rounds: the first record of
//! each key, then the second, and so on, each round retried until acknowledged before the next starts; a key whose
//! record was not acknowledged by the deadline gets none of its later records written (they are reported not
//! attempted, to be resent in order). A request whose keys are all distinct is one round, as before.
//!
//! The answer is one [`PutOutcome`] per record, in request order: `Accepted` only for what Kinesis acknowledged
//! with a sequence number. A record whose last attempt failed carries that attempt's error.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use tubes_contract::Record;
use tubes_platform::publish::{
    FailureKind, PublishError, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL,
};
use tubes_platform::{Publisher, PutOutcome};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up retrying once the next attempt would start after this much time.
    pub deadline: Duration,
    /// The first backoff's upper bound; it doubles per attempt.
    pub base: Duration,
    /// The largest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(5),
            base: Duration::from_millis(50),
            cap: Duration::from_secs(1),
        }
    }
}

/// The least time a `PutRecords` call gets, even when the deadline is near.
const MIN_CALL_BUDGET: Duration = Duration::from_millis(500);

/// Splits `pending` (indices into `records`) into calls of at most 500 records and 5 MiB.
fn chunks(records: &[Record], pending: &[usize]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let size = records[i].billed_size();
        if !chunk.is_empty()
            && (chunk.len() == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)
        {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        chunk.push(i);
        bytes += size;
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

/// The rounds of a request: round `r` holds the `r`-th record of each partition key, in request order.
fn rounds(records: &[Record]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let n = seen.entry(r.partition_key.as_str()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

/// Writes `records`; one outcome per record, in order (see the module docs).
pub async fn write_all<P: Publisher>(
    publisher: &P,
    records: &[Record],
    policy: RetryPolicy,
) -> Vec<PutOutcome> {
    write_all_counted(publisher, records, policy).await.0
}

/// [`write_all`], with the number of entries it resent after a failed attempt (the `PutRecordsRetries` metric).
pub async fn write_all_counted<P: Publisher>(
    publisher: &P,
    records: &[Record],
    policy: RetryPolicy,
) -> (Vec<PutOutcome>, usize) {
    let started = Instant::now();
    let mut resent = 0;
    let mut outcomes: Vec<Option<PutOutcome>> = vec![None; records.len()];
    // Keys with a record that was not acknowledged: their later records wait for a resend.
    let mut stopped: HashSet<&str> = HashSet::new();
    // One record (most requests): one round, without grouping by key.
    let rounds = match records.len() {
        1 => vec![vec![0]],
        _ => rounds(records),
    };
    for round in rounds {
        let pending: Vec<usize> = round
            .iter()
            .copied()
            .filter(|&i| !stopped.contains(records[i].partition_key.as_str()))
            .collect();
        resent += write_round(publisher, records, pending, &mut outcomes, started, policy).await;
        for &i in &round {
            if !matches!(outcomes[i], Some(PutOutcome::Accepted { .. })) {
                stopped.insert(records[i].partition_key.as_str());
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(PutOutcome::Failed {
                kind: FailureKind::Unavailable,
                message:
                    "not attempted: an earlier record of its partition key was not acknowledged, \
                          or the deadline passed"
                        .into(),
            })
        })
        .collect();
    (outcomes, resent)
}

/// Writes the records `pending` (distinct keys), retrying the failed ones until the request's deadline (counted
/// from `started`); each one's outcome lands in `outcomes`. Returns how many entries it resent.
async fn write_round<P: Publisher>(
    publisher: &P,
    records: &[Record],
    mut pending: Vec<usize>,
    outcomes: &mut [Option<PutOutcome>],
    started: Instant,
    policy: RetryPolicy,
) -> usize {
    let mut attempt: u32 = 0;
    let mut resent = 0;
    while !pending.is_empty() {
        for chunk in chunks(records, &pending) {
            // First attempts are contiguous runs of `records`: no copy. Retries gather the failed ones.
            let gathered: Vec<Record>;
            let batch: &[Record] = match (chunk.first(), chunk.last()) {
                (Some(&first), Some(&last)) if last - first + 1 == chunk.len() => {
                    &records[first..=last]
                }
                _ => {
                    gathered = chunk.iter().map(|&i| records[i].clone()).collect();
                    &gathered
                }
            };
            // A call that hangs must not hold the request past its deadline; its records count as not
            // acknowledged (the sender retries them, and their ids let consumers drop any duplicate).
            let budget = policy
                .deadline
                .saturating_sub(started.elapsed())
                .max(MIN_CALL_BUDGET);
            let result = tokio::time::timeout(budget, publisher.put_records(batch))
                .await
                .unwrap_or_else(|_| {
                    Err(PublishError::Unavailable(format!(
                        "no answer within {} ms",
                        budget.as_millis()
                    )))
                });
            match result {
                Ok(results) if results.len() == chunk.len() => {
                    for (&i, result) in chunk.iter().zip(results) {
                        outcomes[i] = Some(result);
                    }
                }
                Ok(results) => {
                    let err = PublishError::Protocol(format!(
                        "{} results for {} records",
                        results.len(),
                        chunk.len()
                    ));
                    chunk
                        .iter()
                        .for_each(|&i| outcomes[i] = Some(err.outcome()));
                }
                Err(err) => chunk
                    .iter()
                    .for_each(|&i| outcomes[i] = Some(err.outcome())),
            }
        }
        pending.retain(|&i| !matches!(outcomes[i], Some(PutOutcome::Accepted { .. })));
        if pending.is_empty() {
            break;
        }
        // Full jitter: a random wait up to the exponential bound, so retrying clients spread out.
        let bound = policy
            .base
            .saturating_mul(1 << attempt.min(16))
            .min(policy.cap);
        let wait = bound.mul_f64(fastrand::f64());
        if started.elapsed() + wait >= policy.deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
        resent += pending.len();
    }
    resent
}

#[cfg(test)]
mod tests {
    use tubes_platform::publish::{MemoryFault, MemoryPublisher};

    use super::*;

    fn records(n: usize, size: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                partition_key: format!("k{i}"),
                data: vec![b'x'; size],
            })
            .collect()
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(2),
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn chunks_stay_within_kinesis_limits() {
        let p = MemoryPublisher::default();
        let out = write_all(&p, &records(1_201, 10), fast()).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        assert_eq!(p.calls(), [500, 500, 201]);
        // 12 records of ~1 MiB: 5 per call fit under 5 MiB (the stand-in refuses anything larger).
        let p = MemoryPublisher::default();
        let out = write_all(&p, &records(12, 1_000_000), fast()).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        assert_eq!(p.calls(), [5, 5, 2]);
    }

    #[tokio::test]
    async fn only_failed_entries_are_retried() {
        let p = MemoryPublisher::default();
        p.fail_next(MemoryFault::FailAt(
            vec![1, 3],
            "ProvisionedThroughputExceededException",
        ));
        p.fail_next(MemoryFault::ThrottleCall);
        let out = write_all(&p, &records(5, 10), fast()).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        assert_eq!(
            p.calls(),
            [5, 2, 2],
            "then only the two failed entries, twice"
        );
        // Distinct keys: their relative order does not matter, only each key's own.
        let keys: Vec<String> = p.written().into_iter().map(|r| r.partition_key).collect();
        assert_eq!(keys, ["k0", "k2", "k4", "k1", "k3"]);
    }

    fn keyed(keys: &[&str]) -> Vec<Record> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Record {
                partition_key: (*k).to_owned(),
                data: format!("{k}{i}").into_bytes(),
            })
            .collect()
    }

    fn written_of(p: &MemoryPublisher, key: &str) -> Vec<String> {
        p.written()
            .into_iter()
            .filter(|r| r.partition_key == key)
            .map(|r| String::from_utf8(r.data).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_retry_never_puts_a_record_behind_a_later_one_of_its_key() {
        // Given a batch with three records of key a, and the first write of a's first record failing
        let p = MemoryPublisher::default();
        p.fail_next(MemoryFault::FailAt(
            vec![0],
            "ProvisionedThroughputExceededException",
        ));
        let out = write_all(&p, &keyed(&["a", "a", "b", "a"]), fast()).await;
        // Then every record lands, and a's in request order: one record of a key per call
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        assert_eq!(written_of(&p, "a"), ["a0", "a1", "a3"]);
        assert_eq!(
            p.calls(),
            [2, 1, 1, 1],
            "round 1 (a0, b2), a0 again, a1, a3"
        );
    }

    /// A hot shard: every record of key `a` is throttled, the others are written.
    #[derive(Default)]
    struct HotKeyA(MemoryPublisher);

    impl Publisher for HotKeyA {
        async fn put_records(&self, records: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
            let hot: Vec<usize> = (0..records.len())
                .filter(|&i| records[i].partition_key == "a")
                .collect();
            self.0.fail_next(MemoryFault::FailAt(
                hot,
                "ProvisionedThroughputExceededException",
            ));
            self.0.put_records(records).await
        }
    }

    #[tokio::test]
    async fn a_key_whose_record_never_lands_gets_nothing_after_it_written() {
        let p = HotKeyA::default();
        let policy = RetryPolicy {
            deadline: Duration::from_millis(50),
            ..fast()
        };
        let out = write_all(&p, &keyed(&["a", "b", "a", "b"]), policy).await;
        // a0 never lands: a2 is not attempted (a resend would put it ahead of a0); b's records are written.
        assert!(out[0].is_throttled(), "{:?}", out[0]);
        assert!(
            matches!(&out[2], PutOutcome::Failed { message, .. } if message.contains("not attempted")),
            "{:?}",
            out[2]
        );
        assert!(written_of(&p.0, "a").is_empty());
        assert_eq!(written_of(&p.0, "b"), ["b1", "b3"]);
    }

    #[tokio::test]
    async fn past_the_deadline_failures_are_reported_never_as_accepted() {
        let p = MemoryPublisher::default();
        for _ in 0..1_000 {
            p.fail_next(MemoryFault::FailAt(
                vec![0],
                "ProvisionedThroughputExceededException",
            ));
        }
        let policy = RetryPolicy {
            deadline: Duration::from_millis(50),
            ..fast()
        };
        let out = write_all(&p, &records(3, 10), policy).await;
        assert!(out[0].is_throttled(), "{:?}", out[0]);
        assert!(
            matches!(out[1], PutOutcome::Accepted { .. })
                && matches!(out[2], PutOutcome::Accepted { .. })
        );
        assert_eq!(p.written().len(), 2);
        assert!(p.calls().len() > 2, "it did retry before giving up");
    }

    #[tokio::test]
    async fn entries_resent_after_a_failed_attempt_are_counted() {
        let p = MemoryPublisher::default();
        let (out, resent) = write_all_counted(&p, &records(3, 10), fast()).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        assert_eq!(resent, 0, "nothing failed, nothing resent");
        for _ in 0..2 {
            p.fail_next(MemoryFault::FailAt(
                vec![0, 2],
                "ProvisionedThroughputExceededException",
            ));
        }
        let (out, resent) = write_all_counted(&p, &records(3, 10), fast()).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Accepted { .. })));
        // Call 1: three entries, the first and third throttled; call 2: those two, its first (record 0) throttled
        // again; call 3: record 0, accepted. Resent: 2 + 1.
        assert_eq!(resent, 3);
        assert_eq!(p.calls().len(), 1 + 3);
    }

    /// A stream endpoint that never answers.
    struct Silent;

    impl Publisher for Silent {
        async fn put_records(&self, _: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_ends_at_the_deadline_as_not_acknowledged() {
        let policy = RetryPolicy {
            deadline: Duration::from_secs(3),
            ..fast()
        };
        let started = Instant::now();
        let out = write_all(&Silent, &records(2, 10), policy).await;
        assert!(out.iter().all(|o| matches!(o, PutOutcome::Failed { .. })));
        let took = started.elapsed();
        assert!(
            took >= policy.deadline && took <= policy.deadline + MIN_CALL_BUDGET + policy.cap,
            "{took:?}"
        );
    }
}
