//! The users directory the signup flow keeps (seeds 003, 004): profiles and mailing-list memberships.
//! [`DynamoDirectory`] keeps them in one DynamoDB table (partition key `pk`): `profile#{user id}` and
//! `member#{list id}#{user id}`; [`MemoryDirectory`] has the same rules for unit tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;

use crate::catalogue::UserSignedUp;
use crate::harness::Classify;

/// The directory could not be read or written; the record is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("users directory: {0}")]
pub struct StoreError(pub String);

impl Classify for StoreError {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// A profile as the directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The user's address.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// When they signed up (RFC 3339).
    pub signed_up_at: String,
}

/// Profiles and mailing lists.
pub trait Directory: Send + Sync {
    /// Creates the user's profile unless it exists; `true` when it was created now.
    fn create_profile(
        &self,
        signup: &UserSignedUp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Puts the user on `list` (again: no change).
    fn subscribe(
        &self,
        list: &str,
        user_id: &str,
        email: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes the user off `list`; `true` when they were on it.
    fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<D: Directory> Directory for &D {
    fn create_profile(
        &self,
        signup: &UserSignedUp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).create_profile(signup)
    }
    fn subscribe(
        &self,
        list: &str,
        user_id: &str,
        email: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).subscribe(list, user_id, email)
    }
    fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).unsubscribe(list, user_id)
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn store_error<E: std::error::Error + 'static>(
    operation: &str,
    err: aws_sdk_dynamodb::error::SdkError<E>,
) -> StoreError {
    StoreError(crate::aws::describe(operation, err))
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

    /// A user's profile, read consistently.
    pub async fn profile(&self, user_id: &str) -> Result<Option<Profile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&format!("profile#{user_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let get = |item: &HashMap<String, AttributeValue>, k: &str| {
            item.get(k).and_then(|v| v.as_s().ok()).cloned()
        };
        Ok(out.item().and_then(|i| {
            Some(Profile {
                email: get(i, "email")?,
                name: get(i, "name")?,
                signed_up_at: get(i, "signed_up_at")?,
            })
        }))
    }

    /// Whether the user is on `list`.
    pub async fn is_member(&self, list: &str, user_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&format!("member#{list}#{user_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(out.item.is_some())
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

/// Profiles by user, and (list, user) memberships.
type Entries = (HashMap<String, Profile>, HashSet<(String, String)>);

/// The directory in memory, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    state: Mutex<Entries>,
}

impl MemoryDirectory {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A user's profile.
    pub fn profile(&self, user_id: &str) -> Option<Profile> {
        self.lock().0.get(user_id).cloned()
    }

    /// Whether the user is on `list`.
    pub fn is_member(&self, list: &str, user_id: &str) -> bool {
        self.lock()
            .1
            .contains(&(list.to_owned(), user_id.to_owned()))
    }
}

impl Directory for MemoryDirectory {
    async fn create_profile(&self, signup: &UserSignedUp) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if state.0.contains_key(&signup.user_id) {
            return Ok(false);
        }
        state.0.insert(
            signup.user_id.clone(),
            Profile {
                email: signup.email.clone(),
                name: signup.name.clone(),
                signed_up_at: signup
                    .signed_up_at
                    .format(&Rfc3339)
                    .map_err(|e| StoreError(e.to_string()))?,
            },
        );
        Ok(true)
    }

    async fn subscribe(&self, list: &str, user_id: &str, _email: &str) -> Result<(), StoreError> {
        self.lock().1.insert((list.to_owned(), user_id.to_owned()));
        Ok(())
    }

    async fn unsubscribe(&self, list: &str, user_id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().1.remove(&(list.to_owned(), user_id.to_owned())))
    }
}
