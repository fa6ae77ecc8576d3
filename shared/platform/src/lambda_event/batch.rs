//! The consumer's side of the event: the invocation payload decoded in one pass. Each record's base64 `data` is
//! decoded and parsed into validated [`Envelope`]s (through [`codec::decode`], the one place that knows event
//! encodings) while the batch is read, and the members the harness does not need are skipped without
//! allocating. A bad record never fails the batch; it carries its own [`DecodeError`].
//!
//! A record may carry several events: a packed record ([`codec::unpack`]) or a KPL aggregate ([`super::kpl`]).
//! Each becomes a [`BatchRecord`] of its own, in order, sharing the Kinesis record's sequence number and told
//! apart by its `sub_sequence_number`; so consumers see events one by one whatever the producer packed, and a
//! failure reported at the shared sequence number redelivers the whole record (its events already handled are
//! then skipped by the idempotency records).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tubes_contract::{codec, Envelope, Violations};

use super::event::KinesisEvent;
use super::kpl::{self, AggregateError};
use super::record::SequenceNumber;
use scan::scan_batch;

mod scan;

/// Why a record's data did not become an envelope. Always permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `data` was not valid base64.
    #[error("record data is not base64: {0}")]
    Base64(String),
    /// The bytes are not a valid event.
    #[error("invalid event: {0}")]
    Invalid(Violations),
    /// A KPL aggregate that cannot be read: parked whole, none of its user records is trusted.
    #[error("unreadable KPL aggregate: {0}")]
    Aggregate(#[from] AggregateError),
}

/// One Kinesis record of a batch, decoded.
#[derive(Debug)]
pub struct BatchRecord {
    /// Position in the shard; what `batchItemFailures` reports. Shared by the events of one packed or aggregated
    /// record.
    pub sequence_number: SequenceNumber,
    /// The event's place in its packed or aggregated record (KCL's sub-sequence number); `None` for a record
    /// that is one event.
    pub sub_sequence_number: Option<u64>,
    /// The key the event's order is kept by: its subject when it decodes (the record's partition key for tubes'
    /// own writers, which key records by subject), else the record's partition key; in a KPL aggregate the user
    /// record's own. The harness keeps each key's events in order.
    pub partition_key: String,
    /// When Kinesis received it (`approximateArrivalTimestamp`), in seconds since the Unix epoch, if the event
    /// says (Lambda always does): what the consumer's lag is measured from.
    pub arrival: Option<f64>,
    /// The decoded event, or why it could not be decoded (with the raw bytes, for the dead letter).
    pub envelope: Result<Envelope, (DecodeError, Vec<u8>)>,
}

/// The Kinesis event of one invocation, decoded in one pass (see the module docs).
#[derive(Debug, Default)]
pub struct KinesisBatch {
    /// The records, in shard order.
    pub records: Vec<BatchRecord>,
    /// The stream's ARN, from the first record.
    pub event_source_arn: Option<String>,
    /// The shard, from the first record's `eventID` (`shardId-…:sequence`).
    pub shard_id: Option<String>,
    /// Events of packed records meant for another shard, left out of `records`: a writer with a stale shard map
    /// (across a split or a merge) saw its pack land here and wrote those events again where they belong.
    pub misplaced: usize,
    /// The packs to check against `shard_id` once the event is read (the ids come after the data in AWS's
    /// order): the range of `records` each pack's events took, and the shard it was meant for.
    pack_checks: Vec<(std::ops::Range<usize>, String)>,
}

impl KinesisBatch {
    /// Leaves out the events of packs meant for another shard than the batch's (see [`KinesisBatch::misplaced`]).
    fn drop_misplaced(&mut self) {
        let checks = std::mem::take(&mut self.pack_checks);
        let Some(shard) = self.shard_id.as_deref() else {
            return;
        };
        let mut misplaced = vec![false; self.records.len()];
        for (range, meant) in checks {
            if meant != shard {
                misplaced[range].iter_mut().for_each(|m| *m = true);
            }
        }
        let mut flags = misplaced.into_iter();
        let before = self.records.len();
        self.records.retain(|_| !flags.next().unwrap_or(false));
        self.misplaced = before - self.records.len();
    }

    /// An invocation's payload (the bytes the runtime API hands over) decoded in one pass; an error if it is not a
    /// Kinesis event. Read straight from the bytes: the Lambda runtime's own deserialisation tracks the JSON path
    /// of every member it reads (for its error message), which cost the 10,000-record batch about a quarter more
    /// than the parse itself; the path is worked out only for a payload that fails.
    ///
    /// A fast pass ([`scan_batch`]) reads a well-formed event; anything it does not take, serde_json reads as
    /// before, and decides.
    pub fn from_payload(payload: &[u8]) -> Result<Self, PayloadError> {
        if let Some(batch) = scan_batch(payload) {
            return Ok(batch);
        }
        PayloadError::read(payload)
    }

    /// `event` decoded as a consumer receives it: through its JSON, as Lambda delivers it.
    pub fn from_event(event: &KinesisEvent) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(&serde_json::to_vec(event)?)
    }
}

impl<'de> Deserialize<'de> for KinesisBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;
        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = KinesisBatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kinesis event with Records")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KinesisBatch, A::Error> {
                let mut batch = KinesisBatch::default();
                let mut seen = false;
                while let Some(key) = map.next_key::<Key>()? {
                    if key.0 == KeyKind::Records {
                        map.next_value_seed(RecordsSeed(&mut batch))?;
                        seen = true;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                if !seen {
                    return Err(de::Error::missing_field("Records"));
                }
                batch.drop_misplaced();
                Ok(batch)
            }
        }
        deserializer.deserialize_map(BatchVisitor)
    }
}

/// The keys the decoder looks at; the rest are skipped without allocating.
#[derive(PartialEq, Eq, Clone, Copy)]
enum KeyKind {
    Records,
    Kinesis,
    EventSourceArn,
    EventId,
    PartitionKey,
    SequenceNumber,
    Data,
    Arrival,
    Other,
}

struct Key(KeyKind);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(match v {
                    "Records" => KeyKind::Records,
                    "kinesis" => KeyKind::Kinesis,
                    "eventSourceARN" => KeyKind::EventSourceArn,
                    "eventID" => KeyKind::EventId,
                    "partitionKey" => KeyKind::PartitionKey,
                    "sequenceNumber" => KeyKind::SequenceNumber,
                    "data" => KeyKind::Data,
                    "approximateArrivalTimestamp" => KeyKind::Arrival,
                    _ => KeyKind::Other,
                }))
            }
        }
        deserializer.deserialize_identifier(V)
    }
}

struct RecordsSeed<'b>(&'b mut KinesisBatch);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Kinesis records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.records.reserve(n);
        }
        while seq.next_element_seed(RecordSeed(self.0))?.is_some() {}
        Ok(())
    }
}

struct RecordSeed<'b>(&'b mut KinesisBatch);

/// Reads one Kinesis record and pushes its events onto the batch.
impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kinesis event record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut kinesis = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                KeyKind::Kinesis => kinesis = Some(map.next_value::<KinesisPart>()?),
                KeyKind::EventSourceArn if self.0.event_source_arn.is_none() => {
                    self.0.event_source_arn = Some(map.next_value::<String>()?);
                }
                KeyKind::EventId if self.0.shard_id.is_none() => {
                    let id = map.next_value::<String>()?;
                    self.0.shard_id = id.split_once(':').map(|(shard, _)| shard.to_owned());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kinesis = kinesis.ok_or_else(|| de::Error::missing_field("kinesis"))?;
        self.0.push(kinesis);
        Ok(())
    }
}

impl KinesisBatch {
    /// Pushes a Kinesis record's events onto the batch.
    fn push(&mut self, kinesis: KinesisPart) {
        let KinesisPart {
            sequence_number,
            partition_key,
            arrival,
            contents,
        } = kinesis;
        let start = self.records.len();
        let records = &mut self.records;
        let meant_for = contents.each(
            partition_key,
            |sub_sequence_number, partition_key, envelope| {
                records.push(BatchRecord {
                    // Filled in below: moved into the last event, cloned for the others (a record of one event,
                    // the common case, costs no copy).
                    sequence_number: SequenceNumber::default(),
                    sub_sequence_number,
                    partition_key,
                    arrival,
                    envelope,
                });
            },
        );
        if let Some((last, others)) = self.records[start..].split_last_mut() {
            others
                .iter_mut()
                .for_each(|r| r.sequence_number.clone_from(&sequence_number));
            last.sequence_number = sequence_number;
        }
        // The shard a pack names is checked once the event's shard is known (see `drop_misplaced`).
        if let Some(shard) = meant_for {
            let end = self.records.len();
            self.pack_checks.push((start..end, shard));
        }
    }
}

/// An invocation payload that is not a Kinesis event: the invocation fails and Lambda retries the batch. The
/// message is the one the Lambda runtime gave when it deserialised the payload itself (`lambda_runtime`'s
/// `DeserializeError`), the JSON path of the fault included.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(String);

impl PayloadError {
    /// `payload` as a `T`, read by serde_json's plain pass; when it does not deserialise, the runtime's error for
    /// it: only then is the payload read again through `serde_path_to_error`, which records the path of every
    /// member as it goes (the plain pass costs 1.65x less).
    pub fn read<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Self> {
        serde_json::from_slice(payload).or_else(|_| {
            let mut json = serde_json::Deserializer::from_slice(payload);
            serde_path_to_error::deserialize(&mut json).map_err(|err| Self::new(&err))
        })
    }

    fn new(err: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        const CONTEXT: &str =
            "failed to deserialize the incoming data into the function's payload type";
        Self(match err.path().to_string().as_str() {
            "." => format!("{CONTEXT}: {}\n", err.inner()),
            path => format!("{CONTEXT}: [{path}] {}\n", err.inner()),
        })
    }
}

/// An event decoded, or why not (with its bytes, for the dead letter).
pub type Decoded = Result<Envelope, (DecodeError, Vec<u8>)>;

/// What a record's data holds ([`record_events`]): one event, or the events of a packed record or KPL aggregate
/// with their sub-sequence numbers and own partition keys (a KPL user record's; `None`: ordered as a record of one
/// event is, by [`Contents::each`]), and the shard a pack was meant for (a reader on another shard leaves its
/// events out: they were written again where they belong).
#[derive(Debug)]
// A one-event record is the common case: boxing it would allocate once more per record, to save bytes of a value
// that lives for one record.
#[allow(clippy::large_enum_variant)]
pub enum Contents {
    /// A record that is one event.
    One(Decoded),
    /// A packed record's or KPL aggregate's events, and the shard a pack was meant for.
    Many(Vec<(u64, Option<String>, Decoded)>, Option<String>),
}

struct KinesisPart {
    sequence_number: SequenceNumber,
    partition_key: String,
    arrival: Option<f64>,
    contents: Contents,
}

impl<'de> Deserialize<'de> for KinesisPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KinesisPart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the kinesis member of a record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KinesisPart, A::Error> {
                let (mut seq, mut key, mut contents, mut arrival) = (None, None, None, None);
                while let Some(k) = map.next_key::<Key>()? {
                    match k.0 {
                        KeyKind::SequenceNumber => seq = Some(map.next_value::<SequenceNumber>()?),
                        KeyKind::PartitionKey => key = Some(map.next_value::<String>()?),
                        KeyKind::Data => contents = Some(map.next_value::<DataField>()?.0),
                        KeyKind::Arrival => arrival = map.next_value::<Seconds>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(KinesisPart {
                    sequence_number: seq
                        .ok_or_else(|| de::Error::missing_field("sequenceNumber"))?,
                    partition_key: key.ok_or_else(|| de::Error::missing_field("partitionKey"))?,
                    arrival,
                    contents: contents.ok_or_else(|| de::Error::missing_field("data"))?,
                })
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// A time in seconds since the Unix epoch, as a number (Lambda) or a string of one (an SDK's serialisation);
/// anything else is no time (a record is never refused for its timestamp).
struct Seconds(Option<f64>);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds since the Unix epoch")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v.is_finite().then_some(v)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v as f64)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                Ok(Seconds(v.parse::<f64>().ok().filter(|s| s.is_finite())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Seconds, E> {
                Ok(Seconds(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Seconds, E> {
                Ok(Seconds(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seconds, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Seconds(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seconds, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Seconds(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The base64 `data` of a record, decoded and parsed as it is read.
struct DataField(Contents);

impl<'de> Deserialize<'de> for DataField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DataField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64 record data")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DataField, E> {
                Ok(DataField(decode_data(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

fn decode_data(base64: &str) -> Contents {
    // SIMD base64 takes what `base64`'s STANDARD engine takes (padded, canonical: a test holds them to it); what it
    // refuses goes through `base64`, which says why in the words the dead letters have always carried.
    let bytes = match base64_simd::STANDARD.decode_to_vec(base64) {
        Ok(bytes) => bytes,
        Err(_) => match base64::engine::general_purpose::STANDARD.decode(base64) {
            Ok(bytes) => bytes,
            Err(err) => {
                return Contents::One(Err((
                    DecodeError::Base64(err.to_string()),
                    base64.as_bytes().to_vec(),
                )))
            }
        },
    };
    record_events(bytes)
}

/// The events a record's data carries, decoded: a single event, a packed record's or a KPL aggregate's (the
/// one decoding every reader of the stream shares: consumers, replay, redrive).
pub fn record_events(bytes: Vec<u8>) -> Contents {
    events_of(&bytes)
}

/// [`record_events`] of bytes that are kept only if they are needed (for a dead letter): the fast pass decodes
/// each record's base64 into one buffer, and a valid event costs no copy of them.
fn events_of(bytes: &[u8]) -> Contents {
    if kpl::is_aggregate(bytes) {
        return match kpl::deaggregate(bytes) {
            Ok(users) => Contents::Many(
                users
                    .into_iter()
                    .map(|u| {
                        let key = Some(u.partition_key.to_owned());
                        (u.sub_sequence_number, key, decode_event(u.data))
                    })
                    .collect(),
                None,
            ),
            Err(err) => Contents::One(Err((err.into(), bytes.to_vec()))),
        };
    }
    match codec::unpack(bytes) {
        None => Contents::One(match codec::decode(bytes) {
            Ok(envelope) => Ok(envelope),
            Err(violations) => Err((DecodeError::Invalid(violations), bytes.to_vec())),
        }),
        Some(Ok(pack)) => Contents::Many(
            pack.events
                .into_iter()
                .zip(0u64..)
                // Each event is ordered by its own subject (a pack may hold several keys of one shard): no key of
                // its own, so the record's rule applies (`order_key`).
                .map(|(event, sub)| (sub, None, decode_event(&event)))
                .collect(),
            pack.shard.map(str::to_owned),
        ),
        Some(Err(violations)) => {
            Contents::One(Err((DecodeError::Invalid(violations), bytes.to_vec())))
        }
    }
}

impl Contents {
    /// Hands each event to `f`, in order: its sub-sequence number (`None` for a record that is one event), the key
    /// its order is kept by ([`BatchRecord::partition_key`]) and the event; `partition_key` is the record's.
    /// Returns the shard a pack names, which the caller checks against the shard it reads.
    pub fn each(
        self,
        partition_key: String,
        mut f: impl FnMut(Option<u64>, String, Decoded),
    ) -> Option<String> {
        match self {
            Contents::One(envelope) => {
                f(
                    None,
                    order_key(&envelope, Cow::Owned(partition_key)),
                    envelope,
                );
                None
            }
            Contents::Many(events, meant_for) => {
                for (sub, key, envelope) in events {
                    let key =
                        key.unwrap_or_else(|| order_key(&envelope, Cow::Borrowed(&partition_key)));
                    f(Some(sub), key, envelope);
                }
                meant_for
            }
        }
    }

    /// The events as a reader of `shard` takes them ([`Contents::each`]); none of a pack meant for another shard.
    pub fn for_shard(
        self,
        partition_key: String,
        shard: &str,
    ) -> Vec<(Option<u64>, String, Decoded)> {
        let mut events = Vec::new();
        let meant_for = self.each(partition_key, |sub, key, event| {
            events.push((sub, key, event))
        });
        if meant_for.is_some_and(|meant| meant != shard) {
            events.clear();
        }
        events
    }
}

/// The key an event without a partition key of its own is ordered by: its subject (a packed event's records
/// share one key; a producer may key a record of one event otherwise), else, undecoded, the record's key.
fn order_key(envelope: &Decoded, record_key: Cow<'_, str>) -> String {
    match envelope {
        Ok(e) if e.subject() != record_key => e.subject().to_owned(),
        _ => record_key.into_owned(),
    }
}

/// One event's bytes (of a pack or an aggregate) decoded.
fn decode_event(bytes: &[u8]) -> Decoded {
    codec::decode(bytes).map_err(|violations| (DecodeError::Invalid(violations), bytes.to_vec()))
}

/// A decoded batch of `events` (CloudEvents JSON), as one shard would deliver them: partition key = `subject`,
/// sequence numbers 1, 2, …. For consumer tests, benches and tools; `events` that do not serialise are skipped.
#[cfg(any(test, feature = "test-util"))]
pub fn batch_of(events: &[serde_json::Value]) -> KinesisBatch {
    use super::event::{kinesis_event, BatchSource};
    use super::record::StreamRecord;

    let records: Vec<StreamRecord> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            Some(StreamRecord {
                sequence_number: SequenceNumber::from(format!("{:056}", i + 1)),
                partition_key: e
                    .get("subject")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("none")
                    .to_owned(),
                data: serde_json::to_vec(e).ok()?,
                arrival: 1_795_000_000.0,
            })
        })
        .collect();
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes-consumer".into(),
    };
    KinesisBatch::from_event(&kinesis_event(&source, &records)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    const FIXTURE: &str = include_str!("../../../../tests/fixtures/kinesis-event.json");

    #[test]
    fn bad_base64_is_a_record_error_not_a_batch_error() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["Records"][1]["kinesis"]["data"] = json!("%%%not base64");
        let batch: KinesisBatch = serde_json::from_value(v).unwrap();
        assert!(matches!(
            batch.records[1].envelope,
            Err((DecodeError::Base64(_), _))
        ));
        // The fixture's "Hello World" is no event: a record error too, with its bytes kept for the dead letter.
        assert!(matches!(
            &batch.records[0].envelope,
            Err((DecodeError::Invalid(_), bytes)) if bytes == b"Hello World"
        ));
        assert_eq!(batch.shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(
            batch.event_source_arn.as_deref(),
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/simple-stream")
        );
    }

    #[test]
    fn the_arrival_is_read_as_a_number_or_a_string_and_an_odd_one_is_no_time_not_a_batch_error() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["Records"][1]["kinesis"]["approximateArrivalTimestamp"] = json!("1480841523.5");
        let batch: KinesisBatch = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(batch.records[0].arrival, Some(1_480_641_523.477));
        assert_eq!(batch.records[1].arrival, Some(1_480_841_523.5));
        for odd in [
            json!(null),
            json!(true),
            json!({"at": 1}),
            json!([1]),
            json!("soon"),
        ] {
            v["Records"][1]["kinesis"]["approximateArrivalTimestamp"] = odd.clone();
            let batch: KinesisBatch = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(batch.records[1].arrival, None, "{odd}");
            assert!(
                batch.records[1].envelope.is_err(),
                "the record itself still decoded"
            );
        }
    }

    #[test]
    fn a_payload_decodes_as_through_serde_and_a_bad_one_fails_in_the_runtimes_words() {
        let direct = KinesisBatch::from_payload(FIXTURE.as_bytes()).unwrap();
        let through_serde: KinesisBatch = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(format!("{direct:?}"), format!("{through_serde:?}"));
        assert_eq!(direct.records.len(), 2);
        // The runtime read one value and ignored what followed it; so does the handler.
        let trailing = format!("{FIXTURE} trailing");
        assert_eq!(
            KinesisBatch::from_payload(trailing.as_bytes())
                .unwrap()
                .records
                .len(),
            2
        );

        let context = "failed to deserialize the incoming data into the function's payload type";
        let err = KinesisBatch::from_payload(br#"{"records": []}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{context}: missing field `Records` at line 1 column 15\n")
        );
        let err = KinesisBatch::from_payload(
            br#"{"Records": [{"kinesis": {"partitionKey": "k", "sequenceNumber": 7}}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{context}: [Records[0].kinesis.sequenceNumber] invalid type: integer `7`"
            )),
            "{err}"
        );
        assert!(KinesisBatch::from_payload(b"").is_err());
    }

    #[test]
    fn simd_base64_takes_exactly_what_the_standard_engine_takes() {
        let standard = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
        let simd = |s: &str| base64_simd::STANDARD.decode_to_vec(s).ok();
        let odd = [
            "",
            "=",
            "==",
            "QQ==",
            "QR==",
            "QQ=",
            "QQ",
            "QUI=",
            "QUJ=",
            "QUI",
            "QUJD",
            "QUJD=",
            "Q===",
            "QUJD\n",
            " QUJD",
            "QU JD",
            "QUJD====",
            "QQ==QQ==",
            "-_-_",
            "+/+/",
            "%%%not base64",
            "SGVsbG8gV29ybGQ=",
            "AAAA",
            "////",
        ];
        for s in odd {
            assert_eq!(simd(s), standard(s), "{s:?}");
        }
        // Random strings over the alphabet, padding and a stray byte, long enough for the SIMD loops.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-";
        let mut rng = fastrand::Rng::with_seed(15);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let len = rng.usize(0..100);
            let mut s: String = (0..len)
                .map(|_| char::from(alphabet[rng.usize(..alphabet.len() - 2)]))
                .collect();
            // Mostly valid: a stray byte or padding in a few, somewhere.
            if rng.u8(..4) == 0 && len > 0 {
                let at = rng.usize(..len);
                let stray = alphabet[alphabet.len() - 2 + rng.usize(..2)];
                s.replace_range(at..=at, &char::from(stray).to_string());
            }
            let (a, b) = (simd(&s), standard(&s));
            assert_eq!(a, b, "{s:?}");
            if a.is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both sides of the comparison were exercised.
        assert!(accepted > 1_000 && refused > 1_000, "{accepted} {refused}");
        // And the same bytes for an event.
        let data = base64::engine::general_purpose::STANDARD.encode(b"{\"specversion\":\"1.0\"}");
        assert_eq!(simd(&data), standard(&data));
    }

    /// The fast pass ([`scan_batch`]) makes the very batch the serde pass makes, of every payload it takes:
    /// the fixture and a batch of events, each mutated at random.
    #[test]
    fn the_fast_pass_makes_the_batch_the_serde_pass_makes() {
        // Five records: the fast pass learns the members after `kinesis` from the first and passes the others'
        // by comparing bytes, which the mutations then break here and there.
        let events: Vec<Value> = (0..5)
            .map(|i| {
                json!({"specversion": "1.0", "id": format!("evt_{i}"), "source": "/shop", "type": "payment.received",
                       "subject": "acc_1", "time": "2026-11-22T10:00:00Z",
                       "data": {"payment_id": format!("pay_{i}"), "account_id": "acc_1", "amount": 1250,
                                "currency": "EUR", "payer_email": "ada@example.com"}})
            })
            .collect();
        let records: Vec<super::super::record::StreamRecord> = events
            .iter()
            .enumerate()
            .map(|(i, e)| super::super::record::StreamRecord {
                sequence_number: SequenceNumber::from(format!("{:056}", i + 1)),
                partition_key: "acc_1".into(),
                data: serde_json::to_vec(e).unwrap(),
                arrival: 1_795_000_000.125,
            })
            .collect();
        let source = super::super::event::BatchSource {
            event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            shard_id: "shardId-000000000000".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::123456789012:role/r".into(),
        };
        let ours =
            serde_json::to_vec(&super::super::event::kinesis_event(&source, &records)).unwrap();
        let seeds = [FIXTURE.as_bytes().to_vec(), ours];
        let tokens: &[&[u8]] = &[
            b"\"",
            b"\\",
            b"\\/",
            b"null",
            b"1",
            b"-1",
            b"1.5",
            b"1e400",
            b"\"1.5\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b" ",
            b"\x01",
            b"=",
            b"\"kinesis\":{},",
            b"\"data\":\"QQ==\",",
            b"\"Records\":[],",
            b"\xff",
        ];
        let mut rng = fastrand::Rng::with_seed(15);
        let (mut taken, mut declined) = (0, 0);
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..=rng.usize(..3) {
                let at = rng.usize(..bytes.len());
                let token = tokens[rng.usize(..tokens.len())];
                match rng.u8(..3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => {
                        bytes.splice(at..at, token.iter().copied());
                    }
                    _ => bytes[at] = token[0],
                }
            }
            match scan_batch(&bytes) {
                Some(fast) => {
                    taken += 1;
                    let slow = serde_json::from_slice::<KinesisBatch>(&bytes)
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
                    assert_eq!(
                        format!("{fast:?}"),
                        format!("{slow:?}"),
                        "{}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                None => declined += 1,
            }
        }
        assert!(taken > 1_000 && declined > 1_000, "{taken} {declined}");
    }

    /// The members after `kinesis` that records repeat are passed by comparing bytes only once nothing is left
    /// to learn from them: a first `eventID` without a shard in it leaves the shard to the next record's, as in
    /// the serde pass, even when the two records are alike but for it; and a record unlike the one before is
    /// read in full.
    #[test]
    fn records_alike_but_for_what_the_batch_still_learns_are_read_in_full() {
        let record = |id: &str, region: &str| {
            format!(
                r#"{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"k","sequenceNumber":"1","data":"e30=","approximateArrivalTimestamp":1.5}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"{id}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::1:role/r","awsRegion":"{region}","eventSourceARN":"arn:aws:kinesis:{region}:1:stream/s"}}"#
            )
        };
        let payload = format!(
            r#"{{"Records":[{},{},{},{}]}}"#,
            record("no-shard-here", "us-east-1"),
            record("shardId-000000000007:1", "us-east-1"),
            record("shardId-000000000007:2", "us-east-1"),
            // Another shard in its id: not the batch's, which the second record named.
            record("shardId-000000000008:3", "eu-west-1"),
        );
        let fast = scan_batch(payload.as_bytes()).expect("the fast pass takes it");
        let slow: KinesisBatch = serde_json::from_str(&payload).unwrap();
        assert_eq!(fast.shard_id.as_deref(), Some("shardId-000000000007"));
        assert_eq!(
            fast.event_source_arn.as_deref(),
            Some("arn:aws:kinesis:us-east-1:1:stream/s")
        );
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        assert_eq!(fast.records.len(), 4);
        // A record alike the one before but for a broken `eventID` (a raw control character in it), or for a
        // broken member after it: not taken, as serde_json does not take it.
        for broken in [
            payload.replacen("shardId-000000000007:2", "shardId-000000000007:\u{1}", 1),
            payload.replacen(
                r#""shardId-000000000007:2","eventName":"#,
                r#""shardId-000000000007:2","eventName""#,
                1,
            ),
        ] {
            assert_ne!(broken, payload);
            assert!(scan_batch(broken.as_bytes()).is_none(), "{broken}");
            assert!(serde_json::from_str::<KinesisBatch>(&broken).is_err());
        }
    }

    #[test]
    fn an_event_without_records_is_refused() {
        assert!(serde_json::from_str::<KinesisBatch>(r#"{"records": []}"#).is_err());
        assert!(serde_json::from_str::<KinesisBatch>(r#"{"Records": []}"#).is_ok());
    }
}
