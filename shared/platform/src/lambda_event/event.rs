//! The Kinesis event Lambda's event source mapping sends a function, member for member
//! (`tests/fixtures/kinesis-event.json`), in both directions.
//!
//! Typed here rather than with `aws_lambda_events`' `KinesisEvent`: that type reads AWS's events well, but writes
//! `approximateArrivalTimestamp` as a JSON string and adds an `encryptionType` member, so what it serialises is not
//! what AWS sends (a test below checks that it still reads ours).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::record::StreamRecord;

/// The Kinesis event of one invocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KinesisEvent {
    /// The records, in shard order.
    #[serde(rename = "Records")]
    pub records: Vec<KinesisEventRecord>,
}

/// One record of a [`KinesisEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisEventRecord {
    /// The record itself.
    pub kinesis: KinesisData,
    /// `aws:kinesis`.
    pub event_source: String,
    /// `1.0`.
    pub event_version: String,
    /// `{shard id}:{sequence number}`.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// `aws:kinesis:record`.
    pub event_name: String,
    /// The function's execution role.
    pub invoke_identity_arn: String,
    /// The stream's region.
    pub aws_region: String,
    /// The stream.
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: String,
}

/// The `kinesis` member of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisData {
    /// `1.0`.
    pub kinesis_schema_version: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The record's sequence number.
    pub sequence_number: String,
    /// The record's data, base64.
    pub data: String,
    /// When Kinesis received it, in seconds since the Unix epoch, millisecond precision (a JSON number).
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

impl BatchSource {
    /// `record` as a member of an event from this source.
    pub fn record(&self, record: &StreamRecord) -> KinesisEventRecord {
        KinesisEventRecord {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0".into(),
                partition_key: record.partition_key.clone(),
                sequence_number: record.sequence_number.to_string(),
                data: base64::engine::general_purpose::STANDARD.encode(&record.data),
                // Lambda states milliseconds.
                approximate_arrival_timestamp: (record.arrival * 1000.0).round() / 1000.0,
            },
            event_source: "aws:kinesis".into(),
            event_version: "1.0".into(),
            event_id: format!("{}:{}", self.shard_id, record.sequence_number),
            event_name: "aws:kinesis:record".into(),
            invoke_identity_arn: self.invoke_identity_arn.clone(),
            aws_region: self.aws_region.clone(),
            event_source_arn: self.event_source_arn.clone(),
        }
    }
}

/// The stream name of a stream ARN (`arn:aws:kinesis:…:stream/NAME`); the ARN itself if it is none.
pub fn stream_name(arn: &str) -> &str {
    arn.rsplit_once("stream/").map_or(arn, |(_, name)| name)
}

/// The region of a stream ARN (`arn:aws:kinesis:REGION:…`), if it names one.
pub fn stream_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// The Lambda Kinesis event for `records` from `source`.
pub fn kinesis_event(source: &BatchSource, records: &[StreamRecord]) -> KinesisEvent {
    KinesisEvent {
        records: records.iter().map(|r| source.record(r)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::lambda_event::SequenceNumber;

    const FIXTURE: &str = include_str!("../../../../tests/fixtures/kinesis-event.json");

    fn fixture_source() -> BatchSource {
        BatchSource {
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/simple-stream".into(),
            shard_id: "shardId-000000000000".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::123456789012:role/LambdaRole".into(),
        }
    }

    fn fixture_records(aws: &Value) -> Vec<StreamRecord> {
        aws["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| StreamRecord {
                sequence_number: SequenceNumber::from(
                    r["kinesis"]["sequenceNumber"].as_str().unwrap(),
                ),
                partition_key: r["kinesis"]["partitionKey"].as_str().unwrap().into(),
                data: b"Hello World".to_vec(),
                arrival: r["kinesis"]["approximateArrivalTimestamp"]
                    .as_f64()
                    .unwrap(),
            })
            .collect()
    }

    #[test]
    fn builds_exactly_what_aws_sends() {
        let aws: Value = serde_json::from_str(FIXTURE).unwrap();
        let event = kinesis_event(&fixture_source(), &fixture_records(&aws));
        assert_eq!(serde_json::to_value(&event).unwrap(), aws);
        // And reads it back, member for member.
        let read: KinesisEvent = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(read, event);
    }

    #[test]
    fn aws_lambda_events_reads_what_we_build() {
        let aws: Value = serde_json::from_str(FIXTURE).unwrap();
        let json =
            serde_json::to_vec(&kinesis_event(&fixture_source(), &fixture_records(&aws))).unwrap();
        let theirs: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_slice(&json).unwrap();
        assert_eq!(theirs.records.len(), 2);
        assert_eq!(
            theirs.records[1].kinesis.sequence_number,
            "49568167373333333334444444444444444444444444444444444444"
        );
        assert_eq!(theirs.records[0].kinesis.data.0, b"Hello World");
        assert_eq!(
            theirs.records[0]
                .kinesis
                .approximate_arrival_timestamp
                .timestamp_millis(),
            1_480_641_523_477
        );
    }

    #[test]
    fn stream_arns_name_their_stream_and_region() {
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/tubes-events";
        assert_eq!(stream_name(arn), "tubes-events");
        assert_eq!(stream_region(arn), Some("eu-west-1"));
        assert_eq!(stream_name("tubes-events"), "tubes-events");
        assert_eq!(stream_region(""), None);
    }
}
