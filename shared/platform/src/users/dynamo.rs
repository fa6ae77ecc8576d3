//! The users directory in one DynamoDB table (partition key `pk`): `profile#{user id}` items and
//! `member#{list id}#{user id}` items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use tubes_contract::catalogue::UserSignedUp;

use super::{Directory, Profile, StoreError};
use crate::aws;

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
        Ok(self
            .item(format!("member#{list}#{user_id}"))
            .await?
            .is_some())
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

    async fn subscribe(&self, list: &str, user_id: &str, email: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&format!("member#{list}#{user_id}")))
            .item("email", s(email))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn unsubscribe(&self, list: &str, user_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&format!("member#{list}#{user_id}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}
