//! `send`: POST catalogue examples to ingest as the demo source (its API key, from `demo.env`), and print what
//! ingest answered.

use serde_json::Value;
use tubes_contract::EventType;

use super::sample::{self, Identity, Set};
use super::stack::Stack;
use super::DevError;

/// `send TYPE [--set PATH=VALUE …] [--subject S] [--count N]`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "PATH: `amount` is data.amount; `data.currency`, `subject`, `traceparent` start at the \
    envelope, as does a leading dot (`.myext`). VALUE: JSON if it parses (999, -1, true, \"42\"), else a string; \
    {i} is the event's number under --count.\n\
    Example: tubes-dev send payment.received --set amount=999 --set payment_id=pay_{i} --count 3"
)]
pub struct SendArgs {
    /// The event's type (payment.received, account.opened, user.signed_up, …).
    #[arg(value_parser = sample::parse_type, value_name = "TYPE")]
    pub(super) ty: EventType,
    /// Override a member of the example: PATH=VALUE (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = Set::parse)]
    pub(super) set: Vec<Set>,
    /// The subject (and the data's aggregate id: account_id, user_id).
    #[arg(long)]
    pub(super) subject: Option<String>,
    /// How many events to send, one request each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) count: u64,
}

/// What ingest answered one POST.
#[derive(Debug)]
pub(super) struct Answer {
    /// The HTTP status.
    pub(super) status: u16,
    /// The body: JSON when it is, else its text.
    pub(super) body: Value,
}

impl Answer {
    /// The body as a person reads it.
    pub(super) fn body_text(&self) -> String {
        match &self.body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// POSTs one event to ingest with the demo source's key.
pub(super) async fn post(stack: &Stack, key: &str, event: &Value) -> Result<Answer, DevError> {
    let url = stack.ingest_url();
    let response = stack
        .http
        .post(&url)
        .header("content-type", "application/cloudevents+json")
        .header("authorization", format!("Bearer {key}"))
        .body(event.to_string())
        .send()
        .await
        .map_err(|e| stack.unreachable(&format!("ingest at {url}"), "TUBES_HTTP_PORT", e))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| stack.unreachable(&format!("ingest at {url}"), "TUBES_HTTP_PORT", e))?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer { status, body })
}

pub(super) async fn run(stack: &Stack, args: SendArgs) -> Result<(), DevError> {
    let key = stack.demo_api_key()?;
    for n in 0..args.count {
        let event = sample::event(
            args.ty,
            Identity::Ingest,
            args.subject.as_deref(),
            &args.set,
            n,
        )?;
        let answer = post(stack, &key, &event).await?;
        println!("{} {}", answer.status, answer.body_text());
        if answer.status >= 400 {
            return Err(DevError::Refused(format!(
                "ingest refused the {} event ({}): {}",
                args.ty.as_str(),
                answer.status,
                answer.body_text()
            )));
        }
    }
    Ok(())
}
