//! Replay from the event store (`tubes-replay`): events selected from the archive by arrival time, type, source and
//! subject, sent again, in each partition key's original order, to one place:
//!
//! - **onto the stream** ([`StreamSink`]): every consumer of the stream sees them again. Each record is marked
//!   replayed (`replayid`, `replayseq`: [`tubes_contract::Envelope::replayed`]); a consumer that handled the event
//!   skips it by its idempotency record, a read model by its original sequence number;
//! - **straight to one consumer function** ([`FunctionSink`]): invoked as the event source mapping would, the
//!   records marked replayed; the other consumers of the stream do not see them again;
//! - **into a read model version** ([`ReadModelSink`]): folded straight into one version of the read models,
//!   without the stream (a rebuild: a fresh version gets exactly what the live one folded), then, if asked,
//!   made the live version ([`switch`]: writers paused, the new version caught up, the pointer moved).
//!
//! **Sources.** The archive ([`read_archive`]) and, if asked, the stream while it retains them ([`read_stream`]:
//! what the archive has not written yet); a record in both is planned once.
//!
//! **Order.** Events are sent in waves: a wave holds the next event of every partition key still to go, and the
//! next wave starts once every event of this one is acknowledged (failed ones are sent again first). So the
//! events of one key arrive in their original stream order whatever the sink's batching does, while different
//! keys go in parallel. **Resume.** After each wave the progress (per key, the last original sequence number
//! sent) is saved in the state file; run the same command again and it skips what was sent. A stop between
//! waves (`--limit`, Ctrl-C) loses nothing and repeats nothing; a crash within a wave may send that wave's
//! events twice, which the marks make harmless.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tubes_contract::Envelope;
use tubes_platform::archive::{self, ArchivedRecord};
use tubes_platform::lambda_event::SequenceNumber;

mod sink;
mod stream;
mod switch;

pub use sink::{FunctionSink, ReadModelSink, Sink, StreamSink};
pub use stream::read_stream;
pub use switch::{switch, SwitchReport};

/// What to replay: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Arrived on the stream at or after (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// Arrived before (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    /// These event types (none: all).
    pub types: Vec<String>,
    /// This CloudEvents `source`.
    pub source: Option<String>,
    /// This subject.
    pub subject: Option<String>,
}

impl Selection {
    fn wants(&self, record: &ArchivedRecord, envelope: &Envelope) -> bool {
        self.from.is_none_or(|f| record.at.arrival >= f)
            && self.to.is_none_or(|t| record.at.arrival < t)
            && (self.types.is_empty()
                || self
                    .types
                    .iter()
                    .any(|t| t == envelope.event_type().as_str()))
            && self
                .source
                .as_deref()
                .is_none_or(|s| s == envelope.source())
            && self
                .subject
                .as_deref()
                .is_none_or(|s| s == envelope.subject())
    }

    /// Whether the object `key` (`events/{type}/{yyyy}/{MM}/{dd}/{HH}/…`) may hold selected events: its type and
    /// its hour, so that a narrow selection reads few objects.
    fn may_hold(&self, key: &str) -> bool {
        let mut parts = key.strip_prefix(archive::PREFIX).unwrap_or(key).split('/');
        let Some(ty) = parts.next() else {
            return false;
        };
        if ty == archive::UNDECODABLE
            || (!self.types.is_empty() && !self.types.iter().any(|t| t == ty))
        {
            return false;
        }
        let hour: Vec<i32> = parts.take(4).filter_map(|p| p.parse().ok()).collect();
        let Some(start) = hour_start(&hour) else {
            return true;
        };
        let end = start + time::Duration::HOUR;
        self.from.is_none_or(|f| end > f) && self.to.is_none_or(|t| start < t)
    }
}

fn hour_start(parts: &[i32]) -> Option<OffsetDateTime> {
    let [y, m, d, h] = parts else { return None };
    let month = time::Month::try_from(u8::try_from(*m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(*y, month, u8::try_from(*d).ok()?).ok()?;
    Some(
        date.with_hms(u8::try_from(*h).ok()?, 0, 0)
            .ok()?
            .assume_utc(),
    )
}

/// One event to replay: the event, its partition key and its original sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The event as archived.
    pub envelope: Envelope,
    /// Its original partition key.
    pub partition_key: String,
    /// Its original sequence number.
    pub sequence: SequenceNumber,
    /// Its place in its original packed record, if it was packed.
    pub sub_sequence: Option<u64>,
}

/// The selected events, by partition key, each key's in original order.
#[derive(Debug, Default)]
pub struct Plan {
    lanes: BTreeMap<String, Vec<Item>>,
}

impl Plan {
    /// The plan for `records` (archive lines) under `selection`; undecodable lines are not events and are left
    /// out, and a record archived twice, or archived again as a replay, is planned once.
    pub fn new(records: impl IntoIterator<Item = ArchivedRecord>, selection: &Selection) -> Self {
        let mut lanes: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for record in records {
            let Ok(envelope) = &record.content else {
                continue;
            };
            if !selection.wants(&record, envelope) {
                continue;
            }
            // A record that was itself a replay stands for its original: it is placed there, and planned once.
            let (sequence, sub_sequence) = match envelope.replay() {
                Some((_, original)) => (SequenceNumber::from(original), None),
                None => (
                    SequenceNumber::from(record.at.sequence_number.clone()),
                    record.at.sub_sequence_number,
                ),
            };
            lanes
                .entry(record.at.partition_key.clone())
                .or_default()
                .push(Item {
                    envelope: envelope.clone(),
                    partition_key: record.at.partition_key.clone(),
                    sequence,
                    sub_sequence,
                });
        }
        for lane in lanes.values_mut() {
            // Stable: a replay's copies of one packed record (placed at its sequence number, without their
            // sub-sequence) keep the order they were read in, which is the pack's.
            lane.sort_by(|a, b| (&a.sequence, a.sub_sequence).cmp(&(&b.sequence, b.sub_sequence)));
            // Once per event: a record archived twice, or again as a replay, stands at the same place (a replay
            // of a packed event at its record's, without its sub-sequence) and carries the same event id (ids are
            // unique per source).
            let (mut places, mut ids) = (HashSet::new(), HashSet::new());
            lane.retain(|item| {
                let place = places.insert((item.sequence.clone(), item.sub_sequence));
                let id = ids.insert((
                    item.envelope.source().to_owned(),
                    item.envelope.id().to_owned(),
                ));
                place && id
            });
        }
        Self { lanes }
    }

    /// The plan of what the archive in `bucket` holds under `selection` ([`read_archive`], then [`Plan::new`]).
    pub async fn from_archive(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        selection: &Selection,
    ) -> Result<Self, String> {
        Ok(Self::new(
            read_archive(s3, bucket, selection).await?,
            selection,
        ))
    }

    /// The plan of what the archive in `bucket` and, if given, the stream `(client, name)` hold under
    /// `selection`: the stream adds what the archive has not written yet.
    pub async fn from_sources(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        stream: Option<(&aws_sdk_kinesis::Client, &str)>,
        selection: &Selection,
    ) -> Result<Self, String> {
        let mut records = read_archive(s3, bucket, selection).await?;
        if let Some((kinesis, name)) = stream {
            records.extend(read_stream(kinesis, name, selection).await?);
        }
        Ok(Self::new(records, selection))
    }

    /// Events in the plan.
    pub fn len(&self) -> usize {
        self.lanes.values().map(Vec::len).sum()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Events by type.
    pub fn by_type(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for item in self.lanes.values().flatten() {
            *out.entry(item.envelope.event_type().as_str().to_owned())
                .or_default() += 1;
        }
        out
    }

    /// Events by partition key.
    pub fn by_key(&self) -> BTreeMap<&str, usize> {
        self.lanes
            .iter()
            .map(|(k, lane)| (k.as_str(), lane.len()))
            .collect()
    }

    /// What is left after `state`: each key's events after the last one sent.
    fn remaining(&self, state: &ReplayState) -> Vec<&[Item]> {
        self.lanes
            .iter()
            .map(|(key, lane)| {
                let sent = state
                    .sent
                    .get(key)
                    .map(|s| SequenceNumber::from(s.as_str()));
                let from = sent.map_or(0, |s| lane.partition_point(|i| i.sequence <= s));
                &lane[from..]
            })
            .filter(|rest| !rest.is_empty())
            .collect()
    }
}

/// What a replay has done so far, saved after each wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayState {
    /// The replay's id (the `replayid` of its records).
    pub id: String,
    /// Where it sends (as given), so that a resume does not send elsewhere.
    pub target: String,
    /// What it replays.
    pub selection: Selection,
    /// Per partition key, the original sequence number of the last event sent.
    pub sent: BTreeMap<String, String>,
    /// Events sent.
    pub events: usize,
}

impl ReplayState {
    /// The state in `path`, if the file exists.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a replay state: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the state to `path` whole (a new file, then renamed over the old one).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every planned event was sent.
    Done,
    /// It stopped between waves (a limit, or interrupted): run it again to resume.
    Stopped,
}

/// Reads the archive objects in `bucket` that may hold events of `selection`, and every line of them.
pub async fn read_archive(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    selection: &Selection,
) -> Result<Vec<ArchivedRecord>, String> {
    Ok(archive::read_all(s3, bucket, |key| selection.may_hold(key))
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// Sends what is left of `plan` after `state` to `sink`, wave by wave, saving `state` to `state_file` after each;
/// stops between waves after `limit` events or when `stop` says so. `progress` is called after each wave with
/// (sent so far, planned).
pub async fn run<S: Sink>(
    plan: &Plan,
    sink: &S,
    state: &mut ReplayState,
    state_file: &Path,
    limit: Option<usize>,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Ended, String> {
    let planned = plan.len();
    let mut lanes: Vec<std::slice::Iter<'_, Item>> = plan
        .remaining(state)
        .into_iter()
        .map(|l| l.iter())
        .collect();
    let mut sent_now = 0usize;
    loop {
        let wave: Vec<&Item> = lanes.iter_mut().filter_map(Iterator::next).collect();
        if wave.is_empty() {
            return Ok(Ended::Done);
        }
        if stop() || limit.is_some_and(|l| sent_now + wave.len() > l) {
            return Ok(Ended::Stopped);
        }
        sink.send(&state.id, &wave).await?;
        for item in &wave {
            state.sent.insert(
                item.partition_key.clone(),
                item.sequence.as_str().to_owned(),
            );
        }
        state.events += wave.len();
        sent_now += wave.len();
        state.save(state_file)?;
        progress(state.events, planned);
        lanes.retain(|l| l.len() > 0);
    }
}

/// A replay's id: `rpl_` and the time it started (sortable, readable in a record).
pub fn new_id() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "rpl_{}",
        now.format(&Rfc3339)
            .unwrap_or_default()
            .replace([':', '-', '.'], "")
            .to_ascii_lowercase()
    )
}

/// Counts by key, the `n` largest (a dry run's view of skew: one key's events go one per wave).
pub fn largest_keys(plan: &Plan, n: usize) -> Vec<(String, usize)> {
    let mut keys: Vec<(String, usize)> = plan
        .by_key()
        .into_iter()
        .map(|(k, c)| (k.to_owned(), c))
        .collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(n);
    keys
}

#[cfg(test)]
mod tests;
