//! The function's answer to a Kinesis event, read as the event source mapping reads it.
//!
//! | The invocation | Verdict |
//! |---|---|
//! | returned `null`, nothing, `{}`, or an empty / null `batchItemFailures` | [`Verdict::Success`] |
//! | returned `batchItemFailures` naming records of the batch | [`Verdict::FailedFrom`] the lowest of them: it and the records after it failed |
//! | returned a failure with an empty, missing or unknown `itemIdentifier`, or a body that is no batch response | [`Verdict::BatchFailure`] |
//! | a function error or a timeout | [`Verdict::BatchFailure`] |
//!
//! Without `ReportBatchItemFailures` in the mapping's `FunctionResponseTypes` the body is not read: any invocation
//! that did not fail succeeded.

use serde::Deserialize;
use serde_json::Value;

/// What an invocation came to, before its body is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function returned this body.
    Returned(Vec<u8>),
    /// The function failed (an error document, a crash), with what it said ([`function_error`]).
    FunctionError(String),
    /// The function did not answer within its timeout.
    TimedOut,
}

/// How an invocation reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The whole batch succeeded.
    Success,
    /// The records from this index of the batch on failed; those before it succeeded.
    FailedFrom(usize),
    /// The whole batch failed, with why.
    BatchFailure(String),
}

/// Reads `invocation` of a batch whose records have `sequence_numbers` (in order), as the event source mapping
/// does (see the module docs); `report_batch_item_failures`: the mapping's `FunctionResponseTypes` has
/// `ReportBatchItemFailures`.
pub fn verdict<S: AsRef<str>>(
    invocation: &Invocation,
    sequence_numbers: &[S],
    report_batch_item_failures: bool,
) -> Verdict {
    let body = match invocation {
        Invocation::FunctionError(e) => {
            return Verdict::BatchFailure(format!("function error: {e}"))
        }
        Invocation::TimedOut => return Verdict::BatchFailure("timed out".into()),
        Invocation::Returned(_) if !report_batch_item_failures => return Verdict::Success,
        Invocation::Returned(body) => body,
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Success;
    }
    let failures = match serde_json::from_slice::<Value>(body) {
        Err(_) => return Verdict::BatchFailure("the answer is not JSON".into()),
        Ok(Value::Null) => return Verdict::Success,
        Ok(Value::Object(mut o)) => match o.remove("batchItemFailures") {
            None | Some(Value::Null) => return Verdict::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return Verdict::BatchFailure("batchItemFailures is not a list".into()),
        },
        Ok(_) => return Verdict::BatchFailure("the answer is not an object".into()),
    };
    let mut lowest: Option<usize> = None;
    for item in &failures {
        let id = item
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .unwrap_or("");
        if id.is_empty() {
            return Verdict::BatchFailure("a batch item failure has no itemIdentifier".into());
        }
        match sequence_numbers.iter().position(|s| s.as_ref() == id) {
            Some(i) => lowest = Some(lowest.map_or(i, |l| l.min(i))),
            None => {
                return Verdict::BatchFailure(format!("itemIdentifier {id} is not in the batch"))
            }
        }
    }
    lowest.map_or(Verdict::Success, Verdict::FailedFrom)
}

/// A function error document's type and message (the function's own words, cut to 200 characters), not the
/// event; `None` if `body` is no Lambda error document (`{"errorType": …, "errorMessage": …}`).
pub fn function_error(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Diagnostic {
        error_type: String,
        #[serde(default)]
        error_message: String,
    }
    let d = serde_json::from_slice::<Diagnostic>(body).ok()?;
    let message: String = d.error_message.chars().take(200).collect();
    Some(format!("{}: {message}", d.error_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: [&str; 3] = ["7", "9", "10"];

    fn returned(body: &str) -> Verdict {
        verdict(
            &Invocation::Returned(body.as_bytes().to_vec()),
            &BATCH,
            true,
        )
    }

    #[test]
    fn nothing_to_report_is_success() {
        for body in [
            "",
            "  ",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert_eq!(returned(body), Verdict::Success, "{body:?}");
        }
    }

    #[test]
    fn the_lowest_reported_record_is_the_checkpoint() {
        let body = r#"{"batchItemFailures":[{"itemIdentifier":"10"},{"itemIdentifier":"9"}]}"#;
        assert_eq!(returned(body), Verdict::FailedFrom(1));
    }

    #[test]
    fn anything_unreadable_fails_the_whole_batch() {
        for body in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"8"}]}"#,
            r#"{"batchItemFailures":"7"}"#,
            "[]",
            "not json",
        ] {
            assert!(
                matches!(returned(body), Verdict::BatchFailure(_)),
                "{body:?}"
            );
        }
        let failed = Invocation::FunctionError("Unhandled".into());
        assert!(matches!(
            verdict(&failed, &BATCH, true),
            Verdict::BatchFailure(_)
        ));
        assert!(matches!(
            verdict(&Invocation::TimedOut, &BATCH, false),
            Verdict::BatchFailure(_)
        ));
    }

    #[test]
    fn without_report_batch_item_failures_the_body_is_not_read() {
        let body =
            Invocation::Returned(br#"{"batchItemFailures":[{"itemIdentifier":"9"}]}"#.to_vec());
        assert_eq!(verdict(&body, &BATCH, false), Verdict::Success);
    }

    #[test]
    fn a_function_error_names_its_type_not_the_event() {
        let doc = br#"{"errorType":"PaymentsError","errorMessage":"ledger unavailable"}"#;
        assert_eq!(
            function_error(doc).as_deref(),
            Some("PaymentsError: ledger unavailable")
        );
        assert_eq!(function_error(b"Internal Server Error"), None);
    }
}
