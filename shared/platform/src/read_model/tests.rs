use serde::{Deserialize, Serialize};
use serde_json::json;
use tubes_contract::Event;

use super::*;

/// A tiny model: per user, the names it saw, in order.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Names {
    names: Vec<String>,
}

impl Fold for Names {
    const MODEL: &'static str = "names";

    fn aggregate(envelope: &Envelope) -> Option<&str> {
        match envelope.event() {
            Event::UserSignedUp(s) => Some(&s.user_id),
            _ => None,
        }
    }

    fn apply(&mut self, envelope: &Envelope) {
        if let Event::UserSignedUp(s) = envelope.event() {
            self.names.push(s.name.clone());
        }
    }
}

fn signup(id: &str, user: &str, name: &str) -> Envelope {
    let bytes = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/web", "type": "user.signed_up", "subject": user,
        "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": user, "email": "ada@example.com", "name": name, "signed_up_at": "2026-11-22T10:00:00Z"}}))
    .unwrap();
    Envelope::decode(&bytes).unwrap()
}

fn seq(n: u64) -> SequenceNumber {
    SequenceNumber::from(format!("4959{n:052}"))
}

async fn names(projector: &Projector<MemoryReadModels>, user: &str) -> Vec<String> {
    let stored = projector
        .store()
        .get(&document_key("names", DEFAULT_VERSION, user))
        .await
        .unwrap()
        .unwrap();
    serde_json::from_str::<Names>(&stored.doc).unwrap().names
}

async fn project(projector: &Projector<MemoryReadModels>, e: &Envelope, n: u64) -> Projected {
    let s = seq(n);
    let position = Position {
        partition_key: e.subject(),
        sequence_number: &s,
    };
    projector.project::<Names>(e, position).await.unwrap()
}

#[tokio::test]
async fn events_apply_once_in_order_and_redeliveries_are_recognised_by_their_sequence() {
    let projector = Projector::new(MemoryReadModels::default());
    assert_eq!(
        project(&projector, &signup("e1", "u1", "a"), 1).await,
        Projected::Applied
    );
    assert_eq!(
        project(&projector, &signup("e2", "u1", "b"), 2).await,
        Projected::Applied
    );
    // Redelivered (Lambda retried the batch): skipped by order alone.
    assert_eq!(
        project(&projector, &signup("e1", "u1", "a"), 1).await,
        Projected::AlreadyApplied
    );
    assert_eq!(
        project(&projector, &signup("e2", "u1", "b"), 2).await,
        Projected::AlreadyApplied
    );
    // The same event on the stream a second time (a blind resend): a later record, the same effect.
    assert_eq!(
        project(&projector, &signup("e2", "u1", "b"), 3).await,
        Projected::Duplicate
    );
    assert_eq!(
        project(&projector, &signup("e3", "u1", "c"), 4).await,
        Projected::Applied
    );
    assert_eq!(names(&projector, "u1").await, ["a", "b", "c"]);
    let stored = projector
        .store()
        .get(&document_key("names", DEFAULT_VERSION, "u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.applied, 3);
    assert_eq!(stored.seq, padded(&seq(4)));
}

#[tokio::test]
async fn a_replayed_record_is_placed_by_its_original_sequence() {
    let projector = Projector::new(MemoryReadModels::default());
    project(&projector, &signup("e1", "u1", "a"), 10).await;
    // A replay puts the event on the stream again: a new record (seq 50) that names the original (10).
    let replayed = signup("e1", "u1", "a").replayed("rpl_1", seq(10).as_str());
    assert_eq!(
        project(&projector, &replayed, 50).await,
        Projected::AlreadyApplied
    );
    // Into a fresh version (a rebuild) the same replay applies.
    let fresh = projector
        .project_into::<Names>("v2", &replayed, &seq(10))
        .await
        .unwrap();
    assert_eq!(fresh, Projected::Applied);
    assert_eq!(names(&projector, "u1").await, ["a"]);
}

#[tokio::test]
async fn sequence_numbers_of_different_lengths_order_by_value() {
    let projector = Projector::new(MemoryReadModels::default());
    let short = SequenceNumber::from("99");
    let long = SequenceNumber::from("100");
    let e = signup("e1", "u1", "a");
    assert_eq!(
        projector
            .project_into::<Names>("v1", &e, &short)
            .await
            .unwrap(),
        Projected::Applied
    );
    let later = signup("e2", "u1", "b");
    assert_eq!(
        projector
            .project_into::<Names>("v1", &later, &long)
            .await
            .unwrap(),
        Projected::Applied,
        "100 comes after 99"
    );
}

#[tokio::test]
async fn the_live_version_is_what_the_pointer_names() {
    let store = MemoryReadModels::default();
    store
        .set_pointer(
            "names",
            &Pointer {
                live: "v7".into(),
                paused: false,
            },
        )
        .await
        .unwrap();
    let projector = Projector::new(&store);
    assert_eq!(projector.live_version("names").await.unwrap(), "v7");
    let s = seq(1);
    let e = signup("e1", "u1", "a");
    let position = Position {
        partition_key: "u1",
        sequence_number: &s,
    };
    projector.project::<Names>(&e, position).await.unwrap();
    assert!(store.all().contains_key("names#v7#u1"));
    let models = ReadModels::new(&store);
    let doc = models.document("names", "u1").await.unwrap().unwrap();
    assert_eq!(doc.version, "v7");
    assert!(models.document("names", "u2").await.unwrap().is_none());
}

#[tokio::test]
async fn events_the_model_does_not_look_at_change_nothing() {
    let projector = Projector::new(MemoryReadModels::default());
    let bytes = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": "x", "source": "/bank", "type": "account.opened", "subject": "acc_1",
        "time": "2026-11-22T10:00:00Z",
        "data": {"account_id": "acc_1", "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}}))
    .unwrap();
    let e = Envelope::decode(&bytes).unwrap();
    assert_eq!(project(&projector, &e, 1).await, Projected::Ignored);
    assert!(projector.store().all().is_empty());
}

#[tokio::test]
async fn while_a_switch_pauses_a_model_writers_are_retried_and_readers_read_on() {
    let store = MemoryReadModels::default();
    let projector = Projector::new(&store);
    let s = seq(1);
    let position = Position {
        partition_key: "u1",
        sequence_number: &s,
    };
    projector
        .project::<Names>(&signup("e1", "u1", "a"), position)
        .await
        .unwrap();
    let paused = Pointer {
        live: DEFAULT_VERSION.into(),
        paused: true,
    };
    store.set_pointer("names", &paused).await.unwrap();
    // A fresh process (no cached pointer) sees the pause at once.
    let writer = Projector::new(&store);
    let s2 = seq(2);
    let err = writer
        .project::<Names>(
            &signup("e2", "u1", "b"),
            Position {
                partition_key: "u1",
                sequence_number: &s2,
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable() && err.dependency().is_some(), "{err}");
    let readers = ReadModels::new(&store);
    assert!(readers.document("names", "u1").await.unwrap().is_some());
    let docs = store.documents("names", DEFAULT_VERSION).await.unwrap();
    assert_eq!(docs.keys().collect::<Vec<_>>(), ["u1"]);
}
