//! `tubes-dlq`: list, show and redrive a consumer's dead letters (see the crate docs). AWS settings come from the
//! environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_SQS` / `_KINESIS` / `_LAMBDA` for the local stack).
//!
//! ```text
//! tubes-dlq list    QUEUE                    one line per message (no payloads)
//! tubes-dlq show    QUEUE MESSAGE_ID         the message's body, as stored (payload included)
//! tubes-dlq redrive QUEUE [MESSAGE_ID] [--stream NAME | --to-function NAME]
//! ```
//! `QUEUE` is a queue URL or name (locally `tubes-SignupsDeadLetterQueue`). `redrive` puts the records back onto
//! their stream (or `--stream NAME`), or with `--to-function NAME` hands them straight to that consumer function
//! (locally its binary, e.g. `tubes-consumer-signups`), so that the stream's other consumers do not see them again.

use std::process::ExitCode;

use tubes_ops::DeadLetterQueue;

const USAGE: &str = "usage: tubes-dlq list QUEUE | show QUEUE MESSAGE_ID | \
                     redrive QUEUE [MESSAGE_ID] [--stream NAME | --to-function NAME]";

/// What to do, read from the arguments.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    List {
        queue: String,
    },
    Show {
        queue: String,
        id: String,
    },
    Redrive {
        queue: String,
        only: Option<String>,
        to: Target,
    },
}

/// Where `redrive` sends the records.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// Onto their stream, or onto this one.
    Stream(Option<String>),
    /// Straight to this function.
    Function(String),
}

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

/// Removes `--flag VALUE` from `args`: the value, if the flag is there.
fn take_option(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() && !args[i + 1].starts_with("--") => {
            let value = args.remove(i + 1);
            args.remove(i);
            Ok(Some(value))
        }
        Some(_) => Err(format!("{flag} needs a name\n{USAGE}")),
        None => Ok(None),
    }
}

fn parse(mut args: Vec<String>) -> Result<Command, String> {
    let stream = take_option(&mut args, "--stream")?;
    let function = take_option(&mut args, "--to-function")?;
    if let Some(unknown) = args.iter().find(|a| a.starts_with("--")) {
        return Err(format!("unknown option {unknown}\n{USAGE}"));
    }
    let to = match (stream, function) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "--stream and --to-function exclude each other: a redrive goes onto a stream or straight \
                 to one function\n{USAGE}"
            ))
        }
        (None, Some(function)) => Target::Function(function),
        (stream, None) => Target::Stream(stream),
    };
    let options = to != Target::Stream(None);
    match args.as_slice() {
        [c, queue] if c == "list" && !options => Ok(Command::List {
            queue: queue.clone(),
        }),
        [c, queue, id] if c == "show" && !options => Ok(Command::Show {
            queue: queue.clone(),
            id: id.clone(),
        }),
        [c, queue, rest @ ..] if c == "redrive" && rest.len() <= 1 => Ok(Command::Redrive {
            queue: queue.clone(),
            only: rest.first().cloned(),
            to,
        }),
        _ => Err(USAGE.into()),
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let command = parse(args)?;
    let queue = match &command {
        Command::List { queue } | Command::Show { queue, .. } | Command::Redrive { queue, .. } => {
            queue
        }
    };
    let aws = aws_config::load_from_env().await;
    let dlq = DeadLetterQueue::find(
        aws_sdk_sqs::Client::new(&aws),
        aws_sdk_kinesis::Client::new(&aws),
        queue,
    )
    .await
    .map_err(|e| e.to_string())?;
    match command {
        Command::List { .. } => {
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
        Command::Show { id, .. } => {
            let messages = dlq.list().await.map_err(|e| e.to_string())?;
            let m = messages
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(|| format!("no message {id}"))?;
            println!("{}", m.body);
            Ok(())
        }
        Command::Redrive { only, to, .. } => {
            let report = match &to {
                Target::Stream(stream) => dlq.redrive(only.as_deref(), stream.as_deref()).await,
                Target::Function(function) => {
                    let lambda = tubes_ops::aws_sdk_lambda::Client::new(&aws);
                    dlq.redrive_to_function(only.as_deref(), &lambda, function)
                        .await
                }
            }
            .map_err(|e| e.to_string())?;
            match &to {
                Target::Stream(_) => println!(
                    "redriven: {} dead letter(s), {} record(s) of on-failure ranges; {} duplicate(s) deleted; {} kept",
                    report.letters,
                    report.range_records,
                    report.duplicates,
                    report.kept.len()
                ),
                Target::Function(function) => println!(
                    "redriven to {function}: {} dead letter(s), {} record(s) of on-failure ranges in {} \
                     invocation(s); {} duplicate(s) deleted; {} kept",
                    report.letters,
                    report.range_records,
                    report.invocations,
                    report.duplicates,
                    report.kept.len()
                ),
            }
            for why in &report.kept {
                println!("kept: {why}");
            }
            if report.kept.is_empty() {
                Ok(())
            } else {
                Err("some messages were kept".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn redrive_goes_onto_a_stream_or_to_one_function_never_both() {
        assert_eq!(
            parse(args("redrive q m1 --to-function tubes-consumer-signups")),
            Ok(Command::Redrive {
                queue: "q".into(),
                only: Some("m1".into()),
                to: Target::Function("tubes-consumer-signups".into()),
            })
        );
        assert_eq!(
            parse(args("redrive --stream s q")),
            Ok(Command::Redrive {
                queue: "q".into(),
                only: None,
                to: Target::Stream(Some("s".into())),
            })
        );
        let both = parse(args("redrive q --stream s --to-function f")).unwrap_err();
        assert!(both.contains("exclude each other"), "{both}");
        for wrong in [
            "redrive q --to-function",
            "redrive q --to-function --stream s",
            "redrive q --to-functon f",
            "list q --to-function f",
            "show q m1 --stream s",
            "redrive q m1 m2",
            "redrive",
        ] {
            assert!(parse(args(wrong)).is_err(), "{wrong}");
        }
        assert_eq!(
            parse(args("list q")),
            Ok(Command::List { queue: "q".into() })
        );
    }
}
