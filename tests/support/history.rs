//! A history of events as a stream holds them: a workload of accounts and users, and the Kinesis batches one shard
//! would deliver it in (for the event store's and the read models' tests and figures).

use serde_json::{json, Value};
use tubes_platform::lambda_event::{kinesis_event, BatchSource, SequenceNumber, StreamRecord};
use tubes_platform::KinesisBatch;

/// The shard the batches come from.
pub fn source() -> BatchSource {
    BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/tubes".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::000000000000:role/tubes".into(),
    }
}

/// `events` as one shard holds them, in batches of `per_batch`: sequence numbers 1, 2, … across batches, the
/// subject as partition key.
pub fn batches(events: &[Value], per_batch: usize) -> Vec<KinesisBatch> {
    events
        .chunks(per_batch)
        .enumerate()
        .map(|(b, chunk)| {
            let records: Vec<StreamRecord> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| StreamRecord {
                    sequence_number: SequenceNumber::from(format!(
                        "4959{:052}",
                        b * per_batch + i + 1
                    )),
                    partition_key: e["subject"].as_str().expect("a subject").to_owned(),
                    data: serde_json::to_vec(e).expect("JSON"),
                    arrival: 1_795_000_000.0 + (b * per_batch + i) as f64 / 10.0,
                })
                .collect();
            KinesisBatch::from_event(&kinesis_event(&source(), &records)).expect("a batch")
        })
        .collect()
}

/// `n` events over `keys` accounts and users: each account opened, then credits, payments and their outcomes
/// (as the payments consumer would publish them); each user signed up, every third unsubscribing.
pub fn workload(n: usize, keys: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let k = i % keys;
        let round = i / keys;
        i += 1;
        let event = if k % 4 == 3 {
            let user = format!("usr_{k}");
            match round {
                0 => {
                    json!({"type": "user.signed_up", "data": {"user_id": user, "email": format!("{user}@example.com"),
                    "name": "Ada", "marketing_opt_in": true, "signed_up_at": "2026-11-22T10:00:00Z"}})
                }
                r if r % 3 == 1 => json!({"type": "user.unsubscribed", "data": {"user_id": user,
                    "email": format!("{user}@example.com"), "list_id": "news",
                    "unsubscribed_at": format!("2026-11-22T11:{:02}:00Z", r % 60)}}),
                r => {
                    json!({"type": "user.signed_up", "data": {"user_id": user, "email": format!("{user}@example.com"),
                    "name": "Ada", "marketing_opt_in": true,
                    "signed_up_at": format!("2026-11-22T11:{:02}:30Z", r % 60)}})
                }
            }
        } else {
            let account = format!("acc_{k}");
            let payment = format!("pay_{k}_{round}");
            let money = json!({"account_id": account, "amount": 100 + round, "currency": "EUR"});
            let mut data = money.clone();
            let ty = match round % 4 {
                _ if round == 0 => {
                    data = json!({"account_id": account, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"});
                    "account.opened"
                }
                1 => {
                    data["credit_id"] = json!(format!("cr_{k}_{round}"));
                    data["credited_at"] = json!("2026-11-22T09:30:00Z");
                    "account.credited"
                }
                2 => {
                    data["payment_id"] = json!(payment);
                    data["payer_email"] = json!("ada@example.com");
                    "payment.received"
                }
                _ => {
                    data["payment_id"] = json!(format!("pay_{k}_{}", round - 1));
                    data["payer_email"] = json!("ada@example.com");
                    data["processed_at"] = json!("2026-11-22T10:00:01Z");
                    "payment.processed"
                }
            };
            json!({"type": ty, "data": data})
        };
        let subject = event["data"]
            .get("account_id")
            .or_else(|| event["data"].get("user_id"))
            .expect("an aggregate id")
            .clone();
        let mut event = event;
        event["specversion"] = json!("1.0");
        event["id"] = json!(format!("evt_{i}"));
        event["source"] = json!("/replay-test");
        event["subject"] = subject;
        event["time"] = json!("2026-11-22T10:00:00Z");
        out.push(event);
    }
    out
}
