use serde_json::{json, Value};
use tubes_platform::dead_letters::LogDeadLetters;
use tubes_platform::lambda_event::batch_of;
use tubes_platform::read_model::{document_key, MemoryReadModels, ReadModelStore, DEFAULT_VERSION};
use tubes_platform::Harness;

use super::accounts::{AccountStatus, PaymentStatus};
use super::*;

fn event(id: &str, ty: &str, subject: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/bank", "type": ty, "subject": subject,
           "time": "2026-11-22T10:00:00Z", "data": data})
}

fn opened(account: &str) -> Value {
    event(
        &format!("open-{account}"),
        "account.opened",
        account,
        json!({"account_id": account, "currency": "EUR", "opened_at": "2026-11-22T09:00:00Z"}),
    )
}

fn credited(id: &str, account: &str, credit: &str, amount: i64) -> Value {
    event(
        id,
        "account.credited",
        account,
        json!({"credit_id": credit, "account_id": account, "amount": amount, "currency": "EUR",
               "credited_at": "2026-11-22T09:30:00Z"}),
    )
}

fn payment(ty: &str, account: &str, payment: &str, amount: i64) -> Value {
    let mut data = json!({"payment_id": payment, "account_id": account, "amount": amount, "currency": "EUR",
                          "payer_email": "ada@example.com"});
    match ty {
        "payment.processed" => data["processed_at"] = json!("2026-11-22T10:00:01Z"),
        "payment.failed" => {
            data["failed_at"] = json!("2026-11-22T10:00:01Z");
            data["reason"] = json!("insufficient_funds");
        }
        _ => {}
    }
    event(&format!("{ty}-{payment}"), ty, account, data)
}

fn user(ty: &str, id: &str, user: &str, at: &str, opt_in: bool) -> Value {
    let data = if ty == "user.signed_up" {
        json!({"user_id": user, "email": "ada@example.com", "name": "Ada", "marketing_opt_in": opt_in,
               "signed_up_at": at})
    } else {
        json!({"user_id": user, "email": "ada@example.com", "list_id": "news", "unsubscribed_at": at})
    };
    event(id, ty, user, data)
}

async fn account(store: &MemoryReadModels, id: &str) -> Account {
    let stored = store
        .get(&document_key("accounts", DEFAULT_VERSION, id))
        .await
        .unwrap()
        .expect("a document");
    serde_json::from_str(&stored.doc).unwrap()
}

async fn user_doc(store: &MemoryReadModels, id: &str) -> User {
    let stored = store
        .get(&document_key("users", DEFAULT_VERSION, id))
        .await
        .unwrap()
        .expect("a document");
    serde_json::from_str(&stored.doc).unwrap()
}

fn story() -> Vec<Value> {
    vec![
        opened("acc_1"),
        credited("c-1", "acc_1", "cr_1", 5_000),
        // The same credit again under another event id (a sender's retry with a new id): counted once.
        credited("c-1-again", "acc_1", "cr_1", 5_000),
        payment("payment.received", "acc_1", "pay_1", 1_200),
        payment("payment.processed", "acc_1", "pay_1", 1_200),
        payment("payment.received", "acc_1", "pay_2", 9_999),
        payment("payment.failed", "acc_1", "pay_2", 9_999),
        // A credit to an account that was never opened: the ledger parks it, the model does not count it.
        credited("c-9", "acc_9", "cr_9", 700),
        user(
            "user.signed_up",
            "s-1",
            "usr_1",
            "2026-11-22T10:00:00Z",
            true,
        ),
        user(
            "user.unsubscribed",
            "u-1",
            "usr_1",
            "2026-11-22T11:00:00Z",
            false,
        ),
        // A signup delivered after the unsubscribe but made before it does not put the user back.
        user(
            "user.signed_up",
            "s-1-late",
            "usr_1",
            "2026-11-22T10:30:00Z",
            true,
        ),
    ]
}

#[tokio::test]
async fn the_story_folds_into_the_accounts_and_users_the_ledger_and_directory_would_show() {
    let store = MemoryReadModels::default();
    let harness = Harness::new(Projections::new(&store), LogDeadLetters);
    let report = harness.run(batch_of(&story())).await;
    assert_eq!(report.handled, story().len());

    let acc = account(&store, "acc_1").await;
    assert_eq!(acc.status, AccountStatus::Open);
    assert_eq!(acc.currency.as_deref(), Some("EUR"));
    assert_eq!(acc.balance, 5_000 - 1_200);
    let outcomes: Vec<(&str, PaymentStatus, Option<&str>)> = acc
        .payments
        .iter()
        .map(|p| (p.payment_id.as_str(), p.status, p.reason.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("pay_2", PaymentStatus::Failed, Some("insufficient_funds")),
            ("pay_1", PaymentStatus::Processed, None),
        ]
    );
    let unknown = account(&store, "acc_9").await;
    assert_eq!(
        (unknown.status, unknown.balance),
        (AccountStatus::Unknown, 0)
    );

    let usr = user_doc(&store, "usr_1").await;
    assert_eq!(usr.profile.unwrap().name, "Ada");
    assert!(usr.lists.is_empty(), "unsubscribed: {:?}", usr.memberships);
}

#[tokio::test]
async fn a_batch_delivered_again_changes_nothing() {
    let store = MemoryReadModels::default();
    let harness = Harness::new(Projections::new(&store), LogDeadLetters);
    harness.run(batch_of(&story())).await;
    let once = store.all();
    let again = harness.run(batch_of(&story())).await;
    assert_eq!(again.handled, story().len(), "handled, as no-ops");
    assert_eq!(store.all(), once);
}

#[tokio::test]
async fn a_processed_payment_on_the_stream_twice_is_debited_once() {
    let store = MemoryReadModels::default();
    let harness = Harness::new(Projections::new(&store), LogDeadLetters);
    let mut events = vec![opened("acc_1"), credited("c-1", "acc_1", "cr_1", 5_000)];
    let processed = payment("payment.processed", "acc_1", "pay_1", 1_000);
    // The payments consumer's publish was written but its answer lost: the same event, two records.
    events.push(processed.clone());
    events.push(processed);
    harness.run(batch_of(&events)).await;
    assert_eq!(account(&store, "acc_1").await.balance, 4_000);
}

#[tokio::test]
async fn without_a_position_an_event_is_refused_not_guessed() {
    let store = MemoryReadModels::default();
    let projections = Projections::new(&store);
    let bytes = serde_json::to_vec(&opened("acc_1")).unwrap();
    let envelope = tubes_contract::Envelope::decode(&bytes).unwrap();
    assert!(projections.handle(&envelope).await.is_err());
    assert!(store.all().is_empty());
}
