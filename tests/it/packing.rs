//! Packing on the Kinesis emulator: ingest packs a batch's events per shard with the shard map it listed, the
//! stream splits and then merges while ingest still holds its old map, and consumers reading every shard (a parent
//! before its children, as the event source mapping does) see each event exactly once, each subject's in the
//! order it was sent.

use std::collections::{BTreeMap, HashMap, HashSet};

use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use tubes_contract::codec;
use tubes_ingest::Ingest;
use tubes_platform::lambda_event::{kinesis_event, KinesisBatch};
use tubes_platform::KinesisPublisher;
use tubes_tests::{http_v2_post, open_ingest_config, open_sources, until_resharded, KinesisLocal};

const STREAM: &str = "packing";

/// `n` sign-ups over `users` users; the name says the event's place in its user's order.
fn batch(n: usize, users: usize, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let user = format!("usr_{tag}_{}", i % users);
            json!({"specversion": "1.0", "id": format!("{tag}-{i}"), "source": "/packing",
                   "type": "user.signed_up",
                   "data": {"user_id": user, "email": "a@b.co", "name": format!("{}", i / users),
                            "signed_up_at": "2026-12-04T10:00:00Z"}})
        })
        .collect()
}

#[tokio::test]
async fn packs_survive_a_split_and_a_merge_under_a_stale_map_each_event_once_in_order() {
    let kinesis = KinesisLocal::start().await;
    let arn = kinesis.create_stream(STREAM, 1).await;
    let client = kinesis.client();
    let ingest = Ingest::new(
        KinesisPublisher::new(kinesis.client(), STREAM),
        &open_ingest_config(STREAM),
        open_sources(),
    );
    let post = |events: &[Value]| {
        http_v2_post(
            "application/cloudevents-batch+json",
            &Value::Array(events.to_vec()).to_string(),
        )
    };
    let mut sent: Vec<Value> = Vec::new();

    // One shard: ingest lists it and packs the whole batch.
    let first = batch(120, 30, "a");
    assert_eq!(
        ingest.handle(post(&first)).await.status(),
        StatusCode::ACCEPTED
    );
    sent.extend(first);

    // The shard splits in the middle of the hash key range; ingest still maps everything to the parent.
    let parent = until_resharded(&client, STREAM, 1).await.remove(0);
    client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(&parent)
        .new_starting_hash_key((u128::MAX / 2 + 1).to_string())
        .send()
        .await
        .unwrap();
    let children = until_resharded(&client, STREAM, 2).await;
    let second = batch(120, 30, "b");
    assert_eq!(
        ingest.handle(post(&second)).await.status(),
        StatusCode::ACCEPTED
    );
    sent.extend(second);

    // The children merge; ingest's map names two closed shards.
    client
        .merge_shards()
        .stream_name(STREAM)
        .shard_to_merge(&children[0])
        .adjacent_shard_to_merge(&children[1])
        .send()
        .await
        .unwrap();
    let merged = until_resharded(&client, STREAM, 1).await.remove(0);
    let third = batch(120, 30, "c");
    assert_eq!(
        ingest.handle(post(&third)).await.status(),
        StatusCode::ACCEPTED
    );
    sent.extend(third);

    // Read as consumers do: the parent, then its children, then the merged shard.
    let shards: BTreeMap<String, _> = kinesis
        .read_all(STREAM, &arn)
        .await
        .into_iter()
        .map(|(source, records)| (source.shard_id.clone(), (source, records)))
        .collect();
    let generations = [vec![parent.clone()], children.clone(), vec![merged.clone()]];
    let (mut records, mut misplaced_packs) = (0, 0);
    let mut seen: Vec<(String, String, String)> = Vec::new(); // (shard, subject, id)
    for generation in &generations {
        for shard in generation {
            let (source, shard_records) = &shards[shard];
            records += shard_records.len();
            misplaced_packs += shard_records
                .iter()
                .filter(|r| {
                    codec::unpack(&r.data)
                        .and_then(Result::ok)
                        .is_some_and(|p| p.shard.is_some_and(|s| s != shard))
                })
                .count();
            let decoded = KinesisBatch::from_event(&kinesis_event(source, shard_records)).unwrap();
            for r in decoded.records {
                let e = r.envelope.unwrap();
                seen.push((shard.clone(), e.subject().to_owned(), e.id().to_owned()));
            }
        }
    }
    assert!(
        misplaced_packs >= 2,
        "the stale map sent packs astray after the split and after the merge"
    );
    assert!(
        records < sent.len() / 4,
        "{records} records for {} events",
        sent.len()
    );

    // Each event exactly once.
    let ids: HashSet<&str> = seen.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "an event was seen twice");
    assert_eq!(seen.len(), sent.len(), "every event seen");
    // Each subject's events in the order sent, and each generation's on one shard only.
    let mut per_subject: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for (shard, subject, id) in &seen {
        per_subject.entry(subject).or_default().push((shard, id));
    }
    for s in &sent {
        let subject = s["data"]["user_id"].as_str().unwrap();
        let order: Vec<&str> = sent
            .iter()
            .filter(|e| e["data"]["user_id"] == subject)
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let got: Vec<&str> = per_subject[subject].iter().map(|(_, id)| *id).collect();
        assert_eq!(got, order, "{subject}");
    }
}
