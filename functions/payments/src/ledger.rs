//! The ledger port: accounts, credits and payment decisions, with the rules of seed 002. [`MemoryLedger`] holds
//! the same rules in memory for unit tests; `dynamo::DynamoLedger` keeps them in DynamoDB.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;
use tubes_contract::catalogue::{
    AccountCredited, AccountFrozen, AccountOpened, PaymentFailureReason, PaymentReceived,
};

use crate::PaymentsError;

/// The decision on one payment: made once, then found by every later attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Debited, at `at`.
    Processed {
        /// When the debit committed.
        at: OffsetDateTime,
    },
    /// Refused, nothing debited.
    Refused {
        /// Why.
        reason: PaymentFailureReason,
        /// When it was refused.
        at: OffsetDateTime,
    },
}

/// Accounts and payments.
pub trait Ledger: Send + Sync {
    /// Opens the account with a balance of zero; an account already open is left as it is.
    fn open(
        &self,
        opened: &AccountOpened,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// Adds the credit to the balance, once per `(account, credit id)`.
    fn credit(
        &self,
        credit: &AccountCredited,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// Freezes the account: later payments are refused.
    fn freeze(
        &self,
        frozen: &AccountFrozen,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send;

    /// Decides the payment, once per payment id: checks the account (exists, not frozen, currency, limit,
    /// balance) and debits it, recording the decision with the debit, at `now`. A payment already decided gets its
    /// recorded decision back, whatever the balance is now.
    fn debit(
        &self,
        payment: &PaymentReceived,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Decision, PaymentsError>> + Send;
}

impl<L: Ledger> Ledger for &L {
    fn open(
        &self,
        opened: &AccountOpened,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).open(opened)
    }
    fn credit(
        &self,
        credit: &AccountCredited,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).credit(credit)
    }
    fn freeze(
        &self,
        frozen: &AccountFrozen,
    ) -> impl Future<Output = Result<(), PaymentsError>> + Send {
        (**self).freeze(frozen)
    }
    fn debit(
        &self,
        payment: &PaymentReceived,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Decision, PaymentsError>> + Send {
        (**self).debit(payment, now)
    }
}

/// An account as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its only currency.
    pub currency: String,
    /// Balance in minor units.
    pub balance: i64,
    /// Frozen: payments are refused.
    pub frozen: bool,
    /// The largest single payment, if any.
    pub per_payment_limit: Option<i64>,
}

/// Why `account` refuses `payment`, if it does: the rules in the order they are checked.
pub fn refusal(
    account: Option<&Account>,
    payment: &PaymentReceived,
) -> Option<PaymentFailureReason> {
    let Some(a) = account else {
        return Some(PaymentFailureReason::AccountNotFound);
    };
    if a.frozen {
        Some(PaymentFailureReason::AccountFrozen)
    } else if a.currency != payment.currency {
        Some(PaymentFailureReason::CurrencyMismatch)
    } else if a.per_payment_limit.is_some_and(|l| payment.amount > l) {
        Some(PaymentFailureReason::LimitExceeded)
    } else if a.balance < payment.amount {
        Some(PaymentFailureReason::InsufficientFunds)
    } else {
        None
    }
}

/// A recorded decision with what it was about, so a reused payment id is told apart from a retry.
#[derive(Debug, Clone)]
struct Recorded {
    account_id: String,
    amount: i64,
    decision: Decision,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Account>,
    credits: std::collections::HashSet<(String, String)>,
    payments: HashMap<String, Recorded>,
}

/// The ledger in memory, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An account's balance, if it is open.
    pub fn balance(&self, account_id: &str) -> Option<i64> {
        self.lock().accounts.get(account_id).map(|a| a.balance)
    }
}

impl Ledger for MemoryLedger {
    async fn open(&self, opened: &AccountOpened) -> Result<(), PaymentsError> {
        self.lock()
            .accounts
            .entry(opened.account_id.clone())
            .or_insert_with(|| Account {
                currency: opened.currency.clone(),
                balance: 0,
                frozen: false,
                per_payment_limit: opened.per_payment_limit,
            });
        Ok(())
    }

    async fn credit(&self, credit: &AccountCredited) -> Result<(), PaymentsError> {
        let mut state = self.lock();
        let key = (credit.account_id.clone(), credit.credit_id.clone());
        if state.credits.contains(&key) {
            return Ok(());
        }
        let account = state
            .accounts
            .get_mut(&credit.account_id)
            .ok_or_else(|| PaymentsError::UnknownAccount(credit.account_id.clone()))?;
        if account.currency != credit.currency {
            return Err(PaymentsError::CurrencyMismatch(credit.account_id.clone()));
        }
        account.balance += credit.amount;
        state.credits.insert(key);
        Ok(())
    }

    async fn freeze(&self, frozen: &AccountFrozen) -> Result<(), PaymentsError> {
        self.lock()
            .accounts
            .get_mut(&frozen.account_id)
            .map(|a| a.frozen = true)
            .ok_or_else(|| PaymentsError::UnknownAccount(frozen.account_id.clone()))
    }

    async fn debit(
        &self,
        payment: &PaymentReceived,
        now: OffsetDateTime,
    ) -> Result<Decision, PaymentsError> {
        let mut state = self.lock();
        if let Some(r) = state.payments.get(&payment.payment_id) {
            if r.account_id != payment.account_id || r.amount != payment.amount {
                return Err(PaymentsError::PaymentIdReused(payment.payment_id.clone()));
            }
            return Ok(r.decision);
        }
        let decision = match refusal(state.accounts.get(&payment.account_id), payment) {
            Some(reason) => Decision::Refused { reason, at: now },
            None => {
                if let Some(a) = state.accounts.get_mut(&payment.account_id) {
                    a.balance -= payment.amount;
                }
                Decision::Processed { at: now }
            }
        };
        state.payments.insert(
            payment.payment_id.clone(),
            Recorded {
                account_id: payment.account_id.clone(),
                amount: payment.amount,
                decision,
            },
        );
        Ok(decision)
    }
}
