//! `tail`: the stream, followed and decoded, one line per event: its time, type, subject and id, and where it is
//! (shard / sequence number, `#n` the sub-sequence of an event in a packed record or KPL aggregate). Every shard
//! is read (`ListShards`, then `GetShardIterator` and `GetRecords` per shard, polled); records are decoded the
//! way every reader of the stream decodes them ([`record_events`]): a pack meant for another shard is left to
//! the shard it was written again on, as the consumers leave it. Resharding is followed: the shards are listed
//! again when one is read to its end and every few seconds, and a child shard is read once its parents are, so
//! one subject's events come out in order across a split or a merge.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use tubes_contract::{Envelope, EventType};
use tubes_platform::lambda_event::{record_events, Decoded};

use super::sample;
use super::stack::Stack;
use super::DevError;

/// Where to start reading each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum From {
    /// The oldest record the stream keeps.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
}

/// `tail [--type T] [--subject S] [--from trim-horizon|latest] [--no-follow]`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE", value_parser = sample::parse_type)]
    ty: Option<EventType>,
    /// Only events of this subject (an account, a user).
    #[arg(long)]
    subject: Option<String>,
    /// Where to start.
    #[arg(long, value_enum, default_value_t = From::TrimHorizon)]
    from: From,
    /// Stop once every shard is read to its end, instead of following.
    #[arg(long)]
    no_follow: bool,
}

/// One shard being read.
struct Reader {
    shard: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
}

/// How long to wait when no shard had anything new.
const POLL: Duration = Duration::from_millis(500);

/// How often the shards are listed again while following (resharding adds shards).
const RELIST: Duration = Duration::from_secs(5);

/// The line of one event (`None` when the filters leave it out).
fn line(
    args: &TailArgs,
    shard: &str,
    sequence_number: &str,
    sub: Option<u64>,
    event: &Decoded,
) -> Option<String> {
    let at = match sub {
        Some(sub) => format!("{shard}/{sequence_number}#{sub}"),
        None => format!("{shard}/{sequence_number}"),
    };
    match event {
        Ok(e) => {
            if args.ty.is_some_and(|t| t != e.event_type())
                || args.subject.as_ref().is_some_and(|s| s != e.subject())
            {
                return None;
            }
            Some(event_line(e, &at))
        }
        // An undecodable record has no type or subject to filter by: shown only when nothing is filtered.
        Err((why, bytes)) => (args.ty.is_none() && args.subject.is_none()).then(|| {
            format!(
                "{:<23}  undecodable ({why}; {} bytes)  {at}",
                "-",
                bytes.len()
            )
        }),
    }
}

fn event_line(e: &Envelope, at: &str) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    let time = e.time().format(&format).unwrap_or_default();
    format!(
        "{time}  {:<18} {:<16} {}  {at}",
        e.event_type().as_str(),
        e.subject(),
        e.id()
    )
}

fn kinesis_error(stack: &Stack, operation: &str, e: impl std::error::Error) -> DevError {
    stack.unreachable(
        &format!("Kinesis ({operation} on {})", stack.stream()),
        "TUBES_KINESIS_PORT",
        tubes_platform::aws::describe(operation, e),
    )
}

/// A shard of the stream, with the shards it was split or merged from.
struct Shard {
    id: String,
    parents: Vec<String>,
}

/// Every shard of the stream, open and closed (`ListShards`, every page).
async fn list_shards(
    stack: &Stack,
    kinesis: &aws_sdk_kinesis::Client,
) -> Result<Vec<Shard>, DevError> {
    let stream = stack.stream();
    let mut shards = Vec::new();
    let mut token = None;
    loop {
        let request = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(&stream),
        };
        let page = request.send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                DevError::Stack(format!(
                    "no stream {stream} on the Kinesis emulator: is `make dev` running?"
                ))
            } else {
                kinesis_error(stack, "ListShards", e)
            }
        })?;
        shards.extend(page.shards().iter().map(|s| {
            Shard {
                id: s.shard_id().to_owned(),
                parents: [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect(),
            }
        }));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// The shards to start reading now: those not read yet whose parents are not being read any more (a child is read
/// once its parents are read to their end, so one key's events come out in order across a split or a merge).
/// Shards the stream had at the start are read from `kind`; those found later (children of a split or merge since)
/// from their first record, whatever `--from` said.
async fn open_new_shards(
    stack: &Stack,
    kinesis: &aws_sdk_kinesis::Client,
    readers: &mut Vec<Reader>,
    at_start: &mut Vec<String>,
    kind: &ShardIteratorType,
) -> Result<usize, DevError> {
    let listed = list_shards(stack, kinesis).await?;
    let ids: Vec<String> = listed.iter().map(|s| s.id.clone()).collect();
    if at_start.is_empty() {
        at_start.clone_from(&ids);
    }
    let mut opened = 0;
    for shard in listed {
        if readers.iter().any(|r| r.shard == shard.id) {
            continue;
        }
        // A parent still listed (within the retention period) and not read to its end yet goes first.
        let waits = shard.parents.iter().any(|p| {
            ids.contains(p)
                && readers
                    .iter()
                    .find(|r| r.shard == *p)
                    .is_none_or(|r| r.iterator.is_some())
        });
        if waits {
            continue;
        }
        let kind = if at_start.contains(&shard.id) {
            kind.clone()
        } else {
            ShardIteratorType::TrimHorizon
        };
        let out = kinesis
            .get_shard_iterator()
            .stream_name(stack.stream())
            .shard_id(&shard.id)
            .shard_iterator_type(kind)
            .send()
            .await
            .map_err(|e| kinesis_error(stack, "GetShardIterator", e))?;
        readers.push(Reader {
            shard: shard.id,
            iterator: out.shard_iterator().map(str::to_owned),
        });
        opened += 1;
    }
    Ok(opened)
}

pub(super) async fn run(stack: &Stack, args: TailArgs) -> Result<(), DevError> {
    let kinesis = stack.kinesis();
    let kind = match args.from {
        From::TrimHorizon => ShardIteratorType::TrimHorizon,
        From::Latest => ShardIteratorType::Latest,
    };
    let (mut readers, mut at_start) = (Vec::new(), Vec::new());
    open_new_shards(stack, &kinesis, &mut readers, &mut at_start, &kind).await?;
    eprintln!(
        "tubes-dev: {} on {} shard(s), from {}",
        stack.stream(),
        readers.len(),
        match args.from {
            From::TrimHorizon => "the oldest record",
            From::Latest => "now",
        }
    );
    let mut listed_at = Instant::now();
    loop {
        let mut any = false;
        let mut behind = false;
        let mut closed = false;
        for reader in &mut readers {
            let Some(iterator) = reader.iterator.clone() else {
                continue;
            };
            let out = match kinesis
                .get_records()
                .shard_iterator(iterator)
                .limit(1000)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) =>
                {
                    // Five reads per second per shard: the next round reads it again.
                    behind = true;
                    continue;
                }
                Err(e) => return Err(kinesis_error(stack, "GetRecords", e)),
            };
            behind |= out.millis_behind_latest().is_some_and(|m| m > 0);
            for record in out.records() {
                any = true;
                let seq = record.sequence_number();
                let events = record_events(record.data().as_ref().to_vec()).for_shard(
                    record.partition_key().unwrap_or_default().to_owned(),
                    &reader.shard,
                );
                for (sub, _, event) in &events {
                    if let Some(l) = line(&args, &reader.shard, seq, *sub, event) {
                        println!("{l}");
                    }
                }
            }
            reader.iterator = out.next_shard_iterator().map(str::to_owned);
            closed |= reader.iterator.is_none();
        }
        // A shard read to its end (split or merged), or now and then: the shards the stream has now.
        if closed || listed_at.elapsed() >= RELIST {
            listed_at = Instant::now();
            if open_new_shards(stack, &kinesis, &mut readers, &mut at_start, &kind).await? > 0 {
                behind = true;
            }
        }
        if args.no_follow && !any && !behind {
            return Ok(());
        }
        if !any {
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tubes_contract::codec;

    use super::*;

    fn args(ty: Option<EventType>, subject: Option<&str>) -> TailArgs {
        TailArgs {
            ty,
            subject: subject.map(str::to_owned),
            from: From::TrimHorizon,
            no_follow: true,
        }
    }

    fn envelope(ty: EventType, subject: &str) -> Envelope {
        let mut e = tubes_contract::schema::example(ty);
        e["subject"] = subject.into();
        e["data"][ty.aggregate_member()] = subject.into();
        Envelope::parse(e.to_string().as_bytes(), time::OffsetDateTime::now_utc())
            .unwrap_or_else(|v| panic!("{v:?}"))
    }

    #[test]
    fn a_packed_record_is_shown_as_its_events_with_their_sub_sequence_numbers() {
        let a = codec::encode(&envelope(EventType::AccountOpened, "acc_1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = codec::encode(&envelope(EventType::PaymentReceived, "acc_1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let pack = codec::pack(
            &[
                (EventType::AccountOpened, &a),
                (EventType::PaymentReceived, &b),
            ],
            "shardId-000000000001",
            "acc_1",
        );
        let events = record_events(pack.data).for_shard("acc_1".into(), "shardId-000000000001");
        let lines: Vec<String> = events
            .iter()
            .filter_map(|(sub, _, e)| {
                line(&args(None, None), "shardId-000000000001", "4959", *sub, e)
            })
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("account.opened")
                && lines[0].ends_with("shardId-000000000001/4959#0")
        );
        assert!(lines[1].contains("payment.received") && lines[1].contains("acc_1"));
        assert!(
            lines[1].starts_with("2026-11-22 10:00:00.000"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("/4959#1"), "{}", lines[1]);
        // Filters by type and subject.
        let only = args(Some(EventType::PaymentReceived), Some("acc_1"));
        let kept: Vec<_> = events
            .iter()
            .filter_map(|(sub, _, e)| line(&only, "s", "1", *sub, e))
            .collect();
        assert_eq!(kept.len(), 1);
        assert!(events.iter().all(|(sub, _, e)| line(
            &args(None, Some("acc_2")),
            "s",
            "1",
            *sub,
            e
        )
        .is_none()));
    }

    #[test]
    fn a_record_of_one_event_has_no_sub_sequence_and_garbage_says_so() {
        let one = codec::encode(&envelope(EventType::UserSignedUp, "usr_1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let events = record_events(one.data).for_shard("usr_1".into(), "s0");
        let l = line(&args(None, None), "s0", "42", events[0].0, &events[0].2).unwrap_or_default();
        assert!(l.ends_with(" s0/42") && l.contains("user.signed_up"), "{l}");
        let garbage = record_events(b"not json".to_vec()).for_shard("k".into(), "s0");
        let l =
            line(&args(None, None), "s0", "43", garbage[0].0, &garbage[0].2).unwrap_or_default();
        assert!(l.contains("undecodable") && l.ends_with("s0/43"), "{l}");
    }
}
