//! Dead letters kept in memory, for tests (feature `test-util`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{DeadLetter, DeadLetterError, DeadLetters};

/// Dead letters in memory; when `broken`, every send fails (a queue that is down).
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
    /// Every send fails.
    pub broken: bool,
}

impl MemoryDeadLetters {
    /// A destination whose every send fails.
    pub fn broken() -> Self {
        Self {
            broken: true,
            ..Self::default()
        }
    }

    /// The letters stored so far, in order.
    pub fn letters(&self) -> MutexGuard<'_, Vec<DeadLetter>> {
        self.letters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), DeadLetterError> {
        if self.broken {
            return Err(DeadLetterError("down".into()));
        }
        self.letters().push(letter);
        Ok(())
    }

    fn destination(&self) -> &str {
        "memory"
    }
}
