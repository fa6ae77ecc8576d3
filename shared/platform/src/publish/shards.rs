//! Where Kinesis puts a record: the stream's open shards by hash key range, for a writer that packs the events
//! of one shard into one record (ingest). Kinesis hashes a record's partition key with MD5 into a 128-bit hash
//! key and puts the record on the open shard whose range holds it; a shard's id and range never change (a split
//! or a merge closes shards and opens new ones), so a map can only be stale by missing new shards, and a record
//! acknowledged on a shard the map did not expect says so.

use md5::{Digest as _, Md5};

/// One open shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Its id, as `PutRecords` answers it.
    pub id: String,
    /// The first hash key it takes.
    pub start: u128,
    /// The last hash key it takes (inclusive).
    pub end: u128,
}

/// The hash key Kinesis gives `partition_key`: its MD5 digest as a big-endian 128-bit number.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// The open shards of a stream, by hash key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Sorted by `start`.
    shards: Vec<Shard>,
}

impl ShardMap {
    /// A map of `shards` (open ones, in any order).
    pub fn new(mut shards: Vec<Shard>) -> Self {
        shards.sort_by_key(|s| s.start);
        Self { shards }
    }

    /// One shard taking every hash key: a stream with a single shard (and the tests').
    pub fn single(id: &str) -> Self {
        Self::new(vec![Shard {
            id: id.to_owned(),
            start: 0,
            end: u128::MAX,
        }])
    }

    /// The shard that takes `hash`, if the map covers it (an open stream's shards cover every hash key).
    pub fn shard_of(&self, hash: u128) -> Option<&Shard> {
        let after = self.shards.partition_point(|s| s.start <= hash);
        after
            .checked_sub(1)
            .map(|i| &self.shards[i])
            .filter(|s| hash <= s.end)
    }

    /// The shards, by range.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_are_kinesis_s() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
        assert_eq!(hash_key("a"), 0x0cc1_75b9_c0f1_b6a8_31c3_99e2_6977_2661);
    }

    #[test]
    fn a_hash_key_finds_the_shard_whose_range_holds_it() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![
            Shard {
                id: "b".into(),
                start: half + 1,
                end: u128::MAX,
            },
            Shard {
                id: "a".into(),
                start: 0,
                end: half,
            },
        ]);
        assert_eq!(map.shard_of(0).map(|s| s.id.as_str()), Some("a"));
        assert_eq!(map.shard_of(half).map(|s| s.id.as_str()), Some("a"));
        assert_eq!(map.shard_of(half + 1).map(|s| s.id.as_str()), Some("b"));
        assert_eq!(map.shard_of(u128::MAX).map(|s| s.id.as_str()), Some("b"));
        // A gap (a map read mid-reshard) covers nothing there.
        let gappy = ShardMap::new(vec![Shard {
            id: "a".into(),
            start: 10,
            end: 20,
        }]);
        assert!(gappy.shard_of(5).is_none() && gappy.shard_of(21).is_none());
        assert_eq!(gappy.shard_of(20).map(|s| s.id.as_str()), Some("a"));
    }
}
