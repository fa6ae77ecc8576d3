//! The answer for what Kinesis did with each event: `202` when it acknowledged every one, `207` with each event's
//! outcome when it acknowledged some, `429` / `503` when none. Every answer but `202` lists the id of each event
//! that was not acknowledged: a call whose answer was lost may have written it, so the sender resends it under
//! that id and consumers count it once.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use tubes_contract::Envelope;
use tubes_platform::PutOutcome;

use crate::error::{self, IngestError, Unacknowledged};
use crate::http::Kind;

/// One accepted event in a `202` / `207` body.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    shard_id: &'a str,
    sequence_number: &'a str,
}

/// One event Kinesis did not acknowledge, in a `207` body.
#[derive(Debug, Serialize)]
struct Failed<'a> {
    index: usize,
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    error: ItemError<'a>,
}

#[derive(Debug, Serialize)]
struct ItemError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct WriteBody<'a> {
    accepted: Vec<Accepted<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<Failed<'a>>,
}

/// The answer for what Kinesis did with each record.
pub fn respond(
    kind: Kind,
    envelopes: &[Envelope],
    outcomes: &[PutOutcome],
) -> Result<Response<Body>, IngestError> {
    let index = |i: usize| (kind == Kind::Batch).then_some(i);
    let mut accepted = Vec::new();
    let mut failed = Vec::new();
    let mut throttled_only = true;
    for (i, (e, outcome)) in envelopes.iter().zip(outcomes).enumerate() {
        match outcome {
            PutOutcome::Accepted {
                shard_id,
                sequence_number,
            } => {
                tracing::debug!(
                    event_id = e.id(),
                    event_type = e.event_type().as_str(),
                    trace_id = e.traceparent().map(|t| t.trace_id().to_string()),
                    shard_id = %shard_id,
                    sequence_number = %sequence_number,
                    "accepted"
                );
                accepted.push(Accepted {
                    index: index(i),
                    id: e.id(),
                    event_type: e.event_type().as_str(),
                    shard_id,
                    sequence_number,
                });
            }
            PutOutcome::Failed { kind, message } => {
                throttled_only &= outcome.is_throttled();
                tracing::warn!(event_id = e.id(), ?kind, kinesis_message = %message, "not accepted");
                let (code, message) = if outcome.is_throttled() {
                    (
                        "throttled",
                        "the event stream is over capacity; resend this event with this id",
                    )
                } else {
                    (
                        "stream_unavailable",
                        "the event stream did not acknowledge this event (it may have been written); resend \
                         it with this id",
                    )
                };
                failed.push(Failed {
                    index: i,
                    id: e.id(),
                    event_type: e.event_type().as_str(),
                    error: ItemError { code, message },
                });
            }
        }
    }
    if accepted.is_empty() {
        let detail = format!("none of {} records acknowledged", outcomes.len());
        // A call whose answer was lost may have written any of them: the sender resends each under its id.
        let events = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| Unacknowledged {
                index: index(i),
                id: e.id().to_owned(),
                event_type: e.event_type().as_str(),
            })
            .collect();
        return Err(if throttled_only {
            IngestError::Throttled { detail, events }
        } else {
            IngestError::Unavailable { detail, events }
        });
    }
    let status = if failed.is_empty() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut response = json_response(status, &WriteBody { accepted, failed });
    if status == StatusCode::MULTI_STATUS {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(error::RETRY_AFTER_SECONDS),
        );
    }
    Ok(response)
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(json) => {
            let mut response = Response::new(Body::Text(json));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => IngestError::Internal(err.to_string()).into_response(),
    }
}
