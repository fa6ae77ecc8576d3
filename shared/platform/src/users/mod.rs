//! The users directory port of the signup flow (seeds 003, 004): profiles and mailing-list memberships.
//! [`DynamoDirectory`] ([`dynamo`]) keeps them in one DynamoDB table; `MemoryDirectory` (`memory`, feature
//! `test-util`) has the same rules in memory.

use std::future::Future;

use time::OffsetDateTime;
use tubes_contract::catalogue::UserSignedUp;

use crate::classify::{Classify, Dependency};

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

    fn dependency(&self) -> Option<Dependency> {
        Some(Dependency::USERS)
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

/// What a membership change came to. Memberships follow the order of the events that change them, by their
/// time (`signed_up_at`, `unsubscribed_at`), not the order they arrive in: a signup retried after the user's
/// unsubscribe does not put them back on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// This change is the latest: applied now, or already by an earlier delivery of the same change. `changed`:
    /// it moved the user on or off the list (an unsubscribe of a non-member changes nothing).
    Applied {
        /// Whether the user's membership changed.
        changed: bool,
    },
    /// A later change of this membership is in force: this one changes nothing.
    Superseded,
}

impl Membership {
    /// Whether this change moved the user on or off the list (now, or at an earlier delivery).
    pub fn changed(self) -> bool {
        matches!(self, Membership::Applied { changed: true })
    }
}

/// Profiles and mailing lists.
pub trait Directory: Send + Sync {
    /// Creates the user's profile unless it exists; `true` when it was created now.
    fn create_profile(
        &self,
        signup: &UserSignedUp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Puts the user on `list` as of `at`, unless a change at `at` or later is in force.
    fn subscribe(
        &self,
        list: &str,
        user_id: &str,
        email: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Membership, StoreError>> + Send;
    /// Takes the user off `list` as of `at` (a tombstone, which an older subscribe cannot undo), unless a change
    /// at `at` or later is in force.
    fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Membership, StoreError>> + Send;
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
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Membership, StoreError>> + Send {
        (**self).subscribe(list, user_id, email, at)
    }
    fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<Membership, StoreError>> + Send {
        (**self).unsubscribe(list, user_id, at)
    }
}

/// A time as the directory orders changes by it: milliseconds since the Unix epoch.
fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A membership as stored: on the list or not (a tombstone), as of which change, and whether that change moved
/// the user (so that a redelivery of it answers as the first delivery did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    member: bool,
    at_ms: i64,
    changed: bool,
}

/// The one rule both backends apply: the change to `member` at `at_ms` against what is stored. Returns what to
/// store (`None`: nothing to write) and what the change came to.
fn apply(stored: Option<Stored>, member: bool, at_ms: i64) -> (Option<Stored>, Membership) {
    match stored {
        // Later than what is stored (or nothing is): applied; it changes membership if it flips it.
        Some(s) if s.at_ms >= at_ms => {
            if s.at_ms == at_ms && s.member == member {
                // This very change, delivered again: the same answer.
                (None, Membership::Applied { changed: s.changed })
            } else {
                (None, Membership::Superseded)
            }
        }
        previous => {
            let changed = previous.map_or(member, |s| s.member != member);
            (
                Some(Stored {
                    member,
                    at_ms,
                    changed,
                }),
                Membership::Applied { changed },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_follows_the_time_of_its_changes() {
        let s = |member, at_ms, changed| {
            Some(Stored {
                member,
                at_ms,
                changed,
            })
        };
        let applied = |changed| Membership::Applied { changed };
        // Subscribed at 10; a signup retried after the unsubscribe at 20 does not put the user back.
        assert_eq!(apply(None, true, 10), (s(true, 10, true), applied(true)));
        assert_eq!(
            apply(s(true, 10, true), false, 20),
            (s(false, 20, true), applied(true))
        );
        assert_eq!(
            apply(s(false, 20, true), true, 10).1,
            Membership::Superseded
        );
        // The unsubscribe delivered again answers as the first time (its confirmation goes out once, by its key).
        assert_eq!(apply(s(false, 20, true), false, 20), (None, applied(true)));
        // A later signup does put them back.
        assert_eq!(
            apply(s(false, 20, true), true, 30),
            (s(true, 30, true), applied(true))
        );
        // Unsubscribing someone who is not on the list changes nothing, but leaves a tombstone.
        assert_eq!(apply(None, false, 5), (s(false, 5, false), applied(false)));
        assert_eq!(apply(s(false, 5, false), true, 4).1, Membership::Superseded);
        // Two different changes at the same instant: the first stands.
        assert_eq!(apply(s(true, 7, true), false, 7).1, Membership::Superseded);
    }
}
