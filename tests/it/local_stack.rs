//! The local stack end to end, through its real parts: kinesis-local and moto, every function under
//! `cargo lambda watch`, and the event source mapping emulator (`tubes-local`), all started by `scripts/dev.sh`
//! with `tests/e2e/template.yaml`. Events go in over HTTP; what the ESM emulator did is read from its log, what
//! the consumer handled from the consumer's own log, and the on-failure destination from SQS.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tubes_ingest::webhook::Secret;
use tubes_tests::LocalStack;

const DEADLINE: Duration = Duration::from_secs(180);

fn signup(user: &str, name: &str) -> Value {
    json!({"specversion": "1.0", "source": "/e2e", "type": "user.signed_up", "data": {
        "user_id": user, "email": format!("{user}@example.com"), "name": name, "marketing_opt_in": false,
        "signed_up_at": "2026-11-22T10:00:00Z"}})
}

fn payment(account: &str) -> Value {
    json!({"specversion": "1.0", "source": "/e2e", "type": "payment.received", "data": {
        "payment_id": "pay_e2e", "account_id": account, "amount": 990, "currency": "EUR",
        "payer_email": "ada@example.com"}})
}

/// POSTs one event; returns its sequence number once ingest answered 202.
async fn post(http: &reqwest::Client, stack: &LocalStack, event: &Value) -> String {
    let resp = http
        .post(format!("{}/events", stack.http))
        .header("content-type", "application/cloudevents+json")
        .header("authorization", format!("Bearer {}", stack.demo_api_key()))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status, 202, "{body}");
    body["accepted"][0]["sequence_number"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls `check` until it answers `Some`, or fails the test with `what`.
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn batches<'a>(esm: &'a [Value], function: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    esm.iter()
        .filter(move |e| e["kind"] == "batch" && e["function"] == function)
}

fn seqs(batch: &Value) -> Vec<&str> {
    batch["sequence_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn handled(stack: &LocalStack) -> Vec<(String, String, String)> {
    stack
        .json_lines("handled.jsonl")
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap().to_owned();
            (s("seq"), s("user_id"), s("name"))
        })
        .collect()
}

async fn dead_letters(stack: &LocalStack) -> Vec<Value> {
    let sqs = stack.sqs();
    let Ok(url) = sqs
        .get_queue_url()
        .queue_name("tubes-ChaosDeadLetterQueue")
        .send()
        .await
    else {
        return vec![];
    };
    let Some(url) = url.queue_url() else {
        return vec![];
    };
    // Visibility 0: reading leaves the messages in the queue, so every poll sees all of them. An error is
    // "nothing yet": the caller polls again until its deadline.
    let Ok(got) = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
    else {
        return vec![];
    };
    got.messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_behaves_like_the_event_source_mapping() {
    let stack = LocalStack::start(
        "tests/e2e/template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let http = reqwest::Client::new();

    // 0. Ingest read its sources from the emulated Secrets Manager (the template's, and the stack's demo
    // source): a signed webhook to the partner source is accepted under its webhook-id, an unsigned one is refused.
    let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = payment("acc_signed").to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let webhook = |signed: bool| {
        let mut req = http
            .post(format!("{}/sources/partner/events", stack.http))
            .header("content-type", "application/json")
            .body(body.clone());
        if signed {
            req = req
                .header("webhook-id", "msg_e2e_1")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    secret.sign("msg_e2e_1", now, body.as_bytes()),
                );
        }
        req.send()
    };
    let resp = webhook(true).await.unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(accepted["accepted"][0]["id"], "msg_e2e_1");
    let resp = webhook(false).await.unwrap();
    assert_eq!(resp.status(), 401);
    let refused: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(refused["error"]["code"], "missing_credentials");

    // 1. An event reaches its consumer, and only its consumer.
    let paid = post(&http, &stack, &payment("acc_route")).await;
    let signed = post(&http, &stack, &signup("usr_route", "ok-route")).await;
    until("the payment reaches the payments consumer", || {
        batches(&stack.json_lines("esm.jsonl"), "PaymentsFunction")
            .any(|b| seqs(b).contains(&paid.as_str()))
            .then_some(())
    })
    .await;
    until("the signup is handled by the chaos consumer", || {
        handled(&stack).iter().any(|h| h.0 == signed).then_some(())
    })
    .await;
    let esm = stack.json_lines("esm.jsonl");
    assert!(
        !batches(&esm, "ChaosFunction").any(|b| seqs(b).contains(&paid.as_str())),
        "filtered out"
    );
    assert!(
        !batches(&esm, "PaymentsFunction").any(|b| seqs(b).contains(&signed.as_str())),
        "filtered out"
    );

    // 1b. Under the real runtime, the consumer and ingest write their metrics to their log as EMF documents.
    until("the payments consumer's EMF document", || {
        (!stack
            .function_log(&[
                r#"{"_aws":{"#,
                r#""Consumer":"payments""#,
                r#""RecordsHandled":"#,
            ])
            .is_empty())
        .then_some(())
    })
    .await;
    let ingest_metrics = stack.function_log(&[
        r#"{"_aws":{"#,
        r#""Function":"ingest""#,
        r#""EventsAccepted":"#,
    ]);
    assert!(!ingest_metrics.is_empty(), "ingest's EMF document");
    // The log may prefix a line with the function's name: the document starts at its brace.
    let line = &ingest_metrics[0];
    let doc: Value = serde_json::from_str(line[line.find('{').unwrap_or(0)..].trim())
        .expect("an EMF document is JSON");
    assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Tubes");

    // 1c. One trace id, from the POST to the consumer: ingest continues the caller's traceparent, answers with
    // traceresponse, and each function's log (one file per function, JSON lines) names it; `make trace` gathers it.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = http
        .post(format!("{}/events", stack.http))
        .header("content-type", "application/cloudevents+json")
        .header("authorization", format!("Bearer {}", stack.demo_api_key()))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .body(payment("acc_traced").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let answered = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(answered.starts_with(&format!("00-{trace}-")), "{answered}");
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    let event_id = body["accepted"][0]["id"].as_str().unwrap().to_owned();
    let logs = stack.state.join("logs");
    let consumer_line = until("the payments consumer logs the traced record", || {
        let text =
            std::fs::read_to_string(logs.join("tubes-consumer-payments.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["event_id"] == event_id.as_str() && l["trace_id"] == trace)
    })
    .await;
    assert_eq!(consumer_line["function"], "tubes-consumer-payments");
    assert_eq!(consumer_line["event_type"], "payment.received");
    assert_eq!(consumer_line["timestamp"].as_str().map(str::len), Some(24));
    let lines = tubes_local::logs::read_lines(&logs).unwrap();
    let chain = tubes_local::logs::trace(&lines, &event_id);
    let functions: Vec<&str> = chain
        .iter()
        .filter_map(|l| l["function"].as_str())
        .collect();
    assert!(
        functions.contains(&"tubes-ingest") && functions.contains(&"tubes-consumer-payments"),
        "make trace finds the POST and the consumer: {functions:?}"
    );
    assert!(
        chain
            .iter()
            .any(|l| l["message"] == "answered" && l["trace_id"] == trace),
        "ingest's line for the request"
    );
    assert!(
        !std::fs::read_to_string(logs.join("tubes-ingest.log"))
            .unwrap()
            .contains("ada@example.com"),
        "no e-mail addresses in the logs"
    );

    // 2. A reported failure is redelivered from that sequence number.
    let once = post(&http, &stack, &signup("usr_once", "fail-once")).await;
    until("the fail-once record is handled on redelivery", || {
        handled(&stack).iter().any(|h| h.0 == once).then_some(())
    })
    .await;
    // The ESM logs a batch once its invocation returned, a moment after the consumer logged the record.
    let esm = until("the redelivery is in the ESM log", || {
        let esm = stack.json_lines("esm.jsonl");
        let delivered = batches(&esm, "ChaosFunction")
            .filter(|b| seqs(b).contains(&once.as_str()))
            .count();
        (delivered >= 2).then_some(esm)
    })
    .await;
    let chaos: Vec<&Value> = batches(&esm, "ChaosFunction")
        .filter(|b| seqs(b).contains(&once.as_str()))
        .collect();
    assert!(
        chaos[0]["failed"] == true,
        "first delivery reported the failure: {:?}",
        chaos[0]
    );
    assert!(
        chaos
            .iter()
            .skip(1)
            .any(|b| b["retry"] == true && seqs(b)[0] == once),
        "redelivered starting at the failed record: {chaos:?}"
    );

    // 3. A record that always fails ends in the on-failure queue after MaximumRetryAttempts (2); the records
    //    after it (same key, so same lane and order) are processed.
    let b1 = post(&http, &stack, &signup("usr_b", "ok-b1")).await;
    let bad = post(&http, &stack, &signup("usr_b", "fail-always")).await;
    let b2 = post(&http, &stack, &signup("usr_b", "ok-b2")).await;
    // 4. A function error bisects the batch down to the bad record.
    let c1 = post(&http, &stack, &signup("usr_c", "ok-c1")).await;
    let crash = post(&http, &stack, &signup("usr_c", "crash")).await;
    let c2 = post(&http, &stack, &signup("usr_c", "ok-c2")).await;
    let c3 = post(&http, &stack, &signup("usr_c", "ok-c3")).await;

    let deadline = Instant::now() + DEADLINE;
    let letters = loop {
        let letters = dead_letters(&stack).await;
        if letters.len() >= 2 {
            break letters;
        }
        assert!(
            Instant::now() < deadline,
            "both bad records reach the on-failure queue: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for bad_seq in [&bad, &crash] {
        let letter = letters
            .iter()
            .find(|l| l["KinesisBatchInfo"]["startSequenceNumber"] == bad_seq.as_str())
            .unwrap_or_else(|| panic!("no on-failure message for {bad_seq}: {letters:?}"));
        let info = &letter["KinesisBatchInfo"];
        assert_eq!(info["endSequenceNumber"], bad_seq.as_str());
        assert_eq!(info["batchSize"], 1, "only the bad record: {letter}");
        assert!(info["streamArn"]
            .as_str()
            .unwrap()
            .ends_with(":stream/tubes-EventStream"));
        assert!(info["shardId"].as_str().unwrap().starts_with("shardId-"));
        assert_eq!(
            letter["requestContext"]["condition"],
            "RetryAttemptsExhausted"
        );
        assert!(letter["requestContext"]["functionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:tubes-test-consumer"));
    }
    let wanted = [&b1, &b2, &c1, &c2, &c3];
    until("the records around the bad ones are handled", || {
        let h = handled(&stack);
        wanted
            .iter()
            .all(|s| h.iter().any(|x| &x.0 == *s))
            .then_some(())
    })
    .await;
    let h = handled(&stack);
    assert!(
        !h.iter().any(|x| x.0 == bad || x.0 == crash),
        "bad records are never handled"
    );
    let pos = |s: &str| h.iter().position(|x| x.0 == s).unwrap();
    assert!(
        pos(&b1) < pos(&b2) && pos(&c1) < pos(&c2) && pos(&c2) < pos(&c3),
        "order per key kept"
    );
    let alone_in = |esm: &[Value], s: &str| {
        batches(esm, "ChaosFunction")
            .filter(|b| seqs(b) == [s])
            .count()
    };
    // Polled: the ESM's log line of a batch may trail the on-failure message and the consumer's own log.
    let esm = until("every attempt is in the ESM log", || {
        let esm = stack.json_lines("esm.jsonl");
        (alone_in(&esm, &bad) >= 3 && alone_in(&esm, &crash) >= 3).then_some(esm)
    })
    .await;
    let alone = |s: &str| alone_in(&esm, s);
    assert_eq!(
        alone(&bad),
        3,
        "the bad record alone: first attempt + MaximumRetryAttempts (2)"
    );
    assert_eq!(
        alone(&crash),
        3,
        "the crashing record alone: first attempt + MaximumRetryAttempts (2)"
    );
    assert!(
        batches(&esm, "ChaosFunction").any(|b| {
            let s = seqs(b);
            s.len() > 1
                && s.contains(&crash.as_str())
                && b["outcome"].as_str().unwrap().contains("bisect")
        }),
        "a batch holding the crashing record and others was bisected"
    );

    // 5. ParallelizationFactor 3: several lanes per shard, each key's records in order.
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in 0..6 {
        for u in 0..5 {
            let user = format!("usr_p{u}");
            let seq = post(&http, &stack, &signup(&user, &format!("ok-p{n}"))).await;
            sent.entry(user).or_default().push(seq);
        }
    }
    until("all 30 parallel records are handled", || {
        let h = handled(&stack);
        sent.values()
            .flatten()
            .all(|s| h.iter().any(|x| &x.0 == s))
            .then_some(())
    })
    .await;
    let h = handled(&stack);
    for (user, seqs_sent) in &sent {
        let seen: Vec<&String> = h.iter().filter(|x| &x.1 == user).map(|x| &x.0).collect();
        assert_eq!(
            seen,
            seqs_sent.iter().collect::<Vec<_>>(),
            "{user}: each record once, in order"
        );
    }
    let esm = stack.json_lines("esm.jsonl");
    let lanes: BTreeSet<(String, u64)> = batches(&esm, "ChaosFunction")
        .filter(|b| {
            seqs(b)
                .iter()
                .any(|s| sent.values().flatten().any(|x| x == s))
        })
        .map(|b| {
            (
                b["shard"].as_str().unwrap().to_owned(),
                b["lane"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        lanes.iter().any(|(_, l)| *l > 0),
        "more than one lane per shard was used: {lanes:?}"
    );

    // 6. The stack survives its own faults: a killed function instance (which cargo lambda watch leaves dead)
    // and a killed mapping emulator are replaced, and the emulators keep their state.
    let killed =
        stack.signal("tubes-ingest", "-KILL") + stack.signal("tubes-test-consumer", "-KILL");
    assert!(killed >= 2, "ingest and the chaos consumer were running");
    let esm_killed = stack.signal("tubes-local", "-KILL");
    assert_eq!(esm_killed, 1, "one mapping emulator");
    // post_event retries until the replaced ingest answers 202.
    let after = stack
        .post_event(&http, &signup("usr_after_kill", "ok-after"))
        .await["sequence_number"]
        .as_str()
        .unwrap()
        .to_owned();
    until("an event sent after the kills is handled", || {
        handled(&stack).iter().any(|h| h.0 == after).then_some(())
    })
    .await;
    let dev_log = std::fs::read_to_string(stack.state.join("dev.log")).unwrap();
    assert!(
        dev_log.contains("of tubes-ingest ended; starting another"),
        "{dev_log}"
    );
    assert!(dev_log.contains("esm: it exited"), "{dev_log}");

    // 7. An instance that dies mid-invocation fails that invocation at once, as Lambda's "Runtime exited", and the
    // record is delivered again: not after the function's timeout (10 s), which cargo lambda watch alone waits.
    let dies = post(&http, &stack, &signup("usr_dies", "die-once")).await;
    let died = stack.state.join("faults").join(format!("died-{dies}"));
    let died_at = until("the instance handling it died", || {
        std::fs::metadata(&died).ok()?.modified().ok()
    })
    .await;
    until("the record is handled after its instance died", || {
        handled(&stack).iter().any(|h| h.0 == dies).then_some(())
    })
    .await;
    let waited = died_at.elapsed().unwrap_or_default();
    assert!(
        waited < Duration::from_secs(10),
        "delivered again {waited:?} after the instance died: the invocation waited for the timeout"
    );
    let ended = std::fs::read_to_string(stack.state.join("ended-instances")).unwrap_or_default();
    assert!(ended.lines().any(|l| l == "tubes-test-consumer"), "{ended}");
}
