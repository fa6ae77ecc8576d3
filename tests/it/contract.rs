//! `openapi.yaml`, the API contract, against the code and against the running service.
//!
//! - Without a stack: the spec is valid OpenAPI 3.1 and documents, per status, exactly the error codes ingest
//!   defines (`tubes_ingest::error::codes`), so the two cannot drift apart silently.
//! - Against the real local stack (`scripts/dev.sh` with `template.yaml`, a signed source configured):
//!   schemathesis generates requests from the spec and checks that every answer is documented (status, content
//!   type, body schema, headers), that none is a 5xx, that schema-invalid requests are refused and that other
//!   methods get `405` with `Allow`. Two runs: as the spec stands, which mostly exercises signatures (any
//!   `webhook-*` header makes a request signed), and with those optional headers left out, which exercises the
//!   body rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tubes_ingest::credentials::api_key::{mint, SECRET_BYTES};
use tubes_tests::{repo_root, LocalStack};

/// The spec, relative to the repository root.
const SPEC: &str = "openapi.yaml";

/// The spec's example source `acme`, with an API key and a signing secret, allowed everything a producer may send.
/// Schemathesis sends the key with every request, so the body rules are reached; the `webhook-*` headers it
/// generates make a request signed, and so `401` (no generator can produce an HMAC).
fn sources() -> (String, String) {
    let (key, hash) = mint("acme", "k1", [7; SECRET_BYTES]).unwrap();
    let sources = serde_json::json!({"acme": {
        "api_keys": {"k1": hash.to_string()},
        "signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "event_types": ["*"], "ce_sources": ["*"]}});
    (key, sources.to_string())
}

/// "Every documented response, no undocumented one, no 5xx", schema-invalid requests refused, other methods 405.
/// `positive_data_acceptance` is left out: the spec cannot promise that every schema-valid event is accepted
/// (`subject` must equal the data's aggregate id, a cross-field rule JSON Schema cannot state; signatures are
/// HMACs a generator cannot produce; `1.0` is a JSON Schema integer but not an amount; an e-mail's local part is
/// at most 64 characters, which a pattern without look-ahead cannot say).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_schema_conformance,response_headers_conformance,negative_data_rejection,unsupported_method,\
    allow_header_conformance";

/// `413` is how ingest refuses a batch over `maxItems`, and it is documented: a rejection like the others. No
/// crash cache (`.schemathesis/`): the report says what failed.
const CONFIG: &str = r#"[cache]
enabled = false

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 413, 415, 422]
"#;

/// Schemathesis hooks. `TUBES_CONTRACT_UNSIGNED=1` drops the optional `webhook-*` header parameters. A `500` that
/// is the emulator's own (text/plain; ingest's bodies are JSON) is sent once more: CI saw one, without any error of
/// the function, on a loaded machine. And cases
/// whose body on the wire is not UTF-8 are dropped unless they are sent as CloudEvents: for a text-like content
/// type (`application/json`, `text/*`, …) `cargo lambda watch` answers those with its own `500` (a `text/plain`
/// problem body) before the function sees them, an emulator limit, not the contract's. That is what made CI red
/// once: a generated case sent such bytes under a content type the earlier filter did not look at. Ingest's own
/// answer to them (`400 invalid_utf8`) is checked through the stack below, under a content type the emulator passes.
const HOOKS: &str = r#"
import os

import schemathesis


@schemathesis.hook
def before_load_schema(context, raw_schema):
    if os.environ.get("TUBES_CONTRACT_UNSIGNED") != "1":
        return
    components = raw_schema.get("components", {}).get("parameters", {})

    def resolve(parameter):
        ref = parameter.get("$ref", "")
        return components.get(ref.rsplit("/", 1)[-1], {}) if ref else parameter

    for item in raw_schema["paths"].values():
        for operation in item.values():
            operation["parameters"] = [
                p for p in operation.get("parameters", [])
                if not (resolve(p).get("in") == "header" and resolve(p).get("name", "").startswith("webhook-"))
            ]


PASSED_AS_BYTES = ("application/cloudevents+json", "application/cloudevents-batch+json")
EMULATOR_500 = b'"type":"https://httpstatuses.com/500"'


def emulator_500(response):
    content_type = (response.headers.get("content-type") or [""])[0]
    return response.status_code == 500 and content_type.startswith("text/plain") and EMULATOR_500 in response.content


@schemathesis.hook
def after_call(context, case, response):
    # `cargo lambda watch`'s own 500 (a text/plain problem body; ingest answers JSON, always) when one of its
    # instances does not answer in time on a loaded machine: the same request once more, and logged. A 500 that
    # comes back, or any 500 of ingest's, fails the run as before.
    if not emulator_500(response):
        return
    import sys

    import requests
    from schemathesis.core.transport import Response

    print(f"emulator 500, request sent again: {response.request.method} {response.request.url}", file=sys.stderr)
    again = Response.from_requests(requests.Session().send(response.request, timeout=180), verify=True)
    for slot in Response.__slots__:
        if hasattr(again, slot):
            setattr(response, slot, getattr(again, slot))


@schemathesis.hook
def filter_case(context, case):
    # What would go on the wire: `json=` is serialised as ASCII by requests, `data=` is sent as is.
    wire = case.as_transport_kwargs(base_url="http://127.0.0.1")
    data = wire.get("data")
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, (bytes, bytearray)):
        return True
    try:
        bytes(data).decode("utf-8")
        return True
    except UnicodeDecodeError:
        headers = {k.lower(): v for k, v in (wire.get("headers") or {}).items()}
        media_type = str(headers.get("content-type", "")).split(";")[0].strip().lower()
        return media_type in PASSED_AS_BYTES
"#;

/// Validates the spec with `openapi-spec-validator` and prints it as JSON (`yaml.safe_load`, as schemathesis reads it).
const LOAD_SPEC: &str = r#"
import json, sys, yaml
from openapi_spec_validator import validate
with open(sys.argv[1]) as f:
    spec = yaml.safe_load(f)
validate(spec)
json.dump(spec, sys.stdout)
"#;

/// A tool installed by `scripts/bootstrap.sh` into `.venv`.
fn venv(bin: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(bin);
    assert!(
        path.exists(),
        "{} is missing: run `make bootstrap` (scripts/bootstrap.sh) first",
        path.display()
    );
    path
}

/// The spec as JSON, once it is known to be valid OpenAPI.
fn spec() -> Value {
    let out = Command::new(venv("python"))
        .arg("-c")
        .arg(LOAD_SPEC)
        .arg(repo_root().join(SPEC))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{SPEC} is not valid OpenAPI:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the spec as JSON")
}

/// Follows a local `$ref`.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local reference");
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} resolves")),
            )
        }
        None => value,
    }
}

/// The `code` enum of an error response (`allOf: [Error, {properties: {error: {properties: {code: {enum}}}}}]`).
fn error_codes(spec: &Value, response: &Value) -> BTreeSet<String> {
    let schema = resolve(
        spec,
        &resolve(spec, response)["content"]["application/json"]["schema"],
    );
    let all_of = schema["allOf"]
        .as_array()
        .expect("an error schema is allOf");
    assert_eq!(
        resolve(spec, &all_of[0]),
        &spec["components"]["schemas"]["Error"]
    );
    all_of[1]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .expect("a code enum")
        .iter()
        .map(|c| c.as_str().expect("a string code").to_owned())
        .collect()
}

/// The operations tagged `tag`, with their paths.
fn operations<'a>(spec: &'a Value, tag: &str) -> Vec<(&'a String, &'a Value)> {
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .values()
                .map(move |op| (path, op))
        })
        .filter(|(_, op)| {
            op["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == tag))
        })
        .collect()
}

#[test]
fn the_spec_documents_every_error_code_of_the_query_api_and_no_other() {
    let spec = spec();
    let operations = operations(&spec, "queries");
    assert_eq!(
        operations.len(),
        3,
        "GET /accounts/{{id}}, GET /users/{{id}} and GET /events/{{source}}/{{id}}"
    );
    let mut from_code: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for (status, code) in tubes_query::error::codes() {
        from_code
            .entry(status.as_u16())
            .or_default()
            .insert(code.to_owned());
    }
    for (path, op) in operations {
        assert_eq!(
            op["security"][0]["ReadKey"],
            serde_json::json!([]),
            "{path}: a reader's key"
        );
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.contains_key("200") && responses.contains_key("304"),
            "{path}"
        );
        let mut documented: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        for (status, response) in responses {
            let status: u16 = status.parse().expect("a numeric status");
            if status >= 400 {
                documented
                    .entry(status)
                    .or_default()
                    .extend(error_codes(&spec, response));
            }
        }
        // 405 has no operation to hang on: the tag's description says it.
        let mut expected = from_code.clone();
        expected.remove(&405);
        assert_eq!(documented, expected, "error codes documented for {path}");
    }
}

fn strings(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_spec_documents_every_error_code_of_ingest_and_no_other() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let mut from_code: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for (status, code) in tubes_ingest::error::codes() {
        from_code
            .entry(status.as_u16())
            .or_default()
            .insert(code.to_owned());
    }

    // Per status, the codes of every operation's error responses, and the 405 every path shares.
    let mut documented: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    let operations = operations(&spec, "events");
    assert_eq!(
        operations.len(),
        3,
        "POST /events, POST /sources/{{source}}/events and POST /iam/events"
    );
    for (path, op) in operations {
        let responses = op["responses"].as_object().expect("responses");
        for success in ["202", "207"] {
            assert!(
                responses.contains_key(success),
                "{path} documents {success}"
            );
        }
        for (status, response) in responses {
            let status: u16 = status.parse().expect("a numeric status");
            if status >= 400 {
                documented
                    .entry(status)
                    .or_default()
                    .extend(error_codes(&spec, response));
            }
        }
        // Every error status of the code, but 405 (no operation to hang it on) and, on a path without
        // parameters, 404 (a fixed route always exists).
        let expected: BTreeSet<u16> = from_code
            .keys()
            .copied()
            .filter(|s| *s != 405 && (*s != 404 || path.contains('{')))
            .collect();
        let got: BTreeSet<u16> = responses
            .keys()
            .filter_map(|s| s.parse().ok())
            .filter(|s| *s >= 400)
            .collect();
        assert_eq!(got, expected, "error statuses documented for {path}");
    }
    let not_allowed = &spec["components"]["responses"]["MethodNotAllowed"];
    documented
        .entry(405)
        .or_default()
        .extend(error_codes(&spec, not_allowed));
    assert_eq!(not_allowed["headers"]["Allow"]["schema"]["const"], "POST");
    let statuses: BTreeSet<u16> = documented.keys().chain(from_code.keys()).copied().collect();
    let empty = BTreeSet::new();
    let drift: Vec<String> = statuses
        .into_iter()
        .filter_map(|s| {
            let (spec_codes, code_codes) = (
                documented.get(&s).unwrap_or(&empty),
                from_code.get(&s).unwrap_or(&empty),
            );
            let missing: Vec<&String> = code_codes.difference(spec_codes).collect();
            let unknown: Vec<&String> = spec_codes.difference(code_codes).collect();
            (!missing.is_empty() || !unknown.is_empty())
                .then(|| format!("{s}: not documented {missing:?}, not in the code {unknown:?}"))
        })
        .collect();
    assert!(
        drift.is_empty(),
        "{SPEC} must document, per status, exactly the codes of tubes_ingest::error::codes():\n{}",
        drift.join("\n")
    );

    // Violations in `details` carry validation codes (400 or 422); a partly written batch, the write's codes.
    let schemas = &spec["components"]["schemas"];
    let violation_codes = strings(&schemas["Violation"]["properties"]["code"]["enum"]);
    let validation: BTreeSet<String> = [400, 422]
        .iter()
        .flat_map(|s| from_code[s].clone())
        .collect();
    assert!(
        violation_codes.is_subset(&validation),
        "Violation codes not defined: {:?}",
        violation_codes.difference(&validation).collect::<Vec<_>>()
    );
    // Refused events in `details` carry the policy's codes (403).
    let refusal_codes = strings(&schemas["Refusal"]["properties"]["code"]["enum"]);
    let forbidden: BTreeSet<String> = from_code[&403].clone();
    assert!(
        !refusal_codes.is_empty() && refusal_codes.is_subset(&forbidden),
        "Refusal codes not defined under 403: {:?}",
        refusal_codes.difference(&forbidden).collect::<Vec<_>>()
    );
    let write_failures =
        strings(&schemas["FailedEvent"]["properties"]["error"]["properties"]["code"]["enum"]);
    let retryable: BTreeSet<String> = [429, 503]
        .iter()
        .flat_map(|s| from_code[s].clone())
        .collect();
    // Every retryable answer but one is a write's: `sources_unavailable` refuses the request before anything is
    // written (ingest has not read its sources yet), so no event of a 207 carries it.
    let before_writing: BTreeSet<String> = ["sources_unavailable".to_owned()].into();
    assert_eq!(
        write_failures,
        retryable
            .difference(&before_writing)
            .cloned()
            .collect::<BTreeSet<_>>()
    );
    assert!(retryable.is_superset(&before_writing), "{retryable:?}");
}

/// POSTs `body` as JSON, with the API key `key` if given; the answer's status, content type and body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &str,
) -> Option<(u16, String, Value)> {
    post_as(http, url, key, "application/json", body.as_bytes()).await
}

/// POSTs raw `body` bytes under `content_type`, with the API key `key` if given; the answer's status, content
/// type and body.
async fn post_as(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Option<(u16, String, Value)> {
    let mut request = http.post(url).header("content-type", content_type);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let resp = request.body(body.to_vec()).send().await.ok()?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::from_slice(&resp.bytes().await.ok()?).unwrap_or(Value::Null);
    Some((status, content_type, body))
}

/// Runs schemathesis against `base` on the operations tagged `tag`; panics with its output unless every check
/// passed. Returns its summary.
fn schemathesis(base: &str, dir: &Path, key: &str, tag: &str, unsigned: bool) -> String {
    let view = match (tag, unsigned) {
        ("events", true) => "unsigned",
        ("events", false) => "signed",
        _ => tag,
    };
    let started = Instant::now();
    let out = Command::new(venv("st"))
        .current_dir(dir)
        .env("SCHEMATHESIS_HOOKS", dir.join("hooks.py"))
        .env("TUBES_CONTRACT_UNSIGNED", if unsigned { "1" } else { "0" })
        .args(["--no-color", "--config-file"])
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(repo_root().join(SPEC))
        .args(["--url", base, "--checks", CHECKS, "--include-tag", tag])
        .arg("--header")
        .arg(format!("Authorization: Bearer {key}"))
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "100",
            "--seed",
            "1",
        ])
        .args(["--generation-database", "none", "--workers", "1"])
        // Generous: `cargo lambda watch` rebuilds and restarts a function when a source file changes, and a
        // request waits for that (a 5xx or a refused request would still fail the run at once).
        .args(["--request-timeout", "180"])
        .args(["--report", "ndjson", "--report-dir"])
        .arg(dir.join(format!("report-{view}")))
        .output()
        .expect("schemathesis runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // What the functions and the emulator said about failed invocations, for the report.
        let logs = dir.parent().unwrap().join("logs");
        let log: String = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        panic!(
            "schemathesis ({view}) found answers outside {SPEC} ({}):\n{output}\nERROR lines of the functions' logs (last 20):\n{}",
            out.status,
            errors[errors.len().saturating_sub(20)..].join("\n")
        );
    }
    let cases = output
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("?")
        .trim();
    format!(
        "{view}: {cases} in {:.1} s",
        started.elapsed().as_secs_f64()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_answers_only_what_the_spec_documents() {
    let (key, sources) = sources();
    let stack = LocalStack::start_with_env(
        "template.yaml",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &[("TUBES_SOURCES", &sources)],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    // Ready when ingest itself answers (its first invocation starts the function).
    let events = format!("{}/events", stack.http);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some((422, _, _)) = post(&http, &events, Some(&key), "{}").await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not answer on {events}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What OpenAPI cannot list: any other path is ingest's own 404 with the one error body.
    for path in ["/event", "/events/x", "/sources/acme", "/sources//events"] {
        let (status, content_type, body) =
            post(&http, &format!("{}{path}", stack.http), None, "{}")
                .await
                .unwrap();
        assert_eq!(
            (status, content_type.as_str()),
            (404, "application/json"),
            "{path}"
        );
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }

    // The bytes schemathesis is kept from sending under a text-like content type: ingest refuses them itself.
    // Closed: without a credential, nothing is even read.
    let (status, _, body) = post(&http, &events, None, "{}").await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "missing_credentials", "{body}");

    let (status, content_type, body) = post_as(
        &http,
        &events,
        Some(&key),
        "application/cloudevents+json",
        b"{\"specversion\": \"1.0\", \"source\": \"\xff\"}",
    )
    .await
    .unwrap();
    assert_eq!((status, content_type.as_str()), (400, "application/json"));
    assert_eq!(body["error"]["code"], "invalid_utf8", "{body}");

    let dir = stack.state.join("schemathesis");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hooks.py"), HOOKS).unwrap();
    std::fs::write(dir.join("schemathesis.toml"), CONFIG).unwrap();
    let signed = schemathesis(&stack.http, &dir, &key, "events", false);
    let unsigned = schemathesis(&stack.http, &dir, &key, "events", true);
    // The query API with the demo reader's key: mostly 404s (no documents yet) and refused ids, and a 200 for
    // the account opened here.
    let opened = serde_json::json!({"specversion": "1.0", "source": "/acme", "type": "account.opened",
        "subject": "acc_42", "data": {"account_id": "acc_42", "currency": "EUR",
        "opened_at": "2026-11-28T09:00:00Z"}});
    let (status, _, body) = post(&http, &events, Some(&key), &opened.to_string())
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let read_key = stack.demo_read_key();
    let account = format!("{}/accounts/acc_42", stack.http);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let resp = http
            .get(&account)
            .bearer_auth(&read_key)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the account never reached the read model: {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let queries = schemathesis(&stack.http, &dir, &read_key, "queries", true);
    eprintln!(
        "schemathesis against {}: {signed}; {unsigned}; {queries}",
        stack.http
    );
}
