//! The live view: one line per batch, a periodic summary per function and shard, and (optionally) the same
//! facts as JSON lines in a file, for tools and tests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use tubes_platform::clock;

/// Counters of one (function, shard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `MillisBehindLatest` of the last read.
    pub iterator_age_ms: i64,
    /// Records checkpointed after a successful invocation.
    pub processed: u64,
    /// Records the filter criteria dropped.
    pub filtered: u64,
    /// Invocations.
    pub invocations: u64,
    /// Invocations that were retries (of a failed batch, or of its tail after a partial failure).
    pub retries: u64,
    /// Invocations that failed in whole or in part.
    pub failures: u64,
    /// Records sent to the on-failure destination.
    pub dead_lettered: u64,
}

/// One invocation, for the view.
#[derive(Debug, Clone)]
pub struct BatchLine<'a> {
    /// The function's logical id.
    pub function: &'a str,
    /// The shard.
    pub shard: &'a str,
    /// The lane within the shard (`ParallelizationFactor`).
    pub lane: usize,
    /// The batch's records: (sequence number, partition key).
    pub records: Vec<(&'a str, &'a str)>,
    /// How the result was read.
    pub outcome: &'a str,
    /// Whether it failed in whole or in part.
    pub failed: bool,
    /// Whether this invocation was a retry.
    pub retry: bool,
    /// Records it processed (checkpointed, not given up on).
    pub processed: usize,
    /// Invocation latency.
    pub latency_ms: f64,
}

/// Where the view goes.
#[derive(Debug)]
pub struct View {
    log: Option<Mutex<File>>,
    quiet: bool,
    stats: Mutex<BTreeMap<(String, String), Stats>>,
}

fn now() -> String {
    clock::now().format(&Rfc3339).unwrap_or_default()
}

impl View {
    /// A view printing to stdout (unless `quiet`) and appending JSON lines to `log`.
    pub fn new(log: Option<File>, quiet: bool) -> Self {
        View {
            log: log.map(Mutex::new),
            quiet,
            stats: Mutex::default(),
        }
    }

    fn with_stats(&self, function: &str, shard: &str, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut m) = self.stats.lock() {
            f(m.entry((function.to_owned(), shard.to_owned()))
                .or_default());
        }
    }

    fn emit(&self, line: Option<String>, record: Value) {
        if let (Some(line), false) = (line, self.quiet) {
            // A closed stdout (the view piped into `head`) must not stop the emulator.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        if let Some(log) = &self.log {
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{record}");
            }
        }
    }

    /// Any event worth a line (startup, shards found, errors).
    pub fn note(&self, kind: &str, message: &str, fields: Value) {
        let mut record = json!({"at": now(), "kind": kind, "message": message});
        if let (Value::Object(r), Value::Object(f)) = (&mut record, fields) {
            r.extend(f);
        }
        self.emit(
            Some(format!(
                "{} {kind:<10} {message}",
                &now()[11..23.min(now().len())]
            )),
            record,
        );
    }

    /// A read of a shard.
    pub fn read(&self, function: &str, shard: &str, millis_behind: i64, filtered: u64) {
        self.with_stats(function, shard, |s| {
            s.iterator_age_ms = millis_behind;
            s.filtered += filtered;
        });
    }

    /// An invocation and its outcome.
    pub fn batch(&self, b: &BatchLine<'_>) {
        self.with_stats(b.function, b.shard, |s| {
            s.invocations += 1;
            s.retries += u64::from(b.retry);
            s.failures += u64::from(b.failed);
            s.processed += b.processed as u64;
        });
        let (first, last) = (
            b.records.first().map_or("", |r| r.0),
            b.records.last().map_or("", |r| r.0),
        );
        let at = now();
        let line = format!(
            "{} {:<22} {}/{} {:>5} rec  {:>7.1} ms  {}{}  [{}…{}]",
            &at[11..23.min(at.len())],
            b.function,
            b.shard,
            b.lane,
            b.records.len(),
            b.latency_ms,
            if b.retry { "retry " } else { "" },
            b.outcome,
            tail(first),
            tail(last),
        );
        let record = json!({
            "at": at, "kind": "batch", "function": b.function, "shard": b.shard, "lane": b.lane,
            "sequence_numbers": b.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            "partition_keys": b.records.iter().map(|r| r.1).collect::<Vec<_>>(),
            "outcome": b.outcome, "failed": b.failed, "retry": b.retry, "processed": b.processed,
            "latency_ms": b.latency_ms,
        });
        self.emit(Some(line), record);
    }

    /// Records sent to the on-failure destination.
    pub fn dead_letter(
        &self,
        function: &str,
        shard: &str,
        condition: &str,
        sequence_numbers: &[&str],
        queue: &str,
    ) {
        self.with_stats(function, shard, |s| {
            s.dead_lettered += sequence_numbers.len() as u64
        });
        let at = now();
        let line = format!(
            "{} {function:<22} {shard} {:>5} rec  → on-failure {queue} ({condition})",
            &at[11..23.min(at.len())],
            sequence_numbers.len()
        );
        let record = json!({"at": at, "kind": "dead_letter", "function": function, "shard": shard,
                            "condition": condition, "sequence_numbers": sequence_numbers, "queue": queue});
        self.emit(Some(line), record);
    }

    /// The counters, per (function, shard).
    pub fn stats(&self) -> BTreeMap<(String, String), Stats> {
        self.stats.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Prints the summary table.
    pub fn summary(&self) {
        let stats = self.stats();
        if stats.is_empty() || self.quiet {
            return;
        }
        let mut out = format!(
            "\n{:<22} {:<22} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>6}\n",
            "function",
            "shard",
            "age ms",
            "processed",
            "filtered",
            "invokes",
            "retries",
            "failures",
            "dead"
        );
        for ((f, shard), s) in &stats {
            out.push_str(&format!(
                "{f:<22} {shard:<22} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>6}\n",
                s.iterator_age_ms,
                s.processed,
                s.filtered,
                s.invocations,
                s.retries,
                s.failures,
                s.dead_lettered
            ));
        }
        let _ = writeln!(std::io::stdout().lock(), "{out}");
    }
}

/// The last digits of a sequence number: enough to tell records apart on a line.
fn tail(seq: &str) -> &str {
    &seq[seq.len().saturating_sub(6)..]
}
