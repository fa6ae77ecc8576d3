//! The effects port: what a consumer does to the world, as named effects with deterministic keys.
//!
//! Consumers decide *which* effects an event causes; an adapter carries them out. Today's adapters log them
//! ([`LogEffects`]) or keep them for tests ([`MemoryEffects`]); stores and e-mail providers plug in behind the
//! same trait. Each effect carries an idempotency key derived from the consumer, the event id and the effect,
//! so a redelivered record asks for the same effect under the same key.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::catalogue::EventType;
use crate::envelope::Envelope;
use crate::harness::{Classify, Consumer};

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

/// The simplest consumer: every event of its types causes the same effects, in order, each through the port
/// with its idempotency key. A consumer whose effects depend on the event's data implements [`Consumer`] itself.
#[derive(Debug, Clone)]
pub struct Plan<E> {
    name: &'static str,
    subscriptions: &'static [EventType],
    effects: &'static [&'static str],
    port: E,
}

impl<E: Effects> Plan<E> {
    /// A consumer named `name` that answers each event of `subscriptions` with `effects` through `port`.
    pub fn new(
        name: &'static str,
        subscriptions: &'static [EventType],
        effects: &'static [&'static str],
        port: E,
    ) -> Self {
        Self {
            name,
            subscriptions,
            effects,
            port,
        }
    }
}

impl<E: Effects> Consumer for Plan<E> {
    type Error = EffectError;

    fn name(&self) -> &'static str {
        self.name
    }

    fn subscriptions(&self) -> &'static [EventType] {
        self.subscriptions
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), EffectError> {
        // Effects run in order and stop at the first failure; on redelivery the earlier ones are asked for
        // again under the same keys, so the adapter can recognise them.
        for &kind in self.effects {
            self.port
                .apply(Effect::of(self.name, kind, envelope))
                .await?;
        }
        Ok(())
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
    state: Mutex<MemoryState>,
}

/// Applied effects, and the events whose effects fail (with whether retryably).
type MemoryState = (Vec<Effect>, Vec<(String, bool)>);

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

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Effects for MemoryEffects {
    async fn apply(&self, effect: Effect) -> Result<(), EffectError> {
        let mut state = self.lock();
        if let Some((_, retryable)) = state.1.iter().find(|(id, _)| *id == effect.event_id) {
            return Err(EffectError {
                kind: effect.kind,
                message: "injected failure".into(),
                retryable: *retryable,
            });
        }
        state.0.push(effect);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::harness::{Harness, LogDeadLetters};
    use crate::lambda_event::batch_of;

    const EFFECTS: &[&str] = &["profile.create", "email.welcome"];

    fn signup(id: &str) -> serde_json::Value {
        json!({"specversion": "1.0", "id": id, "source": "/test", "type": "user.signed_up", "subject": "usr_1", "time": "2026-11-22T10:00:00Z",
               "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada",
                        "signed_up_at": "2026-11-22T10:00:00Z"}})
    }

    fn plan(effects: &MemoryEffects) -> Plan<&MemoryEffects> {
        Plan::new("signups", &[EventType::UserSignedUp], EFFECTS, effects)
    }

    #[tokio::test]
    async fn a_plan_carries_out_every_effect_in_order_with_deterministic_keys() {
        let effects = MemoryEffects::default();
        let report = Harness::new(plan(&effects), LogDeadLetters)
            .run(batch_of(&[signup("e1")]))
            .await;
        assert_eq!(report.handled, 1);
        let applied = effects.applied();
        assert_eq!(applied.iter().map(|e| e.kind).collect::<Vec<_>>(), EFFECTS);
        assert!(applied
            .iter()
            .all(|e| e.aggregate_id == "usr_1" && e.event_id == "e1"));
        assert_eq!(applied[1].idempotency_key, "signups:e1:email.welcome");
        // A redelivery asks for the same effects under the same keys.
        Harness::new(plan(&effects), LogDeadLetters)
            .run(batch_of(&[signup("e1")]))
            .await;
        let again = effects.applied();
        assert_eq!(again[2..], applied[..]);
    }

    #[tokio::test]
    async fn a_transient_failure_is_reported_and_holds_back_its_key() {
        let effects = MemoryEffects::default();
        effects.fail_event("e2", true);
        let batch = batch_of(&[signup("e1"), signup("e2"), signup("e3")]);
        let report = Harness::new(plan(&effects), LogDeadLetters)
            .run(batch)
            .await;
        let failed: Vec<_> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(failed, [format!("{:056}", 2)]);
        assert_eq!(
            (report.handled, report.held_back),
            (1, 1),
            "e3 shares e2's key, so it waits"
        );
    }

    #[tokio::test]
    async fn a_permanent_failure_is_dead_lettered_and_the_batch_goes_on() {
        let effects = MemoryEffects::default();
        effects.fail_event("e1", false);
        let report = Harness::new(plan(&effects), LogDeadLetters)
            .run(batch_of(&[signup("e1"), signup("e2")]))
            .await;
        assert!(report.response.batch_item_failures.is_empty());
        assert_eq!((report.dead_lettered, report.handled), (1, 1));
    }
}
