//! The live view: one line per batch, a summary per function when something changed (quiet when idle), both
//! within 80 columns, and (optionally) the same facts as JSON lines in a file, for tools and tests. Parked records
//! are counted from the dead-letter queues themselves, so the view never says 0 while letters wait.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use tubes_platform::clock;

use crate::logs::ConsumerFigures;

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
    /// Records the consumer parked in its dead-letter queue during the invocation.
    pub parked: u64,
}

/// Where the view goes.
#[derive(Debug)]
pub struct View {
    log: Option<Mutex<File>>,
    quiet: bool,
    stats: Mutex<BTreeMap<(String, String), Stats>>,
    /// Per function, the messages last seen waiting in its dead-letter queue.
    parked: Mutex<BTreeMap<String, u64>>,
    /// Whether anything happened since the last summary.
    changed: AtomicBool,
    /// Per consumer (the harness's name), from its EMF documents: duplicates in all, and the last batch's lag.
    consumers: Mutex<BTreeMap<String, ConsumerFigures>>,
    /// Function logical id → its binary (`tubes-consumer-payments`), to find its consumer's figures.
    binaries: Mutex<BTreeMap<String, String>>,
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
            parked: Mutex::default(),
            changed: AtomicBool::new(false),
            consumers: Mutex::default(),
            binaries: Mutex::default(),
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

    /// The functions' binaries, by logical id: a function's row shows the figures of the consumer it runs (the
    /// consumer whose name ends its binary's name: `payments` in `tubes-consumer-payments`).
    pub fn functions(&self, binaries: impl IntoIterator<Item = (String, String)>) {
        if let Ok(mut b) = self.binaries.lock() {
            b.extend(binaries);
        }
    }

    /// What one of `consumer`'s EMF documents says: its counts are added, its lag is the latest.
    pub fn consumer_metrics(&self, consumer: &str, figures: ConsumerFigures) {
        if let Ok(mut c) = self.consumers.lock() {
            let entry = c.entry(consumer.to_owned()).or_default();
            entry.handled += figures.handled;
            entry.duplicates += figures.duplicates;
            if figures.lag_ms.is_some() {
                entry.lag_ms = figures.lag_ms;
            }
        }
    }

    /// The figures of the consumer `function` runs, if it reported any.
    fn consumer_of(&self, function: &str) -> Option<ConsumerFigures> {
        let binary = self.binaries.lock().ok()?.get(function)?.clone();
        let consumers = self.consumers.lock().ok()?;
        consumers
            .iter()
            .filter(|(name, _)| binary == **name || binary.ends_with(&format!("-{name}")))
            .map(|(_, figures)| *figures)
            .next()
    }

    /// `function`'s dead-letter queue holds `depth` messages now: returns how many more than last seen (what the
    /// last invocation parked; 0 when letters were taken out).
    pub fn parked_now(&self, function: &str, depth: u64) -> u64 {
        let Ok(mut parked) = self.parked.lock() else {
            return 0;
        };
        let last = parked.insert(function.to_owned(), depth).unwrap_or(0);
        depth.saturating_sub(last)
    }

    /// An invocation and its outcome.
    pub fn batch(&self, b: &BatchLine<'_>) {
        self.changed.store(true, Ordering::Relaxed);
        self.with_stats(b.function, b.shard, |s| {
            s.invocations += 1;
            s.retries += u64::from(b.retry);
            s.failures += u64::from(b.failed);
            s.processed += b.processed as u64;
        });
        let at = now();
        let line = batch_line(&at, b);
        let record = json!({
            "at": at, "kind": "batch", "function": b.function, "shard": b.shard, "lane": b.lane,
            "sequence_numbers": b.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            "partition_keys": b.records.iter().map(|r| r.1).collect::<Vec<_>>(),
            "outcome": b.outcome, "failed": b.failed, "retry": b.retry, "processed": b.processed,
            "latency_ms": b.latency_ms, "parked": b.parked,
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
        self.changed.store(true, Ordering::Relaxed);
        self.with_stats(function, shard, |s| {
            s.dead_lettered += sequence_numbers.len() as u64
        });
        // The mapping's own message (one per failed batch) is not a record the consumer parked.
        if let Ok(mut parked) = self.parked.lock() {
            *parked.entry(function.to_owned()).or_default() += 1;
        }
        let at = now();
        let line = format!(
            "{} {:<20} {:>3}   {:>4} rec → on-failure ({condition})",
            &at[11..23.min(at.len())],
            clip(short(function), 20),
            shard_number(shard),
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

    /// The summary table, per function (its shards together): `None` when nothing happened since the last one.
    pub fn summary_text(&self) -> Option<String> {
        if !self.changed.swap(false, Ordering::Relaxed) {
            return None;
        }
        let mut per_function: BTreeMap<&str, Stats> = BTreeMap::new();
        let stats = self.stats();
        for ((f, _), s) in &stats {
            let t = per_function.entry(f).or_default();
            t.iterator_age_ms = t.iterator_age_ms.max(s.iterator_age_ms);
            t.processed += s.processed;
            t.filtered += s.filtered;
            t.invocations += s.invocations;
            t.retries += s.retries;
            t.failures += s.failures;
            t.dead_lettered += s.dead_lettered;
        }
        let parked = self.parked.lock().map(|p| p.clone()).unwrap_or_default();
        let mut out = format!(
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8}\n",
            "function", "handled", "dup", "filtered", "retries", "parked", "age ms", "lag ms"
        );
        for (f, s) in &per_function {
            // Handled, duplicates and lag are the consumer's own metrics (its EMF documents in the logs), what
            // CloudWatch shows: a parked or duplicate record is not handled. A function that writes none (not a
            // tubes consumer) shows the records its invocations took.
            let consumer = self.consumer_of(f);
            let handled = consumer.map_or(s.processed, |c| c.handled);
            let ConsumerFigures {
                duplicates, lag_ms, ..
            } = consumer.unwrap_or_default();
            out.push_str(&format!(
                "{:<16} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8}\n",
                clip(short(f), 16),
                handled,
                duplicates,
                s.filtered,
                s.retries,
                parked.get(*f).copied().unwrap_or(0),
                s.iterator_age_ms,
                lag_ms.map_or("-".to_owned(), |l| format!("{l:.0}")),
            ));
        }
        Some(out)
    }

    /// Prints the summary table if something changed since the last one (quiet when idle).
    pub fn summary(&self) {
        if self.quiet {
            return;
        }
        if let Some(text) = self.summary_text() {
            let _ = writeln!(std::io::stdout().lock(), "\n{text}");
        }
    }
}

/// The terminal width the view keeps to.
const WIDTH: usize = 80;

/// One batch's line (`at`: its RFC 3339 time).
fn batch_line(at: &str, b: &BatchLine<'_>) -> String {
    // A batch that parked records did not simply go well: say so where `ok` would be.
    let outcome = match (b.parked, b.outcome) {
        (0, outcome) => outcome.to_owned(),
        (n, "ok") => format!("parked {n}"),
        (n, outcome) => format!("parked {n}, {outcome}"),
    };
    let first = b.records.first().map_or("", |r| r.0);
    let last = b.records.last().map_or("", |r| r.0);
    let mut line = format!(
        "{} {:<18} {:>3}/{} {:>3} rec {:>6.0} ms  {}{}",
        at.get(11..23).unwrap_or(at),
        clip(short(b.function), 18),
        shard_number(b.shard),
        b.lane,
        b.records.len(),
        b.latency_ms,
        if b.retry { "retry " } else { "" },
        outcome,
    );
    // The records' range when it fits; a long outcome is cut (esm.jsonl has it whole).
    let range = format!("  …{}-{}", tail(first, 4), tail(last, 4));
    if line.chars().count() + range.chars().count() <= WIDTH {
        line.push_str(&range);
    } else if line.chars().count() > WIDTH {
        line = format!("{}…", clip(&line, WIDTH - 1));
    }
    line
}

/// A function's logical id as the view shows it: `PaymentsFunction` → `Payments`.
fn short(logical_id: &str) -> &str {
    logical_id
        .strip_suffix("Function")
        .filter(|s| !s.is_empty())
        .unwrap_or(logical_id)
}

/// At most `width` characters of `text` (a logical id fits; a longer one keeps its start).
fn clip(text: &str, width: usize) -> &str {
    text.char_indices()
        .nth(width)
        .map_or(text, |(i, _)| &text[..i])
}

/// `shardId-000000000003` → `3`.
fn shard_number(shard: &str) -> &str {
    let digits = shard
        .rsplit('-')
        .next()
        .unwrap_or(shard)
        .trim_start_matches('0');
    if digits.is_empty() {
        "0"
    } else {
        digits
    }
}

/// The last `n` digits of a sequence number: enough to tell records apart on a line.
fn tail(seq: &str, n: usize) -> &str {
    &seq[seq.len().saturating_sub(n)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(outcome: &str, parked: u64) -> String {
        batch_line(
            "2026-11-28T10:00:00.123456Z",
            &BatchLine {
                function: "NotificationsFunctionWithALongName",
                shard: "shardId-000000000012",
                lane: 3,
                records: vec![
                    ("49590000000000000001234", "k1"),
                    ("49590000000000000005678", "k2"),
                ],
                outcome,
                failed: false,
                retry: parked > 1,
                processed: 2,
                latency_ms: 12345.6,
                parked,
            },
        )
    }

    #[test]
    fn a_batch_that_parked_says_so_where_ok_would_be_within_80_columns() {
        assert!(line("ok", 0).contains("  ok  "), "{}", line("ok", 0));
        let parked = line("ok", 1);
        assert!(
            parked.contains("parked 1") && !parked.contains(" ok "),
            "{parked}"
        );
        let partial = line("partial failure", 2);
        assert!(partial.contains("retry parked 2, partia"), "{partial}");
        let long = line(
            "partial: 3 ok, retry from …123456; bisect 2 + 3; retries exhausted, 2 to on-failure",
            0,
        );
        assert!(long.ends_with('…'), "{long}");
        for l in [line("ok", 0), parked, line("partial failure", 2), long] {
            assert!(
                l.chars().count() <= 80,
                "{} columns: {l}",
                l.chars().count()
            );
            assert!(
                l.starts_with("10:00:00.123 NotificationsFunct  12/3"),
                "{l}"
            );
        }
    }

    #[test]
    fn parked_counts_the_queues_growth_not_the_mappings_own_messages() {
        let view = View::new(None, true);
        assert_eq!(
            view.parked_now("F", 2),
            2,
            "letters already waiting count once"
        );
        assert_eq!(view.parked_now("F", 2), 0);
        view.dead_letter(
            "F",
            "shardId-000000000000",
            "RetryAttemptsExhausted",
            &["1"],
            "q",
        );
        assert_eq!(
            view.parked_now("F", 3),
            0,
            "the mapping's on-failure message"
        );
        assert_eq!(view.parked_now("F", 4), 1);
        assert_eq!(view.parked_now("F", 0), 0, "a redrive took them out");
        assert_eq!(view.parked_now("F", 1), 1);
    }

    /// A batch of function F's: one record, handled.
    fn one_record_ok(sequence_number: &str) -> BatchLine<'_> {
        BatchLine {
            function: "F",
            shard: "shardId-000000000000",
            lane: 0,
            records: vec![(sequence_number, "k")],
            outcome: "ok",
            failed: false,
            retry: false,
            processed: 1,
            latency_ms: 1.0,
            parked: 0,
        }
    }

    #[test]
    fn the_summary_is_quiet_when_nothing_changed_and_shows_parked_letters() {
        let view = View::new(None, true);
        assert_eq!(view.summary_text(), None, "nothing happened yet");
        view.read("F", "shardId-000000000000", 5, 0);
        assert_eq!(view.summary_text(), None, "a read alone changes nothing");
        view.parked_now("F", 4);
        view.batch(&one_record_ok("1"));
        let text = view.summary_text().expect("a batch ran");
        let row = text.lines().find(|l| l.starts_with("F ")).expect("F's row");
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns[5], "4", "parked from the queue: {row}");
        assert_eq!(
            columns[1], "1",
            "no consumer metrics yet: the records its invocations took: {row}"
        );
        assert_eq!(columns[2], "0", "no duplicates reported: {row}");
        assert_eq!(columns[7], "-", "no lag reported: {row}");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert_eq!(view.summary_text(), None, "idle again");

        // The consumer's metrics: its duplicates and lag, on the row of the function that runs it.
        view.functions([("F".to_owned(), "tubes-consumer-payments".to_owned())]);
        let figures = |handled, duplicates, lag_ms| ConsumerFigures {
            handled,
            duplicates,
            lag_ms,
        };
        view.consumer_metrics("payments", figures(0, 2, Some(130.4)));
        view.consumer_metrics("payments", figures(1, 1, None));
        view.consumer_metrics("signups", figures(7, 9, Some(1.0)));
        view.batch(&one_record_ok("2"));
        let text = view.summary_text().expect("a batch ran");
        let row = text.lines().find(|l| l.starts_with("F ")).expect("F's row");
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns[2], "3", "{row}");
        assert_eq!(columns[7], "130", "{row}");
        // Handled is the consumer's count (1), not the 2 records its invocations took (one was a duplicate).
        assert_eq!(columns[1], "1", "{row}");
    }
}
