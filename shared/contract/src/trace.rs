//! W3C Trace Context (`traceparent`), carried on events as the CloudEvents distributed-tracing extension.
//!
//! `00-{trace id: 32 hex}-{parent id: 16 hex}-{flags: 2 hex}`, lower case. Ingest takes the caller's
//! `traceparent` header (or starts a trace) and puts it on each event it writes, unless the event carries its own;
//! an event a consumer publishes carries its cause's ([`crate::Envelope::caused_by`]). One trace id then finds
//! everything one POST caused, in every function's logs.

use std::fmt;

/// The extension attribute (and HTTP header) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A valid `traceparent`: a trace id, the id of the span that caused this one (the parent), and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value as the W3C recommendation says a receiver must: version `00` exactly as
    /// written, a later version by its first four fields (followed by nothing or by `-`), never version `ff`,
    /// never an all-zero trace or parent id, lower-case hex only. `None` for anything else (the receiver then starts
    /// a new trace: a broken header must not refuse the request).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        let bytes = value.as_bytes();
        // ASCII first, so that slicing below never cuts a character.
        if bytes.len() < 55
            || !bytes[..55].is_ascii()
            || bytes[2] != b'-'
            || bytes[35] != b'-'
            || bytes[52] != b'-'
        {
            return None;
        }
        let version = hex(&value[0..2])? as u8;
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        if version != 0 && bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        let trace_id = hex(&value[3..35])?;
        let parent_id = hex(&value[36..52])? as u64;
        let flags = hex(&value[53..55])? as u8;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace, started here: `random` gives the trace id and the span id (non-zero parts are forced).
    /// The sampled flag is set: nothing downstream samples, everything is logged.
    pub fn start(random: u128, span: u64) -> Self {
        Self {
            trace_id: random.max(1),
            parent_id: span.max(1),
            flags: 0x01,
        }
    }

    /// The same trace, with `span` (the span of whoever passes it on) as the parent.
    pub fn child(self, span: u64) -> Self {
        Self {
            parent_id: span.max(1),
            ..self
        }
    }

    /// The trace id, 32 lower-case hex digits: what logs carry and what `make trace` and Logs Insights find.
    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand and written once: every ingest answer and log line carries one (`make bench ARGS=logs`).
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        fixed_hex(&mut text[3..35], self.trace_id);
        fixed_hex(&mut text[36..52], u128::from(self.parent_id));
        fixed_hex(&mut text[53..55], u128::from(self.flags));
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// A trace id, displayed as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(u128);

impl TraceId {
    /// The 32 hex digits, held on the stack: what a log line's `trace_id` field takes as a `&str`, without an
    /// allocation or the formatting machinery (ingest logs one per request, the harness holds one per record).
    pub fn to_hex(self) -> TraceHex {
        let mut text = [b'0'; 32];
        fixed_hex(&mut text, self.0);
        TraceHex(text)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

/// A trace id's 32 lower-case hex digits ([`TraceId::to_hex`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHex([u8; 32]);

impl TraceHex {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only hex digits are ever written into it (`fixed_hex`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Writes the low `out.len()` hex digits of `value` into `out`, lower case, zero-padded.
fn fixed_hex(out: &mut [u8], mut value: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Lower-case hex only (W3C: upper case is invalid), at most 32 digits.
fn hex(digits: &str) -> Option<u128> {
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let t = TraceParent::parse(GOOD).unwrap();
        assert_eq!(t.to_string(), GOOD);
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            TraceParent::parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t")
                .map(|t| t.to_string()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned())
        );
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(
            TraceParent::parse(later).map(|t| t.to_string()),
            Some(GOOD.to_owned())
        );
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x")
                .is_none()
        );
    }

    #[test]
    fn invalid_headers_are_none() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // 00 has nothing after
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", // misplaced dash
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_a_start_is_never_zero() {
        let t = TraceParent::parse(GOOD).unwrap();
        let c = t.child(0xabc);
        assert_eq!(c.trace_id(), t.trace_id());
        assert_eq!(
            c.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
        let s = TraceParent::start(0, 0);
        assert_eq!(TraceParent::parse(&s.to_string()), Some(s));
        // Zero-padded at both ends of the range, as `{:032x}` would write them.
        for (trace, span) in [(1, 1), (u128::MAX, u64::MAX)] {
            let t = TraceParent::start(trace, span);
            assert_eq!(
                t.to_string(),
                format!("00-{trace:032x}-{span:016x}-01"),
                "{t:?}"
            );
            assert_eq!(t.trace_id().to_string(), format!("{trace:032x}"));
            assert_eq!(t.trace_id().to_hex().as_str(), format!("{trace:032x}"));
        }
    }
}
