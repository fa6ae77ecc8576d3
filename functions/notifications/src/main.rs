//! The notifications consumer over the configured mailer (`tubes_platform::runtime::Env`).

use tubes_consumer_notifications::{Notifications, NAME};
use tubes_platform::runtime::{self, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    runtime::serve(&env, Notifications::new(env.mailer(NAME)?)).await
}
