//! The unsubscribes consumer's entry point: the users table from `USERS_TABLE`, e-mail from the environment
//! (`tubes_shared::mail::AnyMailer`), the rest as every consumer (`tubes_shared::runtime`).

use tubes_consumer_unsubscribes::Unsubscribes;
use tubes_shared::mail::AnyMailer;
use tubes_shared::users::DynamoDirectory;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let aws = aws_config::load_from_env().await;
    let table = std::env::var("USERS_TABLE").map_err(|_| "USERS_TABLE is not set")?;
    let directory = DynamoDirectory::new(aws_sdk_dynamodb::Client::new(&aws), table);
    tubes_shared::runtime::serve(Unsubscribes::new(directory, AnyMailer::from_env())).await
}
