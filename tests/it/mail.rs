//! The SES adapter against moto's SES v2 and DynamoDB: each key reaches SES once (sequentially and concurrently,
//! guarded by the idempotency records), an unverified sender is a permanent error that leaves the key claimable,
//! and another key is another e-mail. What SES accepted is read back from moto (`/moto-api/data.json`).

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;
use tubes_platform::idempotency::DynamoIdempotency;
use tubes_platform::mail::ses::{record_key, SesMailer};
use tubes_platform::mail::{Email, MailError, Mailer};
use tubes_tests::{Moto, REGION};

const FROM: &str = "tubes@example.com";
const TABLE: &str = "idem";

/// moto with the idempotency table and `FROM` verified.
async fn moto() -> Moto {
    let moto = Moto::start().await;
    moto.create_table(TABLE, "key").await;
    ses(&moto)
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await
        .unwrap();
    moto
}

fn ses(moto: &Moto) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(&moto.endpoint)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// The signups consumer's mailer from `from`, guarded by the table.
fn mailer(moto: &Moto, from: &str) -> SesMailer<DynamoIdempotency> {
    SesMailer::new(ses(moto), "signups", from)
        .guarded_by(Some(DynamoIdempotency::new(moto.dynamodb(), TABLE)))
}

fn welcome(key: &str, name: &str) -> Email {
    Email {
        to: "ada@example.com".into(),
        subject: format!("Welcome ({key})"),
        text: format!("Hello {name}, your account is ready."),
        idempotency_key: key.into(),
    }
}

/// The messages moto's SES accepted, as `(subject, body, source, to)`.
async fn sent(moto: &Moto) -> Vec<(String, String, String, Vec<String>)> {
    let body = reqwest::get(format!("{}/moto-api/data.json", moto.endpoint))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data: Value = serde_json::from_str(&body).unwrap();
    let text = |m: &Value, f: &str| m[f].as_str().unwrap_or_default().to_owned();
    data["ses"]["Message"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| {
                    let to = m["destinations"]["ToAddresses"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (text(m, "subject"), text(m, "body"), text(m, "source"), to)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn sent_with_subject(moto: &Moto, subject: &str) -> usize {
    sent(moto)
        .await
        .iter()
        .filter(|(s, ..)| s == subject)
        .count()
}

/// The status and attempts of `key`'s guard record.
async fn record(moto: &Moto, key: &str) -> (String, String) {
    let item = moto
        .dynamodb()
        .get_item()
        .table_name(TABLE)
        .key("key", AttributeValue::S(record_key("signups", key)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no guard record for {key}"));
    (
        item["status"].as_s().unwrap().clone(),
        item["attempts"].as_n().unwrap().clone(),
    )
}

#[tokio::test]
async fn the_same_e_mail_reaches_ses_once_however_often_and_concurrently_it_is_sent() {
    let moto = moto().await;
    let mailer = mailer(&moto, FROM);

    // Given a welcome e-mail sent, then sent again (a redelivery), and again rendered with another name.
    let first = welcome("signups:welcome:usr_1", "Ada");
    mailer.send(&first).await.unwrap();
    mailer.send(&first).await.unwrap();
    mailer
        .send(&welcome("signups:welcome:usr_1", "Ada Lovelace"))
        .await
        .unwrap();

    // Then SES got it once, as the first rendering, and its guard record is completed under the consumer's keys.
    let sent_now = sent(&moto).await;
    assert_eq!(
        sent_now,
        vec![(
            first.subject.clone(),
            first.text.clone(),
            FROM.to_owned(),
            vec!["ada@example.com".to_owned()]
        )]
    );
    assert_eq!(
        record(&moto, "signups:welcome:usr_1").await,
        ("COMPLETED".to_owned(), "1".to_owned())
    );

    // When eight invocations send another e-mail at the same moment…
    let second = welcome("signups:welcome:usr_2", "Grace");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (mailer, email) = (mailer.clone(), second.clone());
        tasks.spawn(async move { mailer.send(&email).await });
    }
    let results = tasks.join_all().await;

    // … then one sends it, the others find it sent or being sent (a retryable error: the record is retried)…
    assert!(results.iter().any(Result::is_ok), "{results:?}");
    for r in &results {
        assert!(
            matches!(
                r,
                Ok(())
                    | Err(MailError {
                        retryable: true,
                        ..
                    })
            ),
            "{r:?}"
        );
    }
    assert_eq!(sent_with_subject(&moto, &second.subject).await, 1);
    // … and their retries succeed without sending it again.
    let deadline = Instant::now() + Duration::from_secs(30);
    for r in results {
        let mut outcome = r;
        while outcome.is_err() {
            assert!(Instant::now() < deadline, "still failing: {outcome:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            outcome = mailer.send(&second).await;
        }
    }
    assert_eq!(sent_with_subject(&moto, &second.subject).await, 1);
    assert_eq!(sent(&moto).await.len(), 2);
}

#[tokio::test]
async fn an_unverified_sender_is_a_permanent_error_that_leaves_the_key_claimable() {
    let moto = moto().await;
    let email = welcome("signups:welcome:usr_3", "Ada");

    // When the sender is not verified, SES rejects the e-mail: permanent (dead-lettered), no address quoted.
    let err = mailer(&moto, "nobody@example.com")
        .send(&email)
        .await
        .unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("MessageRejected"), "{err:?}");
    assert!(!err.message.contains('@'), "an address in {err:?}");
    assert!(sent(&moto).await.is_empty());

    // Then the claim was released (not left locked), so a redrive after the fix sends it, once.
    assert_eq!(
        record(&moto, &email.idempotency_key).await,
        ("RELEASED".to_owned(), "1".to_owned())
    );
    let fixed = mailer(&moto, FROM);
    fixed.send(&email).await.unwrap();
    fixed.send(&email).await.unwrap();
    assert_eq!(sent_with_subject(&moto, &email.subject).await, 1);
    assert_eq!(
        record(&moto, &email.idempotency_key).await,
        ("COMPLETED".to_owned(), "2".to_owned())
    );
}

#[tokio::test]
async fn another_key_is_another_e_mail() {
    let moto = moto().await;
    let mailer = mailer(&moto, FROM);
    // The same content under two keys (two payment outcomes with the same wording): two e-mails.
    let mut email = welcome("notifications:evt_1:outcome", "Ada");
    mailer.send(&email).await.unwrap();
    email.idempotency_key = "notifications:evt_2:outcome".into();
    mailer.send(&email).await.unwrap();
    mailer.send(&email).await.unwrap();
    assert_eq!(sent_with_subject(&moto, &email.subject).await, 2);
}
