//! The query function: the readers (`READERS`, JSON, or the secret `READERS_SECRET_ARN`), the read models
//! (`READ_MODELS_TABLE`) and, for events' status, the idempotency records (`IDEMPOTENCY_TABLE`) of the consumers
//! named in `EVENT_CONSUMERS` (`tubes_platform::runtime::Env`) once, then the handler per request.

use lambda_http::{run, service_fn, Error, Request};
use tubes_platform::idempotency::ReadRecords;
use tubes_platform::read_model::ReadModelStore;
use tubes_platform::runtime::Env;
use tubes_query::{Consumers, Query, Readers};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = Env::load().await;
    let readers = match env.optional("READERS") {
        Some(json) => json,
        None => aws_sdk_secretsmanager::Client::new(env.aws())
            .get_secret_value()
            .secret_id(env.required("READERS_SECRET_ARN")?)
            .send()
            .await?
            .secret_string
            .unwrap_or_default(),
    };
    let query = Query::new(env.read_models()?, Readers::parse(&readers)?);
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
