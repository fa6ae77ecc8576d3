//! The Kinesis event source mapping emulator: reads every shard of every mapped stream and invokes the mapped
//! function through the Lambda Invoke API (`cargo lambda watch`), with the batching, filtering, checkpoint,
//! bisect, retry and on-failure semantics of [`crate::esm`] and Lambda's wire contract
//! ([`tubes_platform::lambda_event`]).
//!
//! - [`shards`]: per mapping, a discovery task lists the stream's shards every few seconds and starts a reader for
//!   each new shard once its parents are read to the end (resharding). Per shard, a reader polls `GetRecords` (at
//!   once while records are waiting, every `idle_poll` when idle), drops the records the filter criteria reject, and
//!   hands the rest to `ParallelizationFactor` lanes by partition key hash, so one key's records stay in order.
//! - [`lanes`]: per lane, batches of up to `BatchSize` records / 6 MB, gathered for up to
//!   `MaximumBatchingWindowInSeconds`, delivered one at a time until every record is checkpointed.
//! - [`invoke`]: one invocation of the function, and the on-failure message when the mapping gives up.
//! - [`checkpoints`]: the highest sequence number below which everything is done, per mapping and shard, kept in
//!   the state directory, so a restart resumes where it stopped.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tubes_platform::lambda_event::StreamRecord;

use crate::app::{App, Function, Mapping};
use crate::stack::Resolved;
use crate::view::View;

mod checkpoints;
mod invoke;
mod lanes;
mod shards;

pub use checkpoints::Checkpoints;
pub use lanes::lane_of;

/// How the emulator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the Lambda Invoke API, e.g. `http://127.0.0.1:9000`.
    pub lambda_endpoint: String,
    /// Region and account used in ARNs.
    pub region: String,
    /// Account id used in ARNs.
    pub account: String,
    /// Wait between polls of an idle shard (`tubes-local run --idle-poll-ms`, 200 ms by default).
    pub idle_poll: Duration,
    /// Wait between shard listings (resharding).
    pub discovery: Duration,
    /// Where checkpoints are kept (`None`: in memory only).
    pub state_dir: Option<PathBuf>,
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
    rec: StreamRecord,
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

    /// The ARN of mapping `i`'s stream.
    fn stream_arn(&self, i: usize) -> String {
        let stream = &self.mapping(i).stream;
        self.resolved
            .streams
            .get(stream)
            .map(|(_, arn)| arn.clone())
            .unwrap_or_default()
    }

    fn function(&self, i: usize) -> &Function {
        self.app
            .function(&self.mapping(i).function)
            .unwrap_or_else(|| unreachable_function())
    }
}

#[track_caller]
fn unreachable_function() -> &'static Function {
    // App::from_template only keeps mappings whose function exists.
    panic!("a mapping's function is missing from the template")
}
