//! The archive's objects in memory, for tests (feature `test-util`): every write is counted, and writes can be
//! made to fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{ArchiveError, ObjectStore};

/// Objects by key in memory.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    puts: AtomicUsize,
    /// Writes after this many fail (none when unset).
    fail_after: Mutex<Option<usize>>,
}

impl MemoryObjects {
    /// The objects, by key.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many writes were made (including failed ones).
    pub fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }

    /// From now on, the writes after the next `writes` fail; `None`: none fails.
    pub fn fail_after(&self, writes: Option<usize>) {
        *self
            .fail_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = writes.map(|w| self.puts() + w);
    }
}

impl ObjectStore for MemoryObjects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ArchiveError> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        let limit = *self
            .fail_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if limit.is_some_and(|limit| n >= limit) {
            return Err(ArchiveError(format!("PutObject {key}: injected failure")));
        }
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), body);
        Ok(())
    }
}
