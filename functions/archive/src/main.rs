//! The archive over the bucket `ARCHIVE_BUCKET` (`tubes_platform::runtime::Env`).

use tubes_archive::Archive;
use tubes_platform::runtime::Env;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let env = Env::load().await;
    tubes_archive::serve(Archive::new(env.archive()?)).await
}
