//! Read models in memory, for tests (feature `test-util`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{ReadModelError, ReadModelStore, Stored};

/// Documents and pointers by key.
#[derive(Debug, Default)]
pub struct MemoryReadModels {
    state: Mutex<(BTreeMap<String, Stored>, BTreeMap<String, String>)>,
}

impl MemoryReadModels {
    fn lock(&self) -> MutexGuard<'_, (BTreeMap<String, Stored>, BTreeMap<String, String>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every document, by key.
    pub fn documents(&self) -> BTreeMap<String, Stored> {
        self.lock().0.clone()
    }
}

impl ReadModelStore for MemoryReadModels {
    async fn get(&self, key: &str) -> Result<Option<Stored>, ReadModelError> {
        Ok(self.lock().0.get(key).cloned())
    }

    async fn put_if(
        &self,
        key: &str,
        stored: &Stored,
        expected: Option<&str>,
    ) -> Result<bool, ReadModelError> {
        let mut state = self.lock();
        if state.0.get(key).map(|s| s.seq.as_str()) != expected {
            return Ok(false);
        }
        state.0.insert(key.to_owned(), stored.clone());
        Ok(true)
    }

    async fn live_version(&self, model: &str) -> Result<Option<String>, ReadModelError> {
        Ok(self.lock().1.get(model).cloned())
    }

    async fn set_live_version(&self, model: &str, version: &str) -> Result<(), ReadModelError> {
        self.lock().1.insert(model.to_owned(), version.to_owned());
        Ok(())
    }
}
