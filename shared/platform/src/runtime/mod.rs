//! Running a consumer as a Lambda function: the composition root ([`Env`]) hands out the adapters, and
//! [`serve`] runs the [`Harness`] over each invocation's Kinesis event until the runtime stops.
//!
//! ```no_run
//! # use tubes_platform::consumer::consumer_fn;
//! # use tubes_contract::EventType;
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     let env = tubes_platform::runtime::Env::load().await;
//!     let consumer = consumer_fn("logger", &[EventType::UserSignedUp], |_| async {
//!         Ok::<(), std::convert::Infallible>(())
//!     });
//!     tubes_platform::runtime::serve(&env, consumer).await
//! }
//! ```

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::consumer::Consumer;
use crate::dead_letters::{AnyDeadLetters, DeadLetters};
use crate::harness::Harness;
use crate::idempotency::IdempotencyStore;
use crate::lambda_event::KinesisBatch;
use crate::telemetry::Emf;

mod env;

pub use env::{dead_letter_queue_variable, Env, EnvError};

/// Serves `consumer` on the Lambda runtime API until the runtime stops, with the harness settings and adapters
/// `env` configures (dead letters, idempotency records, concurrency, attempts): each invocation's Kinesis event
/// is decoded in one pass ([`KinesisBatch`]) and answered with its batch item failures.
pub async fn serve<C: Consumer>(env: &Env, consumer: C) -> Result<(), Error> {
    let harness = harness(env, consumer)?;
    match env.idempotency()? {
        Some((store, times)) => run(harness.with_idempotency(store, times)).await,
        None => run(harness).await,
    }
}

/// Serves `consumer` as [`serve`] does, without idempotency records even where `IDEMPOTENCY_TABLE` is set: for a
/// consumer whose own state recognises what it already did (a read model keeps the last sequence it applied).
pub async fn serve_without_idempotency<C: Consumer>(env: &Env, consumer: C) -> Result<(), Error> {
    run(harness(env, consumer)?).await
}

/// The harness `env` configures for `consumer`, before idempotency: its dead letters, concurrency and attempts.
fn harness<C: Consumer>(env: &Env, consumer: C) -> Result<Harness<C, AnyDeadLetters>, EnvError> {
    let name = consumer.name();
    Ok(Harness::new(consumer, env.dead_letters(name))
        .with_concurrency(env.key_concurrency()?)
        .with_max_attempts(env.max_attempts()?))
}

async fn run<C: Consumer, D: DeadLetters, S: IdempotencyStore>(
    harness: Harness<C, D, S>,
) -> Result<(), Error> {
    // Metrics are a view, never a reason not to run: without a recorder the function runs unmeasured.
    let emf = Emf::install()
        .inspect_err(|err| tracing::warn!(error = %err, "no metrics recorder"))
        .ok();
    lambda_runtime::run(service_fn(|event: LambdaEvent<KinesisBatch>| {
        let harness = &harness;
        // Claims expire with this invocation (its deadline), so a retry after a timeout is not locked out.
        let deadline = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
        async move {
            let report = harness.run_until(event.payload, deadline).await;
            // One EMF document per invocation, written before the answer (Lambda may freeze us after it).
            if let Some(emf) = emf {
                emf.flush();
            }
            Ok::<KinesisEventResponse, Error>(report.response)
        }
    }))
    .await
}
