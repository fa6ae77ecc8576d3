//! The payments consumer over its ledger (`LEDGER_TABLE`) and the stream it publishes outcomes to
//! (`tubes_platform::runtime::Env`).

use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::Payments;
use tubes_platform::runtime::{self, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    let ledger = DynamoLedger::new(env.dynamodb().clone(), env.required("LEDGER_TABLE")?);
    runtime::serve(&env, Payments::new(ledger, env.publisher()?)).await
}
