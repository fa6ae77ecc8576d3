//! Reading shards: discovering them (and their children after a reshard), getting iterators, polling records,
//! filtering them and handing them to the lanes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use serde_json::json;
use tokio::sync::mpsc;
use tubes_platform::aws;
use tubes_platform::lambda_event::StreamRecord;

use super::checkpoints::Tracker;
use super::lanes::lane_of;
use super::{Emulator, Item};
use crate::app::StartingPosition;
use crate::filter::{kinesis_record_value, passes};

impl Emulator {
    pub(super) async fn discover(self: Arc<Self>, i: usize) {
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
                .map_err(|e| aws::describe("ListShards", e))?;
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
            .map_err(|e| aws::describe("GetShardIterator", e))?;
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
                        &format!("{shard}: {}", aws::describe("GetRecords", e)),
                        json!({}),
                    );
                    tokio::time::sleep(self.settings.idle_poll).await;
                    continue; // a fresh iterator after the last record read
                }
            };
            let mut filtered = 0;
            for r in resp.records() {
                let rec = StreamRecord::from(r);
                last_read = Some(rec.sequence_number.to_string());
                let value = kinesis_record_value(
                    &rec.partition_key,
                    rec.sequence_number.as_str(),
                    rec.arrival,
                    &rec.data,
                );
                if !passes(&m.filters, &value) {
                    filtered += 1;
                    if let Ok(mut t) = tracker.lock() {
                        t.add(rec.sequence_number.as_str(), true);
                    }
                    continue;
                }
                let index = match tracker.lock() {
                    Ok(mut t) => t.add(rec.sequence_number.as_str(), false),
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
}
