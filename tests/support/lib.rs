//! Test support: real emulators started on free loopback ports, polled until ready, stopped on drop.

pub mod fault_proxy;
pub mod history;
pub mod soak;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::{ShardIteratorType, StreamMode, StreamModeDetails};
use tubes_platform::lambda_event::{BatchSource, StreamRecord};

/// The region every test client uses.
pub const REGION: &str = "us-east-1";

/// How long an emulator may take to come up before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `command` with the environment a shell has: without the variables cargo sets for the test crate
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `OUT_DIR`, …). A build that saw them would make build scripts that watch
/// them (ring's) run again, and again at the user's next build from a shell.
pub fn as_from_a_shell(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// The bytes of a valid `user.signed_up` event `id` for `user` (as a producer would put it on the stream).
pub fn signup_bytes(id: &str, user: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/it", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}}))
    .expect("a JSON value serialises")
}

/// A free TCP port (bound, then released for the child to take), from 20000–31999: below Linux's ephemeral range
/// (32768–60999), so no outgoing connection takes it between now and the moment the child binds it, which for a
/// local stack is after a build, minutes later (an ephemeral port once was, and kinesis-local could not start).
/// Candidates differ per process and per call, so concurrent tests do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
        // kinesis-local binds every interface, the others loopback: the port must be free on both.
        if TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in 20000–31999")
}

/// A moto server (DynamoDB, SQS, Secrets Manager) of our own, from the tools' virtualenv; killed when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto's server (`scripts/moto_server.py`: DynamoDB requests one at a time, atomic as in DynamoDB)
    /// and waits until it answers.
    pub async fn start() -> Self {
        let root = repo_root();
        let python = root.join(".venv/bin/python");
        assert!(
            root.join(".venv/bin/moto_server").exists(),
            "moto is not installed in {}: run `make test` (or scripts/bootstrap.sh) first",
            root.join(".venv").display()
        );
        let port = free_port();
        let child = Command::new(python)
            .arg(root.join("scripts/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let client = moto.dynamodb();
        let deadline = Instant::now() + READY_TIMEOUT;
        while client.list_tables().send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not answer on {} in time",
                moto.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// A DynamoDB client for this server.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Moto {
    /// Freezes the server (`SIGSTOP`): connections are accepted by the kernel but nothing answers, as in a
    /// network partition or an overloaded endpoint. Its state is kept for [`Moto::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} moto");
    }

    /// Creates an on-demand table keyed by the string attribute `key` (as the template's tables are).
    pub async fn create_table(&self, name: &str, key: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.dynamodb()
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("an attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("a key schema"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("create table");
    }

    /// An SQS client for this server.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }
}

impl Moto {
    /// A Secrets Manager client for this server.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new(REGION))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every item of a table (moto), by `pk`, with its string, number and boolean attributes as strings.
pub async fn scan_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut out = std::collections::HashMap::new();
    let mut start = None;
    loop {
        let Ok(page) = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
        else {
            return out;
        };
        for item in page.items() {
            let fields: std::collections::HashMap<String, String> = item
                .iter()
                .filter_map(|(k, v)| match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => Some((k.clone(), s.clone())),
                    AttributeValue::Bool(b) => Some((k.clone(), b.to_string())),
                    _ => None,
                })
                .collect();
            if let Some(pk) = fields.get("pk").cloned() {
                out.insert(pk, fields);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// An S3 client for a moto at `endpoint`, addressing buckets by path (no host name per bucket on loopback).
pub fn s3_at(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "local", "local", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Every line of every archive object in `bucket` (`tubes_platform::archive`), as `(object key, record)`.
pub async fn archived(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Vec<(String, tubes_platform::archive::ArchivedRecord)> {
    tubes_platform::archive::read_all(s3, bucket, |_| true)
        .await
        .expect("the archive reads back")
}

impl Moto {
    /// An S3 client for this server.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_at(&self.endpoint)
    }
}

/// A kinesis-local (kinesis-mock) process of our own, on free ports; killed when dropped.
pub struct KinesisLocal {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
}

impl KinesisLocal {
    /// Starts the emulator installed by `scripts/bootstrap.sh` and waits until it answers.
    pub async fn start() -> Self {
        let dir = repo_root().join("tools/node_modules/kinesis-local");
        let main = dir.join("main.js");
        assert!(
            main.exists(),
            "kinesis-local is not installed at {}: run `make test` (or scripts/bootstrap.sh) first",
            main.display()
        );
        let (plain, tls) = (free_port(), free_port());
        // kinesis-local binds every interface unless the preload keeps it on loopback.
        let child = Command::new("node")
            .arg("-r")
            .arg(repo_root().join("scripts/loopback.cjs"))
            .arg(&main)
            .env("KINESIS_MOCK_CERT_PATH", dir.join("server.json"))
            .env("KINESIS_MOCK_PLAIN_PORT", plain.to_string())
            .env("KINESIS_MOCK_TLS_PORT", tls.to_string())
            .env("CREATE_STREAM_DURATION", "0ms")
            .env("DELETE_STREAM_DURATION", "0ms")
            .env("UPDATE_SHARD_COUNT_DURATION", "0ms")
            .env("LOG_LEVEL", "ERROR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be on PATH to run kinesis-local");
        let emulator = Self {
            child,
            endpoint: format!("http://127.0.0.1:{plain}"),
        };
        let client = emulator.client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if client.list_streams().send().await.is_ok() {
                return emulator;
            }
            assert!(
                Instant::now() < deadline,
                "kinesis-local did not answer on {} in time",
                emulator.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A Kinesis client for this emulator.
    pub fn client(&self) -> aws_sdk_kinesis::Client {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    /// Creates a provisioned stream of `shards` shards and waits until it is active; returns its ARN.
    pub async fn create_stream(&self, name: &str, shards: i32) -> String {
        let client = self.client();
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::Provisioned)
                    .build()
                    .expect("stream mode is set"),
            )
            .send()
            .await
            .expect("create stream");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let summary = client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .expect("describe stream");
            let summary = summary.stream_description_summary().expect("a summary");
            if summary.stream_status().as_str() == "ACTIVE" {
                return summary.stream_arn().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "stream {name} did not become active"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads every record of every shard from the trim horizon, as `(source, records)` per shard.
    pub async fn read_all(
        &self,
        stream: &str,
        stream_arn: &str,
    ) -> Vec<(BatchSource, Vec<StreamRecord>)> {
        read_stream(&self.client(), stream, stream_arn).await
    }
}

/// The open shards of `stream` (a closed one has an ending sequence number), once the stream is `ACTIVE` with
/// exactly `open` of them: after a split, a merge or `UpdateShardCount`. Fails after 30 s.
pub async fn until_resharded(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    open: usize,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .expect("DescribeStreamSummary");
        let active = summary
            .stream_description_summary()
            .is_some_and(|d| d.stream_status().as_str() == "ACTIVE");
        let shards = client
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .expect("ListShards");
        let ids: Vec<String> = shards
            .shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_none())
            })
            .map(|s| s.shard_id().to_owned())
            .collect();
        if active && ids.len() == open {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{stream} did not reshard to {open} open shards: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every record of every shard of `stream` from the trim horizon, as `(source, records)` per shard (any
/// Kinesis endpoint: a [`KinesisLocal`], a [`LocalStack`]'s).
pub async fn read_stream(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    stream_arn: &str,
) -> Vec<(BatchSource, Vec<StreamRecord>)> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards");
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("shard iterator")
            .shard_iterator
            .expect("an iterator");
        let mut records = Vec::new();
        loop {
            let page = client
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .expect("get records");
            let got = page.records();
            records.extend(got.iter().map(StreamRecord::from));
            match page.next_shard_iterator() {
                Some(next) if !got.is_empty() => iterator = next.to_owned(),
                _ => break,
            }
        }
        out.push((
            BatchSource {
                event_source_arn: stream_arn.to_owned(),
                shard_id: shard.shard_id().to_owned(),
                aws_region: REGION.to_owned(),
                invoke_identity_arn: "arn:aws:iam::000000000000:role/tubes-consumer".to_owned(),
            },
            records,
        ));
    }
    out
}

impl Drop for KinesisLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The loopback ports of a [`LocalStack`].
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// `POST /events` and the Lambda Invoke API.
    pub http: u16,
    /// moto (DynamoDB, SQS, Secrets Manager).
    pub moto: u16,
    /// The Kinesis emulator (kinesis-local also takes the port below it).
    pub kinesis: u16,
    /// A second moto for the payments consumer's DynamoDB tables (`TUBES_MOTO_DYNAMODB_PORT`), if any.
    pub moto_dynamodb: Option<u16>,
}

impl Ports {
    /// Free ports.
    pub fn free() -> Self {
        Self {
            http: free_port(),
            moto: free_port(),
            kinesis: free_kinesis_port(),
            moto_dynamodb: None,
        }
    }
}

/// How long [`LocalStack::post_event`] keeps trying.
pub const POST_DEADLINE: Duration = Duration::from_secs(240);

/// The whole local stack (`scripts/dev.sh`: emulators, `cargo lambda watch`, the event source mapping emulator)
/// for one template, on free loopback ports and its own state directory; stopped (every process) when dropped.
pub struct LocalStack {
    child: Child,
    template: String,
    ports: Ports,
    /// The state directory (`esm.jsonl`, `logs/`, …).
    pub state: PathBuf,
    /// `http://127.0.0.1:{port}`: `POST /events` and the Lambda Invoke API.
    pub http: String,
    /// The SQS (moto) endpoint.
    pub sqs_endpoint: String,
    /// The Kinesis emulator's endpoint (kinesis-local, or kinesalite under `TUBES_KINESIS=kinesalite`).
    pub kinesis_endpoint: String,
    /// The second moto's endpoint ([`Ports::moto_dynamodb`]), if any.
    pub moto_dynamodb_endpoint: Option<String>,
}

impl LocalStack {
    /// Starts the stack for `template` (a path relative to the repository root), keeping its state in a fresh
    /// directory under `parent`, and waits until it is ready.
    pub fn start(template: &str, parent: &std::path::Path) -> Self {
        Self::start_with_env(template, parent, &[])
    }

    /// [`LocalStack::start`] with extra environment variables for `scripts/dev.sh`, which every function inherits
    /// (`cargo lambda watch` passes its environment on), e.g. `TUBES_SOURCES` for ingest.
    pub fn start_with_env(template: &str, parent: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::start_on(template, parent, env, Ports::free())
    }

    /// [`LocalStack::start_with_env`] on ports chosen beforehand (e.g. to put a [`fault_proxy::FaultProxy`] in
    /// front of its Kinesis emulator before it starts).
    pub fn start_on(
        template: &str,
        parent: &std::path::Path,
        env: &[(&str, &str)],
        ports: Ports,
    ) -> Self {
        let state = parent.join(format!("stack-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&state).expect("state dir");
        Self::start_in(template, state, env, ports)
    }

    /// Stops this stack (as dropping it does) and starts it again on the same state directory and ports: what
    /// a developer's second `make dev` finds.
    pub fn restart(mut self, env: &[(&str, &str)]) -> Self {
        self.stop();
        let (template, state, ports) = (self.template.clone(), self.state.clone(), self.ports);
        Self::start_in(&template, state, env, ports)
    }

    fn start_in(template: &str, state: PathBuf, env: &[(&str, &str)], ports: Ports) -> Self {
        let Ports {
            http,
            moto,
            kinesis,
            moto_dynamodb,
        } = ports;
        // Appended: a restarted stack's lines follow the first one's.
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(state.join("dev.log"))
            .expect("dev log");
        let ready_before = std::fs::read_to_string(state.join("dev.log"))
            .unwrap_or_default()
            .matches("dev: ready")
            .count();
        // `setsid`: the stack is its own process group, so dropping it can stop every process it started.
        let mut dev = Command::new("setsid");
        if let Some(port) = moto_dynamodb {
            dev.env("TUBES_MOTO_DYNAMODB_PORT", port.to_string());
        }
        let child = dev
            .arg(repo_root().join("scripts/dev.sh"))
            .current_dir(repo_root())
            .env("TUBES_TEMPLATE", template)
            .env("TUBES_STATE_DIR", &state)
            .env("TUBES_HTTP_PORT", http.to_string())
            .env("TUBES_MOTO_PORT", moto.to_string())
            .env("TUBES_KINESIS_PORT", kinesis.to_string())
            .env("TUBES_SUMMARY_SECS", "3600")
            .env("TUBES_NO_RELOAD", "1")
            .env("TUBES_PARENT_PID", std::process::id().to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("scripts/dev.sh starts");
        let mut stack = LocalStack {
            child,
            template: template.to_owned(),
            ports,
            state,
            http: format!("http://127.0.0.1:{http}"),
            sqs_endpoint: format!("http://127.0.0.1:{moto}"),
            kinesis_endpoint: format!("http://127.0.0.1:{kinesis}"),
            moto_dynamodb_endpoint: moto_dynamodb.map(|p| format!("http://127.0.0.1:{p}")),
        };
        // A cold stack builds the workspace first: allow for it.
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let log = std::fs::read_to_string(stack.state.join("dev.log")).unwrap_or_default();
            if log.matches("dev: ready").count() > ready_before {
                return stack;
            }
            if let Ok(Some(status)) = stack.child.try_wait() {
                panic!("the local stack exited ({status}) before it was ready:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "the local stack was not ready in time:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends `sig` (`-KILL`, `-STOP`, …) to every process of this stack whose executable is `name` (found by the
    /// stack's state directory in its command line or environment; `moto` by its port); how many.
    pub fn signal(&self, name: &str, sig: &str) -> usize {
        self.processes()
            .into_iter()
            .filter(|(_, n, _)| n == name)
            .filter(|(pid, ..)| {
                Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .count()
    }

    /// The PIDs of this stack's processes whose executable is `name` (e.g. a function's instances), sorted.
    pub fn pids(&self, name: &str) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .processes()
            .into_iter()
            .filter(|(_, n, _)| n == name)
            .map(|(pid, ..)| pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// CPU seconds (user and system) used so far by each kind of process of this stack that is running now
    /// (`moto`, `node` for the Kinesis emulator, `tubes-local`, each function), by name.
    pub fn cpu_seconds(&self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for (_, name, ticks) in self.processes() {
            // USER_HZ is 100 on Linux.
            *out.entry(name).or_default() += ticks as f64 / 100.0;
        }
        out
    }

    /// `(pid, name, CPU ticks)` of every process of this stack: the executable's file name, found by the stack's
    /// state directory in its command line or environment, and `moto` (either) by its port.
    fn processes(&self) -> Vec<(i32, String, u64)> {
        let marker = self.state.to_string_lossy().into_owned();
        let motos: Vec<String> = [
            Some(&self.sqs_endpoint),
            self.moto_dynamodb_endpoint.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|e| format!("-p {}", e.rsplit(':').next().unwrap_or_default()))
        .collect();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let read = |f: &str| std::fs::read(entry.path().join(f)).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
            let environ = String::from_utf8_lossy(&read("environ")).into_owned();
            let name = if cmdline.contains("moto_server.py")
                && motos
                    .iter()
                    .any(|p| cmdline.trim_end().ends_with(p.as_str()))
            {
                "moto".to_owned()
            } else if cmdline.contains(&marker) || environ.contains(&marker) {
                let exe = cmdline.split(' ').next().unwrap_or_default();
                exe.rsplit('/').next().unwrap_or_default().to_owned()
            } else {
                continue;
            };
            // /proc/PID/stat: fields 14 and 15 (utime, stime) come after the parenthesised command name.
            let stat = String::from_utf8_lossy(&read("stat")).into_owned();
            let ticks = stat
                .rsplit_once(')')
                .map(|(_, rest)| {
                    rest.split_whitespace()
                        .skip(11)
                        .take(2)
                        .filter_map(|t| t.parse::<u64>().ok())
                        .sum()
                })
                .unwrap_or(0);
            out.push((pid, name, ticks));
        }
        out
    }

    /// The lines of the functions' logs (`logs/*.log`, one file per function) that contain every one of
    /// `needles`.
    pub fn function_log(&self, needles: &[&str]) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.state.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| needles.iter().all(|n| l.contains(n)))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The demo source's API key (`TUBES_API_KEY` in the state directory's `demo.env`, which `scripts/dev.sh`
    /// mints).
    pub fn demo_api_key(&self) -> String {
        std::fs::read_to_string(self.state.join("demo.env"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("TUBES_API_KEY="))
            .expect("the local stack's demo.env names an API key")
            .to_owned()
    }

    /// The demo reader's key (the query API), from the local stack's `demo.env`.
    pub fn demo_read_key(&self) -> String {
        std::fs::read_to_string(self.state.join("demo.env"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("TUBES_READ_KEY="))
            .expect("the local stack's demo.env names a read key")
            .to_owned()
    }

    /// POSTs one event to ingest (`/events`, with the demo source's API key) until it answers 202, and returns
    /// its `accepted` entry (shard, sequence number). The first request may meet ingest's cold start: anything
    /// but 202 is tried again, for up to [`POST_DEADLINE`].
    pub async fn post_event(
        &self,
        http: &reqwest::Client,
        event: &serde_json::Value,
    ) -> serde_json::Value {
        let deadline = Instant::now() + POST_DEADLINE;
        let key = self.demo_api_key();
        loop {
            if let Ok(resp) = http
                .post(format!("{}/events", self.http))
                .header("content-type", "application/cloudevents+json")
                .header("authorization", format!("Bearer {key}"))
                .body(event.to_string())
                .send()
                .await
            {
                if resp.status() == 202 {
                    let body = resp.bytes().await.expect("a 202 body");
                    let body: serde_json::Value =
                        serde_json::from_slice(&body).expect("ingest answers JSON");
                    return body["accepted"][0].clone();
                }
            }
            assert!(Instant::now() < deadline, "ingest never accepted {event}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The JSON lines of a file in the state directory (`esm.jsonl`, `handled.jsonl`); empty if absent.
    pub fn json_lines(&self, file: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A Lambda client for the stack's functions (`cargo lambda watch` answers the Invoke API).
    pub fn lambda(&self) -> tubes_ops::aws_sdk_lambda::Client {
        use tubes_ops::aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
        let config = tubes_ops::aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .endpoint_url(&self.http)
            .build();
        tubes_ops::aws_sdk_lambda::Client::from_conf(config)
    }

    /// A Kinesis client for the stack's Kinesis emulator.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .endpoint_url(&self.kinesis_endpoint)
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    /// An SQS client for the stack's moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "tests",
            ))
            .endpoint_url(&self.sqs_endpoint)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// An S3 client for the stack's moto (the event store's bucket).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_at(&self.sqs_endpoint)
    }

    /// A DynamoDB client for the stack's moto.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_at(&self.sqs_endpoint)
    }

    /// A DynamoDB client for the moto that holds the payments consumer's tables: the second moto if the stack has
    /// one ([`Ports::moto_dynamodb`]), else the only one.
    pub fn payments_dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_at(
            self.moto_dynamodb_endpoint
                .as_ref()
                .unwrap_or(&self.sqs_endpoint),
        )
    }

    fn dynamodb_at(&self, endpoint: &str) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "tests",
            ))
            .endpoint_url(endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LocalStack {
    /// Stops every process of the stack (once; again is a no-op).
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // TERM the process group: dev.sh's trap stops everything it started, then exits.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A free port whose predecessor is free too (kinesis-local takes `port - 1` for TLS).
fn free_kinesis_port() -> u16 {
    loop {
        let p = free_port();
        if TcpListener::bind(("0.0.0.0", p - 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p - 1)).is_ok()
        {
            return p;
        }
    }
}

/// An open source, `demo`, that may send any producer type as any CloudEvents source: for the tests that are about
/// everything but authentication (the default source of `POST /events` in [`open_ingest_config`]).
pub const OPEN_SOURCES: &str =
    r#"{"demo": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}}"#;

/// The `i`-th payment of a workload of `ty` (`payment.received`) as a client sends it, about 200 bytes: values
/// vary as real ones do (a payment id, an amount, a payer per account of 2,000), so that deflating a pack is not
/// flattered by repetition; only names, the source and the type repeat.
pub fn payment_sent(ty: &str, i: usize) -> serde_json::Value {
    let mix = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let account = (i % 2_000) as u64;
    serde_json::json!({"specversion": "1.0", "source": "/shop", "type": ty,
        "data": {"payment_id": format!("pay_{mix:016x}"), "account_id": format!("acc_{account:05}"),
                 "amount": 100 + mix % 99_900, "currency": "EUR",
                 "payer_email": format!("payer.{:08x}@example.com", account * 2_654_435_761 % (1 << 32))}})
}

/// A `POST /events` of `body` (as `content_type`) through the HTTP API (v2): the real event fixture, as API
/// Gateway hands it to ingest.
pub fn http_v2_post(content_type: &str, body: &str) -> lambda_http::Request {
    const HTTP_V2: &str = include_str!("../fixtures/apigw-http-v2-request.json");
    let mut v: serde_json::Value = serde_json::from_str(HTTP_V2).expect("the fixture is JSON");
    v["requestContext"]["http"]["method"] = serde_json::json!("POST");
    v["requestContext"]["http"]["path"] = serde_json::json!("/events");
    v["rawPath"] = serde_json::json!("/events");
    v["headers"]["content-type"] = serde_json::json!(content_type);
    v["body"] = serde_json::json!(body);
    lambda_http::request::from_str(&v.to_string()).expect("the fixture is an HTTP API event")
}

/// Ingest's configuration for `stream` with [`OPEN_SOURCES`]'s `demo` as the default source.
pub fn open_ingest_config(stream: &str) -> tubes_ingest::Config {
    tubes_ingest::Config {
        default_source: Some("demo".into()),
        ..tubes_ingest::Config::new(stream)
    }
}

/// [`OPEN_SOURCES`], parsed.
pub fn open_sources() -> tubes_ingest::Sources<tubes_ingest::FixedSources> {
    tubes_ingest::Sources::fixed(OPEN_SOURCES, true).expect("the open test sources parse")
}
