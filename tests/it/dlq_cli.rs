//! `tubes-dlq` as an operator runs it, on moto's SQS: the dead-letter queues with their depths, a dead letter
//! decoded, deletions that need a confirmation (`--yes` without a terminal; asked on one, a pseudo-terminal here),
//! unknown queues and messages named, and a redrive to a function (or onto the stream, watched) whose records are
//! parked again reported as the failure it is. The function is a
//! stand-in Lambda endpoint that answers as the consumer harness does (it parks the record on the queue, then
//! answers success; or reports it in `batchItemFailures`; or handles it).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tubes_tests::{as_from_a_shell, read_stream, repo_root, KinesisLocal, Moto, REGION};

/// The `tubes-dlq` binary, built once for this test binary with every binary of the workspace, as `make dev` and
/// the local stacks build them (one feature set: `-p tubes-ops` alone would compile shared crates again).
fn tubes_dlq() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = as_from_a_shell(&mut Command::new(cargo))
                .args(["build", "-q", "--workspace", "--bins"])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "tubes-dlq builds");
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("debug/tubes-dlq")
        })
        .clone()
}

/// Runs `tubes-dlq ARGS` against `moto` (and `lambda`, the Invoke endpoint), standard input not a terminal.
async fn dlq(moto: &Moto, lambda: &str, args: &[&str]) -> Output {
    dlq_on(moto, &moto.endpoint, lambda, args).await
}

/// [`dlq`] with its streams on `kinesis`.
async fn dlq_on(moto: &Moto, kinesis: &str, lambda: &str, args: &[&str]) -> Output {
    let bin = tubes_dlq();
    let (endpoint, kinesis, lambda) =
        (moto.endpoint.clone(), kinesis.to_owned(), lambda.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    // Off the runtime: the stand-in function answers on it meanwhile.
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .env("AWS_ENDPOINT_URL_SQS", &endpoint)
            .env("AWS_ENDPOINT_URL_KINESIS", &kinesis)
            .env("AWS_ENDPOINT_URL_LAMBDA", &lambda)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .output()
            .expect("tubes-dlq runs")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit code, and what was printed (for the assertion's message).
fn code(out: &Output) -> (i32, String) {
    let (stdout, stderr) = text(out);
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}\n{stderr}"),
    )
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// A dead letter as the consumer harness parks it: signups gave up on event `id`, the 3rd of a packed record.
fn letter(id: &str) -> Value {
    let event = json!({"specversion": "1.0", "id": id, "source": "/it", "type": "user.signed_up",
        "subject": "usr_1", "data": {"user_id": "usr_1", "email": "ada@example.com"}});
    json!({"kind": "tubes.dead_letter", "consumer": "signups",
        "event_source_arn": "arn:aws:kinesis:us-east-1:000000000000:stream/tubes-EventStream",
        "shard_id": "shardId-000000000000", "sequence_number": "49650000000000000000000000000000000000000000000000000042",
        "sub_sequence_number": 3, "partition_key": "usr_1", "event_source": "/it", "event_id": id,
        "event_type": "user.signed_up", "reason": "the welcome template is missing", "attempts": 2,
        "payload_base64": base64::engine::general_purpose::STANDARD.encode(event.to_string())})
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &Value) -> String {
    sqs.send_message()
        .queue_url(url)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap()
}

/// The queue's messages (all visible), polled until `want` is true of them.
async fn messages_until(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    what: &str,
    want: impl Fn(&[tubes_ops::Message]) -> bool,
) -> Vec<tubes_ops::Message> {
    let dlq = tubes_ops::DeadLetterQueue::new(sqs.clone(), kinesis_unused(), url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = dlq.list().await.unwrap();
        if want(&messages) {
            return messages;
        }
        assert!(Instant::now() < deadline, "{what}: {messages:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Kinesis client for a queue the test only reads (never called).
fn kinesis_unused() -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_without_a_queue_names_the_dead_letter_queues_with_their_depths() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let signups = queue(&sqs, "it-SignupsDeadLetterQueue").await;
    queue(&sqs, "it-PaymentsDeadLetterQueue").await;
    let other = queue(&sqs, "it-work").await;
    for i in 0..3 {
        send(&sqs, &signups, &letter(&format!("evt_{i}"))).await;
    }
    send(&sqs, &other, &json!({})).await;
    // One of them in flight (received, out of sight): counted too.
    sqs.receive_message()
        .queue_url(&signups)
        .max_number_of_messages(1)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();

    let out = dlq(&moto, "", &["list"]).await;
    let (stdout, _) = text(&out);
    assert_eq!(code(&out).0, 0, "{}", code(&out).1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "the dead-letter queues only:\n{stdout}");
    assert!(
        lines[0].starts_with("it-PaymentsDeadLetterQueue") && lines[0].contains(" 0 message(s)"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("it-SignupsDeadLetterQueue")
            && lines[1].contains(" 3 message(s)  (2 waiting, 1 in flight)"),
        "{stdout}"
    );
    let out = dlq(&moto, "", &["list", "--all", "--prefix", "it-w"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.starts_with("it-work")
            && stdout.contains(" 1 message(s)")
            && stdout.lines().count() == 1,
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_decodes_the_parked_event_and_says_where_it_came_from() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = queue(&sqs, "it-SignupsDeadLetterQueue").await;
    let id = send(&sqs, &url, &letter("evt_show")).await;

    let out = dlq(&moto, "", &["show", "it-SignupsDeadLetterQueue", &id]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for part in [
        "consumer            signups",
        "reason              the welcome template is missing",
        "attempts            2",
        "shard               shardId-000000000000",
        "sequence_number     49650000000000000000000000000000000000000000000000000042",
        "sub_sequence_number 3",
        "event_id            evt_show",
        "\n  \"id\": \"evt_show\",\n",
        "\"data\": {\n    \"email\": \"ada@example.com\",",
    ] {
        assert!(stdout.contains(part), "{part:?} in\n{stdout}");
    }
    assert!(!stdout.contains("payload_base64"), "decoded:\n{stdout}");

    let raw = dlq(&moto, "", &["show", "--raw", &url, &id]).await;
    let (stdout, _) = text(&raw);
    let stored: Value = serde_json::from_str(stdout.trim()).expect("the body as stored");
    assert_eq!(stored, letter("evt_show"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_needs_yes_without_a_terminal() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = queue(&sqs, "it-SignupsDeadLetterQueue").await;
    let q = "it-SignupsDeadLetterQueue";
    let first = send(&sqs, &url, &letter("evt_a")).await;
    send(&sqs, &url, &letter("evt_b")).await;
    send(&sqs, &url, &letter("evt_c")).await;

    // Refused, exit 2, before anything is touched.
    for args in [vec!["delete", q, first.as_str()], vec!["purge", q]] {
        let out = dlq(&moto, "", &args).await;
        let (status, printed) = code(&out);
        assert_eq!(status, 2, "{args:?}: {printed}");
        assert!(printed.contains("--yes"), "{printed}");
    }
    messages_until(&sqs, &url, "all three still there", |m| m.len() == 3).await;

    let out = dlq(&moto, "", &["delete", q, &first, "--yes"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with(&format!("deleted {first}")), "{stdout}");
    let left = messages_until(&sqs, &url, "two left", |m| m.len() == 2).await;
    assert!(left.iter().all(|m| m.id != first));

    let out = dlq(&moto, "", &["purge", q, "--yes"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("purged it-SignupsDeadLetterQueue (it held 2 message(s))"),
        "{stdout}"
    );
    messages_until(&sqs, &url, "none left", <[_]>::is_empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_queue_or_message_fails_and_is_named() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = queue(&sqs, "it-SignupsDeadLetterQueue").await;
    let id = send(&sqs, &url, &letter("evt_kept")).await;
    let q = "it-SignupsDeadLetterQueue";
    let gone = format!("{}/it-NopeDeadLetterQueue", url.rsplit_once('/').unwrap().0);
    for (args, named) in [
        (
            vec!["list", "it-NopeDeadLetterQueue"],
            "queue it-NopeDeadLetterQueue not found",
        ),
        (
            vec!["show", gone.as_str(), "m"],
            "it-NopeDeadLetterQueue not found",
        ),
        (
            vec!["show", q, "no-such-id"],
            "no message no-such-id on it-SignupsDeadLetterQueue",
        ),
        (
            vec!["delete", q, "no-such-id", "--yes"],
            "no message no-such-id",
        ),
        (vec!["redrive", q, "no-such-id"], "no message no-such-id"),
        (
            vec!["redrive", q, "no-such-id", "--to-function", "f"],
            "no message no-such-id",
        ),
    ] {
        let out = dlq(&moto, "http://127.0.0.1:9", &args).await;
        let (status, printed) = code(&out);
        assert_eq!(status, 1, "{args:?}: {printed}");
        assert!(printed.contains(named), "{args:?}: {named:?} in {printed}");
    }
    let left = messages_until(&sqs, &url, "the message untouched", |m| m.len() == 1).await;
    assert_eq!(left[0].id, id);
}

/// How the stand-in function answers an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// As the harness does with a record it still cannot handle: parks it on the queue, then answers success.
    ParkAgain,
    /// Reports the first record in `batchItemFailures`.
    ItemFailure,
    /// Handles every record.
    Handled,
}

/// A stand-in Lambda Invoke endpoint on loopback: answers each invocation as `answer` says; the records it saw.
struct Function {
    endpoint: String,
    answer: Arc<Mutex<Answer>>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Function {
    async fn start(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(Answer::Handled));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (a, e) = (answer.clone(), events.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (answer, events, sqs, queue_url) =
                    (a.clone(), e.clone(), sqs.clone(), queue_url.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut socket).await else {
                        return;
                    };
                    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                    events.lock().unwrap().push(event.clone());
                    let record = &event["Records"][0]["kinesis"];
                    let answer = *answer.lock().unwrap();
                    let reply = match answer {
                        Answer::ParkAgain => {
                            let data = base64::engine::general_purpose::STANDARD
                                .decode(record["data"].as_str().unwrap_or_default())
                                .unwrap_or_default();
                            let id = serde_json::from_slice::<Value>(&data).unwrap_or_default()
                                ["id"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            let mut again = letter(&id);
                            again["attempts"] = json!(3);
                            send(&sqs, &queue_url, &again).await;
                            json!({"batchItemFailures": []})
                        }
                        Answer::ItemFailure => json!({"batchItemFailures": [
                            {"itemIdentifier": record["sequenceNumber"]}]}),
                        Answer::Handled => json!({"batchItemFailures": []}),
                    };
                    let reply = reply.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        reply.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            endpoint,
            answer,
            events,
        }
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn invocations(&self) -> usize {
        self.events.lock().unwrap().len()
    }
}

/// One HTTP/1.1 request's body (by its Content-Length).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Some(buf[end + 4..end + 4 + length].to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_whose_record_is_parked_again_is_a_failure_that_names_it() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let url = queue(&sqs, "it-SignupsDeadLetterQueue").await;
    let q = "it-SignupsDeadLetterQueue";
    let function = Function::start(sqs.clone(), url.clone()).await;
    let first = send(&sqs, &url, &letter("evt_again")).await;
    let redrive = ["redrive", q, "--to-function", "tubes-consumer-signups"];

    // Given a function that still cannot handle the record: it parks it again and answers success.
    function.answer(Answer::ParkAgain);
    let out = dlq(&moto, &function.endpoint, &redrive).await;
    let (status, printed) = code(&out);
    // Then the redrive fails and names the record, who parked it and why.
    assert_eq!(status, 1, "{printed}");
    assert!(
        printed.contains(
            "parked again: event /it evt_again: parked again by signups after 3 attempt(s): the welcome \
             template is missing (message "
        ),
        "{printed}"
    );
    assert!(
        printed.contains("1 record(s) parked again right away"),
        "{printed}"
    );
    assert_eq!(function.invocations(), 1);
    // The message redriven is gone (the function answered success); the new one is what is there now.
    let left = messages_until(&sqs, &url, "the new letter", |m| m.len() == 1).await;
    assert_ne!(left[0].id, first);

    // Given a function that reports the record failed: kept, a failure too.
    function.answer(Answer::ItemFailure);
    let out = dlq(&moto, &function.endpoint, &redrive).await;
    let (status, printed) = code(&out);
    assert_eq!(status, 1, "{printed}");
    assert!(
        printed.contains("kept: message ") && printed.contains("batchItemFailures"),
        "{printed}"
    );
    assert!(!printed.contains("parked again:"), "{printed}");
    let kept = messages_until(&sqs, &url, "kept", |m| m.len() == 1).await;
    assert_eq!(kept[0].id, left[0].id);

    // Given a function that handles it: success, and the queue is empty.
    function.answer(Answer::Handled);
    let out = dlq(&moto, &function.endpoint, &redrive).await;
    let (status, printed) = code(&out);
    assert_eq!(status, 0, "{printed}");
    assert!(
        printed.contains("1 dead letter(s)") && printed.contains("0 kept"),
        "{printed}"
    );
    assert_eq!(function.invocations(), 3);
    messages_until(&sqs, &url, "empty", <[_]>::is_empty).await;
}

/// `redrive --stream S --wait SECS`: the records go back onto the stream, and the queue is watched for them being
/// parked again by the stream's consumers (here the test, as the harness would: a new dead letter for the same
/// event once the record is on the stream). Parked again within the wait: a failure naming it; not: success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_onto_the_stream_watched_with_wait_reports_a_record_parked_again() {
    let (moto, kinesis) = tokio::join!(Moto::start(), KinesisLocal::start());
    let sqs = moto.sqs();
    let q = "it-StreamDeadLetterQueue";
    let url = queue(&sqs, q).await;
    let arn = kinesis.create_stream("it-redrive-stream", 1).await;
    let on_stream = |n: usize| {
        let (client, arn) = (kinesis.client(), arn.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let records: usize = read_stream(&client, "it-redrive-stream", &arn)
                    .await
                    .iter()
                    .map(|(_, r)| r.len())
                    .sum();
                if records >= n {
                    return;
                }
                assert!(Instant::now() < deadline, "{n} record(s) on the stream");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let redrive = [
        "redrive",
        q,
        "--stream",
        "it-redrive-stream",
        "--wait",
        "20",
    ];

    // Given a consumer that still cannot handle the event: once the record is on the stream, it parks it again.
    send(&sqs, &url, &letter("evt_stream")).await;
    let run = {
        let (moto_ref, endpoint) = (&moto, kinesis.endpoint.clone());
        async move { dlq_on(moto_ref, &endpoint, "http://127.0.0.1:9", &redrive).await }
    };
    let park_again = async {
        on_stream(1).await;
        send(&sqs, &url, &letter("evt_stream")).await;
    };
    let (out, ()) = tokio::join!(run, park_again);
    let (status, printed) = code(&out);
    // Then the redrive fails, naming the event and why it was parked again, well before the wait is over.
    assert_eq!(status, 1, "{printed}");
    assert!(
        printed.contains("parked again: event /it evt_stream: parked again by signups")
            && printed.contains("1 record(s) parked again right away"),
        "{printed}"
    );
    let left = messages_until(&sqs, &url, "the new letter", |m| m.len() == 1).await;

    // Given a consumer that handles it now: nothing is parked within the wait, and the redrive succeeds.
    let short = [
        "redrive",
        q,
        &left[0].id,
        "--stream",
        "it-redrive-stream",
        "--wait",
        "2",
    ];
    let out = dlq_on(&moto, &kinesis.endpoint, "http://127.0.0.1:9", &short).await;
    let (status, printed) = code(&out);
    assert_eq!(status, 0, "{printed}");
    assert!(!printed.contains("parked again:"), "{printed}");
    on_stream(2).await;
    messages_until(&sqs, &url, "empty", <[_]>::is_empty).await;
}

/// Runs `tubes-dlq ARGS` against `moto` on a terminal (a pseudo-terminal, Python's `pty`), typing `typed`.
async fn dlq_on_a_terminal(moto: &Moto, args: &[&str], typed: &str) -> Output {
    use std::io::Write as _;
    let bin = tubes_dlq();
    let endpoint = moto.endpoint.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let typed = typed.to_owned();
    tokio::task::spawn_blocking(move || {
        // pty.spawn copies standard input to the terminal and the terminal to standard output; its status is the
        // child's wait status.
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
            ])
            .arg(bin)
            .args(&args)
            .env("AWS_ENDPOINT_URL_SQS", &endpoint)
            .env("AWS_ENDPOINT_URL_KINESIS", &endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(typed.as_bytes())
            .unwrap();
        child.wait_with_output().expect("tubes-dlq on a terminal")
    })
    .await
    .unwrap()
}

/// On a terminal `delete` asks (y), `purge` asks for the queue's name; any other answer deletes nothing (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_deleting_asks_and_only_the_asked_answer_deletes() {
    let moto = Moto::start().await;
    let sqs = moto.sqs();
    let q = "it-TerminalDeadLetterQueue";
    let url = queue(&sqs, q).await;
    let first = send(&sqs, &url, &letter("evt_t1")).await;
    send(&sqs, &url, &letter("evt_t2")).await;

    let out = dlq_on_a_terminal(&moto, &["delete", q, &first], "n\n").await;
    let (status, printed) = code(&out);
    assert_eq!(status, 1, "{printed}");
    assert!(
        printed.contains(&format!("delete message {first}")) && printed.contains("not confirmed"),
        "{printed}"
    );
    messages_until(&sqs, &url, "both kept", |m| m.len() == 2).await;

    let out = dlq_on_a_terminal(&moto, &["delete", q, &first], "y\n").await;
    let (status, printed) = code(&out);
    assert_eq!(status, 0, "{printed}");
    messages_until(&sqs, &url, "one left", |m| m.len() == 1 && m[0].id != first).await;

    let out = dlq_on_a_terminal(&moto, &["purge", q], "y\n").await;
    let (status, printed) = code(&out);
    assert_eq!(status, 1, "y is not the queue's name: {printed}");
    messages_until(&sqs, &url, "still one", |m| m.len() == 1).await;

    let out = dlq_on_a_terminal(&moto, &["purge", q], &format!("{q}\n")).await;
    let (status, printed) = code(&out);
    assert_eq!(status, 0, "{printed}");
    messages_until(&sqs, &url, "none left", <[_]>::is_empty).await;
}
