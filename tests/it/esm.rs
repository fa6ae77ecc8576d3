//! The event source mapping emulator against the real Kinesis emulator, with the Lambda Invoke API played by a
//! recording HTTP server: starting positions and resharding, which the end-to-end test does not reach.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ScalingType;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tubes_local::app::App;
use tubes_local::runner::{Emulator, Settings};
use tubes_local::stack::{provision, Clients};
use tubes_local::view::View;
use tubes_tests::KinesisLocal;

/// Every invocation received: (function, event).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal Lambda Invoke API: records each event and answers `{}` (success).
async fn invoke_api() -> (String, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls: Calls = Arc::default();
    let recorded = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                loop {
                    let mut request_line = String::new();
                    if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        read.read_line(&mut line).await.unwrap();
                        if line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    read.read_exact(&mut body).await.unwrap();
                    let function = request_line.split('/').nth(3).unwrap_or("").to_owned();
                    recorded
                        .lock()
                        .unwrap()
                        .push((function, serde_json::from_slice(&body).unwrap()));
                    write
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (url, calls)
}

/// (shard, partition key, data) of every record delivered so far, in delivery order.
fn delivered(calls: &Calls) -> Vec<(String, String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    calls
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, event)| event["Records"].as_array().unwrap().clone())
        .map(|r| {
            let shard = r["eventID"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned();
            let data = b64.decode(r["kinesis"]["data"].as_str().unwrap()).unwrap();
            (
                shard,
                r["kinesis"]["partitionKey"].as_str().unwrap().to_owned(),
                String::from_utf8(data).unwrap(),
            )
        })
        .collect()
}

async fn put(kinesis: &aws_sdk_kinesis::Client, key: &str, data: &str) {
    let blob = Blob::new(data.as_bytes().to_vec());
    kinesis
        .put_record()
        .stream_name("t-S")
        .partition_key(key)
        .data(blob)
        .send()
        .await
        .unwrap();
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn latest_skips_old_records_and_child_shards_follow_their_parent() {
    let emulator = KinesisLocal::start().await;
    let kinesis = emulator.client();
    let template = json!({"Resources": {
        "S": {"Type": "AWS::Kinesis::Stream", "Metadata": {"tubes": {"LocalShardCount": 1}}},
        "F": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "f"}}},
        "M": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": ["S", "Arn"]}, "FunctionName": {"Ref": "F"},
            "StartingPosition": "LATEST", "BatchSize": 10,
            "FilterCriteria": {"Filters": [{"Pattern": "{\"partitionKey\": [{\"anything-but\": [\"skip\"]}]}"}]}}}}});
    let app = App::from_template(&template).unwrap();
    let clients = Clients {
        kinesis: kinesis.clone(),
        sqs: None,
        secrets: None,
        dynamodb: None,
        s3: None,
    };
    let resolved = provision(&app, "t", &clients).await.unwrap();
    put(&kinesis, "k", "before-start").await;

    let (url, calls) = invoke_api().await;
    let log = std::env::temp_dir().join(format!("tubes-esm-{}.jsonl", uuid::Uuid::now_v7()));
    let view = Arc::new(View::new(Some(std::fs::File::create(&log).unwrap()), true));
    let settings = Settings {
        lambda_endpoint: url,
        region: "us-east-1".into(),
        account: "000000000000".into(),
        idle_poll: Duration::from_millis(100),
        discovery: Duration::from_millis(300),
        state_dir: None,
    };
    let esm = Emulator::new(app, resolved, kinesis.clone(), None, settings, view.clone());
    esm.start();
    until("the shard is being read", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("\"shard\"")
    })
    .await;

    put(&kinesis, "k", "after-start").await;
    put(&kinesis, "skip", "filtered-out").await;
    until("the new record is delivered", || {
        delivered(&calls).iter().any(|d| d.2 == "after-start")
    })
    .await;

    // Reshard 1 → 2: the parent is closed; its children must be found and read from their start.
    kinesis
        .update_shard_count()
        .stream_name("t-S")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    tubes_tests::until_resharded(&kinesis, "t-S", 2).await;
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        put(&kinesis, k, &format!("after-reshard-{k}")).await;
    }
    until(
        "every record written after the reshard is delivered",
        || {
            let d = delivered(&calls);
            keys.iter()
                .all(|k| d.iter().any(|x| x.2 == format!("after-reshard-{k}")))
        },
    )
    .await;

    let d = delivered(&calls);
    assert!(
        !d.iter().any(|x| x.2 == "before-start"),
        "LATEST: a record older than the mapping is not delivered"
    );
    assert!(
        !d.iter().any(|x| x.1 == "skip"),
        "a record the filter rejects is not delivered"
    );
    assert_eq!(
        d.iter().filter(|x| x.2 == "after-start").count(),
        1,
        "delivered once"
    );
    let children: std::collections::BTreeSet<&str> = d
        .iter()
        .filter(|x| x.2.starts_with("after-reshard"))
        .map(|x| x.0.as_str())
        .collect();
    assert!(
        !children.contains("shardId-000000000000"),
        "new records go to the children: {children:?}"
    );
    assert!(children.len() == 2, "both children are read: {children:?}");
    let notes = std::fs::read_to_string(&log).unwrap();
    let closed = notes
        .find("shardId-000000000000 closed")
        .expect("the parent is read to its end");
    let child = notes
        .find("reads t-S/shardId-000000000001")
        .expect("a child is read");
    assert!(
        closed < child,
        "children are read only after their parent is finished"
    );
    let stats = view.stats();
    assert_eq!(
        stats[&("F".to_owned(), "shardId-000000000000".to_owned())].filtered,
        1
    );
}
