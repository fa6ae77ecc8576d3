//! Packing a request's events into fewer records, per shard, as the KPL aggregates: Kinesis bills on-demand data
//! per record rounded up to 1 KiB and takes at most 1,000 records/s per shard, so small events sent one per
//! record pay for bytes they do not use and hit the record cap long before the 1 MiB/s one.
//!
//! **Why per shard, and how order survives.** Events of one partition key must reach consumers in order. Ingest
//! groups a request's events by the shard the stream's map says their key goes to, keeps each group in request
//! order, and cuts it into packs of at most `max_bytes` ([`tubes_contract::codec::pack`]). Every pack of a group
//! carries the same partition key (the group's first event's), so Kinesis puts them all on that shard, and
//! [`crate::write`] writes them in rounds by partition key: a group's second pack goes only once its first is
//! acknowledged. Packing per key instead would be simpler but would pack almost nothing: a batch usually spans
//! many subjects.
//!
//! **Resharding.** A split or a merge makes the map stale: a pack may then land on a shard other than the one it
//! names. `PutRecords` answers each record's shard, so ingest sees it, reads the map again and writes those
//! events again where they belong before it answers; consumers skip a pack whose shard is not theirs
//! ([`tubes_platform::lambda_event::KinesisBatch::misplaced`]), so its events count once, on their own shard,
//! after every earlier event of their keys (a closed shard is read to its end before its children).
//!
//! A group of one event is written as it is (a plain record under its own key): packing it saves nothing.

use tubes_contract::codec::{self, MAX_RECORD_BYTES};
use tubes_contract::{EventType, Record};
use tubes_platform::publish::{hash_key, ShardMap};

/// At most this many events go in one pack, whatever their size: a pack is retried whole, and each of its events
/// then costs a consumer an idempotency read.
pub const MAX_PACK_EVENTS: usize = 100;

/// A record to write, and the request's events it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// What to write.
    pub record: Record,
    /// Indices of the events it carries, in order.
    pub members: Vec<usize>,
    /// The shard a pack is meant for (`None`: a plain record, which Kinesis routes by its own key).
    pub shard: Option<String>,
}

/// The records for `events` (each encoded alone, with its type), packed per shard of `map` up to `max_bytes`
/// (see the module docs). Every event is in exactly one record; records of one shard keep request order.
pub fn pack(events: &[(EventType, &Record)], map: &ShardMap, max_bytes: usize) -> Vec<Packed> {
    // Groups in order of their first event; an event whose hash the map does not cover goes alone.
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, (_, record)) in events.iter().enumerate() {
        let shard = map
            .shard_of(hash_key(&record.partition_key))
            .map(|s| s.id.as_str());
        match groups
            .iter_mut()
            .find(|(s, _)| shard.is_some() && *s == shard)
        {
            Some((_, members)) => members.push(i),
            None => groups.push((shard, vec![i])),
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (shard, members) in groups {
        match (shard, members.as_slice()) {
            (Some(shard), [_, _, ..]) => pack_group(events, shard, &members, max_bytes, &mut out),
            _ => out.extend(members.into_iter().map(|i| Packed {
                record: events[i].1.clone(),
                members: vec![i],
                shard: None,
            })),
        }
    }
    out
}

/// Cuts one shard's events into packs under the group's partition key.
fn pack_group(
    events: &[(EventType, &Record)],
    shard: &str,
    members: &[usize],
    max_bytes: usize,
    out: &mut Vec<Packed>,
) {
    let lane = events[members[0]].1.partition_key.as_str();
    // The pack's size as it grows (`codec::packed_size`, kept up to date instead of recomputed per event).
    let alone = |ty: EventType, record: &Record| {
        codec::packed_size(&[record], &[ty], shard) - record.partition_key.len() + lane.len()
    };
    let (mut current, mut types, mut size): (Vec<usize>, Vec<EventType>, usize) =
        (Vec::new(), Vec::new(), 0);
    let flush = |current: &mut Vec<usize>, types: &mut Vec<EventType>, out: &mut Vec<Packed>| {
        if current.is_empty() {
            return;
        }
        let items: Vec<(EventType, &Record)> = current.iter().map(|&i| events[i]).collect();
        out.push(Packed {
            record: codec::pack(&items, shard, lane),
            members: std::mem::take(current),
            shard: Some(shard.to_owned()),
        });
        types.clear();
    };
    for &i in members {
        let (ty, record) = events[i];
        if !current.is_empty() {
            let grown = size
                + record.data.len()
                + 1
                + if types.contains(&ty) {
                    0
                } else {
                    ty.as_str().len() + 3
                };
            if grown <= max_bytes && current.len() < MAX_PACK_EVENTS {
                current.push(i);
                if !types.contains(&ty) {
                    types.push(ty);
                }
                size = grown;
                continue;
            }
            flush(&mut current, &mut types, out);
        }
        size = alone(ty, record);
        if size > MAX_RECORD_BYTES {
            // Too large to wrap (an event near Kinesis's own limit): it goes plain, but under the lane's key, so
            // that it cannot overtake an earlier pack of its subject (the lane's records go in rounds).
            out.push(Packed {
                record: Record {
                    partition_key: lane.to_owned(),
                    data: record.data.clone(),
                },
                members: vec![i],
                shard: None,
            });
            continue;
        }
        current.push(i);
        types.push(ty);
    }
    flush(&mut current, &mut types, out);
}

#[cfg(test)]
mod tests {
    use tubes_contract::codec::unpack;
    use tubes_platform::publish::Shard;

    use super::*;

    fn record(key: &str, bytes: usize) -> Record {
        Record {
            partition_key: key.to_owned(),
            data: format!("{{\"k\":\"{key}\",\"pad\":\"{}\"}}", "x".repeat(bytes)).into_bytes(),
        }
    }

    fn two_shards() -> ShardMap {
        let half = u128::MAX / 2;
        ShardMap::new(vec![
            Shard {
                id: "shard-lo".into(),
                start: 0,
                end: half,
            },
            Shard {
                id: "shard-hi".into(),
                start: half + 1,
                end: u128::MAX,
            },
        ])
    }

    fn shard_of(map: &ShardMap, key: &str) -> String {
        map.shard_of(hash_key(key)).unwrap().id.clone()
    }

    /// The events each written record carries, in order, with the keys they were written under.
    fn unpacked(packed: &[Packed]) -> Vec<Vec<String>> {
        packed
            .iter()
            .map(|p| match unpack(&p.record.data) {
                Some(Ok(u)) => u
                    .events
                    .iter()
                    .map(|e| {
                        serde_json::from_slice::<serde_json::Value>(e).unwrap()["k"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect(),
                _ => vec![
                    serde_json::from_slice::<serde_json::Value>(&p.record.data).unwrap()["k"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ],
            })
            .collect()
    }

    #[test]
    fn events_of_one_shard_share_packs_in_request_order_under_one_key() {
        let map = two_shards();
        let keys: Vec<String> = (0..40).map(|i| format!("acc_{i}")).collect();
        let records: Vec<Record> = keys.iter().map(|k| record(k, 150)).collect();
        let events: Vec<(EventType, &Record)> = records
            .iter()
            .map(|r| (EventType::PaymentReceived, r))
            .collect();
        let packed = pack(&events, &map, 1024);
        // Every event once, each pack within the size, all of a shard's packs under one partition key.
        let mut all: Vec<usize> = packed.iter().flat_map(|p| p.members.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        for p in &packed {
            assert!(p.record.billed_size() <= 1024, "{}", p.record.billed_size());
            let shard = p.shard.clone().unwrap();
            assert!(p.members.iter().all(|&i| shard_of(&map, &keys[i]) == shard));
            assert!(
                p.members.windows(2).all(|w| w[0] < w[1]),
                "request order within a pack"
            );
            assert_eq!(
                shard_of(&map, &p.record.partition_key),
                shard,
                "the pack's key routes to its shard"
            );
        }
        for shard in ["shard-lo", "shard-hi"] {
            let of: Vec<&Packed> = packed
                .iter()
                .filter(|p| p.shard.as_deref() == Some(shard))
                .collect();
            assert!(of.len() > 1);
            assert!(of
                .windows(2)
                .all(|w| w[0].record.partition_key == w[1].record.partition_key));
            let order: Vec<usize> = of.iter().flat_map(|p| p.members.clone()).collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "request order across a shard's packs"
            );
        }
        // Fewer records than events: about 5 events of ~170 bytes per KiB.
        assert!(packed.len() <= 40 / 4, "{} records", packed.len());
        // What consumers unpack is what was sent.
        let sent: Vec<String> = unpacked(&packed).concat();
        let mut sorted = sent.clone();
        sorted.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn a_lone_event_of_its_shard_is_written_plain_and_caps_hold() {
        let map = two_shards();
        // Find one key per shard, and many of one key.
        let lo = (0..)
            .map(|i| format!("u{i}"))
            .find(|k| shard_of(&map, k) == "shard-lo")
            .unwrap();
        let hi = (0..)
            .map(|i| format!("u{i}"))
            .find(|k| shard_of(&map, k) == "shard-hi")
            .unwrap();
        let mut records = vec![record(&hi, 10)];
        records.extend((0..250).map(|_| record(&lo, 10)));
        let events: Vec<(EventType, &Record)> = records
            .iter()
            .map(|r| (EventType::UserSignedUp, r))
            .collect();
        let packed = pack(&events, &map, 1024 * 1024);
        assert_eq!(
            packed[0],
            Packed {
                record: records[0].clone(),
                members: vec![0],
                shard: None
            }
        );
        let sizes: Vec<usize> = packed[1..].iter().map(|p| p.members.len()).collect();
        assert_eq!(sizes, [MAX_PACK_EVENTS, MAX_PACK_EVENTS, 50]);
    }

    #[test]
    fn an_event_too_large_to_wrap_goes_plain_under_the_lane_s_key() {
        let map = ShardMap::single("only");
        let records = vec![
            record("a", 10),
            record("b", MAX_RECORD_BYTES - 40),
            record("a", 10),
        ];
        let events: Vec<(EventType, &Record)> = records
            .iter()
            .map(|r| (EventType::UserSignedUp, r))
            .collect();
        let packed = pack(&events, &map, 64 * 1024);
        let members: Vec<Vec<usize>> = packed.iter().map(|p| p.members.clone()).collect();
        assert_eq!(members, [vec![0], vec![1], vec![2]]);
        assert!(packed.iter().all(|p| p.record.partition_key == "a"));
        assert_eq!(packed[1].record.data, records[1].data);
        assert!(packed
            .iter()
            .all(|p| p.record.billed_size() <= MAX_RECORD_BYTES));
    }
}
