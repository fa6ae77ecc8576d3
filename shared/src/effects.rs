//! The effects port: what a consumer does to the world, as named effects with deterministic keys.
//!
//! Consumers decide *which* effects an event causes; an adapter carries them out. Today's adapters log them
//! ([`LogEffects`]) or keep them for tests ([`MemoryEffects`]); stores and e-mail providers plug in behind the
//! same trait. Each effect carries an idempotency key derived from the consumer, the event id and the effect,
//! so a redelivered record asks for the same effect under the same key.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::envelope::Envelope;
use crate::harness::Classify;

/// One thing a consumer does because of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// What is done, e.g. `email.welcome`.
    pub kind: &'static str,
    /// The aggregate it is done to (the event's subject).
    pub aggregate_id: String,
    /// The event that caused it.
    pub event_id: String,
    /// `{consumer}:{event id}:{kind}`: the same for every delivery of the same event.
    pub idempotency_key: String,
}

impl Effect {
    /// The effect `kind` of `envelope` for `consumer`.
    pub fn of(consumer: &str, kind: &'static str, envelope: &Envelope) -> Self {
        Self {
            kind,
            aggregate_id: envelope.subject().to_owned(),
            event_id: envelope.id().to_owned(),
            idempotency_key: format!("{consumer}:{}:{kind}", envelope.id()),
        }
    }
}

/// An effect failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("effect {kind} failed: {message}")]
pub struct EffectError {
    /// The effect.
    pub kind: &'static str,
    /// What went wrong (no personal data).
    pub message: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
}

impl Classify for EffectError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Carries out effects.
pub trait Effects: Send + Sync {
    /// Carries out one effect.
    fn apply(&self, effect: Effect) -> impl Future<Output = Result<(), EffectError>> + Send;
}

impl<E: Effects> Effects for &E {
    fn apply(&self, effect: Effect) -> impl Future<Output = Result<(), EffectError>> + Send {
        (**self).apply(effect)
    }
}

/// Effects as structured logs: the outcome a person can follow in the function's log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogEffects;

impl Effects for LogEffects {
    async fn apply(&self, effect: Effect) -> Result<(), EffectError> {
        tracing::info!(
            effect = effect.kind,
            aggregate_id = %effect.aggregate_id,
            event_id = %effect.event_id,
            idempotency_key = %effect.idempotency_key,
            "effect"
        );
        Ok(())
    }
}

/// Effects kept in memory, for tests; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryEffects {
    state: Mutex<(Vec<Effect>, Vec<(String, bool)>)>,
}

impl MemoryEffects {
    /// Makes effects of the event `event_id` fail, retryably or not, until [`MemoryEffects::heal`].
    pub fn fail_event(&self, event_id: &str, retryable: bool) {
        self.lock().1.push((event_id.to_owned(), retryable));
    }

    /// Stops failing.
    pub fn heal(&self) {
        self.lock().1.clear();
    }

    /// Every effect applied so far, in order.
    pub fn applied(&self) -> Vec<Effect> {
        self.lock().0.clone()
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<Effect>, Vec<(String, bool)>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Effects for MemoryEffects {
    async fn apply(&self, effect: Effect) -> Result<(), EffectError> {
        let mut state = self.lock();
        if let Some((_, retryable)) = state.1.iter().find(|(id, _)| *id == effect.event_id) {
            return Err(EffectError { kind: effect.kind, message: "injected failure".into(), retryable: *retryable });
        }
        state.0.push(effect);
        Ok(())
    }
}
