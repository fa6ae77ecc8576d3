//! The message a Kinesis event source mapping sends to its on-failure destination when it gives up on a batch:
//! where the batch was (shard and sequence range), not its records. The local emulator writes it; `tubes-dlq`
//! reads it and fetches the records from the stream while it retains them.

use serde::{Deserialize, Serialize};

use super::record::StreamRecord;
use crate::clock;

/// Why a mapping gave up on a batch (AWS's `requestContext.condition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Condition {
    /// Retried `MaximumRetryAttempts` times.
    RetryAttemptsExhausted,
    /// Older than `MaximumRecordAgeInSeconds`.
    RecordAgeExceeded,
    /// A condition this code does not know, as AWS spelled it.
    Other(String),
}

impl Condition {
    /// AWS's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
            Condition::Other(other) => other,
        }
    }
}

impl From<String> for Condition {
    fn from(s: String) -> Self {
        match s.as_str() {
            "RetryAttemptsExhausted" => Condition::RetryAttemptsExhausted,
            "RecordAgeExceeded" => Condition::RecordAgeExceeded,
            _ => Condition::Other(s),
        }
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> Self {
        c.as_str().to_owned()
    }
}

/// The on-failure message (AWS's shape). Reading is lenient: only `KinesisBatchInfo` must be there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnFailure {
    /// The invocation that failed.
    #[serde(default)]
    pub request_context: RequestContext,
    /// What the function answered.
    #[serde(default)]
    pub response_context: ResponseContext,
    /// `1.0`.
    #[serde(default)]
    pub version: String,
    /// When the mapping gave up (RFC 3339).
    #[serde(default)]
    pub timestamp: String,
    /// Where the batch was.
    #[serde(rename = "KinesisBatchInfo")]
    pub kinesis_batch_info: KinesisBatchInfo,
}

/// The `requestContext` of an [`OnFailure`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// The last invocation's request id.
    #[serde(default)]
    pub request_id: String,
    /// The function.
    #[serde(default)]
    pub function_arn: String,
    /// Why the mapping gave up.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// How many times the batch was invoked.
    #[serde(default)]
    pub approximate_invoke_count: u32,
}

/// The `responseContext` of an [`OnFailure`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    /// The invocation's HTTP status.
    #[serde(default)]
    pub status_code: u16,
    /// `$LATEST` or the version.
    #[serde(default)]
    pub executed_version: String,
    /// `Unhandled`, `Handled`, or empty.
    #[serde(default)]
    pub function_error: String,
}

/// Where a failed batch was: a shard and a sequence range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    /// The shard.
    pub shard_id: String,
    /// The batch's first record.
    pub start_sequence_number: String,
    /// The batch's last record.
    pub end_sequence_number: String,
    /// When the first record reached the stream (RFC 3339).
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
    /// When the last record reached the stream (RFC 3339).
    #[serde(default)]
    pub approximate_arrival_of_last_record: Option<String>,
    /// How many records the batch held.
    pub batch_size: usize,
    /// The stream.
    pub stream_arn: String,
}

impl OnFailure {
    /// The message for `records` (a batch of `shard` of `stream_arn`, in order) that `function_arn` failed
    /// `invocations` times, given up on for `condition`, now.
    pub fn new(
        function_arn: &str,
        stream_arn: &str,
        shard: &str,
        records: &[StreamRecord],
        condition: Condition,
        invocations: u32,
    ) -> Self {
        let (first, last) = (records.first(), records.last());
        let seq =
            |r: Option<&StreamRecord>| r.map(|r| r.sequence_number.to_string()).unwrap_or_default();
        Self {
            request_context: RequestContext {
                request_id: uuid::Uuid::now_v7().to_string(),
                function_arn: function_arn.to_owned(),
                condition: Some(condition),
                approximate_invoke_count: invocations,
            },
            response_context: ResponseContext {
                status_code: 200,
                executed_version: "$LATEST".into(),
                function_error: "Unhandled".into(),
            },
            version: "1.0".into(),
            timestamp: clock::rfc3339(clock::now_secs()),
            kinesis_batch_info: KinesisBatchInfo {
                shard_id: shard.to_owned(),
                start_sequence_number: seq(first),
                end_sequence_number: seq(last),
                approximate_arrival_of_first_record: first.map(|r| clock::rfc3339(r.arrival)),
                approximate_arrival_of_last_record: last.map(|r| clock::rfc3339(r.arrival)),
                batch_size: records.len(),
                stream_arn: stream_arn.to_owned(),
            },
        }
    }

    /// Reads a message body; an error if it is no on-failure message.
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::lambda_event::SequenceNumber;

    fn rec(seq: &str, arrival: f64) -> StreamRecord {
        StreamRecord {
            sequence_number: SequenceNumber::from(seq),
            partition_key: "k".into(),
            data: vec![],
            arrival,
        }
    }

    #[test]
    fn has_aws_shape_and_reads_back() {
        let recs = [rec("10", 1_700_000_000.5), rec("12", 1_700_000_001.0)];
        let message = OnFailure::new(
            "arn:f",
            "arn:s",
            "shardId-000000000001",
            &recs,
            Condition::RetryAttemptsExhausted,
            3,
        );
        let p: Value = serde_json::to_value(&message).unwrap();
        assert_eq!(p["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(p["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(p["responseContext"]["functionError"], "Unhandled");
        let info = &p["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000001");
        assert_eq!(
            (
                info["startSequenceNumber"].as_str(),
                info["endSequenceNumber"].as_str()
            ),
            (Some("10"), Some("12"))
        );
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["streamArn"], "arn:s");
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(OnFailure::parse(&p.to_string()).unwrap(), message);
    }

    #[test]
    fn reads_aws_messages_leniently() {
        // As AWS documents it, with a condition this code does not know.
        let body = r#"{"requestContext":{"requestId":"c9b8fa9f","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:myfunc","condition":"SomethingNew","approximateInvokeCount":1},
            "responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2019-11-14T00:38:06.021Z",
            "KinesisBatchInfo":{"shardId":"shardId-000000000001","startSequenceNumber":"49601189658422359378836298521827638475320189012309704722",
            "endSequenceNumber":"49601189658422359378836298522902373528957594348623495186","approximateArrivalOfFirstRecord":"2019-11-14T00:38:04.835Z",
            "approximateArrivalOfLastRecord":"2019-11-14T00:38:05.580Z","batchSize":500,"streamArn":"arn:aws:kinesis:us-east-1:123456789012:stream/mystream"}}"#;
        let m = OnFailure::parse(body).unwrap();
        assert_eq!(
            m.request_context.condition,
            Some(Condition::Other("SomethingNew".into()))
        );
        assert_eq!(m.kinesis_batch_info.batch_size, 500);
        // Only the batch info is required.
        let bare = r#"{"KinesisBatchInfo":{"shardId":"s","startSequenceNumber":"1","endSequenceNumber":"2","batchSize":2,"streamArn":"arn"}}"#;
        assert_eq!(
            OnFailure::parse(bare).unwrap().request_context.condition,
            None
        );
        assert!(OnFailure::parse(r#"{"kind":"tubes.dead_letter"}"#).is_err());
    }
}
