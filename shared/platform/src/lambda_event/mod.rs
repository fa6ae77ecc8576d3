//! Lambda's Kinesis wire contract, in one place: what the event source mapping sends a function, how it reads
//! the function's answer, and what it writes to an on-failure destination. The consumer runtime decodes the
//! event ([`KinesisBatch`]); the local event source mapping emulator, `tubes-dlq` and the tests build it
//! ([`kinesis_event`]) and read answers ([`verdict`]) and on-failure messages ([`OnFailure`]) the same way.
//!
//! - [`record`]: a record as read off a shard ([`StreamRecord`], from `aws_sdk_kinesis`'s), its place in the
//!   shard ([`SequenceNumber`], ordered numerically) and the bytes it adds to an invocation.
//! - [`event`]: the Kinesis event, member for member as AWS sends it.
//! - [`batch`]: the consumer's one-pass decoding of that event into validated envelopes.
//! - [`kpl`]: KPL aggregates, read (records of other producers carrying many user records).
//! - [`answer`]: the function's answer read as the event source mapping reads it.
//! - [`on_failure`]: the message a mapping sends to its on-failure destination when it gives up on a batch.

pub mod answer;
pub mod batch;
pub mod event;
pub mod kpl;
pub mod on_failure;
pub mod record;

pub use answer::{function_error, verdict, Invocation, Verdict};
#[cfg(any(test, feature = "test-util"))]
pub use batch::batch_of;
pub use batch::{
    record_events, BatchRecord, Contents, DecodeError, Decoded, KinesisBatch, PayloadError,
};
pub use event::{kinesis_event, stream_name, stream_region, BatchSource, KinesisEvent};
pub use on_failure::{Condition, KinesisBatchInfo, OnFailure};
pub use record::{SequenceNumber, StreamRecord};

/// The largest invocation payload Lambda accepts (synchronous `Invoke`, and so a mapping's batch): 6 MB.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The largest `BatchSize` a Kinesis event source mapping may have.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// A Kinesis event source mapping's default `BatchSize` (and the template's).
pub const DEFAULT_BATCH_SIZE: usize = 100;

/// What an event adds to its records: `{"Records":[]}`.
const EVENT_OVERHEAD: usize = 14;

/// The size of an event made of `records`, at most (see [`StreamRecord::payload_size`]).
pub fn event_size(records: &[StreamRecord]) -> usize {
    records.iter().fold(
        EVENT_OVERHEAD + records.len().saturating_sub(1),
        |total, r| total.saturating_add(r.payload_size()),
    )
}

/// Cuts a shard's `records` (in sequence order) into invocations of at most `max_records` records and
/// `max_bytes`, as a mapping batches them. A record too large on its own is alone in its chunk: the caller
/// refuses it there ([`event_size`] says so).
pub fn chunks(
    records: &[StreamRecord],
    max_records: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, EVENT_OVERHEAD);
    for (i, record) in records.iter().enumerate() {
        let size = record.payload_size() + usize::from(i > start);
        if i > start && (i - start >= max_records || bytes + size > max_bytes) {
            out.push(start..i);
            (start, bytes) = (i, EVENT_OVERHEAD + record.payload_size());
        } else {
            bytes += size;
        }
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(sizes: &[usize]) -> Vec<StreamRecord> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| StreamRecord {
                sequence_number: SequenceNumber::from(format!("{}", i + 1)),
                partition_key: "k".into(),
                data: vec![b'x'; *n],
                arrival: 1_700_000_000.0,
            })
            .collect()
    }

    #[test]
    fn chunks_respect_both_limits_and_keep_order() {
        let recs = records(&[10; 7]);
        assert_eq!(chunks(&recs, 3, usize::MAX), [0..3, 3..6, 6..7]);
        let one = event_size(&recs[..1]);
        // Two records fit (one comma between them), three do not.
        let two = event_size(&recs[..2]);
        assert_eq!(chunks(&recs[..3], 100, two), [0..2, 2..3]);
        assert!(two < 2 * one);
        // A record over the limit on its own is alone.
        let big = records(&[10, 4_000, 10]);
        assert_eq!(chunks(&big, 100, one + 100), [0..1, 1..2, 2..3]);
        assert!(chunks(&[], 100, MAX_PAYLOAD_BYTES).is_empty());
    }

    #[test]
    fn the_size_bounds_the_serialised_event() {
        let recs = records(&[0, 1, 2, 3, 100, 1000]);
        let source = BatchSource {
            event_source_arn: format!(
                "arn:aws:kinesis:us-east-1:123456789012:stream/{}",
                "s".repeat(128)
            ),
            shard_id: "shardId-000000000000".into(),
            aws_region: "ap-southeast-2".into(),
            invoke_identity_arn: format!("arn:aws:iam::123456789012:role/{}", "r".repeat(64)),
        };
        let json = serde_json::to_vec(&kinesis_event(&source, &recs)).unwrap();
        assert!(
            json.len() <= event_size(&recs),
            "{} > {}",
            json.len(),
            event_size(&recs)
        );
    }
}
