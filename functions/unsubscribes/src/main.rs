//! The unsubscribes consumer over the users table and the configured mailer (`tubes_platform::runtime::Env`).

use tubes_consumer_unsubscribes::{Unsubscribes, NAME};
use tubes_platform::runtime::{self, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    runtime::serve(&env, Unsubscribes::new(env.users()?, env.mailer(NAME)?)).await
}
