//! One place that hands records straight to a consumer function as the event source mapping would: a synchronous
//! `Invoke` with the Kinesis event, its answer read as the mapping reads it ([`verdict`]). Redrive to a function
//! and replay to a function both send this way.

use aws_sdk_lambda::types::InvocationType;
use tubes_platform::lambda_event::{
    function_error, kinesis_event, verdict, BatchSource, Invocation, SequenceNumber, StreamRecord,
    Verdict,
};

use crate::error::aws;

/// What one invocation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Every record handled.
    Handled,
    /// The function reported this sequence number (the lowest it reported) failed: it and the records after it
    /// are not handled.
    FailedFrom(SequenceNumber),
    /// None handled, and why.
    Failed(String),
    /// The function does not exist.
    Missing,
}

/// Whether Invoke failed because there is no such function: Lambda's `ResourceNotFoundException`, or the 404
/// `cargo lambda watch` answers for a binary it does not have.
fn function_missing(
    err: &aws_sdk_lambda::error::SdkError<aws_sdk_lambda::operation::invoke::InvokeError>,
) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.is_resource_not_found_exception())
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404)
}

/// Invokes `function` synchronously with the `records` of one shard from `source`, and reads the answer as the
/// event source mapping does.
pub(crate) async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    source: &BatchSource,
    records: &[StreamRecord],
) -> Answer {
    let payload = match serde_json::to_vec(&kinesis_event(source, records)) {
        Ok(payload) => payload,
        Err(e) => return Answer::Failed(format!("the event did not serialise: {e}")),
    };
    let sent = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send()
        .await;
    let invocation = match sent {
        Ok(out) => {
            let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
            match out.function_error() {
                Some(kind) => Invocation::FunctionError(format!(
                    "{kind}; {}",
                    function_error(body).as_deref().unwrap_or("no diagnostic")
                )),
                None => Invocation::Returned(body.to_vec()),
            }
        }
        Err(err) if function_missing(&err) => return Answer::Missing,
        Err(err) => {
            // `cargo lambda watch` answers a function error with a 500 and the error document, not Lambda's 200
            // and `X-Amz-Function-Error` (so the SDK has retried it as a server error).
            let local = err
                .raw_response()
                .filter(|r| r.status().is_server_error())
                .and_then(|r| r.body().bytes())
                .and_then(function_error);
            match local {
                Some(summary) => Invocation::FunctionError(summary),
                None => return Answer::Failed(aws("Invoke", err).to_string()),
            }
        }
    };
    let sequence_numbers: Vec<&SequenceNumber> =
        records.iter().map(|r| &r.sequence_number).collect();
    match verdict(&invocation, &sequence_numbers, true) {
        Verdict::Success => Answer::Handled,
        Verdict::FailedFrom(i) => Answer::FailedFrom(records[i].sequence_number.clone()),
        Verdict::BatchFailure(why) => Answer::Failed(why),
    }
}
