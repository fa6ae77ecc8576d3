//! Dead letters you can act on. A consumer's dead-letter queue holds two kinds of message:
//!
//! - **dead letters** ([`DeadLetterMessage`], `kind: tubes.dead_letter`): one poison record, parked by the consumer
//!   harness with its full payload, the reason, the consumer, the shard and the sequence number;
//! - **on-failure entries** of the event source mapping (`KinesisBatchInfo`): a batch whose retries ran out, as a
//!   shard and a sequence range only. Redriving one fetches those records from the stream, which works while the
//!   stream still retains them (24 h by default, `RetentionHours`).
//!
//! [`DeadLetterQueue::list`] reads the queue without consuming it. [`DeadLetterQueue::redrive`] puts the records
//! back onto their stream (under their partition key, so their consumers see them again, after the records
//! written since) and deletes each message only once Kinesis acknowledged its records. Consumers that already
//! handled a record skip it by its idempotency record; the consumer that parked it handles it again, so redrive
//! after the fix.

use std::collections::HashSet;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use serde::Deserialize;
use tubes_shared::dlq::{DeadLetterMessage, KIND};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// An AWS call failed.
    #[error("{operation}: {message}")]
    Aws {
        /// The call.
        operation: &'static str,
        /// The SDK's error, with its context.
        message: String,
    },
    /// A message cannot be redriven (its records are gone, its body is not one of ours).
    #[error("message {id}: {reason}")]
    Message {
        /// The SQS message id.
        id: String,
        /// Why.
        reason: String,
    },
}

fn aws<E: std::error::Error + 'static>(operation: &'static str, err: E) -> OpsError {
    // The SDK's Display is terse; its error context says what the service answered.
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    OpsError::Aws { operation, message }
}

/// The event source mapping's on-failure entry: where a failed batch was, not its records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    /// The shard.
    pub shard_id: String,
    /// The batch's first record.
    pub start_sequence_number: String,
    /// The batch's last record.
    pub end_sequence_number: String,
    /// How many records the batch held.
    pub batch_size: usize,
    /// The stream.
    pub stream_arn: String,
}

/// One message of a dead-letter queue, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record the consumer harness parked.
    Letter(DeadLetterMessage),
    /// A batch the event source mapping gave up on.
    OnFailure {
        /// Where the batch was.
        batch: BatchInfo,
        /// Why the mapping gave up (`RetryAttemptsExhausted`, `RecordAgeExceeded`…), if it said.
        condition: Option<String>,
    },
    /// Neither: left alone.
    Unknown(String),
}

impl Entry {
    /// Reads a message body.
    pub fn parse(body: &str) -> Self {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
            return Entry::Unknown("not JSON".into());
        };
        if value["kind"] == KIND {
            return match serde_json::from_value(value) {
                Ok(letter) => Entry::Letter(letter),
                Err(e) => Entry::Unknown(format!("a dead letter without {e}")),
            };
        }
        if let Some(info) = value.get("KinesisBatchInfo") {
            return match serde_json::from_value(info.clone()) {
                Ok(batch) => Entry::OnFailure {
                    batch,
                    condition: value["requestContext"]["condition"]
                        .as_str()
                        .map(str::to_owned),
                },
                Err(e) => Entry::Unknown(format!("an on-failure entry without {e}")),
            };
        }
        Entry::Unknown("neither a dead letter nor an on-failure entry".into())
    }

    /// A one-line summary, without payload (it may hold personal data).
    pub fn summary(&self) -> String {
        match self {
            Entry::Letter(l) => format!(
                "dead letter  consumer={} event={} type={} shard={} seq={} reason={}",
                l.consumer,
                l.event_id.as_deref().unwrap_or("-"),
                l.event_type.as_deref().unwrap_or("-"),
                l.shard_id.as_deref().unwrap_or("-"),
                l.sequence_number,
                l.reason
            ),
            Entry::OnFailure { batch, condition } => format!(
                "on-failure   stream={} shard={} seq={}..{} records={} condition={}",
                stream_name(&batch.stream_arn),
                batch.shard_id,
                batch.start_sequence_number,
                batch.end_sequence_number,
                batch.batch_size,
                condition.as_deref().unwrap_or("-")
            ),
            Entry::Unknown(why) => format!("unknown      {why}"),
        }
    }
}

/// A queue message: its id, its receive count and what it holds.
#[derive(Debug, Clone)]
pub struct Message {
    /// The SQS message id.
    pub id: String,
    /// How many times it was received (a message listed often was looked at, not lost).
    pub receive_count: u32,
    /// The body, read.
    pub entry: Entry,
    /// The body as it is.
    pub body: String,
    receipt_handle: String,
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    /// Dead letters put back onto their stream.
    pub letters: usize,
    /// Records of on-failure ranges put back onto their stream.
    pub range_records: usize,
    /// Messages about a record already redriven in this run (a record parked twice): deleted.
    pub duplicates: usize,
    /// Messages left on the queue, with why.
    pub kept: Vec<String>,
}

/// The stream name of a stream ARN (`arn:aws:kinesis:…:stream/NAME`).
pub fn stream_name(arn: &str) -> &str {
    arn.rsplit_once("stream/").map_or(arn, |(_, name)| name)
}

/// A consumer's dead-letter queue, and the streams its records came from.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    sqs: aws_sdk_sqs::Client,
    kinesis: aws_sdk_kinesis::Client,
    url: String,
}

impl DeadLetterQueue {
    /// The queue at `url`.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        kinesis: aws_sdk_kinesis::Client,
        url: impl Into<String>,
    ) -> Self {
        Self {
            sqs,
            kinesis,
            url: url.into(),
        }
    }

    /// The queue named or addressed by `queue` (a URL, or a name looked up).
    pub async fn find(
        sqs: aws_sdk_sqs::Client,
        kinesis: aws_sdk_kinesis::Client,
        queue: &str,
    ) -> Result<Self, OpsError> {
        let url = if queue.starts_with("http://") || queue.starts_with("https://") {
            queue.to_owned()
        } else {
            sqs.get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| aws("GetQueueUrl", e))?
                .queue_url
                .unwrap_or_default()
        };
        Ok(Self::new(sqs, kinesis, url))
    }

    /// Reads every message, holding each out of sight for `hide_secs` (0: others see them at once).
    async fn receive_all(&self, hide_secs: i32) -> Result<Vec<Message>, OpsError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(hide_secs)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                )
                .send()
                .await
                .map_err(|e| aws("ReceiveMessage", e))?;
            let mut new = 0;
            for m in got.messages() {
                let id = m.message_id().unwrap_or_default().to_owned();
                if !seen.insert(id.clone()) {
                    continue;
                }
                new += 1;
                let body = m.body().unwrap_or_default().to_owned();
                out.push(Message {
                    receive_count: m
                        .attributes()
                        .and_then(|a| {
                            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                        })
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0),
                    entry: Entry::parse(&body),
                    body,
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    id,
                });
            }
            // Nothing new: every message was seen (with a visibility of 0 they come back again and again).
            if new == 0 {
                return Ok(out);
            }
        }
    }

    /// Every message, left on the queue.
    pub async fn list(&self) -> Result<Vec<Message>, OpsError> {
        self.receive_all(0).await
    }

    /// Puts the records of every message (or only of message `only`) back onto their stream, and deletes each
    /// message once its records are acknowledged. `stream` overrides the stream the message names.
    pub async fn redrive(
        &self,
        only: Option<&str>,
        stream: Option<&str>,
    ) -> Result<RedriveReport, OpsError> {
        let mut report = RedriveReport::default();
        let mut done: HashSet<(String, String)> = HashSet::new();
        // Out of sight while being redriven: a second operator does not redrive them too.
        for message in self.receive_all(300).await? {
            if only.is_some_and(|id| id != message.id) {
                self.show_again(&message).await?;
                continue;
            }
            let outcome = match &message.entry {
                Entry::Letter(letter) => {
                    let key = (letter.consumer.clone(), letter.sequence_number.clone());
                    if done.contains(&key) {
                        report.duplicates += 1;
                        Ok(())
                    } else {
                        let name = stream
                            .or(letter.event_source_arn.as_deref().map(stream_name))
                            .ok_or_else(|| OpsError::Message {
                                id: message.id.clone(),
                                reason: "no stream: pass one".into(),
                            });
                        match name {
                            Ok(name) => {
                                self.put_letter(name, letter, &message.id).await.map(|()| {
                                    done.insert(key);
                                    report.letters += 1;
                                })
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
                Entry::OnFailure { batch, .. } => {
                    let name = stream.unwrap_or(stream_name(&batch.stream_arn));
                    self.put_range(name, batch, &message.id)
                        .await
                        .map(|n| report.range_records += n)
                }
                Entry::Unknown(why) => Err(OpsError::Message {
                    id: message.id.clone(),
                    reason: why.clone(),
                }),
            };
            match outcome {
                Ok(()) => {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(&message.receipt_handle)
                        .send()
                        .await
                        .map_err(|e| aws("DeleteMessage", e))?;
                }
                Err(e) => {
                    report.kept.push(e.to_string());
                    self.show_again(&message).await?;
                }
            }
        }
        Ok(report)
    }

    /// Makes a message visible again at once.
    async fn show_again(&self, message: &Message) -> Result<(), OpsError> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| aws("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn put_letter(
        &self,
        stream: &str,
        letter: &DeadLetterMessage,
        id: &str,
    ) -> Result<(), OpsError> {
        let data = letter.payload().map_err(|e| OpsError::Message {
            id: id.to_owned(),
            reason: format!("payload is not base64: {e}"),
        })?;
        self.kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(&letter.partition_key)
            .data(Blob::new(data))
            .send()
            .await
            .map_err(|e| aws("PutRecord", e))?;
        Ok(())
    }

    /// Fetches the records `batch` names from its shard and puts them back, in order; how many.
    async fn put_range(
        &self,
        stream: &str,
        batch: &BatchInfo,
        id: &str,
    ) -> Result<usize, OpsError> {
        let records = self
            .fetch_range(stream_name(&batch.stream_arn), batch, id)
            .await?;
        let mut last_per_key: std::collections::HashMap<String, String> = Default::default();
        for (key, data) in &records {
            let mut put = self
                .kinesis
                .put_record()
                .stream_name(stream)
                .partition_key(key)
                .data(Blob::new(data.clone()));
            // Same key, same order as before.
            if let Some(previous) = last_per_key.get(key) {
                put = put.sequence_number_for_ordering(previous);
            }
            let out = put.send().await.map_err(|e| aws("PutRecord", e))?;
            last_per_key.insert(key.clone(), out.sequence_number().to_owned());
        }
        Ok(records.len())
    }

    /// The records from `start` to `end` of the batch's shard: (partition key, data).
    async fn fetch_range(
        &self,
        source_stream: &str,
        batch: &BatchInfo,
        id: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, OpsError> {
        let mut iterator = self
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
        let mut out = Vec::new();
        while let Some(it) = iterator {
            let page = self
                .kinesis
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .map_err(|e| aws("GetRecords", e))?;
            for r in page.records() {
                if tubes_shared::harness::sequence_lt(
                    &batch.end_sequence_number,
                    r.sequence_number(),
                ) {
                    return Ok(out);
                }
                out.push((
                    r.partition_key().unwrap_or_default().to_owned(),
                    r.data().as_ref().to_vec(),
                ));
            }
            let caught_up = page.millis_behind_latest() == Some(0) && page.records().is_empty();
            if caught_up {
                break;
            }
            iterator = page.next_shard_iterator;
        }
        // The range's end was never reached: its records are gone (past retention) or the range is wrong.
        let reached = out.len();
        if reached == 0 {
            return Err(OpsError::Message {
                id: id.to_owned(),
                reason: format!(
                    "no records from {} on {}: past the stream's retention?",
                    batch.start_sequence_number, batch.shard_id
                ),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kinds_of_message_and_leaves_others_alone() {
        let letter = r#"{"kind":"tubes.dead_letter","consumer":"signups","event_source_arn":"arn:aws:kinesis:us-east-1:000000000000:stream/tubes-EventStream","shard_id":"shardId-000000000000","sequence_number":"1","partition_key":"u1","event_id":"e1","event_type":"user.signed_up","reason":"invalid event","payload_base64":"e30="}"#;
        let Entry::Letter(l) = Entry::parse(letter) else {
            panic!("a dead letter")
        };
        assert_eq!(
            (l.consumer.as_str(), l.payload().unwrap()),
            ("signups", b"{}".to_vec())
        );

        let on_failure = r#"{"requestContext":{"condition":"RetryAttemptsExhausted"},"KinesisBatchInfo":{"shardId":"shardId-000000000001","startSequenceNumber":"10","endSequenceNumber":"12","batchSize":3,"streamArn":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}}"#;
        let entry = Entry::parse(on_failure);
        let Entry::OnFailure { batch, condition } = &entry else {
            panic!("an on-failure entry")
        };
        assert_eq!(condition.as_deref(), Some("RetryAttemptsExhausted"));
        assert_eq!((batch.batch_size, stream_name(&batch.stream_arn)), (3, "s"));
        assert!(entry.summary().contains("seq=10..12"));

        for body in ["nope", "{}", r#"{"kind":"tubes.dead_letter"}"#] {
            assert!(matches!(Entry::parse(body), Entry::Unknown(_)), "{body}");
        }
        assert!(
            !Entry::parse(letter).summary().contains("e30="),
            "no payload in a summary"
        );
    }
}
