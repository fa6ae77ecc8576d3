//! The users directory in memory, for tests (feature `test-util`).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::format_description::well_known::Rfc3339;
use tubes_contract::catalogue::UserSignedUp;

use super::{Directory, Profile, StoreError};

/// Profiles by user, and (list, user) memberships.
type Entries = (HashMap<String, Profile>, HashSet<(String, String)>);

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
