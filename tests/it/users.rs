//! Mailing-list memberships on a real DynamoDB emulator (moto) follow the time of the changes that make them,
//! not the order they arrive in: a signup retried after the unsubscribe does not put the user back, a change
//! delivered twice answers the same both times, and an item written before memberships were ordered is taken
//! over.

use aws_sdk_dynamodb::types::AttributeValue;
use time::macros::datetime;
use tubes_platform::users::{Directory, DynamoDirectory, Membership};
use tubes_tests::Moto;

#[tokio::test]
async fn memberships_follow_the_time_of_their_changes_on_dynamodb() {
    let moto = Moto::start().await;
    moto.create_table("users", "pk").await;
    let directory = DynamoDirectory::new(moto.dynamodb(), "users");
    let (nine, ten, eleven) = (
        datetime!(2026-11-22 09:00 UTC),
        datetime!(2026-11-22 10:00 UTC),
        datetime!(2026-11-22 11:00 UTC),
    );
    let applied = |changed| Membership::Applied { changed };
    let email = "ada@example.com";

    // Never on the list: an unsubscribe changes nothing (and leaves a tombstone).
    assert_eq!(
        directory
            .unsubscribe("news", "usr_1", datetime!(2026-11-22 08:00 UTC))
            .await,
        Ok(applied(false))
    );
    assert_eq!(
        directory.subscribe("news", "usr_1", email, nine).await,
        Ok(applied(true))
    );
    assert!(directory.is_member("news", "usr_1").await.unwrap());
    assert_eq!(
        directory.unsubscribe("news", "usr_1", ten).await,
        Ok(applied(true))
    );
    // Delivered again: the same answer (its confirmation goes out once, by its key).
    assert_eq!(
        directory.unsubscribe("news", "usr_1", ten).await,
        Ok(applied(true))
    );
    // The 09:00 signup handled again (a redrive): superseded, the user stays off the list.
    assert_eq!(
        directory.subscribe("news", "usr_1", email, nine).await,
        Ok(Membership::Superseded)
    );
    assert!(!directory.is_member("news", "usr_1").await.unwrap());
    // A later signup puts them back.
    assert_eq!(
        directory.subscribe("news", "usr_1", email, eleven).await,
        Ok(applied(true))
    );
    assert!(directory.is_member("news", "usr_1").await.unwrap());

    // An item from before memberships were ordered (no time): a member, taken over by the next change.
    moto.dynamodb()
        .put_item()
        .table_name("users")
        .item("pk", AttributeValue::S("member#news#usr_old".into()))
        .item("email", AttributeValue::S(email.into()))
        .send()
        .await
        .unwrap();
    assert!(directory.is_member("news", "usr_old").await.unwrap());
    assert_eq!(
        directory.unsubscribe("news", "usr_old", ten).await,
        Ok(applied(true))
    );
    assert!(!directory.is_member("news", "usr_old").await.unwrap());
}
