use serde_json::{json, Value};
use time::macros::datetime;

use super::*;
use crate::envelope::parse::is_json_media_type;
use crate::violation::Code;

const NOW: OffsetDateTime = datetime!(2026-11-22 12:00:00 UTC);

fn signed_up() -> Value {
    json!({
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/shop/web",
        "type": "user.signed_up",
        "subject": "usr_1",
        "time": "2026-11-22T11:00:00+01:00",
        "datacontenttype": "application/json",
        "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "signed_up_at": "2026-11-22T10:00:00Z"}
    })
}

fn parse(v: &Value) -> Result<Envelope, Violations> {
    Envelope::parse(&serde_json::to_vec(v).unwrap(), NOW)
}

fn processed(cause: &Envelope) -> crate::catalogue::PaymentProcessed {
    crate::catalogue::PaymentProcessed {
        payment_id: "pay_1".into(),
        account_id: "acc_1".into(),
        amount: 1250,
        currency: "EUR".into(),
        payer_email: "ada@example.com".into(),
        processed_at: cause.time(),
    }
}

#[test]
fn a_published_event_is_the_same_on_every_retry_and_names_its_cause() {
    let cause = parse(&signed_up()).unwrap();
    let first = Envelope::caused_by(&cause, "payments", 0, processed(&cause)).unwrap();
    let again = Envelope::caused_by(&cause, "payments", 0, processed(&cause)).unwrap();
    // The same bytes: downstream sees a duplicate (same id, same payload hash), never a conflict.
    assert_eq!(
        serde_json::to_vec(&first).unwrap(),
        serde_json::to_vec(&again).unwrap()
    );
    assert_eq!(first.source(), "/consumers/payments");
    assert_eq!(first.time(), cause.time());
    assert_eq!(first.extensions()[CAUSATION_ID], "evt-1");
    // And it survives the trip through a Kinesis record.
    let decoded = Envelope::decode(&serde_json::to_vec(&first).unwrap()).unwrap();
    assert_eq!(decoded, first);
}

#[test]
fn the_content_of_an_event_ignores_its_time_but_not_its_data() {
    let a = parse(&signed_up()).unwrap();
    let later = parse(&with(signed_up(), "/time", json!("2026-11-22T11:00:05Z"))).unwrap();
    assert_ne!(a, later);
    assert_eq!(
        a.content_bytes(),
        later.content_bytes(),
        "a retry with a new time"
    );
    for (pointer, value) in [
        ("/data/name", json!("Bob")),
        ("/source", json!("/elsewhere")),
    ] {
        let other = parse(&with(signed_up(), pointer, value)).unwrap();
        assert_ne!(a.content_bytes(), other.content_bytes(), "{pointer}");
    }
}

#[test]
fn derived_ids_differ_by_every_input_and_are_stable_across_releases() {
    let ty = EventType::PaymentProcessed;
    let shop = "/shop/checkout";
    let base = derived_id("payments", shop, "evt-1", ty, 0);
    for other in [
        derived_id("payments", shop, "evt-1", ty, 1),
        derived_id("payments", shop, "evt-2", ty, 0),
        // Ids are unique per source: another producer's `evt-1` is another event.
        derived_id("payments", "/crm", "evt-1", ty, 0),
        derived_id("notifications", shop, "evt-1", ty, 0),
        derived_id("payments", shop, "evt-1", EventType::PaymentFailed, 0),
        // Length-prefixed: moving a character from one field to the next is another id.
        derived_id("payment", shop, "sevt-1", ty, 0),
        derived_id("payments", "/shop/checkoute", "vt-1", ty, 0),
    ] {
        assert_ne!(base, other);
    }
    assert_eq!(base.get_version_num(), 5);
    // Pinned: if this changes, events re-published across a deploy get new ids and are counted twice. The
    // value was computed independently (Python: SHA-1 of the namespace bytes and the length-prefixed name).
    assert_eq!(base.to_string(), "3e48d2c9-dbe2-5cfd-b4c7-6dd775892f20");
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let obj = if parent.is_empty() {
        &mut v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    obj.as_object_mut().unwrap().insert(name.to_owned(), new);
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let obj = if parent.is_empty() {
        &mut v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    obj.as_object_mut().unwrap().remove(name);
    v
}

/// Asserts the event is rejected with exactly these (code, field) pairs.
fn rejects(v: Value, expected: &[(Code, &str)]) {
    let err = parse(&v).expect_err("must be rejected");
    let got: Vec<(Code, &str)> = err
        .as_slice()
        .iter()
        .map(|x| (x.code, x.field.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(got, expected, "for {v}");
}

#[test]
fn parses_a_full_event() {
    let e = parse(&signed_up()).unwrap();
    assert_eq!(e.id(), "evt-1");
    assert_eq!(e.source(), "/shop/web");
    assert_eq!(e.subject(), "usr_1");
    assert_eq!(e.event_type(), EventType::UserSignedUp);
    assert_eq!(e.time(), datetime!(2026-11-22 10:00:00 UTC));
    match e.event() {
        Event::UserSignedUp(d) => {
            assert_eq!(d.email, "ada@example.com");
            assert!(!d.marketing_opt_in);
        }
        other => panic!("wrong variant {other:?}"),
    }
}

#[test]
fn ingest_fills_id_time_and_subject() {
    let v = without(without(without(signed_up(), "/id"), "/time"), "/subject");
    let e = parse(&v).unwrap();
    let id = Uuid::parse_str(e.id()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(e.time(), NOW);
    assert_eq!(e.subject(), "usr_1");
    // Two events get two ids.
    assert_ne!(parse(&v).unwrap().id(), e.id());
}

#[test]
fn decode_is_strict() {
    let v = without(without(without(signed_up(), "/id"), "/time"), "/subject");
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.has_at(Code::MissingField, "/id"));
    assert!(err.has_at(Code::MissingField, "/time"));
    assert!(err.has_at(Code::MissingField, "/subject"));
}

#[test]
fn serialises_to_what_it_parses() {
    let e = parse(&signed_up()).unwrap();
    let bytes = serde_json::to_vec(&e).unwrap();
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back, e);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["type"], "user.signed_up");
    assert_eq!(v["time"], "2026-11-22T10:00:00Z");
    assert_eq!(v["datacontenttype"], "application/json");
    assert_eq!(v["data"]["user_id"], "usr_1");
}

#[test]
fn keeps_extensions() {
    let v = with(signed_up(), "/id", json!("e2"));
    let mut v = v;
    v["traceparent"] = json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    v["priority"] = json!(3);
    let e = parse(&v).unwrap();
    assert_eq!(e.extensions().len(), 2);
    let out: Value = serde_json::to_value(&e).unwrap();
    assert_eq!(out["priority"], 3);
    assert_eq!(
        Envelope::decode(&serde_json::to_vec(&e).unwrap()).unwrap(),
        e
    );
}

#[test]
fn every_envelope_rule() {
    rejects(
        with(signed_up(), "/specversion", json!("0.3")),
        &[(Code::UnsupportedSpecversion, "/specversion")],
    );
    rejects(
        without(signed_up(), "/specversion"),
        &[(Code::MissingField, "/specversion")],
    );
    rejects(
        with(signed_up(), "/specversion", json!(1.0)),
        &[(Code::InvalidType, "/specversion")],
    );
    rejects(
        without(signed_up(), "/source"),
        &[(Code::MissingField, "/source")],
    );
    rejects(
        with(signed_up(), "/source", json!("")),
        &[(Code::Empty, "/source")],
    );
    rejects(
        with(signed_up(), "/source", json!("a b")),
        &[(Code::InvalidIdentifier, "/source")],
    );
    rejects(with(signed_up(), "/id", json!("")), &[(Code::Empty, "/id")]);
    rejects(
        with(signed_up(), "/id", json!(42)),
        &[(Code::InvalidType, "/id")],
    );
    rejects(
        with(signed_up(), "/id", json!("x".repeat(129))),
        &[(Code::TooLong, "/id")],
    );
    rejects(
        without(signed_up(), "/type"),
        &[(Code::MissingField, "/type")],
    );
    rejects(
        with(signed_up(), "/type", json!("user.deleted")),
        &[(Code::UnknownEventType, "/type")],
    );
    rejects(
        with(signed_up(), "/time", json!("22/11/2026")),
        &[(Code::InvalidValue, "/time")],
    );
    rejects(
        with(signed_up(), "/time", json!("2026-11-22T10:00:00")),
        &[(Code::InvalidValue, "/time")],
    );
    rejects(
        with(signed_up(), "/subject", json!("usr_2")),
        &[(Code::SubjectMismatch, "/subject")],
    );
    rejects(
        with(signed_up(), "/datacontenttype", json!("text/plain")),
        &[(Code::UnsupportedDataContentType, "/datacontenttype")],
    );
    rejects(
        without(signed_up(), "/data"),
        &[(Code::MissingField, "/data")],
    );
    rejects(
        with(signed_up(), "/data", json!(null)),
        &[(Code::MissingField, "/data")],
    );
    rejects(
        with(signed_up(), "/data", json!([1])),
        &[(Code::NotAnObject, "/data")],
    );
    rejects(
        with(signed_up(), "/data", json!("{}")),
        &[(Code::NotAnObject, "/data")],
    );
    let mut v = signed_up();
    v["Bad-Name"] = json!("x");
    rejects(v, &[(Code::InvalidExtension, "/Bad-Name")]);
    let mut v = signed_up();
    v["nested"] = json!({"a": 1});
    rejects(v, &[(Code::InvalidExtension, "/nested")]);
    let mut v = signed_up();
    v["data_base64"] = json!("AAAA");
    rejects(v, &[(Code::UnsupportedDataContentType, "/data_base64")]);
}

#[test]
fn media_types() {
    for ok in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/cloudevents+json",
        "text/json",
    ] {
        assert!(is_json_media_type(ok), "{ok}");
    }
    for bad in ["text/plain", "application/xml", "json", ""] {
        assert!(!is_json_media_type(bad), "{bad}");
    }
}

#[test]
fn reports_every_violation_at_once() {
    let v = with(
        with(signed_up(), "/data/email", json!("nope")),
        "/data/name",
        json!(""),
    );
    let v = with(v, "/specversion", json!("2.0"));
    rejects(
        v,
        &[
            (Code::UnsupportedSpecversion, "/specversion"),
            (Code::InvalidEmail, "/data/email"),
            (Code::Empty, "/data/name"),
        ],
    );
}

#[test]
fn data_rules_of_each_type() {
    let payment = json!({
        "specversion": "1.0", "source": "/pay", "type": "payment.received",
        "data": {"payment_id": "p1", "account_id": "acc_1", "amount": 1250, "currency": "EUR", "payer_email": "a@b.co"}
    });
    assert_eq!(parse(&payment).unwrap().subject(), "acc_1");
    rejects(
        with(payment.clone(), "/data/amount", json!(0)),
        &[(Code::AmountNotPositive, "/data/amount")],
    );
    rejects(
        with(payment.clone(), "/data/amount", json!(-1)),
        &[(Code::AmountNotPositive, "/data/amount")],
    );
    rejects(
        with(payment.clone(), "/data/amount", json!(12.5)),
        &[(Code::InvalidType, "/data/amount")],
    );
    rejects(
        with(payment.clone(), "/data/currency", json!("eur")),
        &[(Code::InvalidCurrency, "/data/currency")],
    );
    rejects(
        with(payment.clone(), "/data/payer_email", json!("x@")),
        &[(Code::InvalidEmail, "/data/payer_email")],
    );
    rejects(
        without(payment.clone(), "/data/payment_id"),
        &[(Code::MissingField, "/data/payment_id")],
    );
    rejects(
        with(payment.clone(), "/data/account_id", json!("a c")),
        &[(Code::InvalidIdentifier, "/data/account_id")],
    );
    rejects(
        with(payment, "/data/description", json!("x".repeat(501))),
        &[(Code::TooLong, "/data/description")],
    );

    let failed = json!({
        "specversion": "1.0", "source": "/pay", "type": "payment.failed",
        "data": {"payment_id": "p1", "account_id": "acc_1", "amount": 5, "currency": "JPY",
                 "payer_email": "ada@example.com", "reason": "insufficient_funds",
                 "failed_at": "2026-11-22T10:00:00Z"}
    });
    assert!(parse(&failed).is_ok());
    rejects(
        with(failed, "/data/reason", json!("gremlins")),
        &[(Code::InvalidValue, "/data/reason")],
    );

    let processed = json!({
        "specversion": "1.0", "source": "/pay", "type": "payment.processed",
        "data": {"payment_id": "p1", "account_id": "acc_1", "amount": 5, "currency": "USD", "payer_email": "ada@example.com", "processed_at": "2026-11-22T10:00:00Z"}
    });
    assert!(parse(&processed).is_ok());
    rejects(
        with(processed, "/data/currency", json!("XXX")),
        &[(Code::InvalidCurrency, "/data/currency")],
    );

    let unsub = json!({
        "specversion": "1.0", "source": "/mail", "type": "user.unsubscribed",
        "data": {"user_id": "usr_1", "email": "a@b.co", "list_id": "news", "unsubscribed_at": "2026-11-22T10:00:00Z"}
    });
    assert!(parse(&unsub).is_ok());
    rejects(
        with(unsub.clone(), "/data/list_id", json!("")),
        &[(Code::Empty, "/data/list_id")],
    );
    rejects(
        without(unsub, "/data/email"),
        &[(Code::MissingField, "/data/email")],
    );
    rejects(
        with(signed_up(), "/data/locale", json!("english")),
        &[(Code::InvalidValue, "/data/locale")],
    );
}

#[test]
fn malformed_documents() {
    for (bytes, code) in [
        (&b"{"[..], Code::MalformedJson),
        (b"", Code::MalformedJson),
        (b"{\"a\":1} x", Code::MalformedJson),
        (b"[]", Code::NotAnObject),
        (b"42", Code::NotAnObject),
        (b"\"s\"", Code::NotAnObject),
        (b"\xff\xfe", Code::MalformedJson),
    ] {
        let err = Envelope::parse(bytes, NOW).unwrap_err();
        assert_eq!(err.first().code, code, "{bytes:?}");
        assert_eq!(err.first().field, None);
    }
}

#[test]
fn duplicate_members_are_refused() {
    let text = r#"{"specversion":"1.0","source":"/s","type":"user.signed_up","type":"payment.received",
        "data":{"user_id":"u","email":"a@b.co","name":"A","signed_up_at":"2026-11-22T10:00:00Z"}}"#;
    let err = Envelope::parse(text.as_bytes(), NOW).unwrap_err();
    assert!(err.has_at(Code::DuplicateMember, "/type"));
}

#[test]
fn escaped_strings_are_read() {
    let text = r#"{"specversion":"1.0","source":"\/s","type":"user.signed_up",
        "data":{"user_id":"u\u0031","email":"a@b.co","name":"\u00c5sa","signed_up_at":"2026-11-22T10:00:00Z"}}"#;
    let e = Envelope::parse(text.as_bytes(), NOW).unwrap();
    assert_eq!((e.source(), e.subject()), ("/s", "u1"));
}

#[test]
fn new_validates() {
    let data = crate::catalogue::UserUnsubscribed {
        user_id: "u".into(),
        email: "bad".into(),
        list_id: "news".into(),
        reason: None,
        unsubscribed_at: NOW,
    };
    let err = Envelope::new("id-1", "/me", NOW, data.clone()).unwrap_err();
    assert!(err.has_at(Code::InvalidEmail, "/data/email"));
    let ok = Envelope::new(
        "id-1",
        "/me",
        NOW,
        crate::catalogue::UserUnsubscribed {
            email: "a@b.co".into(),
            ..data
        },
    );
    assert_eq!(ok.unwrap().subject(), "u");
}

#[test]
fn unknown_data_members_are_refused_at_the_edge_and_ignored_behind_it() {
    // Given a signup whose opt-in is misspelt
    let mut v = signed_up();
    v["data"]["marketing_optin"] = json!(true);
    // When a client sends it, it is refused, with the member it meant
    let err = parse(&v).unwrap_err();
    assert_eq!(err.as_slice().len(), 1, "{err:?}");
    let first = err.first();
    assert_eq!(
        (first.code, first.field.as_deref()),
        (Code::UnknownMember, Some("/data/marketing_optin"))
    );
    assert!(
        first.message.ends_with("did you mean `marketing_opt_in`?"),
        "{}",
        first.message
    );
    // But a record on the stream with a member this consumer does not know yet is read, the member ignored.
    let e = Envelope::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    match e.event() {
        Event::UserSignedUp(d) => assert!(!d.marketing_opt_in),
        other => panic!("wrong variant {other:?}"),
    }
    // Extension attributes stay allowed beside `data`, per CloudEvents.
    let mut v = signed_up();
    v["marketingoptin"] = json!(true);
    assert_eq!(parse(&v).unwrap().extensions()["marketingoptin"], true);
}

#[test]
fn every_problem_of_an_event_in_one_answer() {
    // Given an event with envelope problems and several data problems of every kind
    let mut v = with(signed_up(), "/specversion", json!("2.0"));
    v["data"] = json!({
        "user_id": "usr_1", "name": ["Ada"], "emial": "ada@example.com", "locale": "english",
        "marketing_opt_in": "yes", "signed_up_at": "22/11/2026"
    });
    v["Bad-Name"] = json!(1);
    // Then all of them are named, each at its pointer with its code (members in document order, which is
    // sorted here: that is how `Value` writes them)
    rejects(
        v,
        &[
            (Code::InvalidExtension, "/Bad-Name"),
            (Code::UnsupportedSpecversion, "/specversion"),
            (Code::UnknownMember, "/data/emial"),
            (Code::InvalidType, "/data/marketing_opt_in"),
            (Code::InvalidType, "/data/name"),
            (Code::MissingField, "/data/email"),
            (Code::InvalidValue, "/data/signed_up_at"),
        ],
    );
    // Once the structure is right, the rules of the values are all checked too.
    let mut v = signed_up();
    v["data"]["email"] = json!("nope");
    v["data"]["locale"] = json!(5);
    v["data"]["signed_up_at"] = json!("soon");
    rejects(
        v,
        &[
            (Code::InvalidType, "/data/locale"),
            (Code::InvalidValue, "/data/signed_up_at"),
        ],
    );
    let mut v = signed_up();
    v["data"]["email"] = json!("nope");
    v["data"]["locale"] = json!(5);
    v["data"]["name"] = json!("");
    rejects(
        v,
        &[
            (Code::InvalidType, "/data/locale"),
            (Code::InvalidEmail, "/data/email"),
            (Code::Empty, "/data/name"),
        ],
    );
}

#[test]
fn a_repeated_data_member_is_refused() {
    let text = r#"{"specversion":"1.0","source":"/s","type":"user.signed_up",
        "data":{"user_id":"u","email":"a@b.co","email":"b@b.co","name":"A","signed_up_at":"2026-11-22T10:00:00Z"}}"#;
    let err = Envelope::parse(text.as_bytes(), NOW).unwrap_err();
    assert_eq!(err.as_slice().len(), 1, "{err:?}");
    assert!(err.has_at(Code::DuplicateMember, "/data/email"));
}

/// The message of the only violation of `v`, which must be at `field` with `code`.
fn message(v: &Value, code: Code, field: Option<&str>) -> String {
    let err = Envelope::parse(&serde_json::to_vec(v).unwrap(), NOW).unwrap_err();
    assert_eq!(err.as_slice().len(), 1, "{err:?}");
    assert_eq!(
        (err.first().code, err.first().field.as_deref()),
        (code, field)
    );
    err.first().message.clone()
}

#[test]
fn messages_a_person_can_act_on() {
    // The expected subject.
    let v = with(signed_up(), "/subject", json!("usr_2"));
    assert_eq!(
        message(&v, Code::SubjectMismatch, Some("/subject")),
        "must equal data.user_id, usr_1 (or be left out)"
    );
    let mut v = with(signed_up(), "/subject", json!("usr_2"));
    v["data"]["user_id"] = json!("usr 1");
    let err = parse(&v).unwrap_err();
    assert!(err.has_at(Code::InvalidIdentifier, "/data/user_id"));
    let mismatch = err
        .as_slice()
        .iter()
        .find(|x| x.code == Code::SubjectMismatch);
    assert_eq!(
        mismatch.map(|x| x.message.as_str()),
        Some("must equal data.user_id (or be left out)"),
        "an invalid id is not quoted"
    );

    // The nearest type, or the catalogue.
    let v = with(signed_up(), "/type", json!("user.signedup"));
    assert_eq!(
        message(&v, Code::UnknownEventType, Some("/type")),
        "is not an event type of the catalogue; did you mean `user.signed_up`?"
    );
    let v = with(signed_up(), "/type", json!("Payment.Recieved"));
    assert!(message(&v, Code::UnknownEventType, Some("/type")).ends_with("`payment.received`?"));
    let v = with(signed_up(), "/type", json!("user.deleted"));
    assert!(message(&v, Code::UnknownEventType, Some("/type"))
        .contains("(payment.received, payment.processed,"));

    // Where the JSON breaks.
    let err = Envelope::parse(b"{\"specversion\": \"1.0\",\n \"source\" \"/s\"}", NOW).unwrap_err();
    assert_eq!(
        (err.first().code, err.first().field.as_deref()),
        (Code::MalformedJson, None)
    );
    assert_eq!(
        err.first().message,
        "expected `:` (line 2, column 11)",
        "serde_json's words, and where"
    );

    // A timestamp: the rule and an example, not the parser's words (nor the value).
    for (pointer, field) in [
        ("/time", "/time"),
        ("/data/signed_up_at", "/data/signed_up_at"),
    ] {
        let v = with(signed_up(), pointer, json!("2026-11-22 10h00"));
        let text = message(&v, Code::InvalidValue, Some(field));
        assert_eq!(
            text, "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z",
            "{pointer}"
        );
    }
}

#[test]
fn pretty_printed_events_are_checked_alike() {
    // Members are captured raw, spaces around them and all: their kinds must be read the same.
    let text = serde_json::to_string_pretty(&signed_up()).unwrap();
    assert!(Envelope::parse(text.as_bytes(), NOW).is_ok());
    let mut v = signed_up();
    v["data"]["marketing_opt_in"] = json!(1.0);
    v["data"]["locale"] = json!(null);
    let text = serde_json::to_string_pretty(&v)
        .unwrap()
        .replace(": ", " :\n\t ");
    let err = Envelope::parse(text.as_bytes(), NOW).unwrap_err();
    assert_eq!(err.as_slice().len(), 1, "{err:?}");
    assert!(err.has_at(Code::InvalidType, "/data/marketing_opt_in"));
    assert_eq!(
        err.first().message,
        "must be a boolean, not a number with a fraction or an exponent"
    );
}

const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn a_published_event_carries_its_causes_trace_outside_its_content() {
    let mut v = signed_up();
    v["traceparent"] = json!(TRACE);
    v["tracestate"] = json!("vendor=1");
    let cause = parse(&v).unwrap();
    let untraced = parse(&signed_up()).unwrap();
    for published in [
        Envelope::caused_by(&cause, "payments", 0, processed(&cause)).unwrap(),
        Envelope::once_per_key(&cause, "payments", "pay_1", NOW, processed(&cause)).unwrap(),
    ] {
        assert_eq!(published.traceparent(), TraceParent::parse(TRACE));
        assert_eq!(published.extensions()["tracestate"], "vendor=1");
        assert_eq!(published.extensions()[CAUSATION_ID], "evt-1");
    }
    // The same outcome decided under an untraced cause: another trace, the same content (never a conflict).
    let traced =
        Envelope::once_per_key(&cause, "payments", "pay_1", NOW, processed(&cause)).unwrap();
    let plain =
        Envelope::once_per_key(&untraced, "payments", "pay_1", NOW, processed(&untraced)).unwrap();
    assert_eq!(plain.traceparent(), None);
    assert_eq!(traced.id(), plain.id());
    assert_eq!(traced.content_bytes(), plain.content_bytes());
}

#[test]
fn an_events_own_trace_comes_before_the_one_ingest_gives_it() {
    let given = TraceParent::start(7, 9);
    let bare = parse(&signed_up()).unwrap().traced(given);
    assert_eq!(bare.traceparent(), Some(given));
    let mut v = signed_up();
    v["traceparent"] = json!(TRACE);
    let own = parse(&v).unwrap().traced(given);
    assert_eq!(own.traceparent(), TraceParent::parse(TRACE));
}

#[test]
fn a_broken_traceparent_extension_is_refused_on_its_pointer() {
    for bad in [
        json!("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
        json!("not a trace"),
        json!(42),
    ] {
        let mut v = signed_up();
        v["traceparent"] = bad.clone();
        let err = parse(&v).unwrap_err();
        let only = &err.as_slice()[0];
        assert_eq!(err.as_slice().len(), 1, "{bad}");
        assert_eq!(only.code, Code::InvalidValue, "{bad}");
        assert_eq!(only.field.as_deref(), Some("/traceparent"), "{bad}");
    }
}

#[test]
fn a_replayed_record_says_so_and_senders_cannot_claim_it() {
    let original = parse(&signed_up()).unwrap();
    assert_eq!(original.replay(), None);
    let replayed = original.clone().replayed("rpl_1", "4959");
    assert_eq!(replayed.replay(), Some(("rpl_1", "4959")));
    assert_eq!(
        replayed.content_bytes(),
        original.content_bytes(),
        "the same event"
    );
    // Behind the edge (a record on the stream) the marks are read back.
    let decoded = Envelope::decode(&serde_json::to_vec(&replayed).unwrap()).unwrap();
    assert_eq!(decoded.replay(), Some(("rpl_1", "4959")));
    // What a consumer publishes because of it is counted with the replay, but has no sequence of its own yet.
    let published = Envelope::caused_by(&decoded, "payments", 0, processed(&decoded)).unwrap();
    assert_eq!(published.extensions()[REPLAY_ID], "rpl_1");
    assert!(!published.extensions().contains_key(REPLAY_SEQUENCE));
    // At the edge, a sender may set neither.
    rejects(
        with(signed_up(), "/replayseq", json!("1")),
        &[(Code::InvalidExtension, "/replayseq")],
    );
    rejects(
        with(signed_up(), "/replayid", json!("rpl_1")),
        &[(Code::InvalidExtension, "/replayid")],
    );
}

#[test]
fn a_replay_of_an_event_with_every_extension_it_may_have_still_decodes() {
    let mut v = signed_up();
    for i in 0..32 {
        v[format!("ext{i}")] = json!("x");
    }
    let full = parse(&v).unwrap();
    let replayed = full.replayed("rpl_1", "4959");
    let decoded = Envelope::decode(&serde_json::to_vec(&replayed).unwrap()).unwrap();
    assert_eq!(decoded.replay(), Some(("rpl_1", "4959")));
    // A sender still gets 32 at most.
    v["ext32"] = json!("x");
    assert!(parse(&v).is_err());
}

/// The fast pass (`parse::scan`) and the serde_json one agree: on every input the fast pass takes, the serde_json
/// pass makes the same envelope. Valid events of every type, written both ways (sorted members, and as ingest
/// writes them), then mutated at random (bytes dropped, tokens inserted where they may or may not belong).
#[test]
fn the_fast_pass_takes_only_what_the_serde_pass_reads_the_same() {
    use super::parse::{parse_serde, scan, unknown_members, Raw};

    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for ty in EventType::ALL {
        let example = crate::schema::example(*ty);
        seeds.push(serde_json::to_vec(&example).unwrap());
        let envelope = Envelope::decode(&serde_json::to_vec(&example).unwrap()).unwrap();
        let traced = envelope.traced(
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap(),
        );
        seeds.push(serde_json::to_vec(&traced).unwrap());
        seeds.push(serde_json::to_vec_pretty(&traced).unwrap());
        // Members in another order than ingest's (a `Value` sorts them): `data` before `type`, so the fast pass
        // captures the data rather than decoding it as it reads.
        let sorted = serde_json::to_value(&traced).unwrap();
        seeds.push(serde_json::to_vec(&sorted).unwrap());
    }
    let tokens: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"\\u0041",
        b"\\ud800",
        b"\\n",
        b"-0",
        b"-1",
        b"0",
        b"1.5",
        b"1e2",
        b"12",
        b"null",
        b"true",
        b"false",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b" ",
        b"\n",
        b"\t",
        b"\x01",
        "é".as_bytes(),
        b"\xff",
        b"\"x\":1,",
        b"\"ext\":\"v\",",
        b"\"ext\":-1,",
        b"\"ext\":1.5,",
        b"\"data\":{},",
        b"\"id\":null,",
        b"\"amount\":",
        b"\"currency\":\"EUR\",",
        b"\"reason\":{\"account_frozen\":null},",
        b"Z",
        b"T",
        b"+01:00",
        b".5",
        b"60",
        b"00",
        b"\"description\":null,",
    ];
    let fixed_id = || "fixed".to_owned();
    let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
    let mut next = |n: usize| rng.below(n);
    let (mut taken, mut declined) = (0, 0);
    for round in 0..40_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=next(3) {
            let at = next(bytes.len());
            match next(3) {
                0 => {
                    bytes.remove(at);
                }
                1 => {
                    let token = tokens[next(tokens.len())];
                    bytes.splice(at..at, token.iter().copied());
                }
                _ => bytes[at] = tokens[next(tokens.len())][0],
            }
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        for (received_at, id) in [
            (None, None),
            (Some(NOW), Some(&fixed_id as &dyn Fn() -> String)),
        ] {
            let mut raw = Raw::default();
            let fast = scan(text, unknown_members(received_at), &mut raw)
                .map(|()| raw.make_envelope(received_at, id));
            match fast {
                Some(Ok(envelope)) => {
                    taken += 1;
                    assert_eq!(parse_serde(text, received_at, id), Ok(envelope), "{text}");
                }
                _ => declined += 1,
            }
        }
    }
    // Both sides were exercised.
    assert!(taken > 2_000 && declined > 20_000, "{taken} {declined}");
}

#[test]
fn attribute_slots_are_the_attributes_in_order() {
    for (i, name) in super::parse::ATTRS.iter().enumerate() {
        assert_eq!(super::parse::attr_slot(name), Some(i), "{name}");
    }
    for other in ["data", "Type", "", "specversion ", "traceparent"] {
        assert_eq!(super::parse::attr_slot(other), None, "{other}");
    }
}

/// The timestamps the fast reading takes are read by `time` to the same instant; it declines the rest.
#[test]
fn the_fast_timestamp_reading_agrees_with_time() {
    use time::format_description::well_known::Rfc3339;

    let base = [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00.5Z",
        "2026-11-22T10:00:00.123456789Z",
        "2026-11-22T10:00:00.1234567891Z",
        "2024-02-29T23:59:59Z",
        "2023-02-29T23:59:59Z",
        "2026-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2026-11-22t10:00:00z",
        "2026-11-22T10:00:00+00:00",
        "2026-11-22T24:00:00Z",
        "2026-13-22T10:00:00Z",
        "2026-11-22T10:00:00.Z",
        "2026-11-22T10:00Z",
        "2026-1-22T10:00:00Z",
        "+2026-11-22T10:00:00Z",
    ];
    let mut rng = crate::test_rng::XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    for _ in 0..50_000 {
        let state = rng.next_u64();
        let mut s = base[usize::try_from(state % base.len() as u64).unwrap()]
            .as_bytes()
            .to_vec();
        let at = usize::try_from((state >> 20) % s.len() as u64).unwrap();
        s[at] = b"0123456789:-TZ.+"[usize::try_from((state >> 40) % 16).unwrap()];
        cases.push(String::from_utf8(s).unwrap());
    }
    let mut taken = 0;
    for t in &cases {
        if let Some(fast) = super::parse::fast_time(t) {
            taken += 1;
            assert_eq!(OffsetDateTime::parse(t, &Rfc3339).ok(), Some(fast), "{t}");
        }
    }
    assert!(taken > 3_000, "{taken}");
}

#[test]
fn an_envelopes_names_are_kept_apart_in_one_string() {
    let e = parse(&signed_up()).unwrap();
    let renamed = e.clone().with_id("evt-2").unwrap();
    assert_eq!(
        (renamed.id(), renamed.source(), renamed.subject()),
        ("evt-2", e.source(), e.subject())
    );
    assert_ne!(renamed, e);
    // Equal only when each of the three is: the same characters split elsewhere are another envelope.
    let shifted = Envelope::new("evt-1/", "shop/web", NOW, e.event().clone());
    let plain = Envelope::new("evt-1", "/shop/web", NOW, e.event().clone());
    assert_ne!(shifted.unwrap(), plain.unwrap());
    let debug = format!("{renamed:?}");
    assert!(
        debug.contains(r#"id: "evt-2""#) && debug.contains(r#"source: "/shop/web""#),
        "{debug}"
    );
}
