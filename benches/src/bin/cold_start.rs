//! `make bench-cold-start`: each function's cold start against a hello-world `lambda_runtime` binary
//! (`hello_lambda`), measured from outside as Lambda sees it: from spawning the process to its first
//! `GET /2018-06-01/runtime/invocation/next`, the moment it is ready to serve.
//!
//! A small runtime-API emulator listens on an ephemeral loopback port (`AWS_LAMBDA_RUNTIME_API`); it also answers
//! Secrets Manager's `GetSecretValue` (`AWS_ENDPOINT_URL` points every AWS client at it), so a function that
//! still read a secret before serving would pay the round trip here too. Each function gets the environment the
//! template gives it (tables, queues, the stream, the mail sender), a region and dummy credentials, nothing else:
//! no `HOME`, no profile files, as in Lambda.
//!
//! The binaries are the ones next to this one (same profile: `cargo build --profile bench`). Each round starts
//! every binary once, the baseline among them, in a rotating order; the report gives min / median / max per
//! binary and each function's median minus the baseline's. The exit code is 1 if a function is more than the
//! budget (`--max-over-ms`, default 5) over the baseline.
//!
//! ```text
//! cold_start [--runs N] [--max-over-ms MS] [NAME ...]   NAME: run only the functions whose binary contains it
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The baseline binary.
const BASELINE: &str = "hello_lambda";

/// How long a start may take before the run counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A valid sources configuration (one source, one API key hash): what ingest's `SourcesSecret` holds.
const SOURCES: &str = r#"{"shop": {"api_keys": {"k1": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "event_types": ["payment.received", "account.*"]}}"#;

/// A valid readers configuration: what the query function's `ReadersSecret` holds.
const READERS: &str = r#"{"dashboard": {"api_keys": {"k1": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}}"#;

/// A process's environment variables.
type Env = Vec<(&'static str, String)>;

/// What the emulator saw.
enum Seen {
    /// The first `GET …/invocation/next`, when it was read.
    Next(Instant),
    /// `POST …/init/error`: the function failed to start.
    InitError(String),
}

/// Each function binary and the variables the template sets for it.
fn functions(endpoint: &str) -> Vec<(&'static str, Env)> {
    let queue = |name: &str| format!("{endpoint}/123456789012/{name}");
    let mail = || {
        [
            ("MAIL_FROM", "tubes@example.com".to_owned()),
            ("SES_CONFIGURATION_SET", "tubes".to_owned()),
        ]
    };
    let idempotency = ("IDEMPOTENCY_TABLE", "tubes-idempotency".to_owned());
    vec![
        (
            "tubes-ingest",
            vec![
                ("STREAM_NAME", "tubes-events".into()),
                ("SOURCES_SECRET_ID", "tubes-sources".into()),
                ("SOURCES_MAX_AGE_SECS", "300".into()),
                ("MAX_BODY_BYTES", "1048576".into()),
                ("MAX_EVENT_BYTES", "65536".into()),
                ("MAX_BATCH_EVENTS", "500".into()),
                ("WRITE_DEADLINE_MS", "5000".into()),
            ],
        ),
        (
            "tubes-consumer-payments",
            vec![
                idempotency.clone(),
                ("PAYMENTS_DEAD_LETTER_QUEUE_URL", queue("payments-dlq")),
                ("LEDGER_TABLE", "tubes-ledger".into()),
                ("STREAM_NAME", "tubes-events".into()),
            ],
        ),
        (
            "tubes-consumer-signups",
            [
                vec![
                    idempotency.clone(),
                    ("SIGNUPS_DEAD_LETTER_QUEUE_URL", queue("signups-dlq")),
                    ("USERS_TABLE", "tubes-users".into()),
                ],
                mail().to_vec(),
            ]
            .concat(),
        ),
        (
            "tubes-consumer-unsubscribes",
            [
                vec![
                    idempotency.clone(),
                    (
                        "UNSUBSCRIBES_DEAD_LETTER_QUEUE_URL",
                        queue("unsubscribes-dlq"),
                    ),
                    ("USERS_TABLE", "tubes-users".into()),
                ],
                mail().to_vec(),
            ]
            .concat(),
        ),
        (
            "tubes-consumer-notifications",
            [
                vec![
                    idempotency.clone(),
                    (
                        "NOTIFICATIONS_DEAD_LETTER_QUEUE_URL",
                        queue("notifications-dlq"),
                    ),
                ],
                mail().to_vec(),
            ]
            .concat(),
        ),
        (
            "tubes-archive",
            vec![("ARCHIVE_BUCKET", "tubes-archive".into())],
        ),
        (
            "tubes-consumer-projections",
            vec![
                ("READ_MODELS_TABLE", "tubes-read-models".into()),
                (
                    "PROJECTIONS_DEAD_LETTER_QUEUE_URL",
                    queue("projections-dlq"),
                ),
            ],
        ),
        (
            "tubes-query",
            vec![
                ("READ_MODELS_TABLE", "tubes-read-models".into()),
                ("READERS_SECRET_ARN", "tubes-readers".into()),
                idempotency,
                (
                    "EVENT_CONSUMERS",
                    "payments=account.opened,payment.received;signups=user.signed_up".into(),
                ),
            ],
        ),
    ]
}

/// The variables Lambda sets for every function, pointed at the emulator.
fn lambda_env(name: &str, address: &str) -> Env {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", address.to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://{address}")),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/04/[$LATEST]0".into()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIDCOLDSTART".into()),
        ("AWS_SECRET_ACCESS_KEY", "cold-start-secret".into()),
        ("AWS_SESSION_TOKEN", "cold-start-token".into()),
        ("TUBES_METRICS_NAMESPACE", "tubes".into()),
    ]
}

/// Serves one connection: reports the runtime API calls it reads, answers `GetSecretValue`, and leaves
/// `…/invocation/next` unanswered (the process is killed once it has asked).
fn serve(stream: TcpStream, seen: &mpsc::Sender<Seen>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let at = Instant::now();
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0usize;
        let mut target = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or_default();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-amz-target" => target = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if path.ends_with("/runtime/invocation/next") {
            // Ignore the send error: a late request after the run ended has no one to report to.
            let _ = seen.send(Seen::Next(at));
            continue;
        }
        if path.ends_with("/runtime/init/error") {
            let _ = seen.send(Seen::InitError(String::from_utf8_lossy(&body).into_owned()));
        }
        let (status, answer) = if target == "secretsmanager.GetSecretValue" {
            let body = String::from_utf8_lossy(&body);
            let secret = if body.contains("readers") {
                READERS
            } else {
                SOURCES
            };
            let answer = serde_json::json!({
                "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:tubes-AbCdEf",
                "Name": "tubes",
                "SecretString": secret,
                "VersionId": "00000000-0000-0000-0000-000000000000",
            });
            ("200 OK", answer.to_string())
        } else {
            ("202 Accepted", "{}".to_owned())
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )?;
        stream.flush()?;
    }
}

/// One cold start of `binary`: the time from spawn to its first `GET …/invocation/next`.
fn start_once(
    binary: &Path,
    env: &[(&'static str, String)],
    seen: &mpsc::Receiver<Seen>,
) -> Result<Duration, String> {
    // Nothing left over from a previous run.
    while seen.try_recv().is_ok() {}
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let outcome = match seen.recv_timeout(START_TIMEOUT) {
        Ok(Seen::Next(at)) => Ok(at.saturating_duration_since(start)),
        Ok(Seen::InitError(body)) => Err(format!("init error: {body}")),
        Err(_) => Err(format!("no GET /next within {START_TIMEOUT:?}")),
    };
    // The process may already have exited (an init error): then kill has nothing to do.
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|e| {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        format!("{}: {e}\n{stderr}", binary.display())
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let mut runs = 40usize;
    let mut budget_ms = 5.0f64;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--max-over-ms" => {
                budget_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(budget_ms)
            }
            "--bench" => {}
            name => names.push(name.to_owned()),
        }
    }

    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on loopback: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });

    let dir: PathBuf = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut binaries: Vec<(String, PathBuf, Env)> = vec![(
        BASELINE.to_owned(),
        dir.join(BASELINE),
        lambda_env(BASELINE, &address),
    )];
    for (name, vars) in functions(&format!("http://{address}")) {
        if !names.is_empty() && !names.iter().any(|n| name.contains(n.as_str())) {
            continue;
        }
        let mut env = lambda_env(name, &address);
        env.extend(vars);
        binaries.push((name.to_owned(), dir.join(name), env));
    }
    if let Some((_, missing, _)) = binaries.iter().find(|(_, path, _)| !path.exists()) {
        eprintln!(
            "{} is not built: run `make bench-cold-start` (cargo build --profile bench --bins)",
            missing.display()
        );
        return ExitCode::FAILURE;
    }

    // Warm-up: each binary once (page cache, the emulator's threads), not counted.
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); binaries.len()];
    for (_, path, env) in &binaries {
        if let Err(e) = start_once(path, env, &rx) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    for round in 0..runs {
        // A rotating order: no binary always follows the same one.
        for i in 0..binaries.len() {
            let k = (i + round) % binaries.len();
            let (_, path, env) = &binaries[k];
            match start_once(path, env, &rx) {
                Ok(d) => times[k].push(d),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    println!(
        "cold start: spawn → first GET /runtime/invocation/next, {runs} runs each, interleaved (ms)\n"
    );
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>14}",
        "binary", "min", "median", "max", "vs hello-world"
    );
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let baseline = median(&mut times[0]);
    let mut over = Vec::new();
    for ((name, _, _), t) in binaries.iter().zip(times.iter_mut()) {
        let m = median(t);
        let diff = ms(m) - ms(baseline);
        let verdict = if name == BASELINE {
            String::from("(baseline)")
        } else {
            if diff > budget_ms {
                over.push(name.clone());
            }
            format!("{diff:+.2}")
        };
        println!(
            "{name:<30} {:>8.2} {:>8.2} {:>8.2} {verdict:>14}",
            ms(t[0]),
            ms(m),
            ms(t[t.len() - 1])
        );
    }
    if over.is_empty() {
        println!("\nevery function within {budget_ms} ms of hello-world");
        ExitCode::SUCCESS
    } else {
        println!("\nover the {budget_ms} ms budget: {}", over.join(", "));
        ExitCode::FAILURE
    }
}
