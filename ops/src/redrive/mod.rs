//! Redrive: the records of a queue's messages go back onto their stream ([`stream`]) or straight to a consumer
//! function ([`function`]); a message is deleted only once all of its records got there. An on-failure entry
//! names a range of its shard, read back here while the stream retains it.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use tubes_platform::lambda_event::{KinesisBatchInfo, SequenceNumber, StreamRecord};

use crate::entry::{Entry, Message};
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
    /// Records that got there and were parked again right away (a new dead letter or on-failure entry on this
    /// queue names them), with why: the redrive did not fix them. Filled by
    /// [`DeadLetterQueue::redrive_to_function`] (one look once the function answered: the consumer harness parks
    /// a record before it answers) and by [`DeadLetterQueue::watch_parked_again`].
    pub parked_again: Vec<String>,
    /// The records that got there, as a message written later would name them.
    pub(crate) sent: Vec<Sent>,
    /// The queue's messages when the redrive began (a message parked again is another one).
    pub(crate) seen: HashSet<String>,
}

impl RedriveReport {
    /// Whether everything got there and nothing was parked again (as far as it was watched).
    pub fn is_success(&self) -> bool {
        self.kept.is_empty() && self.parked_again.is_empty()
    }

    /// How many records got there (each once).
    pub fn sent(&self) -> usize {
        self.sent.len()
    }
}

/// A record a redrive got there, as a dead letter or an on-failure entry written after the redrive would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    /// How the report names it (its event, or its original place).
    pub(crate) label: String,
    /// Its event (source, id), when known.
    pub(crate) event: Option<(String, String)>,
    /// Where it is now (shard, sequence number, sub-sequence number; `None`: any event of the record). A record
    /// handed to a function keeps its place; one put back onto the stream has a new one.
    pub(crate) place: Option<(String, SequenceNumber, Option<u64>)>,
}

impl Sent {
    /// Why `message` says this record was parked again, if it does.
    fn parked_as(&self, message: &Message) -> Option<String> {
        match &message.entry {
            Entry::Letter(l) => {
                let same_event = matches!(
                    (&self.event, &l.event_source, &l.event_id),
                    (Some((source, id)), Some(s), Some(i)) if source == s && id == i
                );
                let same_place = match (&self.place, &l.shard_id) {
                    (Some((shard, seq, sub)), Some(s)) => {
                        shard == s
                            && *seq == *l.sequence_number.as_str()
                            && (sub.is_none() || *sub == l.sub_sequence_number)
                    }
                    _ => false,
                };
                (same_event || same_place).then(|| {
                    format!(
                        "parked again by {} after {} attempt(s): {}",
                        l.consumer, l.attempts, l.reason
                    )
                })
            }
            Entry::OnFailure { batch, condition } => {
                let (shard, seq, _) = self.place.as_ref()?;
                let (start, end) = (
                    SequenceNumber::from(batch.start_sequence_number.as_str()),
                    SequenceNumber::from(batch.end_sequence_number.as_str()),
                );
                (*shard == batch.shard_id && start <= *seq && *seq <= end).then(|| {
                    format!(
                        "the event source mapping gave up on it again ({})",
                        condition.as_ref().map_or("no condition", |c| c.as_str())
                    )
                })
            }
            Entry::Unknown(_) => None,
        }
    }
}

impl DeadLetterQueue {
    /// Watches the queue for the records `report` got there being parked again (a dead letter or an on-failure
    /// entry that names one, on a message that was not on the queue when the redrive began), until each one is or
    /// `wait` has passed (zero: one look), and fills [`RedriveReport::parked_again`]. After a redrive onto the
    /// stream the consumers take their time: `wait` should cover their polling and retries.
    pub async fn watch_parked_again(
        &self,
        report: &mut RedriveReport,
        wait: Duration,
    ) -> Result<(), OpsError> {
        if report.sent.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + wait;
        let mut found: Vec<Option<String>> = vec![None; report.sent.len()];
        loop {
            for message in self.list().await? {
                if report.seen.contains(&message.id) {
                    continue;
                }
                for (sent, found) in report.sent.iter().zip(found.iter_mut()) {
                    if found.is_none() {
                        *found = sent
                            .parked_as(&message)
                            .map(|why| format!("{}: {why} (message {})", sent.label, message.id));
                    }
                }
            }
            if found.iter().all(Option::is_some) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        report.parked_again = found.into_iter().flatten().collect();
        Ok(())
    }
}

/// How a dead letter's record is named in a report: its event, else its place.
pub(crate) fn letter_label(letter: &tubes_platform::dead_letters::DeadLetterMessage) -> String {
    match (&letter.event_source, &letter.event_id) {
        (Some(source), Some(id)) => format!("event {source} {id}"),
        _ => record_label(
            letter.shard_id.as_deref().unwrap_or("-"),
            &letter.sequence_number,
            letter.sub_sequence_number,
        ),
    }
}

/// How a record is named in a report: its place.
pub(crate) fn record_label(shard: &str, sequence_number: &str, sub: Option<u64>) -> String {
    match sub {
        Some(sub) => format!("record {shard} {sequence_number}/{sub}"),
        None => format!("record {shard} {sequence_number}"),
    }
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
