use lambda_http::http::{HeaderMap, HeaderValue};

use super::*;
use crate::credentials::api_key::{mint, SECRET_BYTES};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_800_000_000;

struct Fixture {
    registry: Registry,
    shop_key: String,
    crm_key: String,
}

fn fixture() -> Fixture {
    let (shop_key, shop_hash) = mint("shop", "k1", [1; SECRET_BYTES]).unwrap();
    let (crm_key, crm_hash) = mint("crm", "k1", [2; SECRET_BYTES]).unwrap();
    let json = format!(
        r#"{{"shop": {{"api_keys": {{"k1": "{shop_hash}"}}, "signing_secrets": ["{SECRET}"],
                      "iam_principals": ["arn:aws:iam::123456789012:role/shop"], "event_types": ["*"]}},
            "crm": {{"api_keys": {{"k1": "{crm_hash}"}}, "event_types": ["user.*"]}},
            "demo": {{"open": true, "event_types": ["*"]}}}}"#
    );
    Fixture {
        registry: Registry::parse(&json, true).unwrap(),
        shop_key,
        crm_key,
    }
}

fn bearer(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {key}")).unwrap(),
    );
    h
}

fn signed(body: &[u8]) -> HeaderMap {
    let secret = webhook::Secret::parse(SECRET).unwrap();
    let mut h = HeaderMap::new();
    h.insert("webhook-id", HeaderValue::from_static("msg_1"));
    h.insert("webhook-timestamp", HeaderValue::from(NOW));
    h.insert(
        "webhook-signature",
        HeaderValue::from_str(&secret.sign("msg_1", NOW, body)).unwrap(),
    );
    h
}

fn auth<'a>(
    f: &'a Fixture,
    route: Route<'a>,
    iam: Option<&'a str>,
    headers: &'a HeaderMap,
    default_source: Option<&str>,
) -> Result<(String, Credential, Option<&'a str>), AuthError> {
    let request = Request {
        route,
        iam_caller: iam,
        headers,
        body: b"{}",
        now: NOW,
    };
    request
        .authenticate(&f.registry, default_source)
        .map(|a| (a.source.name.clone(), a.credential, a.webhook_id))
}

#[test]
fn each_credential_names_its_source() {
    let f = fixture();
    let key = bearer(&f.shop_key);
    assert_eq!(
        auth(&f, Route::Events, None, &key, None),
        Ok(("shop".into(), Credential::ApiKey, None))
    );
    assert_eq!(
        auth(&f, Route::Source("shop"), None, &key, None),
        Ok(("shop".into(), Credential::ApiKey, None))
    );
    let sig = signed(b"{}");
    assert_eq!(
        auth(&f, Route::Source("shop"), None, &sig, None),
        Ok(("shop".into(), Credential::Signature, Some("msg_1")))
    );
    assert_eq!(
        auth(&f, Route::Events, None, &sig, Some("shop")),
        Ok(("shop".into(), Credential::Signature, Some("msg_1")))
    );
    let none = HeaderMap::new();
    let caller = "arn:aws:sts::123456789012:assumed-role/shop/i-1";
    assert_eq!(
        auth(&f, Route::Iam, Some(caller), &none, None),
        Ok(("shop".into(), Credential::Iam, None))
    );
    assert_eq!(
        auth(&f, Route::Source("demo"), None, &none, None),
        Ok(("demo".into(), Credential::Open, None))
    );
}

#[test]
fn no_credential_is_a_401_that_names_the_schemes() {
    let f = fixture();
    let none = HeaderMap::new();
    for (route, default) in [
        (Route::Events, None),
        (Route::Events, Some("shop")),
        (Route::Source("shop"), None),
        // The IAM route without the authorizer's caller (the path alone proves nothing).
        (Route::Iam, None),
    ] {
        let err = auth(&f, route, None, &none, default).unwrap_err();
        assert_eq!(err, AuthError::MissingCredentials, "{route:?}");
        assert!(!err.is_forbidden());
        assert!(err.challenge().contains("Bearer"));
    }
}

#[test]
fn a_bad_key_is_a_401_and_an_unknown_one_asks_for_a_re_read() {
    let f = fixture();
    let (unknown, _) = mint("shop", "k2", [1; SECRET_BYTES]).unwrap();
    assert_eq!(
        auth(&f, Route::Events, None, &bearer(&unknown), None),
        Err(AuthError::UnknownKey)
    );
    let (other_source, _) = mint("nobody", "k1", [1; SECRET_BYTES]).unwrap();
    assert_eq!(
        auth(&f, Route::Events, None, &bearer(&other_source), None),
        Err(AuthError::UnknownKey)
    );
    // The right source and key id, the wrong secret.
    let (wrong, _) = mint("shop", "k1", [9; SECRET_BYTES]).unwrap();
    assert_eq!(
        auth(&f, Route::Events, None, &bearer(&wrong), None),
        Err(AuthError::InvalidApiKey)
    );
    for garbage in ["nope", "Basic dXNlcjpwYXNz", ""] {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(garbage).unwrap());
        assert_eq!(
            auth(&f, Route::Events, None, &h, None),
            Err(AuthError::InvalidApiKey),
            "{garbage:?}"
        );
    }
    // A key does not open another source's route, nor does an open source take a bad key.
    let crm = bearer(&f.crm_key);
    let err = auth(&f, Route::Source("shop"), None, &crm, None).unwrap_err();
    assert!(matches!(err, AuthError::AnotherSource { .. }) && err.is_forbidden());
    assert!(auth(&f, Route::Source("demo"), None, &bearer(&wrong), None).is_err());
}

#[test]
fn signatures_iam_and_routes_are_checked_too() {
    let f = fixture();
    // Signed for other bytes than the body.
    let other = signed(b"[]");
    assert_eq!(
        auth(&f, Route::Source("shop"), None, &other, None),
        Err(AuthError::Signature(webhook::SignatureError::Mismatch))
    );
    // A valid key with a bad signature: the signature still decides (its webhook-id would become the ids).
    let mut both = other.clone();
    both.extend(bearer(&f.shop_key));
    assert!(matches!(
        auth(&f, Route::Events, None, &both, None),
        Err(AuthError::Signature(_))
    ));
    // Signed on POST /events without a default source: nothing to verify against.
    assert_eq!(
        auth(&f, Route::Events, None, &signed(b"{}"), None),
        Err(AuthError::Signature(webhook::SignatureError::NotConfigured))
    );
    let none = HeaderMap::new();
    let stranger = "arn:aws:sts::123456789012:assumed-role/other/i-1";
    let err = auth(&f, Route::Iam, Some(stranger), &none, None).unwrap_err();
    assert_eq!(err, AuthError::IamPrincipalNotAllowed);
    assert!(err.is_forbidden());
    assert_eq!(
        auth(&f, Route::Source("nope"), None, &bearer(&f.shop_key), None),
        Err(AuthError::UnknownSource)
    );
}
