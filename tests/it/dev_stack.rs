//! `make dev` as a daily tool (scripts/dev.sh, scripts/reset.sh): the emulators on loopback only, a taken port
//! refused before anything starts, state that survives a restart (streams, checkpoints, moto's tables and queues)
//! and `make reset` clearing it.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;
use tubes_tests::{as_from_a_shell, repo_root, KinesisLocal, LocalStack, Ports};

const DEADLINE: Duration = Duration::from_secs(180);

/// The local addresses of the listening TCP sockets on `port` (from /proc/net/tcp and tcp6), as hex.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is "ADDR:PORT" in hex; state 0A is LISTEN.
            let Some((addr, p)) = fields.get(1).and_then(|a| a.split_once(':')) else {
                continue;
            };
            if fields.get(3) == Some(&"0A") && u16::from_str_radix(p, 16) == Ok(port) {
                out.push(addr.to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn kinesis_local_listens_on_loopback_only() {
    let emulator = KinesisLocal::start().await;
    let plain: u16 = emulator
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addresses = listening_addresses(plain);
    // 127.0.0.1 in /proc's byte order; 0.0.0.0 or :: would be every interface.
    assert_eq!(addresses, ["0100007F"], "kinesis-local on port {plain}");
}

fn dev_sh(state: &std::path::Path, ports: Ports, extra: &[(&str, &str)]) -> Output {
    Command::new(repo_root().join("scripts/dev.sh"))
        .current_dir(repo_root())
        .env("TUBES_STATE_DIR", state)
        .env("TUBES_HTTP_PORT", ports.http.to_string())
        .env("TUBES_MOTO_PORT", ports.moto.to_string())
        .env("TUBES_KINESIS_PORT", ports.kinesis.to_string())
        .envs(extra.iter().copied())
        .output()
        .expect("scripts/dev.sh runs")
}

#[test]
fn a_taken_port_is_named_with_its_holder_and_nothing_starts() {
    let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = held.local_addr().unwrap().port();
    let state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("taken-{}", uuid::Uuid::now_v7()));
    let ports = Ports {
        moto: port,
        ..Ports::free()
    };
    let out = dev_sh(&state, ports, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let holder = format!("pid {}", std::process::id());
    assert!(
        stderr.contains(&format!(
            "port {port}, for moto (TUBES_MOTO_PORT), is taken by"
        )) && stderr.contains(&holder),
        "names the port, what it is for, and who holds it ({holder}): {stderr}"
    );
    assert!(!state.exists(), "nothing written before the check");
}

/// Polls `check` until true, or fails with `what`.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `make reset`, as a user runs it.
fn reset(state: &std::path::Path) -> Output {
    Command::new("make")
        .args(["-s", "reset"])
        .current_dir(repo_root())
        .env("TUBES_STATE_DIR", state)
        .output()
        .expect("make reset runs")
}

/// The crates a `cargo build --workspace --bins` from a shell compiles now, with where they come from (`-v`'s
/// "Compiling NAME vX (PATH)" lines; a registry crate has no path).
fn compiled_by_a_shell_build() -> Vec<String> {
    let out = as_from_a_shell(&mut Command::new("cargo"))
        .args(["build", "-v", "--workspace", "--bins"])
        .current_dir(repo_root())
        .output()
        .expect("cargo build runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo build: {stderr}");
    stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_whole_and_reset_clears_it() {
    let stack = LocalStack::start(
        "tests/e2e/template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    // The stack's build (dev.sh's, started by this test) is the one a user's next build from a shell finds: no
    // dependency compiles again (ring's build script watches cargo's per-crate variables, which a build under
    // `cargo test` would see). The workspace's own crates may, if another test touched one meanwhile.
    let dependencies: Vec<String> = compiled_by_a_shell_build()
        .into_iter()
        .filter(|c| !c.contains(" ("))
        .collect();
    assert_eq!(
        dependencies,
        Vec::<String>::new(),
        "compiled again after the stack's build"
    );
    let http = reqwest::Client::new();
    // One user's events: one partition key, so one shard, in order.
    let signup = |name: &str| {
        json!({"specversion": "1.0", "source": "/e2e", "type": "user.signed_up", "data": {
            "user_id": "usr_kept", "email": "usr_kept@example.com", "name": name, "marketing_opt_in": false,
            "signed_up_at": "2026-11-22T10:00:00Z"}})
    };
    let handled = |stack: &LocalStack, name: &str| {
        stack
            .json_lines("handled.jsonl")
            .iter()
            .filter(|h| h["name"] == name)
            .count()
    };
    stack.post_event(&http, &signup("ok-before")).await;
    until("the first signup is handled", async || {
        handled(&stack, "ok-before") == 1
    })
    .await;
    // moto's side: a table item and a queued message, written straight to the emulator.
    let sqs = stack.sqs();
    let queue = sqs
        .get_queue_url()
        .queue_name("tubes-ChaosDeadLetterQueue")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("kept")
        .send()
        .await
        .unwrap();
    stack
        .dynamodb()
        .put_item()
        .table_name("tubes-LedgerTable")
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("acc_kept".into()),
        )
        .send()
        .await
        .unwrap();

    // While it runs: a second stack on the same state is refused, and so is a reset.
    let second = dev_sh(&stack.state, Ports::free(), &[]);
    assert_eq!(
        second.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("already runs on"));
    let refused = reset(&stack.state);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(" runs on "),
        "{refused:?}"
    );
    assert!(stack.state.exists());

    let stack = stack.restart(&[]);
    // The queue still holds its message, the table its item.
    let sqs = stack.sqs();
    let messages = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(
        messages.iter().filter_map(|m| m.body()).collect::<Vec<_>>(),
        ["kept"]
    );
    let item = stack
        .dynamodb()
        .get_item()
        .table_name("tubes-LedgerTable")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("acc_kept".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(item.item.is_some(), "the table item survived the restart");
    // The stream and the mapping's checkpoint survived too: the user's next event is handled, and the one
    // before it, earlier on the same shard, is not handled again (a lost checkpoint would read the shard from
    // its start, handling it first; a lost demo key would refuse the POST).
    stack.post_event(&http, &signup("ok-after")).await;
    until("the signup after the restart is handled", async || {
        handled(&stack, "ok-after") == 1
    })
    .await;
    assert_eq!(handled(&stack, "ok-before"), 1, "handled once, not again");

    let state = stack.state.clone();
    drop(stack);
    let done = reset(&state);
    assert!(done.status.success(), "{:?}", done);
    assert!(!state.exists(), "make reset removes the state directory");
    // …and nothing else: the build and the installed tools are still there.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap();
    assert!(target.join("debug/tubes-local").exists(), "the build stays");
    assert!(
        repo_root().join(".venv/bin/moto_server").exists(),
        "the tools stay"
    );
}
