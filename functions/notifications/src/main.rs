//! The notifications consumer's entry point: e-mail as the environment configures it
//! (`tubes_shared::mail::MailConfig`: the outbox, SES or logs), the rest as every consumer (`tubes_shared::runtime`).

use tubes_consumer_notifications::{Notifications, NAME};
use tubes_shared::mail::AnyMailer;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mailer = AnyMailer::from_env(NAME).await?;
    tubes_shared::runtime::serve(Notifications::new(mailer)).await
}
