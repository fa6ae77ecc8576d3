//! Metrics, in CloudWatch's Embedded Metric Format (EMF). Code records them through the [`metrics`] facade; the
//! runtime installs one EMF recorder ([`Emf::install`]) and writes one document per invocation to standard output
//! ([`Emf::flush`]), which CloudWatch Logs turns into metrics: no API call, nothing added to the invocation's
//! latency. A consumer's own `metrics::counter!`s land in the same document.
//!
//! One namespace ([`NAMESPACE`], or `TUBES_METRICS_NAMESPACE`) and few dimensions (`Consumer`; ingest's
//! `Function`, and `Code` on refusals), so that the number of metrics, and their cost, stays bounded whatever the
//! event types. The harness records every batch ([`record_batch`]): each record ends in exactly one of the
//! `Records*` counts, so they add up to the batch. Ingest records every request ([`record_request`]).

use std::sync::OnceLock;

use metrics::Unit;

use crate::harness::BatchReport;

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
/// Per batch, the longest time from a handled record's arrival on the stream to the end of its effect.
pub const LAG: &str = "Lag";
/// Per batch, the longest time from a handled event's own `time` to the end of its effect.
pub const EVENT_AGE: &str = "EventAge";
/// Per batch, the mean time a handled record's effect took.
pub const EFFECT_TIME: &str = "EffectTime";

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
/// Requests refused, by the error code of their answer (`Code`): nothing of them was written.
pub const REQUESTS_REFUSED: &str = "RequestsRefused";
/// Requests answered 5xx.
pub const REQUESTS_FAILED: &str = "RequestsFailed";
/// Events written per request that reached the stream.
pub const EVENTS_PER_REQUEST: &str = "EventsPerRequest";
/// The time ingest took to answer a request.
pub const REQUEST_LATENCY: &str = "RequestLatency";

/// Ingest's metrics, with their units.
pub const INGEST_METRICS: [(&str, Unit); 7] = [
    (EVENTS_ACCEPTED, Unit::Count),
    (EVENTS_THROTTLED, Unit::Count),
    (EVENTS_UNACKNOWLEDGED, Unit::Count),
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
    /// The error code of a refused request's answer (4xx), if refused.
    pub refused: Option<&'static str>,
    /// Whether the answer was a 5xx.
    pub failed: bool,
}

/// Records what one request to ingest came to, and how long it took.
pub fn record_request(request: &IngestRequest, latency: std::time::Duration) {
    const INGEST: &str = "ingest";
    let unacknowledged = request.written - request.accepted - request.throttled;
    for (name, count) in [
        (EVENTS_ACCEPTED, request.accepted),
        (EVENTS_THROTTLED, request.throttled),
        (EVENTS_UNACKNOWLEDGED, unacknowledged),
    ] {
        if count > 0 {
            metrics::counter!(name, FUNCTION => INGEST).increment(count as u64);
        }
    }
    if let Some(code) = request.refused {
        metrics::counter!(REQUESTS_REFUSED, FUNCTION => INGEST, CODE => code).increment(1);
    }
    if request.failed {
        metrics::counter!(REQUESTS_FAILED, FUNCTION => INGEST).increment(1);
    }
    if request.written > 0 {
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!(EVENTS_PER_REQUEST, FUNCTION => INGEST).record(request.written as f64);
    }
    metrics::histogram!(REQUEST_LATENCY, FUNCTION => INGEST).record(latency.as_secs_f64() * 1000.0);
}

/// The metrics of [`record_batch`], with their units (EMF states a unit per metric).
pub const CONSUMER_METRICS: [(&str, Unit); 9] = [
    (RECORDS_HANDLED, Unit::Count),
    (RECORDS_DUPLICATE, Unit::Count),
    (RECORDS_FILTERED, Unit::Count),
    (RECORDS_RETRIED, Unit::Count),
    (RECORDS_HELD_BACK, Unit::Count),
    (RECORDS_PARKED, Unit::Count),
    (LAG, Unit::Milliseconds),
    (EVENT_AGE, Unit::Milliseconds),
    (EFFECT_TIME, Unit::Milliseconds),
];

/// Records what one batch of `consumer` came to. Without an installed recorder it costs next to nothing.
pub fn record_batch(consumer: &'static str, report: &BatchReport) {
    let counts = [
        (RECORDS_HANDLED, report.handled),
        (RECORDS_DUPLICATE, report.duplicates),
        (RECORDS_FILTERED, report.skipped),
        (RECORDS_RETRIED, report.failed),
        (RECORDS_HELD_BACK, report.held_back),
        (RECORDS_PARKED, report.dead_lettered),
    ];
    for (name, count) in counts {
        if count > 0 {
            metrics::counter!(name, CONSUMER => consumer).increment(count as u64);
        }
    }
    if let Some(lag) = report.lag_ms {
        metrics::histogram!(LAG, CONSUMER => consumer).record(lag.max(0.0));
    }
    if let Some(age) = report.event_age_ms {
        metrics::histogram!(EVENT_AGE, CONSUMER => consumer).record(age.max(0.0));
    }
    if report.handled > 0 {
        #[allow(clippy::cast_precision_loss)]
        let mean = report.effect_ms / report.handled as f64;
        metrics::histogram!(EFFECT_TIME, CONSUMER => consumer).record(mean);
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
        if let Err(err) = self.flush_to(std::io::stdout().lock()) {
            tracing::warn!(error = %err, "metrics not written");
        }
    }
}
