//! Running a consumer as a Lambda function: the composition root ([`Env`]) hands out the adapters, and
//! [`serve`] runs the [`Harness`] over each invocation's Kinesis event until the runtime stops.
//!
//! ```no_run
//! # use tubes_platform::consumer::consumer_fn;
//! # use tubes_contract::EventType;
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     let env = tubes_platform::runtime::Env::load().await;
//!     let consumer = consumer_fn("logger", &[EventType::UserSignedUp], |_| async {
//!         Ok::<(), std::convert::Infallible>(())
//!     });
//!     tubes_platform::runtime::serve(&env, consumer).await
//! }
//! ```

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::layers::TracingLayer;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent, LambdaInvocation, Runtime};
use serde::de::IgnoredAny;

use crate::consumer::Consumer;
use crate::dead_letters::{AnyDeadLetters, DeadLetters};
use crate::harness::Harness;
use crate::idempotency::IdempotencyStore;
use crate::lambda_event::{KinesisBatch, PayloadError};
use crate::telemetry::Emf;

mod env;

pub use env::{dead_letter_queue_variable, Env, EnvError};

/// Serves `consumer` on the Lambda runtime API until the runtime stops, with the harness settings and adapters
/// `env` configures (dead letters, idempotency records, concurrency, attempts): each invocation's Kinesis event
/// is decoded in one pass ([`KinesisBatch`]) and answered with its batch item failures.
pub async fn serve<C: Consumer>(env: &Env, consumer: C) -> Result<(), Error> {
    let harness = harness(env, consumer)?;
    match env.idempotency()? {
        Some((store, times)) => run(harness.with_idempotency(store, times)).await,
        None => run(harness).await,
    }
}

/// Serves `consumer` as [`serve`] does, without idempotency records even where `IDEMPOTENCY_TABLE` is set: for a
/// consumer whose own state recognises what it already did (a read model keeps the last sequence it applied).
pub async fn serve_without_idempotency<C: Consumer>(env: &Env, consumer: C) -> Result<(), Error> {
    run(harness(env, consumer)?).await
}

/// The harness `env` configures for `consumer`, before idempotency: its dead letters, concurrency and attempts.
fn harness<C: Consumer>(env: &Env, consumer: C) -> Result<Harness<C, AnyDeadLetters>, EnvError> {
    let name = consumer.name();
    Ok(Harness::new(consumer, env.dead_letters(name))
        .with_concurrency(env.key_concurrency()?)
        .with_max_attempts(env.max_attempts()?))
}

async fn run<C: Consumer, D: DeadLetters, S: IdempotencyStore>(
    harness: Harness<C, D, S>,
) -> Result<(), Error> {
    // Metrics are a view, never a reason not to run: without a recorder the function runs unmeasured.
    let emf = Emf::install()
        .inspect_err(|err| tracing::warn!(error = %err, "no metrics recorder"))
        .ok();
    run_on_payloads(|payload, context| {
        let harness = &harness;
        let batch = KinesisBatch::from_payload(&payload);
        // Claims expire with this invocation (its deadline), so a retry after a timeout is not locked out.
        let deadline = i64::try_from(context.deadline).unwrap_or(i64::MAX);
        async move {
            // Not a Kinesis event: the invocation fails as it did when the runtime deserialised the payload, with
            // the same error type and message.
            let batch = batch?;
            let report = harness.run_until(batch, deadline).await;
            // One EMF document per invocation, written before the answer (Lambda may freeze us after it).
            if let Some(emf) = emf {
                emf.flush();
            }
            Ok::<KinesisEventResponse, Diagnostic>(report.response)
        }
    })
    .await
}

/// Runs `handler` on the Lambda runtime API with each invocation's payload bytes, which it parses itself (with
/// [`deserialize`], say): the runtime is left `null` to deserialise ([`TakePayload`]). Its answer is serialised
/// as the runtime serialises any handler's. How ingest runs: the runtime would read an HTTP API event through
/// `serde_path_to_error`, 1.65× a plain serde_json parse of the same bytes.
pub async fn run_on_payloads<F, Fut, R>(handler: F) -> Result<(), Error>
where
    F: Fn(Vec<u8>, lambda_runtime::Context) -> Fut,
    Fut: std::future::Future<Output = Result<R, Diagnostic>>,
    R: serde::Serialize,
{
    let payloads = Payloads::default();
    // As `lambda_runtime::run` composes it, with the payload taken first (see `TakePayload`).
    let handler = service_fn(|event: LambdaEvent<IgnoredAny>| {
        let run = payloads
            .take(&event.context.request_id)
            .map(|payload| handler(payload, event.context));
        async move {
            match run {
                Some(run) => run.await,
                None => Err(no_payload()),
            }
        }
    });
    Runtime::new(handler)
        .layer(TakePayload::layer(payloads.clone()))
        .layer(TracingLayer::new())
        .run()
        .await
}

/// `payload` as a `T`, read by serde_json's plain pass; when it does not deserialise, the error the runtime gives
/// for a payload it could not deserialise (its type and message, the JSON path of the fault included: only then is
/// the payload read again, through `serde_path_to_error`).
pub fn deserialize<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Diagnostic> {
    Ok(PayloadError::read(payload)?)
}

/// The error type the runtime reports for a payload it could not deserialise.
const DESERIALIZE_ERROR: &str = "lambda_runtime::deserializer::DeserializeError";

/// A payload that did not deserialise, reported as the runtime reports one: its error type and message.
impl From<PayloadError> for Diagnostic {
    fn from(err: PayloadError) -> Self {
        Diagnostic {
            error_type: DESERIALIZE_ERROR.into(),
            error_message: err.to_string(),
        }
    }
}

fn no_payload() -> Diagnostic {
    Diagnostic {
        error_type: "tubes_platform::runtime::NoPayload".into(),
        error_message: "the invocation's payload was not handed over".into(),
    }
}

/// What [`TakePayload`] hands the handler: the payload of the invocation under way, by its request id.
#[derive(Clone, Default)]
struct Payloads(Arc<Mutex<Option<Payload>>>);

/// An invocation's request id and payload bytes.
type Payload = (String, Vec<u8>);

impl Payloads {
    fn put(&self, request_id: String, payload: Vec<u8>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((request_id, payload));
    }

    /// The payload of `request_id`'s invocation, once.
    fn take(&self, request_id: &str) -> Option<Vec<u8>> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take() {
            Some((id, payload)) if id == request_id => Some(payload),
            _ => None,
        }
    }
}

/// Takes each invocation's payload bytes before the runtime deserialises them, for the handler to decode in one
/// pass ([`KinesisBatch::from_payload`]), and leaves the runtime `null` to deserialise (into `IgnoredAny`). The
/// runtime would read the bytes with `serde_path_to_error`, which records every member's key as it goes. Invocations
/// are one at a time (`Runtime::run`), so one slot holds the payload between this layer and the handler.
struct TakePayload<S> {
    inner: S,
    payloads: Payloads,
}

impl TakePayload<()> {
    /// The layer that puts each payload in `payloads`.
    fn layer<S>(payloads: Payloads) -> impl Layer<S, Service = TakePayload<S>> {
        lambda_runtime::tower::layer::layer_fn(move |inner| TakePayload {
            inner,
            payloads: payloads.clone(),
        })
    }
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakePayload<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let payload = std::mem::replace(&mut invocation.body, "null".into());
        // No copy: the runtime's buffer is moved into the `Vec` when nothing else shares it.
        self.payloads
            .put(invocation.context.request_id.clone(), payload.into());
        self.inner.call(invocation)
    }
}

#[cfg(test)]
mod tests {
    use std::future::{ready, Ready};

    use super::*;

    #[test]
    fn a_payload_deserialises_in_one_plain_pass_and_a_bad_one_fails_as_the_runtime_says() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Event {
            name: String,
            inner: Inner,
        }
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Inner {
            count: u32,
        }
        let event: Event = deserialize(br#"{"name":"a","inner":{"count":2}}"#).unwrap();
        assert_eq!(event.inner.count, 2);
        let err = deserialize::<Event>(br#"{"name":"a","inner":{"count":"two"}}"#).unwrap_err();
        assert_eq!(err.error_type, DESERIALIZE_ERROR);
        assert!(
            err.error_message.starts_with(
                "failed to deserialize the incoming data into the function's payload type: [inner.count] invalid type"
            ),
            "{}",
            err.error_message
        );
        let err = deserialize::<Event>(b"[1]").unwrap_err();
        assert_eq!(err.error_type, DESERIALIZE_ERROR);
    }

    /// The inner service: keeps the body the runtime would deserialise.
    struct Keep(Vec<Vec<u8>>);

    impl Service<LambdaInvocation> for Keep {
        type Response = ();
        type Error = Error;
        type Future = Ready<Result<(), Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
            self.0.push(invocation.body.to_vec());
            ready(Ok(()))
        }
    }

    fn invocation(request_id: &str, body: &'static [u8]) -> LambdaInvocation {
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.into();
        LambdaInvocation {
            parts: http::Response::new(()).into_parts().0,
            body: body.into(),
            context,
        }
    }

    #[tokio::test]
    async fn the_handler_gets_the_payload_bytes_and_the_runtime_null() {
        let payloads = Payloads::default();
        let mut service = TakePayload::layer(payloads.clone()).layer(Keep(Vec::new()));

        service
            .call(invocation("req-1", br#"{"Records":[]}"#))
            .await
            .unwrap();

        assert_eq!(service.inner.0, [b"null".to_vec()]);
        assert_eq!(
            serde_json::from_slice::<IgnoredAny>(b"null").ok(),
            Some(IgnoredAny)
        );
        // Another invocation's id takes nothing, and the payload is taken once.
        assert_eq!(payloads.take("req-2"), None);
        service
            .call(invocation("req-3", br#"{"Records":[]}"#))
            .await
            .unwrap();
        assert_eq!(
            payloads.take("req-3").as_deref(),
            Some(&br#"{"Records":[]}"#[..])
        );
        assert_eq!(payloads.take("req-3"), None);
    }
}
