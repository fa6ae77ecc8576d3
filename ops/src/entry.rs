//! What a dead-letter queue's message holds: a record the consumer harness parked ([`DeadLetterMessage`]), a
//! batch the event source mapping gave up on (Lambda's [`OnFailure`] message), or neither.

use tubes_platform::dead_letters::{DeadLetterMessage, KIND};
use tubes_platform::lambda_event::{stream_name, Condition, KinesisBatchInfo, OnFailure};

/// One message of a dead-letter queue, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A record the consumer harness parked.
    Letter(DeadLetterMessage),
    /// A batch the event source mapping gave up on (Lambda's on-failure message).
    OnFailure {
        /// Where the batch was.
        batch: KinesisBatchInfo,
        /// Why the mapping gave up, if it said.
        condition: Option<Condition>,
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
        if value.get("KinesisBatchInfo").is_some() {
            return match serde_json::from_value::<OnFailure>(value) {
                Ok(message) => Entry::OnFailure {
                    batch: message.kinesis_batch_info,
                    condition: message.request_context.condition,
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
                "dead letter  consumer={} source={} event={} type={} shard={} seq={} reason={}",
                l.consumer,
                l.event_source.as_deref().unwrap_or("-"),
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
                condition.as_ref().map_or("-", Condition::as_str)
            ),
            Entry::Unknown(why) => format!("unknown      {why}"),
        }
    }
}

/// What makes two dead letters one: the same consumer and the same event (its id is unique per source), or, for
/// a record that did not decode (or a letter from before sources were recorded), the same place in its shard.
pub(crate) fn letter_identity(letter: &DeadLetterMessage) -> (String, String) {
    let what = match (&letter.event_source, &letter.event_id) {
        (Some(source), Some(id)) => format!("event {source} {id}"),
        _ => format!(
            "record {} {}",
            letter.shard_id.as_deref().unwrap_or("-"),
            letter.sequence_number
        ),
    };
    (letter.consumer.clone(), what)
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
    pub(crate) receipt_handle: String,
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
        assert_eq!(condition, &Some(Condition::RetryAttemptsExhausted));
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
