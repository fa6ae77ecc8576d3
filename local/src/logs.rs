//! The local stack's logs: one file per function under `STATE/logs/`, JSON lines (see
//! `tubes_platform::telemetry::logs`), kept across restarts and rotated; read back pretty-printed (`make logs`) or
//! gathered for one event or trace across functions, in time order (`make trace ID`).
//!
//! - [`pretty`]: a line as a person reads it: `10:00:00.123 payments      INFO  batch done handled=3 …`.
//! - [`trace`]: every line that names an id (event id, trace id, request id), and every line of the traces those
//!   lines belong to, across the files, in time order.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use serde_json::Value;

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
    use std::fs::OpenOptions;
    use std::io::Write as _;

    use super::*;
    use serde_json::json;

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
