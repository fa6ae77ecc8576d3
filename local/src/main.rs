//! `tubes-local`: provisions the template's resources on the local emulators and runs the Kinesis event source
//! mapping emulator. Started by `make dev` (scripts/dev.sh); see `tubes-local --help`.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use tubes_local::app::App;
use tubes_local::logs;
use tubes_local::runner::{Emulator, Settings};
use tubes_local::stack::{environment, provision, Clients};
use tubes_local::view::View;

/// The local stack's resources and Kinesis event source mapping emulator.
///
/// The template is the SAM-expanded one (scripts/expand_template.py template.yaml OUT.json); `make dev` writes
/// it to STATE/template.json, which is the default.
#[derive(Debug, Parser)]
#[command(
    name = "tubes-local",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand, PartialEq, Eq)]
enum Command {
    /// Creates the template's resources on the emulators and writes the functions' environment.
    ///
    /// The streams, queues, secrets, tables and buckets are created if missing, on the emulators named by
    /// AWS_ENDPOINT_URL_KINESIS / _SQS / _SECRETS_MANAGER / _DYNAMODB / _S3.
    Provision {
        #[command(flatten)]
        stack: Stack,
        /// Where the functions' environment goes (NAME=value lines, as cargo lambda watch reads them).
        #[arg(long, value_name = "FILE")]
        env_out: PathBuf,
    },
    /// Runs every Kinesis event source mapping of the template until interrupted.
    Run {
        #[command(flatten)]
        stack: Stack,
        /// The functions' Invoke endpoint (cargo lambda watch).
        #[arg(
            long,
            value_name = "URL",
            env = "AWS_ENDPOINT_URL_LAMBDA",
            default_value = "http://127.0.0.1:9000"
        )]
        lambda: String,
        /// The live view's events, appended as JSON lines.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Seconds between summaries.
        #[arg(
            long,
            value_name = "SECS",
            env = "TUBES_SUMMARY_SECS",
            default_value_t = 10
        )]
        summary_secs: u64,
        /// Milliseconds between polls of an idle shard. Lambda starts a batch well under a second after a record
        /// arrives when the batching window is 0; 200 ms keeps 202 → invocation near 100–150 ms at p50 for about
        /// 5 GetRecords a second per shard and mapping.
        #[arg(
            long,
            value_name = "MS",
            env = "TUBES_IDLE_POLL_MS",
            default_value_t = 200
        )]
        idle_poll_ms: u64,
        /// Every mapping's batching window, in seconds, instead of the template's
        /// `MaximumBatchingWindowInSeconds` (e.g. 0: each batch starts as soon as its records are read).
        #[arg(long, value_name = "SECS", env = "TUBES_BATCHING_WINDOW_SECS")]
        batching_window_secs: Option<u64>,
        /// Summaries only, no line per batch.
        #[arg(long)]
        quiet: bool,
    },
    /// The functions' log files.
    #[command(subcommand)]
    Logs(Logs),
    /// Prints a completion script for SHELL.
    ///
    /// E.g. `tubes-local completions zsh > ~/.zfunc/_tubes-local`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What `provision` and `run` share: the template, the resources' names, the state directory.
#[derive(Debug, Args, PartialEq, Eq)]
struct Stack {
    /// The SAM-expanded template (JSON). Default: STATE/template.json.
    #[arg(long, value_name = "EXPANDED.json")]
    template: Option<PathBuf>,
    /// The prefix of the resources' names.
    #[arg(long, default_value = "tubes")]
    prefix: String,
    /// The local stack's state directory: the mappings' checkpoints (run), the functions' logs (STATE/logs).
    #[arg(long, value_name = "DIR", env = "TUBES_STATE_DIR")]
    state: Option<PathBuf>,
    /// This secret (a logical id of the template) is created with the contents of PATH instead of the
    /// template's SecretString (the local stack's demo source and reader); once per secret.
    #[arg(long, value_name = "ID=PATH", value_parser = secret_file)]
    secret_file: Vec<(String, PathBuf)>,
}

impl Stack {
    /// The template's path: as given, else STATE/template.json.
    fn template(&self) -> Result<PathBuf, String> {
        match (&self.template, &self.state) {
            (Some(template), _) => Ok(template.clone()),
            (None, Some(state)) => Ok(state.join("template.json")),
            (None, None) => Err(
                "--template is required (or --state DIR / TUBES_STATE_DIR: DIR/template.json)"
                    .into(),
            ),
        }
    }
}

/// `--secret-file ID=PATH`.
fn secret_file(spec: &str) -> Result<(String, PathBuf), String> {
    match spec.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => {
            Ok((id.to_owned(), PathBuf::from(path)))
        }
        _ => Err("takes LOGICAL_ID=PATH".into()),
    }
}

/// `tubes-local logs …`: no emulator, no template.
#[derive(Debug, Subcommand, PartialEq, Eq)]
enum Logs {
    /// Standard input's JSON log lines as a person reads them (make logs).
    Pretty,
    /// Every line under DIR about an id, and every line of its traces, in time order (make trace ID).
    ///
    /// The id is an event id, a trace id or a request id; the lines come from every function.
    Trace {
        /// An event id, trace id or request id.
        id: String,
        /// The logs directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn read_app(path: &std::path::Path) -> Result<App, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    App::from_template(&value).map_err(|e| e.to_string())
}

async fn run(command: Command) -> Result<(), String> {
    let stack = match &command {
        Command::Provision { stack, .. } | Command::Run { stack, .. } => stack,
        Command::Logs(logs) => return run_logs(logs),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "tubes-local",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
    };
    let mut app = read_app(&stack.template()?)?;
    for (id, path) in &stack.secret_file {
        let value =
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let secret = app
            .secrets
            .iter_mut()
            .find(|s| s.logical_id == *id)
            .ok_or_else(|| format!("--secret-file: the template declares no secret {id}"))?;
        secret.initial = Some(value);
    }
    let clients = Clients::from_env().await;
    let resolved = provision(&app, &stack.prefix, &clients)
        .await
        .map_err(|e| e.to_string())?;
    match command {
        Command::Provision { env_out, .. } => {
            let env = environment(&app, &resolved).map_err(|e| e.to_string())?;
            let text = env
                .iter()
                .map(|(k, v)| env_line(k, v))
                .collect::<Result<String, String>>()?;
            std::fs::write(&env_out, text).map_err(|e| format!("{}: {e}", env_out.display()))?;
            for (id, (name, _)) in &resolved.streams {
                println!("stream {id}: {name}");
            }
            for (id, (url, _)) in &resolved.queues {
                println!("queue  {id}: {url}");
            }
            for (id, arn) in &resolved.secrets {
                println!("secret {id}: {arn}");
            }
            for (id, (name, _)) in &resolved.tables {
                println!("table  {id}: {name}");
            }
            Ok(())
        }
        Command::Run {
            stack,
            lambda,
            log,
            summary_secs,
            idle_poll_ms,
            batching_window_secs,
            quiet,
        } => {
            if let Some(secs) = batching_window_secs {
                for m in &mut app.mappings {
                    m.batching_window = Duration::from_secs(secs.min(300));
                }
            }
            let log = match &log {
                Some(p) => Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| format!("{}: {e}", p.display()))?,
                ),
                None => None::<File>,
            };
            let view = Arc::new(View::new(log, quiet));
            view.functions(
                app.functions
                    .iter()
                    .map(|f| (f.logical_id.clone(), f.binary.clone())),
            );
            let settings = Settings {
                lambda_endpoint: lambda.trim_end_matches('/').into(),
                region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                account: "000000000000".into(),
                idle_poll: Duration::from_millis(idle_poll_ms.max(1)),
                discovery: Duration::from_secs(5),
                state_dir: stack.state.clone(),
            };
            let mappings = app.mappings.len();
            let emulator = Emulator::new(
                app,
                resolved,
                clients.kinesis,
                clients.sqs,
                settings,
                Arc::clone(&view),
            );
            emulator.start();
            view.note(
                "ready",
                &format!("{mappings} event source mappings running"),
                serde_json::json!({}),
            );
            let summaries = {
                let view = Arc::clone(&view);
                // The consumers' own metrics (handled, duplicates, lag), from their EMF documents in the functions'
                // logs.
                let logs_dir = stack.state.as_ref().map(|s| s.join("logs"));
                tokio::spawn(async move {
                    let mut tail = logs::Tail::default();
                    let mut next_summary = tokio::time::Instant::now();
                    loop {
                        if let Some(dir) = &logs_dir {
                            for line in tail.read(dir) {
                                if let Some((consumer, figures)) = logs::consumer_figures(&line) {
                                    view.consumer_metrics(&consumer, figures);
                                }
                            }
                        }
                        if tokio::time::Instant::now() >= next_summary {
                            view.summary();
                            next_summary += Duration::from_secs(summary_secs.max(1));
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            };
            // Ctrl-C where it runs alone, SIGTERM from dev.sh (or a test) stopping the stack: either way the
            // checkpoints are saved first, or a restart would deliver the last second's batches again.
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| format!("SIGTERM handler: {e}"))?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            summaries.abort();
            emulator.save();
            view.summary();
            Ok(())
        }
        Command::Logs(_) | Command::Completions { .. } => Ok(()),
    }
}

fn run_logs(command: &Logs) -> Result<(), String> {
    use std::io::{BufRead as _, Write as _};
    match command {
        Logs::Pretty => {
            let mut out = std::io::stdout().lock();
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if writeln!(out, "{}", logs::pretty(&line))
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    break; // the reader went away (`make logs | head`)
                }
            }
            Ok(())
        }
        Logs::Trace { id, dir } => {
            let lines = logs::read_lines(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let found = logs::trace(&lines, id);
            if found.is_empty() {
                return Err(format!("no line under {} names {id}", dir.display()));
            }
            for line in found {
                println!("{}", logs::pretty(&line.to_string()));
            }
            Ok(())
        }
    }
}

/// Exit codes: 0 done, 1 failed, 2 usage (clap's).
#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    let name = match &command {
        Command::Logs(_) => "tubes-local logs",
        _ => "tubes-local",
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One `NAME=value` line of the functions' environment file, as `cargo lambda watch` (dotenvy) and `dev.sh` read
/// it: a value with `=`, `#`, a quote or whitespace in it is double-quoted (unquoted, dotenvy refuses the whole
/// file); one that no quoting carries through both readers unchanged (`"`, `\`, `$`, a line break) is refused.
fn env_line(name: &str, value: &str) -> Result<String, String> {
    if value.contains(['"', '\\', '$', '\n', '\r']) {
        return Err(format!(
            "{name}: a function's environment value may not hold a double quote, a backslash, a dollar sign or \
             a line break (the local stack's environment file cannot carry it)"
        ));
    }
    if value.contains(|c: char| c == '=' || c == '#' || c == '\'' || c.is_whitespace()) {
        Ok(format!("{name}=\"{value}\"\n"))
    } else {
        Ok(format!("{name}={value}\n"))
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tubes-local").chain(line.split_whitespace()))
            .map(|c| c.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_scripts_command_lines_still_parse() {
        // scripts/dev.sh's provision and run, and the Makefile's logs.
        let Command::Provision { stack, env_out } = parse(
            "provision --template s/template.json --env-out s/functions.env --secret-file SourcesSecret=s/sources.json",
        )
        .unwrap() else {
            panic!("provision")
        };
        assert_eq!(env_out, PathBuf::from("s/functions.env"));
        assert_eq!(stack.template().unwrap(), PathBuf::from("s/template.json"));
        assert_eq!(stack.prefix, "tubes");
        assert_eq!(
            stack.secret_file,
            [("SourcesSecret".to_owned(), PathBuf::from("s/sources.json"))]
        );
        let Command::Run { stack, lambda, log, summary_secs, quiet, .. } = parse(
            "run --template s/template.json --lambda http://127.0.0.1:9001 --state s --log s/esm.jsonl --summary-secs 3",
        )
        .unwrap() else {
            panic!("run")
        };
        assert_eq!(
            (lambda.as_str(), log, summary_secs, quiet, stack.state),
            (
                "http://127.0.0.1:9001",
                Some(PathBuf::from("s/esm.jsonl")),
                3,
                false,
                Some(PathBuf::from("s"))
            )
        );
        assert_eq!(parse("logs pretty").unwrap(), Command::Logs(Logs::Pretty));
        assert_eq!(
            parse("logs trace evt_1 --dir s/logs").unwrap(),
            Command::Logs(Logs::Trace {
                id: "evt_1".into(),
                dir: "s/logs".into()
            })
        );
    }

    #[test]
    fn the_template_defaults_to_the_state_directorys() {
        let Command::Provision { stack, .. } = parse("provision --state s --env-out f").unwrap()
        else {
            panic!("provision")
        };
        assert_eq!(stack.template().unwrap(), PathBuf::from("s/template.json"));
        let Command::Provision { stack, .. } = parse("provision --env-out f").unwrap() else {
            panic!("provision")
        };
        // TUBES_STATE_DIR may be set where the tests run: only without it is the template missing.
        if std::env::var_os("TUBES_STATE_DIR").is_none() {
            assert!(stack
                .template()
                .unwrap_err()
                .contains("--template is required"));
        }
    }

    #[test]
    fn the_environment_fills_in_what_the_line_leaves_out() {
        // The variables are the documented ones.
        let command = Cli::command();
        let run = command.find_subcommand("run").unwrap();
        let env = |id: &str| {
            run.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("lambda").as_deref(), Some("AWS_ENDPOINT_URL_LAMBDA"));
        assert_eq!(env("state").as_deref(), Some("TUBES_STATE_DIR"));
        assert_eq!(env("summary_secs").as_deref(), Some("TUBES_SUMMARY_SECS"));
        assert_eq!(env("idle_poll_ms").as_deref(), Some("TUBES_IDLE_POLL_MS"));
        assert_eq!(
            env("batching_window_secs").as_deref(),
            Some("TUBES_BATCHING_WINDOW_SECS")
        );
        // And a variable fills in a missing flag, the flag wins over it: shown with one cargo sets for every test
        // (setting one here would race the other tests' reads of the environment).
        let manifest =
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let command = Cli::command().mut_subcommand("run", |c| {
            c.mut_arg("lambda", |a| a.env("CARGO_MANIFEST_DIR"))
        });
        let lambda = |line: &str| {
            let matches = command
                .clone()
                .try_get_matches_from(line.split_whitespace())
                .unwrap();
            match <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
                .unwrap()
                .command
            {
                Command::Run { lambda, .. } => lambda,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(lambda("tubes-local run --template t.json"), manifest);
        assert_eq!(
            lambda("tubes-local run --template t.json --lambda http://x"),
            "http://x"
        );
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        for wrong in [
            "",
            "serve",
            "provision --template t.json",
            "run --summary-secs often",
            "provision --env-out f --secret-file nopath",
            "logs trace --dir d",
            "completions tcsh",
        ] {
            let e = parse(wrong).expect_err(wrong);
            assert_eq!(e.exit_code(), 2, "{wrong}: {e}");
        }
        for help in ["--help", "run --help", "logs --help", "help provision"] {
            assert_eq!(parse(help).expect_err(help).exit_code(), 0, "{help}");
        }
    }
}

#[cfg(test)]
mod env_file_tests {
    use super::env_line;

    #[test]
    fn values_are_quoted_when_dotenvy_needs_it_and_refused_when_nothing_carries_them() {
        assert_eq!(
            env_line("A", "plain-1.2:x,y;z").unwrap(),
            "A=plain-1.2:x,y;z\n"
        );
        assert_eq!(env_line("A", "p=a,b;s=c").unwrap(), "A=\"p=a,b;s=c\"\n");
        assert_eq!(env_line("A", "two words").unwrap(), "A=\"two words\"\n");
        for bad in ["a\"b", "a\\b", "$HOME", "a\nb"] {
            assert!(
                env_line("A", bad).unwrap_err().starts_with("A: "),
                "{bad:?}"
            );
        }
    }
}
