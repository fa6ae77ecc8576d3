//! The composition root of a consumer function: the one place that reads the environment (every variable a
//! consumer reads is named here, with one error style) and loads the AWS configuration, once per cold start,
//! then hands out the adapters. Each consumer's `main.rs` only says which consumer over which ports.
//!
//! | Variable | Read by | Meaning |
//! |---|---|---|
//! | `IDEMPOTENCY_TABLE` | [`Env::idempotency`], [`Env::mail_config`] | claim every record (and guard every e-mail) in this DynamoDB table; unset: at least once |
//! | `IDEMPOTENCY_TTL_SECS` | [`Env::idempotency`] | how long completed records are remembered (default 24 h) |
//! | `{CONSUMER}_DEAD_LETTER_QUEUE_URL` | [`Env::dead_letters`] | park permanent failures on this SQS queue; unset: log them (metadata only). Named per consumer because `cargo lambda watch` gives all functions one environment |
//! | `TUBES_KEY_CONCURRENCY` | [`Env::key_concurrency`] | partition keys worked on at once (default 8) |
//! | `TUBES_MAX_ATTEMPTS` | [`Env::max_attempts`] | attempts after which a record that keeps failing retryably is parked (default 5) |
//! | `TUBES_OUTBOX`, `MAIL_FROM`, `SES_CONFIGURATION_SET` | [`Env::mail_config`] | the mailer: the outbox file (wins: the local stack sets it), else SES from `MAIL_FROM`, else logs |
//! | `USERS_TABLE` | [`Env::users`] | the users directory's table |
//! | `STREAM_NAME` | [`Env::publisher`] | the stream a consumer publishes to |
//! | `READ_MODELS_TABLE` | [`Env::read_models`] | the read models' table |
//! | `ARCHIVE_BUCKET` | [`Env::archive`] | the event store's bucket |
//! | `AWS_ENDPOINT_URL_S3` | [`Env::s3`] | set (an emulator): buckets addressed by path |
//! | any other, e.g. `LEDGER_TABLE` | [`Env::required`] | a consumer's own setting |
//!
//! An empty value counts as unset (the template's empty defaults); a value that does not parse stops the cold
//! start with an [`EnvError`] naming the variable.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use crate::archive::S3Objects;
use crate::dead_letters::{AnyDeadLetters, LogDeadLetters, SqsDeadLetters};
use crate::harness::{DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS};
use crate::idempotency::{DynamoIdempotency, IdempotencyTimes};
use crate::mail::{AnyMailer, MailConfig};
use crate::publish::KinesisPublisher;
use crate::read_model::DynamoReadModels;
use crate::users::DynamoDirectory;

/// A setting is missing or malformed; the function refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required")]
    Missing(String),
    /// A variable does not parse.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: String,
        /// Why.
        reason: String,
    },
}

type Vars = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The environment of a consumer function, and the AWS clients made from it (once each).
pub struct Env {
    vars: Vars,
    aws: aws_config::SdkConfig,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    kinesis: OnceLock<aws_sdk_kinesis::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// How long a consumer's AWS call may take: a store or service that hangs (a network partition, an overloaded
/// endpoint) must fail the call in seconds, as a dependency failure the circuit breakers count, not hold the
/// invocation until Lambda kills it (which would count against the record as a crash). Connect 1 s, each attempt
/// 3 s, the call with the SDK's retries 10 s.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

/// The name of the variable that holds `consumer`'s dead-letter queue URL.
pub fn dead_letter_queue_variable(consumer: &str) -> String {
    format!(
        "{}_DEAD_LETTER_QUEUE_URL",
        consumer.to_ascii_uppercase().replace('-', "_")
    )
}

impl Env {
    /// The cold start: logging on, the process environment, the AWS configuration loaded once (its default chain
    /// honours `AWS_ENDPOINT_URL_*`, which the local stack points at its emulators), with [`sdk_timeouts`] and the
    /// one HTTPS client every client made from it shares ([`crate::aws::config`]).
    pub async fn load() -> Self {
        crate::telemetry::logs::init();
        let aws = crate::aws::config::loader()
            .timeout_config(sdk_timeouts())
            .load()
            .await;
        Self::new(aws, |name| std::env::var(name).ok())
    }

    /// An environment of `vars` (a variable's value, if set) over the AWS configuration `aws`.
    pub fn new(
        aws: aws_config::SdkConfig,
        vars: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            vars: Box::new(vars),
            aws,
            dynamodb: OnceLock::new(),
            kinesis: OnceLock::new(),
            sqs: OnceLock::new(),
        }
    }

    /// The AWS configuration.
    pub fn aws(&self) -> &aws_config::SdkConfig {
        &self.aws
    }

    /// The variable `name`, if set and not empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.vars)(name).filter(|v| !v.trim().is_empty())
    }

    /// The variable `name`, which must be set.
    pub fn required(&self, name: &str) -> Result<String, EnvError> {
        self.optional(name)
            .ok_or_else(|| EnvError::Missing(name.to_owned()))
    }

    /// The variable `name` parsed, if set.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, EnvError>
    where
        T::Err: std::fmt::Display,
    {
        self.optional(name)
            .map(|v| {
                v.trim().parse().map_err(|e: T::Err| EnvError::Invalid {
                    name: name.to_owned(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// The DynamoDB client (one per cold start).
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| aws_sdk_dynamodb::Client::new(&self.aws))
    }

    /// The Kinesis client (one per cold start).
    pub fn kinesis(&self) -> &aws_sdk_kinesis::Client {
        self.kinesis
            .get_or_init(|| aws_sdk_kinesis::Client::new(&self.aws))
    }

    fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.aws))
    }

    /// The idempotency records (`IDEMPOTENCY_TABLE`) and their times (`IDEMPOTENCY_TTL_SECS`), if configured.
    pub fn idempotency(&self) -> Result<Option<(DynamoIdempotency, IdempotencyTimes)>, EnvError> {
        let Some(table) = self.optional("IDEMPOTENCY_TABLE") else {
            return Ok(None);
        };
        let mut times = IdempotencyTimes::default();
        if let Some(secs) = self.parsed("IDEMPOTENCY_TTL_SECS")? {
            times.ttl = Duration::from_secs(secs);
        }
        Ok(Some((
            DynamoIdempotency::new(self.dynamodb().clone(), table),
            times,
        )))
    }

    /// Where `consumer` parks permanent failures: its queue (`{CONSUMER}_DEAD_LETTER_QUEUE_URL`), else logs.
    pub fn dead_letters(&self, consumer: &str) -> AnyDeadLetters {
        match self.optional(&dead_letter_queue_variable(consumer)) {
            Some(url) => AnyDeadLetters::Queue(SqsDeadLetters::new(self.sqs().clone(), url)),
            None => AnyDeadLetters::Log(LogDeadLetters),
        }
    }

    /// Partition keys worked on at once (`TUBES_KEY_CONCURRENCY`).
    pub fn key_concurrency(&self) -> Result<usize, EnvError> {
        Ok(self
            .parsed("TUBES_KEY_CONCURRENCY")?
            .unwrap_or(DEFAULT_CONCURRENCY))
    }

    /// Attempts after which a record that keeps failing is parked (`TUBES_MAX_ATTEMPTS`).
    pub fn max_attempts(&self) -> Result<u32, EnvError> {
        Ok(self
            .parsed("TUBES_MAX_ATTEMPTS")?
            .unwrap_or(DEFAULT_MAX_ATTEMPTS))
    }

    /// The e-mail configuration, in this order: `TUBES_OUTBOX` (the local stack sets it, so it wins there even
    /// when the template's `MAIL_FROM` is resolved locally); `MAIL_FROM` (SES from this verified address, in the
    /// configuration set `SES_CONFIGURATION_SET` if set, each key sent once under the guard of the records in
    /// `IDEMPOTENCY_TABLE`; without it every attempt sends); neither: e-mails are logged. A `MAIL_FROM` that is
    /// no address is refused here, at cold start, rather than by SES for every e-mail.
    pub fn mail_config(&self) -> Result<MailConfig, EnvError> {
        if let Some(path) = self.optional("TUBES_OUTBOX") {
            return Ok(MailConfig::Outbox(path.into()));
        }
        let Some(from) = self.optional("MAIL_FROM") else {
            return Ok(MailConfig::Log);
        };
        if !from.contains('@') || from.chars().any(char::is_control) {
            return Err(EnvError::Invalid {
                name: "MAIL_FROM".into(),
                reason: "must be an e-mail address (an SES-verified identity)".into(),
            });
        }
        Ok(MailConfig::Ses {
            from,
            configuration_set: self.optional("SES_CONFIGURATION_SET"),
            idempotency_table: self.optional("IDEMPOTENCY_TABLE"),
        })
    }

    /// The mailer of `consumer` ([`Env::mail_config`]).
    pub fn mailer(&self, consumer: &str) -> Result<AnyMailer, EnvError> {
        Ok(AnyMailer::new(
            self.mail_config()?,
            consumer,
            &self.aws,
            self.dynamodb(),
        ))
    }

    /// The users directory (`USERS_TABLE`).
    pub fn users(&self) -> Result<DynamoDirectory, EnvError> {
        Ok(DynamoDirectory::new(
            self.dynamodb().clone(),
            self.required("USERS_TABLE")?,
        ))
    }

    /// The read models (`READ_MODELS_TABLE`).
    pub fn read_models(&self) -> Result<DynamoReadModels, EnvError> {
        Ok(DynamoReadModels::new(
            self.dynamodb().clone(),
            self.required("READ_MODELS_TABLE")?,
        ))
    }

    /// An S3 client. Against an S3 endpoint of its own (`AWS_ENDPOINT_URL_S3`, the local stack's emulator)
    /// buckets are addressed by path: a host name per bucket needs DNS.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.aws)
            .force_path_style(self.optional("AWS_ENDPOINT_URL_S3").is_some())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The event store's objects (`ARCHIVE_BUCKET`), through [`Env::s3`].
    pub fn archive(&self) -> Result<S3Objects, EnvError> {
        Ok(S3Objects::new(self.s3(), self.required("ARCHIVE_BUCKET")?))
    }

    /// A publisher to the event stream (`STREAM_NAME`).
    pub fn publisher(&self) -> Result<KinesisPublisher, EnvError> {
        Ok(KinesisPublisher::new(
            self.kinesis().clone(),
            self.required("STREAM_NAME")?,
        ))
    }
}

#[cfg(test)]
mod tests;
