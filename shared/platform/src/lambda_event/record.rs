//! A record as read off a shard, and its place in the shard.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kinesis sequence number: a decimal string of up to 128 digits without leading zeros, ordered numerically
/// (`"9" < "10"`), which is the order of the records in their shard.
///
/// Kept inline when it is as short as Kinesis writes them today (56 digits): a consumer holds one per record of
/// its batch, and as a `String` it was an allocation and a free for each (issue #15).
#[derive(Clone)]
pub struct SequenceNumber(Digits);

/// [`INLINE`] bytes or fewer held in place, longer ones on the heap; which one depends on the length alone, so
/// equal numbers are held alike.
#[derive(Clone)]
enum Digits {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

/// The longest sequence number held in place: the value's 64 bytes, less its length and its variant.
const INLINE: usize = 62;

impl SequenceNumber {
    /// The digits.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Whole `str`s are copied in (`SequenceNumber::from`), so this is always UTF-8.
            Digits::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Digits::Heap(digits) => digits,
        }
    }

    /// A sequence number as its digits' bytes (how the consumer's decoding finds them in the event), when they
    /// are all ASCII digits and few enough to be held in place; else `None`, and the caller reads them as text.
    pub(crate) fn from_digits(digits: &[u8]) -> Option<Self> {
        let len = u8::try_from(digits.len())
            .ok()
            .filter(|&len| usize::from(len) <= INLINE)?;
        // A fold, not `all`: no early exit, so the compiler checks many bytes a step.
        if digits
            .iter()
            .fold(false, |bad, b| bad | !b.is_ascii_digit())
        {
            return None;
        }
        let mut bytes = [0; INLINE];
        bytes[..digits.len()].copy_from_slice(digits);
        Some(Self(Digits::Inline { len, bytes }))
    }

    /// The digits, owned.
    pub fn into_string(self) -> String {
        match self.0 {
            Digits::Heap(digits) => digits.into_string(),
            Digits::Inline { .. } => self.as_str().to_owned(),
        }
    }

    /// The last `n` digits: what a person needs to tell neighbours apart.
    pub fn tail(&self, n: usize) -> &str {
        let digits = self.as_str();
        digits
            .get(digits.len().saturating_sub(n)..)
            .unwrap_or(digits)
    }
}

impl Default for SequenceNumber {
    fn default() -> Self {
        Self::from("")
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SequenceNumber")
            .field(&self.as_str())
            .finish()
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SequenceNumber {}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.as_str(), other.as_str());
        (a.len(), a).cmp(&(b.len(), b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<String> for SequenceNumber {
    fn from(digits: String) -> Self {
        if digits.len() <= INLINE {
            Self::from(digits.as_str())
        } else {
            Self(Digits::Heap(digits.into_boxed_str()))
        }
    }
}

impl From<&str> for SequenceNumber {
    fn from(digits: &str) -> Self {
        match u8::try_from(digits.len()) {
            Ok(len) if usize::from(len) <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..digits.len()].copy_from_slice(digits.as_bytes());
                Self(Digits::Inline { len, bytes })
            }
            _ => Self(Digits::Heap(digits.into())),
        }
    }
}

impl AsRef<str> for SequenceNumber {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for SequenceNumber {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SequenceNumber {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SequenceNumber {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// As the string it is (what `#[serde(transparent)]` over a `String` was).
impl Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SequenceNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SequenceNumber, E> {
                Ok(SequenceNumber::from(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SequenceNumber, E> {
                Ok(SequenceNumber::from(v))
            }
        }
        deserializer.deserialize_string(V)
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
    fn long_and_short_sequence_numbers_are_the_same_digits_however_held() {
        use std::collections::HashSet;
        // Around the length held in place, and Kinesis' longest (129 digits).
        for len in [0, 1, 56, INLINE - 1, INLINE, INLINE + 1, 129] {
            let digits: String = (0..len).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
            let (from_str, from_string) = (
                SequenceNumber::from(digits.as_str()),
                SequenceNumber::from(digits.clone()),
            );
            assert_eq!(from_str.as_str(), digits);
            assert_eq!(from_str, from_string);
            assert_eq!(from_str.clone().into_string(), digits);
            assert_eq!(from_str.to_string(), digits);
            let json = serde_json::to_string(&from_string).unwrap();
            assert_eq!(json, format!("\"{digits}\""));
            assert_eq!(
                serde_json::from_str::<SequenceNumber>(&json).unwrap(),
                from_str
            );
            assert_eq!(HashSet::from([from_str, from_string]).len(), 1);
        }
        // Read from bytes, digits only.
        let digits = "49590338271490256608559692538361571095921575989136580001";
        assert_eq!(
            SequenceNumber::from_digits(digits.as_bytes()),
            Some(SequenceNumber::from(digits))
        );
        for bytes in [&b"12a4"[..], b"\xff1", "٣".as_bytes(), &[b'1'; INLINE + 1]] {
            assert_eq!(SequenceNumber::from_digits(bytes), None, "{bytes:?}");
        }
        // Ordered numerically across the two forms.
        let short = SequenceNumber::from("9".repeat(INLINE));
        let long = SequenceNumber::from(format!("1{}", "0".repeat(INLINE)));
        assert!(short < long);
        assert!(serde_json::from_str::<SequenceNumber>("42").is_err());
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
