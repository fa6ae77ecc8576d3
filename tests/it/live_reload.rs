//! `make dev` as a developer runs it: live reload on (`cargo lambda watch` starts each function's instances
//! itself and prints their lines), with `tubes-local logs split` routing every line to its function's file. The
//! other integration tests run the functions directly (`TUBES_NO_RELOAD=1`); this one checks what only live
//! reload does: the routing, the build noise filtered out, and the log level reaching the functions.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tubes_tests::LocalStack;

const DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_live_reload_each_functions_lines_reach_its_own_file_as_json() {
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

    // Each function's file holds that function's JSON lines and nothing else: no build output, no other
    // function's lines.
    for (file, function) in [
        ("tubes-ingest.log", "tubes-ingest"),
        ("tubes-consumer-payments.log", "tubes-consumer-payments"),
    ] {
        let text = lines_of(file);
        assert!(!text.is_empty(), "{file} is empty");
        for line in text.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}: not a JSON line ({e}): {line}"));
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
    // cargo's own lines (the instances are `cargo run`s) are dropped, not routed anywhere.
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains("Blocking waiting for file lock") && !text.contains("     Running `"),
            "build noise in {:?}",
            entry.file_name()
        );
    }
}
