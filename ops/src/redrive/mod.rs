//! Redrive: the records of a queue's messages go back onto their stream ([`stream`]) or straight to a consumer
//! function ([`function`]); a message is deleted only once all of its records got there. An on-failure entry
//! names a range of its shard, read back here while the stream retains it.

use std::ops::ControlFlow;

use aws_sdk_kinesis::types::ShardIteratorType;
use tubes_platform::lambda_event::{KinesisBatchInfo, SequenceNumber, StreamRecord};

use crate::error::{aws, OpsError};
use crate::queue::DeadLetterQueue;
use crate::shard::read_to_tip;

mod function;
mod stream;

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    /// Dead letters put back onto their stream (or handled by the function).
    pub letters: usize,
    /// Records of on-failure ranges put back onto their stream (or handled by the function; those of a kept
    /// range too, which its consumer skips by their idempotency records on the next redrive).
    pub range_records: usize,
    /// Messages about a record already redriven in this run (a record parked twice): deleted.
    pub duplicates: usize,
    /// Invocations of the function ([`DeadLetterQueue::redrive_to_function`]; 0 onto a stream).
    pub invocations: usize,
    /// Messages left on the queue, with why.
    pub kept: Vec<String>,
}

impl DeadLetterQueue {
    /// The records from `start` to `end` of the batch's shard, in order.
    pub(crate) async fn fetch_range(
        &self,
        source_stream: &str,
        batch: &KinesisBatchInfo,
        id: &str,
    ) -> Result<Vec<StreamRecord>, OpsError> {
        let iterator = self
            .kinesis
            .get_shard_iterator()
            .stream_name(source_stream)
            .shard_id(&batch.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&batch.start_sequence_number)
            .send()
            .await
            .map_err(|e| aws("GetShardIterator", e))?
            .shard_iterator;
        let end = SequenceNumber::from(batch.end_sequence_number.as_str());
        let mut out: Vec<StreamRecord> = Vec::new();
        read_to_tip(&self.kinesis, iterator, 1000, |r| {
            let record = StreamRecord::from(r);
            if record.sequence_number > end {
                return ControlFlow::Break(());
            }
            out.push(record);
            ControlFlow::Continue(())
        })
        .await
        .map_err(|e| aws("GetRecords", e))?;
        // All or nothing: the range must be there from its first record to its last. A range cut short (its
        // head trimmed past the stream's retention, or its end never reached) is kept, not half redriven.
        let first = out.first().map(|f| f.sequence_number.as_str());
        let last = out.last().map(|l| l.sequence_number.as_str());
        if first == Some(batch.start_sequence_number.as_str())
            && last == Some(batch.end_sequence_number.as_str())
        {
            return Ok(out);
        }
        let reason = match (first, last) {
            (Some(first), Some(last)) => format!(
                "only part of the range {}..={} on {} is readable ({} records, {first}..={last}): past the \
                 stream's retention? Nothing redriven",
                batch.start_sequence_number,
                batch.end_sequence_number,
                batch.shard_id,
                out.len()
            ),
            _ => format!(
                "no records from {} on {}: past the stream's retention?",
                batch.start_sequence_number, batch.shard_id
            ),
        };
        Err(OpsError::Message {
            id: id.to_owned(),
            reason,
        })
    }
}
