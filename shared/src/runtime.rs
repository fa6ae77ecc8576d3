//! Running a consumer as a Lambda function: the few lines every consumer's `main` would otherwise repeat.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::harness::{Consumer, DeadLetters, Harness, KinesisBatch, DEFAULT_CONCURRENCY};

/// Serves `consumer` on the Lambda runtime API until the runtime stops: each invocation's Kinesis event is
/// decoded in one pass ([`KinesisBatch`]) and answered with its batch item failures. Partition keys run
/// concurrently up to `TUBES_KEY_CONCURRENCY` (default [`DEFAULT_CONCURRENCY`]).
pub async fn serve<C: Consumer, D: DeadLetters>(consumer: C, dead_letters: D) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let concurrency = std::env::var("TUBES_KEY_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONCURRENCY);
    let harness = Harness::new(consumer, dead_letters).with_concurrency(concurrency);
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
