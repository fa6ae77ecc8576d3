//! The event source mapping's decisions, as a pure state machine: what to do after each invocation of a batch.
//!
//! A *lane* (a shard, or one of its `ParallelizationFactor` sub-lanes) owns a queue of [`Work`]: batches of records
//! waiting to be (re)delivered, in order. [`decide`] takes the front batch and what its invocation returned and
//! answers what AWS's Kinesis event source mapping does:
//!
//! | Invocation result | Effect |
//! |---|---|
//! | success, `null`, `{}`, or an empty / null `batchItemFailures` | whole batch checkpointed |
//! | `batchItemFailures` naming sequence numbers of the batch | records before the lowest one checkpointed; the rest retried (one retry attempt), or with `BisectBatchOnFunctionError` bisected from that record (no attempt spent) |
//! | a failure with an empty, missing or unknown `itemIdentifier`, or a response that is not JSON | whole-batch failure |
//! | function error or timeout | whole-batch failure |
//! | an instance of the function ended during the invocation (locally: `dev.sh` reports it) | function error, as Lambda's "Runtime exited"; locally every invocation of that function then in flight fails, not only the ended instance's (the consumers' idempotency makes the retry harmless) |
//! | whole-batch failure, `BisectBatchOnFunctionError`, more than one record | split in two halves, retried in order, **no retry attempt spent** |
//! | whole-batch failure otherwise | retried (one retry attempt) |
//! | more retries than `MaximumRetryAttempts` | batch to the on-failure destination (`RetryAttemptsExhausted`), then skipped |
//! | records older than `MaximumRecordAgeInSeconds` before an attempt | to the on-failure destination (`RecordAgeExceeded`), then skipped |
//!
//! Without `ReportBatchItemFailures` in `FunctionResponseTypes` the response body is ignored: any non-error
//! invocation checkpoints the whole batch.

use std::time::Duration;

use tubes_platform::lambda_event::{
    answer, Condition, Invocation, SequenceNumber, StreamRecord, Verdict,
};

/// The retry settings of one event source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// `BisectBatchOnFunctionError`.
    pub bisect: bool,
    /// `MaximumRetryAttempts`; `None` is -1 (retry until the record expires).
    pub max_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds`; `None` is -1 (the stream's retention).
    pub max_record_age: Option<Duration>,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
}

/// A batch to deliver, with its retry state.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The records, in shard order.
    pub records: Vec<StreamRecord>,
    /// Retry attempts spent on these records so far.
    pub retries: u32,
    /// Invocations made with (some of) these records so far.
    pub invocations: u32,
}

impl Work {
    /// A fresh batch.
    pub fn new(records: Vec<StreamRecord>) -> Self {
        Work {
            records,
            retries: 0,
            invocations: 0,
        }
    }
}

/// What the lane does next with its front batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Records checkpointed (processed or given up on), in order.
    pub checkpointed: usize,
    /// Batches that replace the front one, to run in this order (empty: the front batch is finished).
    pub next: Vec<Work>,
    /// Records given up on, with why; they go to the on-failure destination.
    pub dead_letter: Option<(Vec<StreamRecord>, Condition)>,
    /// The invocation failed in some way (counted as a failure in the view).
    pub failed: bool,
    /// How the result was read, for the view: `ok`, `partial`, `error: …`.
    pub summary: String,
}

/// Drops the records older than the policy allows from the front of `work` (they were received first).
/// Returns them, for the on-failure destination. `now` is seconds since the epoch.
pub fn expire(work: &mut Work, policy: &RetryPolicy, now: f64) -> Vec<StreamRecord> {
    let Some(max) = policy.max_record_age else {
        return Vec::new();
    };
    let cutoff = now - max.as_secs_f64();
    let expired = work
        .records
        .iter()
        .take_while(|r| r.arrival < cutoff)
        .count();
    work.records.drain(..expired).collect()
}

/// Reads an invocation result as AWS does ([`tubes_platform::lambda_event::answer`]), with this mapping's
/// `FunctionResponseTypes`.
pub fn verdict(batch: &[StreamRecord], invocation: &Invocation, policy: &RetryPolicy) -> Verdict {
    let sequence_numbers: Vec<&SequenceNumber> = batch.iter().map(|r| &r.sequence_number).collect();
    answer::verdict(
        invocation,
        &sequence_numbers,
        policy.report_batch_item_failures,
    )
}

/// What to do after invoking `work` (the lane's front batch) got `invocation`.
pub fn decide(mut work: Work, invocation: &Invocation, policy: &RetryPolicy) -> Decision {
    work.invocations += 1;
    let total = work.records.len();
    match verdict(&work.records, invocation, policy) {
        Verdict::Success => Decision {
            checkpointed: total,
            next: vec![],
            dead_letter: None,
            failed: false,
            summary: "ok".into(),
        },
        Verdict::FailedFrom(i) => {
            let rest = work.records.split_off(i);
            let summary = format!(
                "partial: {i} ok, retry from …{}",
                rest[0].sequence_number.tail(6)
            );
            if policy.bisect && rest.len() > 1 {
                // Bisect at the reported record: the rest is split as a failed batch would be, so a record that
                // always fails ends up alone and the records after it are delivered.
                return bisect(i, rest, &work, summary);
            }
            let retry = Work {
                records: rest,
                retries: work.retries + 1,
                invocations: work.invocations,
            };
            retry_or_give_up(i, retry, policy, summary)
        }
        Verdict::BatchFailure(why) => {
            if policy.bisect && total > 1 {
                let records = std::mem::take(&mut work.records);
                return bisect(0, records, &work, why);
            }
            let retry = Work {
                records: work.records,
                retries: work.retries + 1,
                invocations: work.invocations,
            };
            retry_or_give_up(0, retry, policy, why)
        }
    }
}

/// Splits `records` in two halves, retried in order with the retry count they had: bisecting spends no attempt.
fn bisect(done: usize, mut records: Vec<StreamRecord>, work: &Work, why: String) -> Decision {
    let second = records.split_off(records.len() / 2);
    let summary = format!("{why}; bisect {} + {}", records.len(), second.len());
    let half = |records| Work {
        records,
        retries: work.retries,
        invocations: work.invocations,
    };
    Decision {
        checkpointed: done,
        next: vec![half(records), half(second)],
        dead_letter: None,
        failed: true,
        summary,
    }
}

fn retry_or_give_up(done: usize, retry: Work, policy: &RetryPolicy, summary: String) -> Decision {
    let exhausted = policy
        .max_retry_attempts
        .is_some_and(|max| retry.retries > max);
    if exhausted {
        let n = retry.records.len();
        Decision {
            checkpointed: done + n,
            next: vec![],
            dead_letter: Some((retry.records, Condition::RetryAttemptsExhausted)),
            failed: true,
            summary: format!("{summary}; retries exhausted, {n} to on-failure"),
        }
    } else {
        Decision {
            checkpointed: done,
            next: vec![retry],
            dead_letter: None,
            failed: true,
            summary,
        }
    }
}

#[cfg(test)]
mod tests;
