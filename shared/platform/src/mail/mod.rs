//! The e-mail port: consumers ask for an e-mail with a deterministic idempotency key (`{consumer}:{what}:{id}`),
//! so a redelivered event asks for the same e-mail under the same key and the adapter sends it once.
//!
//! - [`SesMailer`] ([`ses`]): Amazon SES v2, each key claimed through an idempotency [`Guard`](crate::idempotency::Guard)
//!   before it is sent;
//! - [`OutboxMailer`] ([`outbox`]): the local adapter, an outbox file;
//! - [`LogMailer`] ([`log`]): logs that an e-mail would go out (metadata only), where no provider is configured;
//! - `MemoryMailer` (`memory`, feature `test-util`): kept in memory, for tests.
//!
//! [`AnyMailer`] is the one a [`MailConfig`] chooses (the runtime reads it from the environment).

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::classify::{Classify, Dependency};
use crate::idempotency::DynamoIdempotency;

pub mod log;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod outbox;
pub mod ses;

pub use log::LogMailer;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryMailer;
pub use outbox::OutboxMailer;
pub use ses::SesMailer;

/// One e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The same for every attempt at this e-mail; the adapter sends each key once.
    pub idempotency_key: String,
}

/// An e-mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("e-mail not sent: {message}")]
pub struct MailError {
    /// Why (no addresses or bodies: they are personal data).
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// Whether the mail service itself failed (it did not answer, throttled, answered 5xx), rather than this
    /// e-mail: the harness's circuit breaker counts these.
    pub outage: bool,
}

impl MailError {
    /// The mail service failed (did not answer, throttled, 5xx): the record is retried, and the failure counts
    /// towards the mail circuit breaker.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            outage: true,
        }
    }

    /// This e-mail cannot be sent yet (another invocation is sending it): the record is retried; the service is
    /// fine.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            outage: false,
        }
    }

    /// A failure that will not pass by retrying: the record is dead-lettered.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            outage: false,
        }
    }
}

impl Classify for MailError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }

    fn dependency(&self) -> Option<Dependency> {
        self.outage.then_some(Dependency::MAIL)
    }
}

/// Sends e-mail.
pub trait Mailer: Send + Sync {
    /// Sends `email`, once per idempotency key.
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send;
}

impl<M: Mailer> Mailer for &M {
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send {
        (**self).send(email)
    }
}

/// Which mailer, and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailConfig {
    /// [`OutboxMailer`] at this path.
    Outbox(PathBuf),
    /// [`SesMailer`].
    Ses {
        /// The sender, an SES-verified address or an address of a verified domain.
        from: String,
        /// The SES configuration set to send in.
        configuration_set: Option<String>,
        /// The table of the guard's idempotency records; without one, every attempt sends (at least once).
        idempotency_table: Option<String>,
    },
    /// [`LogMailer`].
    Log,
}

/// The mailer a [`MailConfig`] chooses.
#[derive(Debug)]
pub enum AnyMailer {
    /// The outbox file.
    Outbox(OutboxMailer),
    /// SES, once per key if it has a guard.
    Ses(SesMailer<DynamoIdempotency>),
    /// Logs only.
    Log(LogMailer),
}

impl AnyMailer {
    /// The mailer of `consumer` (it names the guard's records) that `config` chooses; the SES client is made from
    /// `aws`, the guard's records are written with `dynamodb`.
    pub fn new(
        config: MailConfig,
        consumer: &str,
        aws: &aws_config::SdkConfig,
        dynamodb: &aws_sdk_dynamodb::Client,
    ) -> Self {
        match config {
            MailConfig::Outbox(path) => AnyMailer::Outbox(OutboxMailer::new(path)),
            MailConfig::Log => AnyMailer::Log(LogMailer),
            MailConfig::Ses {
                from,
                configuration_set,
                idempotency_table,
            } => {
                let mut ses = SesMailer::from_sdk_config(aws, consumer, from);
                if let Some(set) = configuration_set {
                    ses = ses.with_configuration_set(set);
                }
                let guard = idempotency_table.map(|t| DynamoIdempotency::new(dynamodb.clone(), t));
                AnyMailer::Ses(ses.guarded_by(guard))
            }
        }
    }
}

impl Mailer for AnyMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            AnyMailer::Outbox(o) => o.send(email).await,
            AnyMailer::Ses(s) => s.send(email).await,
            AnyMailer::Log(l) => l.send(email).await,
        }
    }
}
