//! Packing: a batch's events go into as few records as the shards allow, each event reported on its own; and a
//! split or a merge between ingest's reading of the shards and its writing loses, doubles and reorders nothing as
//! consumers see the stream (a pack that lands on another shard is skipped there and written again).
// Test helpers outside `#[test]` functions may unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use tubes_contract::{codec, Envelope};
use tubes_ingest::{Config, FixedSources, Ingest, Sources};
use tubes_platform::publish::{hash_key, MemoryPublisher, Shard, ShardMap};

mod common;

use common::*;

const OPEN: &str = r#"{"demo": {"open": true, "event_types": ["*"], "ce_sources": ["*"]}}"#;

fn packing_ingest(publisher: &MemoryPublisher) -> Ingest<&MemoryPublisher> {
    let config = Config {
        max_body_bytes: 4 << 20,
        default_source: Some("demo".into()),
        ..Config::new("events")
    };
    Ingest::new(
        publisher,
        &config,
        Sources::<FixedSources>::fixed(OPEN, true).unwrap(),
    )
}

/// `n` sign-ups of `users` distinct users (each user's in order: `seq` says which).
fn batch(n: usize, users: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut e = signed_up();
            e["id"] = json!(format!("{tag}-{i}"));
            e["data"]["user_id"] = json!(format!("usr_{}", i % users));
            e["data"]["name"] = json!(format!("seq {i}"));
            e
        })
        .collect()
}

fn post(events: &[Value]) -> lambda_http::Request {
    request(
        Source::HttpV2,
        "POST",
        "/events",
        Some("application/cloudevents-batch+json"),
        &Value::Array(events.to_vec()).to_string(),
    )
}

fn shards(ids_and_bounds: &[(&str, u128, u128)]) -> ShardMap {
    ShardMap::new(
        ids_and_bounds
            .iter()
            .map(|&(id, start, end)| Shard {
                id: id.into(),
                start,
                end,
            })
            .collect(),
    )
}

/// What consumers see, per shard in write order: each record's events, except those of a pack meant for
/// another shard than the one it landed on (the consumer skips it).
fn seen_by_consumers(p: &MemoryPublisher) -> HashMap<String, Vec<Envelope>> {
    let mut seen: HashMap<String, Vec<Envelope>> = HashMap::new();
    for (record, shard) in p.written().iter().zip(p.placed()) {
        let events: Vec<Envelope> = match codec::unpack(&record.data) {
            Some(Ok(pack)) if pack.shard.is_some_and(|s| s != shard) => continue,
            Some(Ok(pack)) => pack
                .events
                .iter()
                .map(|e| codec::decode(e).unwrap())
                .collect(),
            _ => vec![codec::decode(&record.data).unwrap()],
        };
        seen.entry(shard).or_default().extend(events);
    }
    seen
}

/// Every event of `sent` seen exactly once, on the shard `map` puts its subject on, after every earlier event of
/// its subject.
fn assert_each_once_in_order_on_its_shard(p: &MemoryPublisher, sent: &[Value], map: &ShardMap) {
    let seen = seen_by_consumers(p);
    for (shard, events) in &seen {
        for e in events {
            let home = &map.shard_of(hash_key(e.subject())).unwrap().id;
            assert!(
                !sent.iter().any(|s| s["id"] == e.id()) || home == shard,
                "{} seen on {shard}, its subject's shard is {home}",
                e.id()
            );
        }
    }
    let all: Vec<&Envelope> = seen.values().flatten().collect();
    for s in sent {
        let copies = all.iter().filter(|e| e.id() == s["id"]).count();
        assert_eq!(copies, 1, "{} seen {copies} times", s["id"]);
    }
    // Per subject, the events of `sent` in the order they were sent.
    for events in seen.values() {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for e in events {
            let Some(index) = sent.iter().position(|s| s["id"] == e.id()) else {
                continue;
            };
            if let Some(before) = last.insert(e.subject(), index) {
                assert!(before < index, "{}: {before} after {index}", e.subject());
            }
        }
    }
}

#[tokio::test]
async fn a_batch_is_packed_per_shard_and_each_event_reported_with_its_record() {
    let p = MemoryPublisher::default();
    let half = u128::MAX / 2;
    let map = shards(&[("shard-a", 0, half), ("shard-b", half + 1, u128::MAX)]);
    p.reshard(map.clone());
    let sent = batch(100, 100, "one");
    let response = packing_ingest(&p).handle(post(&sent)).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // ~330-byte events, 8 KiB packs: about 24 a record, on two shards.
    let records = p.written().len();
    assert!((2..=10).contains(&records), "{records} records");
    assert!(p.written().iter().all(|r| codec::is_packed(&r.data)));
    assert_each_once_in_order_on_its_shard(&p, &sent, &map);
    // Each event is reported accepted with the shard and sequence number of the record that carries it.
    let body = body_json(&response);
    let accepted = body["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 100);
    for (a, s) in accepted.iter().zip(&sent) {
        let subject = s["data"]["user_id"].as_str().unwrap();
        assert_eq!(
            a["shard_id"],
            map.shard_of(hash_key(subject)).unwrap().id.as_str()
        );
    }
    let distinct: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|a| a["sequence_number"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), records);
    assert_eq!(p.listed(), 1, "the shards are read once, then kept");
}

#[tokio::test]
async fn a_split_and_a_merge_under_a_stale_map_lose_double_and_reorder_nothing() {
    let p = MemoryPublisher::default();
    let ingest = packing_ingest(&p);
    // Ingest reads the one shard.
    let first = batch(30, 10, "before");
    assert_eq!(
        ingest.handle(post(&first)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(p.listed(), 1);

    // The shard splits: ingest's map still says shard 0; its packs land on the children.
    let half = u128::MAX / 2;
    let split = shards(&[("shard-1", 0, half), ("shard-2", half + 1, u128::MAX)]);
    p.reshard(split.clone());
    let second = batch(60, 20, "split");
    let before = p.written().len();
    assert_eq!(
        ingest.handle(post(&second)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        p.listed(),
        2,
        "a pack on an unexpected shard made ingest read the shards again"
    );
    let misplaced = p.written()[before..]
        .iter()
        .zip(&p.placed()[before..])
        .filter(|(r, shard)| {
            codec::unpack(&r.data)
                .is_some_and(|u| u.unwrap().shard.is_some_and(|s| s != shard.as_str()))
        })
        .count();
    assert!(misplaced > 0, "the stale map sent packs to the wrong shard");
    assert_each_once_in_order_on_its_shard(&p, &second, &split);

    // The children merge: the map names shards that are closed now.
    let merged = shards(&[("shard-3", 0, u128::MAX)]);
    p.reshard(merged.clone());
    let third = batch(60, 20, "merge");
    assert_eq!(
        ingest.handle(post(&third)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(p.listed(), 3);
    assert_each_once_in_order_on_its_shard(&p, &third, &merged);
}

#[tokio::test]
async fn packing_off_writes_a_record_per_event() {
    let p = MemoryPublisher::default();
    let config = Config {
        pack_max_bytes: 0,
        max_body_bytes: 4 << 20,
        default_source: Some("demo".into()),
        ..Config::new("events")
    };
    let ingest = Ingest::new(
        &p,
        &config,
        Sources::<FixedSources>::fixed(OPEN, true).unwrap(),
    );
    let sent = batch(20, 5, "plain");
    assert_eq!(
        ingest.handle(post(&sent)).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(p.written().len(), 20);
    assert!(p.written().iter().all(|r| !codec::is_packed(&r.data)));
    assert_eq!(p.listed(), 0, "no shard map needed");
}
