//! The local stack's logs: one file per function under `STATE/logs/`, JSON lines (see
//! `tubes_platform::telemetry::logs`), kept across restarts and rotated; read back pretty-printed (`make logs`) or
//! gathered for one event or trace across functions, in time order (`make trace ID`).
//!
//! - [`split`]: what `cargo lambda watch` prints (every function's lines, cargo's own, the functions' EMF
//!   documents) routed to `{function}.log`, `metrics.log` and `watch.log`, build noise left out. Without live
//!   reload, `scripts/dev.sh` writes each function's output to its file itself.
//! - [`pretty`]: a line as a person reads it: `10:00:00.123 payments      INFO  batch done handled=3 …`.
//! - [`trace`]: every line that names an id (event id, trace id, request id), and every line of the traces those
//!   lines belong to, across the files, in time order.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A log file larger than this is rotated (to `NAME.1`, replacing the previous one) when it is opened.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Where a line of `cargo lambda watch`'s output goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A function's JSON line: to `{function}.log`.
    Function(String),
    /// An EMF document (no function named in it): to `metrics.log`.
    Metrics,
    /// cargo's and cargo lambda watch's own lines that a person needs (errors, warnings about the functions).
    Watch,
    /// Build noise: progress lines, file-lock waits.
    Noise,
}

/// The route of one line.
pub fn route(line: &str) -> Route {
    let trimmed = line.trim();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed) {
            if let Some(function) = map.get("function").and_then(Value::as_str) {
                if is_file_name(function) {
                    return Route::Function(function.to_owned());
                }
            }
            if map.contains_key("_aws") {
                return Route::Metrics;
            }
        }
        return Route::Watch;
    }
    const NOISE: [&str; 9] = [
        "Blocking waiting for file lock",
        "Compiling ",
        "Finished ",
        "Running `",
        "Building ",
        "Checking ",
        "Fresh ",
        "Updating ",
        "Locking ",
    ];
    if trimmed.is_empty() || NOISE.iter().any(|n| trimmed.starts_with(n)) {
        Route::Noise
    } else {
        Route::Watch
    }
}

/// A function name that can name a file: letters, digits, `-`, `_`, `.`, not starting with `.`.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Opens `path` to append, rotating it first if it is larger than [`ROTATE_BYTES`].
pub fn open_log(path: &Path) -> io::Result<File> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, rotated)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Routes every line of `input` to its file under `dir` (see [`route`]) until `input` ends. Each line is written
/// whole, at once, so that several writers of one file never interleave within a line.
pub fn split(input: impl BufRead, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut files: HashMap<String, File> = HashMap::new();
    for line in input.lines() {
        let line = match line {
            Ok(line) => line,
            // Not UTF-8: not one of ours; skip it rather than stop logging.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e),
        };
        let name = match route(&line) {
            Route::Function(f) => f,
            Route::Metrics => "metrics".to_owned(),
            Route::Watch => "watch".to_owned(),
            Route::Noise => continue,
        };
        let file = match files.get_mut(&name) {
            Some(file) => file,
            None => {
                let file = open_log(&dir.join(format!("{name}.log")))?;
                files.entry(name).or_insert(file)
            }
        };
        file.write_all(format!("{line}\n").as_bytes())?;
    }
    Ok(())
}

/// The function's short name: `tubes-consumer-payments` → `payments`, `tubes-ingest` → `ingest`.
fn short(function: &str) -> &str {
    function
        .strip_prefix("tubes-consumer-")
        .or_else(|| function.strip_prefix("tubes-"))
        .unwrap_or(function)
}

/// The fields a pretty line shows first or not at all.
const SHOWN_APART: [&str; 5] = ["timestamp", "level", "function", "message", "requestId"];

/// One line as a person reads it; a line that is not one of ours comes back as it is.
pub fn pretty(line: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line.trim()) else {
        return line.to_owned();
    };
    if map.contains_key("_aws") {
        let consumer = map
            .get("Consumer")
            .or_else(|| map.get("Function"))
            .and_then(Value::as_str)
            .unwrap_or("-");
        return format!("{:12} {consumer:13} EMF   metrics", "");
    }
    let text = |name: &str| map.get(name).and_then(Value::as_str).unwrap_or("");
    // 2026-11-28T10:00:00.123Z → 10:00:00.123
    let time = text("timestamp")
        .split_once('T')
        .map_or("", |(_, t)| t.trim_end_matches('Z'));
    let mut out = format!(
        "{time:12} {:13} {:5} {}",
        short(text("function")),
        text("level"),
        text("message")
    );
    for (name, value) in &map {
        if SHOWN_APART.contains(&name.as_str()) {
            continue;
        }
        match value {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push_str(&format!(" {name}={s}")),
            other => out.push_str(&format!(" {name}={other}")),
        }
    }
    out
}

/// The ids a line is about: its event, trace, traces (a batch's line) and request.
fn ids_of(line: &Value) -> impl Iterator<Item = &str> {
    [
        "event_id",
        "trace_id",
        "requestId",
        "published_id",
        "causationid",
    ]
    .into_iter()
    .filter_map(|k| line.get(k).and_then(Value::as_str))
    .chain(
        line.get("trace_ids")
            .and_then(Value::as_str)
            .into_iter()
            .flat_map(str::split_whitespace),
    )
}

/// The traces a line belongs to.
fn traces_of(line: &Value) -> impl Iterator<Item = &str> {
    line.get("trace_id")
        .and_then(Value::as_str)
        .into_iter()
        .chain(
            line.get("trace_ids")
                .and_then(Value::as_str)
                .into_iter()
                .flat_map(str::split_whitespace),
        )
}

/// The log files under `dir`, rotated ones too.
pub fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".log") || n.ends_with(".log.1"))
        })
        .collect();
    files.sort();
    files
}

/// Every line of `lines` about `id` (see the module docs), in time order: the lines that name it, then every line
/// of the traces those lines belong to.
pub fn trace(lines: &[Value], id: &str) -> Vec<Value> {
    // A record's or a request's own trace; not a batch line's list, which would pull in its other records' traces.
    let traces: BTreeSet<&str> = lines
        .iter()
        .filter(|l| ids_of(l).any(|i| i == id))
        .filter_map(|l| l.get("trace_id").and_then(Value::as_str))
        .chain(std::iter::once(id))
        .collect();
    let mut found: Vec<Value> = lines
        .iter()
        .filter(|l| ids_of(l).any(|i| i == id) || traces_of(l).any(|t| traces.contains(t)))
        .cloned()
        .collect();
    // RFC 3339 UTC timestamps of one width sort as text.
    found.sort_by(|a, b| {
        let t = |v: &Value| {
            v.get("timestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        t(a).cmp(&t(b))
    });
    found
}

/// The JSON lines of the log files under `dir`.
pub fn read_lines(dir: &Path) -> io::Result<Vec<Value>> {
    let mut lines = Vec::new();
    for path in log_files(dir) {
        let file = File::open(&path)?;
        for line in io::BufReader::new(file).lines().map_while(Result::ok) {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&line) {
                if v.get("timestamp").is_some() {
                    lines.push(v);
                }
            }
        }
    }
    Ok(lines)
}

/// What one of a consumer's EMF documents says (the harness writes one per batch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConsumerFigures {
    /// Records whose effect is done (`RecordsHandled`: not duplicates, not parked ones).
    pub handled: u64,
    /// Records skipped as already handled (`RecordsDuplicate`).
    pub duplicates: u64,
    /// The largest lag (ms), if it handled any.
    pub lag_ms: Option<f64>,
}

/// The consumer an EMF document is about, and what it says; `None` for any other line.
pub fn consumer_figures(line: &str) -> Option<(String, ConsumerFigures)> {
    if !line.contains("\"_aws\"") {
        return None;
    }
    let doc: Value = serde_json::from_str(line.trim()).ok()?;
    let consumer = doc.get("Consumer")?.as_str()?.to_owned();
    // EMF values are a number or an array of numbers.
    let values = |name: &str| -> Vec<f64> {
        match doc.get(name) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_f64).collect(),
            Some(v) => v.as_f64().into_iter().collect(),
            None => Vec::new(),
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let count = |name: &str| values(name).iter().sum::<f64>().max(0.0) as u64;
    Some((
        consumer,
        ConsumerFigures {
            handled: count("RecordsHandled"),
            duplicates: count("RecordsDuplicate"),
            lag_ms: values("Lag").into_iter().reduce(f64::max),
        },
    ))
}

/// New complete lines of the log files under a directory, file by file, from where the last read stopped. Files
/// there before the first read are read from their end (what happened before this run is not news); a file that
/// shrank was rotated, and is read from its start.
#[derive(Debug, Default)]
pub struct Tail {
    offsets: HashMap<PathBuf, u64>,
    started: bool,
}

impl Tail {
    /// The lines written under `dir` since the last call.
    pub fn read(&mut self, dir: &Path) -> Vec<String> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let first = !self.started;
        self.started = true;
        let mut lines = Vec::new();
        for path in log_files(dir) {
            if path.extension().is_some_and(|x| x == "1") {
                continue;
            }
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            let offset = self
                .offsets
                .entry(path.clone())
                .or_insert(if first { len } else { 0 });
            if len < *offset {
                *offset = 0;
            }
            if len == *offset {
                continue;
            }
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let mut text = String::new();
            if file.seek(SeekFrom::Start(*offset)).is_err()
                || file.read_to_string(&mut text).is_err()
            {
                continue;
            }
            // Only whole lines: a line being written is read next time.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            *offset += whole as u64;
            lines.extend(text[..whole].lines().map(str::to_owned));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_go_to_their_function_and_noise_nowhere() {
        assert_eq!(
            route(
                r#"{"timestamp":"t","level":"INFO","function":"tubes-ingest","message":"answered"}"#
            ),
            Route::Function("tubes-ingest".into())
        );
        assert_eq!(
            route(r#"{"_aws":{},"Consumer":"payments"}"#),
            Route::Metrics
        );
        assert_eq!(
            route(r#"{"function":"../../etc/passwd"}"#),
            Route::Watch,
            "a function name is never a path"
        );
        assert_eq!(
            route("    Blocking waiting for file lock on build directory"),
            Route::Noise
        );
        assert_eq!(route("   Compiling tubes-platform v0.1.0"), Route::Noise);
        assert_eq!(route(""), Route::Noise);
        assert_eq!(route(" ERROR the function panicked"), Route::Watch);
        assert_eq!(route("{not json"), Route::Watch);
    }

    #[test]
    fn split_writes_one_file_per_function_and_keeps_what_was_there() {
        let dir = std::env::temp_dir().join(format!("tubes-logs-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tubes-ingest.log"), "earlier\n").unwrap();
        let input = "{\"function\":\"tubes-ingest\",\"message\":\"a\"}\n   Compiling x\n{\"function\":\"tubes-consumer-payments\",\"message\":\"b\"}\nplain\n";
        split(input.as_bytes(), &dir).unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
        assert_eq!(
            read("tubes-ingest.log"),
            "earlier\n{\"function\":\"tubes-ingest\",\"message\":\"a\"}\n"
        );
        assert_eq!(read("tubes-consumer-payments.log").lines().count(), 1);
        assert_eq!(read("watch.log"), "plain\n");
        assert!(!read("watch.log").contains("Compiling"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_log_is_rotated_when_opened() {
        let dir = std::env::temp_dir().join(format!("tubes-logs-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        std::fs::write(&path, vec![b'x'; ROTATE_BYTES as usize + 1]).unwrap();
        let mut f = open_log(&path).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::metadata(dir.join("f.log.1")).unwrap().len(),
            ROTATE_BYTES + 1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_consumers_emf_document_gives_its_handled_duplicates_and_lag() {
        let doc = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"Consumer":"payments","RecordsHandled":3,"RecordsDuplicate":2,"Lag":[120.5,80.0]}"#;
        assert_eq!(
            consumer_figures(doc),
            Some((
                "payments".to_owned(),
                ConsumerFigures {
                    handled: 3,
                    duplicates: 2,
                    lag_ms: Some(120.5)
                }
            ))
        );
        let none = r#"{"_aws":{},"Consumer":"signups","RecordsHandled":1}"#;
        assert_eq!(
            consumer_figures(none),
            Some((
                "signups".to_owned(),
                ConsumerFigures {
                    handled: 1,
                    ..ConsumerFigures::default()
                }
            ))
        );
        assert_eq!(consumer_figures(r#"{"_aws":{},"Function":"ingest"}"#), None);
        assert_eq!(consumer_figures("plain"), None);
    }

    #[test]
    fn a_tail_reads_new_whole_lines_once() {
        let dir = std::env::temp_dir().join(format!("tubes-logs-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut tail = Tail::default();
        assert!(
            tail.read(&dir).is_empty(),
            "what was there before is not news"
        );
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(tail.read(&dir), ["one"]);
        f.write_all(b"o\n").unwrap();
        assert_eq!(tail.read(&dir), ["two"]);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(tail.read(&dir), ["new"], "rotated: read from its start");
        std::fs::write(dir.join("g.log"), "g1\n").unwrap();
        assert_eq!(tail.read(&dir), ["g1"], "a new file is read whole");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pretty_puts_time_function_level_and_message_first() {
        let line = r#"{"timestamp":"2026-11-28T10:00:00.123Z","level":"INFO","function":"tubes-consumer-payments","message":"batch done","requestId":"r1","handled":3,"trace_ids":"abc"}"#;
        assert_eq!(
            pretty(line),
            "10:00:00.123 payments      INFO  batch done handled=3 trace_ids=abc"
        );
        assert_eq!(pretty("not json"), "not json");
    }

    #[test]
    fn a_trace_gathers_what_one_event_caused_in_time_order() {
        let lines = vec![
            json!({"timestamp":"2026-11-28T10:00:03.000Z","function":"tubes-consumer-notifications","message":"handled","event_id":"out1","trace_id":"T"}),
            json!({"timestamp":"2026-11-28T10:00:01.000Z","function":"tubes-ingest","message":"answered","trace_id":"T"}),
            json!({"timestamp":"2026-11-28T10:00:02.000Z","function":"tubes-consumer-payments","message":"handled","event_id":"e1","trace_id":"T"}),
            json!({"timestamp":"2026-11-28T10:00:02.500Z","function":"tubes-consumer-payments","message":"batch done","trace_ids":"U T"}),
            json!({"timestamp":"2026-11-28T10:00:02.000Z","function":"tubes-consumer-payments","message":"handled","event_id":"e2","trace_id":"U"}),
            json!({"timestamp":"2026-11-28T10:00:00.000Z","function":"tubes-ingest","message":"answered","trace_id":"V"}),
        ];
        let messages = |found: Vec<Value>| -> Vec<String> {
            found
                .iter()
                .map(|l| {
                    format!(
                        "{} {}",
                        l["timestamp"].as_str().unwrap(),
                        l["message"].as_str().unwrap()
                    )
                })
                .collect()
        };
        let by_event = messages(trace(&lines, "e1"));
        assert_eq!(
            by_event,
            [
                "2026-11-28T10:00:01.000Z answered",
                "2026-11-28T10:00:02.000Z handled",
                "2026-11-28T10:00:02.500Z batch done",
                "2026-11-28T10:00:03.000Z handled"
            ]
        );
        assert_eq!(messages(trace(&lines, "T")), by_event);
        assert_eq!(messages(trace(&lines, "V")).len(), 1);
        assert!(trace(&lines, "nothing").is_empty());
    }
}
