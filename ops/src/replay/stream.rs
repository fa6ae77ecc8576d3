//! The events the stream still retains, read as the archive would have written them: a replay also covers what
//! the archive has not written yet (its batching window, an outage of the archive function, events of the last
//! minutes).

use std::ops::ControlFlow;

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use tubes_platform::archive::{ArchivedRecord, Coordinates, Undecodable};
use tubes_platform::aws::describe;
use tubes_platform::lambda_event::{record_events, StreamRecord};

use super::Selection;
use crate::shard::read_to_tip;

/// Records per `GetRecords` (Kinesis's most).
const PAGE: i32 = 10_000;

/// Every record the stream `stream` retains that may belong to `selection`: from its `from` (else the oldest),
/// up to the tip as it was when read (or past the selection's `to`), every shard, as archive lines.
pub async fn read_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    selection: &Selection,
) -> Result<Vec<ArchivedRecord>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(stream),
        };
        let page = request
            .send()
            .await
            .map_err(|e| describe("ListShards", e))?;
        shards.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let start = match selection.from {
        Some(from) => Some(
            DateTime::from_nanos(from.unix_timestamp_nanos())
                .map_err(|e| format!("--from {from}: {e}"))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    for shard in shards {
        let request = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard);
        let request = match start {
            Some(at) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(at),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let iterator = request
            .send()
            .await
            .map_err(|e| describe("GetShardIterator", e))?
            .shard_iterator;
        read_to_tip(kinesis, iterator, PAGE, |r| {
            let record = StreamRecord::from(r);
            let arrival = Coordinates::arrival_from(Some(record.arrival));
            // Past the selection's end: nothing later on this shard is selected.
            if selection.to.is_some_and(|to| arrival >= to) {
                return ControlFlow::Break(());
            }
            // A packed record is its events (each at its sub-sequence number, under its subject); a pack that
            // landed here by mistake is none (its writer wrote its events again on their shard).
            let events = record_events(record.data).for_shard(record.partition_key, &shard);
            for (sub_sequence_number, partition_key, decoded) in events {
                let at = Coordinates {
                    partition_key,
                    shard_id: shard.clone(),
                    sequence_number: record.sequence_number.as_str().to_owned(),
                    sub_sequence_number,
                    arrival,
                };
                let content = decoded.map_err(|(error, raw)| Undecodable {
                    raw,
                    error: error.to_string(),
                });
                out.push(ArchivedRecord { at, content });
            }
            ControlFlow::Continue(())
        })
        .await
        .map_err(|e| describe("GetRecords", e))?;
    }
    Ok(out)
}
