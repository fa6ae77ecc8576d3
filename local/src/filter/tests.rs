use serde_json::json;

use super::*;

fn m(pattern: Value, event: Value) -> bool {
    Pattern::parse(&pattern.to_string())
        .unwrap()
        .matches(&event)
}

// The examples of AWS's "Lambda event filtering" comparison-operator table, on a Kinesis record's data.
#[test]
fn aws_documented_operators() {
    let ev = |data: Value| json!({"partitionKey": "pk", "data": data});
    // Null and empty.
    assert!(m(
        json!({"data": {"UserID": [null]}}),
        ev(json!({"UserID": null}))
    ));
    assert!(!m(
        json!({"data": {"UserID": [null]}}),
        ev(json!({"UserID": "x"}))
    ));
    assert!(!m(json!({"data": {"UserID": [null]}}), ev(json!({}))));
    assert!(m(
        json!({"data": {"LastName": [""]}}),
        ev(json!({"LastName": ""}))
    ));
    // Equals, and equals-ignore-case.
    assert!(m(
        json!({"data": {"Name": ["Alice"]}}),
        ev(json!({"Name": "Alice"}))
    ));
    assert!(!m(
        json!({"data": {"Name": ["Alice"]}}),
        ev(json!({"Name": "alice"}))
    ));
    assert!(m(
        json!({"data": {"Name": [{"equals-ignore-case": "alice"}]}}),
        ev(json!({"Name": "ALICE"}))
    ));
    // And: every key.
    let and = json!({"data": {"Location": ["New York"], "Day": ["Monday"]}});
    assert!(m(
        and.clone(),
        ev(json!({"Location": "New York", "Day": "Monday"}))
    ));
    assert!(!m(
        and,
        ev(json!({"Location": "New York", "Day": "Tuesday"}))
    ));
    // Or: several values.
    assert!(m(
        json!({"data": {"PaymentType": ["Credit", "Debit"]}}),
        ev(json!({"PaymentType": "Debit"}))
    ));
    // Or over fields.
    let or = json!({"data": {"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}});
    assert!(m(
        or.clone(),
        ev(json!({"Location": "Paris", "Day": "Monday"}))
    ));
    assert!(!m(or, ev(json!({"Location": "Paris", "Day": "Sunday"}))));
    // Not.
    let not = json!({"data": {"Weather": [{"anything-but": ["Raining"]}]}});
    assert!(m(not.clone(), ev(json!({"Weather": "Sunny"}))));
    assert!(!m(not.clone(), ev(json!({"Weather": "Raining"}))));
    assert!(!m(not, ev(json!({}))), "anything-but needs the field");
    assert!(m(
        json!({"data": {"Weather": [{"anything-but": {"prefix": "Rain"}}]}}),
        ev(json!({"Weather": "Sun"}))
    ));
    assert!(!m(
        json!({"data": {"Weather": [{"anything-but": {"prefix": "Rain"}}]}}),
        ev(json!({"Weather": "Rainy"}))
    ));
    // Numeric equals and ranges.
    assert!(m(
        json!({"data": {"Price": [{"numeric": ["=", 100]}]}}),
        ev(json!({"Price": 100.0}))
    ));
    assert!(!m(
        json!({"data": {"Price": [{"numeric": ["=", 100]}]}}),
        ev(json!({"Price": "100"}))
    ));
    let range = json!({"data": {"Price": [{"numeric": [">", 10, "<=", 20]}]}});
    assert!(m(range.clone(), ev(json!({"Price": 20}))));
    assert!(!m(range.clone(), ev(json!({"Price": 10}))));
    assert!(!m(range, ev(json!({"Price": 20.5}))));
    // Exists / does not exist.
    assert!(m(
        json!({"data": {"ProductName": [{"exists": true}]}}),
        ev(json!({"ProductName": "x"}))
    ));
    assert!(!m(
        json!({"data": {"ProductName": [{"exists": true}]}}),
        ev(json!({}))
    ));
    assert!(m(
        json!({"data": {"ProductName": [{"exists": false}]}}),
        ev(json!({}))
    ));
    // Begins / ends with.
    assert!(m(
        json!({"data": {"Region": [{"prefix": "us-"}]}}),
        ev(json!({"Region": "us-east-1"}))
    ));
    assert!(!m(
        json!({"data": {"Region": [{"prefix": "us-"}]}}),
        ev(json!({"Region": "eu-west-1"}))
    ));
    assert!(m(
        json!({"data": {"File": [{"suffix": ".png"}]}}),
        ev(json!({"File": "cat.png"}))
    ));
}

#[test]
fn the_template_s_type_filters() {
    let p = Pattern::parse(r#"{"data": {"type": ["payment.received"]}}"#).unwrap();
    let rec = |data: &[u8]| kinesis_record_value("acc_1", "1", 1.0, data);
    assert!(p.matches(&rec(br#"{"type":"payment.received","id":"1"}"#)));
    assert!(!p.matches(&rec(br#"{"type":"user.signed_up"}"#)));
    assert!(
        !p.matches(&rec(b"not json")),
        "non-JSON data never matches a data pattern"
    );
    assert!(Pattern::parse(r#"{"partitionKey": ["acc_1"]}"#)
        .unwrap()
        .matches(&rec(b"not json")));
}

#[test]
fn nested_objects_and_arrays() {
    let p = json!({"data": {"order": {"status": ["paid"]}}});
    assert!(m(p.clone(), json!({"data": {"order": {"status": "paid"}}})));
    assert!(!m(p.clone(), json!({"data": {"order": "paid"}})));
    assert!(m(
        json!({"data": {"tags": ["vip"]}}),
        json!({"data": {"tags": ["new", "vip"]}})
    ));
    assert!(m(
        p,
        json!({"data": {"order": [{"status": "open"}, {"status": "paid"}]}})
    ));
}

#[test]
fn filter_lists_are_or_and_empty_passes_all() {
    let a = Pattern::parse(r#"{"data": {"type": ["a"]}}"#).unwrap();
    let b = Pattern::parse(r#"{"data": {"type": ["b"]}}"#).unwrap();
    assert!(passes(&[], &json!({})));
    assert!(passes(
        &[a.clone(), b.clone()],
        &json!({"data": {"type": "b"}})
    ));
    assert!(!passes(&[a, b], &json!({"data": {"type": "c"}})));
}

#[test]
fn invalid_patterns_are_refused_with_their_place() {
    for (text, path) in [
        ("[]", ""),
        ("{}", ""),
        (r#"{"data": {"type": "a"}}"#, "data.type"),
        (r#"{"data": {"type": []}}"#, "data.type"),
        (r#"{"data": {"n": [{"numeric": [">", "x"]}]}}"#, "data.n"),
        (r#"{"data": {"n": [{"numeric": ["~", 1]}]}}"#, "data.n"),
        (r#"{"data": {"n": [{"wildcard": "x"}]}}"#, "data.n"),
        (r#"{"data": {"n": [{"exists": "yes"}]}}"#, "data.n"),
        (r#"{"data": {"$or": [{"a": ["x"]}]}}"#, "data.$or"),
    ] {
        let e = Pattern::parse(text).unwrap_err();
        assert_eq!(e.path, path, "{text}: {e}");
    }
}
