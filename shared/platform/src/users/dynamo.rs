//! The users directory in one DynamoDB table (partition key `pk`): `profile#{user id}` items and
//! `member#{list id}#{user id}` items (`member`, false for a tombstone; `at_ms`, the time of the change in force;
//! `changed`, whether that change moved the user).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use tubes_contract::catalogue::UserSignedUp;

use time::OffsetDateTime;

use super::{apply, millis, Directory, Membership, Profile, StoreError, Stored};
use crate::aws;

/// How often a membership change reads again after another writer changed it in between.
const CHANGE_ATTEMPTS: usize = 5;

fn member_key(list: &str, user_id: &str) -> String {
    format!("member#{list}#{user_id}")
}

/// A membership item as stored; an item from before memberships were ordered (no `at_ms`) is a member as of
/// the epoch.
fn stored(item: &HashMap<String, AttributeValue>) -> Option<Stored> {
    let member = item
        .get("member")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(true);
    let at_ms = aws::item_number(item, "at_ms").unwrap_or(0);
    let changed = item
        .get("changed")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(true);
    Some(Stored {
        member,
        at_ms,
        changed,
    })
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn store_error<E: std::error::Error + 'static>(
    operation: &str,
    err: aws_sdk_dynamodb::error::SdkError<E>,
) -> StoreError {
    StoreError(aws::describe(operation, err))
}

/// The directory in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDirectory {
    /// The directory in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The item `pk`, read consistently.
    async fn item(
        &self,
        pk: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item)
    }

    /// A user's profile, read consistently.
    pub async fn profile(&self, user_id: &str) -> Result<Option<Profile>, StoreError> {
        let item = self.item(format!("profile#{user_id}")).await?;
        let get = |item: &HashMap<String, AttributeValue>, k: &str| {
            item.get(k).and_then(|v| v.as_s().ok()).cloned()
        };
        Ok(item.as_ref().and_then(|i| {
            Some(Profile {
                email: get(i, "email")?,
                name: get(i, "name")?,
                signed_up_at: get(i, "signed_up_at")?,
            })
        }))
    }

    /// Whether the user is on `list`.
    pub async fn is_member(&self, list: &str, user_id: &str) -> Result<bool, StoreError> {
        let item = self.item(member_key(list, user_id)).await?;
        Ok(item.as_ref().and_then(stored).is_some_and(|s| s.member))
    }

    /// Applies the change (on the list with `email`, or off it when `None`) at `at`, by the rule of
    /// [`super::apply`]: read the membership, decide, write only if what was read is still there (another writer
    /// in between: read again).
    async fn change(
        &self,
        list: &str,
        user_id: &str,
        email: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Membership, StoreError> {
        let key = member_key(list, user_id);
        for _ in 0..CHANGE_ATTEMPTS {
            let read = self.item(key.clone()).await?;
            let previous = read.as_ref().and_then(stored);
            let (store, outcome) = apply(previous, email.is_some(), millis(at));
            let Some(next) = store else {
                return Ok(outcome);
            };
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(key.clone()))
                .item("member", AttributeValue::Bool(next.member))
                .item("at_ms", AttributeValue::N(next.at_ms.to_string()))
                .item("changed", AttributeValue::Bool(next.changed));
            if let Some(email) = email {
                put = put.item("email", s(email));
            }
            let legacy = read.as_ref().is_some_and(|i| !i.contains_key("at_ms"));
            put = match previous {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(_) if legacy => {
                    put.condition_expression("attribute_exists(pk) AND attribute_not_exists(at_ms)")
                }
                Some(p) => put
                    .condition_expression("at_ms = :at AND #m = :m")
                    .expression_attribute_names("#m", "member")
                    .expression_attribute_values(":at", AttributeValue::N(p.at_ms.to_string()))
                    .expression_attribute_values(":m", AttributeValue::Bool(p.member)),
            };
            match put.send().await {
                Ok(_) => return Ok(outcome),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(store_error("PutItem", e)),
            }
        }
        Err(StoreError(format!(
            "{key}: changed by others {CHANGE_ATTEMPTS} times while this change was applied"
        )))
    }
}

impl Directory for DynamoDirectory {
    async fn create_profile(&self, signup: &UserSignedUp) -> Result<bool, StoreError> {
        let at = signup
            .signed_up_at
            .format(&Rfc3339)
            .map_err(|e| StoreError(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&format!("profile#{}", signup.user_id)))
            .item("email", s(&signup.email))
            .item("name", s(&signup.name))
            .item("signed_up_at", s(&at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("PutItem", e)),
        }
    }

    async fn subscribe(
        &self,
        list: &str,
        user_id: &str,
        email: &str,
        at: OffsetDateTime,
    ) -> Result<Membership, StoreError> {
        self.change(list, user_id, Some(email), at).await
    }

    async fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
        at: OffsetDateTime,
    ) -> Result<Membership, StoreError> {
        self.change(list, user_id, None, at).await
    }
}
