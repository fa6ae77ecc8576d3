//! The Kinesis event source mapping emulator: reads every shard of every mapped stream and invokes the mapped
//! function through the Lambda Invoke API (`cargo lambda watch`), with the batching, filtering, checkpoint,
//! bisect, retry and on-failure semantics of [`crate::esm`].
//!
//! Per mapping: a discovery task lists the stream's shards every few seconds and starts a reader for each new
//! shard once its parents are read to the end (resharding). Per shard: a reader polls `GetRecords` (at once while
//! records are waiting, once a second when idle), drops the records the filter criteria reject, and hands the rest
//! to `ParallelizationFactor` lanes by partition key hash, so one key's records stay in order. Per lane: batches
//! of up to `BatchSize` records / 6 MB, gathered for up to `MaximumBatchingWindowInSeconds`, invoked one at a time.
//! Checkpoints (the highest sequence number below which everything is done) are kept per mapping and shard in
//! the state directory, so a restart resumes where it stopped.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tubes_shared::lambda_event::{kinesis_event, BatchSource, StreamRecord};

use crate::app::{App, Function, Mapping, StartingPosition};
use crate::esm::{decide, expire, Condition, Invocation, Rec, Work};
use crate::filter::{kinesis_record_value, passes};
use crate::stack::Resolved;
use crate::view::{BatchLine, View};

/// The invocation payload cap of Lambda's Kinesis event source mapping.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How the emulator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the Lambda Invoke API, e.g. `http://127.0.0.1:9000`.
    pub lambda_endpoint: String,
    /// Region and account used in ARNs.
    pub region: String,
    /// Account id used in ARNs.
    pub account: String,
    /// Wait between polls of an idle shard (AWS: about once a second).
    pub idle_poll: Duration,
    /// Wait between shard listings (resharding).
    pub discovery: Duration,
    /// Where checkpoints are kept (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
}

/// Checkpoints, per `mapping/shard`: the last sequence number done, or `closed` when the shard is finished.
#[derive(Debug, Default)]
pub struct Checkpoints {
    map: Mutex<BTreeMap<String, String>>,
    path: Option<PathBuf>,
}

impl Checkpoints {
    /// Loads the checkpoints kept in `dir`, if any.
    pub fn load(dir: Option<PathBuf>) -> Self {
        let path = dir.map(|d| d.join("checkpoints.json"));
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Checkpoints {
            map: Mutex::new(map),
            path,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.map.lock().ok()?.get(key).cloned()
    }

    fn set(&self, key: &str, value: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.to_owned(), value.to_owned());
        }
    }

    /// Writes them to the state directory (atomically: write then rename).
    pub fn save(&self) {
        let (Some(path), Ok(m)) = (&self.path, self.map.lock()) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec_pretty(&*m).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(tmp, path);
        }
    }
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct Emulator {
    app: App,
    resolved: Resolved,
    kinesis: aws_sdk_kinesis::Client,
    sqs: Option<aws_sdk_sqs::Client>,
    http: reqwest::Client,
    settings: Settings,
    view: Arc<View>,
    checkpoints: Checkpoints,
    warmed: Mutex<HashSet<String>>,
}

/// A record on its way to a lane, with its place in the shard's read order.
#[derive(Debug)]
struct Item {
    index: u64,
    rec: Rec,
}

/// Which records of a shard are done, in read order; the checkpoint is the last of the done prefix.
#[derive(Debug, Default)]
struct Tracker {
    next: u64,
    entries: BTreeMap<u64, (String, bool)>,
    checkpoint: Option<String>,
}

impl Tracker {
    fn add(&mut self, seq: &str, done: bool) -> u64 {
        let i = self.next;
        self.next += 1;
        self.entries.insert(i, (seq.to_owned(), done));
        self.advance();
        i
    }

    fn done(&mut self, index: u64) {
        if let Some(e) = self.entries.get_mut(&index) {
            e.1 = true;
        }
        self.advance();
    }

    fn advance(&mut self) {
        while let Some(entry) = self.entries.first_entry() {
            if !entry.get().1 {
                break;
            }
            self.checkpoint = Some(entry.remove().0);
        }
    }
}

impl Emulator {
    /// An emulator for `app`'s mappings over the resources in `resolved`.
    pub fn new(
        app: App,
        resolved: Resolved,
        kinesis: aws_sdk_kinesis::Client,
        sqs: Option<aws_sdk_sqs::Client>,
        settings: Settings,
        view: Arc<View>,
    ) -> Arc<Self> {
        let checkpoints = Checkpoints::load(settings.state_dir.clone());
        Arc::new(Emulator {
            app,
            resolved,
            kinesis,
            sqs,
            http: reqwest::Client::new(),
            settings,
            view,
            checkpoints,
            warmed: Mutex::default(),
        })
    }

    /// Starts every enabled mapping; returns at once (the tasks run until the runtime stops).
    pub fn start(self: &Arc<Self>) {
        for (i, m) in self.app.mappings.iter().enumerate() {
            if !m.enabled {
                self.view.note(
                    "mapping",
                    &format!("{} is disabled", m.logical_id),
                    json!({}),
                );
                continue;
            }
            let this = Arc::clone(self);
            tokio::spawn(async move { this.discover(i).await });
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                this.checkpoints.save();
            }
        });
    }

    /// Saves the checkpoints now (on shutdown).
    pub fn save(&self) {
        self.checkpoints.save();
    }

    fn mapping(&self, i: usize) -> &Mapping {
        &self.app.mappings[i]
    }

    fn function(&self, i: usize) -> &Function {
        self.app
            .function(&self.mapping(i).function)
            .unwrap_or_else(|| unreachable_function())
    }

    async fn discover(self: Arc<Self>, i: usize) {
        let m = self.mapping(i);
        let Some((stream, _)) = self.resolved.streams.get(&m.stream).cloned() else {
            return;
        };
        let finished: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut started: HashSet<String> = HashSet::new();
        let mut first_listing = true;
        loop {
            match self.list_shards(&stream).await {
                Ok(shards) => {
                    let ids: HashSet<&str> = shards.iter().map(|s| s.0.as_str()).collect();
                    for (shard, parents) in &shards {
                        if started.contains(shard) {
                            continue;
                        }
                        let key = format!("{}/{shard}", m.logical_id);
                        if self.checkpoints.get(&key).as_deref() == Some("closed") {
                            started.insert(shard.clone());
                            if let Ok(mut f) = finished.lock() {
                                f.insert(shard.clone());
                            }
                            continue;
                        }
                        let ready = parents.iter().all(|p| {
                            !ids.contains(p.as_str())
                                || finished.lock().map(|f| f.contains(p)).unwrap_or(false)
                        });
                        if !ready {
                            continue;
                        }
                        started.insert(shard.clone());
                        // Shards found later (children of a reshard) are read from their start.
                        let from_start = !first_listing || !parents.is_empty();
                        let this = Arc::clone(&self);
                        let (shard, finished) = (shard.clone(), Arc::clone(&finished));
                        tokio::spawn(async move {
                            this.read_shard(i, shard.clone(), from_start).await;
                            if let Ok(mut f) = finished.lock() {
                                f.insert(shard);
                            }
                        });
                    }
                    first_listing = false;
                }
                Err(e) => self
                    .view
                    .note("error", &format!("ListShards {stream}: {e}"), json!({})),
            }
            tokio::time::sleep(self.settings.discovery).await;
        }
    }

    async fn list_shards(&self, stream: &str) -> Result<Vec<(String, Vec<String>)>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => self.kinesis.list_shards().next_token(t),
                None => self.kinesis.list_shards().stream_name(stream),
            };
            let resp = req
                .send()
                .await
                .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
            for s in resp.shards() {
                let parents = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(String::from);
                out.push((s.shard_id().to_owned(), parents.collect()));
            }
            token = resp.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Gets an iterator until it succeeds (the emulator may be restarting), noting each failure.
    async fn iterator_retrying(
        &self,
        stream: &str,
        shard: &str,
        i: usize,
        from_start: bool,
        after: Option<&str>,
    ) -> String {
        loop {
            match self.iterator(stream, shard, i, from_start, after).await {
                Ok(it) => return it,
                Err(e) => {
                    self.view.note(
                        "error",
                        &format!("GetShardIterator {shard}: {e}"),
                        json!({}),
                    );
                    tokio::time::sleep(self.settings.idle_poll).await;
                }
            }
        }
    }

    /// An iterator just after `after` if given, else at the checkpoint, else at the starting position.
    async fn iterator(
        &self,
        stream: &str,
        shard: &str,
        i: usize,
        from_start: bool,
        after: Option<&str>,
    ) -> Result<String, String> {
        let m = self.mapping(i);
        let key = format!("{}/{shard}", m.logical_id);
        let req = self
            .kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard);
        let resume = after
            .map(String::from)
            .or_else(|| self.checkpoints.get(&key));
        let req = match (resume, from_start, m.starting_position) {
            (Some(seq), _, _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, true, _) | (None, false, StartingPosition::TrimHorizon) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, false, StartingPosition::Latest) => {
                req.shard_iterator_type(ShardIteratorType::Latest)
            }
            (None, false, StartingPosition::AtTimestamp(t)) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_secs_f64(t)),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(e).to_string())?;
        resp.shard_iterator()
            .map(String::from)
            .ok_or_else(|| "no shard iterator".into())
    }

    async fn read_shard(self: Arc<Self>, i: usize, shard: String, from_start: bool) {
        let m = self.mapping(i).clone();
        let function = self.function(i).logical_id.clone();
        let Some((stream, _)) = self.resolved.streams.get(&m.stream).cloned() else {
            return;
        };
        let key = format!("{}/{shard}", m.logical_id);
        // The first iterator (checkpoint or starting position) before anything else: LATEST means "from now".
        let first = self
            .iterator_retrying(&stream, &shard, i, from_start, None)
            .await;
        self.view.note(
            "shard",
            &format!("{function} reads {stream}/{shard}"),
            json!({"function": function, "shard": shard}),
        );

        let tracker: Arc<Mutex<Tracker>> = Arc::default();
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        for lane in 0..m.parallelization_factor {
            let (tx, rx) = mpsc::channel::<Item>(m.batch_size.max(1) * 2);
            lanes.push(tx);
            let this = Arc::clone(&self);
            let (shard, tracker) = (shard.clone(), Arc::clone(&tracker));
            handles.push(tokio::spawn(async move {
                this.lane(i, shard, lane, rx, tracker).await
            }));
        }

        let mut iterator: Option<String> = Some(first);
        let mut last_read: Option<String> = None;
        loop {
            let it = match iterator.take() {
                Some(it) => it,
                // After an error: a fresh iterator just after the last record read.
                None => {
                    let after = last_read.as_deref();
                    self.iterator_retrying(&stream, &shard, i, from_start, after)
                        .await
                }
            };
            let resp = match self
                .kinesis
                .get_records()
                .shard_iterator(&it)
                .limit(10_000)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    self.view.note(
                        "error",
                        &format!(
                            "GetRecords {shard}: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        ),
                        json!({}),
                    );
                    tokio::time::sleep(self.settings.idle_poll).await;
                    continue; // a fresh iterator after the last record read
                }
            };
            let mut filtered = 0;
            for r in resp.records() {
                let rec = Rec {
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    arrival: r
                        .approximate_arrival_timestamp()
                        .map_or(0.0, |t| t.as_secs_f64()),
                };
                last_read = Some(rec.sequence_number.clone());
                let value = kinesis_record_value(
                    &rec.partition_key,
                    &rec.sequence_number,
                    rec.arrival,
                    &rec.data,
                );
                if !passes(&m.filters, &value) {
                    filtered += 1;
                    if let Ok(mut t) = tracker.lock() {
                        t.add(&rec.sequence_number, true);
                    }
                    continue;
                }
                let index = match tracker.lock() {
                    Ok(mut t) => t.add(&rec.sequence_number, false),
                    Err(_) => return,
                };
                let lane = lane_of(&rec.partition_key, lanes.len());
                if lanes[lane].send(Item { index, rec }).await.is_err() {
                    return;
                }
            }
            self.view.read(
                &function,
                &shard,
                resp.millis_behind_latest().unwrap_or(0),
                filtered,
            );
            if let Some(cp) = tracker.lock().ok().and_then(|t| t.checkpoint.clone()) {
                self.checkpoints.set(&key, &cp);
            }
            match resp.next_shard_iterator() {
                None => break, // the shard is closed and read to its end
                Some(next) => iterator = Some(next.to_owned()),
            }
            if resp.records().is_empty() {
                tokio::time::sleep(self.settings.idle_poll).await;
            }
        }
        // Closed shard: let the lanes finish what they have, then mark it done so its children start.
        drop(lanes);
        for h in handles {
            let _ = h.await;
        }
        self.checkpoints.set(&key, "closed");
        self.view.note(
            "shard",
            &format!("{function}: {shard} closed and fully processed"),
            json!({"shard": shard}),
        );
    }

    async fn lane(
        self: Arc<Self>,
        i: usize,
        shard: String,
        lane: usize,
        mut rx: mpsc::Receiver<Item>,
        tracker: Arc<Mutex<Tracker>>,
    ) {
        let m = self.mapping(i).clone();
        let key = format!("{}/{shard}", m.logical_id);
        let mut carry: Option<Item> = None;
        loop {
            let first = match carry.take() {
                Some(item) => item,
                None => match rx.recv().await {
                    Some(item) => item,
                    None => return,
                },
            };
            let mut bytes = first.rec.payload_size();
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + m.batching_window;
            while batch.len() < m.batch_size {
                let next = if m.batching_window.is_zero() {
                    rx.try_recv().ok()
                } else {
                    // Window elapsed, or the shard's reader is gone: either way the batch is complete.
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                };
                let Some(item) = next else { break };
                let size = item.rec.payload_size();
                if bytes + size > MAX_PAYLOAD_BYTES {
                    carry = Some(item);
                    break;
                }
                bytes += size;
                batch.push(item);
            }
            let indices: VecDeque<u64> = batch.iter().map(|b| b.index).collect();
            let records = batch.into_iter().map(|b| b.rec).collect();
            self.deliver(i, &shard, lane, Work::new(records), indices, &tracker)
                .await;
            if let Some(cp) = tracker.lock().ok().and_then(|t| t.checkpoint.clone()) {
                self.checkpoints.set(&key, &cp);
            }
        }
    }

    /// Delivers one batch until every record of it is checkpointed (processed or sent to on-failure).
    async fn deliver(
        &self,
        i: usize,
        shard: &str,
        lane: usize,
        work: Work,
        mut indices: VecDeque<u64>,
        tracker: &Mutex<Tracker>,
    ) {
        let m = self.mapping(i);
        let function = self.function(i);
        let mut queue = VecDeque::from([work]);
        let done = |n: usize, indices: &mut VecDeque<u64>| {
            if let Ok(mut t) = tracker.lock() {
                for idx in indices.drain(..n.min(indices.len())) {
                    t.done(idx);
                }
            }
        };
        while let Some(mut w) = queue.pop_front() {
            let expired = expire(&mut w, &m.policy, unix_now());
            if !expired.is_empty() {
                self.on_failure(
                    i,
                    shard,
                    &expired,
                    Condition::RecordAgeExceeded,
                    w.invocations,
                )
                .await;
                done(expired.len(), &mut indices);
            }
            if w.records.is_empty() {
                continue;
            }
            let retry = w.invocations > 0;
            let started = Instant::now();
            let invocation = self.invoke(i, shard, &w.records).await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let records = w.records.clone();
            let d = decide(w, &invocation, &m.policy);
            let dead = d.dead_letter.as_ref().map_or(0, |(r, _)| r.len());
            self.view.batch(&BatchLine {
                function: &function.logical_id,
                shard,
                lane,
                records: records
                    .iter()
                    .map(|r| (r.sequence_number.as_str(), r.partition_key.as_str()))
                    .collect(),
                outcome: &d.summary,
                failed: d.failed,
                retry,
                processed: d.checkpointed - dead,
                latency_ms,
            });
            if let Some((recs, condition)) = &d.dead_letter {
                let invocations = d.next.first().map_or(0, |n| n.invocations).max(1);
                self.on_failure(i, shard, recs, *condition, invocations)
                    .await;
            }
            done(d.checkpointed, &mut indices);
            let retries = d.next.first().map_or(0, |n| n.retries);
            let bisected = d.next.len() > 1;
            for n in d.next.into_iter().rev() {
                queue.push_front(n);
            }
            if d.failed && !queue.is_empty() && !bisected {
                // Back off before a retry: 100 ms doubling to 3.2 s.
                tokio::time::sleep(Duration::from_millis(100 << retries.min(5))).await;
            }
        }
    }

    async fn invoke(&self, i: usize, shard: &str, records: &[Rec]) -> Invocation {
        let m = self.mapping(i);
        let function = self.function(i);
        let (_, stream_arn) = self
            .resolved
            .streams
            .get(&m.stream)
            .cloned()
            .unwrap_or_default();
        let source = BatchSource {
            event_source_arn: stream_arn,
            shard_id: shard.to_owned(),
            aws_region: self.settings.region.clone(),
            invoke_identity_arn: format!(
                "arn:aws:iam::{}:role/{}Role",
                self.settings.account, function.logical_id
            ),
        };
        let stream_records: Vec<StreamRecord> = records
            .iter()
            .map(|r| StreamRecord {
                sequence_number: r.sequence_number.clone(),
                partition_key: r.partition_key.clone(),
                data: r.data.clone(),
                approximate_arrival_timestamp: (r.arrival * 1000.0).round() / 1000.0,
            })
            .collect();
        let body = kinesis_event(&source, &stream_records).to_string();
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.settings.lambda_endpoint, function.binary
        );
        loop {
            // `cargo lambda watch` compiles a function on its first invocation: give that one time to build.
            let warm = self
                .warmed
                .lock()
                .map(|w| w.contains(&function.binary))
                .unwrap_or(false);
            let timeout = if warm {
                function.timeout + Duration::from_secs(1)
            } else {
                Duration::from_secs(600)
            };
            let sent = self
                .http
                .post(&url)
                .body(body.clone())
                .timeout(timeout)
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    if let Ok(mut w) = self.warmed.lock() {
                        w.insert(function.binary.clone());
                    }
                    let status = resp.status();
                    let function_error = resp.headers().get("x-amz-function-error").is_some();
                    let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    return if status.is_success() && !function_error {
                        Invocation::Returned(bytes)
                    } else {
                        let text =
                            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                        Invocation::FunctionError(format!("{status}: {text}"))
                    };
                }
                Err(e) if e.is_timeout() => return Invocation::TimedOut,
                Err(e) => {
                    // The runtime emulator is not there (starting, reloading): not the function's failure,
                    // so no retry attempt is spent; wait and try again.
                    self.view.note(
                        "invoke",
                        &format!("{}: {e}; retrying", function.binary),
                        json!({}),
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn on_failure(
        &self,
        i: usize,
        shard: &str,
        records: &[Rec],
        condition: Condition,
        invocations: u32,
    ) {
        let m = self.mapping(i);
        let function = self.function(i);
        let seqs: Vec<&str> = records.iter().map(|r| r.sequence_number.as_str()).collect();
        let Some(queue) = &m.on_failure else {
            self.view.dead_letter(
                &function.logical_id,
                shard,
                condition.as_str(),
                &seqs,
                "(none: discarded)",
            );
            return;
        };
        let (url, _) = self.resolved.queues.get(queue).cloned().unwrap_or_default();
        let (_, stream_arn) = self
            .resolved
            .streams
            .get(&m.stream)
            .cloned()
            .unwrap_or_default();
        let payload = on_failure_payload(
            &format!(
                "arn:aws:lambda:{}:{}:function:{}",
                self.settings.region, self.settings.account, function.binary
            ),
            &stream_arn,
            shard,
            records,
            condition,
            invocations,
        );
        let Some(sqs) = &self.sqs else { return };
        let mut attempt = 0u32;
        loop {
            match sqs
                .send_message()
                .queue_url(&url)
                .message_body(payload.to_string())
                .send()
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 30 => {
                    attempt += 1;
                    self.view.note(
                        "error",
                        &format!(
                            "SendMessage {queue}: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        ),
                        json!({}),
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break,
            }
        }
        self.view.dead_letter(
            &function.logical_id,
            shard,
            condition.as_str(),
            &seqs,
            queue,
        );
    }
}

#[track_caller]
fn unreachable_function() -> &'static Function {
    // App::from_template only keeps mappings whose function exists.
    panic!("a mapping's function is missing from the template")
}

/// The lane of a partition key: the same key always goes to the same lane.
pub fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    partition_key.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

fn unix_now() -> f64 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

fn iso(secs: f64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The message Lambda sends to a Kinesis mapping's on-failure destination (AWS's shape).
pub fn on_failure_payload(
    function_arn: &str,
    stream_arn: &str,
    shard: &str,
    records: &[Rec],
    condition: Condition,
    invocations: u32,
) -> Value {
    let first = records.first();
    let last = records.last();
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::now_v7().to_string(),
            "functionArn": function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": invocations,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": iso(unix_now()),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first.map(|r| r.sequence_number.as_str()),
            "endSequenceNumber": last.map(|r| r.sequence_number.as_str()),
            "approximateArrivalOfFirstRecord": first.map(|r| iso(r.arrival)),
            "approximateArrivalOfLastRecord": last.map(|r| iso(r.arrival)),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_is_the_end_of_the_done_prefix() {
        let mut t = Tracker::default();
        let a = t.add("1", false);
        let _filtered = t.add("2", true);
        let c = t.add("3", false);
        assert_eq!(t.checkpoint, None);
        t.done(c);
        assert_eq!(t.checkpoint, None, "record 1 is still outstanding");
        t.done(a);
        assert_eq!(t.checkpoint.as_deref(), Some("3"));
        t.add("4", true);
        assert_eq!(
            t.checkpoint.as_deref(),
            Some("4"),
            "filtered records advance the checkpoint"
        );
    }

    #[test]
    fn a_key_always_has_one_lane() {
        for key in ["a", "acc_1", "usr_42"] {
            let lane = lane_of(key, 7);
            assert!(lane < 7);
            assert!((0..100).all(|_| lane_of(key, 7) == lane));
        }
        assert_eq!(lane_of("x", 1), 0);
    }

    #[test]
    fn on_failure_payload_has_aws_shape() {
        let recs = vec![
            Rec {
                sequence_number: "10".into(),
                partition_key: "k".into(),
                data: vec![],
                arrival: 1_700_000_000.5,
            },
            Rec {
                sequence_number: "12".into(),
                partition_key: "k".into(),
                data: vec![],
                arrival: 1_700_000_001.0,
            },
        ];
        let p = on_failure_payload(
            "arn:f",
            "arn:s",
            "shardId-000000000001",
            &recs,
            Condition::RetryAttemptsExhausted,
            3,
        );
        assert_eq!(p["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(p["requestContext"]["approximateInvokeCount"], 3);
        let info = &p["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000001");
        assert_eq!(
            (
                info["startSequenceNumber"].as_str(),
                info["endSequenceNumber"].as_str()
            ),
            (Some("10"), Some("12"))
        );
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["streamArn"], "arn:s");
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "2023-11-14T22:13:20.5Z"
        );
    }
}
