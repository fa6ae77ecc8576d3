//! The SQS adapter of [`DeadLetters`]: one message per dead letter, with everything needed to understand and
//! redrive it. The body is JSON ([`DeadLetterMessage`]); `consumer`, `event_type` and `attempts` are also
//! message attributes, so a queue can be browsed or filtered without parsing bodies.

use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{DeadLetter, DeadLetterError, DeadLetters};
use crate::aws;

/// How many messages a queue holds: waiting, and out of sight (received, not yet deleted or shown again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// `ApproximateNumberOfMessages`.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`.
    pub in_flight: u64,
}

impl Depth {
    /// Every message of the queue, waiting or out of sight.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// The depth of the queue at `url` (one `GetQueueAttributes`); the SDK's error as it is, for the caller to tell a
/// missing queue from a failed call.
pub async fn depth(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<Depth, aws_sdk_sqs::error::SdkError<GetQueueAttributesError>> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let count = |name: QueueAttributeName| {
        out.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    })
}

/// The body of a dead-letter message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterMessage {
    /// Marks the message as tubes' (the ESM's on-failure messages share the queue and look different).
    pub kind: String,
    /// The consumer that gave up.
    pub consumer: String,
    /// The stream, if known.
    pub event_source_arn: Option<String>,
    /// The shard, if known.
    pub shard_id: Option<String>,
    /// The record's sequence number.
    pub sequence_number: String,
    /// The event's place in its packed or KPL-aggregated record (absent for a record that is one event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_sequence_number: Option<u64>,
    /// The record's partition key.
    pub partition_key: String,
    /// The event's source, when the record decoded (absent in letters written before sources were recorded).
    #[serde(default)]
    pub event_source: Option<String>,
    /// The event id, when the record decoded.
    pub event_id: Option<String>,
    /// The event type, when the record decoded.
    pub event_type: Option<String>,
    /// Why it failed.
    pub reason: String,
    /// How many times the consumer tried the record (0: a letter written before attempts were counted).
    #[serde(default)]
    pub attempts: u32,
    /// The record's data, base64 (it may not be UTF-8 or JSON).
    pub payload_base64: String,
}

/// The `kind` of tubes' own dead-letter messages.
pub const KIND: &str = "tubes.dead_letter";

impl From<&DeadLetter> for DeadLetterMessage {
    fn from(letter: &DeadLetter) -> Self {
        Self {
            kind: KIND.into(),
            consumer: letter.consumer.into(),
            event_source_arn: letter.event_source_arn.clone(),
            shard_id: letter.shard_id.clone(),
            sequence_number: letter.sequence_number.to_string(),
            sub_sequence_number: letter.sub_sequence_number,
            partition_key: letter.partition_key.clone(),
            event_source: letter.event_source.clone(),
            event_id: letter.event_id.clone(),
            event_type: letter.event_type.map(str::to_owned),
            reason: letter.reason.clone(),
            attempts: letter.attempts,
            payload_base64: base64::engine::general_purpose::STANDARD.encode(&letter.payload),
        }
    }
}

impl DeadLetterMessage {
    /// The record's data.
    pub fn payload(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(&self.payload_base64)
    }
}

/// Dead letters as messages on an SQS queue (the consumer's dead-letter queue).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// Letters go to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, DeadLetterError> {
    typed_attribute("String", value)
}

fn typed_attribute(data_type: &str, value: &str) -> Result<MessageAttributeValue, DeadLetterError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| DeadLetterError(e.to_string()))
}

impl DeadLetters for SqsDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        let body = serde_json::to_string(&DeadLetterMessage::from(&letter))
            .map_err(|e| DeadLetterError(e.to_string()))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("consumer", attribute(letter.consumer)?)
            .message_attributes(
                "attempts",
                typed_attribute("Number", &letter.attempts.to_string())?,
            );
        if let Some(ty) = letter.event_type {
            request = request.message_attributes("event_type", attribute(ty)?);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DeadLetterError(aws::describe("SendMessage", e)))?;
        // Metadata only: the payload may hold personal data.
        tracing::error!(
            consumer = letter.consumer,
            sequence_number = %letter.sequence_number,
            event_source = letter.event_source.as_deref(),
            event_id = letter.event_id.as_deref(),
            attempts = letter.attempts,
            reason = %letter.reason,
            "dead letter queued"
        );
        Ok(())
    }

    /// The queue's name: the last segment of its URL.
    fn destination(&self) -> &str {
        self.queue_url.rsplit('/').next().unwrap_or(&self.queue_url)
    }
}
