//! The read models in the table `READ_MODELS_TABLE` (`tubes_platform::runtime::Env`), without idempotency
//! records: each document keeps the last sequence it applied.

use tubes_consumer_projections::Projections;
use tubes_platform::runtime::{self, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    runtime::serve_without_idempotency(&env, Projections::new(env.read_models()?)).await
}
