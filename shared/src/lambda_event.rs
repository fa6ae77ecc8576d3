//! Building the Kinesis event JSON that Lambda's event source mapping sends, from records read off a stream.
//!
//! Used wherever tubes plays the part of the event source mapping: the integration tests (records read back
//! with `GetRecords`) and the local stack. The shape is AWS's, member for member.

use base64::Engine as _;
use serde_json::{json, Value};

/// One record as read from a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// The record's sequence number.
    pub sequence_number: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The record's data (raw bytes; base64-encoded in the event).
    pub data: Vec<u8>,
    /// When Kinesis received it, in seconds since the epoch (millisecond precision).
    pub approximate_arrival_timestamp: f64,
}

/// Where a batch comes from, shared by its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSource {
    /// `arn:aws:kinesis:{region}:{account}:stream/{name}`.
    pub event_source_arn: String,
    /// The shard, e.g. `shardId-000000000000`.
    pub shard_id: String,
    /// The region, e.g. `us-east-1`.
    pub aws_region: String,
    /// The function's execution role ARN.
    pub invoke_identity_arn: String,
}

/// The Lambda Kinesis event for `records` from `source`.
pub fn kinesis_event(source: &BatchSource, records: &[StreamRecord]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.approximate_arrival_timestamp,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", source.shard_id, r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": source.invoke_identity_arn,
                "awsRegion": source.aws_region,
                "eventSourceARN": source.event_source_arn,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A decoded batch of `events` (CloudEvents JSON), as one shard would deliver them: partition key = `subject`,
/// sequence numbers 1, 2, …. For consumer tests and tools; `events` that do not serialise are skipped.
pub fn batch_of(events: &[Value]) -> crate::harness::KinesisBatch {
    let records: Vec<StreamRecord> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            Some(StreamRecord {
                sequence_number: format!("{:056}", i + 1),
                partition_key: e
                    .get("subject")
                    .and_then(Value::as_str)
                    .unwrap_or("none")
                    .to_owned(),
                data: serde_json::to_vec(e).ok()?,
                approximate_arrival_timestamp: 1_795_000_000.0,
            })
        })
        .collect();
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes-consumer".into(),
    };
    serde_json::from_value(kinesis_event(&source, &records)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/kinesis-event.json");

    #[test]
    fn builds_exactly_what_aws_sends() {
        let aws: Value = serde_json::from_str(FIXTURE).unwrap();
        let source = BatchSource {
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/simple-stream".into(),
            shard_id: "shardId-000000000000".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::123456789012:role/LambdaRole".into(),
        };
        let records: Vec<StreamRecord> = aws["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| StreamRecord {
                sequence_number: r["kinesis"]["sequenceNumber"].as_str().unwrap().into(),
                partition_key: r["kinesis"]["partitionKey"].as_str().unwrap().into(),
                data: b"Hello World".to_vec(),
                approximate_arrival_timestamp: r["kinesis"]["approximateArrivalTimestamp"]
                    .as_f64()
                    .unwrap(),
            })
            .collect();
        assert_eq!(kinesis_event(&source, &records), aws);
    }
}
