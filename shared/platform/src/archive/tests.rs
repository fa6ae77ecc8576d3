use serde_json::json;
use time::macros::datetime;

use super::*;

fn envelope() -> Envelope {
    let bytes = serde_json::to_vec(&json!({
        "specversion": "1.0", "id": "e1", "source": "/shop", "type": "user.signed_up", "subject": "usr_1",
        "time": "2026-11-22T10:00:00Z", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "marketing_opt_in": true,
                 "signed_up_at": "2026-11-22T10:00:00Z"}}))
    .unwrap();
    Envelope::decode(&bytes).unwrap()
}

fn at() -> Coordinates {
    Coordinates {
        partition_key: "usr_1".into(),
        shard_id: "shardId-000000000001".into(),
        sequence_number: "49590338271490256608559692538361571095921575989136588818".into(),
        sub_sequence_number: None,
        arrival: Coordinates::arrival_from(Some(1_764_345_625.123_456)),
    }
}

#[test]
fn keys_are_by_type_and_arrival_hour_and_named_after_the_batch() {
    assert_eq!(
        object_key(
            "payment.received",
            datetime!(2026-03-04 05:06:07 UTC),
            "shardId-000000000002",
            "4959"
        ),
        "events/payment.received/2026/03/04/05/shardId-000000000002-4959.ndjson.gz"
    );
    // Another offset is the same instant: the hour is UTC's.
    assert_eq!(
        object_key(UNDECODABLE, datetime!(2026-03-04 01:06:07 -04:00), "s", "1"),
        "events/_undecodable/2026/03/04/05/s-1.ndjson.gz"
    );
}

#[test]
fn arrival_is_kept_to_the_millisecond() {
    let arrival = Coordinates::arrival_from(Some(1_764_345_625.123_456));
    assert_eq!(arrival, datetime!(2025-11-28 16:00:25.123 UTC));
    assert_eq!(Coordinates::arrival_from(None), OffsetDateTime::UNIX_EPOCH);
}

#[test]
fn an_event_line_is_its_envelope_then_its_coordinates_and_reads_back_whole() {
    let mut out = Vec::new();
    event_line(&envelope(), &at(), &mut out);
    assert_eq!(out.last(), Some(&b'\n'));
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value["id"], "e1");
    assert_eq!(value["type"], "user.signed_up");
    assert_eq!(value["data"]["name"], "Ada");
    assert_eq!(value["partition_key"], "usr_1");
    assert_eq!(value["shard_id"], "shardId-000000000001");
    assert_eq!(value["arrival_time"], "2025-11-28T16:00:25.123Z");
    assert!(value["traceparent"].is_string(), "extensions are kept");
    let back = parse_line(&out[..out.len() - 1]).unwrap();
    assert_eq!(back.at, at());
    assert_eq!(back.content.unwrap(), envelope());
}

#[test]
fn an_undecodable_line_keeps_the_bytes_and_the_reason() {
    let mut out = Vec::new();
    undecodable_line(b"\xff not json", "invalid event: x", &at(), &mut out);
    let back = parse_line(out.trim_ascii_end()).unwrap();
    assert_eq!(back.at, at());
    assert_eq!(
        back.content.unwrap_err(),
        Undecodable {
            raw: b"\xff not json".to_vec(),
            error: "invalid event: x".into()
        }
    );
}

#[test]
fn lines_that_the_archive_does_not_write_are_refused_with_the_reason() {
    for (line, reason) in [
        (&b"not json"[..], "expected"),
        (br#"{"partition_key": "k"}"#, "shard_id"),
        (
            br#"{"partition_key": "k", "shard_id": "s", "sequence_number": "1", "arrival_time": "yesterday"}"#,
            "arrival_time",
        ),
        (
            br#"{"partition_key": "k", "shard_id": "s", "sequence_number": "1", "arrival_time": "2026-01-01T00:00:00Z", "id": "x"}"#,
            "envelope",
        ),
    ] {
        let err = parse_line(line).unwrap_err();
        assert!(err.0.contains(reason), "{err} should name {reason}");
    }
}

#[test]
fn compression_is_deterministic_and_reversible() {
    let lines = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
    let body = compress(&lines);
    assert_eq!(body, compress(&lines), "same lines, same bytes");
    assert!(body.len() < lines.len() / 4);
    assert_eq!(decompress(&body).unwrap(), lines);
    assert!(decompress(b"plain").is_err());
}
