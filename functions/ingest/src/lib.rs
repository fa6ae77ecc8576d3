//! The ingest Lambda: `POST /events` (or `/sources/{source}/events`, or `/iam/events`) with one CloudEvent or a
//! batch → authenticated → validated → allowed → written to Kinesis → `202 Accepted`.
//!
//! The request goes through one pipeline, each step a gate that answers with the one error body on failure:
//! route → method → content type → body size ([`http`]) → credential ([`auth`], against the [`sources`]) → UTF-8
//! and nesting depth → parse and validate every event ([`Envelope::parse`]) → what the source may send
//! ([`policy`]) → encode ([`codec::encode`]) → pack the events of each shard ([`pack`]) → [`write::write_all`]
//! → each event's own outcome ([`respond`]). Nothing is written for a request that fails a gate, and **a batch is taken or refused as a
//! whole**: one invalid or disallowed event rejects the request (every problem listed by index and field) and
//! none of its siblings is written, so a client can fix and resend the same batch.
//!
//! Outcomes: `202` when Kinesis acknowledged every event; `207` with each event's outcome when it acknowledged
//! some (retry the failed ones); `429` (throttled) or `503` (unavailable) with `Retry-After` when none.

pub mod auth;
pub mod config;
pub mod credentials;
pub mod error;
pub mod event;
pub mod http;
pub mod idempotency_key;
pub mod pack;
pub mod policy;
pub mod respond;
pub mod sources;
pub mod write;

use std::collections::hash_map::{Entry, HashMap};
use std::sync::{Arc, PoisonError};

use lambda_http::http::header::HeaderName;
use lambda_http::http::{HeaderMap, HeaderValue, Method};
use lambda_http::{Body, Request, Response};
use time::OffsetDateTime;
use tubes_contract::codec;
use tubes_contract::codec::EncodeError;
use tubes_contract::trace::TRACEPARENT;
use tubes_contract::{Code, Envelope, Record, TraceParent, Violation, Violations};
use tubes_platform::publish::{FailureKind, ShardMap};
use tubes_platform::telemetry::{IngestMeter, IngestRequest};
use tubes_platform::{clock, Publisher, PutOutcome};

pub use config::Config;
pub use credentials::webhook;
pub use error::IngestError;
pub use event::{Answer, HttpApiEvent};
pub use sources::{FixedSources, Sources, SourcesFetch};

use auth::{AuthError, Authenticated};
use http::{Incoming, Kind};
use idempotency_key::IdempotencyKey;

/// The ingest handler over a [`Publisher`], with the sources read through `F`.
#[derive(Debug)]
pub struct Ingest<P, F = FixedSources> {
    publisher: P,
    sources: Sources<F>,
    default_source: Option<String>,
    max_body_bytes: usize,
    max_event_bytes: usize,
    max_batch_events: usize,
    retry: write::RetryPolicy,
    meter: Option<IngestMeter>,
    /// The largest pack ([`Config::pack_max_bytes`]); 0: no packing.
    pack_max_bytes: usize,
    /// The stream's open shards as last read (on the first request that packs, and again when a pack lands on
    /// another shard than the map said).
    shard_map: std::sync::Mutex<Option<Arc<ShardMap>>>,
}

/// How many times a request's events are placed at most: a pack that landed on another shard than the map said
/// (the stream was resharded) is written again with a fresh map, and a stream resharded again meanwhile gets one
/// more try.
const MAX_PLACEMENTS: usize = 3;

impl<P: Publisher, F: SourcesFetch> Ingest<P, F> {
    /// A handler writing through `publisher`, with the limits of `config`, taking requests from `sources`.
    pub fn new(publisher: P, config: &Config, sources: Sources<F>) -> Self {
        Self {
            publisher,
            sources,
            default_source: config.default_source.clone(),
            max_body_bytes: config.max_body_bytes,
            max_event_bytes: config.max_event_bytes,
            max_batch_events: config.max_batch_events,
            retry: write::RetryPolicy {
                deadline: std::time::Duration::from_millis(config.write_deadline_ms),
                ..write::RetryPolicy::default()
            },
            meter: None,
            pack_max_bytes: config.pack_max_bytes,
            shard_map: std::sync::Mutex::new(None),
        }
    }

    /// The same handler, measuring every request in an [`IngestMeter`] (drain it into the metrics recorder
    /// before each flush: [`Ingest::meter`]).
    #[must_use]
    pub fn measured(mut self) -> Self {
        self.meter = Some(IngestMeter::default());
        self
    }

    /// What the handler measured since the meter was last drained, if it measures.
    pub fn meter(&self) -> Option<&IngestMeter> {
        self.meter.as_ref()
    }

    /// Answers one HTTP API (payload format 2.0) or function URL event, as the runtime hands it over: what the
    /// deployed function runs. The request is read where it lies in the event (its body borrowed, or decoded once
    /// if base64 encoded) and the answer is the event's own response type; see [`Ingest::serve`].
    pub async fn invoke(&self, event: HttpApiEvent) -> Answer {
        let response = match event.body_bytes() {
            Ok(body) => self.serve(event.incoming(&body)).await,
            Err(err) => err.into_response(),
        };
        event::answer(response)
    }

    /// Answers one request as `lambda_http` built it (any front door it parses: tests, tools, other runtimes);
    /// see [`Ingest::serve`].
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.serve(Incoming::from_request(&request)).await
    }

    /// Handles one HTTP request; never fails (errors are responses). Each request is one log line at INFO (its
    /// status, source, and event counts or refusal code; never the body) and, if measured ([`Ingest::measured`]),
    /// one record in the meter; the events' own lines are at DEBUG.
    pub async fn serve(&self, request: Incoming<'_>) -> Response<Body> {
        // The clock is read only for the meter.
        let started = self.meter.as_ref().map(|_| std::time::Instant::now());
        let mut source = None;
        let mut tally = IngestRequest::default();
        let trace = trace_of(request.headers);
        let trace_hex = trace.trace_id().to_hex();
        let trace_id = trace_hex.as_str();
        let mut response = match self
            .try_handle(request, trace, &mut source, &mut tally)
            .await
        {
            Ok(response) => response,
            Err(err) => {
                if !err.status().is_server_error() {
                    tally.refused = Some(err.code());
                    tracing::info!(
                        status = err.status().as_u16(),
                        code = err.code(),
                        source = source.as_deref().unwrap_or("-"),
                        trace_id,
                        "refused"
                    );
                }
                err.into_response()
            }
        };
        tally.failed = response.status().is_server_error();
        if tally.written > 0 {
            tracing::info!(
                status = response.status().as_u16(),
                source = source.as_deref().unwrap_or("-"),
                events = tally.written,
                accepted = tally.accepted,
                // Only when not zero: a line is billed by the byte, and these are nearly always zero.
                throttled = nonzero(tally.throttled),
                retried = nonzero(tally.retried),
                trace_id,
                "answered"
            );
        }
        // W3C Trace Context level 2: the caller learns the trace id even when it sent no traceparent.
        if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
            const NAME: HeaderName = HeaderName::from_static(TRACERESPONSE);
            response.headers_mut().insert(NAME, value);
        }
        if let (Some(meter), Some(started)) = (&self.meter, started) {
            meter.record(&tally, started.elapsed());
        }
        response
    }

    async fn try_handle(
        &self,
        request: Incoming<'_>,
        trace: TraceParent,
        source_name: &mut Option<String>,
        tally: &mut IngestRequest,
    ) -> Result<Response<Body>, IngestError> {
        let route = http::route(request.path)?;
        if request.method != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        let declared = http::check_content_type(request.headers)?;
        let body = request.body;
        if body.len() > self.max_body_bytes {
            return Err(IngestError::PayloadTooLarge {
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(IngestError::EmptyBody);
        }

        // Authenticate before parsing: an unauthenticated body costs nothing more than a hash.
        let now = clock::now();
        let request_auth = auth::Request {
            route,
            iam_caller: request.iam_caller,
            headers: request.headers,
            body,
            now: now.unix_timestamp(),
        };
        let default_source = self.default_source.as_deref();
        let unavailable = |_| IngestError::SourcesUnavailable;
        let registry = self.sources.current().await.map_err(unavailable)?;
        let refreshed;
        // Once per request (a signature's HMAC included), again only for a key the sources did not know.
        let authenticated = match request_auth.authenticate(&registry, default_source) {
            Err(AuthError::UnknownKey) => {
                // A key minted since the sources were read: read them again (at most every few seconds).
                refreshed = self.sources.refreshed().await.map_err(unavailable)?;
                request_auth.authenticate(&refreshed, default_source)
            }
            first => first,
        };
        let Authenticated {
            source,
            webhook_id,
            credential,
        } = authenticated.map_err(|e| match e {
            AuthError::UnknownKey => IngestError::Auth(AuthError::InvalidApiKey),
            other => IngestError::Auth(other),
        })?;
        *source_name = Some(source.name.clone());
        let idempotency_key = IdempotencyKey::from_headers(request.headers)?;
        // Events sent without an id get one derived from the key: a blind resend is the same events.
        let key = idempotency_key.as_ref().map(|k| (k, source.name.as_str()));

        let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        http::check_depth(text)?;
        let kind = http::kind_of(declared, text)?;
        let envelopes = match kind {
            Kind::Single => {
                if text.len() > self.max_event_bytes {
                    return Err(IngestError::EventTooLarge {
                        index: None,
                        size: text.len(),
                        limit: self.max_event_bytes,
                    });
                }
                vec![parse_event(text, now, key, 0).map_err(IngestError::Invalid)?]
            }
            Kind::Batch => self.parse_batch(text, now, key)?,
        };
        let refusals = policy::refusals(source, &envelopes, kind == Kind::Batch);
        if !refusals.is_empty() {
            return Err(IngestError::Forbidden(refusals));
        }
        let envelopes = match webhook_id {
            // The sender's retries carry the same webhook-id: the same event ids downstream.
            Some(id) => with_webhook_id(envelopes, id, kind)?,
            None => envelopes,
        };
        // Each event carries the request's trace (unless it has its own): one id finds all it causes.
        let envelopes: Vec<Envelope> = envelopes.into_iter().map(|e| e.traced(trace)).collect();
        let records = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| {
                codec::encode(e).map_err(|err| match err {
                    EncodeError::TooLarge { size } => IngestError::EventTooLarge {
                        index: (kind == Kind::Batch).then_some(i),
                        size,
                        limit: codec::MAX_RECORD_BYTES,
                    },
                    EncodeError::Serialize(e) => IngestError::Internal(e.to_string()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let (outcomes, resent) = self.write(&envelopes, &records).await;
        tally.written = outcomes.len();
        tally.retried = resent;
        tally.accepted = outcomes
            .iter()
            .filter(|o| matches!(o, PutOutcome::Accepted { .. }))
            .count();
        tally.throttled = outcomes.iter().filter(|o| o.is_throttled()).count();
        tracing::debug!(
            source = %source.name,
            credential = credential.as_str(),
            events = records.len(),
            "written"
        );
        respond::respond(kind, &envelopes, &outcomes)
    }

    /// Writes a request's records (one per event, in request order): packed per shard when packing is on and
    /// the publisher can list the stream's shards, else one record per event. One outcome per event, and how many
    /// entries were resent. A pack that lands on another shard than the map said is not that event's outcome:
    /// its events are written again with a fresh map (see [`pack`]).
    async fn write(&self, envelopes: &[Envelope], records: &[Record]) -> (Vec<PutOutcome>, usize) {
        if self.pack_max_bytes == 0 || records.len() < 2 {
            return write::write_all_counted(&self.publisher, records, self.retry).await;
        }
        let mut outcomes: Vec<Option<PutOutcome>> = vec![None; records.len()];
        let mut todo: Vec<usize> = (0..records.len()).collect();
        let mut resent = 0;
        for placement in 0..MAX_PLACEMENTS {
            let Some(map) = self.shard_map(placement > 0).await else {
                // No map: one record per event (Kinesis routes each by its own key).
                let plain: Vec<Record> = todo.iter().map(|&i| records[i].clone()).collect();
                let (written, n) =
                    write::write_all_counted(&self.publisher, &plain, self.retry).await;
                resent += n;
                for (&i, outcome) in todo.iter().zip(written) {
                    outcomes[i] = Some(outcome);
                }
                todo.clear();
                break;
            };
            let events: Vec<(tubes_contract::EventType, &Record)> = todo
                .iter()
                .map(|&i| (envelopes[i].event_type(), &records[i]))
                .collect();
            let packs = pack::pack(&events, &map, self.pack_max_bytes);
            let pack_records: Vec<Record> = packs.iter().map(|p| p.record.clone()).collect();
            let (written, n) =
                write::write_all_counted(&self.publisher, &pack_records, self.retry).await;
            resent += n;
            let mut elsewhere = Vec::new();
            for (packed, outcome) in packs.iter().zip(written) {
                let landed_elsewhere = matches!(
                    (&outcome, &packed.shard),
                    (PutOutcome::Accepted { shard_id, .. }, Some(meant)) if shard_id != meant
                );
                for &member in &packed.members {
                    if landed_elsewhere {
                        elsewhere.push(todo[member]);
                    } else {
                        outcomes[todo[member]] = Some(outcome.clone());
                    }
                }
            }
            tracing::debug!(
                events = todo.len(),
                records = packs.len(),
                landed_elsewhere = elsewhere.len(),
                "packed"
            );
            elsewhere.sort_unstable();
            todo = elsewhere;
            if todo.is_empty() {
                break;
            }
            tracing::info!(
                events = todo.len(),
                "packs landed on another shard than the map said (the stream was resharded): written again"
            );
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| PutOutcome::Failed {
                    kind: FailureKind::Unavailable,
                    message: "the stream's shards kept changing while the events were written"
                        .into(),
                })
            })
            .collect();
        (outcomes, resent)
    }

    /// The stream's open shards: as last read, or read again (`refresh`, or nothing read yet). `None` when they
    /// cannot be read (then nothing is packed: a cost, never a reason to refuse events).
    async fn shard_map(&self, refresh: bool) -> Option<Arc<ShardMap>> {
        let cached = || {
            self.shard_map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        };
        if !refresh {
            if let Some(map) = cached() {
                return Some(map);
            }
        }
        match self.publisher.open_shards().await {
            Ok(Some(shards)) if !shards.is_empty() => {
                let map = Arc::new(ShardMap::new(shards));
                *self
                    .shard_map
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(map.clone());
                Some(map)
            }
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(error = %err, "the stream's shards could not be listed: writing unpacked");
                // A map read before still routes most events right; a pack that lands elsewhere is caught.
                cached()
            }
        }
    }

    /// Parses and validates every event of a batch; any invalid event rejects the whole batch.
    fn parse_batch(
        &self,
        text: &str,
        now: OffsetDateTime,
        key: Option<(&IdempotencyKey, &str)>,
    ) -> Result<Vec<Envelope>, IngestError> {
        let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| {
            IngestError::Invalid(Violations::one(Violation::whole(
                Code::MalformedJson,
                format!("the batch is not a JSON array of events: {e}"),
            )))
        })?;
        if raw.is_empty() {
            return Err(IngestError::EmptyBatch);
        }
        if raw.len() > self.max_batch_events {
            return Err(IngestError::TooManyEvents {
                count: raw.len(),
                limit: self.max_batch_events,
            });
        }
        if let Some((index, event)) = raw
            .iter()
            .enumerate()
            .find(|(_, r)| r.get().len() > self.max_event_bytes)
        {
            return Err(IngestError::EventTooLarge {
                index: Some(index),
                size: event.get().len(),
                limit: self.max_event_bytes,
            });
        }
        let mut envelopes: Vec<Envelope> = Vec::with_capacity(raw.len());
        // (CloudEvents source, id) → index of the first event with it: ids are unique per source.
        let mut seen: HashMap<(String, String), usize> = HashMap::with_capacity(raw.len());
        let mut problems = Vec::new();
        for (i, event) in raw.iter().enumerate() {
            match parse_event(event.get(), now, key, i) {
                Ok(e) => {
                    match seen.entry((e.source().to_owned(), e.id().to_owned())) {
                        Entry::Occupied(first) => problems.push(Violation::at(
                            Code::DuplicateId,
                            format!("/{i}/id"),
                            format!(
                                "event {} of this batch has the same id and source: the second would be taken \
                                 for a resend of the first and dropped; give each event its own id",
                                first.get()
                            ),
                        )),
                        Entry::Vacant(slot) => {
                            slot.insert(i);
                        }
                    }
                    envelopes.push(e);
                }
                Err(v) => problems.extend(v.as_slice().iter().map(|v| Violation {
                    field: Some(format!("/{i}{}", v.field.as_deref().unwrap_or(""))),
                    ..v.clone()
                })),
            }
        }
        match Violations::from_vec(problems) {
            Some(v) => Err(IngestError::Invalid(v)),
            None => Ok(envelopes),
        }
    }
}

/// The response header that names the request's trace (W3C Trace Context level 2).
pub const TRACERESPONSE: &str = "traceresponse";

/// `n` if it is not zero: a log field that is left out otherwise.
fn nonzero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// The request's trace: the caller's `traceparent` continued with a span of ingest's own, or a new trace when
/// it sent none or a broken one (a broken header never refuses a request: W3C says to start afresh).
fn trace_of(headers: &HeaderMap) -> TraceParent {
    const NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
    let span = fastrand::u64(1..);
    headers
        .get(NAME)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .map_or_else(
            || TraceParent::start(fastrand::u128(1..), span),
            |caller| caller.child(span),
        )
}

/// Parses the `index`-th event of a request; without an `id`, it gets one derived from the request's
/// idempotency key and its source, if the request named itself.
fn parse_event(
    text: &str,
    now: OffsetDateTime,
    key: Option<(&IdempotencyKey, &str)>,
    index: usize,
) -> Result<Envelope, Violations> {
    // The body was checked for UTF-8 once, as a whole.
    match key {
        None => Envelope::parse_text(text, now, None),
        Some((key, source)) => {
            Envelope::parse_text(text, now, Some(&|| key.event_id(source, index)))
        }
    }
}

/// The event ids of a signed request: the `webhook-id` itself, or `{webhook-id}-{index}` in a batch.
fn with_webhook_id(
    envelopes: Vec<Envelope>,
    id: &str,
    kind: Kind,
) -> Result<Vec<Envelope>, IngestError> {
    envelopes
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let event_id = match kind {
                Kind::Single => id.to_owned(),
                Kind::Batch => format!("{id}-{i}"),
            };
            e.with_id(event_id).map_err(|_| {
                let v = Violation::at(
                    Code::InvalidIdentifier,
                    "/headers/webhook-id",
                    "webhook-id must be printable ASCII, short enough to serve as the event id",
                );
                IngestError::Invalid(Violations::one(v))
            })
        })
        .collect()
}
