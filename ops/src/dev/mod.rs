//! `tubes-dev`: the local stack of `make dev` as a daily tool. Each subcommand is one module:
//!
//! | Module | Subcommand |
//! |---|---|
//! | `send` | `send TYPE [--set PATH=VALUE …] [--subject S] [--count N]`: POST a catalogue example to ingest |
//! | `story` | `story`: the README's story (open, credit, pay, sign up, unsubscribe), then its effects |
//! | `tail` | `tail [--type T] [--subject S] [--from trim-horizon\|latest]`: the stream, decoded, one line per event |
//! | `invoke` | `invoke FUNCTION (--event FILE \| --sample TYPE [--set …])`: one consumer, without the stream |
//! | `look` | `look ledger ACCOUNT \| profile USER \| outbox [--limit N]`: the local state, as the functions keep it |
//!
//! `sample` builds events from the contract's examples ([`tubes_contract::schema::example`]) and the `--set`
//! overrides; `stack` knows where the local stack is (ports, state directory, resource names) and how to reach it.
//!
//! Exit codes ([`DevError::exit_code`]): 0 done; 1 the stack said no (ingest refused, a function failed or
//! reported failures, an effect did not appear in time); 2 usage; 3 the local stack or its state was not found;
//! 4 what `look` was asked for does not exist.

mod invoke;
mod look;
mod sample;
mod send;
mod stack;
mod story;
mod tail;

use clap::{Parser, Subcommand};

pub use stack::StackArgs;

/// The command line of `tubes-dev`.
#[derive(Debug, Parser)]
#[command(
    name = "tubes-dev",
    about = "The local stack (make dev) as a daily tool: send events, play the README's story, follow the \
             stream, invoke one consumer, look at the local state.",
    after_help = "Exit codes: 0 done; 1 the stack said no (refused, failed, not in time); 2 usage; \
                  3 the local stack or its state not found; 4 not found (look)."
)]
pub struct Cli {
    /// Where the local stack is.
    #[command(flatten)]
    pub stack: StackArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// POST an example event of a catalogue type to ingest, as the demo source.
    Send(send::SendArgs),
    /// Play the README's story and wait until every consumer's effect is visible.
    Story(story::StoryArgs),
    /// Follow the stream, decoded: one line per event (packed and KPL records as their events).
    Tail(tail::TailArgs),
    /// Invoke one consumer function with a Kinesis event, as `sam local invoke` would, without the stream.
    Invoke(invoke::InvokeArgs),
    /// The local state: an account's ledger, a user's profile and lists, the outbox.
    Look(look::LookArgs),
}

/// Why a subcommand did not do what it was asked; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The stack said no: ingest refused, a function failed or reported failures, an effect did not appear.
    #[error("{0}")]
    Refused(String),
    /// The arguments do not make sense (clap checks the rest).
    #[error("{0}")]
    Usage(String),
    /// The local stack does not answer, or its state (demo credentials, resources) is not where it should be.
    #[error("{0}")]
    Stack(String),
    /// What was asked for does not exist (an account, a user).
    #[error("{0}")]
    NotFound(String),
}

impl DevError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DevError::Refused(_) => 1,
            DevError::Usage(_) => 2,
            DevError::Stack(_) => 3,
            DevError::NotFound(_) => 4,
        }
    }
}

/// Runs the subcommand of `cli`.
pub async fn run(cli: Cli) -> Result<(), DevError> {
    let stack = stack::Stack::new(cli.stack);
    match cli.command {
        Command::Send(args) => send::run(&stack, args).await,
        Command::Story(args) => story::run(&stack, args).await,
        Command::Tail(args) => tail::run(&stack, args).await,
        Command::Invoke(args) => invoke::run(&stack, args).await,
        Command::Look(args) => look::run(&stack, args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tubes-dev").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_takes_a_type_overrides_a_subject_and_a_count() {
        let cli = parse(&[
            "send",
            "payment.received",
            "--set",
            "amount=999",
            "--set",
            "data.currency=USD",
            "--subject",
            "acc_7",
            "--count",
            "3",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Send(send) = cli.command else {
            panic!("not send")
        };
        assert_eq!(send.ty, tubes_contract::EventType::PaymentReceived);
        assert_eq!(send.set.len(), 2);
        assert_eq!(send.subject.as_deref(), Some("acc_7"));
        assert_eq!(send.count, 3);
    }

    #[test]
    fn an_unknown_type_or_a_set_without_a_value_is_a_usage_error() {
        let err = parse(&["send", "payment.recieved"]).err();
        let err = err.map(|e| (e.kind(), e.to_string()));
        assert!(
            err.as_ref()
                .is_some_and(|(_, m)| m.contains("payment.received")),
            "the known types are listed: {err:?}"
        );
        assert!(parse(&["send", "payment.received", "--set", "amount"]).is_err());
        assert!(parse(&["send", "payment.received", "--count", "0"]).is_err());
    }

    #[test]
    fn invoke_takes_a_recorded_event_or_a_sample_not_both() {
        assert!(parse(&["invoke", "payments", "--sample", "payment.received"]).is_ok());
        assert!(parse(&["invoke", "payments", "--event", "e.json"]).is_ok());
        assert!(parse(&["invoke", "payments"]).is_err());
        assert!(parse(&[
            "invoke",
            "payments",
            "--event",
            "e.json",
            "--sample",
            "payment.received"
        ])
        .is_err());
        assert!(parse(&["invoke", "payments", "--event", "e.json", "--set", "a=1"]).is_err());
    }

    #[test]
    fn tail_and_look_parse_their_options() {
        let cli = parse(&["tail", "--type", "user.signed_up", "--from", "latest"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(cli.command, Command::Tail(_)));
        assert!(parse(&["tail", "--from", "yesterday"]).is_err());
        assert!(parse(&["look", "ledger", "acc_42"]).is_ok());
        assert!(parse(&["look", "outbox", "--limit", "5"]).is_ok());
        assert!(parse(&["look", "ledger"]).is_err());
    }

    #[test]
    fn the_ports_default_to_the_local_stack_and_can_be_given() {
        let cli =
            parse(&["--http-port", "9100", "look", "outbox"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.stack.http_port, 9100);
        assert_eq!(cli.stack.kinesis_port, 4568);
        assert_eq!(cli.stack.moto_port, 4566);
    }
}
