use super::*;

fn env(pairs: &'static [(&'static str, &'static str)]) -> Env {
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    Env::new(aws, move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn each_consumer_has_its_own_queue_variable() {
    assert_eq!(
        dead_letter_queue_variable("payments"),
        "PAYMENTS_DEAD_LETTER_QUEUE_URL"
    );
    assert_eq!(
        dead_letter_queue_variable("payment-notifications"),
        "PAYMENT_NOTIFICATIONS_DEAD_LETTER_QUEUE_URL"
    );
}

#[test]
fn the_outbox_wins_then_ses_then_logs() {
    let ses = MailConfig::Ses {
        from: "tubes@example.com".into(),
        configuration_set: Some("tubes".into()),
        idempotency_table: Some("idem".into()),
    };
    assert_eq!(
        env(&[
            ("MAIL_FROM", "tubes@example.com"),
            ("SES_CONFIGURATION_SET", "tubes"),
            ("IDEMPOTENCY_TABLE", "idem"),
        ])
        .mail_config(),
        Ok(ses)
    );
    assert_eq!(
        env(&[
            ("TUBES_OUTBOX", "/tmp/o.jsonl"),
            ("MAIL_FROM", "tubes@example.com")
        ])
        .mail_config(),
        Ok(MailConfig::Outbox("/tmp/o.jsonl".into()))
    );
    // The template's empty defaults mean "not configured".
    assert_eq!(
        env(&[("MAIL_FROM", ""), ("SES_CONFIGURATION_SET", "")]).mail_config(),
        Ok(MailConfig::Log)
    );
    assert_eq!(
        env(&[("MAIL_FROM", "tubes@example.com")]).mail_config(),
        Ok(MailConfig::Ses {
            from: "tubes@example.com".into(),
            configuration_set: None,
            idempotency_table: None,
        })
    );
    assert!(matches!(
        env(&[("MAIL_FROM", "tubes")]).mail_config(),
        Err(EnvError::Invalid { name, .. }) if name == "MAIL_FROM"
    ));
}

#[test]
fn settings_have_defaults_and_a_bad_value_stops_the_cold_start() {
    let e = env(&[("TUBES_MAX_ATTEMPTS", "3"), ("TUBES_KEY_CONCURRENCY", "")]);
    assert_eq!(e.max_attempts(), Ok(3));
    assert_eq!(e.key_concurrency(), Ok(DEFAULT_CONCURRENCY));
    assert!(e.idempotency().unwrap().is_none());
    let bad = env(&[
        ("TUBES_KEY_CONCURRENCY", "eight"),
        ("IDEMPOTENCY_TABLE", "t"),
        ("IDEMPOTENCY_TTL_SECS", "-1"),
    ]);
    assert!(
        matches!(bad.key_concurrency(), Err(EnvError::Invalid { name, .. }) if name == "TUBES_KEY_CONCURRENCY")
    );
    assert!(
        matches!(bad.idempotency(), Err(EnvError::Invalid { name, .. }) if name == "IDEMPOTENCY_TTL_SECS")
    );
    assert_eq!(
        env(&[]).required("LEDGER_TABLE").unwrap_err().to_string(),
        "environment variable LEDGER_TABLE is required"
    );
    let times = env(&[("IDEMPOTENCY_TABLE", "t"), ("IDEMPOTENCY_TTL_SECS", "60")])
        .idempotency()
        .unwrap()
        .map(|(_, t)| t);
    assert_eq!(times.map(|t| t.ttl), Some(Duration::from_secs(60)));
}
