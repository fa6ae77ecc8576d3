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
