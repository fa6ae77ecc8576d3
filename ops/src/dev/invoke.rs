//! `invoke`: one consumer function, handed a Kinesis event as the event source mapping would hand it (what
//! `sam local invoke` does), without the stream: a recorded event as it is, or a sample event of a catalogue type
//! encoded as ingest writes it, in a one-record event with Lambda's members in Lambda's order. The answer is read
//! as the mapping reads it: a function error, or `batchItemFailures`, is a failure.

use std::path::PathBuf;

use serde_json::Value;
use tubes_contract::{codec, EventType};
use tubes_platform::lambda_event::{
    function_error, kinesis_event, verdict, BatchSource, Invocation, KinesisEvent, SequenceNumber,
    StreamRecord, Verdict,
};

use super::sample::{self, Identity, Set};
use super::stack::Stack;
use super::DevError;

/// The consumer functions of the template: (short name, binary, logical id).
const FUNCTIONS: &[(&str, &str, &str)] = &[
    ("payments", "tubes-consumer-payments", "PaymentsFunction"),
    ("signups", "tubes-consumer-signups", "SignupsFunction"),
    (
        "unsubscribes",
        "tubes-consumer-unsubscribes",
        "UnsubscribesFunction",
    ),
    (
        "notifications",
        "tubes-consumer-notifications",
        "NotificationsFunction",
    ),
    (
        "projections",
        "tubes-consumer-projections",
        "ProjectionsFunction",
    ),
    ("archive", "tubes-archive", "ArchiveFunction"),
];

/// `invoke FUNCTION (--event FILE | --sample TYPE [--set PATH=VALUE …] [--subject S])`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["event", "sample"])))]
pub struct InvokeArgs {
    /// The function: payments, signups, unsubscribes, notifications, projections, archive (or its binary name,
    /// tubes-consumer-payments, or its logical id, PaymentsFunction).
    function: String,
    /// A recorded Lambda Kinesis event (JSON), sent as it is.
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// A sample event of this type (its catalogue example), in a one-record Kinesis event.
    #[arg(long, value_name = "TYPE", value_parser = sample::parse_type)]
    sample: Option<EventType>,
    /// Override a member of the sample: PATH=VALUE (as `send --set`).
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = Set::parse, conflicts_with = "event")]
    set: Vec<Set>,
    /// The sample's subject (and its aggregate id).
    #[arg(long, conflicts_with = "event")]
    subject: Option<String>,
}

/// The binary (the function's name on `cargo lambda watch`) `name` means.
fn resolve(name: &str) -> Result<&'static str, DevError> {
    FUNCTIONS
        .iter()
        .find(|(short, binary, logical)| {
            [*short, *binary, *logical]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, binary, _)| *binary)
        .ok_or_else(|| {
            let known: Vec<&str> = FUNCTIONS.iter().map(|(s, ..)| *s).collect();
            DevError::Usage(format!(
                "no consumer function {name:?}: one of {}",
                known.join(", ")
            ))
        })
}

/// The one-record Kinesis event of `event` (a sample envelope as JSON) for `function`, as the local event source
/// mapping builds it; with the record's sequence number. An event the contract refuses is sent all the same, as
/// its JSON (a poison record: what does the consumer do with it?), with a warning.
pub(super) fn sample_event(
    stack: &Stack,
    logical_id: &str,
    event: &Value,
) -> (KinesisEvent, SequenceNumber) {
    let bytes = event.to_string().into_bytes();
    let now = time::OffsetDateTime::now_utc();
    let (partition_key, data) = match tubes_contract::Envelope::parse(&bytes, now)
        .map_err(|v| format!("{v:?}"))
        .and_then(|e| codec::encode(&e).map_err(|e| e.to_string()))
    {
        Ok(record) => (record.partition_key, record.data),
        Err(why) => {
            eprintln!("tubes-dev: the sample is not a valid event ({why}); sent as it is");
            let key = event["subject"].as_str().unwrap_or("sample").to_owned();
            (key, bytes)
        }
    };
    // A sequence number of Kinesis's shape (56 digits), from the clock: a new one at each invocation.
    let sequence_number = SequenceNumber::from(format!("{:056}", now.unix_timestamp_nanos()));
    let record = StreamRecord {
        sequence_number: sequence_number.clone(),
        partition_key,
        data,
        arrival: now.unix_timestamp_nanos() as f64 / 1e9,
    };
    let source = BatchSource {
        event_source_arn: stack.stream_arn(),
        shard_id: "shardId-000000000000".into(),
        aws_region: stack.region().into(),
        invoke_identity_arn: format!("arn:aws:iam::000000000000:role/{logical_id}Role"),
    };
    (kinesis_event(&source, &[record]), sequence_number)
}

pub(super) async fn run(stack: &Stack, args: InvokeArgs) -> Result<(), DevError> {
    let function = resolve(&args.function)?;
    let logical_id = FUNCTIONS
        .iter()
        .find(|(_, b, _)| *b == function)
        .map_or("Function", |(.., l)| *l);
    let (payload, sequence_numbers) = match (&args.event, args.sample) {
        (Some(path), _) => {
            let text = std::fs::read(path).map_err(|e| {
                DevError::NotFound(format!("cannot read the event {}: {e}", path.display()))
            })?;
            let event: KinesisEvent = serde_json::from_slice(&text).map_err(|e| {
                DevError::Usage(format!(
                    "{} is not a Lambda Kinesis event ({{\"Records\": [...]}}): {e}",
                    path.display()
                ))
            })?;
            let seqs = event
                .records
                .iter()
                .map(|r| r.kinesis.sequence_number.clone())
                .collect();
            (text, seqs)
        }
        (None, Some(ty)) => {
            let sample = sample::event(ty, Identity::Fresh, args.subject.as_deref(), &args.set, 0)?;
            let (event, seq) = sample_event(stack, logical_id, &sample);
            let payload = serde_json::to_vec(&event)
                .map_err(|e| DevError::Usage(format!("the event did not serialise: {e}")))?;
            (payload, vec![seq.into_string()])
        }
        (None, None) => return Err(DevError::Usage("--event FILE or --sample TYPE".into())),
    };
    let url = stack.invoke_url(function);
    let response = stack
        .http
        .post(&url)
        .body(payload)
        .send()
        .await
        .map_err(|e| {
            stack.unreachable(&format!("the function API at {url}"), "TUBES_HTTP_PORT", e)
        })?;
    let status = response.status().as_u16();
    let errored = response.headers().contains_key("x-amz-function-error");
    let body = response
        .bytes()
        .await
        .map_err(|e| stack.unreachable(&format!("{function} at {url}"), "TUBES_HTTP_PORT", e))?
        .to_vec();
    println!("{}", String::from_utf8_lossy(&body));
    if status == 404 {
        return Err(DevError::Stack(format!(
            "the local stack has no function {function} (404 from {url}): is `make dev` running this template?"
        )));
    }
    let invocation = if errored || status >= 400 {
        Invocation::FunctionError(function_error(&body).unwrap_or_else(|| format!("HTTP {status}")))
    } else {
        Invocation::Returned(body)
    };
    match verdict(&invocation, &sequence_numbers, true) {
        Verdict::Success => {
            eprintln!("{function}: {} record(s) handled", sequence_numbers.len());
            Ok(())
        }
        Verdict::FailedFrom(i) => Err(DevError::Refused(format!(
            "{function} reported a failure from record {} ({}) on",
            i + 1,
            sequence_numbers[i]
        ))),
        Verdict::BatchFailure(why) => Err(DevError::Refused(format!("{function} failed: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::stack::StackArgs;

    fn stack() -> Stack {
        Stack::new(StackArgs {
            http_port: 9000,
            kinesis_port: 4568,
            moto_port: 4566,
            moto_dynamodb_port: None,
            moto_dynamodb_functions: "tubes-consumer-payments".into(),
            state_dir: "/nonexistent".into(),
        })
    }

    #[test]
    fn a_functions_tables_are_on_the_second_moto_only_when_dev_sh_put_them_there() {
        assert_eq!(stack().moto_port_of("tubes-consumer-payments"), 4566);
        let split = Stack::new(StackArgs {
            http_port: 9000,
            kinesis_port: 4568,
            moto_port: 4566,
            moto_dynamodb_port: Some(4569),
            moto_dynamodb_functions: "tubes-consumer-payments".into(),
            state_dir: "/nonexistent".into(),
        });
        assert_eq!(split.moto_port_of("tubes-consumer-payments"), 4569);
        assert_eq!(split.moto_port_of("tubes-consumer-signups"), 4566);
    }

    #[test]
    fn functions_are_named_short_by_binary_or_by_logical_id() {
        for name in ["payments", "tubes-consumer-payments", "PaymentsFunction"] {
            assert_eq!(resolve(name).ok(), Some("tubes-consumer-payments"));
        }
        assert_eq!(resolve("archive").ok(), Some("tubes-archive"));
        let err = resolve("ingest")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("payments") && err.contains("signups"), "{err}");
    }

    #[test]
    fn a_sample_becomes_the_kinesis_event_lambda_sends_in_aws_member_order() {
        let sample = sample::event(
            EventType::PaymentReceived,
            Identity::Fresh,
            Some("acc_9"),
            &[],
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (event, seq) = sample_event(&stack(), "PaymentsFunction", &sample);
        let json = serde_json::to_string(&event).unwrap_or_default();
        // Lambda's member order, as in tests/fixtures/kinesis-event.json.
        let order = [
            "\"kinesis\"",
            "\"kinesisSchemaVersion\"",
            "\"partitionKey\"",
            "\"sequenceNumber\"",
            "\"data\"",
            "\"approximateArrivalTimestamp\"",
            "\"eventSource\"",
            "\"eventVersion\"",
            "\"eventID\"",
            "\"eventName\"",
            "\"invokeIdentityArn\"",
            "\"awsRegion\"",
            "\"eventSourceARN\"",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|m| json.find(m).unwrap_or(usize::MAX))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        let record = &event.records[0];
        assert_eq!(record.kinesis.partition_key, "acc_9");
        assert_eq!(record.kinesis.sequence_number, seq.as_str());
        assert_eq!(record.kinesis.sequence_number.len(), 56);
        assert_eq!(record.event_id, format!("shardId-000000000000:{seq}"));
        assert_eq!(
            record.event_source_arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/tubes-EventStream"
        );
        assert_eq!(
            record.invoke_identity_arn,
            "arn:aws:iam::000000000000:role/PaymentsFunctionRole"
        );
        // The record's data is the event as ingest writes it, and the consumers' decoding reads it back.
        let batch =
            tubes_platform::KinesisBatch::from_event(&event).unwrap_or_else(|e| panic!("{e}"));
        let decoded: Vec<_> = batch.records.into_iter().map(|r| r.envelope).collect();
        assert!(
            matches!(decoded.as_slice(), [Ok(e)] if e.id() == sample["id"] && e.subject() == "acc_9"),
            "{decoded:?}"
        );
    }

    #[test]
    fn a_sample_the_contract_refuses_is_sent_as_it_is() {
        let mut sample = sample::event(EventType::PaymentReceived, Identity::Fresh, None, &[], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        sample["data"]["amount"] = (-1).into();
        let (event, _) = sample_event(&stack(), "PaymentsFunction", &sample);
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(&event.records[0].kinesis.data)
            .unwrap_or_default();
        assert_eq!(serde_json::from_slice::<Value>(&data).ok(), Some(sample));
    }
}
