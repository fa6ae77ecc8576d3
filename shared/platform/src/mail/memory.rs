//! E-mails kept in memory, once per key, for tests (feature `test-util`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Email, MailError, Mailer};

/// E-mails in memory, once per key.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Email>>,
}

impl MemoryMailer {
    fn lock(&self) -> MutexGuard<'_, Vec<Email>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<Email> {
        self.lock().clone()
    }
}

impl Mailer for MemoryMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let mut sent = self.lock();
        if !sent
            .iter()
            .any(|e| e.idempotency_key == email.idempotency_key)
        {
            sent.push(email.clone());
        }
        Ok(())
    }
}
