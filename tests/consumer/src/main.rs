//! A `user.signed_up` consumer that fails on command, for the local stack's end-to-end tests: the event's
//! `data.name` says what to do with it.
//!
//! - `crash…`: the invocation fails (a function error: the whole batch fails);
//! - `fail-always…`: the record is reported in `batchItemFailures` every time;
//! - `fail-once…`: reported the first time it is seen (marker files in `$TUBES_STATE_DIR/faults`), handled after;
//! - `die-once…`: the first time it is seen, the instance exits mid-invocation without answering (marker
//!   `faults/died-SEQ`, written just before), handled after;
//! - anything else: handled.
//!
//! Records are handled in order up to the first failure, which is the one reported (Lambda redelivers from it).
//! Each handled record is appended to `$TUBES_STATE_DIR/handled.jsonl` as `{"seq", "user_id", "name"}`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tubes_contract::Event;
use tubes_platform::KinesisBatch;

fn name_of(event: &Event) -> &str {
    match event {
        Event::UserSignedUp(d) => &d.name,
        _ => "",
    }
}

/// Whether this is the first time `marker` is asked for (`$TUBES_STATE_DIR/faults/MARKER` did not exist and now
/// does): `create_new` succeeds only once, whichever instance asks.
fn first_time(state: &Path, marker: &str) -> bool {
    let faults = state.join("faults");
    std::fs::create_dir_all(&faults).is_ok()
        && OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(faults.join(marker))
            .is_ok()
}

async fn handle(
    state: &Path,
    event: LambdaEvent<KinesisBatch>,
) -> Result<KinesisEventResponse, Error> {
    let batch = event.payload;
    let crash = batch.records.iter().any(|r| {
        r.envelope
            .as_ref()
            .is_ok_and(|e| name_of(e.event()).starts_with("crash"))
    });
    if crash {
        return Err("injected crash".into());
    }
    let mut response = KinesisEventResponse::default();
    let mut handled = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("handled.jsonl"))?;
    for record in &batch.records {
        let Ok(envelope) = &record.envelope else {
            continue;
        };
        let name = name_of(envelope.event());
        let seq = record.sequence_number.as_str();
        if name.starts_with("die-once") && first_time(state, &format!("died-{seq}")) {
            std::process::exit(101);
        }
        let fail = name.starts_with("fail-always")
            || (name.starts_with("fail-once") && first_time(state, seq));
        if fail {
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(record.sequence_number.to_string());
            response.batch_item_failures.push(failure);
            break;
        }
        let mut line = serde_json::json!({"seq": record.sequence_number, "user_id": envelope.subject(), "name": name})
            .to_string();
        line.push('\n');
        // One write per line on an O_APPEND file: concurrent instances (lanes) never interleave within a line,
        // which `writeln!` (several writes) did under load.
        handled.write_all(line.as_bytes())?;
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let state =
        PathBuf::from(std::env::var("TUBES_STATE_DIR").unwrap_or_else(|_| ".local/dev".into()));
    let state = &state;
    lambda_runtime::run(service_fn(
        |event| async move { handle(state, event).await },
    ))
    .await
}
