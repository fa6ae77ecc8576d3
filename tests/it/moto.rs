//! `scripts/moto_server.py`, the DynamoDB every integration test and the local stack use: its transactions save
//! and restore the items they touch instead of moto's copies of whole tables, and must still be all or nothing.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use tubes_tests::Moto;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

async fn item(moto: &Moto, pk: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    moto.dynamodb()
        .get_item()
        .table_name("t")
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn debit(amount: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name("t")
                .key("pk", s("account"))
                .update_expression("SET balance = balance - :a")
                .expression_attribute_values(":a", AttributeValue::N(amount.into()))
                .build()
                .unwrap(),
        )
        .build()
}

fn put_new(pk: &str) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name("t")
                .item("pk", s(pk))
                .item("v", s("new"))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap(),
        )
        .build()
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_it_touched_as_it_was() {
    let moto = Moto::start().await;
    moto.create_table("t", "pk").await;
    let client = moto.dynamodb();
    for (pk, attr, value) in [
        ("account", "balance", AttributeValue::N("100".into())),
        ("taken", "v", s("old")),
    ] {
        client
            .put_item()
            .table_name("t")
            .item("pk", s(pk))
            .item(attr, value)
            .send()
            .await
            .unwrap();
    }

    // The debit and the new item are applied, then the third write's condition fails: all three are undone.
    let cancelled = client
        .transact_write_items()
        .transact_items(debit("50"))
        .transact_items(put_new("fresh"))
        .transact_items(put_new("taken"))
        .send()
        .await;
    assert!(cancelled.is_err(), "the third condition fails");
    assert_eq!(
        item(&moto, "account").await.unwrap()["balance"],
        AttributeValue::N("100".into())
    );
    assert_eq!(item(&moto, "taken").await.unwrap()["v"], s("old"));
    assert_eq!(item(&moto, "fresh").await, None, "a put undone is gone");

    // A transaction that holds commits every write.
    client
        .transact_write_items()
        .transact_items(debit("50"))
        .transact_items(put_new("fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        item(&moto, "account").await.unwrap()["balance"],
        AttributeValue::N("50".into())
    );
    assert_eq!(item(&moto, "fresh").await.unwrap()["v"], s("new"));
}
