//! The notifications consumer's entry point: e-mail from the environment (`tubes_shared::mail::AnyMailer`), the
//! rest as every consumer (`tubes_shared::runtime`).

use tubes_consumer_notifications::Notifications;
use tubes_shared::mail::AnyMailer;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tubes_shared::runtime::serve(Notifications::new(AnyMailer::from_env())).await
}
