//! The query function: the readers (`READERS`, JSON, or the secret `READERS_SECRET_ARN`, read in the background
//! and again every `READERS_MAX_AGE_SECS`), the read models
//! (`READ_MODELS_TABLE`) and, for events' status, the idempotency records (`IDEMPOTENCY_TABLE`) of the consumers
//! named in `EVENT_CONSUMERS` (`tubes_platform::runtime::Env`) once, then the handler per request.

use std::time::Duration;

use lambda_http::{run, service_fn, Error, Request};
use tubes_platform::idempotency::ReadRecords;
use tubes_platform::read_model::ReadModelStore;
use tubes_platform::runtime::Env;
use tubes_query::{readers, Consumers, Query, Readers, ReadersSource, SecretReaders};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::load().await;
    // Inline readers are parsed now (a bad one stops the cold start); a secret is read while the runtime asks for
    // the first request, which waits for it: the secret store's round trip is not part of the cold start. Until it
    // is read, requests are answered 503.
    let readers = match env.optional("READERS") {
        Some(json) => ReadersSource::ready(Readers::parse(&json)?),
        None => ReadersSource::in_background(
            SecretReaders::new(
                aws_sdk_secretsmanager::Client::new(env.aws()),
                env.required("READERS_SECRET_ARN")?,
            ),
            env.parsed::<u64>("READERS_MAX_AGE_SECS")?
                .map_or(readers::DEFAULT_MAX_AGE, Duration::from_secs),
        ),
    };
    let query = Query::reading(env.read_models()?, readers);
    match env.idempotency()? {
        Some((records, _)) => {
            let consumers = Consumers::parse(&env.required("EVENT_CONSUMERS")?)?;
            serve(query.with_events(records, consumers)).await
        }
        None => serve(query).await,
    }
}

async fn serve<S: ReadModelStore, R: ReadRecords>(query: Query<S, R>) -> Result<(), Error> {
    run(service_fn(|request: Request| {
        let query = &query;
        async move { Ok::<_, Error>(query.handle(&request).await) }
    }))
    .await
}
