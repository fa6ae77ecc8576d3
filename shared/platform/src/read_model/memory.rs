//! Read models in memory, for tests (feature `test-util`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{document_key, Pointer, ReadModelError, ReadModelStore, Stored};

/// Documents by key, pointers by model.
type State = (BTreeMap<String, Stored>, BTreeMap<String, Pointer>);

/// Documents and pointers by key.
#[derive(Debug, Default)]
pub struct MemoryReadModels {
    state: Mutex<State>,
}

impl MemoryReadModels {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every document of every model and version, by key.
    pub fn all(&self) -> BTreeMap<String, Stored> {
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

    async fn pointer(&self, model: &str) -> Result<Option<Pointer>, ReadModelError> {
        Ok(self.lock().1.get(model).cloned())
    }

    async fn set_pointer(&self, model: &str, pointer: &Pointer) -> Result<(), ReadModelError> {
        self.lock().1.insert(model.to_owned(), pointer.clone());
        Ok(())
    }

    async fn documents(
        &self,
        model: &str,
        version: &str,
    ) -> Result<BTreeMap<String, Stored>, ReadModelError> {
        let prefix = document_key(model, version, "");
        Ok(self
            .lock()
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), v.clone())))
            .collect())
    }
}
