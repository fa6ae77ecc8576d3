//! A record as read off a shard, and its place in the shard.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kinesis sequence number: a decimal string of up to 128 digits without leading zeros, ordered numerically
/// (`"9" < "10"`), which is the order of the records in their shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The last `n` digits: what a person needs to tell neighbours apart.
    pub fn tail(&self, n: usize) -> &str {
        &self.0[self.0.len().saturating_sub(n)..]
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.len(), &self.0).cmp(&(other.0.len(), &other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<String> for SequenceNumber {
    fn from(digits: String) -> Self {
        Self(digits)
    }
}

impl From<&str> for SequenceNumber {
    fn from(digits: &str) -> Self {
        Self(digits.to_owned())
    }
}

impl AsRef<str> for SequenceNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for SequenceNumber {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for SequenceNumber {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for SequenceNumber {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One record as read from a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Its place in the shard.
    pub sequence_number: SequenceNumber,
    /// Its partition key.
    pub partition_key: String,
    /// Its data, raw (base64 only in the event).
    pub data: Vec<u8>,
    /// When Kinesis received it (`approximateArrivalTimestamp`), in seconds since the Unix epoch.
    pub arrival: f64,
}

/// What a record adds to an event besides its data, partition key and sequence numbers: the member names and
/// the constant values (about 250 bytes) and the batch's source (shard id, region, stream and role ARNs, within
/// their AWS lengths), with room to spare.
const RECORD_OVERHEAD: usize = 1024;

impl StreamRecord {
    /// The bytes this record adds to an invocation payload, at most: its base64 data, its partition key (as if
    /// every character were escaped), its sequence number (twice: `sequenceNumber` and `eventID`) and the rest of
    /// a record's members. What the 6 MB cap counts ([`super::event_size`], [`super::chunks`]).
    pub fn payload_size(&self) -> usize {
        self.data.len().div_ceil(3) * 4
            + 6 * self.partition_key.len()
            + 2 * self.sequence_number.as_str().len()
            + RECORD_OVERHEAD
    }
}

impl From<&aws_sdk_kinesis::types::Record> for StreamRecord {
    fn from(r: &aws_sdk_kinesis::types::Record) -> Self {
        Self {
            sequence_number: SequenceNumber::from(r.sequence_number()),
            partition_key: r.partition_key().unwrap_or_default().to_owned(),
            data: r.data().as_ref().to_vec(),
            // Kinesis always says; should it not, "now" rather than 1970, which any record age limit would expire.
            arrival: r
                .approximate_arrival_timestamp()
                .map_or_else(crate::clock::now_secs, |t| t.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_numerically() {
        let s = |d: &str| SequenceNumber::from(d);
        assert!(s("9") < s("10"));
        assert!(
            s("49568167373333333333333333333333333333333333333333333333")
                < s("49568167373333333334444444444444444444444444444444444444")
        );
        assert_eq!(s("10").cmp(&s("10")), Ordering::Equal);
        assert!(s("100") > s("99"));
        assert_eq!([s("10"), s("9"), s("11")].iter().min(), Some(&s("9")));
        assert_eq!(s("4956816737").tail(4), "6737");
    }

    #[test]
    fn a_record_from_the_sdk() {
        let sdk = aws_sdk_kinesis::types::Record::builder()
            .sequence_number("42")
            .partition_key("acc_1")
            .data(aws_sdk_kinesis::primitives::Blob::new(b"{}".to_vec()))
            .approximate_arrival_timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(
                1_700_000_000_500,
            ))
            .build()
            .unwrap();
        let r = StreamRecord::from(&sdk);
        assert_eq!(r.sequence_number, "42");
        assert_eq!(
            (r.partition_key.as_str(), r.data.as_slice()),
            ("acc_1", &b"{}"[..])
        );
        assert!((r.arrival - 1_700_000_000.5).abs() < 1e-6);
    }
}
