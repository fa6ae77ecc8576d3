//! The ingest Lambda's entry point: configuration and clients once, then the handler per request.

use lambda_http::{run, service_fn, Error, Request};
use tubes_ingest::{Config, Ingest};
use tubes_shared::KinesisPublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    // The default chain honours AWS_ENDPOINT_URL_KINESIS, which points the client at a local emulator.
    let aws = aws_config::load_from_env().await;
    let publisher = KinesisPublisher::new(aws_sdk_kinesis::Client::new(&aws), &config.stream_name);
    let ingest = Ingest::new(publisher, &config);
    run(service_fn(|request: Request| {
        let ingest = &ingest;
        async move { Ok::<_, Error>(ingest.handle(request).await) }
    }))
    .await
}
