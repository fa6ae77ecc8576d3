//! The unsubscribes consumer's entry point: the users table from `USERS_TABLE`, e-mail as the environment
//! configures it (`tubes_shared::mail::MailConfig`: the outbox, SES or logs), the rest as every consumer
//! (`tubes_shared::runtime`).

use tubes_consumer_unsubscribes::{Unsubscribes, NAME};
use tubes_shared::mail::AnyMailer;
use tubes_shared::users::DynamoDirectory;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let aws = aws_config::load_from_env().await;
    let table = std::env::var("USERS_TABLE").map_err(|_| "USERS_TABLE is not set")?;
    let directory = DynamoDirectory::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let mailer = AnyMailer::from_env(NAME).await?;
    tubes_shared::runtime::serve(Unsubscribes::new(directory, mailer)).await
}
