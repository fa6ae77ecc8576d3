//! The fast pass over a Kinesis event (issue #15), with [`tubes_contract::json::Scanner`]: what
//! [`KinesisBatch::from_payload`] tries first. It reads a well-formed event as AWS writes it, and declines the
//! rest to the serde pass of the parent module, which decides and words every error.

use std::borrow::Cow;

use tubes_contract::codec;
use tubes_contract::json::{self, Scanner};

use super::super::record::SequenceNumber;
use super::super::{kpl, MAX_BATCH_SIZE};
use super::{events_of, order_key, BatchRecord, DecodeError, KinesisBatch};

/// About the fewest bytes a record of a Lambda Kinesis event takes: its members' names and fixed values, its
/// sequence number twice (`sequenceNumber`, `eventID`) and the stream's and role's ARNs come to ≈500 with no data
/// at all. A capacity hint, not a bound: a batch of smaller records only grows its vector as before.
const MIN_RECORD_BYTES: usize = 512;

/// The fast pass over a Kinesis event (issue #15), with [`tubes_contract::json::Scanner`]: the batch exactly as
/// the serde visitors of the parent module make it, or `None` for whatever it does not take (malformed JSON, a member of an
/// unexpected type, a repeated member, data that is not plain base64, an arrival time that is not a plain
/// number, a record whose data comes before its partition key or sequence number), which the serde_json pass
/// then reads. Each record's events are decoded and pushed where they will stay, as the data is read: an
/// envelope is a few hundred bytes, and moving each through the layers of the serde pass showed in its profile.
pub(super) fn scan_batch(payload: &[u8]) -> Option<KinesisBatch> {
    let mut s = Scanner::new(payload);
    let mut batch = KinesisBatch::default();
    // Room for every record up front: growing the vector copies records already decoded (a few hundred bytes
    // each) once per doubling. No mapping hands over more than `MAX_BATCH_SIZE` records (packed ones may still
    // add events beyond that, and grow the vector as before).
    batch
        .records
        .reserve((payload.len() / MIN_RECORD_BYTES).min(MAX_BATCH_SIZE));
    let mut seen = false;
    // Every record's data decoded into this one buffer.
    let mut data = Vec::new();
    let mut tail = None;
    s.object(|s, key| {
        if key.is("Records") {
            // The serde pass reads a second `Records` too: left to it.
            (!seen).then_some(())?;
            seen = true;
            s.array(|s| scan_record(s, &mut batch, &mut data, &mut tail))
        } else {
            other_key(key)?;
            s.skip_value()
        }
    })?;
    // The serde_json pass reads trailing bytes too (and then ignores them): left to it.
    if !seen || !s.at_end() {
        return None;
    }
    batch.drop_misplaced();
    Some(batch)
}

/// A key the fast pass skips the value of: declined when it is written with escapes (it might be one the pass
/// reads) or is not UTF-8 (which serde_json refuses in a key).
#[inline]
fn other_key(key: json::Str<'_>) -> Option<()> {
    (!key.escaped && (key.raw.is_ascii() || std::str::from_utf8(key.raw).is_ok())).then_some(())
}

/// How a record of a Lambda event begins: its `kinesis` member first.
const KINESIS_FIRST: &[u8] = b"{\"kinesis\":";

/// The members after `kinesis` of the last record read in full, as its bytes: up to `eventID`'s value, and from
/// after that value to the record's `}`. Lambda repeats these members on every record of a batch (the source and
/// its version, `eventID`, the event's name, the role, the region, the stream's ARN), and once the stream and the
/// shard are known the fast pass only skips them. A record whose bytes there are exactly these holds the very
/// members, with the same values but its `eventID`: it is past them with two comparisons and one string, where
/// scanning their fourteen strings one by one was about 12 % of the decode.
struct Tail<'a> {
    before_id: &'a [u8],
    after_id: &'a [u8],
}

/// One record of the fast pass: its `kinesis` member's events pushed onto the batch, and the stream and shard
/// from the first record; past the members after `kinesis` as fast as `tail` allows, which it learns from.
fn scan_record<'a>(
    s: &mut Scanner<'a>,
    batch: &mut KinesisBatch,
    data: &mut Vec<u8>,
    tail: &mut Option<Tail<'a>>,
) -> Option<()> {
    let mut kinesis = false;
    // Where the value of `eventID` lies, for learning the tail.
    let mut id_at = None;
    if !s.skip_exactly(KINESIS_FIRST) {
        s.object(|s, key| record_member(s, key, batch, data, &mut kinesis, &mut id_at))?;
        return kinesis.then_some(());
    }
    kinesis = true;
    scan_kinesis(s, batch, data)?;
    let after_kinesis = s.clone();
    if let Some(known) = tail {
        if s.skip_exactly(known.before_id) && s.string().is_some() && s.skip_exactly(known.after_id)
        {
            return Some(());
        }
        // Another tail: read as any record's, from after `kinesis`.
        *s = after_kinesis.clone();
    }
    s.object_rest(|s, key| record_member(s, key, batch, data, &mut kinesis, &mut id_at))?;
    // Learnt once nothing is left to learn from a record's tail (then the members are only skipped).
    if let (Some((id_start, id_end)), Some(_), Some(_)) =
        (id_at, &batch.shard_id, &batch.event_source_arn)
    {
        *tail = Some(Tail {
            before_id: s.between(after_kinesis.position(), id_start),
            after_id: s.between(id_end, s.position()),
        });
    }
    Some(())
}

/// A member of a record in the fast pass; `kinesis` says whether the record's was read, `id_at` where the value
/// of its `eventID` lies.
fn record_member<'a>(
    s: &mut Scanner<'a>,
    key: json::Str<'a>,
    batch: &mut KinesisBatch,
    data: &mut Vec<u8>,
    kinesis: &mut bool,
    id_at: &mut Option<(usize, usize)>,
) -> Option<()> {
    if key.is("kinesis") {
        // The serde pass reads a second one too, and keeps it: left to it.
        (!*kinesis).then_some(())?;
        *kinesis = true;
        scan_kinesis(s, batch, data)?;
    } else if key.is("eventID") && (batch.shard_id.is_none() || s.peek()? == b'"') {
        s.peek()?;
        let start = s.position();
        let id = s.string()?;
        *id_at = Some((start, s.position()));
        if batch.shard_id.is_none() {
            let id = id.unescaped()?;
            batch.shard_id = id.split_once(':').map(|(shard, _)| shard.to_owned());
        }
    } else if key.is("eventSourceARN") && batch.event_source_arn.is_none() {
        batch.event_source_arn = Some(s.string()?.unescaped()?.into_owned());
    } else {
        other_key(key)?;
        s.skip_value()?;
    }
    Some(())
}

/// A record's `kinesis` member in the fast pass: its data decoded as it is read, its events pushed onto the batch
/// (what [`KinesisBatch::push`] does for the serde pass).
fn scan_kinesis(s: &mut Scanner<'_>, batch: &mut KinesisBatch, data: &mut Vec<u8>) -> Option<()> {
    let (mut seq, mut key, mut events, mut arrival) = (None, None, None, None);
    let mut seen_key = false;
    s.object(|s, name| {
        let first = |seen: bool| (!seen).then_some(());
        if name.is("sequenceNumber") {
            first(seq.is_some())?;
            let digits = s.string()?;
            // As Kinesis writes it, digits only: no UTF-8 check needed.
            seq = Some(
                match SequenceNumber::from_digits(digits.raw).filter(|_| !digits.escaped) {
                    Some(number) => number,
                    None => SequenceNumber::from(&*digits.unescaped()?),
                },
            );
        } else if name.is("partitionKey") {
            first(seen_key)?;
            seen_key = true;
            key = Some(s.string()?.unescaped()?.into_owned());
        } else if name.is("data") {
            first(events.is_some())?;
            // As AWS writes a record: its key before its data (which needs it to order the events).
            let partition_key: String = key.take()?;
            seq.as_ref()?;
            // Base64 refuses escapes and control characters itself; its SIMD decoder takes exactly what the serde
            // pass's does (a test says so), and what it refuses is left to that pass.
            data.clear();
            base64_simd::STANDARD
                .decode_append(s.string_unchecked()?, data)
                .ok()?;
            let start = batch.records.len();
            if kpl::is_aggregate(data) || codec::is_packed(data) {
                let meant_for = events_of(data).each(partition_key, |sub, key, envelope| {
                    batch.records.push(BatchRecord {
                        sequence_number: SequenceNumber::default(),
                        sub_sequence_number: sub,
                        partition_key: key,
                        arrival: None,
                        envelope,
                    });
                });
                if let Some(shard) = meant_for {
                    let end = batch.records.len();
                    batch.pack_checks.push((start..end, shard));
                }
            } else {
                // A record of one event (what `events_of` and `Contents::each` make of it), built in place.
                let envelope =
                    codec::decode(data).map_err(|v| (DecodeError::Invalid(v), data.to_vec()));
                let partition_key = order_key(&envelope, Cow::Owned(partition_key));
                batch.records.push(BatchRecord {
                    sequence_number: SequenceNumber::default(),
                    sub_sequence_number: None,
                    partition_key,
                    arrival: None,
                    envelope,
                });
            }
            events = Some(start..batch.records.len());
        } else if name.is("approximateArrivalTimestamp") {
            first(arrival.is_some())?;
            arrival = Some(match s.peek()? {
                b'n' => s.keyword().map(|_| None)?,
                // The form Kinesis writes, in one pass; any other by the general reading.
                b'0'..=b'9' => Some(match s.decimal() {
                    Some(seconds) => seconds,
                    None => {
                        let number = s.number()?;
                        if number.contains(['.', 'e', 'E']) {
                            json::exact_f64(number)?
                        } else {
                            // As serde_json hands an integer over, and `Seconds` makes it a float.
                            number.parse::<u64>().ok()? as f64
                        }
                    }
                }),
                _ => return None,
            });
        } else {
            other_key(name)?;
            s.skip_value()?;
        }
        Some(())
    })?;
    let (events, sequence_number) = (events?, seq?);
    let arrival = arrival.flatten();
    let records = &mut batch.records[events];
    records.iter_mut().for_each(|r| r.arrival = arrival);
    // Moved into the last event, cloned for the others (as `KinesisBatch::push`).
    if let Some((last, others)) = records.split_last_mut() {
        others
            .iter_mut()
            .for_each(|r| r.sequence_number.clone_from(&sequence_number));
        last.sequence_number = sequence_number;
    }
    Some(())
}
