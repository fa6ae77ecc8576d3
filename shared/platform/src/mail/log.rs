//! Where no e-mail provider is configured: e-mails are logged (their key and subject, never the address or the
//! body), not sent.

use super::{Email, MailError, Mailer};

/// Logs e-mails instead of sending them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

impl Mailer for LogMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        tracing::info!(key = %email.idempotency_key, subject = %email.subject, "e-mail (not sent: no mailer configured)");
        Ok(())
    }
}
