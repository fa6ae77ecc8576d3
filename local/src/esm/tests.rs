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
