//! A consumer's dead-letter queue: every message read without consuming it, hidden while a redrive works on it,
//! shown again or deleted; and the account's dead-letter queues with their depths.

use std::collections::HashSet;

use tubes_platform::dead_letters::sqs;

use crate::entry::{Entry, Message};
use crate::error::{aws, OpsError};

/// How long `list` hides the messages it has read while it reads the rest (they are then made visible again;
/// should `list` die, they reappear after this).
const LIST_HIDE_SECS: i32 = 30;

/// What the template's dead-letter queues are called: `PaymentsDeadLetterQueue` and the others, named
/// `tubes-PaymentsDeadLetterQueue` locally and `STACK-PaymentsDeadLetterQueue-SUFFIX` by CloudFormation.
pub const DEAD_LETTER_QUEUE_MARK: &str = "DeadLetterQueue";

/// A queue and how many messages it holds (SQS's approximate counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// The queue's name (the last segment of its URL).
    pub name: String,
    /// The queue's URL.
    pub url: String,
    /// Messages waiting (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Messages received and out of sight for now (`ApproximateNumberOfMessagesNotVisible`): being listed or
    /// redriven; they come back unless deleted.
    pub in_flight: u64,
}

impl QueueDepth {
    /// Every message of the queue, waiting or out of sight.
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// A consumer's dead-letter queue, and the streams its records came from.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    pub(crate) url: String,
    /// Shows how far a redrive got (hidden unless the caller gives a bar: tests, CI and the library stay quiet).
    pub(crate) progress: indicatif::ProgressBar,
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
            progress: indicatif::ProgressBar::hidden(),
        }
    }

    /// Redrives show their progress on `bar` (its length is set by each redrive).
    #[must_use]
    pub fn with_progress(mut self, bar: indicatif::ProgressBar) -> Self {
        self.progress = bar;
        self
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's name: the last segment of its URL.
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }

    /// The queue named or addressed by `queue` (a URL, or a name looked up); [`OpsError::QueueNotFound`] if
    /// there is no such queue (a URL is checked too, so that a typo is not an empty queue).
    pub async fn find(
        sqs: aws_sdk_sqs::Client,
        kinesis: aws_sdk_kinesis::Client,
        queue: &str,
    ) -> Result<Self, OpsError> {
        let not_found = || OpsError::QueueNotFound {
            queue: queue.to_owned(),
        };
        let url = if queue.starts_with("http://") || queue.starts_with("https://") {
            queue.to_owned()
        } else {
            sqs.get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(s) if s.is_queue_does_not_exist() => not_found(),
                    _ => aws("GetQueueUrl", e),
                })?
                .queue_url
                .ok_or_else(not_found)?
        };
        let dlq = Self::new(sqs, kinesis, url);
        dlq.depth().await.map_err(|e| match e {
            DepthError::Missing => not_found(),
            DepthError::Ops(e) => e,
        })?;
        Ok(dlq)
    }

    /// The dead-letter queues of the account (every queue whose name holds [`DEAD_LETTER_QUEUE_MARK`], or every
    /// queue with `all`), optionally only those whose name starts with `prefix`, by name, with their depths.
    pub async fn queues(
        sqs: &aws_sdk_sqs::Client,
        prefix: Option<&str>,
        all: bool,
    ) -> Result<Vec<QueueDepth>, OpsError> {
        let mut urls = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = sqs
                .list_queues()
                .set_queue_name_prefix(prefix.map(str::to_owned))
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws("ListQueues", e))?;
            urls.extend(page.queue_urls().iter().cloned());
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => break,
            }
        }
        let mut out = Vec::new();
        for url in urls {
            let name = url.rsplit('/').next().unwrap_or(&url).to_owned();
            if !all && !name.contains(DEAD_LETTER_QUEUE_MARK) {
                continue;
            }
            match depth(sqs, &url).await {
                Ok(depth) => out.push(depth),
                // Deleted between the listing and now.
                Err(DepthError::Missing) => {}
                Err(DepthError::Ops(e)) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn depth(&self) -> Result<QueueDepth, DepthError> {
        depth(&self.sqs, &self.url).await
    }

    /// The message `id`, left on the queue; [`OpsError::MessageNotFound`] if the queue does not show it.
    pub async fn message(&self, id: &str) -> Result<Message, OpsError> {
        self.list()
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| self.no_message(id))
    }

    /// Deletes the message `id`; [`OpsError::MessageNotFound`] if the queue does not show it (then nothing is
    /// deleted). What it held, for the caller to say.
    pub async fn delete_message(&self, id: &str) -> Result<Message, OpsError> {
        let (found, _) = self.take(Some(id), LIST_HIDE_SECS).await?;
        let message = found
            .into_iter()
            .next()
            .ok_or_else(|| self.no_message(id))?;
        self.delete(&message).await?;
        Ok(message)
    }

    /// Takes the queue's messages out of sight for `hide_secs` and keeps those `only` names (all without it),
    /// making the others visible again at once; with them, the ids of every message the queue showed.
    /// [`OpsError::MessageNotFound`] when `only` names none of them.
    pub(crate) async fn take(
        &self,
        only: Option<&str>,
        hide_secs: i32,
    ) -> Result<(Vec<Message>, HashSet<String>), OpsError> {
        let messages = self.receive_all(hide_secs).await?;
        let seen = messages.iter().map(|m| m.id.clone()).collect();
        let (mine, others): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .partition(|m| only.is_none_or(|id| id == m.id));
        self.show_many_again(&others).await?;
        if let (Some(id), true) = (only, mine.is_empty()) {
            return Err(self.no_message(id));
        }
        Ok((mine, seen))
    }

    /// Deletes every message of the queue, out of sight ones included (SQS `PurgeQueue`: AWS takes up to 60
    /// seconds to finish, and refuses a second purge of the queue within 60 seconds). The depth before.
    pub async fn purge(&self) -> Result<QueueDepth, OpsError> {
        let before = self.depth().await.map_err(|e| match e {
            DepthError::Missing => OpsError::QueueNotFound {
                queue: self.name().to_owned(),
            },
            DepthError::Ops(e) => e,
        })?;
        self.sqs
            .purge_queue()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(|e| aws("PurgeQueue", e))?;
        Ok(before)
    }

    pub(crate) fn no_message(&self, id: &str) -> OpsError {
        OpsError::MessageNotFound {
            queue: self.name().to_owned(),
            id: id.to_owned(),
        }
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

    /// Makes messages visible again at once, ten per call.
    pub(crate) async fn show_many_again(&self, messages: &[Message]) -> Result<(), OpsError> {
        for chunk in messages.chunks(10) {
            self.show_all_again(chunk).await?;
        }
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

/// A queue's depth (one `GetQueueAttributes`).
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueDepth, DepthError> {
    let depth = sqs::depth(sqs, url)
        .await
        .map_err(|e| match e.as_service_error() {
            Some(s) if s.is_queue_does_not_exist() => DepthError::Missing,
            _ => DepthError::Ops(aws("GetQueueAttributes", e)),
        })?;
    Ok(QueueDepth {
        name: url.rsplit('/').next().unwrap_or(url).to_owned(),
        url: url.to_owned(),
        visible: depth.visible,
        in_flight: depth.in_flight,
    })
}

/// Why a depth could not be read: the queue is gone, or the call failed.
enum DepthError {
    Missing,
    Ops(OpsError),
}
