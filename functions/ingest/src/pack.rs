//! Packing a request's events into fewer records, per shard, as the KPL aggregates: Kinesis bills on-demand data
//! per record rounded up to 1 KiB and takes at most 1,000 records/s per shard, so small events sent one per
//! record pay for bytes they do not use and hit the record cap long before the 1 MiB/s one.
//!
//! **Why per shard, and how order survives.** Events of one partition key must reach consumers in order. Ingest
//! groups a request's events by the shard the stream's map says their key goes to and fills packs of at most
//! `max_bytes` ([`tubes_contract::codec::pack`]) with whole keys: all of a key's events, in request order, go in
//! one pack, so packs of one shard share no key and go out together in one `PutRecords` call. Each pack's partition
//! key is its first event's, which Kinesis routes to that shard. Only a key whose events alone overflow a pack
//! takes several, each led by that key: they share its partition key, and [`crate::write`] writes records of one
//! partition key in rounds (the second only once the first is acknowledged). Packing per key alone would be
//! simpler but would pack almost nothing: a batch usually spans many subjects.
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
    let shards = groups(0..events.len(), |i| {
        map.shard_of(hash_key(&events[i].1.partition_key))
            .map(|s| s.id.as_str())
    });
    let mut out = Vec::with_capacity(shards.len());
    for (shard, members) in shards {
        match (shard, members.as_slice()) {
            (Some(shard), [_, _, ..]) => pack_group(events, shard, &members, max_bytes, &mut out),
            // Alone on its shard, or on none the map covers: each goes plain, routed by its own key.
            _ => out.extend(members.into_iter().map(|i| Packed {
                record: events[i].1.clone(),
                members: vec![i],
                shard: None,
            })),
        }
    }
    out
}

/// `indices` grouped by `key`: groups in order of their first index, each in the given order.
fn groups<K: PartialEq>(
    indices: impl Iterator<Item = usize>,
    key: impl Fn(usize) -> K,
) -> Vec<(K, Vec<usize>)> {
    let mut groups: Vec<(K, Vec<usize>)> = Vec::new();
    for i in indices {
        let k = key(i);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(i),
            None => groups.push((k, vec![i])),
        }
    }
    groups
}

/// Fills packs with one shard's events, whole keys at a time (see the module docs).
fn pack_group(
    events: &[(EventType, &Record)],
    shard: &str,
    members: &[usize],
    max_bytes: usize,
    out: &mut Vec<Packed>,
) {
    let mut pack = Pack::default();
    for (_, of_key) in groups(members.iter().copied(), |i| {
        events[i].1.partition_key.as_str()
    }) {
        // A key that does not fit in what is left starts a pack of its own: a key split over packs leads each.
        if !pack.is_empty() && !pack.fits(of_key.iter().map(|&i| events[i]), max_bytes) {
            pack.flush(events, shard, out);
        }
        for i in of_key {
            let (ty, record) = events[i];
            if !pack.is_empty() && !pack.fits([events[i]], max_bytes) {
                pack.flush(events, shard, out);
            }
            if pack.is_empty() {
                pack.size = codec::packed_size(&[record], &[ty], shard);
                if pack.size > MAX_RECORD_BYTES {
                    // Too large to wrap (an event near Kinesis's own limit): it goes plain, under its key, after
                    // its key's earlier records (rounds by partition key).
                    out.push(Packed {
                        record: record.clone(),
                        members: vec![i],
                        shard: None,
                    });
                    continue;
                }
            } else {
                pack.size = pack.grown([events[i]]);
            }
            pack.members.push(i);
            if !pack.types.contains(&ty) {
                pack.types.push(ty);
            }
        }
    }
    pack.flush(events, shard, out);
}

/// A pack being filled.
#[derive(Default)]
struct Pack {
    members: Vec<usize>,
    types: Vec<EventType>,
    /// `codec::packed_size` of the members, kept up to date instead of recomputed per event.
    size: usize,
}

impl Pack {
    fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The size with `added` (events with their types) added: each event and its comma, and each type not in the
    /// pack yet.
    fn grown<'a>(&self, added: impl IntoIterator<Item = (EventType, &'a Record)>) -> usize {
        let mut new_types: Vec<EventType> = Vec::new();
        let mut size = self.size;
        for (ty, record) in added {
            size += record.data.len() + 1;
            if !self.types.contains(&ty) && !new_types.contains(&ty) {
                new_types.push(ty);
                size += ty.as_str().len() + 3;
            }
        }
        size
    }

    /// Whether `added` fits in the pack, within `max_bytes` and [`MAX_PACK_EVENTS`].
    fn fits<'a>(
        &self,
        added: impl IntoIterator<Item = (EventType, &'a Record), IntoIter: ExactSizeIterator>,
        max_bytes: usize,
    ) -> bool {
        let added = added.into_iter();
        self.members.len() + added.len() <= MAX_PACK_EVENTS && self.grown(added) <= max_bytes
    }

    /// Writes out the pack, under its first event's key, and starts an empty one.
    fn flush(&mut self, events: &[(EventType, &Record)], shard: &str, out: &mut Vec<Packed>) {
        let Some(&first) = self.members.first() else {
            return;
        };
        let items: Vec<(EventType, &Record)> = self.members.iter().map(|&i| events[i]).collect();
        out.push(Packed {
            record: codec::pack(&items, shard, &events[first].1.partition_key),
            members: std::mem::take(&mut self.members),
            shard: Some(shard.to_owned()),
        });
        self.types.clear();
        self.size = 0;
    }
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
    fn a_shard_s_events_fill_packs_whole_keys_at_a_time() {
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
            // Packs of a shard share no key: they go out together.
            let mut keys_seen = std::collections::HashSet::new();
            for p in &of {
                let in_pack: std::collections::HashSet<&str> =
                    p.members.iter().map(|&i| keys[i].as_str()).collect();
                assert!(
                    in_pack.iter().all(|k| keys_seen.insert(*k)),
                    "a key in two packs"
                );
                assert_eq!(
                    p.record.partition_key, keys[p.members[0]],
                    "a pack goes under its first key"
                );
            }
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
    fn a_key_is_in_one_pack_or_leads_each_of_its_packs_whatever_its_types() {
        // Half the keys send payments; each of the others three events of three other types (long names), new to a
        // pack of payments: the fit of a whole key counts each type it adds.
        let others = [
            EventType::AccountCredited,
            EventType::UserUnsubscribed,
            EventType::AccountOpened,
        ];
        let keys: Vec<String> = (0..12).map(|k| format!("k{k}")).collect();
        let records: Vec<Record> = (0..48)
            .map(|i| record(&keys[i % 12], 40 + (i * 7) % 90))
            .collect();
        let events: Vec<(EventType, &Record)> = records
            .iter()
            .enumerate()
            .map(|(i, r)| match i % 12 {
                0..6 => (EventType::PaymentReceived, r),
                _ => (others[(i / 12) % 3], r),
            })
            .collect();
        for max in (400..3_000).step_by(13) {
            let packed = pack(&events, &ShardMap::single("only"), max);
            for key in &keys {
                let holding: Vec<&Packed> = packed
                    .iter()
                    .filter(|p| p.members.iter().any(|&i| records[i].partition_key == *key))
                    .collect();
                assert!(
                    holding.len() == 1 || holding.iter().all(|p| p.record.partition_key == *key),
                    "max {max}: {key} is in {} packs, not leading each",
                    holding.len()
                );
            }
            assert!(packed
                .iter()
                .all(|p| p.record.billed_size() <= max || p.members.len() == 1));
        }
    }

    #[test]
    fn a_key_s_events_stay_together_in_order_and_one_too_large_to_wrap_goes_plain() {
        let map = ShardMap::single("only");
        let records = [
            record("a", 10),
            record("b", MAX_RECORD_BYTES - 40),
            record("a", 10),
            record("c", 3_000),
            record("c", 3_000),
            record("c", 3_000),
        ];
        let events: Vec<(EventType, &Record)> = records
            .iter()
            .map(|r| (EventType::UserSignedUp, r))
            .collect();
        let packed = pack(&events, &map, 8 * 1024);
        let members: Vec<(Vec<usize>, &str, bool)> = packed
            .iter()
            .map(|p| {
                (
                    p.members.clone(),
                    p.record.partition_key.as_str(),
                    p.shard.is_some(),
                )
            })
            .collect();
        // a's two events in one pack; b plain under its own key; c, too big for one pack, leads both of its.
        assert_eq!(
            members,
            [
                (vec![0, 2], "a", true),
                (vec![1], "b", false),
                (vec![3, 4], "c", true),
                (vec![5], "c", true)
            ]
        );
        assert_eq!(packed[1].record, records[1]);
        assert!(packed
            .iter()
            .all(|p| p.record.billed_size() <= MAX_RECORD_BYTES));
    }
}
