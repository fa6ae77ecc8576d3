//! The soak: events through the whole local stack while a fault schedule runs, then a reconciliation from the
//! stores (the ledger in DynamoDB, the e-mail outbox, the dead-letter queues), not from logs.
//!
//! Workload: accounts (opened, then credits and payments in turn, each account's events sent in order, one after
//! the other's `202`) and signups (one per user). A tenth of the events are sent without an `id`, under an
//! `Idempotency-Key`; a tenth are sent twice after their `202` (the same request: a sender that never saw the
//! answer). Every answer but `202` is resent as it was.
//!
//! Faults, one every `fault_every` in turn: `kill -9` of the payments consumer, of the mapping emulator, of
//! ingest and of the notifications consumer (the stack's supervisor replaces each), and moto (DynamoDB, SQS)
//! stopped with SIGSTOP for 10 s.

// A measuring tool: a poisoned lock or a malformed event of its own making is a failed run.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::LocalStack;
use serde_json::{json, Value};

const CONCURRENCY: usize = 8;
const CREDIT: i64 = 1_000;

/// One event to send, in its account's (or user's) order.
struct Send {
    body: Value,
    /// `Idempotency-Key` instead of an `id`.
    key: Option<String>,
    /// Sent again after its 202.
    resend: bool,
}

/// What was accepted, per kind.
#[derive(Default)]
struct Accepted {
    payments: Vec<(String, String, i64)>,
    credits: Vec<(String, String, i64)>,
    users: Vec<String>,
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

fn workload(events: u64) -> Vec<Vec<Send>> {
    let accounts = (events / 25).max(4);
    let users = events / 5;
    let per_account = (events - users) / accounts;
    let mut rng = Rng(7);
    let mut lanes = Vec::new();
    let mut n = 0u64;
    let mut next = |body: Value, rng: &mut Rng| {
        n += 1;
        let without_id = rng.below(10) == 0;
        let mut body = body;
        let key = if without_id {
            Some(format!("soak-{n}"))
        } else {
            body["id"] = json!(format!("evt-{n}"));
            None
        };
        Send {
            body,
            key,
            resend: rng.below(10) == 0,
        }
    };
    for a in 0..accounts {
        let account = format!("acc_{a}");
        let mut lane = vec![next(
            json!({"specversion": "1.0", "source": "/soak", "type": "account.opened", "subject": account,
                   "data": {"account_id": account, "currency": "EUR", "opened_at": "2026-11-27T09:00:00Z"}}),
            &mut rng,
        )];
        for k in 1..per_account {
            let body = if k % 2 == 1 {
                json!({"specversion": "1.0", "source": "/soak", "type": "account.credited", "subject": account,
                       "data": {"credit_id": format!("cr_{a}_{k}"), "account_id": account, "amount": CREDIT,
                                "currency": "EUR", "credited_at": "2026-11-27T09:00:00Z"}})
            } else {
                json!({"specversion": "1.0", "source": "/soak", "type": "payment.received", "subject": account,
                       "data": {"payment_id": format!("pay_{a}_{k}"), "account_id": account,
                                "amount": 300 + rng.below(1_200), "currency": "EUR",
                                "payer_email": format!("payer{a}@soak.example.com")}})
            };
            lane.push(next(body, &mut rng));
        }
        lanes.push(lane);
    }
    for u in 0..users {
        let user = format!("usr_{u}");
        lanes.push(vec![next(
            json!({"specversion": "1.0", "source": "/soak", "type": "user.signed_up", "subject": user,
                   "data": {"user_id": user, "email": format!("{user}@soak.example.com"), "name": "Soak",
                            "signed_up_at": "2026-11-27T09:00:00Z"}}),
            &mut rng,
        )]);
    }
    lanes
}

/// POSTs until 202, resending the same request on anything else; every answer is counted in `answers`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    api_key: &str,
    send: &Send,
    answers: &Mutex<BTreeMap<u16, u64>>,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut req = http
            .post(url)
            .header("content-type", "application/cloudevents+json")
            .header("authorization", format!("Bearer {api_key}"))
            .timeout(Duration::from_secs(30))
            .body(send.body.to_string());
        if let Some(key) = &send.key {
            req = req.header("idempotency-key", key);
        }
        let status = match req.send().await {
            Ok(resp) => resp.status().as_u16(),
            Err(_) => 0,
        };
        *answers.lock().unwrap().entry(status).or_default() += 1;
        if status == 202 {
            return;
        }
        assert!(Instant::now() < deadline, "never accepted: {}", send.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn table(stack: &LocalStack, var: &str) -> String {
    std::fs::read_to_string(stack.state.join("functions.env"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{var} in functions.env"))
}

/// Every item of a table (moto), by `pk`.
async fn scan(stack: &LocalStack, table: &str) -> HashMap<String, HashMap<String, String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = stack.dynamodb();
    let mut out = HashMap::new();
    let mut start = None;
    loop {
        let Ok(page) = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
        else {
            return out;
        };
        for item in page.items() {
            let fields: HashMap<String, String> = item
                .iter()
                .filter_map(|(k, v)| match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => Some((k.clone(), s.clone())),
                    _ => None,
                })
                .collect();
            if let Some(pk) = fields.get("pk").cloned() {
                out.insert(pk, fields);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
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

/// Runs `events` events through `stack` with a fault every `fault_every` seconds, and reconciles.
pub async fn run(stack: Arc<LocalStack>, events: u64, fault_every: u64) -> Report {
    eprintln!(
        "soak: stack ready ({}); {events} events",
        stack.state.display()
    );
    let api_key = stack.demo_api_key();
    let url = format!("{}/events", stack.http);
    let http = reqwest::Client::new();
    let lanes = workload(events);
    let planned: usize = lanes.iter().map(Vec::len).sum();

    let started = Instant::now();
    let sending = Arc::new(AtomicBool::new(true));
    let faults: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let fault_task = {
        let (stack, sending, faults) = (stack.clone(), sending.clone(), faults.clone());
        tokio::spawn(async move {
            let schedule = [
                "tubes-consumer-payments",
                "tubes-local",
                "moto",
                "tubes-ingest",
                "tubes-consumer-notifications",
            ];
            let mut i = 0;
            while sending.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(fault_every)).await;
                let name = schedule[i % schedule.len()];
                i += 1;
                let hit = if name == "moto" {
                    let n = stack.signal("moto", "-STOP");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    stack.signal("moto", "-CONT");
                    n
                } else {
                    stack.signal(name, "-KILL")
                };
                eprintln!(
                    "soak: [{:.0} s] fault: {name} ({hit})",
                    started.elapsed().as_secs_f64()
                );
                *faults.lock().unwrap().entry(name).or_default() += hit as u64;
            }
        })
    };

    let answers: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let accepted: Arc<Mutex<Accepted>> = Arc::default();
    let queue = Arc::new(Mutex::new(lanes.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (queue, http, url, key) = (queue.clone(), http.clone(), url.clone(), api_key.clone());
        let (answers, accepted) = (answers.clone(), accepted.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(lane) = queue.lock().unwrap().next() else {
                    return;
                };
                for send in &lane {
                    post(&http, &url, &key, send, &answers).await;
                    if send.resend {
                        post(&http, &url, &key, send, &answers).await;
                    }
                    let d = &send.body["data"];
                    let s = |f: &str| d[f].as_str().unwrap_or_default().to_owned();
                    let mut a = accepted.lock().unwrap();
                    match send.body["type"].as_str() {
                        Some("payment.received") => a.payments.push((
                            s("payment_id"),
                            s("account_id"),
                            d["amount"].as_i64().unwrap(),
                        )),
                        Some("account.credited") => a.credits.push((
                            s("credit_id"),
                            s("account_id"),
                            d["amount"].as_i64().unwrap(),
                        )),
                        Some("user.signed_up") => a.users.push(s("email")),
                        _ => {}
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("a sender");
    }
    let sent_in = started.elapsed();
    sending.store(false, Ordering::Relaxed);
    eprintln!(
        "soak: [{:.0} s] all {planned} events accepted; waiting for the consumers",
        sent_in.as_secs_f64()
    );

    // Wait until every accepted effect is in the stores (or 15 minutes pass).
    let ledger = table(&stack, "LEDGER_TABLE");
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    let outbox = |stack: &LocalStack| stack.json_lines("outbox.jsonl");
    let quiet_deadline = Instant::now() + Duration::from_secs(900);
    let (items, mails) = loop {
        let items = scan(&stack, &ledger).await;
        let mails = outbox(&stack);
        let decided = accepted
            .payments
            .iter()
            .all(|(p, ..)| items.contains_key(&format!("payment#{p}")));
        let mailed = mails.len() >= accepted.payments.len() + accepted.users.len();
        if (decided && mailed) || Instant::now() > quiet_deadline {
            break (items, mails);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let drained_in = started.elapsed();
    fault_task.abort();
    // Its clone of the stack is dropped with it: the caller's is then the last.
    let _ = fault_task.await;

    // Reconcile from the stores.
    let mut lost = Vec::new();
    let mut doubled = Vec::new();
    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    for (credit, account, amount) in &accepted.credits {
        if !items.contains_key(&format!("credit#{account}#{credit}")) {
            lost.push(format!("credit {credit}"));
        }
        *expected.entry(account).or_default() += amount;
    }
    let mut processed = 0;
    for (payment, account, amount) in &accepted.payments {
        match items
            .get(&format!("payment#{payment}"))
            .map(|i| i["outcome"].as_str())
        {
            None => lost.push(format!("payment {payment} (never decided)")),
            Some("processed") => {
                processed += 1;
                *expected.entry(account).or_default() -= amount;
            }
            Some(_) => {}
        }
        let subject_has = |m: &Value| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.split(' ').nth(1) == Some(payment.as_str()))
        };
        match mails.iter().filter(|m| subject_has(m)).count() {
            0 => lost.push(format!("payment {payment} (no e-mail)")),
            1 => {}
            n => doubled.push(format!("payment {payment} e-mailed {n} times")),
        }
    }
    for (account, want) in &expected {
        let got = items
            .get(&format!("account#{account}"))
            .and_then(|i| i.get("balance"))
            .and_then(|b| b.parse::<i64>().ok());
        match got {
            Some(got) if got == *want => {}
            Some(got) if got < *want => {
                doubled.push(format!("{account}: balance {got}, want {want}"))
            }
            other => lost.push(format!("{account}: balance {other:?}, want {want}")),
        }
    }
    for email in &accepted.users {
        match mails.iter().filter(|m| m["to"] == email.as_str()).count() {
            0 => lost.push(format!("welcome to {email}")),
            1 => {}
            n => doubled.push(format!("{email} welcomed {n} times")),
        }
    }
    let parked = parked(&stack).await;

    let faults = faults.lock().unwrap().clone();
    let answers = answers.lock().unwrap().clone();
    Report {
        events: planned,
        payments: accepted.payments.len(),
        processed,
        credits: accepted.credits.len(),
        signups: accepted.users.len(),
        accounts: expected.len(),
        answers,
        faults,
        accepted_in: sent_in,
        applied_in: drained_in,
        lost,
        doubled,
        parked,
    }
}

/// What a soak found.
#[derive(Debug)]
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
    /// Accounts.
    pub accounts: usize,
    /// Answers by HTTP status (0: no answer).
    pub answers: BTreeMap<u16, u64>,
    /// Processes hit, per fault.
    pub faults: BTreeMap<&'static str, u64>,
    /// From the first request to the last 202.
    pub accepted_in: Duration,
    /// From the first request to every effect in the stores.
    pub applied_in: Duration,
    /// Effects missing from the stores.
    pub lost: Vec<String>,
    /// Effects applied more than once.
    pub doubled: Vec<String>,
    /// Records in dead-letter queues.
    pub parked: u64,
}

impl Report {
    /// Nothing lost, nothing doubled, nothing parked.
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.doubled.is_empty() && self.parked == 0
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
            "soak: {} events ({} payments, {} credits, {} signups, {} accounts)",
            self.events, self.payments, self.credits, self.signups, self.accounts
        )?;
        writeln!(
            f,
            "  requests        {} (answers by status: {:?}; 0 = no answer)",
            self.requests(),
            self.answers
        )?;
        writeln!(f, "  faults          {:?}", self.faults)?;
        writeln!(
            f,
            "  all accepted in {:.0} s; all applied in {:.0} s: {:.1} events/s end to end",
            self.accepted_in.as_secs_f64(),
            self.applied_in.as_secs_f64(),
            self.rate()
        )?;
        writeln!(
            f,
            "  payments        {} processed, {} refused",
            self.processed,
            self.payments - self.processed
        )?;
        writeln!(f, "  lost            {}", self.lost.len())?;
        writeln!(f, "  doubled         {}", self.doubled.len())?;
        writeln!(f, "  parked          {}", self.parked)?;
        for line in self.lost.iter().chain(&self.doubled).take(20) {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}
