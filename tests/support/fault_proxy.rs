//! A fault-injecting proxy in front of the real Kinesis emulator, which never throttles and never fails an entry.
//!
//! Every request is forwarded to the emulator unchanged except `PutRecords` under a [`Fault`]: the proxy then
//! answers `ProvisionedThroughputExceededException` or `InternalFailure` for the whole call, or forwards only the
//! entries that are to succeed and reports the others failed, in the shape Kinesis uses (`FailedRecordCount`,
//! per-entry `ErrorCode`/`ErrorMessage`). What the emulator stores is therefore exactly what a real stream would
//! have stored, and a test can read it back.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the proxy does to `PutRecords` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Refuse every call as throttled (HTTP 400 `ProvisionedThroughputExceededException`).
    ThrottleCalls,
    /// Refuse every call as a service failure (HTTP 500 `InternalFailure`).
    FailCalls,
    /// Fail the entries at these positions of the next call only, with this error code.
    FailOnce(Vec<usize>, &'static str),
    /// Fail, on every call, the entries whose partition key is in the set (a hot shard), with this code.
    FailKeys(BTreeSet<String>, &'static str),
    /// Forward every call, then answer it as a service failure: the records are written, the answer is lost
    /// (as when a connection drops after the write).
    LoseAnswers,
    /// Fail a third of the entries of every call with this code (which third shifts from call to call, so a
    /// retry of the failed ones gets through in part).
    FailThird(&'static str),
}

#[derive(Debug)]
struct State {
    fault: Fault,
    /// Entries per `PutRecords` call that reached the proxy, in order.
    calls: Vec<usize>,
}

/// The running proxy; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to the emulator at `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State {
            fault: Fault::None,
            calls: Vec::new(),
        }));
        let proxy = Self {
            endpoint,
            state: state.clone(),
        };
        let upstream = upstream.to_owned();
        let http = reqwest::Client::new();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, upstream, http) = (state.clone(), upstream.clone(), http.clone());
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    while let Some((headers, body)) = read_request(&mut read).await {
                        let (status, content_type, body) =
                            handle(&state, &http, &upstream, &headers, body).await;
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if write.write_all(head.as_bytes()).await.is_err()
                            || write.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        proxy
    }

    /// Sets the fault for the calls from now on.
    pub fn set(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Entries per `PutRecords` call so far.
    pub fn calls(&self) -> Vec<usize> {
        self.lock().calls.clone()
    }

    /// A Kinesis client that goes through the proxy, configured as ingest's (no SDK retries: ingest retries).
    pub fn client(&self) -> aws_sdk_kinesis::Client {
        use aws_sdk_kinesis::config::{retry::RetryConfig, BehaviorVersion, Credentials, Region};
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .region(Region::new(crate::REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads one HTTP/1.1 request: its headers (lower-case names) and body. `None` at end of stream.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut line = String::new();
    if read.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        read.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    read.read_exact(&mut body).await.ok()?;
    Some((headers, body))
}

const JSON: &str = "application/x-amz-json-1.1";

fn error(status: u16, kind: &str) -> (u16, String, Vec<u8>) {
    let body = json!({"__type": kind, "message": "injected by the test's fault proxy"});
    (status, JSON.into(), body.to_string().into_bytes())
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut request = http.post(upstream).body(body);
    for (k, v) in headers {
        // The body may have been rewritten: let the client set the length; the emulator ignores signatures.
        if k != "content-length" && k != "host" {
            request = request.header(k, v);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(JSON)
                .to_owned();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            (status, content_type, body)
        }
        Err(_) => error(500, "InternalFailure"),
    }
}

async fn handle(
    state: &Mutex<State>,
    http: &reqwest::Client,
    upstream: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let target = headers
        .iter()
        .find(|(k, _)| k == "x-amz-target")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if target != "Kinesis_20131202.PutRecords" {
        return forward(http, upstream, headers, body).await;
    }
    let Ok(mut request) = serde_json::from_slice::<Value>(&body) else {
        return forward(http, upstream, headers, body).await;
    };
    let entries = request["Records"].as_array().cloned().unwrap_or_default();
    let (fault, call) = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        s.calls.push(entries.len());
        let call = s.calls.len();
        let fault = s.fault.clone();
        if matches!(fault, Fault::FailOnce(..)) {
            s.fault = Fault::None;
        }
        (fault, call)
    };
    let (failing, code): (BTreeSet<usize>, &str) = match &fault {
        Fault::None => return forward(http, upstream, headers, body).await,
        Fault::ThrottleCalls => return error(400, "ProvisionedThroughputExceededException"),
        Fault::FailCalls => return error(500, "InternalFailure"),
        Fault::LoseAnswers => {
            forward(http, upstream, headers, body).await;
            return error(500, "InternalFailure");
        }
        Fault::FailOnce(at, code) => (at.iter().copied().collect(), code),
        Fault::FailThird(code) => (
            (0..entries.len()).filter(|i| (i + call) % 3 == 0).collect(),
            code,
        ),
        Fault::FailKeys(keys, code) => (
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e["PartitionKey"].as_str().is_some_and(|k| keys.contains(k)))
                .map(|(i, _)| i)
                .collect(),
            code,
        ),
    };
    let passing: Vec<Value> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !failing.contains(i))
        .map(|(_, e)| e.clone())
        .collect();
    let mut upstream_results = Vec::new().into_iter();
    if !passing.is_empty() {
        request["Records"] = Value::from(passing);
        let (status, content_type, body) =
            forward(http, upstream, headers, request.to_string().into_bytes()).await;
        if status != 200 {
            return (status, content_type, body);
        }
        let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
        upstream_results = answer["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter();
    }
    let mut records = Vec::with_capacity(entries.len());
    let mut failed = 0;
    for i in 0..entries.len() {
        if failing.contains(&i) {
            failed += 1;
            records.push(
                json!({"ErrorCode": code, "ErrorMessage": "injected by the test's fault proxy"}),
            );
        } else {
            records.push(
                upstream_results
                    .next()
                    .unwrap_or_else(|| json!({"ErrorCode": "InternalFailure"})),
            );
        }
    }
    let body = json!({"FailedRecordCount": failed, "Records": records});
    (200, JSON.into(), body.to_string().into_bytes())
}
