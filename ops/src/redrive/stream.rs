//! Redrive onto the stream: each record goes back under its partition key (a range in its original order), and
//! every consumer of the stream sees it again, after the records written since.

use std::collections::{HashMap, HashSet};

use aws_sdk_kinesis::primitives::Blob;
use tubes_contract::codec;
use tubes_platform::dead_letters::DeadLetterMessage;
use tubes_platform::lambda_event::{record_events, stream_name, KinesisBatchInfo, SequenceNumber};

use super::{letter_label, record_label, RedriveReport, Sent};
use crate::entry::{letter_identity, Entry};
use crate::error::{aws, OpsError};
use crate::queue::DeadLetterQueue;

impl DeadLetterQueue {
    /// Puts the records of every message (or only of message `only`) back onto their stream, and deletes each
    /// message once its records are acknowledged. `stream` overrides the stream the message names. A message
    /// `only` that the queue does not show is [`OpsError::MessageNotFound`]. Whether the records are parked again
    /// is for [`DeadLetterQueue::watch_parked_again`] to see, once the consumers have read them.
    pub async fn redrive(
        &self,
        only: Option<&str>,
        stream: Option<&str>,
    ) -> Result<RedriveReport, OpsError> {
        let mut report = RedriveReport::default();
        let mut done: HashSet<(String, String)> = HashSet::new();
        // Out of sight while being redriven: a second operator does not redrive them too.
        let (mine, seen) = self.take(only, 300).await?;
        report.seen = seen;
        self.progress.set_length(mine.len() as u64);
        for message in mine {
            let outcome = match &message.entry {
                Entry::Letter(letter) => {
                    let key = letter_identity(letter);
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
                            Ok(name) => self.put_letter(name, letter, &message.id).await.map(
                                |(shard, sequence_number)| {
                                    done.insert(key);
                                    report.letters += 1;
                                    report.sent.push(Sent {
                                        label: letter_label(letter),
                                        event: letter
                                            .event_source
                                            .clone()
                                            .zip(letter.event_id.clone()),
                                        place: Some((shard, sequence_number, None)),
                                    });
                                },
                            ),
                            Err(e) => Err(e),
                        }
                    }
                }
                Entry::OnFailure { batch, .. } => {
                    let name = stream.unwrap_or(stream_name(&batch.stream_arn));
                    self.put_range(name, batch, &message.id).await.map(|sent| {
                        report.range_records += sent.len();
                        report.sent.extend(sent);
                    })
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
            self.progress.inc(1);
        }
        self.progress.finish_and_clear();
        Ok(report)
    }

    /// Puts a letter's record back; where it landed (shard, sequence number).
    async fn put_letter(
        &self,
        stream: &str,
        letter: &DeadLetterMessage,
        id: &str,
    ) -> Result<(String, SequenceNumber), OpsError> {
        let data = letter.payload().map_err(|e| OpsError::Message {
            id: id.to_owned(),
            reason: format!("payload is not base64: {e}"),
        })?;
        let out = self
            .kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(&letter.partition_key)
            .data(Blob::new(data))
            .send()
            .await
            .map_err(|e| aws("PutRecord", e))?;
        Ok((
            out.shard_id().to_owned(),
            SequenceNumber::from(out.sequence_number()),
        ))
    }

    /// Fetches the records `batch` names from its shard and puts them back, in order; the events put. A packed
    /// record goes back as its events, each under its subject (the stream may have been resharded since: the pack
    /// would name a shard it no longer lands on); a pack that had landed on that shard by mistake goes back as
    /// nothing (its writer wrote its events again on their own shard).
    async fn put_range(
        &self,
        stream: &str,
        batch: &KinesisBatchInfo,
        id: &str,
    ) -> Result<Vec<Sent>, OpsError> {
        let records = self
            .fetch_range(stream_name(&batch.stream_arn), batch, id)
            .await?;
        let mut last_per_key: HashMap<String, String> = Default::default();
        let mut sent = Vec::new();
        for record in records {
            let from = record.sequence_number.to_string();
            let parts: Vec<(Option<u64>, String, Vec<u8>)> = if codec::is_packed(&record.data) {
                record_events(record.data)
                    .for_shard(record.partition_key, &batch.shard_id)
                    .into_iter()
                    .map(|(sub, key, decoded)| match decoded {
                        Ok(envelope) => {
                            (sub, key, serde_json::to_vec(&envelope).unwrap_or_default())
                        }
                        Err((_, raw)) => (sub, key, raw),
                    })
                    .collect()
            } else {
                // Anything else goes back byte for byte (a KPL aggregate too: its consumers read it as it was).
                vec![(None, record.partition_key, record.data)]
            };
            for (sub, key, data) in parts {
                let mut put = self
                    .kinesis
                    .put_record()
                    .stream_name(stream)
                    .partition_key(&key)
                    .data(Blob::new(data));
                // Same key, same order as before.
                if let Some(previous) = last_per_key.get(&key) {
                    put = put.sequence_number_for_ordering(previous);
                }
                let out = put.send().await.map_err(|e| aws("PutRecord", e))?;
                last_per_key.insert(key, out.sequence_number().to_owned());
                sent.push(Sent {
                    label: record_label(&batch.shard_id, &from, sub),
                    event: None,
                    place: Some((
                        out.shard_id().to_owned(),
                        SequenceNumber::from(out.sequence_number()),
                        None,
                    )),
                });
            }
        }
        Ok(sent)
    }
}
