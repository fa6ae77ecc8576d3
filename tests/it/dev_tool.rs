//! `tubes-dev` (the local stack as a daily tool) on the whole local stack of `template.yaml`: `story` plays the
//! README's story and its effects are in the stores, where the consumers keep them; `look`, `tail` and `invoke`
//! show and do what they say; `send` with a bad override exits 1 with ingest's answer naming the member.

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use tubes_tests::{repo_root, LocalStack};

/// The port of an `http://127.0.0.1:PORT` endpoint.
fn port(endpoint: &str) -> &str {
    endpoint.rsplit(':').next().unwrap_or_default()
}

/// Runs the `tubes-dev` the stack built (`scripts/dev.sh` builds every binary of the workspace) on `stack`.
fn tubes_dev(stack: &LocalStack, args: &[&str]) -> Output {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), Into::into);
    Command::new(target.join("debug/tubes-dev"))
        .args(args)
        .env("TUBES_HTTP_PORT", port(&stack.http))
        .env("TUBES_MOTO_PORT", port(&stack.sqs_endpoint))
        .env("TUBES_KINESIS_PORT", port(&stack.kinesis_endpoint))
        .env("TUBES_STATE_DIR", &stack.state)
        .output()
        .expect("tubes-dev (built by the stack) runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    ddb.get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_leaves_every_consumers_effect_and_a_bad_override_is_refused_naming_the_member() {
    let stack = LocalStack::start(
        "template.yaml",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    );

    // When the story is played (it polls for its effects itself, within its timeout)…
    let story = tubes_dev(&stack, &["story", "--name", "it", "--timeout", "240"]);
    let story_text = text(&story);
    assert!(story.status.success(), "{story_text}");
    assert!(
        story_text.contains("balance 3750 EUR"),
        "the story shows the ledger: {story_text}"
    );

    // …then its effects are where the consumers keep them: the ledger (payments)…
    let ddb = stack.payments_dynamodb();
    let account = item(&ddb, "tubes-LedgerTable", "account#acc_it")
        .await
        .expect("the story's account");
    assert_eq!(account["balance"].as_n().unwrap(), "3750");
    let payment = item(&ddb, "tubes-LedgerTable", "payment#pay_it")
        .await
        .expect("the story's payment decision");
    assert_eq!(payment["outcome"].as_s().unwrap(), "processed");
    // …the users directory (signups, then unsubscribes: a tombstone)…
    let ddb = stack.dynamodb();
    assert!(item(&ddb, "tubes-UsersTable", "profile#usr_it")
        .await
        .is_some());
    let membership = item(&ddb, "tubes-UsersTable", "member#news#usr_it")
        .await
        .expect("the news membership");
    assert_eq!(membership["member"].as_bool().ok(), Some(&false));
    // …and the outbox (notifications, signups, unsubscribes).
    let mails = stack.json_lines("outbox.jsonl");
    let keys_to = |to: &str| -> Vec<String> {
        mails
            .iter()
            .filter(|m| m["to"] == to)
            .map(|m| m["idempotency_key"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let payer = keys_to("payer+it@example.com");
    assert!(
        payer.len() == 1 && payer[0].starts_with("notifications:"),
        "{payer:?}"
    );
    let reader = keys_to("reader+it@example.com");
    assert!(
        reader.iter().any(|k| k.starts_with("signups:welcome:"))
            && reader.iter().any(|k| k.starts_with("unsubscribes:")),
        "{reader:?}"
    );

    // `look` reads the same.
    let look = tubes_dev(&stack, &["look", "ledger", "acc_it"]);
    assert!(
        look.status.success() && text(&look).contains("balance 3750 EUR"),
        "{}",
        text(&look)
    );
    let missing = tubes_dev(&stack, &["look", "ledger", "acc_nobody"]);
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing));
    assert!(text(&missing).contains("acc_nobody"));

    // `tail` shows the account's events, the payments consumer's outcome included, decoded.
    let tail = tubes_dev(&stack, &["tail", "--subject", "acc_it", "--no-follow"]);
    let tail_text = text(&tail);
    assert!(tail.status.success(), "{tail_text}");
    for ty in [
        "account.opened",
        "account.credited",
        "payment.received",
        "payment.processed",
    ] {
        assert!(tail_text.contains(ty), "{ty} in {tail_text}");
    }
    assert!(!tail_text.contains("user.signed_up"), "filtered by subject");

    // `invoke` hands a sample straight to the payments function: the account exists without the stream.
    let invoke = tubes_dev(
        &stack,
        &[
            "invoke",
            "payments",
            "--sample",
            "account.opened",
            "--subject",
            "acc_invoked",
        ],
    );
    assert!(invoke.status.success(), "{}", text(&invoke));
    assert!(item(
        &stack.payments_dynamodb(),
        "tubes-LedgerTable",
        "account#acc_invoked"
    )
    .await
    .is_some());

    // `send` with a bad override: ingest refuses it, naming the member, and tubes-dev exits 1.
    let bad = tubes_dev(&stack, &["send", "payment.received", "--set", "amount=-1"]);
    let bad_text = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{bad_text}");
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("/data/amount"),
        "ingest's error body names the member: {bad_text}"
    );
    // And a good one is accepted.
    let good = tubes_dev(&stack, &["send", "payment.received", "--set", "amount=999"]);
    assert!(
        good.status.success() && text(&good).contains("202"),
        "{}",
        text(&good)
    );
}

/// `tail` follows a split: started on a one-shard stream, it shows the event written before the split from the
/// parent, then, once the parent is read to its end, the next event of the same subject from the child it went to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_a_split_from_the_parent_to_its_child() {
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};

    let kinesis = tubes_tests::KinesisLocal::start().await;
    let stream = "tubes-EventStream";
    kinesis.create_stream(stream, 1).await;
    let client = kinesis.client();
    let put = |id: &'static str| {
        let client = client.clone();
        async move {
            client
                .put_record()
                .stream_name(stream)
                .partition_key("usr_tail")
                .data(tubes_tests::signup_bytes(id, "usr_tail").into())
                .send()
                .await
                .unwrap()
                .shard_id
        }
    };
    let parent = put("evt_before_split").await;

    // The workspace's tubes-dev, built as `make dev` builds it.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), Into::into);
    let built = tubes_tests::as_from_a_shell(&mut Command::new("cargo"))
        .args(["build", "-q", "--workspace", "--bins"])
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(built.success());
    let state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tail-{}", uuid::Uuid::now_v7()));
    let mut tail = Command::new(target.join("debug/tubes-dev"))
        .args(["tail", "--subject", "usr_tail"])
        .env("TUBES_KINESIS_PORT", port(&kinesis.endpoint))
        .env("TUBES_STATE_DIR", &state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut until_line = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line with {needle} from tail; it printed: {seen:#?}"),
            }
        }
        seen.clone()
    };
    until_line("evt_before_split");

    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(parent.as_str())
        .new_starting_hash_key((u128::MAX / 2 + 1).to_string())
        .send()
        .await
        .unwrap();
    // Once the stream is active with the parent closed, the subject's next event goes to a child.
    tubes_tests::until_resharded(&client, stream, 2).await;
    let child = put("evt_after_split").await;
    assert_ne!(child, parent, "written to a child");
    let printed = until_line("evt_after_split");
    let _ = tail.kill();
    let _ = tail.wait();
    let before = printed.iter().position(|l| l.contains("evt_before_split"));
    let after = printed.iter().position(|l| l.contains("evt_after_split"));
    assert!(before < after, "in order: {printed:#?}");
    assert!(
        printed[after.unwrap()].contains(&child),
        "read from the child {child}: {printed:#?}"
    );
}
