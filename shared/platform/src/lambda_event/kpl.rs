//! KPL aggregation, read: a Kinesis record written by the Kinesis Producer Library (or one of its aggregation
//! libraries, in any language) carries many user records. Its data is the 4-byte magic `F3 89 9A C2`, an
//! `AggregatedRecord` protobuf, and the MD5 of that protobuf. The consumer harness hands the user records to
//! consumers one by one, each with its own partition key and its index in the aggregate (KCL's sub-sequence
//! number).
//!
//! The protobuf is read by hand: three messages, five field numbers, nothing else needed, and no code generator
//! in the build. Unknown fields are skipped, as protobuf readers must. Every length is checked against what is
//! left, so no input panics or allocates more than its own size.
//!
//! ```text
//! message AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
//!                            repeated Record records = 3; }
//! message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
//!                  required bytes data = 3; repeated Tag tags = 4; }
//! ```

use md5::{Digest as _, Md5};

/// The first bytes of an aggregated record's data.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The MD5 digest's length, at the end of an aggregated record's data.
const DIGEST_LEN: usize = 16;

/// One user record of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    /// Its index in the aggregate (KCL's sub-sequence number).
    pub sub_sequence_number: u64,
    /// Its own partition key (the aggregate's record has one of its own, usually the first user record's).
    pub partition_key: &'a str,
    /// Its data.
    pub data: &'a [u8],
}

/// Why data that starts with the magic is not a readable aggregate. Always permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// Too short to hold the magic, a protobuf and the digest.
    #[error("KPL aggregate of {0} bytes is too short for its MD5 digest")]
    Truncated(usize),
    /// The digest does not match the protobuf: the record was damaged or is not an aggregate.
    #[error("KPL aggregate's MD5 digest does not match its contents")]
    Digest,
    /// The protobuf does not parse as an `AggregatedRecord`.
    #[error("KPL aggregate's protobuf is malformed: {0}")]
    Malformed(&'static str),
}

/// Whether `data` claims to be an aggregate (starts with the magic).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// The user records of an aggregate, in order; `data` must start with [`MAGIC`] (see [`is_aggregate`]). A
/// damaged aggregate is refused whole: no user record of it is trusted.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord<'_>>, AggregateError> {
    if data.len() < MAGIC.len() + DIGEST_LEN {
        return Err(AggregateError::Truncated(data.len()));
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err(AggregateError::Digest);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut raw_records: Vec<&[u8]> = Vec::new();
    let mut fields = Fields(body);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Value::Bytes(key)) => keys.push(
                std::str::from_utf8(key)
                    .map_err(|_| AggregateError::Malformed("a partition key is not UTF-8"))?,
            ),
            (3, Value::Bytes(record)) => raw_records.push(record),
            (1 | 3, _) => return Err(AggregateError::Malformed("wrong wire type")),
            _ => {} // explicit hash keys (2) and future fields: not needed to deliver
        }
    }
    raw_records
        .into_iter()
        .zip(0u64..)
        .map(|(raw, index)| user_record(raw, index, &keys))
        .collect()
}

fn user_record<'a>(
    raw: &'a [u8],
    sub_sequence_number: u64,
    keys: &[&'a str],
) -> Result<UserRecord<'a>, AggregateError> {
    let (mut key_index, mut data) = (None, None);
    let mut fields = Fields(raw);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Value::Varint(index)) => key_index = Some(index),
            (3, Value::Bytes(bytes)) => data = Some(bytes),
            (1 | 3, _) => return Err(AggregateError::Malformed("wrong wire type")),
            _ => {} // explicit hash key index (2), tags (4)
        }
    }
    let index = key_index.ok_or(AggregateError::Malformed(
        "a record has no partition key index",
    ))?;
    let partition_key = usize::try_from(index)
        .ok()
        .and_then(|i| keys.get(i))
        .ok_or(AggregateError::Malformed(
            "a partition key index is out of the table",
        ))?;
    Ok(UserRecord {
        sub_sequence_number,
        partition_key,
        data: data.ok_or(AggregateError::Malformed("a record has no data"))?,
    })
}

/// A field's value, by wire type.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, AggregateError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8).map(|()| Value::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| AggregateError::Malformed("a length overflows"))?;
                if len > self.0.len() {
                    return Err(AggregateError::Malformed("a length runs past the end"));
                }
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                Value::Bytes(bytes)
            }
            5 => self.skip(4).map(|()| Value::Fixed)?,
            _ => return Err(AggregateError::Malformed("unknown wire type")),
        };
        Ok(Some((tag >> 3, value)))
    }

    fn varint(&mut self) -> Result<u64, AggregateError> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err(AggregateError::Malformed("a varint is unterminated"))
    }

    fn skip(&mut self, n: usize) -> Result<(), AggregateError> {
        if n > self.0.len() {
            return Err(AggregateError::Malformed("a fixed field runs past the end"));
        }
        self.0 = &self.0[n..];
        Ok(())
    }
}

/// An aggregate of `records` (partition key, data), as the KPL writes one: for tests and benches (the interop
/// test checks it against the reference library's output).
#[cfg(any(test, feature = "test-util"))]
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    let mut entries = Vec::new();
    for (key, data) in records {
        let index = keys.iter().position(|k| k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        let mut record = Vec::new();
        varint(&mut record, 1 << 3);
        varint(&mut record, index as u64);
        bytes_field(&mut record, 3, data);
        entries.push(record);
    }
    for key in &keys {
        bytes_field(&mut body, 1, key.as_bytes());
    }
    for record in &entries {
        bytes_field(&mut body, 3, record);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_records_come_out_in_order_with_their_own_keys() {
        let data = aggregate(&[("a", b"one"), ("b", b"two"), ("a", b"three")]);
        assert!(is_aggregate(&data));
        let records = deaggregate(&data).unwrap();
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.sub_sequence_number, r.partition_key, r.data))
            .collect();
        assert_eq!(
            got,
            [
                (0, "a", &b"one"[..]),
                (1, "b", &b"two"[..]),
                (2, "a", &b"three"[..])
            ]
        );
    }

    #[test]
    fn a_damaged_aggregate_is_refused_whole() {
        let data = aggregate(&[("a", b"one"), ("b", b"two")]);
        let mut flipped = data.clone();
        flipped[10] ^= 1;
        assert_eq!(deaggregate(&flipped), Err(AggregateError::Digest));
        assert_eq!(deaggregate(&data[..12]), Err(AggregateError::Truncated(12)));
        // A body that hashes right but does not parse: a length past the end.
        let body = [0x1A, 0x7F, 0x01];
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&Md5::digest(body));
        assert!(matches!(
            deaggregate(&bad),
            Err(AggregateError::Malformed(_))
        ));
        // A record pointing past the key table.
        let record = [0x08, 0x05, 0x1A, 0x01, b'x'];
        let mut body = vec![0x0A, 0x01, b'k', 0x1A, record.len() as u8];
        body.extend_from_slice(&record);
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&Md5::digest(&body));
        assert_eq!(
            deaggregate(&bad),
            Err(AggregateError::Malformed(
                "a partition key index is out of the table"
            ))
        );
    }

    #[test]
    fn unknown_fields_and_explicit_hash_keys_are_skipped() {
        // Table: key "k"; explicit hash key "123"; an unknown fixed64 field 9; one record with an explicit hash
        // key index, a tag, and its data.
        let record = [
            0x08, 0x00, 0x10, 0x00, 0x1A, 0x02, b'h', b'i', 0x22, 0x03, 0x0A, 0x01, b't',
        ];
        let mut body = vec![0x0A, 0x01, b'k', 0x12, 0x03, b'1', b'2', b'3'];
        body.extend_from_slice(&[0x49, 0, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[0x1A, record.len() as u8]);
        body.extend_from_slice(&record);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&Md5::digest(&body));
        let records = deaggregate(&data).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].partition_key, records[0].data),
            ("k", &b"hi"[..])
        );
    }

    #[test]
    fn no_input_panics() {
        // Every prefix and every single-byte corruption of a valid aggregate, digest fixed up so the parser runs.
        let data = aggregate(&[("key", b"{\"x\":1}"), ("other", b"[]")]);
        let body_len = data.len() - MAGIC.len() - DIGEST_LEN;
        for cut in 0..body_len {
            for flip in [None, Some(0x80u8), Some(0xFF)] {
                let mut body = data[MAGIC.len()..MAGIC.len() + cut].to_vec();
                if let (Some(mask), Some(last)) = (flip, body.last_mut()) {
                    *last ^= mask;
                }
                let mut bad = MAGIC.to_vec();
                bad.extend_from_slice(&body);
                bad.extend_from_slice(&Md5::digest(&body));
                // A cut aggregate never reads as the whole one: it fails, or yields fewer or other records.
                assert_ne!(
                    deaggregate(&bad).ok(),
                    deaggregate(&data).ok(),
                    "cut at {cut}"
                );
            }
        }
    }
}
