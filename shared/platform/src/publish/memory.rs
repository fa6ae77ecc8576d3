//! An in-memory publisher for tests (feature `test-util`): it keeps what it accepted, refuses calls over Kinesis's
//! limits as Kinesis would, and fails on command.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tubes_contract::Record;

use super::{
    hash_key, FailureKind, PublishError, Publisher, PutOutcome, Shard, ShardMap,
    MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL,
};

/// The shard of a publisher never resharded.
const ONE_SHARD: &str = "shardId-000000000000";

/// An in-memory [`Publisher`]: keeps what it accepted and fails on command.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    written: Vec<Record>,
    next: VecDeque<MemoryFault>,
    calls: Vec<usize>,
    /// Where records go (by their partition key's hash), and what `open_shards` lists; `None`: [`ONE_SHARD`].
    shards: Option<ShardMap>,
    /// What each accepted record's outcome said: its shard.
    placed: Vec<String>,
    /// How many times the shards were listed.
    listed: usize,
}

/// A fault [`MemoryPublisher`] produces on one of its next calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryFault {
    /// Every record of the call fails with this Kinesis error code.
    FailEntries(&'static str),
    /// The call itself fails as throttled.
    ThrottleCall,
    /// The call itself fails as unavailable.
    FailCall,
    /// The records at these positions of the call fail with this code; the others are written.
    FailAt(Vec<usize>, &'static str),
}

impl MemoryPublisher {
    /// Queues a fault for the next call that has none queued before it.
    pub fn fail_next(&self, fault: MemoryFault) {
        self.lock().next.push_back(fault);
    }

    /// Every record written so far, in order.
    pub fn written(&self) -> Vec<Record> {
        self.lock().written.clone()
    }

    /// The number of records of each call so far.
    pub fn calls(&self) -> Vec<usize> {
        self.lock().calls.clone()
    }

    /// The stream's shards from now on (a split or a merge, as a writer with an older map meets it): records go
    /// where Kinesis would put them, and [`Publisher::open_shards`] lists them.
    pub fn reshard(&self, shards: ShardMap) {
        self.lock().shards = Some(shards);
    }

    /// The events written, each as its own bytes, in the order written: a packed record's one by one.
    pub fn written_events(&self) -> Vec<Vec<u8>> {
        self.lock()
            .written
            .iter()
            .flat_map(|r| match tubes_contract::codec::unpack(&r.data) {
                Some(Ok(pack)) => pack.events,
                _ => vec![r.data.clone()],
            })
            .collect()
    }

    /// The shard each record in [`MemoryPublisher::written`] went to.
    pub fn placed(&self) -> Vec<String> {
        self.lock().placed.clone()
    }

    /// How many times the shards were listed.
    pub fn listed(&self) -> usize {
        self.lock().listed
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Publisher for MemoryPublisher {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<PutOutcome>, PublishError> {
        let mut state = self.lock();
        state.calls.push(records.len());
        // Kinesis refuses a call over its limits; so does this stand-in, so tests catch a writer that exceeds them.
        let bytes: usize = records.iter().map(Record::billed_size).sum();
        if records.is_empty() || records.len() > MAX_RECORDS_PER_CALL || bytes > MAX_BYTES_PER_CALL
        {
            return Err(PublishError::Protocol(format!(
                "{} records / {bytes} bytes in one call",
                records.len()
            )));
        }
        let fault = state.next.pop_front();
        let failing: Vec<usize> = match &fault {
            Some(MemoryFault::ThrottleCall) => {
                return Err(PublishError::Throttled("injected".into()))
            }
            Some(MemoryFault::FailCall) => {
                return Err(PublishError::Unavailable("injected".into()))
            }
            Some(MemoryFault::FailEntries(_)) => (0..records.len()).collect(),
            Some(MemoryFault::FailAt(at, _)) => at.clone(),
            None => vec![],
        };
        let code = match fault {
            Some(MemoryFault::FailEntries(c) | MemoryFault::FailAt(_, c)) => c,
            _ => "",
        };
        let mut out = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            if failing.contains(&i) {
                out.push(PutOutcome::Failed {
                    kind: FailureKind::of_code(code),
                    message: format!("{code}: injected"),
                });
            } else {
                let shard = state
                    .shards
                    .as_ref()
                    .and_then(|m| m.shard_of(hash_key(&record.partition_key)))
                    .map_or_else(|| ONE_SHARD.to_owned(), |s| s.id.clone());
                state.written.push(record.clone());
                state.placed.push(shard.clone());
                out.push(PutOutcome::Accepted {
                    shard_id: shard,
                    sequence_number: format!("{:056}", state.written.len()),
                });
            }
        }
        Ok(out)
    }

    async fn open_shards(&self) -> Result<Option<Vec<Shard>>, PublishError> {
        let mut state = self.lock();
        state.listed += 1;
        Ok(Some(state.shards.as_ref().map_or_else(
            || ShardMap::single(ONE_SHARD).shards().to_vec(),
            |m| m.shards().to_vec(),
        )))
    }
}
