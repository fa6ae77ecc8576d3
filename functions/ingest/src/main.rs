//! The ingest Lambda's entry point: configuration and clients once, the sources read in the background, then the
//! handler per request.

// The runtime's future nests the handler's whole pipeline (invoke → serve → write → retries): deeper than the default
// limit of layout queries.
#![recursion_limit = "256"]

use lambda_http::lambda_runtime::Error;
use tubes_ingest::sources::AnySourcesFetch;
use tubes_ingest::{Config, HttpApiEvent, Ingest, Sources};
use tubes_platform::telemetry::Emf;
use tubes_platform::KinesisPublisher;

/// How often ingest writes its metrics, at most.
const METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tubes_platform::telemetry::logs::init();
    let config = Config::from_env()?;
    // Once per process, with the one HTTPS client. The default chain honours AWS_ENDPOINT_URL_KINESIS /
    // _SECRETS_MANAGER, which point at local emulators.
    let aws = tubes_platform::aws::config::loader().load().await;
    // Read while the runtime asks for the first request, which waits for it: the secret store's round trip is
    // not part of the cold start. Until it is read, requests are answered 503 (sources_unavailable).
    let sources = Sources::in_background(
        AnySourcesFetch::new(&config.sources, &aws),
        config.allow_open_sources,
        config.sources_max_age,
    );
    // One retry policy, ingest's own (write.rs): failed entries only, with jitter, under the request's deadline.
    let kinesis = aws_sdk_kinesis::config::Builder::from(&aws)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let publisher = KinesisPublisher::new(
        aws_sdk_kinesis::Client::from_conf(kinesis),
        &config.stream_name,
    );
    let ingest = Ingest::new(publisher, &config, sources).measured();
    // Metrics are a view, never a reason not to serve: without a recorder ingest runs unmeasured.
    let emf = Emf::install()
        .inspect_err(|err| tracing::warn!(error = %err, "no metrics recorder"))
        .ok();
    // The HTTP API's events (and the function URL's, and `cargo lambda watch`'s: the same format) straight into
    // the handler, reading only what it needs: no `lambda_http` request in between, and a plain serde_json parse,
    // not the runtime's through `serde_path_to_error` (`make bench ARGS=invocation`).
    tubes_platform::runtime::run_on_payloads(|payload, _| {
        let ingest = &ingest;
        async move {
            let event: HttpApiEvent = tubes_platform::runtime::deserialize(&payload)?;
            let response = ingest.invoke(event).await;
            // Written before the answer (Lambda may freeze us after it), at most once a second: a flush costs
            // about a quarter of a request's own CPU (`make bench ARGS=metrics`); the meter keeps the rest.
            if let (Some(emf), Some(meter)) = (emf, ingest.meter()) {
                emf.flush_at_most_every(METRICS_INTERVAL, || meter.drain());
            }
            Ok(response)
        }
    })
    .await
}
