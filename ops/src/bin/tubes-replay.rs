//! `tubes-replay`: events from the event store, sent again in each key's original order (see
//! `tubes_ops::replay`). AWS settings come from the environment (`AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL_S3` / `_KINESIS` / `_DYNAMODB` for the local stack).
//!
//! ```text
//! tubes-replay (--to-stream STREAM | --to-function FUNCTION | --to-read-model VERSION) [--bucket BUCKET]
//!              [--with-stream STREAM] [--table TABLE] [--from RFC3339] [--to RFC3339] [--type TYPE]...
//!              [--source SOURCE] [--subject SUBJECT] [--state FILE] [--limit N] [--dry-run] [--switch]
//! ```
//! `--to-stream`: onto the stream, marked replayed; `--to-function`: straight to that consumer function, marked
//! replayed, as the event source mapping would invoke it (`AWS_ENDPOINT_URL_LAMBDA` for the local stack); the
//! other consumers do not see them; `--to-read-model`: folded into that version of the read models (`--table`,
//! default `READ_MODELS_TABLE`), a rebuild. `--bucket` defaults to `ARCHIVE_BUCKET`. `--with-stream`: the events
//! that stream still retains too (those the archive has not written yet), each event once. `--state`
//! (default `tubes-replay.state.json`) keeps the progress: the same command again resumes. `--dry-run` prints what
//! would be sent (counts by type, the largest keys) and sends nothing. `--switch` (with `--to-read-model`): once the
//! version is built, make it the live one: writers paused, the version caught up from the event store until it
//! covers the live one, then the pointers moved (readers never wait). Exit codes: 0 done, 1 failed (resumable),
//! 2 bad arguments, 3 stopped by `--limit` or Ctrl-C (resumable).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_ops::aws_sdk_lambda;
use tubes_ops::replay::{
    self, Ended, FunctionSink, Plan, ReadModelSink, ReplayState, Selection, Sink, StreamSink,
};
use tubes_platform::read_model::DynamoReadModels;
use tubes_platform::KinesisPublisher;

const USAGE: &str = "usage: tubes-replay (--to-stream STREAM | --to-function FUNCTION | --to-read-model VERSION) \
    [--bucket BUCKET] [--with-stream STREAM] [--table TABLE] [--from RFC3339] [--to RFC3339] [--type TYPE]... \
    [--source SOURCE] [--subject SUBJECT] [--state FILE] [--limit N] [--dry-run] [--switch]";

/// The read models the projections function keeps: a switch moves them all.
const MODELS: [&str; 2] = ["accounts", "users"];

/// How long a switch waits for the new version to cover the live one.
const SWITCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the events go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Stream(String),
    Function(String),
    ReadModel(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Stream(s) => format!("stream {s}"),
            Target::Function(f) => format!("function {f}"),
            Target::ReadModel(v) => format!("read models {v}"),
        }
    }
}

#[derive(Debug)]
struct Args {
    target: Target,
    bucket: String,
    with_stream: Option<String>,
    table: Option<String>,
    selection: Selection,
    state: PathBuf,
    limit: Option<usize>,
    dry_run: bool,
    switch: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut stream = None;
    let mut function = None;
    let mut with_stream = None;
    let mut version = None;
    let mut bucket = std::env::var("ARCHIVE_BUCKET").ok();
    let mut table = std::env::var("READ_MODELS_TABLE").ok();
    let mut selection = Selection::default();
    let mut state = PathBuf::from("tubes-replay.state.json");
    let mut limit = None;
    let mut dry_run = false;
    let mut switch = false;
    let mut it = args.iter();
    let time = |v: &str, flag: &str| {
        OffsetDateTime::parse(v, &Rfc3339)
            .map_err(|e| format!("{flag} {v:?}: not an RFC 3339 time ({e})"))
    };
    while let Some(arg) = it.next() {
        if arg == "--dry-run" {
            dry_run = true;
            continue;
        }
        if arg == "--switch" {
            switch = true;
            continue;
        }
        if arg == "--help" || arg == "-h" {
            return Err(String::new());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{arg} needs a value"))?
            .clone();
        match arg.as_str() {
            "--to-stream" => stream = Some(value),
            "--to-read-model" => version = Some(value),
            "--to-function" => function = Some(value),
            "--with-stream" => with_stream = Some(value),
            "--bucket" => bucket = Some(value),
            "--table" => table = Some(value),
            "--from" => selection.from = Some(time(&value, "--from")?),
            "--to" => selection.to = Some(time(&value, "--to")?),
            "--type" => selection.types.push(value),
            "--source" => selection.source = Some(value),
            "--subject" => selection.subject = Some(value),
            "--state" => state = PathBuf::from(value),
            "--limit" => {
                limit = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--limit {value:?}: not a count"))?,
                );
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let target = match (stream, function, version) {
        (Some(s), None, None) => Target::Stream(s),
        (None, Some(f), None) => Target::Function(f),
        (None, None, Some(v)) => Target::ReadModel(v),
        _ => {
            return Err(
                "name one target: --to-stream STREAM, --to-function FUNCTION or --to-read-model VERSION"
                    .into(),
            )
        }
    };
    let bucket = bucket
        .filter(|b| !b.is_empty())
        .ok_or("--bucket (or ARCHIVE_BUCKET) is required")?;
    if let Target::ReadModel(v) = &target {
        if table.as_deref().is_none_or(str::is_empty) {
            return Err("--table (or READ_MODELS_TABLE) is required with --to-read-model".into());
        }
        if v.is_empty() || v.contains('#') {
            return Err(format!("--to-read-model {v:?}: a version name without #"));
        }
    }
    if switch && !matches!(target, Target::ReadModel(_)) {
        return Err("--switch makes a read model version live: use it with --to-read-model".into());
    }
    Ok(Args {
        switch,
        target,
        bucket,
        with_stream,
        table,
        selection,
        state,
        limit,
        dry_run,
    })
}

/// Sends the plan to `sink` under the arguments' state file and limit.
async fn send<S: Sink>(
    plan: &Plan,
    sink: &S,
    state: &mut ReplayState,
    args: &Args,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Ended, String> {
    replay::run(plan, sink, state, &args.state, args.limit, stop, progress).await
}

/// What the archive (and the stream, with `--with-stream`) holds under the selection.
async fn plan(
    s3: &aws_sdk_s3::Client,
    kinesis: &aws_sdk_kinesis::Client,
    args: &Args,
) -> Result<Plan, String> {
    let stream = args.with_stream.as_deref().map(|name| (kinesis, name));
    Plan::from_sources(s3, &args.bucket, stream, &args.selection).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tubes-replay: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(Ended::Done) => ExitCode::SUCCESS,
        Ok(Ended::Stopped) => ExitCode::from(3),
        Err(e) => {
            eprintln!("tubes-replay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One catch-up round of a switch: what the event store holds now, sent into the new version from where the
/// replay's state says it stopped.
async fn catch_up<S: tubes_platform::read_model::ReadModelStore>(
    s3: &aws_sdk_s3::Client,
    kinesis: &aws_sdk_kinesis::Client,
    args: &Args,
    sink: &ReadModelSink<S>,
    state: &mut ReplayState,
) -> Result<(), String> {
    let plan = plan(s3, kinesis, args).await?;
    replay::run(
        &plan,
        sink,
        state,
        &args.state,
        None,
        &|| false,
        &mut |_, _| {},
    )
    .await
    .map(|_| ())
}

async fn run(args: Args) -> Result<Ended, String> {
    let aws = aws_config::load_from_env().await;
    let env = tubes_platform::runtime::Env::new(aws, |name| std::env::var(name).ok());
    let s3 = env.s3();
    let target = args.target.describe();
    let mut state = match ReplayState::load(&args.state)? {
        Some(state) if state.target != target || state.selection != args.selection => {
            return Err(format!(
                "{} is the state of another replay (to {}): name another --state, or delete it to start over",
                args.state.display(),
                state.target
            ));
        }
        Some(state) => state,
        None => ReplayState {
            id: replay::new_id(),
            target,
            selection: args.selection.clone(),
            ..ReplayState::default()
        },
    };
    let plan = plan(&s3, env.kinesis(), &args).await?;
    if args.dry_run {
        println!("{} events would be sent to {}:", plan.len(), state.target);
        for (ty, n) in plan.by_type() {
            println!("  {ty:<24} {n}");
        }
        println!("{} partition keys; the largest:", plan.by_key().len());
        for (key, n) in replay::largest_keys(&plan, 10) {
            println!("  {key:<24} {n}");
        }
        if state.events > 0 {
            println!(
                "{} of them were sent already ({}).",
                state.events,
                args.state.display()
            );
        }
        return Ok(Ended::Done);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    // A bar on standard error when it is a terminal; none in tests, CI or a log file.
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(plan.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "[{bar:40}] {pos}/{len} events  {per_sec}  {eta} left",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_position(state.events as u64);
    // A resumed replay's earlier events are not counted in its rate.
    bar.reset_eta();
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let should_stop = || stop.load(Ordering::Relaxed);
    let ended = match &args.target {
        Target::Stream(name) => {
            let sink = StreamSink::new(KinesisPublisher::new(env.kinesis().clone(), name));
            send(&plan, &sink, &mut state, &args, &should_stop, &mut progress).await?
        }
        Target::Function(function) => {
            let stream_arn = match &args.with_stream {
                Some(name) => env
                    .kinesis()
                    .describe_stream_summary()
                    .stream_name(name)
                    .send()
                    .await
                    .map_err(|e| tubes_platform::aws::describe("DescribeStreamSummary", e))?
                    .stream_description_summary()
                    .map(|d| d.stream_arn().to_owned())
                    .unwrap_or_default(),
                None => String::new(),
            };
            let region = env
                .aws()
                .region()
                .map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
            let sink = FunctionSink::new(
                aws_sdk_lambda::Client::new(env.aws()),
                function.clone(),
                stream_arn,
                region,
            );
            send(&plan, &sink, &mut state, &args, &should_stop, &mut progress).await?
        }
        Target::ReadModel(version) => {
            let table = args.table.clone().unwrap_or_default();
            let store = DynamoReadModels::new(env.dynamodb().clone(), table);
            let sink = ReadModelSink::new(&store, version.clone());
            let ended = send(&plan, &sink, &mut state, &args, &should_stop, &mut progress).await?;
            if ended == Ended::Done && args.switch {
                eprintln!(
                    "\ntubes-replay: {version} built; switching (writers paused, catching up)"
                );
                // Each round borrows the state in turn (the rounds never overlap).
                let shared = tokio::sync::Mutex::new(std::mem::take(&mut state));
                let switched = replay::switch(
                    &store,
                    &MODELS,
                    version,
                    || async {
                        let mut state = shared.lock().await;
                        catch_up(&s3, env.kinesis(), &args, &sink, &mut state).await
                    },
                    SWITCH_DEADLINE,
                )
                .await;
                state = shared.into_inner();
                let report = switched?;
                for (model, old, documents, differ) in &report.models {
                    eprintln!(
                        "tubes-replay: {model}: {old} -> {version} ({documents} documents of {old}, {differ} differ in {version})"
                    );
                }
            }
            ended
        }
    };
    bar.finish_and_clear();
    match ended {
        Ended::Done => eprintln!(
            "tubes-replay: {} of {} events sent to {} (replay {}).",
            state.events,
            plan.len(),
            state.target,
            state.id
        ),
        Ended::Stopped => eprintln!(
            "tubes-replay: stopped after {} of {} events; the same command resumes ({}).",
            state.events,
            plan.len(),
            args.state.display()
        ),
    }
    Ok(ended)
}
