//! Reading one shard from an iterator up to its tip: the one paging rule behind the redrive's on-failure ranges
//! and the replay's stream source.

use std::ops::ControlFlow;

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::types::Record;

/// Pages the shard from `iterator` (as `GetShardIterator` answered it), `limit` records per `GetRecords`, handing
/// each record to `visit` until it breaks or the tip is reached: an open shard's iterator never ends, so an empty
/// page with nothing behind it is the tip.
pub(crate) async fn read_to_tip(
    kinesis: &aws_sdk_kinesis::Client,
    mut iterator: Option<String>,
    limit: i32,
    mut visit: impl FnMut(&Record) -> ControlFlow<()>,
) -> Result<(), SdkError<GetRecordsError>> {
    while let Some(it) = iterator {
        let page = kinesis
            .get_records()
            .shard_iterator(it)
            .limit(limit)
            .send()
            .await?;
        for record in page.records() {
            if visit(record).is_break() {
                return Ok(());
            }
        }
        if page.records().is_empty() && page.millis_behind_latest() == Some(0) {
            return Ok(());
        }
        iterator = page.next_shard_iterator;
    }
    Ok(())
}
