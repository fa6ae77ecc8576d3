//! The users directory port of the signup flow (seeds 003, 004): profiles and mailing-list memberships.
//! [`DynamoDirectory`] ([`dynamo`]) keeps them in one DynamoDB table; `MemoryDirectory` (`memory`, feature
//! `test-util`) has the same rules in memory.

use std::future::Future;

use tubes_contract::catalogue::UserSignedUp;

use crate::classify::Classify;

pub mod dynamo;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use dynamo::DynamoDirectory;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryDirectory;

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
