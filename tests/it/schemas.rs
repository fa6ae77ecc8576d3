//! The committed JSON Schemas (`schemas/`) and the server's validator agree: each example event is accepted by
//! both or refused by both, judged by a real JSON Schema 2020-12 validator (python-jsonschema, pinned in the
//! tools' virtualenv), the way a producer would use the files.

use std::process::Command;

use serde_json::{json, Value};
use tubes_contract::Envelope;
use tubes_tests::repo_root;

fn base(ty: &str) -> Value {
    let data = match ty {
        "payment.received" => json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com", "description": "Rent"}),
        "payment.processed" => json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com", "processed_at": "2026-11-22T10:00:00Z"}),
        "payment.failed" => json!({"payment_id": "pay_1", "account_id": "acc_1", "amount": 1250,
            "currency": "EUR", "payer_email": "ada@example.com", "reason": "insufficient_funds",
            "failed_at": "2026-11-22T10:00:00Z"}),
        "account.opened" => {
            json!({"account_id": "acc_1", "currency": "EUR", "per_payment_limit": 50000,
            "opened_at": "2026-11-22T10:00:00Z"})
        }
        "account.credited" => json!({"credit_id": "crd_1", "account_id": "acc_1", "amount": 5000,
            "currency": "EUR", "credited_at": "2026-11-22T10:00:00Z"}),
        "account.frozen" => json!({"account_id": "acc_1", "reason": "fraud review",
            "frozen_at": "2026-11-22T10:00:00Z"}),
        "user.signed_up" => json!({"user_id": "usr_1", "email": "ada@example.com", "name": "Ada",
            "locale": "pt-BR", "marketing_opt_in": true, "signed_up_at": "2026-11-22T10:00:00Z"}),
        "user.unsubscribed" => {
            json!({"user_id": "usr_1", "email": "ada@example.com", "list_id": "news",
            "unsubscribed_at": "2026-11-22T10:00:00Z"})
        }
        other => panic!("no example for {other}"),
    };
    json!({"specversion": "1.0", "id": "evt_1", "source": "/shop/web", "type": ty, "data": data})
}

/// Examples: every type as is, then broken (or oddly valid) one rule at a time.
fn cases() -> Vec<(String, Value)> {
    let mut cases: Vec<(String, Value)> = tubes_contract::EventType::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), base(t.as_str())))
        .collect();
    let mut with = |ty: &str, label: &str, change: &dyn Fn(&mut Value)| {
        let mut event = base(ty);
        change(&mut event);
        cases.push((format!("{ty}: {label}"), event));
    };
    with("account.opened", "no limit", &|e| {
        e["data"]
            .as_object_mut()
            .unwrap()
            .remove("per_payment_limit");
    });
    with("account.opened", "null limit", &|e| {
        e["data"]["per_payment_limit"] = json!(null)
    });
    with("account.opened", "zero limit", &|e| {
        e["data"]["per_payment_limit"] = json!(0)
    });
    with("account.credited", "no credit id", &|e| {
        e["data"].as_object_mut().unwrap().remove("credit_id");
    });
    let paid = "payment.received";
    with(paid, "zero amount", &|e| e["data"]["amount"] = json!(0));
    with(paid, "negative amount", &|e| {
        e["data"]["amount"] = json!(-5)
    });
    with(paid, "amount too large", &|e| {
        e["data"]["amount"] = json!(10_i64.pow(15) + 1)
    });
    with(paid, "amount as a string", &|e| {
        e["data"]["amount"] = json!("12")
    });
    with(paid, "lower-case currency", &|e| {
        e["data"]["currency"] = json!("eur")
    });
    with(paid, "unknown currency", &|e| {
        e["data"]["currency"] = json!("XXX")
    });
    with(paid, "not an e-mail", &|e| {
        e["data"]["payer_email"] = json!("ada.example.com")
    });
    with(paid, "one-label domain", &|e| {
        e["data"]["payer_email"] = json!("ada@localhost")
    });
    with(paid, "dotted local part", &|e| {
        e["data"]["payer_email"] = json!("ada.l+x@mail.example.co.uk")
    });
    with(paid, "id with a space", &|e| {
        e["data"]["payment_id"] = json!("pay 1")
    });
    with(paid, "empty id", &|e| e["data"]["account_id"] = json!(""));
    with(paid, "missing payer", &|e| {
        e["data"].as_object_mut().unwrap().remove("payer_email");
    });
    with(paid, "blank description", &|e| {
        e["data"]["description"] = json!("   ")
    });
    with(paid, "control character", &|e| {
        e["data"]["description"] = json!("a\u{7}b")
    });
    with(paid, "null description", &|e| {
        e["data"]["description"] = Value::Null
    });
    with(paid, "unknown data member", &|e| {
        e["data"]["note"] = json!("x")
    });
    with("user.signed_up", "misspelt opt-in (unknown member)", &|e| {
        e["data"]
            .as_object_mut()
            .unwrap()
            .remove("marketing_opt_in");
        e["data"]["marketing_optin"] = json!(true);
    });
    with("account.frozen", "unknown null member", &|e| {
        e["data"]["frozen_by"] = Value::Null
    });
    with("payment.failed", "unknown object member", &|e| {
        e["data"]["meta"] = json!({"reason": "bored"})
    });
    with("user.signed_up", "extension next to data (allowed)", &|e| {
        e["marketingoptin"] = json!(true)
    });
    with(paid, "specversion 1.1", &|e| {
        e["specversion"] = json!("1.1")
    });
    with(paid, "no source", &|e| {
        e.as_object_mut().unwrap().remove("source");
    });
    with(paid, "extension", &|e| {
        e["traceparent"] = json!("00-abc-def-01")
    });
    for (label, value) in [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        (
            "traceparent of a later version",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
        ),
        (
            "traceparent 00 with more",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
        ),
        (
            "traceparent version ff",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        (
            "traceparent in upper case",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ),
    ] {
        with(paid, label, &|e| e["traceparent"] = json!(value));
    }
    with(paid, "bad extension name", &|e| e["Trace_Id"] = json!("x"));
    with(paid, "object extension", &|e| e["ext"] = json!({"a": 1}));
    with(paid, "data_base64", &|e| e["data_base64"] = json!("eyJ9"));
    with(paid, "JSON datacontenttype", &|e| {
        e["datacontenttype"] = json!("application/json; charset=utf-8")
    });
    with(paid, "XML datacontenttype", &|e| {
        e["datacontenttype"] = json!("application/xml")
    });
    with("payment.failed", "unknown reason", &|e| {
        e["data"]["reason"] = json!("bored")
    });
    with("user.signed_up", "bad locale", &|e| {
        e["data"]["locale"] = json!("english")
    });
    with("user.signed_up", "long name", &|e| {
        e["data"]["name"] = json!("n".repeat(201))
    });
    with("user.signed_up", "no opt-in (defaults)", &|e| {
        e["data"]
            .as_object_mut()
            .unwrap()
            .remove("marketing_opt_in");
    });
    with("user.unsubscribed", "bad list id", &|e| {
        e["data"]["list_id"] = json!("news\tletter")
    });
    with("user.unsubscribed", "not a timestamp", &|e| {
        e["data"]["unsubscribed_at"] = json!("yesterday")
    });
    with("user.unsubscribed", "offset timestamp", &|e| {
        e["data"]["unsubscribed_at"] = json!("2026-11-22T11:00:00.250+01:00")
    });
    with(paid, "65-character local part", &|e| {
        e["data"]["payer_email"] = json!(format!("{}@example.com", "a".repeat(65)))
    });
    with(paid, "null id (as good as absent)", &|e| {
        e["id"] = Value::Null
    });
    with(paid, "event time out of range", &|e| {
        e["time"] = json!("2026-13-01T00:00:00Z")
    });
    cases
}

const CHECK: &str = r#"
import json, pathlib, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
schemas = {p.name: json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.json")}
registry = Registry().with_resources(
    (s["$id"], Resource.from_contents(s)) for s in schemas.values())
any_event = Draft202012Validator(schemas["event.json"], registry=registry)
verdicts = []
for event in json.load(sys.stdin):
    own = Draft202012Validator(schemas[event["type"] + ".json"], registry=registry).is_valid(event)
    verdicts.append([own, any_event.is_valid(event)])
print(json.dumps(verdicts))
"#;

#[test]
fn the_schemas_and_the_validator_agree() {
    let cases = cases();
    let events: Vec<&Value> = cases.iter().map(|(_, e)| e).collect();
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `make test` (it installs the tools' virtualenv)"
    );
    let mut child = Command::new(python)
        .args(["-c", CHECK])
        .arg(repo_root().join("schemas"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &events).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the schema check failed to run");
    let verdicts: Vec<(bool, bool)> = serde_json::from_slice(&out.stdout).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for ((label, event), (own, any)) in cases.iter().zip(verdicts) {
        let server = Envelope::parse(event.to_string().as_bytes(), now).is_ok();
        refused += usize::from(!server);
        if server != own || own != any {
            disagreements.push(format!(
                "{label}: server {server}, schema {own}, event.json {any}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert!(refused > cases.len() / 2, "the examples exercise refusals");
}
