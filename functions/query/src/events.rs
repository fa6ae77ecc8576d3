//! `GET /events/{source}/{id}`: what happened to one event. The consumers' idempotency records say it
//! ([`tubes_platform::idempotency::ReadRecords`]): each consumer's record of the event has its state and attempts,
//! the dead-letter queue it was parked in, if it was, and the event's place in the stream (written by the harness
//! with each claim). The consumers and the types they take come from the configuration ([`Consumers`], the
//! template's `EVENT_CONSUMERS`), so a consumer that has not reached the event yet shows as pending.
//!
//! The records last their TTL (24 h by default): an older event is in the event store (`make query`), not here.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tubes_contract::EventType;
use tubes_platform::api_key::is_name;
use tubes_platform::idempotency::{self, ReadRecords, Record, State, StoreError};

use crate::ConfigError;

/// The consumers that keep idempotency records, and the types each takes:
/// `payments=account.opened,payment.received;signups=user.signed_up` (`EVENT_CONSUMERS`; entries apart by `;` or
/// whitespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers {
    takes: BTreeMap<String, Vec<EventType>>,
}

impl Consumers {
    /// Reads the configuration: each entry a consumer name (1-64 of `a-z 0-9 - _`), `=`, and its event types.
    pub fn parse(spec: &str) -> Result<Self, ConfigError> {
        let mut takes = BTreeMap::new();
        for entry in spec
            .split(|c: char| c == ';' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let (name, types) = entry.split_once('=').ok_or_else(|| {
                ConfigError(format!(
                    "event consumer {entry:?}: write name=type,type (e.g. payments=payment.received)"
                ))
            })?;
            if !is_name(name, 64) {
                return Err(ConfigError(format!(
                    "event consumer name {name:?}: use 1-64 of a-z 0-9 - _"
                )));
            }
            let types = types
                .split(',')
                .map(|t| {
                    EventType::parse(t).ok_or_else(|| {
                        ConfigError(format!("event consumer {name}: no event type {t:?}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if takes.insert(name.to_owned(), types).is_some() {
                return Err(ConfigError(format!("event consumer {name} named twice")));
            }
        }
        Ok(Self { takes })
    }

    /// The consumers, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.takes.keys().map(String::as_str)
    }

    fn takes(&self, consumer: &str, ty: &str) -> bool {
        self.takes
            .get(consumer)
            .is_some_and(|types| types.iter().any(|t| t.as_str() == ty))
    }
}

/// What the stream says about the event: when and where it took the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// When Kinesis took the record (RFC 3339, milliseconds).
    pub at: Option<String>,
    /// The shard.
    pub shard_id: Option<String>,
    /// The record's sequence number in its shard.
    pub sequence_number: Option<String>,
    /// The record's partition key.
    pub partition_key: Option<String>,
}

/// Where one consumer is with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Done.
    Handled,
    /// A consumer holds it now.
    InProgress,
    /// It failed (or its invocation ended) and is tried again.
    Retrying,
    /// It was parked in a dead-letter queue: redrive it after the fix.
    Parked,
    /// The consumer takes the event's type but has not reached it yet.
    Pending,
}

/// One consumer's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerStatus {
    /// The consumer's name.
    pub consumer: String,
    /// Where it is with the event.
    pub status: Progress,
    /// Its attempts so far (a dependency's outages are not counted).
    pub attempts: u32,
    /// The dead-letter queue, when parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
}

/// The answer of `GET /events/{source}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventStatus {
    /// The event's source.
    pub source: String,
    /// The event's id.
    pub id: String,
    /// Its type, as its records say.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// When and where the stream took it.
    pub accepted: Accepted,
    /// Each consumer that takes its type or has a record of it, by name.
    pub consumers: Vec<ConsumerStatus>,
}

/// What one record says at `now_ms`.
fn progress(record: &Record, now_ms: i64) -> Progress {
    match record.state {
        State::Completed => Progress::Handled,
        State::InProgress if record.lock_expires_ms.is_some_and(|l| l >= now_ms) => {
            Progress::InProgress
        }
        // Its holder died: the next delivery claims it again.
        State::InProgress => Progress::Retrying,
        State::Released if record.parked.is_some() => Progress::Parked,
        State::Released => Progress::Retrying,
    }
}

/// The status of the event `id` from `source` now, from the consumers' records in `records`; `None` if no
/// consumer has a record of it (never accepted, not reached yet by any consumer, or older than the records).
pub async fn status<R: ReadRecords>(
    records: &R,
    consumers: &Consumers,
    source: &str,
    id: &str,
) -> Result<Option<EventStatus>, StoreError> {
    let names: Vec<&str> = consumers.names().collect();
    let keys: Vec<String> = names
        .iter()
        .map(|c| idempotency::event_key(c, source, id))
        .collect();
    let mut found: HashMap<String, Record> = HashMap::new();
    for chunk in keys.chunks(100) {
        found.extend(records.records(chunk).await?);
    }
    if found.is_empty() {
        return Ok(None);
    }
    // Every record of one event notes the same place, unless a sender sent the same event twice: then the
    // earliest sequence number is the acceptance the consumers acted on.
    let first = found
        .values()
        .filter(|r| r.notes.contains_key("sequence_number"))
        .min_by(|a, b| {
            let seq = |r: &Record| {
                let s = r.notes["sequence_number"].clone();
                (s.len(), s)
            };
            seq(a).cmp(&seq(b))
        })
        .or_else(|| found.values().next());
    let note = |name: &str| first.and_then(|r| r.notes.get(name)).cloned();
    let event_type = note("event_type");
    let accepted = Accepted {
        at: note("arrival_ms")
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(rfc3339_ms),
        shard_id: note("shard_id"),
        sequence_number: note("sequence_number"),
        partition_key: note("partition_key"),
    };
    let now = tubes_platform::clock::now_ms();
    let consumers = names
        .iter()
        .zip(&keys)
        .filter_map(|(name, key)| match found.get(key) {
            Some(record) => Some(ConsumerStatus {
                consumer: (*name).to_owned(),
                status: progress(record, now),
                attempts: record.attempts,
                dead_letter_queue: record.parked.clone(),
            }),
            None => event_type
                .as_deref()
                .filter(|ty| consumers.takes(name, ty))
                .map(|_| ConsumerStatus {
                    consumer: (*name).to_owned(),
                    status: Progress::Pending,
                    attempts: 0,
                    dead_letter_queue: None,
                }),
        })
        .collect();
    Ok(Some(EventStatus {
        source: source.to_owned(),
        id: id.to_owned(),
        event_type,
        accepted,
        consumers,
    }))
}

/// Milliseconds since the Unix epoch as RFC 3339, exactly (no float on the way).
fn rfc3339_ms(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A path segment, percent-decoded (`%2Fshop` is `/shop`); `None` if an escape is broken or the text is not
/// UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
