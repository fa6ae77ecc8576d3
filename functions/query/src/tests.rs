use lambda_http::http::StatusCode;
use serde_json::{json, Value};
use tubes_consumer_projections::Projections;
use tubes_platform::api_key::{mint, SECRET_BYTES};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::lambda_event::batch_of;
use tubes_platform::read_model::MemoryReadModels;
use tubes_platform::Harness;

use super::*;

/// A real HTTP API (v2) event, as API Gateway sends it.
const HTTP_V2: &str = include_str!("../../../tests/fixtures/apigw-http-v2-request.json");

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
    let mut v: Value = serde_json::from_str(HTTP_V2).unwrap();
    v["requestContext"]["http"]["method"] = json!(method);
    v["requestContext"]["http"]["path"] = json!(path);
    v["rawPath"] = json!(path);
    v["rawQueryString"] = json!("");
    v["body"] = Value::Null;
    v["isBase64Encoded"] = json!(false);
    let h = v["headers"].as_object_mut().unwrap();
    h.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
    for (name, value) in headers {
        h.insert((*name).to_owned(), json!(value));
    }
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

struct Setup {
    store: MemoryReadModels,
    key: String,
    readers: Readers,
}

fn setup() -> Setup {
    let (key, hash) = mint("dashboard", "k1", [7; SECRET_BYTES]).unwrap();
    let readers =
        Readers::parse(&json!({"dashboard": {"api_keys": {"k1": hash.to_string()}}}).to_string())
            .unwrap();
    Setup {
        store: MemoryReadModels::default(),
        key,
        readers,
    }
}

async fn fold(store: &MemoryReadModels, events: &[Value]) {
    let harness = Harness::new(Projections::new(store), LogDeadLetters);
    harness.run(batch_of(events)).await;
}

fn opened(account: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("open-{account}"), "source": "/bank", "type": "account.opened",
           "subject": account, "time": "2026-11-22T10:00:00Z",
           "data": {"account_id": account, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}})
}

fn credited(account: &str, credit: &str) -> Value {
    json!({"specversion": "1.0", "id": format!("c-{credit}"), "source": "/bank", "type": "account.credited",
           "subject": account, "time": "2026-11-22T10:00:00Z",
           "data": {"credit_id": credit, "account_id": account, "amount": 250, "currency": "EUR",
                    "credited_at": "2026-11-22T09:30:00Z"}})
}

fn body(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_is_served_with_an_etag_that_changes_with_it() {
    let s = setup();
    fold(&s.store, &[opened("acc_1"), credited("acc_1", "cr_1")]).await;
    let query = Query::new(&s.store, s.readers.clone());
    let auth = format!("Bearer {}", s.key);
    let first = query
        .handle(&request(
            "GET",
            "/accounts/acc_1",
            &[("authorization", &auth)],
        ))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["content-type"], "application/json");
    let doc = body(&first);
    assert_eq!(
        (doc["status"].clone(), doc["balance"].clone()),
        (json!("open"), json!(250))
    );
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        tag.starts_with('"') && !tag.starts_with("W/"),
        "strong: {tag}"
    );

    // The client's copy is current: 304, no body.
    let again = query
        .handle(&request(
            "GET",
            "/accounts/acc_1",
            &[("authorization", &auth), ("if-none-match", &tag)],
        ))
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(matches!(again.body(), Body::Empty));

    // A new event: a new tag, and the old one no longer matches.
    fold(
        &s.store,
        &[
            opened("acc_1"),
            credited("acc_1", "cr_1"),
            credited("acc_1", "cr_2"),
        ],
    )
    .await;
    let changed = query
        .handle(&request(
            "GET",
            "/accounts/acc_1",
            &[("authorization", &auth), ("if-none-match", &tag)],
        ))
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), tag);
    assert_eq!(body(&changed)["balance"], 500);

    // HEAD: the headers without the body.
    let head = query
        .handle(&request(
            "HEAD",
            "/accounts/acc_1/",
            &[("authorization", &auth)],
        ))
        .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(matches!(head.body(), Body::Empty));
}

#[tokio::test]
async fn a_user_is_served_from_the_users_model() {
    let s = setup();
    let signup = json!({"specversion": "1.0", "id": "s-1", "source": "/web", "type": "user.signed_up",
        "subject": "usr_1", "time": "2026-11-22T10:00:00Z",
        "data": {"user_id": "usr_1", "email": "ada@example.com", "name": "Ada", "marketing_opt_in": true,
                 "signed_up_at": "2026-11-22T10:00:00Z"}});
    fold(&s.store, &[signup]).await;
    let query = Query::new(&s.store, s.readers.clone());
    let response = query
        .handle(&request(
            "GET",
            "/users/usr_1",
            &[("authorization", &format!("Bearer {}", s.key))],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc = body(&response);
    assert_eq!(doc["profile"]["name"], "Ada");
    assert_eq!(doc["lists"], json!(["news"]));
}

#[tokio::test]
async fn bad_requests_get_the_contract_error_body() {
    let s = setup();
    fold(&s.store, &[opened("acc_1")]).await;
    let query = Query::new(&s.store, s.readers.clone());
    let auth = format!("Bearer {}", s.key);
    let (other_key, _) = mint("dashboard", "k1", [8; SECRET_BYTES]).unwrap();
    let wrong = format!("Bearer {other_key}");
    let cases: Vec<(Request, StatusCode, &str, Option<&str>)> = vec![
        (
            request("GET", "/accounts/acc_1", &[]),
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            None,
        ),
        (
            request("GET", "/accounts/acc_1", &[("authorization", &wrong)]),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            None,
        ),
        (
            request("GET", "/accounts/acc_1", &[("authorization", "Basic YTpi")]),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            None,
        ),
        (
            request("GET", "/accounts/acc_404", &[("authorization", &auth)]),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            request("GET", "/ledgers/acc_1", &[("authorization", &auth)]),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            request("GET", "/accounts/a/b", &[("authorization", &auth)]),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            request("DELETE", "/accounts/acc_1", &[("authorization", &auth)]),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
        (
            request(
                "GET",
                &format!("/users/{}", "x".repeat(129)),
                &[("authorization", &auth)],
            ),
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("/path/id"),
        ),
    ];
    for (req, status, code, field) in cases {
        let path = req.uri().path().to_owned();
        let response = query.handle(&req).await;
        assert_eq!(response.status(), status, "{path}");
        let b = body(&response);
        assert_eq!(b["error"]["code"], code, "{path}");
        assert!(b["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(b["error"]["field"].as_str(), field, "{path}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(response.headers().contains_key("www-authenticate"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(response.headers()["allow"], "GET, HEAD");
        }
    }
}

#[test]
fn readers_configuration_is_checked_at_start() {
    assert!(Readers::parse("[]").is_err());
    assert!(Readers::parse(r#"{"Bad Name": {"api_keys": {"k": "sha256:00"}}}"#).is_err());
    assert!(Readers::parse(r#"{"dash": {"api_keys": {}}}"#).is_err());
    assert!(Readers::parse(r#"{"dash": {"api_keys": {"k": "plain-key"}}}"#).is_err());
    assert!(Readers::parse(r#"{"dash": {"api_keys": {"k": "x"}, "extra": 1}}"#).is_err());
}
