//! KPL interop: records aggregated by the reference library (`aws-kinesis-agg`, AWS Labs' aggregation library,
//! run from the tools' virtualenv) deaggregate to exactly the records put in, through the consumer's own decoding
//! of a Kinesis event; and the aggregates our tests write read back the same in the reference deaggregator.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tubes_contract::Envelope;
use tubes_platform::lambda_event::{
    kinesis_event, kpl, BatchSource, KinesisBatch, SequenceNumber, StreamRecord,
};
use tubes_tests::repo_root;

/// One user record: partition key, explicit hash key, data.
type UserRecord = (String, Option<String>, Vec<u8>);

/// Runs the reference library (`aggregate` or `deaggregate`) on `input`.
fn reference(action: &str, input: &Value) -> Value {
    let root = repo_root();
    let mut child = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/it/py/kpl_reference.py"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tools' python runs: run `make test` (or scripts/bootstrap.sh) first");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(input).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kpl_reference.py {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn signup(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": format!("kpl-{i}"), "source": "/kpl", "type": "user.signed_up",
        "subject": format!("usr_{}", i % 7), "time": "2026-12-04T10:00:00Z",
        "data": {"user_id": format!("usr_{}", i % 7), "email": "a@b.co", "name": "A",
                 "signed_up_at": "2026-12-04T10:00:00Z"}
    }))
    .unwrap()
}

/// Events and arbitrary bytes (empty, binary, up to 300 KB: more than one aggregate's worth in all), under keys
/// that repeat, some non-ASCII, a third with explicit hash keys.
fn user_records() -> Vec<UserRecord> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..2_000)
        .map(|i| {
            let key = match i % 5 {
                0 => format!("clé-{}", i % 11),
                _ => format!("key-{}", i % 37),
            };
            let ehk =
                (i % 3 == 0).then(|| (u128::from(next()) << 64 | u128::from(next())).to_string());
            let data = match i % 4 {
                0 | 1 => signup(i),
                2 if i % 500 == 2 => (0..300_000).map(|_| next() as u8).collect(),
                2 => (0..next() % 2_000).map(|_| next() as u8).collect(),
                _ => Vec::new(),
            };
            (key, ehk, data)
        })
        .collect()
}

#[test]
fn records_aggregated_by_the_reference_library_deaggregate_to_exactly_the_records_put_in() {
    let input = user_records();
    let doc = json!({"records": input.iter().map(|(k, e, d)| json!({
        "partition_key": k, "explicit_hash_key": e, "data": STANDARD.encode(d)
    })).collect::<Vec<_>>()});
    let aggregates: Vec<StreamRecord> = reference("aggregate", &doc)["aggregates"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, a)| StreamRecord {
            sequence_number: SequenceNumber::from(format!("{:056}", i + 1)),
            partition_key: a["partition_key"].as_str().unwrap().to_owned(),
            data: STANDARD.decode(a["data"].as_str().unwrap()).unwrap(),
            arrival: 1_795_000_000.0,
        })
        .collect();
    assert!(aggregates.len() > 1, "the input spans several aggregates");
    assert!(aggregates.iter().all(|a| kpl::is_aggregate(&a.data)));

    // The deaggregator, on its own: every user record, in order, byte for byte, with its own key.
    let read: Vec<(String, Vec<u8>)> = aggregates
        .iter()
        .flat_map(|a| kpl::deaggregate(&a.data).unwrap())
        .map(|u| (u.partition_key.to_owned(), u.data.to_vec()))
        .collect();
    let expected: Vec<(String, Vec<u8>)> = input
        .iter()
        .map(|(k, _, d)| (k.clone(), d.clone()))
        .collect();
    assert_eq!(read.len(), expected.len());
    assert!(
        read == expected,
        "deaggregated records differ from the records put in"
    );

    // Through the consumer's decoding of the Kinesis event Lambda would deliver: one batch record per user
    // record, numbered within its aggregate; the events decode, the other bytes are kept for their dead letter.
    let source = BatchSource {
        event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/tubes-events".into(),
        shard_id: "shardId-000000000000".into(),
        aws_region: "us-east-1".into(),
        invoke_identity_arn: "arn:aws:iam::123456789012:role/tubes-consumer".into(),
    };
    let batch = KinesisBatch::from_event(&kinesis_event(&source, &aggregates)).unwrap();
    assert_eq!(batch.records.len(), input.len());
    let mut expected_sub = 0;
    let mut previous_seq = None;
    for (record, (key, _, data)) in batch.records.iter().zip(&input) {
        if previous_seq.as_ref() != Some(&record.sequence_number) {
            expected_sub = 0;
            previous_seq = Some(record.sequence_number.clone());
        }
        assert_eq!(record.sub_sequence_number, Some(expected_sub));
        expected_sub += 1;
        assert_eq!(&record.partition_key, key);
        match &record.envelope {
            Ok(envelope) => assert_eq!(envelope, &Envelope::decode(data).unwrap()),
            Err((_, bytes)) => {
                assert_eq!(bytes, data);
                assert!(!data.starts_with(b"{\"specversion\""));
            }
        }
    }
    assert_eq!(
        batch.records.iter().filter(|r| r.envelope.is_ok()).count(),
        input.len() / 2
    );
}

#[test]
fn aggregates_written_by_the_tests_read_back_the_same_in_the_reference_deaggregator() {
    let input: Vec<(String, Vec<u8>)> = user_records()
        .into_iter()
        .take(300)
        .map(|(k, _, d)| (k, d))
        .collect();
    let refs: Vec<(&str, &[u8])> = input
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    let aggregate = kpl::aggregate(&refs);
    let doc =
        json!({"aggregates": [{"partition_key": "key-0", "data": STANDARD.encode(&aggregate)}]});
    let read: Vec<(String, Vec<u8>)> = reference("deaggregate", &doc)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition_key"].as_str().unwrap().to_owned(),
                STANDARD.decode(r["data"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert!(
        read == input,
        "the reference deaggregator reads other records"
    );
}
