use std::collections::BTreeMap;

use serde_json::{json, Value};
use tubes_platform::archive::{self, MemoryObjects};
use tubes_platform::lambda_event::batch_of;

use super::*;

/// Lambda's own example Kinesis event: two records that are no event ("Hello World").
const FIXTURE: &str = include_str!("../../../tests/fixtures/kinesis-event.json");

fn event(i: usize, ty: &str, subject: &str) -> Value {
    let data = match ty {
        "account.opened" => {
            json!({"account_id": subject, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"})
        }
        _ => {
            json!({"user_id": subject, "email": "ada@example.com", "name": "Ada", "marketing_opt_in": false,
                    "signed_up_at": "2026-11-22T10:00:00Z"})
        }
    };
    json!({"specversion": "1.0", "id": format!("e{i}"), "source": "/shop", "type": ty, "subject": subject,
           "time": "2026-11-22T10:00:00Z", "data": data})
}

fn mixed_batch() -> KinesisBatch {
    let events: Vec<Value> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                event(i, "account.opened", &format!("acc_{}", i % 4))
            } else {
                event(i, "user.signed_up", &format!("usr_{}", i % 5))
            }
        })
        .collect();
    batch_of(&events)
}

/// Every line of every object, read back: (object key, sequence number, event id or none).
fn lines(store: &MemoryObjects) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for (key, body) in store.objects() {
        let text = archive::decompress(&body).unwrap();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record = archive::parse_line(line).unwrap();
            let id = record.content.ok().map(|e| e.id().to_owned());
            out.push((key.clone(), record.at.sequence_number, id));
        }
    }
    out
}

#[tokio::test]
async fn a_batch_becomes_one_object_per_type_and_hour_with_every_record_once_in_shard_order() {
    let archive = Archive::new(MemoryObjects::default());
    let report = archive.run(&mixed_batch()).await;
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(
        (report.records, report.objects, report.undecodable),
        (30, 2, 0)
    );
    let keys: Vec<String> = archive.store().objects().into_keys().collect();
    let first = format!("{:056}", 1);
    assert_eq!(
        keys,
        [
            format!("events/account.opened/2026/11/18/11/shardId-000000000000-{first}.ndjson.gz"),
            format!("events/user.signed_up/2026/11/18/11/shardId-000000000000-{first}.ndjson.gz"),
        ]
    );
    let lines = lines(archive.store());
    assert_eq!(lines.len(), 30, "every record, once");
    for key in &keys {
        let sequences: Vec<&String> = lines.iter().filter(|l| &l.0 == key).map(|l| &l.1).collect();
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "shard order in {key}"
        );
    }
    let ids: std::collections::BTreeSet<_> = lines.iter().filter_map(|l| l.2.clone()).collect();
    assert_eq!(ids.len(), 30);
}

#[tokio::test]
async fn records_that_are_no_event_are_kept_apart_with_their_bytes() {
    let batch: KinesisBatch = serde_json::from_str(FIXTURE).unwrap();
    let archive = Archive::new(MemoryObjects::default());
    let report = archive.run(&batch).await;
    // The two arrived on different days: two objects.
    assert_eq!(
        (report.records, report.undecodable, report.objects),
        (2, 2, 2)
    );
    let (key, body) = archive.store().objects().into_iter().next().unwrap();
    assert!(key.starts_with("events/_undecodable/2016/12/02/"), "{key}");
    let text = archive::decompress(&body).unwrap();
    let first = archive::parse_line(text.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first.content.unwrap_err().raw, b"Hello World");
}

#[tokio::test]
async fn a_batch_delivered_again_rewrites_the_same_objects_with_the_same_bytes() {
    let archive = Archive::new(MemoryObjects::default());
    archive.run(&mixed_batch()).await;
    let once: BTreeMap<String, Vec<u8>> = archive.store().objects();
    archive.run(&mixed_batch()).await;
    assert_eq!(archive.store().objects(), once);
    assert_eq!(archive.store().puts(), 4);
    assert_eq!(lines(archive.store()).len(), 30);
}

#[tokio::test]
async fn a_failed_write_fails_the_whole_batch_from_its_first_record_and_the_retry_completes_it() {
    let archive = Archive::new(MemoryObjects::default());
    archive.store().fail_after(Some(1));
    let report = archive.run(&mixed_batch()).await;
    let failed: Vec<_> = report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        [format!("{:056}", 1)],
        "redelivered from the first record"
    );
    assert!(report.error.is_some() && report.lag_ms.is_none());
    assert_eq!(archive.store().objects().len(), 1, "one object made it");

    archive.store().fail_after(None);
    let report = archive.run(&mixed_batch()).await;
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(
        lines(archive.store()).len(),
        30,
        "each record once, none twice"
    );
}

#[tokio::test]
async fn an_empty_batch_writes_nothing() {
    let archive = Archive::new(MemoryObjects::default());
    let report = archive.run(&KinesisBatch::default()).await;
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(archive.store().puts(), 0);
}
