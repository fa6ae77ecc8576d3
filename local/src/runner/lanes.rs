//! Lanes: a shard's records for one lane, gathered into batches and delivered until every record is
//! checkpointed, with the event source mapping's decisions ([`crate::esm`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tubes_platform::clock;
use tubes_platform::lambda_event::{Condition, MAX_PAYLOAD_BYTES};

use super::checkpoints::Tracker;
use super::{Emulator, Item};
use crate::esm::{decide, expire, Work};
use crate::view::BatchLine;

impl Emulator {
    pub(super) async fn lane(
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
            let expired = expire(&mut w, &m.policy, clock::now_secs());
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
            // What the consumer parked in its dead-letter queue during the invocation: the queue's growth.
            let parked = match self.parked(i).await {
                Some(depth) => self.view.parked_now(&function.logical_id, depth),
                None => 0,
            };
            self.view.batch(&BatchLine {
                parked,
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
                self.on_failure(i, shard, recs, condition.clone(), invocations)
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
}

/// The lane of a partition key: the same key always goes to the same lane.
pub fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    partition_key.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_has_one_lane() {
        for key in ["a", "acc_1", "usr_42"] {
            let lane = lane_of(key, 7);
            assert!(lane < 7);
            assert!((0..100).all(|_| lane_of(key, 7) == lane));
        }
        assert_eq!(lane_of("x", 1), 0);
    }
}
