//! Where the local stack is: its loopback ports (the settings of `scripts/dev.sh`, from the same variables), its
//! state directory (the demo source's credentials, the functions' environment, the outbox) and the names of its
//! resources, and clients for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DevError;

/// The local stack's settings, as `scripts/dev.sh` reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// Ingest (`POST /events`) and the functions' invocation URLs.
    #[arg(long, env = "TUBES_HTTP_PORT", default_value_t = 9000, global = true)]
    pub http_port: u16,
    /// The Kinesis emulator.
    #[arg(
        long,
        env = "TUBES_KINESIS_PORT",
        default_value_t = 4568,
        global = true
    )]
    pub kinesis_port: u16,
    /// moto: DynamoDB, SQS, S3, Secrets Manager.
    #[arg(long, env = "TUBES_MOTO_PORT", default_value_t = 4566, global = true)]
    pub moto_port: u16,
    /// A second moto holding the DynamoDB tables of the functions in `--moto-dynamodb-functions` (dev.sh's
    /// setting of the same name; the soak's).
    #[arg(long, env = "TUBES_MOTO_DYNAMODB_PORT", global = true)]
    pub moto_dynamodb_port: Option<u16>,
    /// The functions whose tables are on `--moto-dynamodb-port` (space-separated binaries).
    #[arg(
        long,
        env = "TUBES_MOTO_DYNAMODB_FUNCTIONS",
        default_value = "tubes-consumer-payments",
        global = true
    )]
    pub moto_dynamodb_functions: String,
    /// The stack's state directory: demo.env, functions.env, outbox.jsonl.
    #[arg(
        long,
        env = "TUBES_STATE_DIR",
        default_value = ".local/dev",
        global = true
    )]
    pub state_dir: PathBuf,
}

/// The local stack, reachable.
#[derive(Debug)]
pub(super) struct Stack {
    args: StackArgs,
    /// Plain HTTP on loopback: ingest and the invocation URLs.
    pub(super) http: reqwest::Client,
}

const REGION: &str = "us-east-1";
/// What `tubes-local provision` puts before every template resource's logical id.
const PREFIX: &str = "tubes";

impl Stack {
    pub(super) fn new(args: StackArgs) -> Self {
        let http = reqwest::Client::builder()
            // A function's first invocation may wait for its cold start (a debug build): be patient.
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_default();
        Self { args, http }
    }

    fn endpoint(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// `POST /events`.
    pub(super) fn ingest_url(&self) -> String {
        format!("{}/events", Self::endpoint(self.args.http_port))
    }

    /// The Lambda Invoke URL of `function` on `cargo lambda watch`.
    pub(super) fn invoke_url(&self, function: &str) -> String {
        format!(
            "{}/2015-03-31/functions/{function}/invocations",
            Self::endpoint(self.args.http_port)
        )
    }

    pub(super) fn state_file(&self, name: &str) -> PathBuf {
        self.args.state_dir.join(name)
    }

    /// The outbox the local mailer appends to (`TUBES_OUTBOX` of the functions).
    pub(super) fn outbox(&self) -> PathBuf {
        self.state_file("outbox.jsonl")
    }

    /// A variable of the `KEY=VALUE` file `name` in the state directory (values optionally double-quoted).
    fn state_var(&self, name: &str, key: &str) -> Option<String> {
        read_env_file(&self.state_file(name)).remove(key)
    }

    /// The demo source's API key, which `make dev` minted into `demo.env`.
    pub(super) fn demo_api_key(&self) -> Result<String, DevError> {
        let path = self.state_file("demo.env");
        self.state_var("demo.env", "TUBES_API_KEY").ok_or_else(|| {
            DevError::Stack(format!(
                "no TUBES_API_KEY in {}: is `make dev` running with this state directory (TUBES_STATE_DIR)?",
                path.display()
            ))
        })
    }

    /// The physical name of a resource the functions get in variable `var` (`functions.env`, written by
    /// `tubes-local provision`), else the name provisioning gives template resource `logical_id`.
    pub(super) fn resource(&self, var: &str, logical_id: &str) -> String {
        self.state_var("functions.env", var)
            .unwrap_or_else(|| format!("{PREFIX}-{logical_id}"))
    }

    /// The stream ingest writes to.
    pub(super) fn stream(&self) -> String {
        self.resource("STREAM_NAME", "EventStream")
    }

    /// The ARN of [`Stack::stream`], as the local event source mapping names it (its account id).
    pub(super) fn stream_arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{REGION}:000000000000:stream/{}",
            self.stream()
        )
    }

    pub(super) fn region(&self) -> &'static str {
        REGION
    }

    pub(super) fn kinesis(&self) -> aws_sdk_kinesis::Client {
        use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("local", "local", None, None, "tubes-dev"))
            .endpoint_url(Self::endpoint(self.args.kinesis_port))
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    /// The moto holding function `binary`'s tables: the second one when dev.sh put them there.
    pub(super) fn moto_port_of(&self, binary: &str) -> u16 {
        match self.args.moto_dynamodb_port {
            Some(port)
                if self
                    .args
                    .moto_dynamodb_functions
                    .split_whitespace()
                    .any(|f| f == binary) =>
            {
                port
            }
            _ => self.args.moto_port,
        }
    }

    /// A DynamoDB client for the tables of function `binary` ([`Stack::moto_port_of`]).
    pub(super) fn dynamodb_of(&self, binary: &str) -> aws_sdk_dynamodb::Client {
        self.dynamodb_at(self.moto_port_of(binary))
    }

    fn dynamodb_at(&self, port: u16) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("local", "local", None, None, "tubes-dev"))
            .endpoint_url(Self::endpoint(port))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// What to say when a service of the stack does not answer.
    pub(super) fn unreachable(
        &self,
        what: &str,
        port_var: &str,
        err: impl std::fmt::Display,
    ) -> DevError {
        DevError::Stack(format!(
            "{what} does not answer ({err}): is `make dev` running? (ports: {port_var})"
        ))
    }
}

/// The variables of a `KEY=VALUE` file (`demo.env`, `functions.env`); empty when it cannot be read.
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}
