//! A consumer's dead-letter queue: every message read without consuming it, hidden while a redrive works on it,
//! shown again or deleted.

use std::collections::HashSet;

use crate::entry::{Entry, Message};
use crate::error::{aws, OpsError};

/// How long `list` hides the messages it has read while it reads the rest (they are then made visible again;
/// should `list` die, they reappear after this).
const LIST_HIDE_SECS: i32 = 30;

/// A consumer's dead-letter queue, and the streams its records came from.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    pub(crate) url: String,
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
    pub(crate) async fn receive_all(&self, hide_secs: i32) -> Result<Vec<Message>, OpsError> {
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

    /// Deletes a message whose records were redriven.
    pub(crate) async fn delete(&self, message: &Message) -> Result<(), OpsError> {
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
    pub(crate) async fn show_again(&self, message: &Message) -> Result<(), OpsError> {
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
}
