//! `tubes-dlq`: list, show and redrive a consumer's dead letters (see the crate docs). AWS settings come from the
//! environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_SQS` / `_KINESIS` for the local stack).
//!
//! ```text
//! tubes-dlq list    QUEUE                    one line per message (no payloads)
//! tubes-dlq show    QUEUE MESSAGE_ID         the message's body, as stored (payload included)
//! tubes-dlq redrive QUEUE [MESSAGE_ID] [--stream NAME]
//! ```
//! `QUEUE` is a queue URL or name (locally `tubes-SignupsDeadLetterQueue`).

use std::process::ExitCode;

use tubes_ops::DeadLetterQueue;

const USAGE: &str = "usage: tubes-dlq list QUEUE | show QUEUE MESSAGE_ID | redrive QUEUE [MESSAGE_ID] [--stream NAME]";

#[tokio::main]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tubes-dlq: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Vec<String>) -> Result<(), String> {
    let stream = match args.iter().position(|a| a == "--stream") {
        Some(i) if i + 1 < args.len() => {
            let s = args.remove(i + 1);
            args.remove(i);
            Some(s)
        }
        Some(_) => return Err(USAGE.into()),
        None => None,
    };
    let (command, queue) = match args.as_slice() {
        [c, q, ..] => (c.as_str(), q.as_str()),
        _ => return Err(USAGE.into()),
    };
    let aws = aws_config::load_from_env().await;
    let dlq = DeadLetterQueue::find(
        aws_sdk_sqs::Client::new(&aws),
        aws_sdk_kinesis::Client::new(&aws),
        queue,
    )
    .await
    .map_err(|e| e.to_string())?;
    match (command, args.get(2)) {
        ("list", None) => {
            let messages = dlq.list().await.map_err(|e| e.to_string())?;
            for m in &messages {
                println!(
                    "{}  received={}  {}",
                    m.id,
                    m.receive_count,
                    m.entry.summary()
                );
            }
            eprintln!("{} message(s)", messages.len());
            Ok(())
        }
        ("show", Some(id)) => {
            let messages = dlq.list().await.map_err(|e| e.to_string())?;
            let m = messages
                .iter()
                .find(|m| &m.id == id)
                .ok_or_else(|| format!("no message {id}"))?;
            println!("{}", m.body);
            Ok(())
        }
        ("redrive", only) => {
            let report = dlq
                .redrive(only.map(String::as_str), stream.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "redriven: {} dead letter(s), {} record(s) of on-failure ranges; {} duplicate(s) deleted; {} kept",
                report.letters,
                report.range_records,
                report.duplicates,
                report.kept.len()
            );
            for why in &report.kept {
                println!("kept: {why}");
            }
            if report.kept.is_empty() {
                Ok(())
            } else {
                Err("some messages were kept".into())
            }
        }
        _ => Err(USAGE.into()),
    }
}
