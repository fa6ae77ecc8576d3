//! Log lines: one JSON object per line, the same in Lambda and locally, each with what finds it again.
//!
//! ```json
//! {"timestamp":"2026-11-28T10:00:00.123Z","level":"INFO","function":"tubes-consumer-payments","message":"batch done",
//!  "requestId":"…","consumer":"payments","handled":3,"trace_ids":"4bf9…"}
//! ```
//!
//! - `timestamp` (UTC, milliseconds), `level`, `function` (`AWS_LAMBDA_FUNCTION_NAME`) and `message` first;
//! - then the fields of every span the line was logged in, outermost first: the runtime's `requestId`, the
//!   harness's `event_id`, `source`, `event_type` and `trace_id` for a record's lines (when it spans records: at
//!   DEBUG, and around a warning about a record or a parked one);
//! - then the line's own fields (written as they come: a name repeated in a span and the line appears twice, and
//!   JSON readers take the last). The runtime's `xrayTraceId` is left out: X-Ray is off (docs/observability.md),
//!   `trace_id` is what correlates.
//!
//! The level is `TUBES_LOG` or else `RUST_LOG` (tracing's directives, e.g. `info,tubes=debug`) if set, else
//! `AWS_LAMBDA_LOG_LEVEL` (the template's `ApplicationLogLevel`), else `INFO`. Lambda's own JSON format (`LogFormat: JSON`) takes these
//! lines as they are, and its level filter reads the same `level`.

use std::fmt::{self, Write as _};

use lambda_runtime::tracing::subscriber;
use std::io::Write as _;

use subscriber::filter::{EnvFilter, LevelFilter};
use subscriber::fmt::MakeWriter;
use subscriber::layer::SubscriberExt as _;
use subscriber::layer::{Context, Layer};
use subscriber::registry::LookupSpan;
use subscriber::util::SubscriberInitExt as _;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Subscriber};

/// Logs to standard output as [`JsonLines`], at the level the environment says (see the module docs). Call once,
/// at the cold start; a second call changes nothing.
pub fn init() {
    init_with_writer(std::io::stdout);
}

/// [`init`], writing to `writer`.
pub fn init_with_writer<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let lines = subscriber(
        writer,
        var("AWS_LAMBDA_FUNCTION_NAME"),
        // TUBES_LOG first: cargo lambda watch sets RUST_LOG=info for the functions it starts.
        filter(
            var("TUBES_LOG").or_else(|| var("RUST_LOG")),
            var("AWS_LAMBDA_LOG_LEVEL"),
        ),
    );
    // Already set (a test that initialised first): keep that one.
    let _ = lines.try_init();
}

/// The subscriber [`init`] installs: [`JsonLines`] naming `function`, to `writer`, through `filter`. Tests use it
/// with `tracing::subscriber::with_default`.
pub fn subscriber<W>(
    writer: W,
    function: Option<String>,
    filter: EnvFilter,
) -> impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber::registry()
        .with(filter)
        .with(JsonLines::new(function, writer))
}

/// The filter: `rust_log`'s directives if given, else `lambda_level` (Lambda's `TRACE`…`FATAL`), else INFO.
pub fn filter(rust_log: Option<String>, lambda_level: Option<String>) -> EnvFilter {
    if let Some(directives) = rust_log {
        if let Ok(filter) = EnvFilter::builder().parse(&directives) {
            return filter;
        }
    }
    let level = lambda_level
        .map(|l| {
            if l.eq_ignore_ascii_case("fatal") {
                "error".to_owned()
            } else {
                l
            }
        })
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("")
}

/// The layer that writes the lines (see the module docs): each line built in one buffer, straight from the
/// fields (no intermediate values), and written whole in one call, so that concurrent writers never interleave
/// within a line. A line costs its formatting and that write (`make bench ARGS=logs`).
pub struct JsonLines<W> {
    /// `,"function":"…"`, ready to append.
    function: String,
    writer: W,
}

impl<W> JsonLines<W> {
    /// Lines that name `function`, if given, written to `writer`.
    pub fn new(function: Option<String>, writer: W) -> Self {
        let mut member = String::new();
        if let Some(function) = function {
            member.push_str(",\"function\":");
            push_str(&mut member, &function);
        }
        Self {
            function: member,
            writer,
        }
    }
}

/// A span's fields as `,"name":value` members, ready to append to a line.
struct SpanMembers(String);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut members = String::new();
        attrs.record(&mut Members {
            line: &mut members,
            message: None,
        });
        span.extensions_mut().insert(SpanMembers(members));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanMembers(members)) = extensions.get_mut::<SpanMembers>() {
            // Members start with their comma: appending is enough.
            values.record(&mut Members {
                line: members,
                message: None,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        SCRATCH.with(|cell| {
            // One buffer per thread, reused: a line allocates nothing once the buffers have grown.
            let Ok(mut scratch) = cell.try_borrow_mut() else {
                return; // a line logged while writing a line (from the writer itself): dropped
            };
            let Scratch { line, own, second } = &mut *scratch;
            line.clear();
            own.clear();
            line.push_str("{\"timestamp\":\"");
            push_timestamp(line, second);
            line.push_str("\",\"level\":\"");
            line.push_str(event.metadata().level().as_str());
            line.push('"');
            line.push_str(&self.function);
            // One pass over the fields: the message goes on the line now, the line's own fields wait in `own`
            // until the spans' members (outermost first) are written.
            event.record(&mut Members {
                line: own,
                message: Some(line),
            });
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(SpanMembers(members)) = span.extensions().get::<SpanMembers>() {
                        line.push_str(members);
                    }
                }
            }
            line.push_str(own);
            line.push_str("}\n");
            // A line that cannot be written is lost, never a failure of the function.
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
        });
    }
}

/// A thread's buffers for writing lines.
struct Scratch {
    /// The line being written.
    line: String,
    /// The event's own fields, written while its message goes on the line.
    own: String,
    /// The current second, formatted (`2026-11-28T10:00:00.`), and which second it is.
    second: (i64, String),
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        line: String::with_capacity(512),
        own: String::with_capacity(256),
        second: (i64::MIN, String::new()),
    });
}

/// Appends now as RFC 3339 UTC with three digits of milliseconds (lines of one width sort by time as text, which
/// `make trace` does). The date and time of day are formatted once per second, into `cached`.
fn push_timestamp(line: &mut String, cached: &mut (i64, String)) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    if cached.0 != second {
        let at = time::OffsetDateTime::from_unix_timestamp(second)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        cached.1.clear();
        let _ = write!(
            cached.1,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        cached.0 = second;
    }
    line.push_str(&cached.1);
    let millis = since.subsec_millis();
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        line.push(char::from(b'0' + digit as u8));
    }
    line.push('Z');
}

/// Appends `n` in decimal, without the formatting machinery.
fn push_u64(line: &mut String, mut n: u64) {
    if n < 10 {
        // Most counts in a line: one digit.
        line.push(char::from(b'0' + n as u8));
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// The runtime's span field for X-Ray's trace header: left out, X-Ray is off (`trace_id` correlates instead).
const XRAY_TRACE_ID: &str = "xrayTraceId";

/// Writes a record's fields as `,"name":value` members to `line`; the `message` to its own line as
/// `,"message":…` if given one, else not at all (a span's).
struct Members<'a> {
    line: &'a mut String,
    message: Option<&'a mut String>,
}

impl Members<'_> {
    /// Starts the member `field` on the line it goes to, or says to skip it.
    fn open(&mut self, field: &Field) -> Option<&mut String> {
        let name = field.name();
        let line = match &mut self.message {
            Some(line) if name == "message" => line,
            None if name == "message" => return None,
            _ if name == XRAY_TRACE_ID => return None,
            _ => &mut *self.line,
        };
        line.push_str(",\"");
        // Field names are nearly always Rust identifiers: escaping scans them and copies them whole.
        let _ = Escaped(line).write_str(name);
        line.push_str("\":");
        Some(line)
    }
}

impl Visit for Members<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if let Some(line) = self.open(field) {
            if value.is_finite() {
                let _ = write!(line, "{value}");
            } else {
                line.push_str("null");
            }
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(line) = self.open(field) {
            if value < 0 {
                line.push('-');
            }
            push_u64(line, value.unsigned_abs());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(line) = self.open(field) {
            push_u64(line, value);
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(line) = self.open(field) {
            line.push_str(if value { "true" } else { "false" });
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(line) = self.open(field) {
            push_str(line, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if let Some(line) = self.open(field) {
            line.push('"');
            let _ = write!(Escaped(line), "{value}");
            line.push('"');
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields and the message arrive here, displayed.
        if let Some(line) = self.open(field) {
            line.push('"');
            let _ = write!(Escaped(line), "{value:?}");
            line.push('"');
        }
    }
}

/// Appends `text` as a JSON string.
fn push_str(line: &mut String, text: &str) {
    line.push('"');
    let _ = Escaped(line).write_str(text);
    line.push('"');
}

/// Writes text into a JSON string: quotes, backslashes and control characters escaped.
struct Escaped<'a>(&'a mut String);

/// The bytes a JSON string cannot hold as they are: the quote, the backslash and control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// Whether none of `bytes` needs escaping, eight at a time (nearly every name and value is clean: the check is
/// most of what escaping costs).
fn clean(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact per word: some byte is zero / below 0x20 iff the expression is non-zero.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let dirty = |w: u64| {
        (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * 0x7f))
            != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if dirty(u64::from_le_bytes(word)) {
            return false;
        }
    }
    // The tail, shifted into a word of clean bytes (in registers: a copy through memory stalls the load).
    let mut word = ONES * u64::from(b'a');
    for (i, &b) in chunks.remainder().iter().enumerate() {
        let shift = 8 * i;
        word = (word & !(0xff << shift)) | (u64::from(b) << shift);
    }
    !dirty(word)
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if clean(text.as_bytes()) {
            self.0.push_str(text);
            return Ok(());
        }
        let mut start = 0;
        for (i, &b) in text.as_bytes().iter().enumerate() {
            if !NEEDS_ESCAPE[usize::from(b)] {
                continue;
            }
            self.0.push_str(&text[start..i]);
            match b {
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                b'\n' => self.0.push_str("\\n"),
                b'\r' => self.0.push_str("\\r"),
                b'\t' => self.0.push_str("\\t"),
                _ => {
                    let _ = write!(self.0, "\\u{b:04x}");
                }
            }
            start = i + 1;
        }
        self.0.push_str(&text[start..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_timestamps_are_written_by_hand_as_the_formatter_would() {
        for n in [0, 7, 10, 99_999, u64::MAX] {
            let mut line = String::new();
            push_u64(&mut line, n);
            assert_eq!(line, n.to_string());
        }
        let mut line = String::new();
        let mut cached = (i64::MIN, String::new());
        push_timestamp(&mut line, &mut cached);
        push_timestamp(&mut line, &mut cached); // the second one from the cached second
        let (a, b) = line.split_at(24);
        for stamp in [a, b] {
            assert!(
                time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{stamp}"
            );
            assert!(
                stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
                "{stamp}"
            );
        }
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_table_for_every_byte_anywhere() {
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'x'; len];
                    text[at] = b;
                    assert_eq!(
                        clean(&text),
                        !NEEDS_ESCAPE[usize::from(b)],
                        "byte {b:#04x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(clean(b""));
        // Non-ASCII text is written as it is (JSON allows it); only the table's bytes are escaped.
        let mut line = String::new();
        let _ = Escaped(&mut line).write_str("é\"\u{7}\\ok");
        assert_eq!(line, "é\\\"\\u0007\\\\ok");
    }

    #[test]
    fn the_level_comes_from_rust_log_then_lambda_then_info() {
        let shown = |f: EnvFilter| f.to_string();
        assert_eq!(
            shown(filter(
                Some("warn,tubes=debug".into()),
                Some("ERROR".into())
            )),
            "tubes=debug,warn"
        );
        assert_eq!(shown(filter(None, Some("DEBUG".into()))), "debug");
        assert_eq!(shown(filter(None, Some("FATAL".into()))), "error");
        assert_eq!(shown(filter(None, Some("nonsense".into()))), "info");
        assert_eq!(shown(filter(None, None)), "info");
    }
}
