//! The cold-start baseline of `make bench-cold-start`: a hello-world `lambda_runtime` function that answers each
//! event with itself, on the same Tokio runtime flavour as the functions (`#[tokio::main]`, multi-threaded) and
//! built in the same profile, so the difference to it is what tubes adds before serving.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
