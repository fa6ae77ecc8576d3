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

mod event_status {
    use std::time::Duration;

    use tubes_platform::idempotency::{event_key, Attempt, IdempotencyStore, MemoryIdempotency};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn consumers() -> Consumers {
        Consumers::parse(
            "payments=account.opened,payment.received;notifications=payment.processed;\
             signups=user.signed_up",
        )
        .unwrap()
    }

    fn place(seq: &str) -> Vec<(&'static str, String)> {
        vec![
            ("event_type", "payment.received".to_owned()),
            ("partition_key", "acc_1".to_owned()),
            ("sequence_number", seq.to_owned()),
            ("shard_id", "shardId-000000000000".to_owned()),
            ("arrival_ms", "1764842400123".to_owned()),
        ]
    }

    async fn get(
        query: &Query<&MemoryReadModels, &MemoryIdempotency>,
        path: &str,
        auth: &str,
        tag: Option<&str>,
    ) -> Response<Body> {
        let mut headers = vec![("authorization", auth)];
        if let Some(tag) = tag {
            headers.push(("if-none-match", tag));
        }
        query.handle(&request("GET", path, &headers)).await
    }

    #[tokio::test]
    async fn a_parked_event_shows_where_it_went_then_handled_after_the_redrive() {
        let s = setup();
        let records = MemoryIdempotency::default();
        let query = Query::new(&s.store, s.readers.clone()).with_events(&records, consumers());
        let auth = format!("Bearer {}", s.key);
        let path = "/events/%2Fshop/pay_1";
        let missing = get(&query, path, &auth, None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(&missing)["error"]["code"], "not_found");

        // payments tried it and parked it.
        let key = event_key("payments", "/shop", "pay_1");
        let now = tubes_platform::clock::now_ms();
        records
            .claim(&key, "h", now, Duration::from_secs(10), &place("42"))
            .await
            .unwrap();
        records
            .release(
                &key,
                "h",
                now + 1,
                DAY,
                Attempt::Keep,
                Some("tubes-payments-dlq"),
            )
            .await
            .unwrap();
        let parked = get(&query, path, &auth, None).await;
        assert_eq!(parked.status(), StatusCode::OK);
        assert_eq!(
            body(&parked),
            json!({
                "source": "/shop", "id": "pay_1", "type": "payment.received",
                "accepted": {"at": "2025-12-04T10:00:00.123Z", "shard_id": "shardId-000000000000",
                             "sequence_number": "42", "partition_key": "acc_1"},
                // notifications and signups do not take payment.received: not listed.
                "consumers": [{"consumer": "payments", "status": "parked", "attempts": 1,
                               "dead_letter_queue": "tubes-payments-dlq"}]
            })
        );
        let tag = parked.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(
            get(&query, path, &auth, Some(&tag)).await.status(),
            StatusCode::NOT_MODIFIED
        );

        // Redriven after the fix: claimed again (in progress), then handled; the queue is forgotten.
        records
            .claim(&key, "h", now + 2, Duration::from_secs(600), &place("42"))
            .await
            .unwrap();
        let working = body(&get(&query, path, &auth, None).await);
        assert_eq!(working["consumers"][0]["status"], "in_progress");
        assert_eq!(working["consumers"][0]["attempts"], 2);
        assert!(working["consumers"][0].get("dead_letter_queue").is_none());
        records
            .complete(&key, "h", 2, now + 3, DAY, &place("42"))
            .await
            .unwrap();
        let handled = get(&query, path, &auth, Some(&tag)).await;
        assert_eq!(
            handled.status(),
            StatusCode::OK,
            "the status changed: a new tag"
        );
        assert_eq!(
            body(&handled)["consumers"],
            json!([{"consumer": "payments", "status": "handled", "attempts": 2}])
        );
    }

    #[tokio::test]
    async fn consumers_that_take_the_type_and_have_not_reached_it_are_pending() {
        let s = setup();
        let records = MemoryIdempotency::default();
        let query = Query::new(&s.store, s.readers.clone()).with_events(&records, consumers());
        let auth = format!("Bearer {}", s.key);
        let mut notes = place("7");
        notes[0].1 = "payment.processed".to_owned();
        let now = tubes_platform::clock::now_ms();
        // payments publishes payment.processed and... no: say signups had a record (a misconfiguration), and
        // notifications, which takes the type, has none yet.
        let key = event_key("signups", "/payments", "p_1");
        records
            .claim(&key, "h", now - 60_000, Duration::from_secs(1), &notes)
            .await
            .unwrap();
        let status = body(&get(&query, "/events/%2Fpayments/p_1", &auth, None).await);
        // A proxy that decoded the source's slash on the way reaches the same event.
        assert_eq!(
            body(&get(&query, "/events//payments/p_1", &auth, None).await),
            status
        );
        assert_eq!(
            status["consumers"],
            json!([
                {"consumer": "notifications", "status": "pending", "attempts": 0},
                // Its holder's lock expired long ago: it is retried.
                {"consumer": "signups", "status": "retrying", "attempts": 1}
            ])
        );
    }

    #[tokio::test]
    async fn bad_event_paths_get_the_contract_error_body_after_the_key() {
        let s = setup();
        let records = MemoryIdempotency::default();
        let query = Query::new(&s.store, s.readers.clone()).with_events(&records, consumers());
        let auth = format!("Bearer {}", s.key);
        let unauthenticated = query.handle(&request("GET", "/events/%zz/x", &[])).await;
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
        for (path, status, field) in [
            (
                "/events/%zz/x",
                StatusCode::BAD_REQUEST,
                Some("/path/source"),
            ),
            (
                "/events/%FF/x",
                StatusCode::BAD_REQUEST,
                Some("/path/source"),
            ),
            (
                "/events/%20shop/x",
                StatusCode::BAD_REQUEST,
                Some("/path/source"),
            ),
            ("/events/shop/%2", StatusCode::BAD_REQUEST, Some("/path/id")),
            ("/events/shop", StatusCode::NOT_FOUND, None),
            ("/events/a/b/c", StatusCode::NOT_FOUND, None),
            ("/events/%2Fshop/", StatusCode::NOT_FOUND, None),
        ] {
            let response = get(&query, path, &auth, None).await;
            assert_eq!(response.status(), status, "{path}");
            assert_eq!(body(&response)["error"]["field"].as_str(), field, "{path}");
        }
        // Without records configured, there is no such resource.
        let plain = Query::new(&s.store, s.readers.clone());
        let response = plain
            .handle(&request(
                "GET",
                "/events/%2Fshop/x",
                &[("authorization", &auth)],
            ))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_consumers_configuration_is_checked_at_start() {
        assert_eq!(
            consumers().names().collect::<Vec<_>>(),
            ["notifications", "payments", "signups"]
        );
        assert!(Consumers::parse("").unwrap().names().next().is_none());
        assert!(Consumers::parse("payments").is_err());
        assert!(Consumers::parse("payments=payment.nope").is_err());
        assert!(Consumers::parse("Pay=payment.received").is_err());
        assert!(Consumers::parse("p=payment.received;p=user.signed_up").is_err());
        // Whitespace separates too, and empty entries are nothing.
        assert_eq!(
            Consumers::parse(";a=user.signed_up; b=user.unsubscribed\n")
                .unwrap()
                .names()
                .count(),
            2
        );
    }
}

/// A readers secret that tests edit, counting its reads.
#[derive(Debug, Clone, Default)]
struct Secret {
    json: std::sync::Arc<std::sync::Mutex<String>>,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Secret {
    fn set(&self, json: &str) {
        *self.json.lock().unwrap() = json.to_owned();
    }

    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ReadersFetch for Secret {
    async fn fetch(&self) -> Result<String, ConfigError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.json.lock().unwrap().clone())
    }
}

/// `acc_1` opened, and a readers secret holding `readers` (nothing readable yet without them).
async fn opened_with_readers(readers: Option<&str>) -> (Setup, Secret) {
    let s = setup();
    fold(&s.store, &[opened("acc_1")]).await;
    let secret = Secret::default();
    if let Some(readers) = readers {
        secret.set(readers);
    }
    (s, secret)
}

/// The query over `s`'s read models, its readers read from `secret` in the background (as deployed).
fn reading_in_background<'s>(
    s: &'s Setup,
    secret: &Secret,
) -> Query<&'s MemoryReadModels, NoRecords, Secret> {
    Query::reading(
        &s.store,
        ReadersSource::in_background(secret.clone(), readers::DEFAULT_MAX_AGE),
    )
}

/// The readers of [`setup`], as the secret holds them.
fn readers_json() -> String {
    let (_, hash) = mint("dashboard", "k1", [7; SECRET_BYTES]).unwrap();
    json!({"dashboard": {"api_keys": {"k1": hash.to_string()}}}).to_string()
}

#[tokio::test(start_paused = true)]
async fn readers_read_in_the_background_answer_503_until_read_and_no_key_is_taken_meanwhile() {
    // Given a readers secret that cannot be read yet (empty: not a readers object), read in the background.
    let (s, secret) = opened_with_readers(None).await;
    let query = reading_in_background(&s, &secret);
    let auth = format!("Bearer {}", s.key);
    let get = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        request("GET", "/accounts/acc_1", &headers)
    };

    // When requests come before the readers could be read, then each is a 503 with the error body and its
    // Retry-After, with a key or without: never served, never refused as if the key were wrong.
    let early = query.handle(&get(Some(&auth))).await;
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&early)["error"]["code"], "unavailable");
    assert!(early.headers().contains_key("retry-after"));
    assert_eq!(
        query.handle(&get(None)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Within the gap the secret is not read again per request.
    assert_eq!(secret.reads(), 1);

    // When the secret becomes readable, then the next request after the gap reads it and is served.
    secret.set(&readers_json());
    tokio::time::advance(readers::RETRY_GAP_UNREAD).await;
    assert_eq!(
        query.handle(&get(Some(&auth))).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        query.handle(&get(None)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Once read, the readers are not read again within their maximum age.
    tokio::time::advance(readers::RETRY_GAP_UNREAD * 10).await;
    assert_eq!(
        query.handle(&get(Some(&auth))).await.status(),
        StatusCode::OK
    );
    assert_eq!(secret.reads(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_first_request_waits_for_the_readers_read_started_at_cold_start() {
    let (s, secret) = opened_with_readers(Some(&readers_json())).await;
    let query = reading_in_background(&s, &secret);
    let auth = format!("Bearer {}", s.key);
    let served = query
        .handle(&request(
            "GET",
            "/accounts/acc_1",
            &[("authorization", &auth)],
        ))
        .await;
    assert_eq!(served.status(), StatusCode::OK);
    // The read started at cold start is the one the request used: no second read.
    assert_eq!(secret.reads(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_reader_key_minted_after_the_cold_start_works_at_once_and_a_removed_one_stops_within_the_max_age(
) {
    let (s, secret) = opened_with_readers(Some(&readers_json())).await;
    let query = reading_in_background(&s, &secret);
    let get = |key: &str| {
        let auth = format!("Bearer {key}");
        request("GET", "/accounts/acc_1", &[("authorization", &auth)])
    };
    assert_eq!(query.handle(&get(&s.key)).await.status(), StatusCode::OK);
    assert_eq!(secret.reads(), 1);

    // Given a new key k2 added to the secret (rotation: k1 still there), when it is used right away, then the
    // readers are read again for the key id they did not know, and it is served.
    let (k2, k2_hash) = mint("dashboard", "k2", [9; SECRET_BYTES]).unwrap();
    let (_, k1_hash) = mint("dashboard", "k1", [7; SECRET_BYTES]).unwrap();
    secret.set(
        &json!({"dashboard": {"api_keys": {"k1": k1_hash.to_string(), "k2": k2_hash.to_string()}}})
            .to_string(),
    );
    tokio::time::advance(readers::MIN_REFRESH_GAP).await;
    assert_eq!(query.handle(&get(&k2)).await.status(), StatusCode::OK);
    assert_eq!(secret.reads(), 2);

    // Unknown key ids do not read the secret per request: at most once per gap.
    let (stranger, _) = mint("dashboard", "k9", [1; SECRET_BYTES]).unwrap();
    for _ in 0..5 {
        assert_eq!(
            query.handle(&get(&stranger)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(secret.reads(), 2, "within the gap after the last read");
    // A wrong secret for a known key id is refused without reading anything.
    let (forged, _) = mint("dashboard", "k1", [8; SECRET_BYTES]).unwrap();
    assert_eq!(
        query.handle(&get(&forged)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(secret.reads(), 2);

    // Given k1 removed, when the readers are older than their maximum age, then k1 is refused and k2 still served.
    secret.set(&json!({"dashboard": {"api_keys": {"k2": k2_hash.to_string()}}}).to_string());
    tokio::time::advance(readers::DEFAULT_MAX_AGE).await;
    assert_eq!(
        query.handle(&get(&s.key)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(query.handle(&get(&k2)).await.status(), StatusCode::OK);
}
