//! Running a consumer as a Lambda function: the few lines every consumer's `main` would otherwise repeat.
//!
//! The environment (set by `template.yaml`, and locally by `tubes-local provision`) chooses the adapters:
//!
//! - `IDEMPOTENCY_TABLE`: claim every record in this DynamoDB table first ([`DynamoIdempotency`]); unset, every
//!   record is handled as delivered (at least once).
//! - `{CONSUMER}_DEAD_LETTER_QUEUE_URL` (e.g. `PAYMENTS_DEAD_LETTER_QUEUE_URL`): park permanent failures on this
//!   SQS queue ([`SqsDeadLetters`]); unset, they are logged (metadata only). Named per consumer because
//!   `cargo lambda watch` gives all functions one environment.
//! - `TUBES_KEY_CONCURRENCY`: partition keys worked on at once (default [`DEFAULT_CONCURRENCY`]).
//! - `TUBES_MAX_ATTEMPTS`: attempts after which a record that keeps failing retryably is parked (default
//!   [`DEFAULT_MAX_ATTEMPTS`]; counted by the idempotency records).
//! - `IDEMPOTENCY_TTL_SECS`: how long completed records are remembered (default 24 h).

use std::time::Duration;

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::dlq::SqsDeadLetters;
use crate::harness::{
    Consumer, DeadLetter, DeadLetterError, DeadLetters, Harness, IdempotencyTimes, KinesisBatch,
    LogDeadLetters, DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS,
};
use crate::idempotency::{DynamoIdempotency, IdempotencyStore};

/// The dead-letter adapter the environment chose.
#[derive(Debug, Clone)]
pub enum Parking {
    /// The consumer's SQS dead-letter queue.
    Queue(SqsDeadLetters),
    /// Logs only (no queue configured).
    Log(LogDeadLetters),
}

impl DeadLetters for Parking {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            Parking::Queue(q) => q.send(letter).await,
            Parking::Log(l) => l.send(letter).await,
        }
    }
}

/// The name of the variable that holds `consumer`'s dead-letter queue URL.
pub fn dead_letter_queue_variable(consumer: &str) -> String {
    format!(
        "{}_DEAD_LETTER_QUEUE_URL",
        consumer.to_ascii_uppercase().replace('-', "_")
    )
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Serves `consumer` on the Lambda runtime API until the runtime stops, with the adapters the environment
/// chooses (see the module docs): each invocation's Kinesis event is decoded in one pass ([`KinesisBatch`]) and
/// answered with its batch item failures.
pub async fn serve<C: Consumer>(consumer: C) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let aws = aws_config::load_from_env().await;
    let name = consumer.name();
    let parking = match std::env::var(dead_letter_queue_variable(name)) {
        Ok(url) if !url.is_empty() => {
            Parking::Queue(SqsDeadLetters::new(aws_sdk_sqs::Client::new(&aws), url))
        }
        _ => Parking::Log(LogDeadLetters),
    };
    let harness = Harness::new(consumer, parking)
        .with_concurrency(env_parse("TUBES_KEY_CONCURRENCY").unwrap_or(DEFAULT_CONCURRENCY))
        .with_max_attempts(env_parse("TUBES_MAX_ATTEMPTS").unwrap_or(DEFAULT_MAX_ATTEMPTS));
    match std::env::var("IDEMPOTENCY_TABLE") {
        Ok(table) if !table.is_empty() => {
            let times = IdempotencyTimes {
                ttl: env_parse("IDEMPOTENCY_TTL_SECS")
                    .map(Duration::from_secs)
                    .unwrap_or(IdempotencyTimes::default().ttl),
                ..IdempotencyTimes::default()
            };
            let store = DynamoIdempotency::new(aws_sdk_dynamodb::Client::new(&aws), table);
            run(harness.with_idempotency(store, times)).await
        }
        _ => run(harness).await,
    }
}

async fn run<C: Consumer, D: DeadLetters, I: IdempotencyStore>(
    harness: Harness<C, D, I>,
) -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<KinesisBatch>| {
        let harness = &harness;
        // Claims expire with this invocation (its deadline), so a retry after a timeout is not locked out.
        let deadline = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
        async move {
            Ok::<KinesisEventResponse, Error>(
                harness.run_until(event.payload, deadline).await.response,
            )
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_has_its_own_queue_variable() {
        assert_eq!(
            dead_letter_queue_variable("payments"),
            "PAYMENTS_DEAD_LETTER_QUEUE_URL"
        );
        assert_eq!(
            dead_letter_queue_variable("payment-notifications"),
            "PAYMENT_NOTIFICATIONS_DEAD_LETTER_QUEUE_URL"
        );
    }
}
