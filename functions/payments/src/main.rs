//! The payments consumer's entry point: the ledger table and the stream come from the environment
//! (`LEDGER_TABLE`, `STREAM_NAME`); the rest as every consumer (`tubes_shared::runtime`).

use tubes_consumer_payments::dynamo::DynamoLedger;
use tubes_consumer_payments::Payments;
use tubes_shared::KinesisPublisher;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let aws = aws_config::load_from_env().await;
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), var("LEDGER_TABLE")?);
    let publisher = KinesisPublisher::new(aws_sdk_kinesis::Client::new(&aws), var("STREAM_NAME")?);
    tubes_shared::runtime::serve(Payments::new(ledger, publisher)).await
}
