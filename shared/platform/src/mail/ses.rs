//! The AWS e-mail adapter: [`SesMailer`] sends each [`Email`] with SES v2 `SendEmail` (simple content: a UTF-8
//! subject and text body), from the configured address (`MAIL_FROM`), in an optional configuration set
//! (`SES_CONFIGURATION_SET`).
//!
//! **Once per key.** SES has no idempotency token, so sends are guarded by the consumers' idempotency records,
//! through the one idempotency protocol ([`Guard`]; in AWS over
//! [`DynamoIdempotency`](crate::idempotency::DynamoIdempotency) on `IDEMPOTENCY_TABLE`): the key is claimed before
//! `SendEmail`, completed once SES accepted the message and released when it did not. The record is `{consumer}#mail {idempotency key}` ([`record_key`]): it starts with
//! `{consumer}#`, the prefix each consumer's IAM policy allows (`dynamodb:LeadingKeys`), and the space, which
//! event ids cannot contain, keeps it apart from the harness's `{consumer}#{event id}` records. Its hash is the
//! idempotency key's, not the content's: a welcome mail rendered again with another name is the same e-mail,
//! already sent. A key already completed is skipped; one being sent elsewhere is a retryable error.
//!
//! **What remains.** A crash (or a lost completion) after SES accepted a message and before its record was
//! completed leaves the claim locked until [`DEFAULT_LOCK`] passes; then the next attempt sends it once more.
//! A timeout is ambiguous in the same way (SES may have accepted the message): the claim is released and the
//! retry may send it again. To trace such a resend, every message carries its key: the header
//! [`IDEMPOTENCY_HEADER`] and the tag [`IDEMPOTENCY_TAG`] ([`tag_value`], as tags allow only `[A-Za-z0-9_-]`),
//! which reaches a configuration set's event destinations.
//!
//! **Errors** are classified for the harness ([`MailError::retryable`](super::MailError::retryable)): throttling, quotas, 5xx and transport
//! failures are retried; a rejection of this message or of the sending setup is permanent, and the record is
//! dead-lettered (redrive it once the setup is fixed). Error messages carry SES's error code and request id,
//! never an address or a body.

use std::convert::Infallible;
use std::time::Duration;

use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{
    Body, Content, Destination, EmailContent, Message, MessageHeader, MessageTag,
};

use super::{Email, MailError, Mailer};
use crate::aws;
use crate::idempotency::{self, Attempt, Entry, Guard, IdempotencyStore, IdempotencyTimes};

/// The header that carries an e-mail's idempotency key to the provider.
pub const IDEMPOTENCY_HEADER: &str = "X-Tubes-Idempotency-Key";

/// The message tag that carries the idempotency key ([`tag_value`]-encoded).
pub const IDEMPOTENCY_TAG: &str = "tubes-idempotency-key";

/// The message tag that names the consumer that sent the e-mail.
pub const CONSUMER_TAG: &str = "tubes-consumer";

/// How long a claim holds a key: well over a send (the client built by [`SesMailer::from_sdk_config`] gives
/// up after [`SEND_TIMEOUT`]), so a live sender never loses it, and short, so that a crashed sender holds the
/// e-mail back only briefly.
pub const DEFAULT_LOCK: Duration = Duration::from_secs(60);

/// How long a sent key is remembered (the e-mail is not sent again within it): longer than the stream keeps
/// records, so no redelivery or replay sends it twice.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The longest a `SendEmail` call may take, its retries included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// SES's limits on a tag value and a header value.
const MAX_TAG_LEN: usize = 256;
const MAX_HEADER_LEN: usize = 870;

/// The idempotency record of the e-mail `idempotency_key` sent by `consumer`.
pub fn record_key(consumer: &str, idempotency_key: &str) -> String {
    idempotency::key(consumer, &format!("mail {idempotency_key}"))
}

/// `key` as a tag value (only `[A-Za-z0-9_-]`, at most 256 characters): letters, digits and `_` stay, any other
/// byte becomes `-XX` (its hex), so the key can be read back. A key whose encoding would be too long becomes
/// `-sha256-` and the key's SHA-256 in hex (`-s` is no escape, so the two forms cannot be confused).
pub fn tag_value(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("-{b:02X}"));
        }
    }
    if out.is_empty() || out.len() > MAX_TAG_LEN {
        format!("-sha256-{}", idempotency::payload_hash(key.as_bytes()))
    } else {
        out
    }
}

/// `key` as a header value: itself when it is printable ASCII of a header's length, else [`tag_value`].
fn header_value(key: &str) -> String {
    if !key.is_empty() && key.len() <= MAX_HEADER_LEN && key.bytes().all(|b| b.is_ascii_graphic()) {
        key.to_owned()
    } else {
        tag_value(key)
    }
}

/// Whether a `SendEmail` error may pass on a retry.
pub fn is_retryable(err: &SdkError<SendEmailError, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(e) => service_error_is_retryable(e.err(), e.raw().status().as_u16()),
        // The request could not be built from this e-mail: it never will be.
        SdkError::ConstructionFailure(_) => false,
        // Timeouts, connection failures and unreadable answers: the network or SES, not the e-mail.
        _ => true,
    }
}

/// Whether an error SES answered with (HTTP `status`) may pass on a retry.
pub fn service_error_is_retryable(err: &SendEmailError, status: u16) -> bool {
    match err {
        // Rate (TooManyRequests) and daily quota (LimitExceeded) both refill with time.
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => {
            true
        }
        // This message (MessageRejected: e.g. an unverified sender, a virus) or request (BadRequest) is refused
        // as it is; the sending setup is wrong (MAIL FROM domain, a missing configuration set); or sending is
        // stopped on purpose and for long (an account suspended, a configuration set or account paused), beyond
        // what the stream's retries would wait. All need a person: dead-letter, fix, redrive.
        SendEmailError::MessageRejected(_)
        | SendEmailError::BadRequestException(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_)
        | SendEmailError::NotFoundException(_)
        | SendEmailError::AccountSuspendedException(_)
        | SendEmailError::SendingPausedException(_) => false,
        // Codes not modelled for SendEmail: AWS's throttling and expired-credential codes, 429 and 5xx pass;
        // other 4xx (AccessDenied: the policy) need a fix.
        _ => {
            matches!(
                err.code(),
                Some(
                    "Throttling"
                        | "ThrottlingException"
                        | "ThrottledException"
                        | "RequestThrottled"
                        | "RequestTimeout"
                        | "RequestTimeoutException"
                        | "ExpiredToken"
                        | "ExpiredTokenException"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                )
            ) || status == 429
                || status >= 500
        }
    }
}

/// E-mail through Amazon SES v2, once per idempotency key through a [`Guard`] over the store `S` (see the module
/// docs); without a guard every call sends.
#[derive(Debug, Clone)]
pub struct SesMailer<S = Infallible> {
    client: aws_sdk_sesv2::Client,
    consumer: String,
    from: String,
    configuration_set: Option<String>,
    guard: Option<Guard<S>>,
}

/// The guard's times: a claim locks a key for [`DEFAULT_LOCK`]; a sent key is remembered for [`DEFAULT_TTL`].
const TIMES: IdempotencyTimes = IdempotencyTimes {
    lock: DEFAULT_LOCK,
    ttl: DEFAULT_TTL,
};

impl SesMailer {
    /// Sends for `consumer` (which names the guard's records) from the verified address `from`, unguarded.
    pub fn new(
        client: aws_sdk_sesv2::Client,
        consumer: impl Into<String>,
        from: impl Into<String>,
    ) -> Self {
        Self {
            client,
            consumer: consumer.into(),
            from: from.into(),
            configuration_set: None,
            guard: None,
        }
    }

    /// As [`SesMailer::new`], with a client from `config` whose calls give up after [`SEND_TIMEOUT`].
    pub fn from_sdk_config(
        config: &aws_config::SdkConfig,
        consumer: impl Into<String>,
        from: impl Into<String>,
    ) -> Self {
        let conf = aws_sdk_sesv2::config::Builder::from(config)
            .timeout_config(
                aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(SEND_TIMEOUT)
                    .build(),
            )
            .build();
        Self::new(aws_sdk_sesv2::Client::from_conf(conf), consumer, from)
    }
}

impl<I> SesMailer<I> {
    /// Sends in this SES configuration set (event publishing, suppression, dedicated IPs).
    pub fn with_configuration_set(mut self, name: impl Into<String>) -> Self {
        self.configuration_set = Some(name.into());
        self
    }

    /// The same mailer, each send guarded by idempotency records in `store` (see the module docs); `None`:
    /// every call sends.
    pub fn guarded_by<J: IdempotencyStore>(self, store: Option<J>) -> SesMailer<J> {
        SesMailer {
            client: self.client,
            consumer: self.consumer,
            from: self.from,
            configuration_set: self.configuration_set,
            guard: store.map(|s| Guard::new(s, TIMES)),
        }
    }

    /// One `SendEmail` call; SES's message id.
    async fn submit(&self, email: &Email) -> Result<Option<String>, MailError> {
        let utf8 = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|e| MailError::permanent(format!("SES message: {e}")))
        };
        let tag = |name: &str, value: String| {
            MessageTag::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| MailError::permanent(format!("SES message tag: {e}")))
        };
        let header = MessageHeader::builder()
            .name(IDEMPOTENCY_HEADER)
            .value(header_value(&email.idempotency_key))
            .build()
            .map_err(|e| MailError::permanent(format!("SES message header: {e}")))?;
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(Body::builder().text(utf8(&email.text)?).build())
            .headers(header)
            .build();
        let request = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .email_tags(tag(IDEMPOTENCY_TAG, tag_value(&email.idempotency_key))?)
            .email_tags(tag(CONSUMER_TAG, tag_value(&self.consumer))?)
            .set_configuration_set_name(self.configuration_set.clone());
        match request.send().await {
            Ok(out) => Ok(out.message_id().map(str::to_owned)),
            Err(err) => Err(if is_retryable(&err) {
                MailError::retryable(aws::describe_code("SES SendEmail", &err))
            } else {
                MailError::permanent(aws::describe_code("SES SendEmail", &err))
            }),
        }
    }
}

impl<S: IdempotencyStore> Mailer for SesMailer<S> {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let key = &email.idempotency_key;
        let Some(guard) = &self.guard else {
            let message_id = self.submit(email).await?;
            tracing::debug!(key = %key, message_id = message_id.as_deref().unwrap_or(""), guarded = false, "e-mail sent");
            return Ok(());
        };
        // The hash is the key's, not the content's: the same e-mail rendered again is already sent.
        let record = record_key(&self.consumer, key);
        let ticket = match guard
            .claim(
                record.clone(),
                idempotency::payload_hash(key.as_bytes()),
                None,
                Vec::new(),
            )
            .await
            .map_err(|e| MailError::retryable(e.to_string()))?
        {
            Entry::Acquired(ticket) => ticket,
            Entry::Completed => {
                tracing::debug!(key = %key, "e-mail already sent");
                return Ok(());
            }
            Entry::InProgress => {
                return Err(MailError::busy(format!(
                    "e-mail {key} is being sent by another invocation"
                )))
            }
            // Only a record of another kind under the same key could differ in hash (see `record_key`).
            Entry::Conflict => {
                return Err(MailError::permanent(format!(
                    "idempotency record {record} holds something else than e-mail {key}"
                )))
            }
        };
        match self.submit(email).await {
            Ok(message_id) => {
                // Sent: a failure to record it is logged by the ticket, not the record's failure (its retry would
                // send it again at once).
                ticket.complete().await;
                tracing::debug!(key = %key, message_id = message_id.as_deref().unwrap_or(""), guarded = true, "e-mail sent");
                Ok(())
            }
            Err(err) => {
                // Nothing counts this record's attempts (the consumer's record does): keep them.
                ticket.release(Attempt::Keep).await;
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests;
