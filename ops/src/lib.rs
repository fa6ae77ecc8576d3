//! Dead letters you can act on. A consumer's dead-letter queue holds two kinds of message:
//!
//! - **dead letters** ([`DeadLetterMessage`], `kind: tubes.dead_letter`): one poison record, parked by the consumer
//!   harness with its full payload, the reason, the consumer, the shard and the sequence number;
//! - **on-failure entries** of the event source mapping (`KinesisBatchInfo`): a batch whose retries ran out, as a
//!   shard and a sequence range only. Redriving one fetches those records from the stream, which works while the
//!   stream still retains them (24 h by default, `RetentionHours`).
//!
//! [`DeadLetterQueue::list`] reads the queue without consuming it. A redrive sends the records to one of two
//! places, and deletes each message only once all of its records got there:
//!
//! - [`DeadLetterQueue::redrive`]: back onto their stream (under their partition key, so every consumer of the
//!   stream sees them again, after the records written since), once Kinesis acknowledged them;
//! - [`DeadLetterQueue::redrive_to_function`]: straight to one consumer function, as the Kinesis event the event
//!   source mapping would send (synchronous `Invoke`, in sequence order per shard, at most
//!   [`MAX_INVOKE_RECORDS`] records and [`MAX_INVOKE_BYTES`] per invocation), once the function handled them:
//!   the other consumers of the stream do not see them twice. The function's `batchItemFailures` count as the
//!   event source mapping counts them: a record at or after the lowest reported sequence number is not redriven,
//!   and a function error or a failed `Invoke` fails its whole invocation; a shard stops at its first failure,
//!   so a key's records are never handled out of order.
//!
//! Consumers that already handled a record skip it by its idempotency record; the consumer that parked it handles
//! it again, so redrive after the fix.

use std::collections::{HashMap, HashSet};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_lambda::types::InvocationType;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tubes_shared::dlq::{DeadLetterMessage, KIND};
use tubes_shared::harness::sequence_lt;

/// The Lambda SDK, re-exported: [`DeadLetterQueue::redrive_to_function`] takes its client.
pub use aws_sdk_lambda;

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
    /// The function to redrive to does not exist (nothing was redriven to it).
    #[error(
        "function {function} not found: name the consumer's function (locally its binary, \
         e.g. tubes-consumer-signups)"
    )]
    FunctionNotFound {
        /// The name given.
        function: String,
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

/// The most records one invocation carries (the event source mapping's default `BatchSize`, as the template's).
pub const MAX_INVOKE_RECORDS: usize = 100;

/// The largest synchronous `Invoke` payload Lambda accepts, in bytes (6 MB).
pub const MAX_INVOKE_BYTES: usize = 6 * 1024 * 1024;

/// The stream name of a stream ARN (`arn:aws:kinesis:…:stream/NAME`).
pub fn stream_name(arn: &str) -> &str {
    arn.rsplit_once("stream/").map_or(arn, |(_, name)| name)
}

/// How long `list` hides the messages it has read while it reads the rest (they are then made visible again;
/// should `list` die, they reappear after this).
const LIST_HIDE_SECS: i32 = 30;

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
                // Long polling asks every SQS server, so an empty answer means an empty queue (short polling
                // samples a few). Only when hiding: with a visibility of 0 the same messages come back at once.
                .wait_time_seconds(if hide_secs > 0 { 1 } else { 0 })
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

    /// Every message, left on the queue. Each receive hides what it returned for a moment so that the next one
    /// returns other messages (receiving with a visibility of 0, SQS may return the same few again and again on
    /// a large queue, and the listing would end early); then every message is made visible again.
    pub async fn list(&self) -> Result<Vec<Message>, OpsError> {
        let messages = self.receive_all(LIST_HIDE_SECS).await?;
        for chunk in messages.chunks(10) {
            self.show_all_again(chunk).await?;
        }
        Ok(messages)
    }

    /// Makes up to 10 messages visible again, in one call.
    async fn show_all_again(&self, messages: &[Message]) -> Result<(), OpsError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| OpsError::Aws {
                        operation: "ChangeMessageVisibilityBatch",
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // An entry that fails stays hidden for LIST_HIDE_SECS at most, then reappears by itself.
        self.sqs
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws("ChangeMessageVisibilityBatch", e))?;
        Ok(())
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
                Ok(()) => self.delete(&message).await?,
                Err(e) => {
                    report.kept.push(e.to_string());
                    self.show_again(&message).await?;
                }
            }
        }
        Ok(report)
    }

    /// Hands the records of every message (or only of message `only`) straight to `function`, as the Kinesis
    /// event the event source mapping would send, and deletes each message once the function handled all of its
    /// records (see the crate docs for what counts as handled). The stream is only read (an on-failure range):
    /// other consumers of it do not see the records again. A record parked twice is handed over once.
    ///
    /// A function that does not exist is [`OpsError::FunctionNotFound`], with every message left on the queue.
    pub async fn redrive_to_function(
        &self,
        only: Option<&str>,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
    ) -> Result<RedriveReport, OpsError> {
        let mut report = RedriveReport::default();
        let mut work = Work::default();
        let mut prepared = Vec::new();
        // Out of sight while being redriven: a second operator does not redrive them too.
        for message in self.receive_all(300).await? {
            if only.is_some_and(|id| id != message.id) {
                self.show_again(&message).await?;
                continue;
            }
            let records = match &message.entry {
                Entry::Letter(letter) => letter_record(letter, &message.id).map(|r| vec![r]),
                Entry::OnFailure { batch, .. } => self
                    .fetch_range(stream_name(&batch.stream_arn), batch, &message.id)
                    .await
                    .map(|records| {
                        records
                            .into_iter()
                            .map(|r| Pending::of_range(batch, r))
                            .collect()
                    }),
                Entry::Unknown(why) => Err(OpsError::Message {
                    id: message.id.clone(),
                    reason: why.clone(),
                }),
            };
            let letter = matches!(message.entry, Entry::Letter(_));
            let records = records.map(|records| {
                records
                    .into_iter()
                    .map(|r| work.add(r, letter))
                    .collect::<Vec<_>>()
            });
            prepared.push((message, records));
        }

        let region = lambda
            .config()
            .region()
            .map(ToString::to_string)
            .unwrap_or_default();
        let missing = work.invoke(lambda, function, &region).await;
        report.invocations = work.invocations;
        for (i, handled) in work.outcomes.iter().enumerate() {
            if matches!(handled, Some(Ok(()))) {
                if work.from_letter[i] {
                    report.letters += 1;
                } else {
                    report.range_records += 1;
                }
            }
        }

        for (message, records) in prepared {
            let outcome = records.and_then(|records| {
                // The first record of this message that was not handled says why the message stays.
                match records.iter().find_map(|(i, _)| work.failure(*i)) {
                    Some(reason) => Err(OpsError::Message {
                        id: message.id.clone(),
                        reason,
                    }),
                    None => Ok(!records.is_empty() && records.iter().all(|(_, first)| !first)),
                }
            });
            match outcome {
                Ok(duplicate) => {
                    if duplicate {
                        report.duplicates += 1;
                    }
                    self.delete(&message).await?;
                }
                Err(e) => {
                    report.kept.push(e.to_string());
                    self.show_again(&message).await?;
                }
            }
        }
        if missing {
            return Err(OpsError::FunctionNotFound {
                function: function.to_owned(),
            });
        }
        Ok(report)
    }

    /// Deletes a message whose records were redriven.
    async fn delete(&self, message: &Message) -> Result<(), OpsError> {
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map_err(|e| aws("DeleteMessage", e))?;
        Ok(())
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
        let mut last_per_key: HashMap<String, String> = Default::default();
        for record in &records {
            let key = &record.partition_key;
            let mut put = self
                .kinesis
                .put_record()
                .stream_name(stream)
                .partition_key(key)
                .data(Blob::new(record.data.clone()));
            // Same key, same order as before.
            if let Some(previous) = last_per_key.get(key) {
                put = put.sequence_number_for_ordering(previous);
            }
            let out = put.send().await.map_err(|e| aws("PutRecord", e))?;
            last_per_key.insert(key.clone(), out.sequence_number().to_owned());
        }
        Ok(records.len())
    }

    /// The records from `start` to `end` of the batch's shard, in order.
    async fn fetch_range(
        &self,
        source_stream: &str,
        batch: &BatchInfo,
        id: &str,
    ) -> Result<Vec<Fetched>, OpsError> {
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
        let mut out: Vec<Fetched> = Vec::new();
        'pages: while let Some(it) = iterator {
            let page = self
                .kinesis
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .map_err(|e| aws("GetRecords", e))?;
            for r in page.records() {
                if sequence_lt(&batch.end_sequence_number, r.sequence_number()) {
                    break 'pages;
                }
                out.push(Fetched {
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    arrival: r
                        .approximate_arrival_timestamp()
                        .map_or_else(unix_now, |t| t.as_secs_f64()),
                });
            }
            let caught_up = page.millis_behind_latest() == Some(0) && page.records().is_empty();
            if caught_up {
                break;
            }
            iterator = page.next_shard_iterator;
        }
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

/// A record read back from a shard.
#[derive(Debug, Clone)]
struct Fetched {
    sequence_number: String,
    partition_key: String,
    data: Vec<u8>,
    /// Seconds since the epoch.
    arrival: f64,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One record to hand to a function, and where it was on its stream.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    stream_arn: String,
    shard_id: String,
    sequence_number: String,
    partition_key: String,
    data: Vec<u8>,
    arrival: f64,
}

impl Pending {
    fn of_range(batch: &BatchInfo, record: Fetched) -> Self {
        Self {
            stream_arn: batch.stream_arn.clone(),
            shard_id: batch.shard_id.clone(),
            sequence_number: record.sequence_number,
            partition_key: record.partition_key,
            data: record.data,
            arrival: record.arrival,
        }
    }

    /// The record as the event source mapping delivers it. The execution role (`invokeIdentityArn`) is the
    /// mapping's to know, not ours: left empty.
    fn event_record(&self, default_region: &str) -> KinesisEventRecord {
        // `arn:aws:kinesis:{region}:{account}:stream/{name}`: the stream's region, as the mapping says.
        let region = self
            .stream_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or(default_region);
        KinesisEventRecord {
            kinesis: KinesisData {
                kinesis_schema_version: "1.0",
                partition_key: self.partition_key.clone(),
                sequence_number: self.sequence_number.clone(),
                data: base64::engine::general_purpose::STANDARD.encode(&self.data),
                // Lambda sends milliseconds.
                approximate_arrival_timestamp: (self.arrival * 1000.0).round() / 1000.0,
            },
            event_source: "aws:kinesis",
            event_version: "1.0",
            event_id: format!("{}:{}", self.shard_id, self.sequence_number),
            event_name: "aws:kinesis:record",
            invoke_identity_arn: String::new(),
            aws_region: region.to_owned(),
            event_source_arn: self.stream_arn.clone(),
        }
    }
}

/// A dead letter's record. A letter does not say when its record reached the stream: it arrives now.
fn letter_record(letter: &DeadLetterMessage, id: &str) -> Result<Pending, OpsError> {
    let data = letter.payload().map_err(|e| OpsError::Message {
        id: id.to_owned(),
        reason: format!("payload is not base64: {e}"),
    })?;
    Ok(Pending {
        stream_arn: letter.event_source_arn.clone().unwrap_or_default(),
        shard_id: letter.shard_id.clone().unwrap_or_default(),
        sequence_number: letter.sequence_number.clone(),
        partition_key: letter.partition_key.clone(),
        data,
        arrival: unix_now(),
    })
}

/// The Lambda Kinesis event, member for member as the event source mapping sends it
/// (`tests/fixtures/kinesis-event.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct KinesisEvent {
    #[serde(rename = "Records")]
    records: Vec<KinesisEventRecord>,
}

/// One record of a [`KinesisEvent`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct KinesisEventRecord {
    kinesis: KinesisData,
    event_source: &'static str,
    event_version: &'static str,
    #[serde(rename = "eventID")]
    event_id: String,
    event_name: &'static str,
    invoke_identity_arn: String,
    aws_region: String,
    #[serde(rename = "eventSourceARN")]
    event_source_arn: String,
}

/// The `kinesis` member of a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct KinesisData {
    kinesis_schema_version: &'static str,
    partition_key: String,
    sequence_number: String,
    /// Base64.
    data: String,
    /// Seconds since the epoch, millisecond precision.
    approximate_arrival_timestamp: f64,
}

/// `{"Records":[]}`: what an event adds to its records (and a comma between each two).
const EVENT_ENVELOPE_BYTES: usize = 14;

/// The size of an event made of records of these serialised sizes.
fn event_bytes(record_sizes: &[usize]) -> usize {
    record_sizes
        .iter()
        .fold(EVENT_ENVELOPE_BYTES, |total, size| {
            total.saturating_add(*size)
        })
        .saturating_add(record_sizes.len().saturating_sub(1))
}

/// Cuts a shard's records (their serialised sizes, in sequence order) into invocations of at most `max_records`
/// records and `max_bytes`; a record too large on its own is alone in its chunk (and refused there).
fn chunks(
    record_sizes: &[usize],
    max_records: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in 1..=record_sizes.len() {
        let fits =
            end - start <= max_records && event_bytes(&record_sizes[start..end]) <= max_bytes;
        if !fits && end - 1 > start {
            out.push(start..end - 1);
            start = end - 1;
        }
    }
    if start < record_sizes.len() {
        out.push(start..record_sizes.len());
    }
    out
}

/// What one invocation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Every record handled.
    Handled,
    /// The function reported this sequence number (the lowest it reported) failed: it and the records after it
    /// are not handled.
    FailedFrom(String),
    /// None handled, and why.
    Failed(String),
    /// The function does not exist.
    Missing,
}

/// The function's answer (`KinesisEventResponse`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse {
    #[serde(default)]
    batch_item_failures: Option<Vec<ItemFailure>>,
}

/// One reported failure.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemFailure {
    #[serde(default)]
    item_identifier: Option<String>,
}

/// Reads a function's answer to an event of records `sequence_numbers` as the event source mapping does: null,
/// empty, `{}` or no failures is success; otherwise the lowest reported record and those after it failed; an
/// empty, missing or unknown identifier fails the whole batch. Anything else that is not a batch response fails
/// it too (Lambda would not know what was handled; neither do we).
fn read_answer(body: &[u8], sequence_numbers: &[&str]) -> Answer {
    let body = body.trim_ascii();
    if body.is_empty() || body == b"null" {
        return Answer::Handled;
    }
    let response: BatchResponse = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(e) => {
            return Answer::Failed(format!(
                "the function's answer is not a batch response ({e})"
            ))
        }
    };
    let mut lowest: Option<&str> = None;
    for failure in response.batch_item_failures.iter().flatten() {
        let Some(seq) = failure
            .item_identifier
            .as_deref()
            .and_then(|id| sequence_numbers.iter().find(|s| **s == id))
        else {
            return Answer::Failed(
                "the function reported a failure without a sequence number of the batch".into(),
            );
        };
        if lowest.is_none_or(|l| sequence_lt(seq, l)) {
            lowest = Some(seq);
        }
    }
    lowest.map_or(Answer::Handled, |seq| Answer::FailedFrom(seq.to_owned()))
}

/// A function error's type and message (the function's own words, cut short), not the event; `None` if `body`
/// is no Lambda error document.
fn function_error_summary(body: &[u8]) -> Option<String> {
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

/// Invokes `function` synchronously with `event`.
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, event: &KinesisEvent) -> Answer {
    let payload = match serde_json::to_vec(event) {
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
    match sent {
        Ok(out) => {
            let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
            match out.function_error() {
                Some(kind) => Answer::Failed(format!(
                    "function error ({kind}; {})",
                    function_error_summary(body)
                        .as_deref()
                        .unwrap_or("no diagnostic")
                )),
                None => {
                    let seqs: Vec<&str> = event
                        .records
                        .iter()
                        .map(|r| r.kinesis.sequence_number.as_str())
                        .collect();
                    read_answer(body, &seqs)
                }
            }
        }
        Err(err) if function_missing(&err) => Answer::Missing,
        Err(err) => {
            // `cargo lambda watch` answers a function error with a 500 and the error document, not Lambda's 200
            // and `X-Amz-Function-Error` (so the SDK has retried it as a server error).
            let local = err
                .raw_response()
                .filter(|r| r.status().is_server_error())
                .and_then(|r| r.body().bytes())
                .and_then(function_error_summary);
            match local {
                Some(summary) => Answer::Failed(format!("function error ({summary})")),
                None => Answer::Failed(aws("Invoke", err).to_string()),
            }
        }
    }
}

/// The records of one redrive to a function, each once, and what became of them.
#[derive(Debug, Default)]
struct Work {
    records: Vec<Pending>,
    /// (stream ARN, shard, sequence number) → index: a record parked twice is one record.
    index: HashMap<(String, String, String), usize>,
    /// Whether the message that named a record first was a dead letter (else an on-failure range).
    from_letter: Vec<bool>,
    /// `None`: not attempted; `Some(Ok)`: handled; `Some(Err(why))`: not redriven.
    outcomes: Vec<Option<Result<(), String>>>,
    invocations: usize,
}

impl Work {
    /// Adds a record: its index, and whether this is the first message to name it.
    fn add(&mut self, record: Pending, letter: bool) -> (usize, bool) {
        let key = (
            record.stream_arn.clone(),
            record.shard_id.clone(),
            record.sequence_number.clone(),
        );
        if let Some(&i) = self.index.get(&key) {
            return (i, false);
        }
        let i = self.records.len();
        self.index.insert(key, i);
        self.records.push(record);
        self.from_letter.push(letter);
        self.outcomes.push(None);
        (i, true)
    }

    /// Why record `i` was not redriven, if it was not.
    fn failure(&self, i: usize) -> Option<String> {
        match &self.outcomes[i] {
            Some(Ok(())) => None,
            Some(Err(why)) => Some(why.clone()),
            None => Some("not attempted".into()),
        }
    }

    /// The records per (stream, shard), each in sequence order; shards in the order first named.
    fn shards(&self) -> Vec<Vec<usize>> {
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut by_shard: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, r) in self.records.iter().enumerate() {
            let shard = (r.stream_arn.as_str(), r.shard_id.as_str());
            by_shard
                .entry(shard)
                .or_insert_with(|| {
                    order.push(shard);
                    Vec::new()
                })
                .push(i);
        }
        order
            .into_iter()
            .filter_map(|shard| by_shard.remove(&shard))
            .map(|mut records| {
                records.sort_by(|a, b| {
                    let (a, b) = (
                        &self.records[*a].sequence_number,
                        &self.records[*b].sequence_number,
                    );
                    (a.len(), a).cmp(&(b.len(), b))
                });
                records
            })
            .collect()
    }

    fn settle(&mut self, records: &[usize], outcome: &Result<(), String>) {
        for &i in records {
            self.outcomes[i] = Some(outcome.clone());
        }
    }

    /// Hands every shard's records to `function`, chunk after chunk; a shard stops at its first failure (the
    /// records after it wait, as the event source mapping waits). `true`: the function does not exist.
    async fn invoke(
        &mut self,
        lambda: &aws_sdk_lambda::Client,
        function: &str,
        region: &str,
    ) -> bool {
        for shard in self.shards() {
            let events: Vec<KinesisEventRecord> = shard
                .iter()
                .map(|&i| self.records[i].event_record(region))
                .collect();
            let sizes: Vec<usize> = events
                .iter()
                .map(|e| serde_json::to_vec(e).map_or(usize::MAX, |v| v.len()))
                .collect();
            let name = self.records[shard[0]].shard_id.clone();
            let mut stopped: Option<String> = None;
            for range in chunks(&sizes, MAX_INVOKE_RECORDS, MAX_INVOKE_BYTES) {
                let ids = &shard[range.clone()];
                if let Some(why) = &stopped {
                    self.settle(ids, &Err(why.clone()));
                    continue;
                }
                let bytes = event_bytes(&sizes[range.clone()]);
                let answer = if bytes > MAX_INVOKE_BYTES {
                    Answer::Failed(format!(
                        "a record of {bytes} bytes as an event, over the {MAX_INVOKE_BYTES} of an Invoke: \
                         redrive it onto the stream"
                    ))
                } else {
                    self.invocations += 1;
                    let event = KinesisEvent {
                        records: events[range.clone()].to_vec(),
                    };
                    invoke(lambda, function, &event).await
                };
                match answer {
                    Answer::Handled => self.settle(ids, &Ok(())),
                    Answer::FailedFrom(seq) => {
                        let why = format!(
                            "{name}: the function reported record {seq} failed (batchItemFailures): \
                             it and the records after it are not redriven"
                        );
                        for &i in ids {
                            let outcome = if sequence_lt(&self.records[i].sequence_number, &seq) {
                                Ok(())
                            } else {
                                Err(why.clone())
                            };
                            self.outcomes[i] = Some(outcome);
                        }
                        stopped = Some(format!("{name}: not attempted after record {seq} failed"));
                    }
                    Answer::Failed(why) => {
                        self.settle(ids, &Err(format!("{name}: {why}")));
                        stopped = Some(format!(
                            "{name}: not attempted after an earlier chunk failed"
                        ));
                    }
                    Answer::Missing => return true,
                }
            }
        }
        false
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

    fn pending(shard: &str, seq: &str, data: &[u8]) -> Pending {
        Pending {
            stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s".into(),
            shard_id: shard.into(),
            sequence_number: seq.into(),
            partition_key: "k".into(),
            data: data.to_vec(),
            arrival: 1_480_641_523.477_4,
        }
    }

    #[test]
    fn the_event_is_the_one_the_mapping_sends() {
        let mut aws: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/kinesis-event.json")).unwrap();
        let records: Vec<KinesisEventRecord> = aws["Records"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .map(|r| {
                // The execution role is the mapping's to know: left empty.
                r["invokeIdentityArn"] = "".into();
                let k = &r["kinesis"];
                Pending {
                    stream_arn: r["eventSourceARN"].as_str().unwrap().into(),
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: k["sequenceNumber"].as_str().unwrap().into(),
                    partition_key: k["partitionKey"].as_str().unwrap().into(),
                    data: b"Hello World".to_vec(),
                    arrival: k["approximateArrivalTimestamp"].as_f64().unwrap(),
                }
                .event_record("ignored: the ARN says")
            })
            .collect();
        let sizes: Vec<usize> = records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len())
            .collect();
        let event = KinesisEvent { records };
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            aws
        );
        assert_eq!(
            event_bytes(&sizes),
            bytes.len(),
            "sizes are measured exactly"
        );
        // The region comes from the stream's ARN, or from the client where there is none.
        let mut r = pending("shardId-000000000001", "7", b"x");
        assert_eq!(r.event_record("us-east-1").aws_region, "eu-west-1");
        r.stream_arn.clear();
        let e = r.event_record("us-east-1");
        assert_eq!(
            (e.aws_region.as_str(), e.event_id.as_str()),
            ("us-east-1", "shardId-000000000001:7")
        );
        assert_eq!(e.kinesis.approximate_arrival_timestamp, 1_480_641_523.477);
    }

    #[test]
    fn chunks_keep_to_the_record_and_payload_limits_in_order() {
        assert_eq!(
            chunks(&[10; 250], 100, MAX_INVOKE_BYTES),
            [0..100, 100..200, 200..250]
        );
        // By bytes: 3 records of 40 do not fit in 100 (with the envelope and commas), 2 do.
        assert_eq!(chunks(&[40, 40, 40, 40, 40], 100, 100), [0..2, 2..4, 4..5]);
        // A record too large on its own is alone (and refused when invoked), its neighbours carry on.
        assert_eq!(chunks(&[10, 500, 10, 10], 100, 100), [0..1, 1..2, 2..4]);
        assert_eq!(chunks(&[], 100, 100), Vec::<std::ops::Range<usize>>::new());
        for sizes in [vec![40; 5], vec![10, 500, 10, 10], vec![86; 3]] {
            for c in chunks(&sizes, 100, 100) {
                assert!(
                    c.len() == 1 || event_bytes(&sizes[c.clone()]) <= 100,
                    "{sizes:?} {c:?}"
                );
            }
        }
    }

    #[test]
    fn the_answer_is_read_as_the_mapping_reads_it() {
        let seqs = ["9", "10", "11"];
        for handled in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert_eq!(
                read_answer(handled.as_bytes(), &seqs),
                Answer::Handled,
                "{handled}"
            );
        }
        // The lowest reported record, numerically (10 > 9 although "10" < "9").
        let two = r#"{"batchItemFailures":[{"itemIdentifier":"11"},{"itemIdentifier":"10"}]}"#;
        assert_eq!(
            read_answer(two.as_bytes(), &seqs),
            Answer::FailedFrom("10".into())
        );
        for whole in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"id":"10"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"12"}]}"#,
            r#""ok""#,
            "not json",
        ] {
            assert!(
                matches!(read_answer(whole.as_bytes(), &seqs), Answer::Failed(_)),
                "{whole}"
            );
        }
        assert_eq!(
            function_error_summary(br#"{"errorType":"Runtime.Oops","errorMessage":"bad"}"#)
                .as_deref(),
            Some("Runtime.Oops: bad")
        );
        assert_eq!(function_error_summary(b"<html>"), None);
    }

    #[test]
    fn a_record_named_twice_is_one_record_and_shards_are_in_sequence_order() {
        let mut work = Work::default();
        assert_eq!(work.add(pending("shard-b", "30", b""), true), (0, true));
        assert_eq!(work.add(pending("shard-a", "100", b""), false), (1, true));
        assert_eq!(work.add(pending("shard-a", "99", b""), false), (2, true));
        assert_eq!(
            work.add(pending("shard-b", "30", b""), true),
            (0, false),
            "parked twice"
        );
        assert_eq!(work.add(pending("shard-b", "4", b""), true), (3, true));
        assert_eq!(work.shards(), [vec![3, 0], vec![2, 1]]);
        assert_eq!(work.failure(0).as_deref(), Some("not attempted"));
    }
}
