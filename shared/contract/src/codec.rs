//! The Kinesis record codec: envelope ↔ record bytes and partition key.
//!
//! A record's data is the envelope as CloudEvents structured JSON, so the event source mapping's `FilterCriteria`
//! can route on `data.type` without decoding anything. The partition key is the envelope's `subject` (the
//! aggregate id), so one aggregate's events land on one shard, in order.
//!
//! Room to grow: a later record format packing many events of one type per record keeps `type` at the top level
//! (so filters still route it) and is told apart by its `datacontenttype`; [`decode`] is the one place to teach it.

use crate::envelope::Envelope;
use crate::violation::Violations;

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

/// Encodes an envelope as a record.
pub fn encode(envelope: &Envelope) -> Result<Record, EncodeError> {
    let record = Record {
        partition_key: envelope.subject().to_owned(),
        data: serde_json::to_vec(envelope)?,
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
    fn decode_rejects_garbage() {
        assert_eq!(
            decode(b"Hello World").unwrap_err().first().code,
            Code::MalformedJson
        );
    }
}
