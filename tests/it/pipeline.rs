//! The pipeline through a real Kinesis emulator: ingest writes with the real SDK client, the test reads the
//! records back with GetShardIterator/GetRecords, builds the event Lambda would send, and runs the consumers.

use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tubes_ingest::{Config, Ingest};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::lambda_event::kinesis_event;
use tubes_platform::mail::MemoryMailer;
use tubes_platform::users::MemoryDirectory;
use tubes_platform::{Harness, KinesisBatch, KinesisPublisher};
use tubes_tests::{http_v2_post, KinesisLocal};

fn signed_up(user: &str) -> Value {
    json!({
        "specversion": "1.0",
        "source": "/shop/web",
        "type": "user.signed_up",
        "data": {"user_id": user, "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

fn json_body(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn ingest_for(kinesis: &KinesisLocal, stream: &str) -> Ingest<KinesisPublisher> {
    let config = Config {
        max_body_bytes: 64 * 1024,
        ..tubes_tests::open_ingest_config(stream)
    };
    Ingest::new(
        KinesisPublisher::new(kinesis.client(), stream),
        &config,
        tubes_tests::open_sources(),
    )
}

#[tokio::test]
async fn a_posted_signup_reaches_the_stream_and_the_signups_consumer() {
    // Given a real Kinesis emulator with a two-shard stream
    let kinesis = KinesisLocal::start().await;
    let arn = kinesis.create_stream("events-e2e", 2).await;
    let ingest = ingest_for(&kinesis, "events-e2e");

    // When a client POSTs a user.signed_up event
    let response = ingest
        .handle(http_v2_post(
            "application/cloudevents+json",
            &signed_up("usr_42").to_string(),
        ))
        .await;

    // Then ingest answers 202 with the id, shard and sequence number Kinesis gave
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted = json_body(&response)["accepted"][0].clone();
    let id = accepted["id"].as_str().unwrap().to_owned();

    // And the record is in the stream, on that shard, at that sequence number
    let shards = kinesis.read_all("events-e2e", &arn).await;
    let (source, records) = shards
        .iter()
        .find(|(_, r)| !r.is_empty())
        .expect("one shard holds the record");
    assert_eq!(shards.iter().map(|(_, r)| r.len()).sum::<usize>(), 1);
    assert_eq!(source.shard_id, accepted["shard_id"].as_str().unwrap());
    assert_eq!(
        records[0].sequence_number,
        accepted["sequence_number"].as_str().unwrap()
    );
    assert_eq!(records[0].partition_key, "usr_42");

    // And the event Lambda would send for it is AWS's shape
    let event = serde_json::to_vec(&kinesis_event(source, records)).unwrap();
    let aws: KinesisEvent = serde_json::from_slice(&event).unwrap();
    assert_eq!(
        aws.records[0].event_source_arn.as_deref(),
        Some(arn.as_str())
    );

    // And the signups consumer handles it: the profile, and the welcome e-mail for this user
    let (directory, mailer) = (MemoryDirectory::default(), MemoryMailer::default());
    let signups = Harness::new(
        tubes_consumer_signups::Signups::new(&directory, &mailer),
        LogDeadLetters,
    );
    let report = signups
        .run(serde_json::from_slice::<KinesisBatch>(&event).unwrap())
        .await;
    assert_eq!(report.handled, 1, "{id}");
    assert!(report.response.batch_item_failures.is_empty());
    assert!(directory.profile("usr_42").is_some());
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].idempotency_key,
        tubes_consumer_signups::welcome_key("usr_42")
    );

    // And the payments consumer, had the filter let it through, would skip it
    let (ledger, outcomes) = (
        tubes_consumer_payments::MemoryLedger::default(),
        tubes_platform::publish::MemoryPublisher::default(),
    );
    let payments = Harness::new(
        tubes_consumer_payments::Payments::new(&ledger, &outcomes),
        LogDeadLetters,
    );
    let report = payments
        .run(serde_json::from_slice::<KinesisBatch>(&event).unwrap())
        .await;
    assert_eq!((report.handled, report.skipped), (0, 1));
    assert!(outcomes.written().is_empty());
}

#[tokio::test]
async fn bad_requests_write_nothing_to_the_stream() {
    let kinesis = KinesisLocal::start().await;
    let arn = kinesis.create_stream("events-bad", 1).await;
    let ingest = ingest_for(&kinesis, "events-bad");

    let mut missing = signed_up("usr_1");
    missing["data"].as_object_mut().unwrap().remove("email");
    let mut unknown = signed_up("usr_1");
    unknown["type"] = json!("user.teleported");
    let oversized = json!({"pad": "x".repeat(70 * 1024)}).to_string();
    let cases = [
        (
            "text/plain",
            signed_up("usr_1").to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "application/json",
            "{\"type\":".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            missing.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "application/json",
            unknown.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("application/json", oversized, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (content_type, body, status) in cases {
        let response = ingest.handle(http_v2_post(content_type, &body)).await;
        assert_eq!(
            response.status(),
            status,
            "{content_type} {}",
            &body[..body.len().min(60)]
        );
        assert!(json_body(&response)["error"]["code"].is_string());
    }

    // A valid sentinel afterwards is the only record in the stream.
    let response = ingest
        .handle(http_v2_post(
            "application/json",
            &signed_up("usr_sentinel").to_string(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let records: Vec<_> = kinesis
        .read_all("events-bad", &arn)
        .await
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].partition_key, "usr_sentinel");
}

#[tokio::test]
async fn one_aggregates_events_stay_on_one_shard_in_order() {
    let kinesis = KinesisLocal::start().await;
    let arn = kinesis.create_stream("events-order", 4).await;
    let ingest = ingest_for(&kinesis, "events-order");

    let users = ["usr_a", "usr_b", "usr_c"];
    let mut sent: Vec<(String, String)> = Vec::new();
    for i in 0..12 {
        let user = users[i % users.len()];
        let mut event = signed_up(user);
        event["id"] = json!(format!("evt-{i}"));
        let response = ingest
            .handle(http_v2_post("application/json", &event.to_string()))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        sent.push((user.to_owned(), format!("evt-{i}")));
    }

    let shards = kinesis.read_all("events-order", &arn).await;
    for user in users {
        let holding: Vec<_> = shards
            .iter()
            .filter(|(_, r)| r.iter().any(|x| x.partition_key == user))
            .collect();
        assert_eq!(holding.len(), 1, "{user}'s events are on one shard");
        let seen: Vec<String> = holding[0]
            .1
            .iter()
            .filter(|r| r.partition_key == user)
            .map(|r| {
                tubes_contract::codec::decode(&r.data)
                    .unwrap()
                    .id()
                    .to_owned()
            })
            .collect();
        let expected: Vec<String> = sent
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(
            seen, expected,
            "{user}'s events are in the order they were posted"
        );
    }
}
