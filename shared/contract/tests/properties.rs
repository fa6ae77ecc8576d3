//! Properties of the edge parser, the validator and the codec over arbitrary input: never a panic, every
//! rejection names a stable code, and whatever is accepted survives the record codec unchanged.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tubes_contract::{codec, Envelope};

/// Any JSON value, a few levels deep, with keys drawn partly from the envelope's own vocabulary so that
/// generated objects reach past the first check.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::from),
        Just(json!("1.0")),
        Just(json!("payment.received")),
        Just(json!("ada@example.com")),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "dataschema",
            "data",
            "payment_id",
            "account_id",
            "amount",
            "currency",
            "user_id",
            "email",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

/// A valid event: the starting point of [`mutated_event`].
fn base_event() -> Value {
    json!({
        "specversion": "1.0",
        "id": "evt_1",
        "source": "/bank/web",
        "type": "payment.received",
        "subject": "acc_1",
        "time": "2026-11-22T10:00:00Z",
        "data": {"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250, "currency": "EUR",
                 "payer_email": "ada@example.com"}
    })
}

/// A valid event with one field replaced by an arbitrary value (or removed).
fn mutated_event() -> impl Strategy<Value = Value> {
    let base = base_event();
    (key(), any_json(), any::<bool>(), any::<bool>()).prop_map(move |(k, v, in_data, remove)| {
        let mut event = base.clone();
        let target = if in_data {
            event["data"].as_object_mut().unwrap()
        } else {
            event.as_object_mut().unwrap()
        };
        if remove {
            target.remove(&k);
        } else {
            target.insert(k, v);
        }
        event
    })
}

fn check(bytes: &[u8]) {
    let now = OffsetDateTime::now_utc();
    match Envelope::parse(bytes, now) {
        Ok(envelope) => {
            // Accepted: the record codec round-trips it, and the consumer-side decoder agrees.
            let record = codec::encode(&envelope).unwrap();
            let back = codec::decode(&record.data).unwrap();
            assert_eq!(back.id(), envelope.id());
            assert_eq!(back.event(), envelope.event());
            assert_eq!(record.partition_key, envelope.subject());
        }
        Err(violations) => {
            assert!(!violations.as_slice().is_empty());
            for v in violations.as_slice() {
                assert!(!v.code.as_str().is_empty());
                assert!(!v.message.is_empty());
                if let Some(field) = &v.field {
                    assert!(field.starts_with('/'), "{field} is not a JSON pointer");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        check(value.to_string().as_bytes());
    }

    #[test]
    fn mutated_events_are_accepted_or_named(event in mutated_event()) {
        check(event.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_record_data_never_panics_the_consumer_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode(&bytes);
    }
}

#[test]
fn the_event_that_is_mutated_starts_valid() {
    let bytes = base_event().to_string();
    assert!(Envelope::parse(bytes.as_bytes(), OffsetDateTime::now_utc()).is_ok());
}
