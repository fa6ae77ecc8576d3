//! The event store (seeds: "an event store for analysis", "replay to recover from errors"): every record the
//! stream delivered, kept in object storage as gzip-compressed newline-delimited JSON. This module is the format,
//! shared by what writes it (the archive function) and what reads it (replay, `make query`); the object store is
//! a port with an S3 adapter ([`s3`]) and an in-memory one (`memory`, feature `test-util`).
//!
//! - **Layout**: `events/{type}/{yyyy}/{MM}/{dd}/{HH}/{shard}-{first sequence}.ndjson.gz` ([`object_key`]): by
//!   event type and the hour the record reached the stream, so a query that names both reads only those objects
//!   (Athena's partition projection maps the two path segments to the columns `event_type` and `dt`). Records
//!   that are no valid event go under the type [`UNDECODABLE`].
//! - **Lines**: the envelope as its JSON, followed by its stream coordinates: `partition_key`, `shard_id`,
//!   `sequence_number`, `arrival_time` ([`Coordinates`]); an undecodable record has the coordinates, `raw`
//!   (base64) and `error`. Coordinate names carry an underscore, which CloudEvents attribute names cannot, so
//!   they never meet an extension.
//! - **No duplicates**: an object's name is derived from its batch (shard and first sequence number), so a batch
//!   delivered again rewrites the same objects with the same lines.

use std::future::Future;

use base64::Engine as _;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_contract::Envelope;

use crate::classify::{Classify, Dependency};

#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod s3;

#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryObjects;
pub use s3::{read_all, S3Objects};

/// Where the objects live in the bucket.
pub const PREFIX: &str = "events/";

/// The type under which records that are no valid event are kept.
pub const UNDECODABLE: &str = "_undecodable";

/// The object store could not be written or read; the batch is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event store: {0}")]
pub struct ArchiveError(pub String);

impl Classify for ArchiveError {
    fn is_retryable(&self) -> bool {
        true
    }

    fn dependency(&self) -> Option<Dependency> {
        Some(Dependency::ARCHIVE)
    }
}

/// Objects by key: the archive's storage.
pub trait ObjectStore: Send + Sync {
    /// Writes `body` under `key`, replacing what was there.
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), ArchiveError>> + Send;
}

impl<S: ObjectStore> ObjectStore for &S {
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), ArchiveError>> + Send {
        (**self).put(key, body)
    }
}

/// Where a record was on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coordinates {
    /// The record's partition key.
    pub partition_key: String,
    /// Its shard.
    pub shard_id: String,
    /// Its sequence number in the shard (decimal digits).
    pub sequence_number: String,
    /// The event's place in its packed or KPL-aggregated record (absent for a record that is one event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_sequence_number: Option<u64>,
    /// When the stream received it.
    #[serde(rename = "arrival_time", with = "arrival_format")]
    pub arrival: OffsetDateTime,
}

/// RFC 3339 in UTC with milliseconds (`2026-11-28T16:20:25.123Z`): what Athena and DuckDB read as a timestamp.
mod arrival_format {
    use serde::{Serialize as _, Serializer};
    use time::macros::format_description;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        at.to_offset(time::UtcOffset::UTC)
            .format(&format)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl Coordinates {
    /// The arrival of a record from Lambda's `approximateArrivalTimestamp` (seconds since the epoch); the epoch
    /// itself when the event has none (Lambda always says), so the object name stays the same on every delivery.
    pub fn arrival_from(seconds: Option<f64>) -> OffsetDateTime {
        #[allow(clippy::cast_possible_truncation)]
        let nanos = seconds.map_or(0, |s| (s * 1e9).round() as i128);
        // Millisecond precision, as written: what is read back compares equal.
        let millis = nanos.div_euclid(1_000_000) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(millis).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// The object that holds records of type `ty` (an event type, or [`UNDECODABLE`]) that arrived at `arrival`, in
/// the batch of `shard_id` that starts at `first_sequence`.
pub fn object_key(
    ty: &str,
    arrival: OffsetDateTime,
    shard_id: &str,
    first_sequence: &str,
) -> String {
    let at = arrival.to_offset(time::UtcOffset::UTC);
    format!(
        "{PREFIX}{ty}/{:04}/{:02}/{:02}/{:02}/{shard_id}-{first_sequence}.ndjson.gz",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

/// The line of a valid event: its envelope, then its coordinates, then a newline.
pub fn event_line(envelope: &Envelope, at: &Coordinates, out: &mut Vec<u8>) {
    let start = out.len();
    // Both serialize to JSON objects, so neither write can fail; the envelope's closing brace gives way to the
    // coordinates' members.
    if serde_json::to_writer(&mut *out, envelope).is_err() || out.last() != Some(&b'}') {
        out.truncate(start);
        return;
    }
    out.pop();
    let mut members = Vec::with_capacity(160);
    if serde_json::to_writer(&mut members, at).is_ok() && members.len() > 2 {
        if out.len() > start + 1 {
            out.push(b',');
        }
        out.extend_from_slice(&members[1..]);
    } else {
        out.push(b'}');
    }
    out.push(b'\n');
}

/// The line of a record that is no valid event: its coordinates, its bytes (base64) and why.
pub fn undecodable_line(raw: &[u8], error: &str, at: &Coordinates, out: &mut Vec<u8>) {
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        at: &'a Coordinates,
        raw: String,
        error: &'a str,
    }
    let line = Line {
        at,
        raw: base64::engine::general_purpose::STANDARD.encode(raw),
        error,
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

/// One line of the archive read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedRecord {
    /// Where the record was on the stream.
    pub at: Coordinates,
    /// The event, or the record's bytes and why they were no event.
    pub content: Result<Envelope, Undecodable>,
}

/// A record kept although it was no valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Its bytes.
    pub raw: Vec<u8>,
    /// Why they were no event, when archived.
    pub error: String,
}

/// A line that is not one the archive writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an archive line: {0}")]
pub struct LineError(pub String);

/// Reads one line (without its newline) back into the record it was written from.
pub fn parse_line(line: &[u8]) -> Result<ArchivedRecord, LineError> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| LineError(e.to_string()))?;
    let partition_key = take_text(&mut object, "partition_key")?;
    let shard_id = take_text(&mut object, "shard_id")?;
    let sequence_number = take_text(&mut object, "sequence_number")?;
    let sub_sequence_number = match object.remove("sub_sequence_number") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| LineError("sub_sequence_number: not a whole number".into()))?,
        ),
    };
    let arrival_text = take_text(&mut object, "arrival_time")?;
    let arrival = OffsetDateTime::parse(&arrival_text, &Rfc3339)
        .map_err(|e| LineError(format!("arrival_time: {e}")))?;
    let at = Coordinates {
        partition_key,
        shard_id,
        sequence_number,
        sub_sequence_number,
        arrival,
    };
    let content = if object.contains_key("raw") && !object.contains_key("specversion") {
        let raw = take_text(&mut object, "raw")?;
        let error = take_text(&mut object, "error")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| LineError(format!("raw: {e}")))?;
        Err(Undecodable { raw, error })
    } else {
        let bytes = serde_json::to_vec(&object).map_err(|e| LineError(e.to_string()))?;
        Ok(Envelope::decode(&bytes).map_err(|v| LineError(format!("envelope: {v}")))?)
    };
    Ok(ArchivedRecord { at, content })
}

/// An object's body from its lines: gzip, deterministic (no timestamp or name in the header), so the same lines
/// always make the same bytes.
pub fn compress(lines: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(lines.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(lines);
    encoder.finish().unwrap_or_default()
}

/// An object's lines from its body.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, LineError> {
    use std::io::Read as _;
    let mut lines = Vec::with_capacity(body.len() * 4);
    flate2::read::MultiGzDecoder::new(body)
        .read_to_end(&mut lines)
        .map_err(|e| LineError(format!("not gzip: {e}")))?;
    Ok(lines)
}

fn take_text(
    object: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<String, LineError> {
    match object.remove(name) {
        Some(serde_json::Value::String(s)) => Ok(s),
        _ => Err(LineError(format!("no string member {name}"))),
    }
}

#[cfg(test)]
mod tests;
