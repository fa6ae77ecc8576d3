//! The users directory in memory, for tests (feature `test-util`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::format_description::well_known::Rfc3339;
use tubes_contract::catalogue::UserSignedUp;

use time::OffsetDateTime;

use super::{apply, millis, Directory, Membership, Profile, StoreError, Stored};

/// Profiles by user, and memberships by (list, user).
type Entries = (HashMap<String, Profile>, HashMap<(String, String), Stored>);

/// The directory in memory.
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
            .get(&(list.to_owned(), user_id.to_owned()))
            .is_some_and(|s| s.member)
    }
}

impl MemoryDirectory {
    fn change(&self, list: &str, user_id: &str, member: bool, at: OffsetDateTime) -> Membership {
        let key = (list.to_owned(), user_id.to_owned());
        let mut state = self.lock();
        let (store, outcome) = apply(state.1.get(&key).copied(), member, millis(at));
        if let Some(stored) = store {
            state.1.insert(key, stored);
        }
        outcome
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

    async fn subscribe(
        &self,
        list: &str,
        user_id: &str,
        _email: &str,
        at: OffsetDateTime,
    ) -> Result<Membership, StoreError> {
        Ok(self.change(list, user_id, true, at))
    }

    async fn unsubscribe(
        &self,
        list: &str,
        user_id: &str,
        at: OffsetDateTime,
    ) -> Result<Membership, StoreError> {
        Ok(self.change(list, user_id, false, at))
    }
}
