use super::*;

#[test]
fn failure_reasons_are_named_as_serde_writes_them() {
    for reason in PaymentFailureReason::ALL {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert_eq!(PaymentFailureReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(PaymentFailureReason::parse("gremlins"), None);
}

#[test]
fn every_type_round_trips_its_name() {
    assert_eq!(EventType::ALL.len(), 8);
    for ty in EventType::ALL {
        assert_eq!(EventType::parse(ty.as_str()), Some(*ty));
    }
    assert_eq!(EventType::parse("payment.refunded"), None);
    assert_eq!(EventType::parse("PAYMENT.RECEIVED"), None);
}

#[test]
fn decode_names_the_member_on_error() {
    let v = Event::decode_data(
        EventType::UserSignedUp,
        r#"{"user_id":"u1","email":"a@b.co","name":"A"}"#,
    )
    .unwrap_err();
    assert_eq!(
        (v.code, v.field.as_deref()),
        (Code::MissingField, Some("/data/signed_up_at"))
    );

    let v = Event::decode_data(
        EventType::PaymentReceived,
        r#"{"payment_id":"p","account_id":"a","amount":"12","currency":"EUR","payer_email":"a@b.co"}"#,
    )
    .unwrap_err();
    assert_eq!(
        (v.code, v.field.as_deref()),
        (Code::InvalidType, Some("/data/amount"))
    );

    let v = Event::decode_data(
        EventType::PaymentFailed,
        r#"{"payment_id":"p","account_id":"a","amount":1,"currency":"EUR","payer_email":"a@b.co","reason":"bad_luck","failed_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap_err();
    assert_eq!(
        (v.code, v.field.as_deref()),
        (Code::InvalidValue, Some("/data/reason"))
    );

    let v = Event::decode_data(
        EventType::UserUnsubscribed,
        r#"{"user_id":"u","email":"a@b.co","list_id":"news","unsubscribed_at":"yesterday"}"#,
    )
    .unwrap_err();
    assert_eq!(
        (v.code, v.field.as_deref()),
        (Code::InvalidValue, Some("/data/unsubscribed_at"))
    );
}

#[test]
fn unknown_members_are_ignored() {
    let e = Event::decode_data(
        EventType::UserUnsubscribed,
        r#"{"user_id":"u","email":"a@b.co","list_id":"news","unsubscribed_at":"2026-01-01T00:00:00Z","new_field":[1]}"#,
    )
    .unwrap();
    assert_eq!(e.aggregate_id(), "u");
}

#[test]
fn language_tags() {
    for ok in ["en", "pt-BR", "zh-Hant-TW", "de-CH-1996"] {
        assert!(is_language_tag(ok), "{ok}");
    }
    for bad in ["", "e", "english", "en_US", "en-", "en-toolongsubtag"] {
        assert!(!is_language_tag(bad), "{bad}");
    }
}
