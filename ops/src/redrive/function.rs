//! Redrive straight to a consumer function: the records go to that one function, as the Kinesis event the event
//! source mapping would send (synchronous `Invoke`, in sequence order per shard, at most
//! [`DEFAULT_BATCH_SIZE`] records and [`MAX_PAYLOAD_BYTES`] per invocation), and its answer counts as the mapping
//! counts it ([`verdict`]). The other consumers of the stream do not see them again.

use std::collections::HashMap;

use tubes_platform::clock;
use tubes_platform::dead_letters::DeadLetterMessage;
use tubes_platform::lambda_event::{
    chunks, event_size, stream_name, stream_region, BatchSource, SequenceNumber, StreamRecord,
    DEFAULT_BATCH_SIZE, MAX_PAYLOAD_BYTES,
};

use super::{letter_label, record_label, RedriveReport, Sent};
use crate::entry::Entry;
use crate::error::OpsError;
use crate::invoke::{invoke, Answer};
use crate::queue::DeadLetterQueue;

impl DeadLetterQueue {
    /// Hands the records of every message (or only of message `only`) straight to `function`, as the Kinesis
    /// event the event source mapping would send, and deletes each message once the function handled all of its
    /// records (see the crate docs for what counts as handled). The stream is only read (an on-failure range):
    /// other consumers of it do not see the records again. A record parked twice is handed over once.
    ///
    /// A function that does not exist is [`OpsError::FunctionNotFound`], with every message left on the queue;
    /// a message `only` that the queue does not show is [`OpsError::MessageNotFound`]. Once the function has
    /// answered, one look at the queue finds the records it parked again ([`RedriveReport::parked_again`]: the
    /// consumer harness parks a record before it answers, so its letter is there by then).
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
        let (mine, seen) = self.take(only, 300).await?;
        report.seen = seen;
        for message in mine {
            let records = match &message.entry {
                Entry::Letter(letter) => letter_record(letter, &message.id).map(|r| vec![r]),
                Entry::OnFailure { batch, .. } => self
                    .fetch_range(stream_name(&batch.stream_arn), batch, &message.id)
                    .await
                    .map(|records| {
                        records
                            .into_iter()
                            .map(|record| Pending {
                                stream_arn: batch.stream_arn.clone(),
                                shard_id: batch.shard_id.clone(),
                                record,
                            })
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
                    .map(|r| {
                        let sent = match &message.entry {
                            Entry::Letter(l) => Sent {
                                label: letter_label(l),
                                event: l.event_source.clone().zip(l.event_id.clone()),
                                place: Some((
                                    r.shard_id.clone(),
                                    r.record.sequence_number.clone(),
                                    l.sub_sequence_number,
                                )),
                            },
                            _ => Sent {
                                label: record_label(
                                    &r.shard_id,
                                    r.record.sequence_number.as_str(),
                                    None,
                                ),
                                event: None,
                                place: Some((
                                    r.shard_id.clone(),
                                    r.record.sequence_number.clone(),
                                    None,
                                )),
                            },
                        };
                        work.add(r, letter, sent)
                    })
                    .collect::<Vec<_>>()
            });
            prepared.push((message, records));
        }

        let region = lambda
            .config()
            .region()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.progress.set_length(work.records.len() as u64);
        let missing = work.invoke(lambda, function, &region, &self.progress).await;
        self.progress.finish_and_clear();
        report.invocations = work.invocations;
        for (i, handled) in work.outcomes.iter().enumerate() {
            if matches!(handled, Some(Ok(()))) {
                if work.from_letter[i] {
                    report.letters += 1;
                } else {
                    report.range_records += 1;
                }
                report.sent.push(work.sent[i].clone());
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
        self.watch_parked_again(&mut report, std::time::Duration::ZERO)
            .await?;
        Ok(report)
    }
}

/// One record to hand to a function, and where it was on its stream.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    stream_arn: String,
    shard_id: String,
    record: StreamRecord,
}

impl Pending {
    /// Where the record comes from, as the event source mapping says it: the stream's region (from its ARN, else
    /// `default_region`). The execution role (`invokeIdentityArn`) is the mapping's to know, not ours: empty.
    fn source(&self, default_region: &str) -> BatchSource {
        BatchSource {
            event_source_arn: self.stream_arn.clone(),
            shard_id: self.shard_id.clone(),
            aws_region: stream_region(&self.stream_arn)
                .unwrap_or(default_region)
                .to_owned(),
            invoke_identity_arn: String::new(),
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
        record: StreamRecord {
            sequence_number: SequenceNumber::from(letter.sequence_number.as_str()),
            partition_key: letter.partition_key.clone(),
            data,
            arrival: clock::now_secs(),
        },
    })
}

/// The records of one redrive to a function, each once, and what became of them.
#[derive(Debug, Default)]
struct Work {
    records: Vec<Pending>,
    /// (stream ARN, shard, sequence number) → index: a record parked twice is one record.
    index: HashMap<(String, String, String), usize>,
    /// Whether the message that named a record first was a dead letter (else an on-failure range).
    from_letter: Vec<bool>,
    /// How a message written later would name each record.
    sent: Vec<Sent>,
    /// `None`: not attempted; `Some(Ok)`: handled; `Some(Err(why))`: not redriven.
    outcomes: Vec<Option<Result<(), String>>>,
    invocations: usize,
}

impl Work {
    /// Adds a record: its index, and whether this is the first message to name it.
    fn add(&mut self, record: Pending, letter: bool, sent: Sent) -> (usize, bool) {
        let key = (
            record.stream_arn.clone(),
            record.shard_id.clone(),
            record.record.sequence_number.to_string(),
        );
        if let Some(&i) = self.index.get(&key) {
            return (i, false);
        }
        let i = self.records.len();
        self.index.insert(key, i);
        self.records.push(record);
        self.from_letter.push(letter);
        self.sent.push(sent);
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
                    let (a, b) = (&self.records[*a].record, &self.records[*b].record);
                    a.sequence_number.cmp(&b.sequence_number)
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
        progress: &indicatif::ProgressBar,
    ) -> bool {
        for shard in self.shards() {
            let source = self.records[shard[0]].source(region);
            let records: Vec<StreamRecord> = shard
                .iter()
                .map(|&i| self.records[i].record.clone())
                .collect();
            let name = source.shard_id.clone();
            let mut stopped: Option<String> = None;
            for range in chunks(&records, DEFAULT_BATCH_SIZE, MAX_PAYLOAD_BYTES) {
                let ids = &shard[range.clone()];
                progress.inc(ids.len() as u64);
                if let Some(why) = &stopped {
                    self.settle(ids, &Err(why.clone()));
                    continue;
                }
                let bytes = event_size(&records[range.clone()]);
                let answer = if bytes > MAX_PAYLOAD_BYTES {
                    Answer::Failed(format!(
                        "a record of up to {bytes} bytes as an event, over the {MAX_PAYLOAD_BYTES} of an \
                         Invoke: redrive it onto the stream"
                    ))
                } else {
                    self.invocations += 1;
                    invoke(lambda, function, &source, &records[range.clone()]).await
                };
                match answer {
                    Answer::Handled => self.settle(ids, &Ok(())),
                    Answer::FailedFrom(seq) => {
                        let why = format!(
                            "{name}: the function reported record {seq} failed (batchItemFailures): \
                             it and the records after it are not redriven"
                        );
                        for &i in ids {
                            let outcome = if self.records[i].record.sequence_number < seq {
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

    fn pending(shard: &str, seq: &str) -> Pending {
        Pending {
            stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s".into(),
            shard_id: shard.into(),
            record: StreamRecord {
                sequence_number: SequenceNumber::from(seq),
                partition_key: "k".into(),
                data: vec![],
                arrival: 1_480_641_523.477_4,
            },
        }
    }

    #[test]
    fn the_source_is_the_one_the_mapping_names() {
        // The region comes from the stream's ARN, or from the client where there is none.
        let mut r = pending("shardId-000000000001", "7");
        let source = r.source("us-east-1");
        assert_eq!(source.aws_region, "eu-west-1");
        assert_eq!(
            source.invoke_identity_arn, "",
            "the execution role is the mapping's to know"
        );
        r.stream_arn.clear();
        let e = r.source("us-east-1").record(&r.record);
        assert_eq!(
            (e.aws_region.as_str(), e.event_id.as_str()),
            ("us-east-1", "shardId-000000000001:7")
        );
        assert_eq!(e.kinesis.approximate_arrival_timestamp, 1_480_641_523.477);
    }

    fn sent(p: &Pending) -> Sent {
        Sent {
            label: record_label(&p.shard_id, p.record.sequence_number.as_str(), None),
            event: None,
            place: None,
        }
    }

    #[test]
    fn a_record_named_twice_is_one_record_and_shards_are_in_sequence_order() {
        let mut work = Work::default();
        let mut add = |p: Pending, letter| {
            let s = sent(&p);
            work.add(p, letter, s)
        };
        assert_eq!(add(pending("shard-b", "30"), true), (0, true));
        assert_eq!(add(pending("shard-a", "100"), false), (1, true));
        assert_eq!(add(pending("shard-a", "99"), false), (2, true));
        assert_eq!(
            add(pending("shard-b", "30"), true),
            (0, false),
            "parked twice"
        );
        assert_eq!(add(pending("shard-b", "4"), true), (3, true));
        assert_eq!(work.shards(), [vec![3, 0], vec![2, 1]]);
        assert_eq!(work.failure(0).as_deref(), Some("not attempted"));
    }
}
