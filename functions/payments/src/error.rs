//! The payments consumer's one error type, each variant classified for the harness.

use tubes_platform::{Classify, Dependency};

/// What went wrong while handling an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentsError {
    /// The ledger could not be read or written (throttling, an outage): retried.
    #[error("ledger unavailable: {0}")]
    Store(String),
    /// The outcome could not be published: retried (the decision is kept, the same event is published again).
    #[error("outcome not published: {0}")]
    Publish(String),
    /// A credit or freeze for an account that was never opened: parked for an operator (redrive once it is).
    #[error("no account {0}")]
    UnknownAccount(String),
    /// A credit in another currency than the account's: parked.
    #[error("credit in another currency than account {0}'s")]
    CurrencyMismatch(String),
    /// A payment id already decided for another account or amount: parked.
    #[error("payment {0} was already decided with other details")]
    PaymentIdReused(String),
    /// An event this consumer builds did not validate (a bug): parked.
    #[error("invalid outcome event: {0}")]
    Invalid(String),
}

/// The ledger, as the circuit breaker names it.
pub const LEDGER: Dependency = Dependency::named("ledger");

impl Classify for PaymentsError {
    fn is_retryable(&self) -> bool {
        matches!(self, PaymentsError::Store(_) | PaymentsError::Publish(_))
    }

    fn dependency(&self) -> Option<Dependency> {
        match self {
            PaymentsError::Store(_) => Some(LEDGER),
            PaymentsError::Publish(_) => Some(Dependency::STREAM),
            _ => None,
        }
    }
}
