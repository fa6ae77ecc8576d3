use super::*;
use crate::credentials::api_key::{mint, SECRET_BYTES};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn parse(json: &str) -> Result<Registry, ConfigError> {
    Registry::parse(json, false)
}

#[test]
fn a_source_with_each_kind_of_credential_and_its_allow_lists() {
    let (_, hash) = mint("shop", "k1", [3; SECRET_BYTES]).unwrap();
    let json = format!(
        r#"{{"shop": {{"api_keys": {{"k1": "{hash}"}}, "signing_secrets": ["{SECRET}"],
              "iam_principals": ["arn:aws:iam::123456789012:role/shop"],
              "event_types": ["payment.*", "account.opened"], "ce_sources": ["/shop/checkout", "/shop/refunds/*"]}},
            "crm": {{"api_keys": {{"k1": "{hash}"}}, "event_types": ["*"]}}}}"#
    );
    let registry = parse(&json).unwrap();
    let shop = registry.get("shop").unwrap();
    // The family skips the consumer-owned payment.processed / payment.failed.
    assert_eq!(
        shop.event_types.iter().copied().collect::<Vec<_>>(),
        [EventType::PaymentReceived, EventType::AccountOpened]
    );
    assert!(shop.may_speak_as("/shop/checkout"));
    assert!(shop.may_speak_as("/shop/refunds/2026"));
    assert!(!shop.may_speak_as("/shop/checkout/x"));
    assert!(!shop.may_speak_as("/crm"));
    assert_eq!(
        registry
            .by_principal("arn:aws:sts::123456789012:assumed-role/shop/session")
            .map(|s| s.name.as_str()),
        Some("shop")
    );
    // Defaults: every producer type, and the source's own namespace of CloudEvents sources.
    let crm = registry.get("crm").unwrap();
    assert!(crm.may_send(EventType::UserSignedUp));
    assert!(!crm.may_send(EventType::PaymentProcessed));
    assert!(crm.may_speak_as("/crm") && crm.may_speak_as("/crm/web"));
    assert!(!crm.may_speak_as("/crmx") && !crm.may_speak_as("/shop"));
}

#[test]
fn closed_by_default() {
    // No credential: refused at start, not an open door.
    let none = r#"{"shop": {"event_types": ["user.signed_up"]}}"#;
    assert!(parse(none).is_err());
    // Open is for local development only.
    let open = r#"{"demo": {"open": true, "event_types": ["*"]}}"#;
    let err = parse(open).unwrap_err().to_string();
    assert!(err.contains("local development"), "{err}");
    assert!(
        Registry::parse(open, true)
            .unwrap()
            .get("demo")
            .unwrap()
            .open
    );
    // Nothing configured: no source at all.
    assert!(parse("{}").unwrap().is_empty());
}

#[test]
fn bad_sources_refuse_to_start_with_a_reason() {
    let key = format!("{}", mint("s", "k", [1; SECRET_BYTES]).unwrap().1);
    for (json, says) in [
        (format!(r#"{{"Bad Name": {{"api_keys": {{"k": "{key}"}}, "event_types": ["*"]}}}}"#), "source name"),
        (format!(r#"{{"s": {{"api_keys": {{"K!": "{key}"}}, "event_types": ["*"]}}}}"#), "key id"),
        (r#"{"s": {"api_keys": {"k": "tubes_s.k.plaintext"}, "event_types": ["*"]}}"#.into(), "sha256"),
        (r#"{"s": {"signing_secrets": ["whsec_AAAA"], "event_types": ["*"]}}"#.into(), "24 to 64"),
        (r#"{"s": {"iam_principals": ["arn:aws:iam::123456789012:root"], "event_types": ["*"]}}"#.into(), "role or user"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}}}}}"#), "event_types"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": []}}}}"#), "event_types"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["payment.processed"]}}}}"#), "payments consumer"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["refund.*"]}}}}"#), "matches no"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["user.signed"]}}}}"#), "no event type"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["*"], "ce_sources": []}}}}"#), "empty"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["*"], "ce_sources": ["shop"]}}}}"#), "URI-reference"),
        (format!(r#"{{"s": {{"api_keys": {{"k": "{key}"}}, "event_types": ["*"], "typo": 1}}}}"#), "unknown field"),
        (r#"[1]"#.into(), "sources object"),
        // The old shape (before credentials were required) is refused with a reason, not half-read.
        (r#"{"stripe": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "require_signature": true}}"#.into(), "unknown field"),
    ] {
        let err = parse(&json).expect_err(&json).to_string();
        assert!(err.contains(says), "{json}: {err}");
        assert!(!err.contains("MfKQ9r8"), "no secret in the message: {err}");
    }
}
