use super::*;
use crate::validate::Checker;

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

/// Decodes `data` (a JSON object's text) as `ty`'s: the event when nothing was found, else every (code, pointer).
fn decode(ty: EventType, data: &str, unknown: Unknown) -> Result<Event, Vec<(Code, String)>> {
    let members = shape::members_of(data);
    let mut c = Checker::new();
    let event = Event::decode_data(ty, &members, unknown, &mut c);
    let found: Vec<(Code, String)> = c
        .into_violations()
        .into_iter()
        .map(|v| (v.code, v.field.unwrap_or_default()))
        .collect();
    match event {
        Some(event) if found.is_empty() => Ok(event),
        _ => Err(found),
    }
}

/// The violations of decoding `data` as `ty`'s at the edge, with their messages.
fn problems(ty: EventType, data: &str) -> Vec<Violation> {
    let members = shape::members_of(data);
    let mut c = Checker::new();
    Event::decode_data(ty, &members, Unknown::Refuse, &mut c);
    c.into_violations()
}

fn found(list: &[(Code, &str)]) -> Vec<(Code, String)> {
    list.iter().map(|(c, f)| (*c, (*f).to_owned())).collect()
}

/// A valid `data` of each type.
fn sample(ty: EventType) -> serde_json::Value {
    use serde_json::json;
    match ty {
        EventType::PaymentReceived => {
            json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com"})
        }
        EventType::PaymentProcessed => {
            json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com", "processed_at": "2026-11-22T10:00:00Z"})
        }
        EventType::PaymentFailed => {
            json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com", "reason": "account_frozen",
            "failed_at": "2026-11-22T10:00:00Z"})
        }
        EventType::AccountOpened => {
            json!({"account_id": "acc_1", "currency": "EUR", "opened_at": "2026-11-22T10:00:00Z"})
        }
        EventType::AccountCredited => {
            json!({"credit_id": "crd_1", "account_id": "acc_1", "amount": 5,
            "currency": "EUR", "credited_at": "2026-11-22T10:00:00Z"})
        }
        EventType::AccountFrozen => {
            json!({"account_id": "acc_1", "frozen_at": "2026-11-22T10:00:00Z"})
        }
        EventType::UserSignedUp => {
            json!({"user_id": "usr_1", "email": "ada@example.com", "name": "Ada",
            "signed_up_at": "2026-11-22T10:00:00Z"})
        }
        EventType::UserUnsubscribed => json!({"user_id": "usr_1", "email": "ada@example.com",
            "list_id": "news", "unsubscribed_at": "2026-11-22T10:00:00Z"}),
    }
}

#[test]
fn every_type_decodes_its_sample_and_names_its_aggregate() {
    for ty in EventType::ALL {
        let data = sample(*ty);
        let event = decode(*ty, &data.to_string(), Unknown::Refuse).unwrap();
        assert_eq!(event.event_type(), *ty);
        // The member `subject` must equal, by name, holds the aggregate id.
        assert_eq!(data[ty.aggregate_member()], event.aggregate_id(), "{ty:?}");
    }
}

#[test]
fn decode_names_the_member_on_error() {
    assert_eq!(
        decode(
            EventType::UserSignedUp,
            r#"{"user_id":"u1","email":"a@b.co","name":"A"}"#,
            Unknown::Refuse
        )
        .unwrap_err(),
        found(&[(Code::MissingField, "/data/signed_up_at")])
    );
    assert_eq!(
        decode(
            EventType::PaymentReceived,
            r#"{"payment_id":"p","account_id":"a","amount":"12","currency":"EUR","payer_email":"a@b.co"}"#,
            Unknown::Refuse
        )
        .unwrap_err(),
        found(&[(Code::InvalidType, "/data/amount")])
    );
    assert_eq!(
        decode(
            EventType::PaymentFailed,
            r#"{"payment_id":"p","account_id":"a","amount":1,"currency":"EUR","payer_email":"a@b.co","reason":"bad_luck","failed_at":"2026-01-01T00:00:00Z"}"#,
            Unknown::Refuse
        )
        .unwrap_err(),
        found(&[(Code::InvalidValue, "/data/reason")])
    );
    assert_eq!(
        decode(
            EventType::UserUnsubscribed,
            r#"{"user_id":"u","email":"a@b.co","list_id":"news","unsubscribed_at":"yesterday"}"#,
            Unknown::Refuse
        )
        .unwrap_err(),
        found(&[(Code::InvalidValue, "/data/unsubscribed_at")])
    );
}

#[test]
fn unknown_members_are_refused_at_the_edge_with_the_nearest_member() {
    let data = r#"{"user_id":"u","email":"a@b.co","name":"A","marketing_optin":true,"signed_up_at":"2026-01-01T00:00:00Z"}"#;
    let found = problems(EventType::UserSignedUp, data);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].code, Code::UnknownMember);
    assert_eq!(found[0].field.as_deref(), Some("/data/marketing_optin"));
    assert_eq!(
        found[0].message,
        "`user.signed_up` data has no such member; did you mean `marketing_opt_in`?"
    );

    // Nothing close: the message lists what the type has instead.
    let data = r#"{"user_id":"u","email":"a@b.co","list_id":"news","unsubscribed_at":"2026-01-01T00:00:00Z","campaign":"x"}"#;
    let found = problems(EventType::UserUnsubscribed, data);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].code, found[0].field.as_deref()),
        (Code::UnknownMember, Some("/data/campaign"))
    );
    assert_eq!(
        found[0].message,
        "`user.unsubscribed` data has no such member; its members are user_id, email, list_id, \
         unsubscribed_at, reason"
    );

    // A name that needs escaping in a pointer.
    let data = r#"{"account_id":"a","frozen_at":"2026-01-01T00:00:00Z","a/b~c":1}"#;
    assert_eq!(
        decode(EventType::AccountFrozen, data, Unknown::Refuse).unwrap_err(),
        self::found(&[(Code::UnknownMember, "/data/a~1b~0c")])
    );
}

#[test]
fn unknown_members_are_ignored_behind_the_edge() {
    let e = decode(
        EventType::UserUnsubscribed,
        r#"{"user_id":"u","email":"a@b.co","list_id":"news","unsubscribed_at":"2026-01-01T00:00:00Z","new_field":[1],"new_field":{}}"#,
        Unknown::Ignore,
    )
    .unwrap();
    assert_eq!(e.aggregate_id(), "u");
    // What is known is still checked: the same member twice is refused on both sides.
    assert_eq!(
        decode(
            EventType::UserUnsubscribed,
            r#"{"user_id":"u","email":"a@b.co","list_id":"news","list_id":"other","unsubscribed_at":"2026-01-01T00:00:00Z","new":1}"#,
            Unknown::Ignore,
        )
        .unwrap_err(),
        found(&[(Code::DuplicateMember, "/data/list_id")])
    );
}

#[test]
fn every_problem_of_data_at_once_in_document_order_then_missing_then_values() {
    // Given a signup with a wrongly typed name and locale, a misspelt opt-in, no e-mail and a bad timestamp
    let data =
        r#"{"user_id":"u","name":42,"marketing_optin":true,"locale":5,"signed_up_at":"yesterday"}"#;
    // When it is decoded at the edge
    let found = decode(EventType::UserSignedUp, data, Unknown::Refuse).unwrap_err();
    // Then each problem is named: the structure in document order, the missing member, the value
    assert_eq!(
        found,
        self::found(&[
            (Code::InvalidType, "/data/name"),
            (Code::UnknownMember, "/data/marketing_optin"),
            (Code::InvalidType, "/data/locale"),
            (Code::MissingField, "/data/email"),
            (Code::InvalidValue, "/data/signed_up_at"),
        ])
    );
}

#[test]
fn several_bad_values_are_each_named_in_the_words_of_the_rule() {
    let data = r#"{"payment_id":"p","account_id":"a","amount":1,"currency":"EUR","payer_email":"a@b.co","reason":"bored","failed_at":"last tuesday"}"#;
    let found = problems(EventType::PaymentFailed, data);
    let got: Vec<(Code, Option<&str>, &str)> = found
        .iter()
        .map(|v| (v.code, v.field.as_deref(), v.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Code::InvalidValue,
                Some("/data/reason"),
                "must be one of account_not_found, account_frozen, insufficient_funds, currency_mismatch, \
                 limit_exceeded"
            ),
            (
                Code::InvalidValue,
                Some("/data/failed_at"),
                "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z"
            ),
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected_and_what_came() {
    let data = r#"{"account_id":"a","currency":"EUR","per_payment_limit":12.5,"opened_at":null}"#;
    let found = problems(EventType::AccountOpened, data);
    let got: Vec<(Code, Option<&str>, &str)> = found
        .iter()
        .map(|v| (v.code, v.field.as_deref(), v.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Code::InvalidType,
                Some("/data/per_payment_limit"),
                "must be an integer or null, not a number with a fraction or an exponent"
            ),
            (
                Code::InvalidType,
                Some("/data/opened_at"),
                "must be a string, not null"
            ),
        ]
    );
}

#[test]
fn a_broken_optional_member_leaves_the_rest_to_decode() {
    // The event is refused (the problem is recorded), yet decoded without the member, so the rules of the
    // other members can still be checked in the same answer.
    let members = shape::members_of(
        r#"{"user_id":"u","email":"nope","name":"A","locale":5,"signed_up_at":"2026-01-01T00:00:00Z"}"#,
    );
    let mut c = Checker::new();
    let event = Event::decode_data(EventType::UserSignedUp, &members, Unknown::Refuse, &mut c);
    let event = event.expect("decoded without the broken optional member");
    event.validate(&mut c);
    let got: Vec<(Code, Option<String>)> = c
        .into_violations()
        .into_iter()
        .map(|v| (v.code, v.field))
        .collect();
    assert_eq!(
        got,
        [
            (Code::InvalidType, Some("/data/locale".into())),
            (Code::InvalidEmail, Some("/data/email".into())),
        ]
    );
}

#[test]
fn no_message_quotes_a_value() {
    let data = r#"{"payment_id":"p","account_id":"a","amount":99999999999999999999,"currency":"EUR","payer_email":"a@b.co","reason":"secret-reason","failed_at":"secret-time"}"#;
    let found = problems(EventType::PaymentFailed, data);
    assert_eq!(found.len(), 3, "{found:?}");
    for v in &found {
        assert!(
            !v.message.contains("secret") && !v.message.contains("9999999"),
            "{v}"
        );
    }
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
