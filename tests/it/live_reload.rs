//! `make dev` as a developer runs it: live reload on. Each function's instances write their JSON lines to its own
//! file, and a saved source file rebuilds the workspace and restarts only the functions whose binaries changed
//! (scripts/dev.sh). The other integration tests run without reload (`TUBES_NO_RELOAD=1`).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tubes_tests::{repo_root, LocalStack};

const DEADLINE: Duration = Duration::from_secs(300);

/// Polls `check` until it answers true, or fails with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_logs_to_its_own_file_and_a_save_reloads_only_its_function() {
    let stack = LocalStack::start_with_env(
        "tests/e2e/template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        &[("TUBES_NO_RELOAD", "0")],
    );
    let http = reqwest::Client::new();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let event = json!({"specversion": "1.0", "source": "/e2e", "type": "payment.received",
        "traceparent": format!("00-{trace}-00f067aa0ba902b7-01"),
        "data": {"payment_id": "pay_live", "account_id": "acc_live", "amount": 990, "currency": "EUR",
            "payer_email": "ada@example.com"}});
    let accepted = stack.post_event(&http, &event).await;
    let event_id = accepted["id"].as_str().unwrap().to_owned();

    let logs = stack.state.join("logs");
    let lines_of = |file: &str| std::fs::read_to_string(logs.join(file)).unwrap_or_default();
    let deadline = Instant::now() + DEADLINE;
    // The consumer's own line about the record: DEBUG, so the level the stack sets reached the function.
    loop {
        let found = lines_of("tubes-consumer-payments.log")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["event_id"] == event_id.as_str()
                    && l["trace_id"] == trace
                    && l["level"] == "DEBUG"
            });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the payments consumer's DEBUG line about {event_id} never reached its file; logs: {:?}",
            std::fs::read_dir(&logs).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each function's file holds that function's JSON lines (and its EMF documents) and nothing else: no build
    // output, no other function's lines.
    for (file, function) in [
        ("tubes-ingest.log", "tubes-ingest"),
        ("tubes-consumer-payments.log", "tubes-consumer-payments"),
    ] {
        let text = lines_of(file);
        assert!(!text.is_empty(), "{file} is empty");
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}: not a JSON line ({e}): {line}"));
            if parsed.get("_aws").is_some() {
                continue; // an EMF document: metrics, in the function's log as in CloudWatch Logs
            }
            assert_eq!(parsed["function"], function, "{file}: {line}");
            assert_eq!(
                parsed["timestamp"].as_str().map(str::len),
                Some(24),
                "{file}: {line}"
            );
        }
    }
    // Ingest's lines for the request: the event (DEBUG) with the trace it carried, and the request's answer.
    let ingest = lines_of("tubes-ingest.log");
    let ingest_lines: Vec<Value> = ingest
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let accepted_line = ingest_lines
        .iter()
        .find(|l| l["message"] == "accepted" && l["event_id"] == event_id.as_str())
        .unwrap_or_else(|| panic!("ingest's line for {event_id}: {ingest}"));
    assert_eq!(accepted_line["trace_id"], trace);
    assert!(
        ingest_lines.iter().any(|l| l["message"] == "answered"
            && l["status"] == 202
            && l["requestId"] == accepted_line["requestId"]),
        "ingest's answer to the request: {ingest}"
    );
    assert!(!ingest.contains("ada@example.com"), "no addresses in logs");

    // A save in one function's crate (its source touched: cargo rebuilds it) gives that function new instances
    // and leaves the others running.
    let consumer_before = stack.pids("tubes-test-consumer");
    let payments_before = stack.pids("tubes-consumer-payments");
    assert!(!consumer_before.is_empty() && !payments_before.is_empty());
    std::fs::File::options()
        .append(true)
        .open(repo_root().join("tests/consumer/src/main.rs"))
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    until("new instances of tubes-test-consumer", || {
        let now = stack.pids("tubes-test-consumer");
        now.len() == consumer_before.len() && now.iter().all(|p| !consumer_before.contains(p))
    })
    .await;
    // The script says so once it has started them all (the line follows the new PIDs).
    let reloaded = |log: &str| log.contains("reload: new instances of");
    until("the reload said", || {
        reloaded(&std::fs::read_to_string(stack.state.join("dev.log")).unwrap_or_default())
    })
    .await;
    let dev_log = std::fs::read_to_string(stack.state.join("dev.log")).unwrap();
    assert!(
        dev_log.contains("reload: new instances of tubes-test-consumer\n"),
        "only the touched function reloads: {dev_log}"
    );
    assert_eq!(
        stack.pids("tubes-consumer-payments"),
        payments_before,
        "payments was not touched: its instances keep running"
    );
    // The new instances handle the next event for them.
    let signup = json!({"specversion": "1.0", "source": "/e2e", "type": "user.signed_up", "data": {
        "user_id": "usr_reload", "email": "usr_reload@example.com", "name": "after-reload",
        "marketing_opt_in": false, "signed_up_at": "2026-11-22T10:00:00Z"}});
    stack.post_event(&http, &signup).await;
    until("the reloaded consumer handles an event", || {
        stack
            .json_lines("handled.jsonl")
            .iter()
            .any(|h| h["user_id"] == "usr_reload")
    })
    .await;
}
