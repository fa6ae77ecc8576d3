//! The CloudEvents 1.0 envelope in structured JSON mode, parsed once into a validated [`Envelope`].
//!
//! ```json
//! {"specversion":"1.0","id":"…","source":"/shop","type":"user.signed_up","subject":"usr_1",
//!  "time":"2026-11-22T10:00:00Z","datacontenttype":"application/json","data":{…}}
//! ```
//!
//! `type` selects the [`Event`] variant, `subject` is the aggregate id (and the Kinesis partition key). Extension
//! attributes (lower-case alphanumeric names, scalar values, e.g. `traceparent`) are kept and passed on.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::catalogue::{Event, EventType};
use crate::trace::{TraceParent, TRACEPARENT};
use crate::validate::{Checker, Validate};
use crate::violation::Violations;

mod parse;

use parse::{check_source, parse, parse_text};

/// The CloudEvents 1.0 context attributes an envelope has (besides extensions such as
/// [`TRACEPARENT`](crate::trace::TRACEPARENT), and `data`).
pub const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
];

/// The only CloudEvents version accepted.
pub const SPECVERSION: &str = "1.0";
/// The `datacontenttype` written on every envelope.
pub const DATA_CONTENT_TYPE: &str = "application/json";
const MAX_DATASCHEMA_LEN: usize = 2048;
const MAX_EXTENSION_NAME: usize = 20;
const MAX_EXTENSIONS: usize = 32;
const MAX_EXTENSION_VALUE: usize = 1024;

/// The extension that names the event an event was published because of ([`Envelope::caused_by`]).
pub const CAUSATION_ID: &str = "causationid";
/// The extension a replayed record carries: the sequence number of the record it replays, so that a read model
/// orders and deduplicates it as the original ([`Envelope::replayed`]).
pub const REPLAY_SEQUENCE: &str = "replayseq";
/// The extension a replayed record carries: the replay that sent it, so that metrics and logs count it apart.
pub const REPLAY_ID: &str = "replayid";
/// Extensions only tubes sets: refused from senders ([`Envelope::parse`]).
pub const RESERVED_EXTENSIONS: [&str; 2] = [REPLAY_SEQUENCE, REPLAY_ID];

/// The W3C `tracestate` that may come with a `traceparent`: passed on as it is.
const TRACESTATE: &str = "tracestate";

/// The namespace of [`derived_id`]'s UUIDv5s: fixed and random. Never change it: ids derived by the code before
/// and after a deploy must agree, or a retry across the deploy publishes a duplicate.
const DERIVED_NAMESPACE: Uuid = Uuid::from_u128(0x3b8f_5a6e_9d0c_5f41_8a27_1c64_e0b9_d273);

/// The id of the `ordinal`-th event of type `ty` that `consumer` publishes because of the event `cause_id` from
/// `cause_source` (ids are unique per source, as CloudEvents says: two producers may both send id `42`): the same
/// inputs give the same id, any other input another one (fields are length-prefixed, so none can run into the next).
pub fn derived_id(
    consumer: &str,
    cause_source: &str,
    cause_id: &str,
    ty: EventType,
    ordinal: u32,
) -> Uuid {
    let mut name = Vec::with_capacity(consumer.len() + cause_source.len() + cause_id.len() + 56);
    for part in [consumer, cause_source, cause_id, ty.as_str()] {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    name.extend_from_slice(&ordinal.to_be_bytes());
    Uuid::new_v5(&DERIVED_NAMESPACE, &name)
}

/// The namespace of [`keyed_id`]'s UUIDv5s, apart from [`derived_id`]'s so the two can never meet. Never change
/// it, for the same reason.
const KEYED_NAMESPACE: Uuid = Uuid::from_u128(0x9c41_0f2e_77b3_5a08_b1d6_4e2a_c5f0_1938);

/// The id of the event of type `ty` that `consumer` publishes once per business key `key` (a payment's outcome,
/// keyed on its payment id): whatever event caused it, and however often.
pub fn keyed_id(consumer: &str, key: &str, ty: EventType) -> Uuid {
    let mut name = Vec::with_capacity(consumer.len() + key.len() + 40);
    for part in [consumer, key, ty.as_str()] {
        name.extend_from_slice(&(part.len() as u64).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    Uuid::new_v5(&KEYED_NAMESPACE, &name)
}

/// A validated event in its CloudEvents envelope. Only [`Envelope::parse`], [`Envelope::decode`] and
/// [`Envelope::new`] make one, so holding an `Envelope` means holding a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    names: Names,
    time: OffsetDateTime,
    dataschema: Option<String>,
    extensions: BTreeMap<String, serde_json::Value>,
    event: Event,
}

impl Envelope {
    /// Parses an event sent by a client: a missing `id` becomes a fresh UUIDv7, a missing `time` becomes
    /// `received_at`, a missing `subject` becomes the data's aggregate id. Strict about `data`: a member its type
    /// does not define is refused (`unknown_member`). Every problem found is reported, not just the first.
    pub fn parse(bytes: &[u8], received_at: OffsetDateTime) -> Result<Self, Violations> {
        parse(bytes, Some(received_at), None)
    }

    /// Parses like [`Envelope::parse`], except that an event sent without an `id` gets `id_if_absent()`, not a
    /// fresh UUIDv7: ingest derives it from the request's `Idempotency-Key`, so a blind resend of the same request
    /// carries the same ids and downstream counts each event once.
    pub fn parse_with_id(
        bytes: &[u8],
        received_at: OffsetDateTime,
        id_if_absent: &dyn Fn() -> String,
    ) -> Result<Self, Violations> {
        parse(bytes, Some(received_at), Some(id_if_absent))
    }

    /// [`Envelope::parse`], or [`Envelope::parse_with_id`] when `id_if_absent` is given, of text already known
    /// to be UTF-8: ingest checks a request's body once for all of its events, not once more per event.
    pub fn parse_text(
        text: &str,
        received_at: OffsetDateTime,
        id_if_absent: Option<&dyn Fn() -> String>,
    ) -> Result<Self, Violations> {
        parse_text(text, Some(received_at), id_if_absent)
    }

    /// Decodes an envelope that ingest wrote (from a Kinesis record): strict, every attribute must be present;
    /// tolerant of `data` members it does not know, which a newer ingest may have written (they are ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, Violations> {
        parse(bytes, None, None)
    }

    /// Makes an envelope for an event a consumer publishes; validates the event. The subject is its aggregate id.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        time: OffsetDateTime,
        event: impl Into<Event>,
    ) -> Result<Self, Violations> {
        let event = event.into();
        let envelope = Envelope {
            names: Names::new(&id.into(), &source.into(), event.aggregate_id()),
            time: time.to_offset(UtcOffset::UTC),
            dataschema: None,
            extensions: BTreeMap::new(),
            event,
        };
        let mut c = Checker::new();
        c.id("/id", envelope.id());
        check_source(&mut c, envelope.source());
        c.id("/subject", envelope.subject());
        envelope.event.validate(&mut c);
        Violations::from_vec(c.into_violations()).map_or(Ok(envelope), Err)
    }

    /// Makes the envelope for the `ordinal`-th event of `event`'s type that `consumer` publishes because of
    /// `cause`, deterministically: a retried consumer publishes the very same event (same id, time and bytes),
    /// which downstream idempotency then skips as a duplicate instead of counting it twice.
    ///
    /// - `id`: a UUIDv5 of `(consumer, cause source, cause id, type, ordinal)` ([`derived_id`]);
    /// - `source`: `/consumers/{consumer}`; `time`: the cause's time;
    /// - extension `causationid`: the cause's id, so a chain of events can be followed back.
    pub fn caused_by(
        cause: &Envelope,
        consumer: &str,
        ordinal: u32,
        event: impl Into<Event>,
    ) -> Result<Self, Violations> {
        let event = event.into();
        let id = derived_id(
            consumer,
            cause.source(),
            cause.id(),
            event.event_type(),
            ordinal,
        );
        let mut envelope = Envelope::new(
            id.to_string(),
            format!("/consumers/{consumer}"),
            cause.time(),
            event,
        )?;
        envelope.carry_from(cause);
        Ok(envelope)
    }

    /// Makes the envelope for the event `consumer` publishes once per business key `key` (a payment's outcome):
    /// a pure function of what was decided, so that deciding again (a redelivery, a redrive, a replay, another
    /// event about the same payment) publishes the very same event, which downstream skips as a duplicate.
    ///
    /// - `id`: a UUIDv5 of `(consumer, key, type)` ([`keyed_id`]), not of the cause;
    /// - `source`: `/consumers/{consumer}`; `time`: `at`, the decision's own (stored) time;
    /// - extension `causationid`: the id of the event that caused it this time.
    pub fn once_per_key(
        cause: &Envelope,
        consumer: &str,
        key: &str,
        at: OffsetDateTime,
        event: impl Into<Event>,
    ) -> Result<Self, Violations> {
        let event = event.into();
        let id = keyed_id(consumer, key, event.event_type());
        let mut envelope =
            Envelope::new(id.to_string(), format!("/consumers/{consumer}"), at, event)?;
        envelope.carry_from(cause);
        Ok(envelope)
    }

    /// What an event published because of `cause` carries from it: the cause's id as `causationid`, its trace
    /// context (`traceparent`, `tracestate`) as it is, so that one trace id finds the whole chain, and the replay
    /// that sent the cause (`replayid`), so that it is counted with it. None of it is part of
    /// [`Envelope::content_bytes`]: a re-decision under another cause is still the same event.
    fn carry_from(&mut self, cause: &Envelope) {
        self.extensions.insert(
            CAUSATION_ID.to_owned(),
            serde_json::Value::String(cause.id().to_owned()),
        );
        for name in [TRACEPARENT, TRACESTATE, REPLAY_ID] {
            if let Some(value) = cause.extensions.get(name) {
                self.extensions.insert(name.to_owned(), value.clone());
            }
        }
    }

    /// The event's trace context (its `traceparent` extension), if it carries one.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.extensions
            .get(TRACEPARENT)
            .and_then(serde_json::Value::as_str)
            .and_then(TraceParent::parse)
    }

    /// Puts `trace` on the event as its `traceparent`, unless it carries its own (the producer's context when it
    /// made the event comes first).
    pub fn traced(mut self, trace: TraceParent) -> Self {
        self.extensions
            .entry(TRACEPARENT.to_owned())
            .or_insert_with(|| serde_json::Value::String(trace.to_string()));
        self
    }

    /// The same event, marked as sent again by the replay `replay_id` from the record at `original_sequence` (its
    /// stream sequence number): the extensions [`REPLAY_ID`] and [`REPLAY_SEQUENCE`].
    pub fn replayed(mut self, replay_id: &str, original_sequence: &str) -> Self {
        self.extensions.insert(
            REPLAY_ID.to_owned(),
            serde_json::Value::String(replay_id.to_owned()),
        );
        self.extensions.insert(
            REPLAY_SEQUENCE.to_owned(),
            serde_json::Value::String(original_sequence.to_owned()),
        );
        self
    }

    /// If this record is a replay ([`Envelope::replayed`]): the replay's id and the original record's sequence
    /// number.
    pub fn replay(&self) -> Option<(&str, &str)> {
        let text = |name| {
            self.extensions
                .get(name)
                .and_then(serde_json::Value::as_str)
        };
        Some((text(REPLAY_ID)?, text(REPLAY_SEQUENCE)?))
    }

    /// Replaces the event id (ingest uses a verified `webhook-id`, so a sender's retries keep one id).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, Violations> {
        let id = id.into();
        let mut c = Checker::new();
        c.id("/id", &id);
        Violations::from_vec(c.into_violations()).map_or(Ok(()), Err)?;
        self.names = Names::new(&id, self.source(), self.subject());
        Ok(self)
    }

    /// The event id (unique per event; the idempotency key downstream).
    pub fn id(&self) -> &str {
        self.names.id()
    }
    /// Who produced the event (a URI reference).
    pub fn source(&self) -> &str {
        self.names.source()
    }
    /// The aggregate id: the partition key, so one aggregate's events keep their order.
    pub fn subject(&self) -> &str {
        self.names.subject()
    }
    /// When the event happened, in UTC.
    pub fn time(&self) -> OffsetDateTime {
        self.time
    }
    /// The `dataschema` the producer named, if any.
    pub fn dataschema(&self) -> Option<&str> {
        self.dataschema.as_deref()
    }
    /// Extension attributes (e.g. `traceparent`).
    pub fn extensions(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.extensions
    }
    /// The typed event.
    pub fn event(&self) -> &Event {
        &self.event
    }
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }
    #[cfg(test)]
    pub(crate) fn extensions_mut(&mut self) -> &mut BTreeMap<String, serde_json::Value> {
        &mut self.extensions
    }

    /// What must match for two deliveries under one event id to be the same event: its source, type, subject and
    /// data, as canonical JSON. Not `time`, which ingest fills in from the receipt when a producer leaves it out,
    /// so a producer's retry of the same event differs there; nor extensions (transport metadata such as trace
    /// context). The idempotency records hash this to tell a redelivery from an id reused for another event.
    pub fn content_bytes(&self) -> Vec<u8> {
        struct Content<'a>(&'a Envelope);
        impl Serialize for Content<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("source", self.0.source())?;
                map.serialize_entry("type", self.0.event_type().as_str())?;
                map.serialize_entry("subject", self.0.subject())?;
                self.0.event.serialize_data(&mut map)?;
                map.end()
            }
        }
        serde_json::to_vec(&Content(self)).unwrap_or_default()
    }
}

/// An envelope's `id`, `source` and `subject`, one after the other in one string: every event has all three,
/// and as three strings they were three allocations and three frees for each event a consumer decodes (issue #15).
#[derive(Clone, PartialEq, Eq)]
struct Names {
    text: String,
    /// Where `id` ends and `source` begins.
    id_end: usize,
    /// Where `source` ends and `subject` begins.
    source_end: usize,
}

// The three strings as three fields, as the envelope showed them before they shared one string.
impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("id", &self.id())
            .field("source", &self.source())
            .field("subject", &self.subject())
            .finish()
    }
}

impl Names {
    fn new(id: &str, source: &str, subject: &str) -> Self {
        let mut text = String::with_capacity(id.len() + source.len() + subject.len());
        text.push_str(id);
        text.push_str(source);
        text.push_str(subject);
        Names {
            text,
            id_end: id.len(),
            source_end: id.len() + source.len(),
        }
    }

    // The bounds are where whole strings were pushed: always char boundaries, so `get` never answers `None`.
    fn id(&self) -> &str {
        self.text.get(..self.id_end).unwrap_or_default()
    }

    fn source(&self) -> &str {
        self.text
            .get(self.id_end..self.source_end)
            .unwrap_or_default()
    }

    fn subject(&self) -> &str {
        self.text.get(self.source_end..).unwrap_or_default()
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPECVERSION)?;
        map.serialize_entry("id", self.id())?;
        map.serialize_entry("source", self.source())?;
        map.serialize_entry("type", self.event.event_type().as_str())?;
        map.serialize_entry("subject", self.subject())?;
        let time = self
            .time
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        map.serialize_entry("time", &time)?;
        map.serialize_entry("datacontenttype", DATA_CONTENT_TYPE)?;
        if let Some(schema) = &self.dataschema {
            map.serialize_entry("dataschema", schema)?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, value)?;
        }
        self.event.serialize_data(&mut map)?;
        map.end()
    }
}

#[cfg(test)]
mod tests;
