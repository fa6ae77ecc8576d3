//! The soak: events through the whole local stack while a fault schedule runs, then a reconciliation from the
//! stores (the ledger and the users directory in DynamoDB, the e-mail outbox, the dead-letter queues), not from
//! logs.
//!
//! Workload: a few hundred accounts (opened, then credits and payments in turn) and users (a signup each, and for
//! every fourth user an unsubscribe after it). Each account's and user's events are sent in order, each after the
//! previous one's `202`; a request carries the next event of up to [`LANES_PER_REQUEST`] accounts or users (a
//! batch of distinct keys, as a busy producer sends). A tenth of the events have no `id` and rely on the
//! request's `Idempotency-Key`; a tenth of the requests are sent twice after their `202` (a sender that never saw
//! the answer: ids reused, and derived again from the same key). Every answer but `202` is resent as it was.
//!
//! Faults, one every `fault_every` seconds in turn: `kill -9` of each consumer (the projections too), of the archive, of ingest and of
//! the mapping emulator (the stack's supervisor replaces each); moto (DynamoDB, SQS; both of them: the payments consumer's
//! tables have a moto of their own, for the second core) stopped for 20 s; the stream paused
//! (the Kinesis emulator stopped) for 10 s; and, through a proxy between the functions and the stream, 5–10 s of
//! throttled `PutRecords` calls, of calls with a third of their entries failed, and of calls written but answered
//! with an error (the answer lost).
//!
//! Reconciliation: every credit applied once; every payment decided once, with the outcome its account's order
//! gives (a different outcome is a reordering) and e-mailed once; every balance equal to the accepted credits
//! minus the processed payments; every user welcomed once, on the list unless they unsubscribed, and an
//! unsubscribed user confirmed at most once; nothing in a dead-letter queue; and the event store (the archive
//! function's objects in S3) holding every record the stream holds, each exactly once; the read models showing
//! every account's balance and decided payments as the ledger has them and every user's lists as the directory
//! has them, and the query API serving them.

// A measuring tool: a poisoned lock or a malformed event of its own making is a failed run.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fault_proxy::{Fault, FaultProxy};
use crate::{free_port, scan_table as scan, LocalStack, Ports};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Concurrent senders.
const SENDERS: usize = 8;
/// Accounts or users whose next event one request carries.
pub const LANES_PER_REQUEST: usize = 10;
const CREDIT: i64 = 1_000;

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Events to send (each accepted once at least).
    pub events: u64,
    /// Seconds between faults.
    pub fault_every: u64,
    /// Release builds of the functions and the mapping emulator (`TUBES_RELEASE=1`).
    pub release: bool,
    /// Events per second the senders keep to, if any: a small soak paces itself so that the stack is still busy
    /// when the later kinds of fault come round; `None`: as fast as the stack answers.
    pub send_rate: Option<f64>,
}

/// One event, in its account's (or user's) order.
struct Event {
    body: Value,
}

/// What the stores must show for the workload.
#[derive(Default)]
struct Expected {
    /// `(credit id, account, amount)`.
    credits: Vec<(String, String, i64)>,
    /// `(payment id, account, amount, processed)`: the outcome the account's order gives.
    payments: Vec<(String, String, i64, bool)>,
    /// `(user id, e-mail, unsubscribed)`.
    users: Vec<(String, String, bool)>,
    accounts: usize,
}

/// A small deterministic generator (the same workload every run).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The lanes (one per account or user, its events in order), interleaved, and what they must leave behind.
fn workload(events: u64) -> (Vec<Vec<Event>>, Expected) {
    let users = (events * 4 / 25).max(4);
    let unsubscribing = users / 4;
    let accounts = (events / 50).clamp(4, 400);
    let per_account = (events.saturating_sub(users + unsubscribing) / accounts).max(2);
    let mut rng = Rng(7);
    let mut expected = Expected {
        accounts: accounts as usize,
        ..Expected::default()
    };
    let mut n = 0u64;
    let mut next = |mut body: Value, rng: &mut Rng| {
        n += 1;
        if rng.below(10) != 0 {
            body["id"] = json!(format!("evt-{n}"));
        }
        Event { body }
    };
    let mut account_lanes = Vec::new();
    for a in 0..accounts {
        let account = format!("acc_{a}");
        let mut lane = vec![next(
            json!({"specversion": "1.0", "source": "/soak", "type": "account.opened", "subject": account,
                   "data": {"account_id": account, "currency": "EUR", "opened_at": "2026-11-27T09:00:00Z"}}),
            &mut rng,
        )];
        let mut balance = 0;
        for k in 1..per_account {
            let body = if k % 2 == 1 {
                let credit = format!("cr_{a}_{k}");
                balance += CREDIT;
                expected
                    .credits
                    .push((credit.clone(), account.clone(), CREDIT));
                json!({"specversion": "1.0", "source": "/soak", "type": "account.credited", "subject": account,
                       "data": {"credit_id": credit, "account_id": account, "amount": CREDIT,
                                "currency": "EUR", "credited_at": "2026-11-27T09:00:00Z"}})
            } else {
                let payment = format!("pay_{a}_{k}");
                let amount = 300 + rng.below(1_200) as i64;
                let processed = balance >= amount;
                if processed {
                    balance -= amount;
                }
                expected
                    .payments
                    .push((payment.clone(), account.clone(), amount, processed));
                json!({"specversion": "1.0", "source": "/soak", "type": "payment.received", "subject": account,
                       "data": {"payment_id": payment, "account_id": account, "amount": amount,
                                "currency": "EUR", "payer_email": format!("payer{a}@soak.example.com")}})
            };
            lane.push(next(body, &mut rng));
        }
        account_lanes.push(lane);
    }
    let mut user_lanes = Vec::new();
    for u in 0..users {
        let user = format!("usr_{u}");
        let email = format!("{user}@soak.example.com");
        let mut lane = vec![next(
            json!({"specversion": "1.0", "source": "/soak", "type": "user.signed_up", "subject": user,
                   "data": {"user_id": user, "email": email, "name": "Soak", "marketing_opt_in": true,
                            "signed_up_at": "2026-11-27T09:00:00Z"}}),
            &mut rng,
        )];
        let leaves = u % 4 == 3;
        if leaves {
            lane.push(next(
                json!({"specversion": "1.0", "source": "/soak", "type": "user.unsubscribed", "subject": user,
                       "data": {"user_id": user, "email": email, "list_id": "news",
                                "unsubscribed_at": "2026-11-27T10:00:00Z"}}),
                &mut rng,
            ));
        }
        expected.users.push((user, email, leaves));
        user_lanes.push(lane);
    }
    // Interleaved: every kind of event flows all along, and the long account lanes start early.
    let mut lanes = Vec::new();
    let ratio = (user_lanes.len() / account_lanes.len().max(1)).max(1);
    let mut users = user_lanes.into_iter();
    for lane in account_lanes {
        lanes.push(lane);
        lanes.extend(users.by_ref().take(ratio));
    }
    lanes.extend(users);
    (lanes, expected)
}

/// POSTs one request until 202, resending the same request on anything else; every answer is counted.
async fn post(
    http: &reqwest::Client,
    url: &str,
    api_key: &str,
    body: &str,
    key: Option<&str>,
    answers: &Mutex<BTreeMap<u16, u64>>,
) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let mut req = http
            .post(url)
            .header("content-type", "application/cloudevents-batch+json")
            .header("authorization", format!("Bearer {api_key}"))
            .timeout(Duration::from_secs(30))
            .body(body.to_owned());
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let (status, answer) = match req.send().await {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        };
        *answers.lock().unwrap().entry(status).or_default() += 1;
        if status == 202 {
            return;
        }
        // A refusal of the request itself is the workload's bug, not a fault: resending cannot help.
        assert!(
            !(400..500).contains(&status) || status == 429,
            "refused ({status}): {answer}"
        );
        assert!(Instant::now() < deadline, "never accepted: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn env_var(stack: &LocalStack, var: &str) -> String {
    std::fs::read_to_string(stack.state.join("functions.env"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{var} in functions.env"))
}

async fn parked(stack: &LocalStack) -> u64 {
    let sqs = stack.sqs();
    let Ok(list) = sqs.list_queues().send().await else {
        return 0;
    };
    let mut total = 0;
    for url in list.queue_urls() {
        if let Ok(a) = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
        {
            total += a
                .attributes()
                .and_then(|m| {
                    m.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                })
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// The faults, in turn.
const SCHEDULE: [&str; 13] = [
    "tubes-consumer-payments",
    "tubes-local",
    "moto",
    "tubes-ingest",
    "tubes-archive",
    "throttled puts",
    "tubes-consumer-notifications",
    "stream paused",
    "partly failed puts",
    "tubes-consumer-signups",
    "lost put answers",
    "tubes-consumer-unsubscribes",
    "tubes-consumer-projections",
];

/// Runs one fault; how many processes or seconds it hit.
async fn fault(stack: &LocalStack, proxy: &FaultProxy, name: &str) -> u64 {
    let window = |fault: Fault, secs: u64| async move {
        proxy.set(fault);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        proxy.set(Fault::None);
        secs
    };
    match name {
        "moto" => {
            let n = stack.signal("moto", "-STOP");
            tokio::time::sleep(Duration::from_secs(20)).await;
            stack.signal("moto", "-CONT");
            n as u64
        }
        "stream paused" => {
            let n = stack.signal("node", "-STOP");
            tokio::time::sleep(Duration::from_secs(10)).await;
            stack.signal("node", "-CONT");
            n as u64
        }
        "throttled puts" => window(Fault::ThrottleCalls, 5).await,
        "partly failed puts" => window(Fault::FailThird("InternalFailure"), 10).await,
        "lost put answers" => window(Fault::LoseAnswers, 5).await,
        process => stack.signal(process, "-KILL") as u64,
    }
}

/// Starts the stack of `template.yaml` (kinesalite, a fault proxy between the functions and it) under
/// `parent`, runs the soak through it, stops it and reconciles.
pub async fn run(settings: Settings, parent: &std::path::Path) -> Report {
    let ports = Ports {
        kinesis: free_port(),
        // The payments consumer's tables on a moto of their own: moto answers DynamoDB on one core, one request
        // at a time, and is the soak's bottleneck (README, "Soak").
        moto_dynamodb: Some(free_port()),
        ..Ports::free()
    };
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{}", ports.kinesis)).await;
    let env = [
        ("TUBES_KINESIS", "kinesalite"),
        ("TUBES_RELEASE", if settings.release { "1" } else { "0" }),
        ("TUBES_FUNCTIONS_KINESIS_ENDPOINT", proxy.endpoint.as_str()),
        // One line per invocation, as deployed: the per-record lines of the local default would write hundreds
        // of megabytes at 100,000 events.
        ("TUBES_LOG", "info"),
        // No state kept (a fresh state directory anyway): a snapshot of moto's tables after 100,000 events would
        // hold its DynamoDB lock for a long time.
        ("TUBES_PERSIST", "0"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let parent = parent.to_owned();
    let stack = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        LocalStack::start_on("template.yaml", &parent, &env, ports)
    })
    .await
    .expect("the stack starts");
    let stack = Arc::new(stack);
    let report = soak(&stack, &proxy, &settings).await;
    // Stopping the stack blocks (it waits for its processes).
    let _ = tokio::task::spawn_blocking(move || drop(stack)).await;
    report
}

async fn soak(stack: &Arc<LocalStack>, proxy: &FaultProxy, settings: &Settings) -> Report {
    eprintln!(
        "soak: stack ready ({}); {} events",
        stack.state.display(),
        settings.events
    );
    let api_key = stack.demo_api_key();
    let url = format!("{}/events", stack.http);
    let http = reqwest::Client::new();
    let (lanes, expected) = workload(settings.events);
    let planned: usize = lanes.iter().map(Vec::len).sum();

    let started = Instant::now();
    // Progress for a person watching (indicatif draws nothing off a terminal: CI logs keep the lines below).
    let progress = ProgressBar::new(planned as u64).with_style(
        ProgressStyle::with_template(
            "soak: sent {pos}/{len} events {wide_bar} {per_sec} {elapsed}",
        )
        .expect("a valid template"),
    );
    let running = Arc::new(AtomicBool::new(true));
    let faults: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let fault_task = {
        let (stack, proxy, running, faults, progress) = (
            stack.clone(),
            proxy.clone(),
            running.clone(),
            faults.clone(),
            progress.clone(),
        );
        let every = settings.fault_every;
        tokio::spawn(async move {
            for name in SCHEDULE.iter().cycle() {
                tokio::time::sleep(Duration::from_secs(every)).await;
                if !running.load(Ordering::Relaxed) {
                    return;
                }
                let hit = fault(&stack, &proxy, name).await;
                progress.suspend(|| {
                    eprintln!(
                        "soak: [{:.0} s] fault: {name} ({hit})",
                        started.elapsed().as_secs_f64()
                    )
                });
                *faults.lock().unwrap().entry(name).or_default() += hit;
            }
        })
    };

    let answers: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let queue = Arc::new(Mutex::new(lanes.into_iter()));
    // Events handed to senders so far, for the pace (`send_rate`).
    let paced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rate = settings.send_rate;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (queue, http, url, api_key, answers, paced, progress) = (
            queue.clone(),
            http.clone(),
            url.clone(),
            api_key.clone(),
            answers.clone(),
            paced.clone(),
            progress.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut rng = Rng(s as u64 + 11);
            let mut active: Vec<std::vec::IntoIter<Event>> = Vec::new();
            for request in 0u64.. {
                // The next event of each active lane; a finished lane makes room for a new one.
                let mut batch = Vec::new();
                let mut i = 0;
                while batch.len() < LANES_PER_REQUEST {
                    if i == active.len() {
                        let Some(lane) = queue.lock().unwrap().next() else {
                            break;
                        };
                        active.push(lane.into_iter());
                    }
                    match active[i].next() {
                        Some(event) => {
                            batch.push(event.body);
                            i += 1;
                        }
                        None => {
                            active.swap_remove(i);
                        }
                    }
                }
                if batch.is_empty() {
                    return;
                }
                if let Some(rate) = rate {
                    let before = paced.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let due = started + Duration::from_secs_f64(before as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let key = batch
                    .iter()
                    .any(|e| e.get("id").is_none())
                    .then(|| format!("soak-{s}-{request}"));
                let events = batch.len() as u64;
                let body = Value::from(batch).to_string();
                post(&http, &url, &api_key, &body, key.as_deref(), &answers).await;
                progress.inc(events);
                if rng.below(10) == 0 {
                    post(&http, &url, &api_key, &body, key.as_deref(), &answers).await;
                }
            }
        }));
    }
    for s in senders {
        s.await.expect("a sender");
    }
    let accepted_in = started.elapsed();
    progress.finish_and_clear();
    eprintln!(
        "soak: [{:.0} s] all {planned} events accepted; waiting for the consumers",
        accepted_in.as_secs_f64()
    );

    // Wait until the outbox has every e-mail the workload wants, then until the stores have every effect (or the
    // deadline). The e-mails are matched one by one: a count of lines would be fooled by unsubscribe confirmations
    // (not wanted, see `reconcile`) standing in for a payment's e-mail still in flight.
    let ledger = env_var(stack, "LEDGER_TABLE");
    let users_table = env_var(stack, "USERS_TABLE");
    let deadline = Instant::now() + Duration::from_secs(900.max(settings.events / 20));
    let wanted = mails_missing(&expected, &[]) as u64;
    let waiting = ProgressBar::new(wanted).with_style(
        ProgressStyle::with_template("soak: e-mails out {pos}/{len} {wide_bar} {elapsed}")
            .expect("a valid template"),
    );
    loop {
        let missing = mails_missing(&expected, &stack.json_lines("outbox.jsonl")) as u64;
        waiting.set_position(wanted.saturating_sub(missing));
        if missing == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    waiting.finish_and_clear();
    let (items, members) = loop {
        let items = scan(&stack.payments_dynamodb(), &ledger).await;
        let complete = expected
            .payments
            .iter()
            .all(|(p, ..)| items.contains_key(&format!("payment#{p}")))
            && expected
                .credits
                .iter()
                .all(|(c, a, _)| items.contains_key(&format!("credit#{a}#{c}")));
        if complete || Instant::now() > deadline {
            break (items, scan(&stack.dynamodb(), &users_table).await);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    let applied_in = started.elapsed();
    running.store(false, Ordering::Relaxed);
    fault_task.abort();
    let _ = fault_task.await;
    proxy.set(Fault::None);
    let mails = stack.json_lines("outbox.jsonl");
    let cpu = stack.cpu_seconds();

    let mut r = Report {
        events: planned,
        payments: expected.payments.len(),
        credits: expected.credits.len(),
        signups: expected.users.len(),
        unsubscribes: expected.users.iter().filter(|u| u.2).count(),
        accounts: expected.accounts,
        answers: answers.lock().unwrap().clone(),
        faults: faults.lock().unwrap().clone(),
        accepted_in,
        applied_in,
        cpu,
        ..Report::default()
    };
    reconcile(&mut r, &expected, &items, &members, &mails);
    r.parked = parked(stack).await;
    reconcile_archive(&mut r, stack, deadline).await;
    reconcile_read_models(&mut r, stack, &items, &members, deadline).await;
    r
}

/// The read models against the ledger and the directory (the stores of record): every account's balance and
/// decided payments, every user's lists; and the query API serving them over HTTP with the demo reader's key.
/// Waits for the projections to catch up until `deadline`.
async fn reconcile_read_models(
    r: &mut Report,
    stack: &LocalStack,
    ledger: &HashMap<String, HashMap<String, String>>,
    directory: &HashMap<String, HashMap<String, String>>,
    deadline: Instant,
) {
    let table = env_var(stack, "READ_MODELS_TABLE");
    let mismatches = loop {
        let models = scan(&stack.dynamodb(), &table).await;
        let doc = |key: String| -> Option<Value> {
            serde_json::from_str(models.get(&key)?.get("doc")?).ok()
        };
        let mut mismatches = Vec::new();
        for (pk, item) in ledger {
            if let Some(account) = pk.strip_prefix("account#") {
                let want: Option<i64> = item.get("balance").and_then(|b| b.parse().ok());
                let got = doc(format!("accounts#v1#{account}"));
                let balance = got.as_ref().and_then(|d| d["balance"].as_i64());
                if balance != want {
                    mismatches.push(format!(
                        "read model: {account} balance {balance:?}, ledger {want:?}"
                    ));
                }
                for p in got
                    .iter()
                    .flat_map(|d| d["payments"].as_array().into_iter().flatten())
                {
                    let id = p["payment_id"].as_str().unwrap_or_default();
                    let decided = ledger
                        .get(&format!("payment#{id}"))
                        .and_then(|i| i.get("outcome"))
                        .map(|o| {
                            if o == "processed" {
                                "processed"
                            } else {
                                "failed"
                            }
                        });
                    if decided.is_some_and(|d| p["status"] != d) {
                        mismatches.push(format!(
                            "read model: payment {id} {}, ledger {decided:?}",
                            p["status"]
                        ));
                    }
                }
            }
        }
        for (pk, item) in directory {
            if let Some(user) = pk.strip_prefix("member#news#") {
                let member = item.get("member").is_none_or(|m| m == "true");
                let lists = doc(format!("users#v1#{user}"));
                let listed = lists
                    .as_ref()
                    .and_then(|d| d["lists"].as_array())
                    .is_some_and(|l| l.iter().any(|x| x == "news"));
                if lists.is_none() || listed != member {
                    mismatches.push(format!(
                        "read model: {user} on news {listed}, directory {member}"
                    ));
                }
            }
        }
        if mismatches.is_empty() || Instant::now() > deadline {
            break mismatches;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    r.read_models_checked = ledger.keys().filter(|k| k.starts_with("account#")).count()
        + directory
            .keys()
            .filter(|k| k.starts_with("member#news#"))
            .count();
    r.lost.extend(mismatches);

    // The query API over HTTP: an account as the ledger has it, and the contract's 404.
    let http = reqwest::Client::new();
    let key = stack.demo_read_key();
    let Some((pk, item)) = ledger.iter().find(|(k, _)| k.starts_with("account#")) else {
        return;
    };
    let account = &pk["account#".len()..];
    let get = |path: String| {
        http.get(format!("{}{path}", stack.http))
            .bearer_auth(&key)
            .send()
    };
    match get(format!("/accounts/{account}")).await {
        Ok(resp) if resp.status() == 200 && resp.headers().contains_key("etag") => {
            let bytes = resp.bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let want: Option<i64> = item.get("balance").and_then(|b| b.parse().ok());
            if body["balance"].as_i64() != want {
                r.lost.push(format!(
                    "query: {account} balance {}, ledger {want:?}",
                    body["balance"]
                ));
            }
        }
        other => r
            .lost
            .push(format!("query: GET /accounts/{account}: {other:?}")),
    }
    match get("/accounts/acc_none".into()).await {
        Ok(resp) if resp.status() == 404 => {}
        other => r.lost.push(format!(
            "query: GET /accounts/acc_none: {other:?}, want 404"
        )),
    }
}

/// The event store against the stream: every event the stream holds (ingest's and the consumers', a packed
/// record's each at its sub-sequence number, none of a pack that landed on another shard than it names) is in the
/// archive, once. Waits for the archive to catch up until `deadline` (its batching window is seconds).
async fn reconcile_archive(r: &mut Report, stack: &LocalStack, deadline: Instant) {
    type Place = (String, String, Option<u64>);
    let stream = env_var(stack, "STREAM_NAME");
    let bucket = env_var(stack, "ARCHIVE_BUCKET");
    let events: HashSet<Place> =
        crate::read_stream(&stack.kinesis(), &stream, "arn:aws:kinesis:local")
            .await
            .into_iter()
            .flat_map(|(source, records)| {
                records.into_iter().flat_map(move |rec| {
                    let (shard, seq) = (source.shard_id.clone(), rec.sequence_number.into_string());
                    tubes_platform::lambda_event::record_events(rec.data)
                        .for_shard(rec.partition_key, &shard)
                        .into_iter()
                        .map(move |(sub, _, _)| (shard.clone(), seq.clone(), sub))
                })
            })
            .collect();
    let s3 = stack.s3();
    let place = |(shard, seq, sub): &Place| match sub {
        Some(sub) => format!("{shard}/{seq}.{sub}"),
        None => format!("{shard}/{seq}"),
    };
    loop {
        let lines = crate::archived(&s3, &bucket).await;
        let mut seen: HashMap<Place, usize> = HashMap::new();
        for (_, line) in &lines {
            *seen
                .entry((
                    line.at.shard_id.clone(),
                    line.at.sequence_number.clone(),
                    line.at.sub_sequence_number,
                ))
                .or_default() += 1;
        }
        let missing: Vec<&Place> = events.iter().filter(|k| !seen.contains_key(*k)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            r.archived = lines.len();
            r.lost.extend(
                missing
                    .iter()
                    .map(|p| format!("archive: event {}", place(p))),
            );
            r.doubled.extend(
                seen.iter()
                    .filter(|(_, n)| **n > 1)
                    .map(|(p, n)| format!("archive: event {} {n} times", place(p))),
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The payment an e-mail is about: its subject names it second ("Payment pay_1_2 processed"). Other e-mails
/// give a word that names no payment.
fn payment_named(mail: &Value) -> Option<&str> {
    mail["subject"].as_str()?.split(' ').nth(1)
}

/// How many of the e-mails the workload wants (one per payment, one welcome per user) the outbox lacks.
fn mails_missing(expected: &Expected, mails: &[Value]) -> usize {
    let named: HashSet<&str> = mails.iter().filter_map(payment_named).collect();
    let welcomed: HashSet<&str> = mails
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("Welcome"))
        })
        .filter_map(|m| m["to"].as_str())
        .collect();
    let payments = expected
        .payments
        .iter()
        .filter(|(p, ..)| !named.contains(p.as_str()))
        .count();
    let users = expected
        .users
        .iter()
        .filter(|(_, email, _)| !welcomed.contains(email.as_str()))
        .count();
    payments + users
}

/// Compares the stores with what the workload must have left.
fn reconcile(
    r: &mut Report,
    expected: &Expected,
    items: &HashMap<String, HashMap<String, String>>,
    members: &HashMap<String, HashMap<String, String>>,
    mails: &[Value],
) {
    let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
    for (credit, account, amount) in &expected.credits {
        if !items.contains_key(&format!("credit#{account}#{credit}")) {
            r.lost.push(format!("credit {credit}"));
        }
        *balances.entry(account).or_default() += amount;
    }
    let mut by_subject: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut by_to: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in mails {
        if let Some(id) = payment_named(m) {
            by_subject.entry(id).or_default().push(m);
        }
        if let Some(to) = m["to"].as_str() {
            by_to.entry(to).or_default().push(m);
        }
    }
    for (payment, account, amount, want_processed) in &expected.payments {
        let outcome = items
            .get(&format!("payment#{payment}"))
            .map(|i| i.get("outcome").map(String::as_str));
        let processed = match outcome {
            None => {
                r.lost.push(format!("payment {payment} (never decided)"));
                continue;
            }
            Some(Some("processed")) => true,
            Some(_) => false,
        };
        if processed {
            r.processed += 1;
            *balances.entry(account).or_default() -= amount;
        }
        if processed != *want_processed {
            r.reordered.push(format!(
                "payment {payment}: {} where its account's order gives {}",
                if processed { "processed" } else { "refused" },
                if *want_processed {
                    "processed"
                } else {
                    "refused"
                }
            ));
        }
        match by_subject.get(payment.as_str()).map_or(0, Vec::len) {
            0 => r.lost.push(format!("payment {payment} (no e-mail)")),
            1 => {}
            n => r
                .doubled
                .push(format!("payment {payment} e-mailed {n} times")),
        }
    }
    for (account, want) in &balances {
        let got = items
            .get(&format!("account#{account}"))
            .and_then(|i| i.get("balance"))
            .and_then(|b| b.parse::<i64>().ok());
        match got {
            Some(got) if got == *want => {}
            Some(got) if got < *want => r
                .doubled
                .push(format!("{account}: balance {got}, want {want}")),
            other => r
                .lost
                .push(format!("{account}: balance {other:?}, want {want}")),
        }
    }
    for (user, email, unsubscribed) in &expected.users {
        let to_user = by_to.get(email.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let count = |prefix: &str| {
            to_user
                .iter()
                .filter(|m| m["subject"].as_str().is_some_and(|s| s.starts_with(prefix)))
                .count()
        };
        match count("Welcome") {
            0 => r.lost.push(format!("welcome to {user}")),
            1 => {}
            n => r.doubled.push(format!("welcome to {user} sent {n} times")),
        }
        // A confirmation goes out when the unsubscribe took the user off the list. The signups and unsubscribes
        // consumers read the stream independently, so the unsubscribe may be applied before the signup (which
        // then, being older, does not add the user): no confirmation then, and never two.
        match (count("You left"), unsubscribed) {
            (0, _) => {}
            (1, true) => r.confirmed += 1,
            (n, _) => r
                .doubled
                .push(format!("{user}: {n} unsubscribe confirmations")),
        }
        let member = members
            .get(&format!("member#news#{user}"))
            .and_then(|i| i.get("member"))
            .map(String::as_str);
        match (member, unsubscribed) {
            (Some("true"), false) | (Some("false"), true) => {}
            (None, _) => r.lost.push(format!("{user}'s membership")),
            (Some(m), _) => r.reordered.push(format!(
                "{user}: member {m} after {}",
                if *unsubscribed {
                    "signup, unsubscribe"
                } else {
                    "signup"
                }
            )),
        }
    }
}

/// What a soak found.
#[derive(Debug, Default)]
pub struct Report {
    /// Events sent (each accepted once at least).
    pub events: usize,
    /// Payments accepted.
    pub payments: usize,
    /// Of which the ledger processed (the rest were refused).
    pub processed: usize,
    /// Credits accepted.
    pub credits: usize,
    /// Signups accepted.
    pub signups: usize,
    /// Unsubscribes accepted.
    pub unsubscribes: usize,
    /// Of which confirmed by e-mail (an unsubscribe applied before its signup changes nothing, so confirms
    /// nothing).
    pub confirmed: usize,
    /// Accounts (each opened once).
    pub accounts: usize,
    /// Answers by HTTP status (0: no answer).
    pub answers: BTreeMap<u16, u64>,
    /// Processes or seconds hit, per fault.
    pub faults: BTreeMap<&'static str, u64>,
    /// From the first request to the last 202.
    pub accepted_in: Duration,
    /// From the first request to every effect in the stores.
    pub applied_in: Duration,
    /// Effects missing from the stores.
    pub lost: Vec<String>,
    /// Effects applied more than once.
    pub doubled: Vec<String>,
    /// Effects whose result shows events of one key applied out of order.
    pub reordered: Vec<String>,
    /// Records in dead-letter queues.
    pub parked: u64,
    /// Lines in the event store (one per record of the stream when nothing is lost or doubled).
    pub archived: usize,
    /// Accounts and memberships compared between the read models and the stores of record.
    pub read_models_checked: usize,
    /// CPU seconds per kind of process of the stack (those running at the end: a killed process's are gone).
    pub cpu: BTreeMap<String, f64>,
}

impl Report {
    /// Nothing lost, doubled, reordered or parked.
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.doubled.is_empty()
            && self.reordered.is_empty()
            && self.parked == 0
    }

    /// Requests sent, resends included (every one got an entry in `answers`).
    pub fn requests(&self) -> u64 {
        self.answers.values().sum()
    }

    /// Events per second, end to end (sent until applied).
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.applied_in.as_secs_f64()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "soak: {} events ({} accounts opened, {} credits, {} payments, {} signups, {} unsubscribes)",
            self.events,
            self.accounts,
            self.credits,
            self.payments,
            self.signups,
            self.unsubscribes
        )?;
        writeln!(
            f,
            "  requests        {} of up to {LANES_PER_REQUEST} events (answers by status: {:?}; 0 = no answer)",
            self.requests(),
            self.answers
        )?;
        writeln!(f, "  faults          {:?}", self.faults)?;
        writeln!(
            f,
            "  all accepted in {:.0} s ({:.1} events/s); all applied in {:.0} s: {:.1} events/s end to end",
            self.accepted_in.as_secs_f64(),
            self.events as f64 / self.accepted_in.as_secs_f64(),
            self.applied_in.as_secs_f64(),
            self.rate()
        )?;
        writeln!(
            f,
            "  payments        {} processed, {} refused",
            self.processed,
            self.payments.saturating_sub(self.processed)
        )?;
        writeln!(
            f,
            "  unsubscribes    {} confirmed (the others were applied before their signup)",
            self.confirmed
        )?;
        writeln!(f, "  lost            {}", self.lost.len())?;
        writeln!(f, "  doubled         {}", self.doubled.len())?;
        writeln!(f, "  reordered       {}", self.reordered.len())?;
        writeln!(f, "  parked          {}", self.parked)?;
        writeln!(f, "  archived        {} events", self.archived)?;
        writeln!(
            f,
            "  read models     {} accounts and memberships checked against the ledger and directory",
            self.read_models_checked
        )?;
        let mut cpu: Vec<_> = self.cpu.iter().filter(|(_, s)| **s >= 1.0).collect();
        cpu.sort_by(|a, b| b.1.total_cmp(a.1));
        let cpu: Vec<String> = cpu.iter().map(|(n, s)| format!("{n} {s:.0}")).collect();
        writeln!(f, "  CPU seconds     {}", cpu.join(", "))?;
        for line in self
            .lost
            .iter()
            .chain(&self.doubled)
            .chain(&self.reordered)
            .take(20)
        {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// One account credited 1,000 then paid 800 and 500 (its order processes the first, refuses the second), and
    /// one user who signed up and stayed.
    fn expected() -> Expected {
        Expected {
            credits: vec![("cr".into(), "acc".into(), 1_000)],
            payments: vec![
                ("p1".into(), "acc".into(), 800, true),
                ("p2".into(), "acc".into(), 500, false),
            ],
            users: vec![("usr".into(), "usr@x.example".into(), false)],
            accounts: 1,
        }
    }

    fn mails() -> Vec<Value> {
        vec![
            json!({"to": "payer@x.example", "subject": "Payment p1 processed"}),
            json!({"to": "payer@x.example", "subject": "Payment p2 refused"}),
            json!({"to": "usr@x.example", "subject": "Welcome to tubes"}),
        ]
    }

    fn stores(p1: &str, p2: &str, balance: &str) -> HashMap<String, HashMap<String, String>> {
        HashMap::from([
            ("credit#acc#cr".to_owned(), item(&[])),
            ("payment#p1".to_owned(), item(&[("outcome", p1)])),
            ("payment#p2".to_owned(), item(&[("outcome", p2)])),
            ("account#acc".to_owned(), item(&[("balance", balance)])),
        ])
    }

    fn members() -> HashMap<String, HashMap<String, String>> {
        HashMap::from([("member#news#usr".to_owned(), item(&[("member", "true")]))])
    }

    #[test]
    fn stores_that_match_the_order_reconcile() {
        let mut r = Report::default();
        reconcile(
            &mut r,
            &expected(),
            &stores("processed", "failed", "200"),
            &members(),
            &mails(),
        );
        assert!(r.ok(), "{r}");
        assert_eq!(r.processed, 1);
    }

    #[test]
    fn outcomes_against_the_accounts_order_are_reordered_and_a_second_mail_is_doubled() {
        // p2 processed and p1 refused: balances still add up (1,000 − 500), but not in the account's order.
        let mut r = Report::default();
        let mut mails = mails();
        mails.push(json!({"to": "usr@x.example", "subject": "Welcome to tubes"}));
        reconcile(
            &mut r,
            &expected(),
            &stores("failed", "processed", "500"),
            &members(),
            &mails,
        );
        assert_eq!(r.reordered.len(), 2, "{r}");
        assert!(r.lost.is_empty(), "{r}");
        assert_eq!(r.doubled, vec!["welcome to usr sent 2 times".to_owned()]);
    }

    #[test]
    fn a_missing_decision_and_a_short_balance_are_lost_or_doubled() {
        let mut r = Report::default();
        let mut items = stores("processed", "failed", "100");
        items.remove("payment#p2");
        reconcile(&mut r, &expected(), &items, &members(), &mails());
        assert_eq!(r.lost, vec!["payment p2 (never decided)".to_owned()]);
        assert_eq!(r.doubled, vec!["acc: balance 100, want 200".to_owned()]);
    }

    #[test]
    fn a_confirmation_does_not_stand_in_for_a_payments_mail_still_in_flight() {
        // As many lines as wanted e-mails, but one is an unsubscribe confirmation: p2's e-mail is still missing.
        let mut mails = mails();
        assert_eq!(mails_missing(&expected(), &mails), 0);
        mails.remove(1);
        mails.push(json!({"to": "usr@x.example", "subject": "You left news"}));
        assert_eq!(mails_missing(&expected(), &mails), 1);
        mails.retain(|m| m["subject"] != "Welcome to tubes");
        assert_eq!(mails_missing(&expected(), &mails), 2);
    }
}
