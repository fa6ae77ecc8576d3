//! The signups consumer over the users table and the configured mailer (`tubes_platform::runtime::Env`).

use tubes_consumer_signups::{Signups, NAME};
use tubes_platform::runtime::{self, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    runtime::serve(&env, Signups::new(env.users()?, env.mailer(NAME)?)).await
}
