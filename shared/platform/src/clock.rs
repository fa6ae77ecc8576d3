//! One clock for every crate: the wall-clock time that idempotency records, dead letters, ingest's receive time,
//! the local stack and the tools read. Functions that apply rules to times take the time as an argument (so
//! tests need not wait); only the edges call these.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Milliseconds since the Unix epoch, now (idempotency records, Lambda's deadlines).
pub fn now_ms() -> i64 {
    // From the system clock directly: a calendar date (`now`) is work this does not need, on every request.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch, now, as Kinesis states arrival times (`approximateArrivalTimestamp`).
pub fn now_secs() -> f64 {
    seconds(now())
}

/// `time` in seconds since the Unix epoch.
pub fn seconds(time: OffsetDateTime) -> f64 {
    time.unix_timestamp_nanos() as f64 / 1e9
}

/// Seconds since the Unix epoch as RFC 3339 (empty if out of range), as Lambda writes times in its messages.
pub fn rfc3339(secs: f64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_readings_agree() {
        let (ms, secs) = (now_ms(), now_secs());
        assert!(
            (secs * 1000.0 - ms as f64).abs() < 5_000.0,
            "{secs} s vs {ms} ms"
        );
        assert_eq!(rfc3339(1_700_000_000.5), "2023-11-14T22:13:20.5Z");
    }
}
