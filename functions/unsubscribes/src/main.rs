//! The unsubscribes consumer's entry point.

use tubes_shared::effects::LogEffects;
use tubes_shared::harness::LogDeadLetters;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tubes_shared::runtime::serve(
        tubes_consumer_unsubscribes::consumer(LogEffects),
        LogDeadLetters,
    )
    .await
}
