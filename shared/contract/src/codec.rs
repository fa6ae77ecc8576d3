//! The Kinesis record codec: envelope ↔ record bytes and partition key.
//!
//! A record's data is the envelope as CloudEvents structured JSON, so the event source mapping's `FilterCriteria`
//! can route on `data.type` without decoding anything. The partition key is the envelope's `subject` (the
//! aggregate id), so one aggregate's events land on one shard, in order.
//!
//! **Packed records** carry several events in one record ([`pack`], [`unpack`]): Kinesis bills on-demand data per
//! record rounded up to 1 KiB and caps a shard at 1,000 records/s, so five 200-byte events in one record cost a
//! fifth and pass five times as fast. A packed record is a JSON object that starts with [`PACK_PREFIX`], lists the
//! distinct types it holds in `type` (an array: Lambda's filter patterns match an array when any element
//! matches, so a mapping's `data.type` filter still selects the records holding its types), and the events,
//! each the envelope as a single record would carry it, in order: as a JSON array (`events`), or, when that is
//! smaller (it nearly always is: events of a batch repeat their member names, source and type), that array
//! deflated and in base64 (`gz`), which keeps the record JSON for the filters:
//!
//! ```text
//! {"pack":1,"shard":"shardId-000000000001","type":["payment.received","user.signed_up"],"events":[{…},{…}]}
//! {"pack":1,"shard":"shardId-000000000001","type":["payment.received"],"gz":"7ZTNbtswEITvfQpC5…"}
//! ```
//!
//! `shard` names the shard the writer meant the pack for: a consumer skips a pack that landed on another (see
//! [`pack`]).

use crate::catalogue::EventType;
use crate::envelope::Envelope;
use crate::violation::{Code, Violation, Violations};

/// Kinesis's limit on one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// One Kinesis record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The aggregate id; Kinesis hashes it to a shard.
    pub partition_key: String,
    /// The envelope's JSON.
    pub data: Vec<u8>,
}

impl Record {
    /// Bytes this record counts against Kinesis's per-record and per-call limits.
    pub fn billed_size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Why an envelope could not become a record.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Over Kinesis's 1 MiB per record.
    #[error("record of {size} bytes exceeds the {MAX_RECORD_BYTES}-byte Kinesis limit")]
    TooLarge {
        /// Data plus partition key, in bytes.
        size: usize,
    },
    /// Serialisation failed (cannot happen for catalogue types; kept total rather than panicking).
    #[error("serialising the envelope failed: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The buffer [`encode`] starts with: most events take less (a payment is about 330 bytes).
const ENCODE_CAPACITY: usize = 512;

/// Encodes an envelope as a record.
pub fn encode(envelope: &Envelope) -> Result<Record, EncodeError> {
    // Room for a typical event at once: `to_vec` starts at 128 bytes and grows twice on the way.
    let mut data = Vec::with_capacity(ENCODE_CAPACITY);
    serde_json::to_writer(&mut data, envelope)?;
    let record = Record {
        partition_key: envelope.subject().to_owned(),
        data,
    };
    match record.billed_size() {
        size if size > MAX_RECORD_BYTES => Err(EncodeError::TooLarge { size }),
        _ => Ok(record),
    }
}

/// Decodes a record's data into a validated envelope (strict: every attribute must be present).
pub fn decode(data: &[u8]) -> Result<Envelope, Violations> {
    Envelope::decode(data)
}

/// The first bytes of a packed record's data: what tells it from a single event (whose JSON starts with
/// `{"specversion"`), checked without parsing.
pub const PACK_PREFIX: &[u8] = b"{\"pack\":1,";

/// Whether `data` is a packed record (see [`PACK_PREFIX`]).
pub fn is_packed(data: &[u8]) -> bool {
    data.starts_with(PACK_PREFIX)
}

/// What a packed record adds to its events' own bytes, besides its shard and type list: the prefix, the
/// members' names and the closing brace.
const PACK_OVERHEAD: usize = PACK_PREFIX.len() + r#""shard":"","type":[],"events":[]}"#.len();

/// The most bytes [`pack`] makes of `records` of the types `types` (distinct, in any order) for `shard`, partition
/// key included (the events as a plain array; deflated they take less): for a packer deciding whether one more
/// event fits.
pub fn packed_size(records: &[&Record], types: &[EventType], shard: &str) -> usize {
    let events =
        records.iter().map(|r| r.data.len()).sum::<usize>() + records.len().saturating_sub(1);
    let type_list = types
        .iter()
        .map(|t| t.as_str().len() + 3)
        .sum::<usize>()
        .saturating_sub(1);
    let key = records.first().map_or(0, |r| r.partition_key.len());
    PACK_OVERHEAD + shard.len() + type_list + events + key
}

/// One record carrying `records` (single-event records made by [`encode`], with their types), in order, meant
/// for `shard`; its partition key is `partition_key` (one whose hash falls in that shard, so Kinesis routes it
/// there). The caller keeps it within [`MAX_RECORD_BYTES`] ([`packed_size`]).
///
/// The shard is named so that a consumer can tell a pack that landed elsewhere (the writer's shard map was stale
/// across a split or a merge) and skip it: the writer sees where Kinesis put it and writes its events again.
pub fn pack(records: &[(EventType, &Record)], shard: &str, partition_key: &str) -> Record {
    let mut types: Vec<EventType> = Vec::new();
    for (ty, _) in records {
        if !types.contains(ty) {
            types.push(*ty);
        }
    }
    let mut data = Vec::with_capacity(
        PACK_OVERHEAD
            + shard.len()
            + records.iter().map(|(_, r)| r.data.len() + 1).sum::<usize>()
            + types.len() * 24,
    );
    data.extend_from_slice(PACK_PREFIX);
    // Shard ids and type names are plain identifiers: no escaping needed, but a shard id is checked anyway.
    data.extend_from_slice(b"\"shard\":");
    data.extend_from_slice(&serde_json::to_vec(shard).unwrap_or_else(|_| b"\"\"".to_vec()));
    data.extend_from_slice(b",\"type\":[");
    for (i, ty) in types.iter().enumerate() {
        if i > 0 {
            data.push(b',');
        }
        data.push(b'"');
        data.extend_from_slice(ty.as_str().as_bytes());
        data.push(b'"');
    }
    data.push(b']');
    let mut events =
        Vec::with_capacity(records.iter().map(|(_, r)| r.data.len() + 1).sum::<usize>() + 1);
    events.push(b'[');
    for (i, (_, record)) in records.iter().enumerate() {
        if i > 0 {
            events.push(b',');
        }
        events.extend_from_slice(&record.data);
    }
    events.push(b']');
    match deflated(&events) {
        Some(gz) if gz.len() + GZ_MEMBER.len() < events.len() + EVENTS_MEMBER.len() => {
            data.extend_from_slice(GZ_MEMBER);
            data.extend_from_slice(gz.as_bytes());
            data.extend_from_slice(b"\"}");
        }
        _ => {
            data.extend_from_slice(EVENTS_MEMBER);
            data.extend_from_slice(&events);
            data.push(b'}');
        }
    }
    Record {
        partition_key: partition_key.to_owned(),
        data,
    }
}

/// The member that holds a pack's events as a JSON array.
const EVENTS_MEMBER: &[u8] = b",\"events\":";
/// The member that holds them deflated, in base64 (the string's quotes included).
const GZ_MEMBER: &[u8] = b",\"gz\":\"";

/// The most bytes a pack's events inflate to: more than any pack a writer makes (a record is at most 1 MiB), so a
/// hostile record cannot make a reader allocate without bound.
const MAX_INFLATED_BYTES: u64 = 16 * 1024 * 1024;

/// `bytes` deflated (raw deflate, fast), in base64.
fn deflated(bytes: &[u8]) -> Option<String> {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(encoder.finish().ok()?))
}

/// `base64` inflated, at most [`MAX_INFLATED_BYTES`].
fn inflated(base64: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use std::io::Read as _;
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    let mut out = Vec::with_capacity(deflated.len() * 4);
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_INFLATED_BYTES).then_some(out)
}

/// A packed record, read: the shard it was meant for and its events, each as its own bytes (what [`decode`]
/// takes), in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Unpacked<'a> {
    /// The shard the writer meant it for (`None`: any).
    pub shard: Option<&'a str>,
    /// The events' bytes.
    pub events: Vec<Vec<u8>>,
}

/// A packed record's contents; `None` when `data` is not packed ([`is_packed`]), a violation when it claims to be
/// but is not a well-formed pack.
pub fn unpack(data: &[u8]) -> Option<Result<Unpacked<'_>, Violations>> {
    #[derive(serde::Deserialize)]
    struct Pack<'a> {
        #[serde(borrow, default)]
        shard: Option<&'a str>,
        #[serde(borrow, default)]
        events: Option<Vec<&'a serde_json::value::RawValue>>,
        #[serde(borrow, default)]
        gz: Option<&'a str>,
    }
    if !is_packed(data) {
        return None;
    }
    // serde's message may quote the data: not repeated (a violation never carries the offending value).
    let malformed = |field: &str, message: &str| {
        Violations::one(Violation::at(Code::MalformedJson, field, message))
    };
    let raw = |events: Vec<&serde_json::value::RawValue>| -> Vec<Vec<u8>> {
        events
            .into_iter()
            .map(|e| e.get().as_bytes().to_vec())
            .collect()
    };
    Some(match serde_json::from_slice::<Pack<'_>>(data) {
        Ok(Pack { shard, events: Some(events), gz: None }) => Ok(Unpacked { shard, events: raw(events) }),
        Ok(Pack { shard, events: None, gz: Some(gz) }) => match inflated(gz) {
            None => Err(malformed("/gz", "a packed record's gz must be deflated JSON in base64")),
            Some(bytes) => match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&bytes) {
                Ok(events) => Ok(Unpacked { shard, events: raw(events) }),
                Err(_) => Err(malformed("/gz", "a packed record's gz must inflate to a JSON array of events")),
            },
        },
        _ => Err(malformed(
            "/events",
            "a packed record must be a JSON object with an array of events (events) or its deflated base64 (gz)",
        )),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::violation::Code;

    fn envelope(name: &str) -> Envelope {
        let v = json!({
            "specversion": "1.0", "id": "e1", "source": "/t", "type": "user.signed_up",
            "data": {"user_id": "usr_9", "email": "a@b.co", "name": name, "signed_up_at": "2026-11-22T10:00:00Z"}
        });
        Envelope::parse(
            &serde_json::to_vec(&v).unwrap(),
            datetime!(2026-11-22 12:00 UTC),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_with_the_subject_as_partition_key() {
        let e = envelope("Ada");
        let record = encode(&e).unwrap();
        assert_eq!(record.partition_key, "usr_9");
        assert_eq!(decode(&record.data).unwrap(), e);
        // The type sits at the top level of the data, where FilterCriteria `data.type` looks.
        let v: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
        assert_eq!(v["type"], "user.signed_up");
    }

    #[test]
    fn refuses_records_over_the_kinesis_limit() {
        let mut e = envelope("Ada");
        e.extensions_mut()
            .insert("pad".into(), json!("x".repeat(MAX_RECORD_BYTES)));
        assert!(
            matches!(encode(&e), Err(EncodeError::TooLarge { size }) if size > MAX_RECORD_BYTES)
        );
    }

    #[test]
    fn a_pack_lists_its_types_for_filters_and_unpacks_to_its_events_in_order() {
        let (a, b, c) = (envelope("Ada"), envelope("Bob"), envelope("Cy"));
        let records: Vec<Record> = [&a, &b, &c].iter().map(|e| encode(e).unwrap()).collect();
        let ty = a.event_type();
        let items: Vec<(EventType, &Record)> = records.iter().map(|r| (ty, r)).collect();
        let packed = pack(&items, "shardId-000000000003", "lane");
        assert!(is_packed(&packed.data) && !is_packed(&records[0].data));
        assert_eq!(packed.partition_key, "lane");
        let refs: Vec<&Record> = records.iter().collect();
        let plain = packed_size(&refs, &[ty], "shardId-000000000003") - refs[0].partition_key.len()
            + "lane".len();
        // Events that repeat their names and values deflate: the pack is much smaller than the plain array.
        assert!(
            packed.billed_size() * 2 < plain,
            "{} of {plain}",
            packed.billed_size()
        );
        let v: serde_json::Value = serde_json::from_slice(&packed.data).unwrap();
        assert!(v["gz"].is_string() && v.get("events").is_none());
        // The type list is an array at the top level, where a `data.type` filter pattern looks.
        assert_eq!(v["type"], json!(["user.signed_up"]));
        let unpacked = unpack(&packed.data).unwrap().unwrap();
        assert_eq!(unpacked.shard, Some("shardId-000000000003"));
        let events = unpacked.events;
        let names: Vec<String> = events
            .iter()
            .map(|e| match decode(e).unwrap().event() {
                crate::Event::UserSignedUp(s) => s.name.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["Ada", "Bob", "Cy"]);
        assert!(unpack(&records[0].data).is_none());
    }

    #[test]
    fn what_does_not_deflate_stays_a_plain_array_and_its_size_is_exact() {
        // One short event: the deflate header and base64 cost more than they save.
        let record = Record {
            partition_key: "k".into(),
            data: br#"{"x":"q7Z"}"#.to_vec(),
        };
        let packed = pack(&[(EventType::UserSignedUp, &record)], "s", "k");
        let v: serde_json::Value = serde_json::from_slice(&packed.data).unwrap();
        assert_eq!(v["events"], serde_json::json!([{"x": "q7Z"}]));
        assert_eq!(
            packed_size(&[&record], &[EventType::UserSignedUp], "s"),
            packed.billed_size()
        );
        assert_eq!(unpack(&packed.data).unwrap().unwrap().events, [record.data]);
    }

    #[test]
    fn a_bad_or_oversized_gz_is_one_violation_at_gz() {
        use std::io::Write as _;
        // Not base64; base64 of no deflate stream; deflate of no JSON array; a deflate bomb past the reader's cap.
        let bomb = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(b"[").unwrap();
            for _ in 0..(MAX_INFLATED_BYTES / (1 << 20) + 1) {
                e.write_all(&[b' '; 1 << 20]).unwrap();
            }
            e.write_all(b"]").unwrap();
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                e.finish().unwrap(),
            )
        };
        for gz in [
            "%%%",
            "AAAA",
            deflated(b"{\"not\":\"an array\"}").unwrap().as_str(),
            &bomb,
        ] {
            let data = format!("{{\"pack\":1,\"type\":[],\"gz\":\"{gz}\"}}");
            let err = unpack(data.as_bytes()).unwrap().unwrap_err();
            assert_eq!(
                err.first().field.as_deref(),
                Some("/gz"),
                "{}",
                &gz[..gz.len().min(8)]
            );
        }
    }

    #[test]
    fn a_malformed_pack_is_one_violation_that_quotes_nothing() {
        for bad in [
            &b"{\"pack\":1,\"type\":[],\"events\":{}}"[..],
            b"{\"pack\":1,",
            b"{\"pack\":1,\"events\":[1,",
        ] {
            let err = unpack(bad).unwrap().unwrap_err();
            assert_eq!(err.first().code, Code::MalformedJson);
            assert_eq!(err.first().field.as_deref(), Some("/events"));
        }
        // A pack whose events are not events: it unpacks, and each event is refused on its own.
        let unpacked = unpack(b"{\"pack\":1,\"type\":[],\"events\":[1,{\"a\":2}]}")
            .unwrap()
            .unwrap();
        assert_eq!(unpacked.shard, None);
        let events = unpacked.events;
        assert_eq!(events, [b"1".to_vec(), b"{\"a\":2}".to_vec()]);
        assert!(decode(&events[0]).is_err());
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(
            decode(b"Hello World").unwrap_err().first().code,
            Code::MalformedJson
        );
    }
}
