//! `tubes-dlq`: list, show, delete and redrive a consumer's dead letters (see the crate docs; `tubes-dlq --help`).
//! AWS settings come from the environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_SQS` / `_KINESIS` /
//! `_LAMBDA` for the local stack; `make dlq` sets them).
//!
//! Exit codes: 0 done; 1 failed (an AWS call, a queue or message not found, a message kept, a record parked
//! again); 2 usage (a wrong argument, or a deletion neither confirmed nor `--yes`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};
use tubes_ops::{DeadLetterQueue, Entry, Message};

/// A consumer's dead letters: list, show, delete and redrive them.
///
/// QUEUE is a queue URL or name (locally `tubes-SignupsDeadLetterQueue`).
#[derive(Debug, Parser)]
#[command(name = "tubes-dlq", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand, PartialEq, Eq)]
enum Command {
    /// The dead-letter queues and their depths, or with QUEUE its messages.
    ///
    /// Without QUEUE: every queue whose name holds `DeadLetterQueue` (--all: every queue), with how many
    /// messages it holds, waiting and in flight. With QUEUE: one line per message, without payloads.
    List {
        /// The queue whose messages to list.
        queue: Option<String>,
        /// Every queue, not only the dead-letter queues.
        #[arg(long, conflicts_with = "queue")]
        all: bool,
        /// Only queues whose name starts with this (locally `tubes-`).
        #[arg(long, value_name = "PREFIX", conflicts_with = "queue")]
        prefix: Option<String>,
    },
    /// One message: the parked event pretty-printed, and where it came from and why.
    Show {
        /// The queue.
        queue: String,
        /// The message id (from `list QUEUE`).
        message_id: String,
        /// The body as stored (the payload base64-encoded) instead.
        #[arg(long)]
        raw: bool,
    },
    /// Deletes one message (its record is not redriven).
    Delete {
        /// The queue.
        queue: String,
        /// The message id (from `list QUEUE`).
        message_id: String,
        /// Do not ask (needed when standard input is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
    /// Deletes every message of the queue.
    ///
    /// SQS PurgeQueue: out of sight messages too; AWS allows one purge of a queue a minute.
    Purge {
        /// The queue.
        queue: String,
        /// Do not ask (needed when standard input is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
    /// Puts the records back onto their stream, or hands them straight to one consumer function.
    ///
    /// A message is deleted once its records got there. A record parked again right away (a new dead letter or
    /// on-failure entry on this queue names it) is a failure: with --to-function the queue is looked at once the
    /// function answered; onto the stream, only with --wait.
    Redrive {
        /// The queue.
        queue: String,
        /// Only this message.
        message_id: Option<String>,
        /// Onto this stream instead of the one each message names.
        #[arg(long, value_name = "NAME")]
        stream: Option<String>,
        /// Straight to this consumer function (locally its binary, e.g. tubes-consumer-signups): the stream's other
        /// consumers do not see the records again.
        #[arg(long, value_name = "NAME", conflicts_with = "stream")]
        to_function: Option<String>,
        /// Then watch the queue this many seconds for the records being parked again (stops early once each is).
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
    },
    /// Prints a completion script for SHELL.
    ///
    /// E.g. `tubes-dlq completions bash > ~/.local/share/bash-completion/completions/tubes-dlq`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The queue the command works on, if one.
    fn queue(&self) -> Option<&str> {
        match self {
            Command::List { queue, .. } => queue.as_deref(),
            Command::Show { queue, .. }
            | Command::Delete { queue, .. }
            | Command::Purge { queue, .. }
            | Command::Redrive { queue, .. } => Some(queue),
            Command::Completions { .. } => None,
        }
    }
}

/// How a command failed: its exit code says which.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Exit 1.
    Failed(String),
    /// Exit 2: the command cannot go ahead as given.
    Usage(String),
}

impl From<tubes_ops::OpsError> for Failure {
    fn from(e: tubes_ops::OpsError) -> Self {
        Failure::Failed(e.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            eprintln!("tubes-dlq: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Usage(e)) => {
            eprintln!("tubes-dlq: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    if let Command::Completions { shell } = command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "tubes-dlq",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    // Refused before any AWS call: a script without --yes deletes nothing.
    let interactive = std::io::stdin().is_terminal();
    if let Command::Delete { yes: false, .. } | Command::Purge { yes: false, .. } = &command {
        if !interactive {
            return Err(Failure::Usage(
                "standard input is not a terminal, so nothing can be confirmed: pass --yes to delete".into(),
            ));
        }
    }
    let aws = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let Some(queue) = command.queue() else {
        let Command::List { all, prefix, .. } = &command else {
            unreachable!("every other command names a queue")
        };
        let queues = DeadLetterQueue::queues(&sqs, prefix.as_deref(), *all).await?;
        let width = queues.iter().map(|q| q.name.len()).max().unwrap_or(0);
        for q in &queues {
            println!(
                "{:<width$}  {:>6} message(s)  ({} waiting, {} in flight)",
                q.name,
                q.total(),
                q.visible,
                q.in_flight
            );
        }
        eprintln!("{} queue(s)", queues.len());
        return Ok(());
    };
    let dlq = DeadLetterQueue::find(sqs, aws_sdk_kinesis::Client::new(&aws), queue)
        .await?
        .with_progress(progress_bar());
    match command {
        Command::List { .. } => {
            let messages = dlq.list().await?;
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
        Command::Show {
            message_id, raw, ..
        } => {
            let m = dlq.message(&message_id).await?;
            if raw {
                println!("{}", m.body);
            } else {
                print!("{}", describe(&m));
            }
            Ok(())
        }
        Command::Delete {
            message_id, yes, ..
        } => {
            if !yes {
                let m = dlq.message(&message_id).await?;
                eprintln!("{}  {}", m.id, m.entry.summary());
                confirm(
                    &format!("delete message {message_id} from {}? [y/N] ", dlq.name()),
                    "y",
                )?;
            }
            let m = dlq.delete_message(&message_id).await?;
            println!("deleted {}  {}", m.id, m.entry.summary());
            Ok(())
        }
        Command::Purge { yes, .. } => {
            if !yes {
                confirm(
                    &format!(
                        "purge every message of {0}? type the queue name ({0}) to confirm: ",
                        dlq.name()
                    ),
                    dlq.name(),
                )?;
            }
            let before = dlq.purge().await?;
            println!(
                "purged {} (it held {} message(s))",
                dlq.name(),
                before.total()
            );
            Ok(())
        }
        Command::Redrive {
            message_id,
            stream,
            to_function,
            wait,
            ..
        } => {
            let only = message_id.as_deref();
            let mut report = match &to_function {
                Some(function) => {
                    let lambda = tubes_ops::aws_sdk_lambda::Client::new(&aws);
                    dlq.redrive_to_function(only, &lambda, function).await?
                }
                None => dlq.redrive(only, stream.as_deref()).await?,
            };
            // With a function the queue was looked at once already; watching again only if asked.
            if wait > 0 && report.parked_again.len() < report.sent() {
                dlq.watch_parked_again(&mut report, Duration::from_secs(wait))
                    .await?;
            }
            match &to_function {
                None => println!(
                    "redriven: {} dead letter(s), {} record(s) of on-failure ranges; {} duplicate(s) deleted; {} kept",
                    report.letters,
                    report.range_records,
                    report.duplicates,
                    report.kept.len()
                ),
                Some(function) => println!(
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
            for why in &report.parked_again {
                println!("parked again: {why}");
            }
            if to_function.is_none() && wait == 0 && report.sent() > 0 {
                eprintln!(
                    "tubes-dlq: not watched for records parked again by the stream's consumers (--wait SECS does)"
                );
            }
            match (report.kept.len(), report.parked_again.len()) {
                (0, 0) => Ok(()),
                (kept, 0) => Err(Failure::Failed(format!("{kept} message(s) kept"))),
                (kept, parked) => Err(Failure::Failed(format!(
                    "{parked} record(s) parked again right away: the redrive did not fix them; {kept} message(s) kept"
                ))),
            }
        }
        Command::Completions { .. } => Ok(()),
    }
}

/// A bar on standard error when it is a terminal, else none (tests, CI, a log file).
fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} redrive [{bar:30}] {pos}/{len} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Asks on standard error and reads a line from standard input: going ahead only on `expected` (`y` also
/// takes `yes`, any case).
fn confirm(question: &str, expected: &str) -> Result<(), Failure> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(format!("standard input: {e}")))?;
    if confirmed(&answer, expected) {
        Ok(())
    } else {
        Err(Failure::Failed("not confirmed: nothing deleted".into()))
    }
}

fn confirmed(answer: &str, expected: &str) -> bool {
    let answer = answer.trim();
    if expected == "y" {
        answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
    } else {
        answer == expected
    }
}

/// `show`: what a message holds, decoded: where its record came from and why it is here, then the parked event
/// pretty-printed (a dead letter's payload) or the entry itself (an on-failure entry names a range of the stream,
/// no payload).
fn describe(m: &Message) -> String {
    describe_entry(&m.id, m.receive_count, &m.entry, &m.body)
}

fn describe_entry(id: &str, receive_count: u32, entry: &Entry, body: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{name:<20}{value}");
    };
    line("message", &id);
    line("received", &format_args!("{receive_count} time(s)"));
    match entry {
        Entry::Letter(l) => {
            line("kind", &"dead letter (a record its consumer parked)");
            line("consumer", &l.consumer);
            line("reason", &l.reason);
            line("attempts", &l.attempts);
            line("stream", &l.event_source_arn.as_deref().unwrap_or("-"));
            line("shard", &l.shard_id.as_deref().unwrap_or("-"));
            line("sequence_number", &l.sequence_number);
            if let Some(sub) = l.sub_sequence_number {
                line("sub_sequence_number", &sub);
            }
            line("partition_key", &l.partition_key);
            line("event_source", &l.event_source.as_deref().unwrap_or("-"));
            line("event_id", &l.event_id.as_deref().unwrap_or("-"));
            line("event_type", &l.event_type.as_deref().unwrap_or("-"));
            let payload = match l.payload() {
                Ok(bytes) => payload_text(&bytes),
                Err(e) => format!("(not base64: {e}; --raw shows it as stored)"),
            };
            let _ = write!(out, "event:\n{payload}\n");
        }
        Entry::OnFailure { batch, condition } => {
            line("kind", &"on-failure entry (the event source mapping gave up on a batch; its records are on the stream while it retains them)");
            line("condition", &condition.as_ref().map_or("-", |c| c.as_str()));
            line("stream", &batch.stream_arn);
            line("shard", &batch.shard_id);
            line(
                "sequence_numbers",
                &format_args!(
                    "{}..={}",
                    batch.start_sequence_number, batch.end_sequence_number
                ),
            );
            line("records", &batch.batch_size);
            let _ = write!(
                out,
                "entry:\n{}\n",
                pretty_json(body).unwrap_or_else(|| body.to_owned())
            );
        }
        Entry::Unknown(why) => {
            line("kind", &format_args!("unknown: {why}"));
            let _ = write!(out, "body:\n{body}\n");
        }
    }
    out
}

/// A payload as a person reads it: JSON pretty-printed, other text as it is, bytes counted.
fn payload_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => pretty_json(text).unwrap_or_else(|| text.to_owned()),
        Err(_) => format!(
            "({} bytes, not UTF-8; --raw shows them base64-encoded)",
            bytes.len()
        ),
    }
}

fn pretty_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json::to_string_pretty(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tubes-dlq").chain(line.split_whitespace()))
            .map(|c| c.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn redrive_goes_onto_a_stream_or_to_one_function_never_both() {
        assert_eq!(
            parse("redrive q m1 --to-function tubes-consumer-signups").unwrap(),
            Command::Redrive {
                queue: "q".into(),
                message_id: Some("m1".into()),
                stream: None,
                to_function: Some("tubes-consumer-signups".into()),
                wait: 0,
            }
        );
        assert_eq!(
            parse("redrive --stream s q --wait 30").unwrap(),
            Command::Redrive {
                queue: "q".into(),
                message_id: None,
                stream: Some("s".into()),
                to_function: None,
                wait: 30,
            }
        );
        let both = parse("redrive q --stream s --to-function f").unwrap_err();
        assert_eq!(
            both.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{both}"
        );
        for wrong in [
            "redrive q --to-function",
            "redrive q --to-function --stream s",
            "redrive q --to-functon f",
            "redrive q --wait soon",
            "list q --to-function f",
            "show q m1 --stream s",
            "show q",
            "redrive q m1 m2",
            "redrive",
            "delete q",
            "list q --all",
            "completions tcsh",
            "",
        ] {
            let e = parse(wrong).expect_err(wrong);
            assert_eq!(e.exit_code(), 2, "{wrong}: a usage error");
        }
    }

    #[test]
    fn list_names_a_queue_or_lists_the_queues() {
        assert_eq!(
            parse("list q").unwrap(),
            Command::List {
                queue: Some("q".into()),
                all: false,
                prefix: None
            }
        );
        assert_eq!(
            parse("list --prefix tubes- --all").unwrap(),
            Command::List {
                queue: None,
                all: true,
                prefix: Some("tubes-".into())
            }
        );
        assert_eq!(
            parse("show q m1 --raw").unwrap(),
            Command::Show {
                queue: "q".into(),
                message_id: "m1".into(),
                raw: true
            }
        );
        assert_eq!(
            parse("purge q -y").unwrap(),
            Command::Purge {
                queue: "q".into(),
                yes: true
            }
        );
        assert_eq!(
            parse("delete q m1").unwrap(),
            Command::Delete {
                queue: "q".into(),
                message_id: "m1".into(),
                yes: false
            }
        );
    }

    #[test]
    fn help_is_an_answer_not_an_error() {
        for line in ["--help", "redrive --help", "help list", "--version"] {
            let e = parse(line).expect_err(line);
            assert_eq!(e.exit_code(), 0, "{line}");
        }
        let help = Cli::command().render_long_help().to_string();
        for command in ["list", "show", "delete", "purge", "redrive", "completions"] {
            assert!(help.contains(command), "{command} in {help}");
        }
    }

    #[test]
    fn a_deletion_is_confirmed_by_y_or_the_queue_name_only() {
        assert!(confirmed("y\n", "y") && confirmed("YES\n", "y"));
        assert!(!confirmed("\n", "y") && !confirmed("n\n", "y"));
        assert!(confirmed(
            "tubes-SignupsDeadLetterQueue\n",
            "tubes-SignupsDeadLetterQueue"
        ));
        assert!(!confirmed("y\n", "tubes-SignupsDeadLetterQueue"));
    }

    #[test]
    fn show_decodes_the_parked_event_and_says_where_it_came_from() {
        let body = r#"{"kind":"tubes.dead_letter","consumer":"signups","event_source_arn":"arn:aws:kinesis:us-east-1:000000000000:stream/tubes-EventStream","shard_id":"shardId-000000000000","sequence_number":"49","sub_sequence_number":2,"partition_key":"u1","event_id":"e1","event_type":"user.signed_up","reason":"invalid event","attempts":3,"payload_base64":"eyJpZCI6ImUxIiwiZGF0YSI6eyJhIjoxfX0="}"#;
        let text = describe_entry("m1", 1, &Entry::parse(body), body);
        for part in [
            "sub_sequence_number 2",
            "reason              invalid event",
            "attempts            3",
            "shard               shardId-000000000000",
            "sequence_number     49",
            "\"id\": \"e1\"",
            "\"data\": {\n    \"a\": 1\n  }",
        ] {
            assert!(text.contains(part), "{part:?} in\n{text}");
        }
        assert!(
            !text.contains("payload_base64"),
            "decoded, not as stored:\n{text}"
        );
    }
}
