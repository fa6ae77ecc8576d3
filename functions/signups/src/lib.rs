//! The signups consumer: `user.signed_up` → the profile is created, a welcome e-mail is sent, the signup is recorded.
//!
//! The handler decides which effects an event causes and asks the [`Effects`] port to carry them out, each with
//! a deterministic idempotency key; the port's adapter decides how (logged today, stores and providers later).

use tubes_shared::effects::{Effect, EffectError, Effects};
use tubes_shared::{Consumer, Envelope, Event, EventType};

/// The consumer's stable name.
pub const NAME: &str = "signups";

/// The effects of one `user.signed_up` event, in the order they are carried out.
pub const EFFECTS: [&str; 3] = ["profile.create", "email.welcome", "signup.record"];

/// The signups consumer over an effects port.
#[derive(Debug, Clone)]
pub struct Signups<E> {
    effects: E,
}

impl<E: Effects> Signups<E> {
    /// A consumer carrying out its effects through `effects`.
    pub fn new(effects: E) -> Self {
        Self { effects }
    }
}

impl<E: Effects> Consumer for Signups<E> {
    type Error = EffectError;

    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [EventType] {
        &[EventType::UserSignedUp]
    }

    async fn handle(&self, envelope: &Envelope) -> Result<(), EffectError> {
        if let Event::UserSignedUp(_) = envelope.event() {
            for kind in EFFECTS {
                self.effects.apply(Effect::of(NAME, kind, envelope)).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tubes_shared::effects::MemoryEffects;
    use tubes_shared::harness::LogDeadLetters;
    use tubes_shared::lambda_event::{kinesis_event, BatchSource, StreamRecord};
    use tubes_shared::{Harness, KinesisBatch};

    use super::*;

    fn batch(ids: &[&str]) -> KinesisBatch {
        let records: Vec<StreamRecord> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| StreamRecord {
                sequence_number: format!("{:056}", i + 1),
                partition_key: "usr_1".into(),
                data: serde_json::to_vec(&json!({
                    "specversion": "1.0", "id": id, "source": "/test", "type": "user.signed_up", "subject": "usr_1",
                    "time": "2026-11-22T10:00:00Z", "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
                }))
                .unwrap(),
                approximate_arrival_timestamp: 1_790_000_000.0,
            })
            .collect();
        let source = BatchSource {
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/events".into(),
            shard_id: "shardId-000000000000".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::123456789012:role/signups".into(),
        };
        serde_json::from_value(kinesis_event(&source, &records)).unwrap()
    }

    #[tokio::test]
    async fn carries_out_every_effect_with_deterministic_keys() {
        let effects = MemoryEffects::default();
        let harness = Harness::new(Signups::new(&effects), LogDeadLetters);
        let report = harness.run(batch(&["e1"])).await;
        assert_eq!(report.handled, 1);
        let applied = effects.applied();
        assert_eq!(applied.iter().map(|e| e.kind).collect::<Vec<_>>(), EFFECTS);
        assert!(applied.iter().all(|e| e.aggregate_id == "usr_1" && e.event_id == "e1"));
        assert_eq!(applied[0].idempotency_key, format!("signups:e1:{}", EFFECTS[0]));
    }

    #[tokio::test]
    async fn a_transient_failure_is_reported_for_redelivery() {
        let effects = MemoryEffects::default();
        effects.fail_event("e2", true);
        let harness = Harness::new(Signups::new(&effects), LogDeadLetters);
        let report = harness.run(batch(&["e1", "e2", "e3"])).await;
        let failed: Vec<_> =
            report.response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
        assert_eq!(failed, [format!("{:056}", 2)]);
        // e3 shares e2's key, so it waits for e2.
        assert_eq!((report.handled, report.held_back), (1, 1));
    }
}
