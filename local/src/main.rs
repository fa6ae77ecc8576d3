//! `tubes-local`: provisions the template's resources on the local emulators and runs the Kinesis event source
//! mapping emulator. Started by `make dev` (scripts/dev.sh); see `tubes-local --help`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tubes_local::app::App;
use tubes_local::logs;
use tubes_local::runner::{Emulator, Settings};
use tubes_local::stack::{environment, provision, Clients};
use tubes_local::view::View;

const HELP: &str = "\
tubes-local: the local stack's resources and Kinesis event source mapping emulator.

USAGE:
  tubes-local provision --template EXPANDED.json --env-out FILE [--prefix tubes] [--secret-file ID=PATH]
      Creates the template's streams, queues, secrets, tables and buckets (idempotently) on the emulators named
      by AWS_ENDPOINT_URL_KINESIS / _SQS / _SECRETS_MANAGER / _DYNAMODB / _S3 and writes the functions'
      environment to FILE.
      --secret-file (once per secret): the secret ID (a logical id) is created with the contents of PATH
      instead of the template's SecretString (the local stack's demo source and reader).
  tubes-local run --template EXPANDED.json [--lambda http://127.0.0.1:9000] [--prefix tubes]
                  [--state DIR] [--log FILE] [--summary-secs 10] [--quiet]
      Runs every Kinesis event source mapping of the template until interrupted.
  tubes-local logs split --dir DIR
      Routes standard input (cargo lambda watch's output) to DIR/FUNCTION.log, DIR/metrics.log (EMF) and
      DIR/watch.log, build noise left out; appends, and rotates a file over 10 MB when it opens it.
  tubes-local logs pretty
      Standard input's JSON log lines as a person reads them (make logs).
  tubes-local logs trace ID --dir DIR
      Every line under DIR about an event id, trace id or request id, and every line of its traces, across
      functions, in time order (make trace ID).

The template is the SAM-expanded one: scripts/expand_template.py template.yaml OUT.json";

struct Args(BTreeMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let key = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a}"))?;
            if key == "quiet" {
                map.insert(key.to_owned(), "true".to_owned());
                continue;
            }
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            match map.get_mut(key) {
                // `--secret-file` may be given once per secret: its values are kept one per line.
                Some(previous) if key == "secret-file" => {
                    previous.push('\n');
                    previous.push_str(value);
                }
                _ => {
                    map.insert(key.to_owned(), value.clone());
                }
            }
        }
        Ok(Args(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn required(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("--{key} is required"))
    }
}

fn read_app(path: &str) -> Result<App, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
    App::from_template(&value).map_err(|e| e.to_string())
}

async fn run(command: &str, args: &Args) -> Result<(), String> {
    let mut app = read_app(args.required("template")?)?;
    for spec in args.get("secret-file").into_iter().flat_map(str::lines) {
        let (id, path) = spec
            .split_once('=')
            .ok_or("--secret-file takes LOGICAL_ID=PATH")?;
        let value = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let secret = app
            .secrets
            .iter_mut()
            .find(|s| s.logical_id == id)
            .ok_or_else(|| format!("--secret-file: the template declares no secret {id}"))?;
        secret.initial = Some(value);
    }
    let prefix = args.get("prefix").unwrap_or("tubes");
    let clients = Clients::from_env().await;
    let resolved = provision(&app, prefix, &clients)
        .await
        .map_err(|e| e.to_string())?;
    match command {
        "provision" => {
            let env = environment(&app, &resolved).map_err(|e| e.to_string())?;
            let text = env
                .iter()
                .map(|(k, v)| env_line(k, v))
                .collect::<Result<String, String>>()?;
            let out = args.required("env-out")?;
            std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;
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
        "run" => {
            let log = match args.get("log") {
                Some(p) => Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| format!("{p}: {e}"))?,
                ),
                None => None::<File>,
            };
            let view = Arc::new(View::new(log, args.get("quiet").is_some()));
            view.functions(
                app.functions
                    .iter()
                    .map(|f| (f.logical_id.clone(), f.binary.clone())),
            );
            let summary_every: u64 = args
                .get("summary-secs")
                .unwrap_or("10")
                .parse()
                .map_err(|_| "--summary-secs")?;
            let settings = Settings {
                lambda_endpoint: args
                    .get("lambda")
                    .unwrap_or("http://127.0.0.1:9000")
                    .trim_end_matches('/')
                    .into(),
                region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                account: "000000000000".into(),
                idle_poll: Duration::from_secs(1),
                discovery: Duration::from_secs(5),
                state_dir: args.get("state").map(PathBuf::from),
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
                let logs_dir = args.get("state").map(|s| PathBuf::from(s).join("logs"));
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
                            next_summary += Duration::from_secs(summary_every.max(1));
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            };
            let _ = tokio::signal::ctrl_c().await;
            summaries.abort();
            emulator.save();
            view.summary();
            Ok(())
        }
        other => Err(format!("unknown command {other}")),
    }
}

/// `tubes-local logs …`: no emulator, no template.
fn logs(argv: &[String]) -> Result<(), String> {
    use std::io::{BufRead as _, Write as _};
    let dir = |args: &[String]| -> Result<PathBuf, String> {
        Args::parse(args)?.required("dir").map(PathBuf::from)
    };
    match argv.first().map(String::as_str) {
        Some("split") => {
            let dir = dir(&argv[1..])?;
            logs::split(std::io::stdin().lock(), &dir)
                .map_err(|e| format!("{}: {e}", dir.display()))
        }
        Some("pretty") => {
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
        Some("trace") => {
            let id = argv.get(1).ok_or("trace needs an id")?;
            let dir = dir(&argv[2..])?;
            let lines = logs::read_lines(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let found = logs::trace(&lines, id);
            if found.is_empty() {
                return Err(format!("no line under {} names {id}", dir.display()));
            }
            for line in found {
                println!("{}", logs::pretty(&line.to_string()));
            }
            Ok(())
        }
        _ => Err("split --dir DIR | pretty | trace ID --dir DIR".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = argv.first().cloned() else {
        eprintln!("{HELP}");
        return ExitCode::from(2);
    };
    if command == "--help" || command == "-h" {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if command == "logs" {
        return match logs(&argv[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tubes-local logs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match Args::parse(&argv[1..]) {
        Ok(args) => run(&command, &args).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tubes-local: {e}");
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
