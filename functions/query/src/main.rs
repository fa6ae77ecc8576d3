//! The query function: the readers (`READERS`, JSON, or the secret `READERS_SECRET_ARN`) and the read models'
//! table (`READ_MODELS_TABLE`) once, then the handler per request.

use lambda_http::{run, service_fn, Error, Request};
use tubes_platform::read_model::DynamoReadModels;
use tubes_query::{Query, Readers};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tubes_platform::telemetry::logs::init();
    let aws = aws_config::load_from_env().await;
    let readers = match std::env::var("READERS").ok().filter(|v| !v.is_empty()) {
        Some(json) => json,
        None => {
            let arn = std::env::var("READERS_SECRET_ARN")
                .map_err(|_| "READERS or READERS_SECRET_ARN is required")?;
            aws_sdk_secretsmanager::Client::new(&aws)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await?
                .secret_string
                .unwrap_or_default()
        }
    };
    let table = std::env::var("READ_MODELS_TABLE").map_err(|_| "READ_MODELS_TABLE is required")?;
    let query = Query::new(
        DynamoReadModels::new(aws_sdk_dynamodb::Client::new(&aws), table),
        Readers::parse(&readers)?,
    );
    run(service_fn(|request: Request| {
        let query = &query;
        async move { Ok::<_, Error>(query.handle(&request).await) }
    }))
    .await
}
