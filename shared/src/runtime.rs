//! Running a consumer as a Lambda function: the few lines every consumer's `main` would otherwise repeat.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent};

use crate::harness::{Consumer, DeadLetters, Harness, KinesisBatch};

/// Serves `consumer` on the Lambda runtime API until the runtime stops: each invocation's Kinesis event is
/// decoded in one pass ([`KinesisBatch`]) and answered with its batch item failures.
pub async fn serve<C: Consumer, D: DeadLetters>(consumer: C, dead_letters: D) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let harness = Harness::new(consumer, dead_letters);
    lambda_runtime::run(service_fn(|event: LambdaEvent<KinesisBatch>| {
        let harness = &harness;
        async move { Ok::<KinesisEventResponse, Error>(harness.run(event.payload).await.response) }
    }))
    .await
}
