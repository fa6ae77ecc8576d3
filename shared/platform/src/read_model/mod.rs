//! Read models (CQRS's read side): a [`Fold`] turns the events of one aggregate into a document, applied in
//! stream order; the [`Projector`] keeps each aggregate's document with the last sequence number it applied, so a
//! redelivered or replayed record is recognised and skipped without idempotency records of its own; the query
//! side reads the documents. The store is a port ([`ReadModelStore`]) with a DynamoDB adapter ([`dynamo`]) and an
//! in-memory one (`memory`, feature `test-util`).
//!
//! - **Versions**: a model's documents live under a version (`accounts` `v1`); the item `model#{model}` names the
//!   live one (default [`DEFAULT_VERSION`]). A changed rule is deployed by building a new version from the event
//!   store, comparing it with the live one and switching the pointer: one write, no downtime for readers.
//! - **Order**: a record is applied only if its sequence number ([`Position::order`]: the original's for a
//!   replay) is above the document's. Different keys of one shard, and one key's events after a reshard, keep
//!   Kinesis's order: sequence numbers grow within a partition key.
//! - **Duplicates**: the same event may sit on the stream twice (a sender's blind resend, a publisher's retry
//!   after a lost answer). Each document remembers the effect keys ([`Fold::effect_key`]) of its last
//!   [`RECENT_EFFECTS`] events and applies an effect once among them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tubes_contract::Envelope;

use crate::classify::{Classify, Dependency};
use crate::consumer::Position;
use crate::lambda_event::SequenceNumber;

pub mod dynamo;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use dynamo::DynamoReadModels;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryReadModels;

/// The version a model's documents are under until a pointer names another.
pub const DEFAULT_VERSION: &str = "v1";

/// How many effect keys a document remembers, to apply a duplicated event once.
pub const RECENT_EFFECTS: usize = 128;

/// How long a process trusts the live version it read (a switch reaches every writer and reader within this).
pub const POINTER_TTL: Duration = Duration::from_secs(5);

/// Sequence numbers are stored padded to this many digits, so that their text orders as their value.
const SEQUENCE_DIGITS: usize = 64;

/// The read models could not be read or written; the record is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read models: {0}")]
pub struct ReadModelError(pub String);

impl Classify for ReadModelError {
    fn is_retryable(&self) -> bool {
        true
    }

    fn dependency(&self) -> Option<Dependency> {
        Some(Dependency::READ_MODELS)
    }
}

/// One aggregate's document as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The document (JSON).
    pub doc: String,
    /// The last sequence number applied, padded ([`padded`]).
    pub seq: String,
    /// Effect keys of the last events applied, oldest first.
    pub recent: Vec<String>,
    /// Events applied.
    pub applied: u64,
}

/// The sequence number as stored: zero-padded so that the text orders as the value.
pub fn padded(seq: &SequenceNumber) -> String {
    format!("{:0>width$}", seq.as_str(), width = SEQUENCE_DIGITS)
}

/// The key of one aggregate's document in one version of a model.
pub fn document_key(model: &str, version: &str, aggregate: &str) -> String {
    format!("{model}#{version}#{aggregate}")
}

/// The key of a model's pointer to its live version.
pub fn pointer_key(model: &str) -> String {
    format!("model#{model}")
}

/// A model's pointer: its live version, and whether writers are paused while the live version is switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The version readers read and writers write.
    pub live: String,
    /// Writers wait (their records are retried) until the switch is done; readers go on reading `live`.
    pub paused: bool,
}

/// Where read models are kept: documents by key, written only over what was read.
pub trait ReadModelStore: Send + Sync {
    /// The item under `key`.
    fn get(&self, key: &str)
        -> impl Future<Output = Result<Option<Stored>, ReadModelError>> + Send;

    /// Writes `stored` under `key` if the item there still has the sequence number `expected` (`None`: if there is
    /// none); `false` if another writer came first.
    fn put_if(
        &self,
        key: &str,
        stored: &Stored,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send;

    /// The pointer of `model`, if it has one.
    fn pointer(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<Option<Pointer>, ReadModelError>> + Send;

    /// Sets the pointer of `model`.
    fn set_pointer(
        &self,
        model: &str,
        pointer: &Pointer,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Every document of `version` of `model`, by aggregate (a scan: for operations, not for requests).
    fn documents(
        &self,
        model: &str,
        version: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, Stored>, ReadModelError>> + Send;
}

impl<S: ReadModelStore> ReadModelStore for &S {
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Stored>, ReadModelError>> + Send {
        (**self).get(key)
    }
    fn put_if(
        &self,
        key: &str,
        stored: &Stored,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send {
        (**self).put_if(key, stored, expected)
    }
    fn pointer(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<Option<Pointer>, ReadModelError>> + Send {
        (**self).pointer(model)
    }
    fn set_pointer(
        &self,
        model: &str,
        pointer: &Pointer,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        (**self).set_pointer(model, pointer)
    }
    fn documents(
        &self,
        model: &str,
        version: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, Stored>, ReadModelError>> + Send {
        (**self).documents(model, version)
    }
}

/// A read model's rule: how an aggregate's events fold into its document.
pub trait Fold: Default + Serialize + DeserializeOwned + Send + Sync {
    /// The model's name (`accounts`).
    const MODEL: &'static str;

    /// The aggregate `envelope` changes in this model, or `None` if the model does not look at it.
    fn aggregate(envelope: &Envelope) -> Option<&str>;

    /// What makes two events the same effect for this model (default: the same source and id). A model whose
    /// facts have ids of their own (a credit id) names them, so two events about one fact count once.
    fn effect_key(envelope: &Envelope) -> String {
        format!("{}#{}", envelope.source(), envelope.id())
    }

    /// Applies one event to the document.
    fn apply(&mut self, envelope: &Envelope);
}

/// What projecting one record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// Applied now.
    Applied,
    /// Already applied (its sequence number is not above the document's): a redelivery or a replay.
    AlreadyApplied,
    /// The same effect was applied from another record (a duplicate event).
    Duplicate,
    /// The model does not look at this event.
    Ignored,
}

/// How often a write is tried again after another writer changed the document in between.
const WRITE_ATTEMPTS: usize = 8;

/// Applies events to read models in a store, under each model's live version.
#[derive(Debug)]
pub struct Projector<S> {
    store: S,
    pointers: Mutex<HashMap<&'static str, (Pointer, Instant)>>,
}

impl<S: ReadModelStore> Projector<S> {
    /// Projects into `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            pointers: Mutex::new(HashMap::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The pointer of `model` (read at most every [`POINTER_TTL`]; `v1`, not paused, when there is none).
    pub async fn pointer(&self, model: &'static str) -> Result<Pointer, ReadModelError> {
        if let Some((pointer, at)) = self
            .pointers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(model)
        {
            if at.elapsed() < POINTER_TTL {
                return Ok(pointer.clone());
            }
        }
        let pointer = self.store.pointer(model).await?.unwrap_or_else(|| Pointer {
            live: DEFAULT_VERSION.to_owned(),
            paused: false,
        });
        self.pointers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(model, (pointer.clone(), Instant::now()));
        Ok(pointer)
    }

    /// The live version of `model`, for readers (a pause does not stop them).
    pub async fn live_version(&self, model: &'static str) -> Result<String, ReadModelError> {
        Ok(self.pointer(model).await?.live)
    }

    /// Applies `envelope`, at `position`, to `F`'s live version.
    pub async fn project<F: Fold>(
        &self,
        envelope: &Envelope,
        position: Position<'_>,
    ) -> Result<Projected, ReadModelError> {
        if F::aggregate(envelope).is_none() {
            return Ok(Projected::Ignored);
        }
        let pointer = self.pointer(F::MODEL).await?;
        if pointer.paused {
            // A dependency's state, not the record's fault: the harness retries it, never parks it.
            return Err(ReadModelError(format!(
                "{}: writes paused while its live version is switched; retried",
                F::MODEL
            )));
        }
        let version = pointer.live;
        self.project_into::<F>(&version, envelope, &position.order(envelope))
            .await
    }

    /// Applies `envelope`, whose place among its key's events is `order`, to `version` of `F` (a rebuild names
    /// the version it builds).
    pub async fn project_into<F: Fold>(
        &self,
        version: &str,
        envelope: &Envelope,
        order: &SequenceNumber,
    ) -> Result<Projected, ReadModelError> {
        let Some(aggregate) = F::aggregate(envelope) else {
            return Ok(Projected::Ignored);
        };
        let key = document_key(F::MODEL, version, aggregate);
        let seq = padded(order);
        let effect = F::effect_key(envelope);
        for _ in 0..WRITE_ATTEMPTS {
            let read = self.store.get(&key).await?;
            let (mut doc, mut recent, applied, expected) = match &read {
                Some(stored) => {
                    if stored.seq >= seq {
                        return Ok(Projected::AlreadyApplied);
                    }
                    let doc: F = serde_json::from_str(&stored.doc).map_err(|e| {
                        ReadModelError(format!("{key}: a document this rule cannot read: {e}"))
                    })?;
                    (
                        doc,
                        stored.recent.clone(),
                        stored.applied,
                        Some(stored.seq.as_str()),
                    )
                }
                None => (F::default(), Vec::new(), 0, None),
            };
            let duplicate = recent.contains(&effect);
            if !duplicate {
                doc.apply(envelope);
                recent.push(effect.clone());
                if recent.len() > RECENT_EFFECTS {
                    recent.drain(..recent.len() - RECENT_EFFECTS);
                }
            }
            // A duplicate still moves the document's sequence on: its redelivery is then skipped by order alone.
            let next = Stored {
                doc: serde_json::to_string(&doc)
                    .map_err(|e| ReadModelError(format!("{key}: {e}")))?,
                seq: seq.clone(),
                recent,
                applied: applied + u64::from(!duplicate),
            };
            if self.store.put_if(&key, &next, expected).await? {
                return Ok(if duplicate {
                    Projected::Duplicate
                } else {
                    Projected::Applied
                });
            }
        }
        Err(ReadModelError(format!(
            "{key}: changed by another writer {WRITE_ATTEMPTS} times in a row"
        )))
    }
}

/// What the query side reads: documents of the live version.
#[derive(Debug)]
pub struct ReadModels<S> {
    projector: Projector<S>,
}

/// A document as the query side serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The version it is under.
    pub version: String,
    /// The document (JSON).
    pub doc: String,
    /// The last sequence number applied (padded): with the version, what its entity tag is made of.
    pub seq: String,
}

impl<S: ReadModelStore> ReadModels<S> {
    /// Reads from `store`.
    pub fn new(store: S) -> Self {
        Self {
            projector: Projector::new(store),
        }
    }

    /// `aggregate`'s document in the live version of `model`, if it has one.
    pub async fn document(
        &self,
        model: &'static str,
        aggregate: &str,
    ) -> Result<Option<Document>, ReadModelError> {
        let version = self.projector.live_version(model).await?;
        let stored = self
            .projector
            .store()
            .get(&document_key(model, &version, aggregate))
            .await?;
        Ok(stored.map(|s| Document {
            version,
            doc: s.doc,
            seq: s.seq,
        }))
    }
}

#[cfg(test)]
mod tests;
