//! The payments consumer's entry point: the adapters come from the environment (`tubes_shared::runtime`).

use tubes_shared::effects::LogEffects;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tubes_shared::runtime::serve(tubes_consumer_payments::consumer(LogEffects)).await
}
