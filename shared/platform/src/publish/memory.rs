//! An in-memory publisher for tests (feature `test-util`): it keeps what it accepted, refuses calls over Kinesis's
//! limits as Kinesis would, and fails on command.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tubes_contract::Record;

use super::{
    FailureKind, PublishError, Publisher, PutOutcome, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL,
};

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
                state.written.push(record.clone());
                out.push(PutOutcome::Accepted {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: format!("{:056}", state.written.len()),
                });
            }
        }
        Ok(out)
    }
}
