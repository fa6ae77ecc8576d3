//! Metrics, in CloudWatch's Embedded Metric Format (EMF). Code records them through the [`metrics`] facade; the
//! runtime installs one EMF recorder ([`Emf::install`]) and writes one document per invocation to standard output
//! ([`Emf::flush`]), which CloudWatch Logs turns into metrics: no API call, nothing added to the invocation's
//! latency. A consumer's own `metrics::counter!`s land in the same document.
//!
//! One namespace ([`NAMESPACE`], or `TUBES_METRICS_NAMESPACE`) and few dimensions (`Consumer`; ingest's
//! `Function`, and `Code` on refusals), so that the number of metrics, and their cost, stays bounded whatever the
//! event types. The harness records every batch (`BatchReport::record_metrics`): each record ends in exactly one
//! of the `Records*` counts, so they add up to the batch (`RecordsReplayed` apart: it counts the replayed ones
//! among them). Ingest measures every request in an [`IngestMeter`], drained
//! into the recorder when it flushes.
//!
//! The log lines are in [`logs`]: JSON, one line per request or invocation at INFO, each naming its function,
//! request, and for a record its event and trace.

pub mod logs;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics::Unit;

use crate::clock;

/// The namespace unless `TUBES_METRICS_NAMESPACE` names another.
pub const NAMESPACE: &str = "Tubes";

/// The variable that names the namespace.
pub const NAMESPACE_VARIABLE: &str = "TUBES_METRICS_NAMESPACE";

/// The one dimension of the consumers' metrics: the consumer's name.
pub const CONSUMER: &str = "Consumer";

/// Records the consumer handled (its effect is done).
pub const RECORDS_HANDLED: &str = "RecordsHandled";
/// Records skipped as already handled (their idempotency record says so): redeliveries, resends.
pub const RECORDS_DUPLICATE: &str = "RecordsDuplicate";
/// Records of event types the consumer does not subscribe to.
pub const RECORDS_FILTERED: &str = "RecordsFiltered";
/// Records that failed retryably; they are redelivered.
pub const RECORDS_RETRIED: &str = "RecordsRetried";
/// Records not attempted because an earlier record of their key failed; redelivered with it.
pub const RECORDS_HELD_BACK: &str = "RecordsHeldBack";
/// Records parked in the dead-letter queue.
pub const RECORDS_PARKED: &str = "RecordsParked";
/// Records that were replays (`replayid`), whatever became of them: a replay's share of a consumer's work.
pub const RECORDS_REPLAYED: &str = "RecordsReplayed";
/// Per batch, the longest time from a handled record's arrival on the stream to the end of its effect.
pub const LAG: &str = "Lag";
/// Per batch, the longest time from a handled event's own `time` to the end of its effect.
pub const EVENT_AGE: &str = "EventAge";
/// Per batch, the mean time a handled record's effect took.
pub const EFFECT_TIME: &str = "EffectTime";

/// The consumers' metrics (the harness records them per batch), with their units (EMF states a unit per metric).
pub const CONSUMER_METRICS: [(&str, Unit); 10] = [
    (RECORDS_HANDLED, Unit::Count),
    (RECORDS_DUPLICATE, Unit::Count),
    (RECORDS_FILTERED, Unit::Count),
    (RECORDS_RETRIED, Unit::Count),
    (RECORDS_HELD_BACK, Unit::Count),
    (RECORDS_PARKED, Unit::Count),
    (RECORDS_REPLAYED, Unit::Count),
    (LAG, Unit::Milliseconds),
    (EVENT_AGE, Unit::Milliseconds),
    (EFFECT_TIME, Unit::Milliseconds),
];

/// The dimension of ingest's metrics: the function, `ingest`.
pub const FUNCTION: &str = "Function";
/// The second dimension of [`REQUESTS_REFUSED`]: the error code of the answer.
pub const CODE: &str = "Code";

/// Events Kinesis acknowledged (each one answered as accepted).
pub const EVENTS_ACCEPTED: &str = "EventsAccepted";
/// Events Kinesis throttled (answered `throttled`: the sender resends them).
pub const EVENTS_THROTTLED: &str = "EventsThrottled";
/// Events Kinesis did not acknowledge for another reason (answered `stream_unavailable`).
pub const EVENTS_UNACKNOWLEDGED: &str = "EventsUnacknowledged";
/// Entries ingest resent to Kinesis after a failed attempt (throttled, failed entries, a call without an
/// answer): how hard writing was, before any event was answered as not written.
pub const PUT_RECORDS_RETRIES: &str = "PutRecordsRetries";
/// Requests refused, by the error code of their answer (`Code`): nothing of them was written.
pub const REQUESTS_REFUSED: &str = "RequestsRefused";
/// Requests answered 5xx.
pub const REQUESTS_FAILED: &str = "RequestsFailed";
/// Events written per request that reached the stream.
pub const EVENTS_PER_REQUEST: &str = "EventsPerRequest";
/// The time ingest took to answer a request.
pub const REQUEST_LATENCY: &str = "RequestLatency";

/// Ingest's metrics, with their units.
pub const INGEST_METRICS: [(&str, Unit); 8] = [
    (EVENTS_ACCEPTED, Unit::Count),
    (EVENTS_THROTTLED, Unit::Count),
    (EVENTS_UNACKNOWLEDGED, Unit::Count),
    (PUT_RECORDS_RETRIES, Unit::Count),
    (REQUESTS_REFUSED, Unit::Count),
    (REQUESTS_FAILED, Unit::Count),
    (EVENTS_PER_REQUEST, Unit::Count),
    (REQUEST_LATENCY, Unit::Milliseconds),
];

/// What one request to ingest came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestRequest {
    /// Events sent to the stream (0 for a refused request).
    pub written: usize,
    /// Of which acknowledged.
    pub accepted: usize,
    /// Of which throttled.
    pub throttled: usize,
    /// Entries resent to Kinesis after a failed attempt.
    pub retried: usize,
    /// The error code of a refused request's answer (4xx), if refused.
    pub refused: Option<&'static str>,
    /// Whether the answer was a 5xx.
    pub failed: bool,
}

/// How many request sizes and latencies an [`IngestMeter`] keeps between two drains (a uniform sample of the
/// interval's requests): EMF takes at most 100 values per metric and document.
pub const SAMPLES: usize = 100;

/// Ingest's measurements between two flushes. A request adds to atomic counts and, under an uncontended lock,
/// to a uniform sample of sizes and latencies (reservoir sampling, at most [`SAMPLES`]); [`IngestMeter::drain`]
/// hands them to the metrics facade just before a flush. So a request costs a few atomic adds, whatever the
/// recorder, and ingest can flush once per interval instead of once per request.
#[derive(Debug, Default)]
pub struct IngestMeter {
    accepted: AtomicU64,
    throttled: AtomicU64,
    unacknowledged: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    sampled: Mutex<Sampled>,
}

#[derive(Debug, Default)]
struct Sampled {
    refused: Vec<(&'static str, u64)>,
    sizes: Reservoir,
    latencies: Reservoir,
}

/// A uniform sample of at most [`SAMPLES`] values of all those offered.
#[derive(Debug, Default)]
struct Reservoir {
    offered: u64,
    values: Vec<f64>,
}

impl Reservoir {
    fn offer(&mut self, value: f64) {
        self.offered += 1;
        if self.values.len() < SAMPLES {
            self.values.push(value);
        } else {
            // Keep it with probability SAMPLES / offered, in place of a value chosen at random.
            let slot = fastrand::u64(..self.offered);
            if let Some(v) = usize::try_from(slot)
                .ok()
                .and_then(|i| self.values.get_mut(i))
            {
                *v = value;
            }
        }
    }
}

impl IngestMeter {
    /// Adds one request: what it came to, and how long it took.
    pub fn record(&self, request: &IngestRequest, latency: std::time::Duration) {
        let add = |counter: &AtomicU64, n: usize| {
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        add(&self.accepted, request.accepted);
        add(&self.throttled, request.throttled);
        add(
            &self.unacknowledged,
            request
                .written
                .saturating_sub(request.accepted + request.throttled),
        );
        add(&self.retried, request.retried);
        add(&self.failed, usize::from(request.failed));
        let mut sampled = self.sampled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(code) = request.refused {
            match sampled.refused.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => sampled.refused.push((code, 1)),
            }
        }
        if request.written > 0 {
            #[allow(clippy::cast_precision_loss)]
            sampled.sizes.offer(request.written as f64);
        }
        sampled.latencies.offer(latency.as_secs_f64() * 1000.0);
    }

    /// Hands what was measured since the last drain to the metrics facade (dimension `Function` = `ingest`;
    /// refusals also by `Code`), and starts again from zero.
    pub fn drain(&self) {
        const INGEST: &str = "ingest";
        for (name, counter) in [
            (EVENTS_ACCEPTED, &self.accepted),
            (EVENTS_THROTTLED, &self.throttled),
            (EVENTS_UNACKNOWLEDGED, &self.unacknowledged),
            (PUT_RECORDS_RETRIES, &self.retried),
            (REQUESTS_FAILED, &self.failed),
        ] {
            let n = counter.swap(0, Ordering::Relaxed);
            if n > 0 {
                metrics::counter!(name, FUNCTION => INGEST).increment(n);
            }
        }
        let sampled =
            std::mem::take(&mut *self.sampled.lock().unwrap_or_else(PoisonError::into_inner));
        for (code, n) in sampled.refused {
            metrics::counter!(REQUESTS_REFUSED, FUNCTION => INGEST, CODE => code).increment(n);
        }
        for (name, reservoir) in [
            (EVENTS_PER_REQUEST, sampled.sizes),
            (REQUEST_LATENCY, sampled.latencies),
        ] {
            if !reservoir.values.is_empty() {
                let histogram = metrics::histogram!(name, FUNCTION => INGEST);
                for v in reservoir.values {
                    histogram.record(v);
                }
            }
        }
    }
}

/// The process's EMF recorder.
#[derive(Clone, Copy)]
pub struct Emf(&'static metrics_cloudwatch_embedded::Collector);

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Emf")
    }
}

static INSTALLED: OnceLock<Result<Emf, String>> = OnceLock::new();

/// When the process last flushed its metrics (milliseconds since the Unix epoch).
static LAST_FLUSH_MS: AtomicI64 = AtomicI64::new(0);

impl Emf {
    /// Installs the EMF recorder as the process's recorder (once: later calls get the same one), in the
    /// namespace `TUBES_METRICS_NAMESPACE` names, or [`NAMESPACE`]. An error if another recorder was installed.
    pub fn install() -> Result<Self, String> {
        INSTALLED
            .get_or_init(|| {
                let namespace =
                    std::env::var(NAMESPACE_VARIABLE).unwrap_or_else(|_| NAMESPACE.to_owned());
                let collector = metrics_cloudwatch_embedded::Builder::new()
                    .cloudwatch_namespace(namespace)
                    .init()
                    .map_err(|e| e.to_string())?;
                for (name, unit) in CONSUMER_METRICS.into_iter().chain(INGEST_METRICS) {
                    // The recorder keeps one unit per name, whatever the kind.
                    metrics::describe_counter!(name, unit, name);
                }
                Ok(Self(collector))
            })
            .clone()
    }

    /// Writes what was recorded since the last flush to `out`: one EMF document (a JSON line) per set of
    /// dimensions that has something new.
    pub fn flush_to(&self, out: impl std::io::Write) -> std::io::Result<()> {
        self.0.flush(out)
    }

    /// Writes what was recorded since the last flush to standard output, where Lambda sends it to the
    /// function's log group. A failed write loses these metrics, never the invocation.
    pub fn flush(&self) {
        LAST_FLUSH_MS.store(clock::now_ms(), Ordering::Relaxed);
        if let Err(err) = self.flush_to(std::io::stdout().lock()) {
            tracing::warn!(error = %err, "metrics not written");
        }
    }

    /// [`Emf::flush`], after `before` (which hands what was gathered to the recorder: [`IngestMeter::drain`]),
    /// unless the last flush was less than `interval` ago. For a function whose invocations are cheap (ingest,
    /// where a flush costs about a quarter of a request's own CPU): one document per interval instead of one per
    /// request. What it risks: what was measured since the last flush, if the instance is shut down before its
    /// next invocation.
    pub fn flush_at_most_every(&self, interval: std::time::Duration, before: impl FnOnce()) {
        let last = LAST_FLUSH_MS.load(Ordering::Relaxed);
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if clock::now_ms().saturating_sub(last) >= interval {
            before();
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservoir_keeps_at_most_its_samples_chosen_across_all_offers() {
        let mut r = Reservoir::default();
        for i in 0..10_000 {
            r.offer(f64::from(i));
        }
        assert_eq!(r.offered, 10_000);
        assert_eq!(r.values.len(), SAMPLES);
        // Uniform over 0..10,000, not the first hundred: the mean of 100 draws is near 5,000 (its standard
        // deviation is about 290), and the first hundred's is 49.5.
        let mean = r.values.iter().sum::<f64>() / r.values.len() as f64;
        assert!((3_500.0..6_500.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn a_meter_counts_each_kind_once_and_starts_again_after_a_drain() {
        let meter = IngestMeter::default();
        let request = IngestRequest {
            written: 5,
            accepted: 3,
            throttled: 1,
            retried: 4,
            refused: None,
            failed: false,
        };
        meter.record(&request, std::time::Duration::from_millis(2));
        meter.record(
            &IngestRequest {
                refused: Some("invalid_event"),
                ..IngestRequest::default()
            },
            std::time::Duration::from_millis(1),
        );
        meter.record(
            &IngestRequest {
                refused: Some("invalid_event"),
                ..IngestRequest::default()
            },
            std::time::Duration::from_millis(1),
        );
        assert_eq!(meter.accepted.load(Ordering::Relaxed), 3);
        assert_eq!(meter.throttled.load(Ordering::Relaxed), 1);
        assert_eq!(meter.unacknowledged.load(Ordering::Relaxed), 1);
        assert_eq!(meter.retried.load(Ordering::Relaxed), 4);
        {
            let sampled = meter.sampled.lock().expect("lock");
            assert_eq!(sampled.refused, vec![("invalid_event", 2)]);
            assert_eq!(sampled.sizes.values, vec![5.0]);
            assert_eq!(sampled.latencies.values.len(), 3);
        }
        meter.drain();
        assert_eq!(meter.accepted.load(Ordering::Relaxed), 0);
        assert_eq!(meter.retried.load(Ordering::Relaxed), 0);
        assert!(meter
            .sampled
            .lock()
            .expect("lock")
            .latencies
            .values
            .is_empty());
    }
}
