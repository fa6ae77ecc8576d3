//! The event store on moto's S3: the archive function's objects as S3 holds them, a batch delivered again, and a
//! batch whose writes fail while the store is down.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use tubes_archive::Archive;
use tubes_platform::archive::S3Objects;
use tubes_platform::lambda_event::batch_of;
use tubes_platform::KinesisBatch;
use tubes_tests::{archived, Moto};

fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let account = format!("acc_{}", i % 7);
            if i % 2 == 0 {
                json!({"specversion": "1.0", "id": format!("cr_{i}"), "source": "/bank", "type": "account.credited",
                       "subject": account, "time": "2026-11-28T10:00:00Z",
                       "data": {"account_id": account, "credit_id": format!("cr_{i}"), "amount": 100,
                                "currency": "EUR", "credited_at": "2026-11-28T10:00:00Z"}})
            } else {
                json!({"specversion": "1.0", "id": format!("op_{i}"), "source": "/bank", "type": "account.opened",
                       "subject": account, "time": "2026-11-28T10:00:00Z",
                       "data": {"account_id": account, "currency": "EUR", "opened_at": "2026-11-28T09:00:00Z"}})
            }
        })
        .collect()
}

/// A batch of `n` events and one record that is no event.
fn batch(n: usize) -> KinesisBatch {
    let mut events = events(n);
    events.push(json!({"not": "an event"}));
    batch_of(&events)
}

/// An S3 client that gives up within seconds, as the function's does ([`tubes_platform::runtime::Env`]).
fn impatient_s3(moto: &Moto) -> aws_sdk_s3::Client {
    let config = moto
        .s3()
        .config()
        .to_builder()
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test]
async fn every_record_is_kept_once_and_a_batch_delivered_again_leaves_one_copy() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket("archive").send().await.unwrap();
    let archive = Archive::new(S3Objects::new(s3.clone(), "archive"));

    let report = archive.run(&batch(200)).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(report.response.batch_item_failures.is_empty());
    let first = archived(&s3, "archive").await;
    assert_eq!(first.len(), 201, "every record, the undecodable one too");
    let objects: HashSet<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(objects.len(), 3, "one object per type: {objects:?}");
    assert!(objects
        .iter()
        .any(|k| k.starts_with("events/_undecodable/")));
    let ids: HashSet<String> = first
        .iter()
        .filter_map(|(_, r)| r.content.as_ref().ok().map(|e| e.id().to_owned()))
        .collect();
    assert_eq!(ids.len(), 200);

    // Lambda delivers the same batch again (a timeout after the writes, say): the same objects, rewritten.
    let again = archive.run(&batch(200)).await;
    assert!(again.response.batch_item_failures.is_empty());
    let second = archived(&s3, "archive").await;
    assert_eq!(second.len(), 201, "no record twice");
    let sequences: HashSet<&str> = second
        .iter()
        .map(|(_, r)| r.at.sequence_number.as_str())
        .collect();
    assert_eq!(sequences.len(), 201);
}

#[tokio::test]
async fn a_batch_that_cannot_be_written_is_failed_whole_and_completes_when_the_store_is_back() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket("archive").send().await.unwrap();
    let archive = Archive::new(S3Objects::new(impatient_s3(&moto), "archive"));

    moto.pause();
    let report = archive.run(&batch(50)).await;
    moto.resume();
    let failed: Vec<String> = report
        .response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failed,
        [format!("{:056}", 1)],
        "the whole batch, from its first record"
    );
    assert!(report.error.unwrap().0.contains("PutObject"));

    let report = archive.run(&batch(50)).await;
    assert!(
        report.response.batch_item_failures.is_empty(),
        "{:?}",
        report.error
    );
    let lines = archived(&s3, "archive").await;
    assert_eq!(lines.len(), 51, "each record once");
}
