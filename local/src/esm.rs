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
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn recs(n: usize) -> Vec<StreamRecord> {
        (0..n)
            .map(|i| StreamRecord {
                sequence_number: SequenceNumber::from(format!("{:056}", i + 1)),
                partition_key: "k".into(),
                data: vec![],
                arrival: 1000.0 + i as f64,
            })
            .collect()
    }

    fn policy(bisect: bool, retries: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            bisect,
            max_retry_attempts: retries,
            max_record_age: None,
            report_batch_item_failures: true,
        }
    }

    fn ret(body: &str) -> Invocation {
        Invocation::Returned(body.as_bytes().to_vec())
    }

    fn failures<S: AsRef<str>>(seqs: &[S]) -> Invocation {
        let items: Vec<String> = seqs
            .iter()
            .map(|s| format!(r#"{{"itemIdentifier":"{}"}}"#, s.as_ref()))
            .collect();
        ret(&format!(r#"{{"batchItemFailures":[{}]}}"#, items.join(",")))
    }

    #[test]
    fn empty_responses_are_success() {
        let b = recs(3);
        let p = policy(false, Some(2));
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert_eq!(verdict(&b, &ret(body), &p), Verdict::Success, "{body:?}");
        }
    }

    #[test]
    fn lowest_reported_sequence_number_is_the_checkpoint() {
        let b = recs(5);
        let s = |i: usize| b[i].sequence_number.clone();
        let v = verdict(&b, &failures(&[&s(3), &s(1), &s(4)]), &policy(false, None));
        assert_eq!(v, Verdict::FailedFrom(1));
        let d = decide(
            Work::new(b.clone()),
            &failures(&[&s(3), &s(1)]),
            &policy(false, Some(5)),
        );
        assert_eq!(d.checkpointed, 1);
        assert_eq!(d.next.len(), 1);
        assert_eq!(
            d.next[0].records,
            b[1..].to_vec(),
            "redelivered from that record, nothing after it lost"
        );
        assert_eq!(d.next[0].retries, 1);
    }

    #[test]
    fn empty_or_unknown_identifiers_fail_the_whole_batch() {
        let b = recs(2);
        let p = policy(false, None);
        for inv in [
            ret(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            ret(r#"{"batchItemFailures":[{}]}"#),
            failures(&["999"]),
            ret("not json"),
            ret(r#"{"batchItemFailures":"x"}"#),
            Invocation::FunctionError("boom".into()),
            Invocation::TimedOut,
        ] {
            assert!(
                matches!(verdict(&b, &inv, &p), Verdict::BatchFailure(_)),
                "{inv:?}"
            );
        }
    }

    #[test]
    fn without_report_batch_item_failures_the_body_is_ignored() {
        let b = recs(2);
        let p = RetryPolicy {
            report_batch_item_failures: false,
            ..policy(false, None)
        };
        assert_eq!(
            verdict(&b, &failures(&[&b[0].sequence_number]), &p),
            Verdict::Success
        );
        assert!(matches!(
            verdict(&b, &Invocation::TimedOut, &p),
            Verdict::BatchFailure(_)
        ));
    }

    #[test]
    fn bisect_splits_down_to_the_bad_record_without_spending_retries() {
        // Record 5 of 8 always makes the function fail; everything else succeeds.
        let p = policy(true, Some(1));
        let bad = recs(8)[5].sequence_number.clone();
        let mut queue = vec![Work::new(recs(8))];
        let (mut done, mut dead, mut invocations) = (0, vec![], 0);
        while let Some(w) = queue.first().cloned() {
            queue.remove(0);
            invocations += 1;
            let inv = if w.records.iter().any(|r| r.sequence_number == bad) {
                Invocation::FunctionError("bad record".into())
            } else {
                ret("")
            };
            let d = decide(w, &inv, &p);
            done += d.checkpointed;
            if let Some((records, cond)) = d.dead_letter {
                assert_eq!(cond, Condition::RetryAttemptsExhausted);
                dead.extend(records);
            }
            for (i, n) in d.next.into_iter().enumerate() {
                queue.insert(i, n);
            }
            assert!(invocations < 50, "terminates");
        }
        assert_eq!(done, 8, "every record checkpointed");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].sequence_number, bad);
        // [0..8] fails; [0..4] ok; [4..8] fails; [4,5] fails; [4] ok; [5] fails, then fails its one retry and goes
        // to on-failure; [6,7] ok. Bisecting spent no retry attempt.
        assert_eq!(invocations, 8);
    }

    #[test]
    fn with_bisect_a_record_that_always_fails_ends_alone_and_the_rest_is_delivered() {
        let p = policy(true, Some(2));
        let b = recs(5);
        let bad = b[1].sequence_number.clone();
        let mut queue = VecDeque::from([Work::new(b)]);
        let (mut delivered, mut dead) = (vec![], vec![]);
        while let Some(w) = queue.pop_front() {
            // The consumer handles records in order up to the bad one and reports it.
            let inv = match w.records.iter().position(|r| r.sequence_number == bad) {
                Some(_) => failures(&[&bad]),
                None => ret(""),
            };
            let upto = w
                .records
                .iter()
                .position(|r| r.sequence_number == bad)
                .unwrap_or(w.records.len());
            let d = decide(w.clone(), &inv, &p);
            delivered.extend(
                w.records[..d.checkpointed.min(upto)]
                    .iter()
                    .map(|r| r.sequence_number.clone()),
            );
            if let Some((records, _)) = d.dead_letter {
                dead.extend(records.into_iter().map(|r| r.sequence_number));
            }
            for n in d.next.into_iter().rev() {
                queue.push_front(n);
            }
        }
        assert_eq!(
            dead,
            vec![bad.clone()],
            "only the bad record goes to on-failure"
        );
        let mut expected: Vec<SequenceNumber> = recs(5)
            .into_iter()
            .map(|r| r.sequence_number)
            .filter(|s| *s != bad)
            .collect();
        delivered.sort();
        expected.sort();
        assert_eq!(
            delivered, expected,
            "every other record is delivered, including those after the bad one"
        );
    }

    #[test]
    fn retries_are_finite_then_on_failure() {
        let p = policy(false, Some(2));
        let mut w = Work::new(recs(3));
        let mut invocations = 0;
        loop {
            invocations += 1;
            let d = decide(w, &Invocation::FunctionError("x".into()), &p);
            if let Some((records, cond)) = d.dead_letter {
                assert_eq!(
                    (records.len(), cond, d.checkpointed),
                    (3, Condition::RetryAttemptsExhausted, 3)
                );
                break;
            }
            w = d.next.into_iter().next().unwrap();
        }
        assert_eq!(
            invocations, 3,
            "the first attempt plus MaximumRetryAttempts retries"
        );
        // -1: retry until the records expire.
        let d = decide(
            Work {
                retries: 10_000,
                ..Work::new(recs(1))
            },
            &Invocation::TimedOut,
            &policy(false, None),
        );
        assert!(d.dead_letter.is_none());
    }

    #[test]
    fn old_records_expire_first() {
        let p = RetryPolicy {
            max_record_age: Some(Duration::from_secs(60)),
            ..policy(false, None)
        };
        let mut w = Work::new(recs(4)); // arrivals 1000..1003
        let expired = expire(&mut w, &p, 1062.5);
        assert_eq!(
            expired.len(),
            3,
            "1000, 1001 and 1002 are more than 60 s old"
        );
        assert_eq!(w.records.len(), 1);
        assert!(
            expire(&mut w, &policy(false, None), 1e12).is_empty(),
            "-1: never"
        );
    }
}
